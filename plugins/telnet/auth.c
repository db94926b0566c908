/* telnet transport: AUTH's password, read once from
 * telnet.password_file, compared in constant time, and failed tries
 * logged at a bounded rate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kafkaesque/kafkaesque.h>
#include <kafkaesque/secret.h>

#include "telnet.h"

int kq__tn_password_read(struct kq__tn_server *srv, const char *path)
{
	unsigned char buf[KQ__TN_PASSWORD_MAX + 3];
	char why[256];
	size_t n = 0;
	mode_t mode;

	if (kq_secret_read(path, buf, sizeof(buf), &n, &mode, why,
			   sizeof(why)) != 0) {
		KQ__TN_LOG(srv, KQ_LOG_ERROR, "telnet.password_file: %s: %s",
			   path, why);
		return KQ_ECONFIG;
	}
	if (mode & 077)
		KQ__TN_LOG(
			srv, KQ_LOG_WARN,
			"telnet.password_file: %s can be read by other users "
			"(chmod 600 it)",
			path);
	if (n == 0 || n > KQ__TN_PASSWORD_MAX || memchr(buf, '\n', n) ||
	    memchr(buf, '\r', n) || memchr(buf, '\0', n)) {
		KQ__TN_LOG(srv, KQ_LOG_ERROR,
			   "telnet.password_file: %s: expected one line of 1 "
			   "to %d bytes",
			   path, KQ__TN_PASSWORD_MAX);
		memset(buf, 0, sizeof(buf));
		return KQ_ECONFIG;
	}
	memcpy(srv->password, buf, n);
	srv->password_len = n;
	memset(buf, 0, sizeof(buf));
	return 0;
}

int kq__tn_password_ok(const struct kq__tn_server *srv, const char *word,
		       size_t len)
{
	volatile unsigned char diff = 0;
	size_t i;

	/* Equal-length buffers: the password zero-padded, and the word
	 * zero-padded (or cut, its length compared apart).  Every byte is
	 * read and no branch depends on the password. */
	for (i = 0; i < KQ__TN_PASSWORD_MAX; i++) {
		unsigned char w = i < len ? (unsigned char)word[i] : 0;

		diff |= (unsigned char)(w ^ srv->password[i]);
	}
	diff |= (unsigned char)((len ^ srv->password_len) != 0);
	return srv->password_len > 0 && diff == 0;
}

/* Failed AUTH lines: at most AUTH_LOG_BURST at once, then one every
 * AUTH_LOG_EVERY_MS, each saying how many were held back. */
#define AUTH_LOG_EVERY_MS 1000
#define AUTH_LOG_BURST	  10

void kq__tn_auth_log(struct kq__tn_conn *c)
{
	struct kq__tn_server *srv = c->srv;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[64] = "?";
	uint64_t held;

	if (!kq_ratelimit_allow(&srv->auth_log, uv_now(srv->host->loop),
				AUTH_LOG_EVERY_MS, AUTH_LOG_BURST, &held))
		return;
	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			addr[0] = '[';
			uv_ip6_name(a, addr + 1, sizeof(addr) - 8);
			snprintf(addr + strlen(addr), 8, "]:%u",
				 ntohs(a->sin6_port));
		} else if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			uv_ip4_name(a, addr, sizeof(addr) - 8);
			snprintf(addr + strlen(addr), 8, ":%u",
				 ntohs(a->sin_port));
		}
	}
	if (held)
		KQ__TN_LOG(srv, KQ_LOG_WARN,
			   "failed AUTH from %s (%u on this connection; and "
			   "%llu more failed AUTH not logged)",
			   addr, c->auth_failures, (unsigned long long)held);
	else
		KQ__TN_LOG(srv, KQ_LOG_WARN,
			   "failed AUTH from %s (%u on this connection)", addr,
			   c->auth_failures);
}
