/* The broker's configuration: one JSON document (jansson), validated up
 * front so that every mistake is reported with its JSON path. */
#ifndef KQ_CORE_CONF_H
#define KQ_CORE_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <kafkaesque/consensus.h>

/* Command-line values that override the file (0/NULL: not given). */
struct kq__overrides {
	int broker_id;
	int port;
	int raft_port;
	const char *data_dir;
};

struct kq__config {
	json_t *root; /* the whole document, owned */
	int broker_id;
	char *data_dir; /* as configured (parent of kafkaesque-N) */
	char *log_file; /* NULL: log to stderr as started */
	char **transports;
	size_t ntransports;
	int port;	     /* -port, for transports[0]; 0: not given */
	char **partitioners; /* first is the default */
	size_t npartitioners;
	char *storage;
	char *consensus;
	char **plugin_path;
	size_t nplugin_path;
	uint32_t default_partitions;
	uint32_t max_partitions;
	int64_t retention_ms;	     /* -1: forever */
	int64_t retention_bytes;     /* -1: unbounded */
	uint32_t retention_check_ms; /* period of the retention check */
	uint32_t request_timeout_ms;
	/* limits: what clients may grow, each refused with ERR BUSY */
	uint32_t max_topics;
	uint32_t max_partitions_total; /* over every topic */
	uint32_t max_groups;	       /* over every topic */
	uint32_t max_subs_per_connection;
	uint32_t max_members_per_group;
	/* how long a group with no member keeps its committed offsets */
	int64_t offsets_retention_ms;
	int log_level;
	/* how long the members of a broker that cannot be reached stay */
	uint32_t session_timeout_ms;
	char *secret_file; /* cluster.secret_file; NULL when not set */
	struct kq_peer_config *peers; /* hosts owned */
	size_t npeers;
	/* The cluster section as the consensus module is lent it (views
	 * of the fields above); raft_port is 0 without a section. */
	struct kq_cluster_config cluster;
};

/* The configuration used when no file is given: a standalone broker. */
extern const char kq__default_config[];

/* Loads `path` (NULL: the embedded default), applies `ov` and validates,
 * including that cluster.secret_file, when set, holds a usable secret
 * (the consensus module reads the secret itself).  On failure returns
 * KQ_ECONFIG with one line in err (path and reason). On success *cfg is owned
 * by the caller: release with kq__config_free. */
int kq__config_load(const char *path, const struct kq__overrides *ov,
		    struct kq__config *cfg, char *err, size_t errlen);

/* The keys the core knows in one of its sections ("broker", "plugins",
 * "topics", "cluster", "limits", "groups", or "peer" for one of
 * cluster.peers), NULL-terminated; NULL for a section that is not the
 * core's. */
const char *const *kq__config_section_keys(const char *section);

/* Same, from a JSON text. */
int kq__config_parse(const char *text, const struct kq__overrides *ov,
		     struct kq__config *cfg, char *err, size_t errlen);

void kq__config_free(struct kq__config *cfg);

/* The section of module `name` (borrowed from cfg->root), or NULL. */
json_t *kq__config_section(const struct kq__config *cfg, const char *name);

#endif /* KQ_CORE_CONF_H */
