/* The cluster section of the configuration: the peers and their
 * addresses, the handshake's settings and the secret. */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/error.h>

#include "link.h"

int kq__peers_resolve(const char *host, int port, struct sockaddr_storage *out)
{
	struct addrinfo hints, *res = NULL;
	char serv[16];
	int rv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(serv, sizeof(serv), "%d", port);
	rv = getaddrinfo(host, serv, &hints, &res);
	if (rv != 0 || !res)
		return -1;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int config_error(struct kq__cluster *c, const char *text)
{
	c->host->log(c->host, KQ_LOG_ERROR, "%s", text);
	return KQ_ECONFIG;
}

/* Reads the peers; the broker's own config check already validated the
 * section's shape, so this only copies it. */
int kq__peers_read(struct kq__cluster *c, int *listen_port)
{
	const json_t *cl = c->host->cluster;
	json_t *peers = cl ? json_object_get(cl, "peers") : NULL, *p;
	json_t *own_port = cl ? json_object_get(cl, "raft_port") : NULL;
	size_t i;

	*listen_port = 0;
	if (!json_is_array(peers) || json_array_size(peers) == 0)
		return 0;
	c->peers = calloc(json_array_size(peers), sizeof(*c->peers));
	if (!c->peers)
		return -ENOMEM;
	json_array_foreach(peers, i, p)
	{
		struct peer *pr = &c->peers[c->n_peers];
		json_t *id = json_object_get(p, "id");
		json_t *host = json_object_get(p, "host");
		json_t *rp = json_object_get(p, "raft_port");

		if (!json_is_integer(id) || json_integer_value(id) < 1 ||
		    json_integer_value(id) > 0x7fffffff)
			return config_error(c, "cluster.peers: bad id");
		pr->c = c;
		pr->id = (int)json_integer_value(id);
		pr->host = strdup(json_is_string(host) ? json_string_value(host)
						       : "127.0.0.1");
		pr->port = json_is_integer(rp) ? (int)json_integer_value(rp)
					       : 7070;
		pr->backoff_ms = BACKOFF_MIN_MS;
		pr->dials = pr->id > c->self;
		c->n_peers++;
		if (!pr->host)
			return -ENOMEM;
		if (pr->id == c->self)
			*listen_port = pr->port;
	}
	if (json_is_integer(own_port))
		*listen_port = (int)json_integer_value(own_port);
	return 0;
}

static unsigned get_uint(const json_t *cl, const char *key, unsigned def)
{
	json_t *v = cl ? json_object_get(cl, key) : NULL;

	/* The broker's config check already bounded the value. */
	return json_is_integer(v) ? (unsigned)json_integer_value(v) : def;
}

/* Reads the handshake's settings and the secret.  Without a secret the
 * port stays open to anyone who reaches it, as before: say so. */
int kq__peers_read_auth(struct kq__cluster *c, const char *listen_host,
			int port)
{
	const struct kq_host *host = c->host;
	const json_t *cl = host->cluster;
	json_t *file = cl ? json_object_get(cl, "secret_file") : NULL;
	char why[256];
	int loose = 0, rv;

	c->auth_timeout_ms =
		get_uint(cl, "auth_timeout_ms", AUTH_TIMEOUT_MS_DEFAULT);
	c->max_conns = get_uint(cl, "max_connections", MAX_CONNECTIONS_DEFAULT);
	c->max_conns_per_addr = get_uint(cl, "max_connections_per_address",
					 MAX_CONNECTIONS_PER_ADDR_DEF);
	if (kq__auth_global_init() != 0) {
		host->log(host, KQ_LOG_ERROR,
			  "cluster: cannot initialise libsodium");
		return KQ_ECONFIG;
	}
	if (!json_is_string(file)) {
		host->log(host, KQ_LOG_WARN,
			  "cluster: no cluster.secret_file: the cluster port "
			  "%s:%d is open to anyone who reaches it",
			  listen_host, port);
		return 0;
	}
	rv = kq__auth_key_load(json_string_value(file), &c->key, &loose, why,
			       sizeof(why));
	if (rv != 0) {
		host->log(host, KQ_LOG_ERROR, "cluster.secret_file: %s: %s",
			  json_string_value(file), why);
		return rv;
	}
	if (loose)
		host->log(host, KQ_LOG_WARN,
			  "cluster.secret_file: %s is readable by its group or "
			  "others (chmod 600 it)",
			  json_string_value(file));
	return 0;
}

/* Peers on one host kq__link_dial in from one address: a per-address cap below
 * their number would refuse some of them.  Only a warning: the address a
 * peer dials from may differ from the one it listens on. */
void kq__peers_check_address_cap(struct kq__cluster *c)
{
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct peer *p = &c->peers[i];
		unsigned n = 0;

		if (p->id >= c->self)
			continue;
		for (size_t k = 0; k < c->n_peers; k++)
			if (c->peers[k].id < c->self &&
			    kq__link_same_address(&c->peers[k].addr, &p->addr))
				n++;
		if (n > c->max_conns_per_addr) {
			c->host->log(c->host, KQ_LOG_WARN,
				     "cluster.max_connections_per_address: "
				     "%u is below the %u brokers at %s that "
				     "kq__link_dial here",
				     c->max_conns_per_addr, n, p->host);
			return;
		}
	}
}
