#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kafkaesque/error.h>
#include <kafkaesque/secret.h>

#include "log.h"

const char kq__default_config[] =
	"{\n"
	"  \"broker\": {\"id\": 1, \"data_dir\": \".\"},\n"
	"  \"plugins\": {\"transport\": \"telnet\",\n"
	"              \"partitioner\": [\"keyhash\", \"roundrobin\"],\n"
	"              \"storage\": \"segment\", \"consensus\": \"local\"}\n"
	"}\n";

/* Core sections; any other top-level key must name a loaded module. */
static const char *const core_sections[] = {"broker",	   "plugins", "topics",
					    "cluster",	   "limits",  "groups",
					    "plugin_path", "log",     NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return KQ_ECONFIG;
}

static int in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return 1;
	return 0;
}

/* Rejects keys of `obj` that are not in `allowed`. */
static int check_keys(json_t *obj, const char *path, const char *const *allowed,
		      char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		if (!in_list(key, allowed))
			return fail(err, errlen, "%s.%s: unknown key", path,
				    key);
	}
	return 0;
}

static int get_int(json_t *obj, const char *path, const char *key, int64_t min,
		   int64_t max, int64_t def, int64_t *out, char *err,
		   size_t errlen)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return fail(err, errlen,
			    "%s.%s: expected an integer %lld..%lld", path, key,
			    (long long)min, (long long)max);
	*out = json_integer_value(v);
	return 0;
}

static int get_string(json_t *obj, const char *path, const char *key,
		      const char *def, char **out, char *err, size_t errlen)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;

	if (!v) {
		*out = def ? strdup(def) : NULL;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0)
		return fail(err, errlen, "%s.%s: expected a non-empty string",
			    path, key);
	*out = strdup(json_string_value(v));
	return 0;
}

/* A string or a non-empty array of strings. */
static int get_names(json_t *obj, const char *path, const char *key,
		     int list_ok, const char *def, char ***out, size_t *n,
		     char *err, size_t errlen)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	size_t i;
	json_t *item;

	if (!v) {
		*out = calloc(1, sizeof(char *));
		(*out)[0] = strdup(def);
		*n = 1;
		return 0;
	}
	if (json_is_string(v) && json_string_length(v) > 0) {
		*out = calloc(1, sizeof(char *));
		(*out)[0] = strdup(json_string_value(v));
		*n = 1;
		return 0;
	}
	if (!list_ok || !json_is_array(v) || json_array_size(v) == 0)
		return fail(err, errlen, "%s.%s: expected a module name%s",
			    path, key,
			    list_ok ? " or a non-empty list of names" : "");
	*out = calloc(json_array_size(v), sizeof(char *));
	*n = 0;
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item) || json_string_length(item) == 0)
			return fail(err, errlen,
				    "%s.%s[%zu]: expected a module name", path,
				    key, i);
		(*out)[(*n)++] = strdup(json_string_value(item));
	}
	return 0;
}

static int get_object(json_t *root, const char *key, json_t **out, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(root, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return fail(err, errlen, "%s: expected an object", key);
	*out = v;
	return 0;
}

static void set_value(json_t *root, const char *section, const char *key,
		      json_t *value)
{
	json_t *obj = json_object_get(root, section);

	if (!json_is_object(obj)) {
		obj = json_object();
		json_object_set_new(root, section, obj);
	}
	json_object_set_new(obj, key, value);
}

/* Command-line flags win over the file.  -port is not the core's to
 * write: it is kept aside and lent to the first transport (kq_host.port),
 * which knows its own keys. */
static void apply_overrides(json_t *root, const struct kq__overrides *ov)
{
	if (!ov)
		return;
	if (ov->broker_id)
		set_value(root, "broker", "id", json_integer(ov->broker_id));
	if (ov->data_dir)
		set_value(root, "broker", "data_dir",
			  json_string(ov->data_dir));
	if (ov->raft_port)
		set_value(root, "cluster", "raft_port",
			  json_integer(ov->raft_port));
}

/* The keys of the core's sections, and of one peer. */
static const char *const broker_keys[] = {"id", "data_dir", "log_file", NULL};
static const char *const plugin_keys[] = {"transport", "partitioner", "storage",
					  "consensus", NULL};
static const char *const topic_keys[] = {"default_partitions",
					 "max_partitions",
					 "retention_ms",
					 "retention_bytes",
					 "retention_check_ms",
					 "request_timeout_ms",
					 NULL};
static const char *const cluster_keys[] = {
	"raft_port",	      "peers",
	"secret_file",	      "auth_timeout_ms",
	"max_connections",    "max_connections_per_address",
	"session_timeout_ms", NULL};
static const char *const limit_keys[] = {"max_topics",
					 "max_partitions_total",
					 "max_groups",
					 "max_subscriptions_per_connection",
					 "max_members_per_group",
					 NULL};
static const char *const group_keys[] = {"offsets_retention_ms", NULL};
static const char *const peer_keys[] = {"id", "host", "port", "raft_port",
					NULL};

const char *const *kq__config_section_keys(const char *section)
{
	static const struct {
		const char *name;
		const char *const *keys;
	} map[] = {
		{"broker", broker_keys}, {"plugins", plugin_keys},
		{"topics", topic_keys},	 {"cluster", cluster_keys},
		{"limits", limit_keys},	 {"groups", group_keys},
		{"peer", peer_keys},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (strcmp(map[i].name, section) == 0)
			return map[i].keys;
	return NULL;
}

static int parse_peers(json_t *cluster, struct kq__config *cfg, char *err,
		       size_t errlen)
{
	json_t *peers = json_object_get(cluster, "peers");
	json_t *p;
	size_t i, j;
	int64_t v;
	char path[64];

	if (!peers)
		return 0;
	if (!json_is_array(peers) || json_array_size(peers) == 0)
		return fail(err, errlen,
			    "cluster.peers: expected a non-empty array");
	cfg->peers = calloc(json_array_size(peers), sizeof(*cfg->peers));
	json_array_foreach(peers, i, p)
	{
		struct kq_peer_config *peer = &cfg->peers[i];
		char *host;

		/* Counted before it is filled, so that kq__config_free
		 * releases what a failing entry allocated. */
		cfg->npeers = i + 1;
		snprintf(path, sizeof(path), "cluster.peers[%zu]", i);
		if (!json_is_object(p))
			return fail(err, errlen, "%s: expected an object",
				    path);
		if (check_keys(p, path, peer_keys, err, errlen))
			return KQ_ECONFIG;
		if (!json_object_get(p, "id"))
			return fail(err, errlen, "%s.id: missing", path);
		if (get_int(p, path, "id", 1, 2147483647, 0, &v, err, errlen))
			return KQ_ECONFIG;
		peer->id = (int)v;
		if (get_string(p, path, "host", "127.0.0.1", &host, err,
			       errlen))
			return KQ_ECONFIG;
		peer->host = host;
		if (get_int(p, path, "port", 1, 65535, 8080, &v, err, errlen))
			return KQ_ECONFIG;
		peer->port = (int)v;
		if (get_int(p, path, "raft_port", 1, 65535, 7070, &v, err,
			    errlen))
			return KQ_ECONFIG;
		peer->raft_port = (int)v;
		for (j = 0; j < i; j++)
			if (cfg->peers[j].id == peer->id)
				return fail(err, errlen,
					    "%s.id: broker %d listed twice",
					    path, peer->id);
	}
	return 0;
}

static int validate(struct kq__config *cfg, char *err, size_t errlen)
{
	json_t *root = cfg->root, *broker, *plugins, *topics, *cluster, *limits,
	       *groups, *v;
	const char *key;
	int64_t n;
	size_t i;

	if (!json_is_object(root))
		return fail(err, errlen, "config: expected a JSON object");
	if (get_object(root, "broker", &broker, err, errlen) ||
	    get_object(root, "plugins", &plugins, err, errlen) ||
	    get_object(root, "topics", &topics, err, errlen) ||
	    get_object(root, "cluster", &cluster, err, errlen) ||
	    get_object(root, "limits", &limits, err, errlen) ||
	    get_object(root, "groups", &groups, err, errlen))
		return KQ_ECONFIG;

	if (broker && check_keys(broker, "broker", broker_keys, err, errlen))
		return KQ_ECONFIG;
	if (get_int(broker, "broker", "id", 1, 2147483647, 1, &n, err, errlen))
		return KQ_ECONFIG;
	cfg->broker_id = (int)n;
	if (get_string(broker, "broker", "data_dir", ".", &cfg->data_dir, err,
		       errlen) ||
	    get_string(broker, "broker", "log_file", NULL, &cfg->log_file, err,
		       errlen))
		return KQ_ECONFIG;

	if (plugins && check_keys(plugins, "plugins", plugin_keys, err, errlen))
		return KQ_ECONFIG;
	if (get_names(plugins, "plugins", "transport", 1, "telnet",
		      &cfg->transports, &cfg->ntransports, err, errlen) ||
	    get_names(plugins, "plugins", "partitioner", 1, "keyhash",
		      &cfg->partitioners, &cfg->npartitioners, err, errlen) ||
	    get_string(plugins, "plugins", "storage", "segment", &cfg->storage,
		       err, errlen) ||
	    get_string(plugins, "plugins", "consensus", "local",
		       &cfg->consensus, err, errlen))
		return KQ_ECONFIG;

	v = json_object_get(root, "plugin_path");
	if (v) {
		json_t *item;

		if (!json_is_array(v))
			return fail(
				err, errlen,
				"plugin_path: expected an array of folders");
		cfg->plugin_path =
			calloc(json_array_size(v) + 1, sizeof(char *));
		json_array_foreach(v, i, item)
		{
			if (!json_is_string(item) ||
			    json_string_length(item) == 0)
				return fail(err, errlen,
					    "plugin_path[%zu]: expected a "
					    "folder name",
					    i);
			cfg->plugin_path[cfg->nplugin_path++] =
				strdup(json_string_value(item));
		}
	}

	if (topics && check_keys(topics, "topics", topic_keys, err, errlen))
		return KQ_ECONFIG;
	if (get_int(topics, "topics", "max_partitions", 1, 100000, 1000, &n,
		    err, errlen))
		return KQ_ECONFIG;
	cfg->max_partitions = (uint32_t)n;
	if (get_int(topics, "topics", "default_partitions", 1,
		    cfg->max_partitions, 1, &n, err, errlen))
		return KQ_ECONFIG;
	cfg->default_partitions = (uint32_t)n;
	if (get_int(topics, "topics", "retention_ms", -1, INT64_MAX, -1,
		    &cfg->retention_ms, err, errlen) ||
	    get_int(topics, "topics", "retention_bytes", -1, INT64_MAX, -1,
		    &cfg->retention_bytes, err, errlen))
		return KQ_ECONFIG;
	if (get_int(topics, "topics", "retention_check_ms", 1, 86400000, 60000,
		    &n, err, errlen))
		return KQ_ECONFIG;
	cfg->retention_check_ms = (uint32_t)n;
	if (get_int(topics, "topics", "request_timeout_ms", 1, 3600000, 5000,
		    &n, err, errlen))
		return KQ_ECONFIG;
	cfg->request_timeout_ms = (uint32_t)n;

	if (limits && check_keys(limits, "limits", limit_keys, err, errlen))
		return KQ_ECONFIG;
	if (get_int(limits, "limits", "max_topics", 1, 1000000, 10000, &n, err,
		    errlen))
		return KQ_ECONFIG;
	cfg->max_topics = (uint32_t)n;
	if (get_int(limits, "limits", "max_partitions_total", 1, 10000000,
		    100000, &n, err, errlen))
		return KQ_ECONFIG;
	cfg->max_partitions_total = (uint32_t)n;
	if (get_int(limits, "limits", "max_groups", 1, 10000000, 100000, &n,
		    err, errlen))
		return KQ_ECONFIG;
	cfg->max_groups = (uint32_t)n;
	if (get_int(limits, "limits", "max_subscriptions_per_connection", 1,
		    1000000, 1000, &n, err, errlen))
		return KQ_ECONFIG;
	cfg->max_subs_per_connection = (uint32_t)n;
	if (get_int(limits, "limits", "max_members_per_group", 1, 1000000, 1000,
		    &n, err, errlen))
		return KQ_ECONFIG;
	cfg->max_members_per_group = (uint32_t)n;

	/* Kafka's offsets.retention.minutes: 7 days; up to 10 years. */
	if (groups && check_keys(groups, "groups", group_keys, err, errlen))
		return KQ_ECONFIG;
	if (get_int(groups, "groups", "offsets_retention_ms", 1000,
		    315360000000LL, 604800000, &cfg->offsets_retention_ms, err,
		    errlen))
		return KQ_ECONFIG;

	v = json_object_get(root, "log");
	cfg->log_level = KQ_LOG_INFO;
	if (v) {
		if (!json_is_string(v) ||
		    kq__log_parse_level(json_string_value(v)) < 0)
			return fail(err, errlen,
				    "log: expected one of error, warn, info, "
				    "debug");
		cfg->log_level = kq__log_parse_level(json_string_value(v));
	}

	cfg->session_timeout_ms = 10000;
	if (cluster) {
		if (check_keys(cluster, "cluster", cluster_keys, err, errlen))
			return KQ_ECONFIG;
		if (get_int(cluster, "cluster", "session_timeout_ms", 100,
			    3600000, 10000, &n, err, errlen))
			return KQ_ECONFIG;
		cfg->session_timeout_ms = (uint32_t)n;
		if (get_int(cluster, "cluster", "raft_port", 1, 65535, 7070, &n,
			    err, errlen))
			return KQ_ECONFIG;
		cfg->cluster.raft_port = (int)n;
		if (parse_peers(cluster, cfg, err, errlen))
			return KQ_ECONFIG;
		cfg->cluster.peers = cfg->peers;
		cfg->cluster.n_peers = cfg->npeers;
		if (get_string(cluster, "cluster", "secret_file", NULL,
			       &cfg->secret_file, err, errlen) ||
		    get_int(cluster, "cluster", "auth_timeout_ms", 10, 600000,
			    5000, &n, err, errlen))
			return KQ_ECONFIG;
		cfg->cluster.secret_file = cfg->secret_file;
		cfg->cluster.auth_timeout_ms = (unsigned)n;
		if (get_int(cluster, "cluster", "max_connections_per_address",
			    1, 65536, 16, &n, err, errlen))
			return KQ_ECONFIG;
		cfg->cluster.max_connections_per_address = (unsigned)n;
		/* Every peer that dials here holds one connection, two
		 * while it reconnects: a cap below the peers refuses them. */
		if (get_int(cluster, "cluster", "max_connections",
			    cfg->npeers ? (int64_t)cfg->npeers : 1, 65536, 128,
			    &n, err, errlen))
			return KQ_ECONFIG;
		cfg->cluster.max_connections = (unsigned)n;
		if (cfg->npeers) {
			for (i = 0; i < cfg->npeers; i++)
				if (cfg->peers[i].id == cfg->broker_id)
					break;
			if (i == cfg->npeers)
				return fail(err, errlen,
					    "cluster.peers: this broker (id "
					    "%d) is not listed",
					    cfg->broker_id);
			/* Without its own key, the port is the one the
			 * peers dial. */
			if (!json_object_get(cluster, "raft_port"))
				cfg->cluster.raft_port =
					cfg->peers[i].raft_port;
		}
	}

	/* Every other top-level key must be a section of a loaded module. */
	json_object_foreach(root, key, v)
	{
		int known = in_list(key, core_sections) ||
			    strcmp(key, cfg->storage) == 0 ||
			    strcmp(key, cfg->consensus) == 0;

		for (i = 0; !known && i < cfg->ntransports; i++)
			known = strcmp(key, cfg->transports[i]) == 0;
		for (i = 0; !known && i < cfg->npartitioners; i++)
			known = strcmp(key, cfg->partitioners[i]) == 0;
		if (!known)
			return fail(err, errlen,
				    "%s: unknown key (neither a core section "
				    "nor a module named in plugins)",
				    key);
		if (!in_list(key, core_sections) && !json_is_object(v))
			return fail(err, errlen, "%s: expected an object", key);
	}
	return 0;
}

int kq__config_parse(const char *text, const struct kq__overrides *ov,
		     struct kq__config *cfg, char *err, size_t errlen)
{
	json_error_t jerr;

	memset(cfg, 0, sizeof(*cfg));
	cfg->root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!cfg->root)
		return fail(err, errlen, "config: line %d column %d: %s",
			    jerr.line, jerr.column, jerr.text);
	if (json_is_object(cfg->root))
		apply_overrides(cfg->root, ov);
	if (validate(cfg, err, errlen) != 0) {
		kq__config_free(cfg);
		return KQ_ECONFIG;
	}
	if (ov)
		cfg->port = ov->port;
	return 0;
}

/* Checks that the secret file can be read and is long enough, so that a
 * mistake stops the broker like any other configuration error.  The bytes
 * read are wiped; only the module keeps the secret. */
static int check_secret_file(const char *path, char *err, size_t errlen)
{
	char buf[KQ_CLUSTER_SECRET_MAX + 3], why[256] = "";
	size_t len = 0;
	mode_t mode;

	if (kq_secret_read(path, buf, sizeof(buf), &len, &mode, why,
			   sizeof(why)) == 0) {
		const char *refused = kq_cluster_secret_refused(len);

		explicit_bzero(buf, sizeof(buf));
		snprintf(why, sizeof(why), "%s", refused ? refused : "");
	}
	if (why[0])
		return fail(err, errlen, "cluster.secret_file: %s: %s", path,
			    why);
	return 0;
}

int kq__config_load(const char *path, const struct kq__overrides *ov,
		    struct kq__config *cfg, char *err, size_t errlen)
{
	FILE *f;
	char *text;
	long size;
	int rv;

	if (!path)
		return kq__config_parse(kq__default_config, ov, cfg, err,
					errlen);
	f = fopen(path, "rb");
	if (!f)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return fail(err, errlen, "%s: cannot read", path);
	}
	text = malloc((size_t)size + 1);
	if (fread(text, 1, (size_t)size, f) != (size_t)size) {
		fclose(f);
		free(text);
		return fail(err, errlen, "%s: cannot read", path);
	}
	fclose(f);
	text[size] = '\0';
	rv = kq__config_parse(text, ov, cfg, err, errlen);
	if (rv == 0 && cfg->secret_file) {
		rv = check_secret_file(cfg->secret_file, err, errlen);
		if (rv != 0)
			kq__config_free(cfg);
	}
	if (rv != 0 && strncmp(err, "config:", 7) == 0) {
		char tmp[512];

		/* Name the file instead of the generic "config". */
		snprintf(tmp, sizeof(tmp), "%s%s", path, err + 6);
		snprintf(err, errlen, "%s", tmp);
	}
	free(text);
	return rv;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void kq__config_free(struct kq__config *cfg)
{
	size_t i;

	json_decref(cfg->root);
	free(cfg->data_dir);
	free(cfg->secret_file);
	free(cfg->log_file);
	free_names(cfg->transports, cfg->ntransports);
	free_names(cfg->partitioners, cfg->npartitioners);
	free_names(cfg->plugin_path, cfg->nplugin_path);
	free(cfg->storage);
	free(cfg->consensus);
	for (i = 0; i < cfg->npeers; i++)
		free((char *)cfg->peers[i].host);
	free(cfg->peers);
	memset(cfg, 0, sizeof(*cfg));
}

json_t *kq__config_section(const struct kq__config *cfg, const char *name)
{
	return json_object_get(cfg->root, name);
}
