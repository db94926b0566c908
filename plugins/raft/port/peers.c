/* The cluster section of the configuration: the peers and their
 * addresses, the handshake's settings and the secret. */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/consensus.h>
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

/* Copies the peers from the cluster section the core checked. */
int kq__peers_read(struct kq__cluster *c, int *listen_port)
{
	const struct kq_cluster_config *cl = c->host->cluster;

	*listen_port = 0;
	if (!cl || cl->n_peers == 0)
		return 0;
	c->peers = calloc(cl->n_peers, sizeof(*c->peers));
	if (!c->peers)
		return -ENOMEM;
	for (size_t i = 0; i < cl->n_peers; i++) {
		struct peer *pr = &c->peers[c->n_peers++];

		pr->c = c;
		pr->id = cl->peers[i].id;
		pr->host = cl->peers[i].host;
		pr->port = cl->peers[i].raft_port;
		pr->backoff_ms = BACKOFF_MIN_MS;
		pr->dials = pr->id > c->self;
	}
	*listen_port = cl->raft_port;
	return 0;
}

/* Reads the handshake's settings and the secret (called only with
 * peers, so with a cluster section).  Without a secret the
 * port stays open to anyone who reaches it, as before: say so. */
int kq__peers_read_auth(struct kq__cluster *c, const char *listen_host,
			int port)
{
	const struct kq_host *host = c->host;
	const struct kq_cluster_config *cl = host->cluster;
	const char *file = cl->secret_file;
	char why[256];
	int loose = 0, rv;

	c->auth_timeout_ms = cl->auth_timeout_ms;
	c->max_conns = cl->max_connections;
	c->max_conns_per_addr = cl->max_connections_per_address;
	if (kq__auth_global_init() != 0) {
		host->log(host, KQ_LOG_ERROR,
			  "cluster: cannot initialise libsodium");
		return KQ_ECONFIG;
	}
	if (!file) {
		host->log(host, KQ_LOG_WARN,
			  "cluster: no cluster.secret_file: the cluster port "
			  "%s:%d is open to anyone who reaches it",
			  listen_host, port);
		return 0;
	}
	rv = kq__auth_key_load(file, &c->key, &loose, why, sizeof(why));
	if (rv != 0) {
		host->log(host, KQ_LOG_ERROR, "cluster.secret_file: %s: %s",
			  file, why);
		return rv;
	}
	if (loose)
		host->log(host, KQ_LOG_WARN,
			  "cluster.secret_file: %s is readable by its group or "
			  "others (chmod 600 it)",
			  file);
	return 0;
}

/* Peers on one host dial in from one address: a per-address cap below
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
				     "dial here",
				     c->max_conns_per_addr, n, p->host);
			return;
		}
	}
}
