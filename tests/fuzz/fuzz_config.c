/* libFuzzer target for the broker's configuration: the core's parser and
 * validator, then the config sections of the modules it would load
 * (telnet, segment, local, keyhash, roundrobin).
 *
 * An input that starts with '{' (or white space) is taken as JSON text, so
 * real configuration files are good seeds.  Any other input is a recipe:
 * its bytes choose sections, keys and values from the real key sets (and
 * unknown keys, wrong types, out-of-range values, nesting), the document
 * is built with jansson and its text parsed, with command-line overrides
 * taken from the input too.  Random bytes alone almost never make JSON
 * that reaches past the parser's first check; recipes do.
 *
 * Invariants: no crash or leak; a configuration that loads holds values
 * in their documented ranges; a refused one says why; parsing the same
 * text twice gives the same answer. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/kafkaesque.h>

#include "../../plugins/raft/keys.h"
#include "../../plugins/segment/module.h"
#include "../../plugins/telnet/telnet.h"
#include "../fake_host.h"
#include "conf.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

const struct kq_plugin_desc *kq__fuzz_telnet_entry(void);
const struct kq_plugin_desc *kq__fuzz_local_entry(void);
const struct kq_plugin_desc *kq__fuzz_keyhash_entry(void);
const struct kq_plugin_desc *kq__fuzz_roundrobin_entry(void);

/* ------------------------------------------------------------ recipe */

/* The input as a source of choices; zeros once it runs out. */
struct src {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct src *s)
{
	if (s->n == 0)
		return 0;
	s->n--;
	return *s->p++;
}

static unsigned pick(struct src *s, unsigned n)
{
	return n ? byte(s) % n : 0;
}

static const char *const sections[] = {
	"broker",      "plugins",    "topics", "cluster", "limits", "groups",
	"plugin_path", "log",	     "telnet", "segment", "local",  "raft",
	"keyhash",     "roundrobin", "nosuch", "",
};

/* Known keys of the modules' sections (the core's come from
 * kq__config_section_keys()), then a few that are not. */
extern const char *const kq__local_conf_keys[];
static const char *const no_keys[] = {NULL};
static const char *const stray_keys[] = {"Id",	  "port ", "x",	 "",
					 "peers", "host",  "id", NULL};

static const char *const words[] = {
	"telnet",     "segment",   "local",  "raft",	 "keyhash",
	"roundrobin", "nosuch",	   "",	     "always",	 "interval",
	"never",      "error",	   "warn",   "info",	 "debug",
	"127.0.0.1",  "localhost", ".",	     "/tmp/kq",	 "::1",
	"a/b",	      "always ",   "Telnet", "\xc3\xa9", "0",
};

static const json_int_t ints[] = {
	0,
	1,
	-1,
	2,
	3,
	4095,
	4096,
	7070,
	8080,
	65535,
	65536,
	100000,
	100001,
	86400000,
	86400001,
	3600000,
	3600001,
	1 << 30,
	(1 << 30) + 1,
	INT32_MAX,
	(json_int_t)INT32_MAX + 1,
	UINT32_MAX,
	(json_int_t)UINT32_MAX + 1,
	INT64_MAX,
	INT64_MIN,
	1000000000,
	1000000001,
};

static size_t count(const char *const *list)
{
	size_t n = 0;

	while (list[n])
		n++;
	return n;
}

static json_t *value(struct src *s, int depth);

static json_t *names(struct src *s)
{
	json_t *a = json_array();
	unsigned n = pick(s, 4);

	for (unsigned i = 0; i < n; i++)
		json_array_append_new(
			a, pick(s, 8) ? json_string(words[pick(s, 7)])
				      : value(s, 3));
	return a;
}

/* Any JSON value, leaning towards the ones configurations hold. */
static json_t *value(struct src *s, int depth)
{
	switch (pick(s, depth > 2 ? 6 : 9)) {
	case 0:
		return json_integer(
			ints[pick(s, sizeof(ints) / sizeof(*ints))]);
	case 1: return json_integer((json_int_t)byte(s) - 64);
	case 2:
		return json_string(
			words[pick(s, sizeof(words) / sizeof(*words))]);
	case 3: return pick(s, 2) ? json_true() : json_false();
	case 4: return json_null();
	case 5: return json_real((double)byte(s) / 4);
	case 6: return names(s);
	case 7: {
		json_t *o = json_object();
		unsigned n = pick(s, 3);

		for (unsigned i = 0; i < n; i++)
			json_object_set_new(o, stray_keys[pick(s, 7)],
					    value(s, depth + 1));
		return o;
	}
	default: {
		json_t *a = json_array();
		unsigned n = pick(s, 3);

		for (unsigned i = 0; i < n; i++)
			json_array_append_new(a, value(s, depth + 1));
		return a;
	}
	}
}

/* A value for `key`: mostly of the right kind, sometimes anything. */
static json_t *value_for(struct src *s, const char *key, int depth)
{
	unsigned how = pick(s, 8);

	if (how == 0)
		return value(s, depth);
	if (strcmp(key, "peers") == 0) {
		json_t *a = json_array();
		unsigned n = pick(s, 5);

		const char *const *peer_keys = kq__config_section_keys("peer");

		for (unsigned i = 0; i < n; i++) {
			json_t *p = json_object();
			unsigned k = pick(s, 6);

			for (unsigned j = 0; j < k; j++) {
				const char *pk =
					peer_keys[pick(s, count(peer_keys))];

				json_object_set_new(
					p, pk, value_for(s, pk, depth + 1));
			}
			json_array_append_new(a, p);
		}
		return a;
	}
	if (strcmp(key, "transport") == 0 || strcmp(key, "partitioner") == 0 ||
	    strcmp(key, "storage") == 0 || strcmp(key, "consensus") == 0 ||
	    strcmp(key, "plugin_path") == 0) {
		if (how < 4)
			return json_string(words[pick(s, 8)]);
		return names(s);
	}
	if (strcmp(key, "host") == 0 || strcmp(key, "data_dir") == 0 ||
	    strcmp(key, "fsync") == 0 || strcmp(key, "log") == 0)
		return json_string(
			words[pick(s, sizeof(words) / sizeof(*words))]);
	if (strcmp(key, "pre_vote") == 0 || strcmp(key, "check_quorum") == 0)
		return pick(s, 2) ? json_true() : json_false();
	if (how < 3)
		return json_integer((json_int_t)byte(s) * (1 + byte(s)));
	return json_integer(ints[pick(s, sizeof(ints) / sizeof(*ints))]);
}

static const char *const *keys_of(const char *section)
{
	static const struct {
		const char *name;
		const char *const *keys;
	} map[] = {
		{"telnet", kq__tn_config_keys}, {"segment", kq__seg_conf_keys},
		{"local", kq__local_conf_keys}, {"raft", kq__raft_conf_keys},
		{"keyhash", no_keys},		{"roundrobin", no_keys},
	};

	const char *const *core = kq__config_section_keys(section);

	if (core)
		return core;
	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (strcmp(map[i].name, section) == 0)
			return map[i].keys;
	return no_keys;
}

static json_t *section(struct src *s, const char *name)
{
	const char *const *keys = keys_of(name);
	size_t nkeys = count(keys);
	json_t *o;
	unsigned n;

	if (strcmp(name, "plugin_path") == 0 || strcmp(name, "log") == 0)
		return value_for(s, name, 0);
	if (pick(s, 16) == 0)
		return value(s, 0); /* not even an object */
	o = json_object();
	n = pick(s, (unsigned)nkeys + 3);
	for (unsigned i = 0; i < n; i++) {
		const char *key = nkeys && pick(s, 8)
					  ? keys[pick(s, (unsigned)nkeys)]
					  : stray_keys[pick(s, 7)];

		json_object_set_new(o, key, value_for(s, key, 1));
	}
	return o;
}

/* Builds a document from the recipe; returns its text (caller frees). */
static char *build(struct src *s, struct kq__overrides *ov)
{
	json_t *root = json_object();
	unsigned n = 1 + pick(s, 8);
	char *text;

	for (unsigned i = 0; i < n; i++) {
		const char *name =
			sections[pick(s, sizeof(sections) / sizeof(*sections))];

		json_object_set_new(root, name, section(s, name));
	}
	if (pick(s, 4) == 0) {
		static const char *const dirs[] = {NULL, ".", "/tmp/kq", ""};

		ov->broker_id = (int)pick(s, 5);
		ov->port = (int)pick(s, 3) * 8081;
		ov->raft_port = (int)pick(s, 3) * 7071;
		ov->data_dir = dirs[pick(s, 4)];
	}
	text = json_dumps(root,
			  JSON_COMPACT | (pick(s, 2) ? JSON_INDENT(1) : 0));
	json_decref(root);
	return text;
}

/* ------------------------------------------------------------ checks */

static void check_ranges(const struct kq__config *c)
{
	if (c->broker_id < 1 || !c->data_dir || c->ntransports < 1 ||
	    c->npartitioners < 1 || !c->storage || !c->consensus ||
	    c->default_partitions < 1 ||
	    c->default_partitions > c->max_partitions ||
	    c->max_partitions > 100000 || c->retention_ms < -1 ||
	    c->retention_bytes < -1 || c->retention_check_ms < 1 ||
	    c->request_timeout_ms < 1 || c->log_level < KQ_LOG_ERROR ||
	    c->log_level > KQ_LOG_DEBUG || c->cluster.raft_port < 0 ||
	    c->cluster.raft_port > 65535)
		abort();
	/* What the consensus module is lent: every field checked. */
	if (c->cluster.raft_port &&
	    (c->cluster.peers != c->peers || c->cluster.n_peers != c->npeers ||
	     c->cluster.secret_file != c->secret_file ||
	     c->cluster.auth_timeout_ms < 10 ||
	     c->cluster.auth_timeout_ms > 600000 ||
	     c->cluster.max_connections < 1 ||
	     c->cluster.max_connections < c->npeers ||
	     c->cluster.max_connections_per_address < 1))
		abort();
	for (size_t i = 0; i < c->npeers; i++) {
		if (c->peers[i].id < 1 || !c->peers[i].host ||
		    c->peers[i].port < 1 || c->peers[i].port > 65535 ||
		    c->peers[i].raft_port < 1 || c->peers[i].raft_port > 65535)
			abort();
		for (size_t j = 0; j < i; j++)
			if (c->peers[j].id == c->peers[i].id)
				abort();
	}
}

/* Runs a module's init over its section, as the broker would: the one
 * fake host, filled as the broker fills it for the module's kind. */
static void module(const struct kq__config *c, const char *name,
		   const struct kq_plugin_desc *d)
{
	static uv_loop_t loop; /* never run: init only reads config */
	static const struct kq_broker_api api;
	const struct kq_module_ops *ops = d->ops;
	struct kq_host host = kq__test_host(name, kq__config_section(c, name));
	void *state = NULL;

	host.loop = &loop;
	host.broker_id = c->broker_id;
	host.data_dir = c->data_dir;
	if (d->kind == KQ_PLUGIN_TRANSPORT)
		host.api = &api;
	if (d->kind == KQ_PLUGIN_CONSENSUS && c->cluster.raft_port)
		host.cluster = &c->cluster;
	if (ops->init(&host, &state) == 0)
		ops->fini(state);
}

static void modules(const struct kq__config *c)
{
	struct kq__seg_conf sc;
	struct kq_host host =
		kq__test_host("segment", kq__config_section(c, "segment"));

	module(c, "telnet", kq__fuzz_telnet_entry());
	module(c, "local", kq__fuzz_local_entry());
	module(c, "keyhash", kq__fuzz_keyhash_entry());
	module(c, "roundrobin", kq__fuzz_roundrobin_entry());
	if (kq__seg_conf_parse(&host, &sc) == 0 &&
	    (sc.segment_bytes < 4096 || sc.fsync_interval_ms < 1 ||
	     sc.index_interval < 1))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kq__overrides ov = {0, 0, 0, NULL};
	struct kq__config cfg;
	char err[512], err2[512];
	char *text;
	int rv, rv2;

	kq__log_set_level((enum kq_log_level) - 1);
	if (size > 0 && (data[0] == '{' || data[0] == ' ' || data[0] == '\n' ||
			 data[0] == '\t')) {
		text = malloc(size + 1);
		memcpy(text, data, size);
		text[size] = '\0';
	} else {
		struct src s = {data, size};

		text = build(&s, &ov);
	}
	if (!text)
		return 0;
	err[0] = err2[0] = '\0';
	rv = kq__config_parse(text, &ov, &cfg, err, sizeof(err));
	if (rv == 0) {
		check_ranges(&cfg);
		modules(&cfg);
		kq__config_free(&cfg);
	} else if (err[0] == '\0') {
		abort(); /* a refusal always says why */
	}
	rv2 = kq__config_parse(text, &ov, &cfg, err2, sizeof(err2));
	if (rv2 == 0)
		kq__config_free(&cfg);
	if (rv != rv2 || (rv != 0 && strcmp(err, err2) != 0))
		abort();
	free(text);
	return 0;
}
