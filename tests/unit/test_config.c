/* Unit tests of the configuration parser: defaults, overrides from the
 * command line, and one precise error line per mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/error.h>

#include "conf.h"

static void expect_error(const char *json, const char *message)
{
	struct kq__config cfg;
	char err[512] = "";

	assert_int_equal(kq__config_parse(json, NULL, &cfg, err, sizeof(err)),
			 KQ_ECONFIG);
	assert_string_equal(err, message);
}

static void test_defaults(void **state)
{
	struct kq__config cfg;
	char err[512];

	assert_int_equal(kq__config_parse(kq__default_config, NULL, &cfg, err,
					  sizeof(err)),
			 0);
	assert_int_equal(cfg.broker_id, 1);
	assert_string_equal(cfg.data_dir, ".");
	assert_null(cfg.log_file);
	assert_int_equal(cfg.ntransports, 1);
	assert_string_equal(cfg.transports[0], "telnet");
	assert_int_equal(cfg.npartitioners, 2);
	assert_string_equal(cfg.partitioners[0], "keyhash");
	assert_string_equal(cfg.partitioners[1], "roundrobin");
	assert_string_equal(cfg.storage, "segment");
	assert_string_equal(cfg.consensus, "local");
	assert_int_equal(cfg.default_partitions, 1);
	assert_int_equal(cfg.max_partitions, 1000);
	assert_int_equal(cfg.retention_ms, -1);
	assert_int_equal(cfg.retention_bytes, -1);
	assert_int_equal(cfg.request_timeout_ms, 5000);
	assert_int_equal(cfg.max_topics, 10000);
	assert_int_equal(cfg.max_partitions_total, 100000);
	assert_int_equal(cfg.max_groups, 100000);
	assert_int_equal(cfg.max_subs_per_connection, 1000);
	assert_int_equal(cfg.max_members_per_group, 1000);
	assert_int_equal(cfg.offsets_retention_ms, 604800000);
	assert_int_equal(cfg.npeers, 0);
	/* telnet's own defaults (127.0.0.1:8080) apply: the core names no
	 * transport's key. */
	assert_null(kq__config_section(&cfg, "telnet"));
	assert_int_equal(cfg.port, 0);
	kq__config_free(&cfg);
}

static void test_overrides(void **state)
{
	struct kq__overrides ov = {.broker_id = 7,
				   .port = 9999,
				   .raft_port = 7777,
				   .data_dir = "/var/lib/kq"};
	struct kq__config cfg;
	char err[512];

	assert_int_equal(kq__config_parse("{\"plugins\": {\"transport\": "
					  "[\"telnet\"]}}",
					  &ov, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.broker_id, 7);
	assert_string_equal(cfg.data_dir, "/var/lib/kq");
	assert_int_equal(cfg.cluster.raft_port, 7777);
	/* -port is lent to the first transport, not written into its
	 * section: the core does not know a transport's keys. */
	assert_int_equal(cfg.port, 9999);
	assert_null(kq__config_section(&cfg, "telnet"));
	kq__config_free(&cfg);
}

static void test_cluster(void **state)
{
	struct kq__config cfg;
	char err[512];

	assert_int_equal(
		kq__config_parse(
			"{\"broker\": {\"id\": 2}, \"cluster\": {\"peers\": ["
			"{\"id\": 1, \"port\": 8080, \"raft_port\": 7070},"
			"{\"id\": 2, \"host\": \"127.0.0.2\", \"port\": "
			"8081}]}}",
			NULL, &cfg, err, sizeof(err)),
		0);
	assert_int_equal(cfg.npeers, 2);
	assert_string_equal(cfg.peers[0].host, "127.0.0.1");
	assert_int_equal(cfg.peers[1].port, 8081);
	assert_int_equal(cfg.peers[1].raft_port, 7070);
	assert_int_equal(cfg.cluster.raft_port, 7070);
	kq__config_free(&cfg);
}

/* groups.offsets_retention_ms at both ends of its range. */
static void test_offsets_retention(void **state)
{
	struct kq__config cfg;
	char err[512];

	assert_int_equal(kq__config_parse("{\"groups\": "
					  "{\"offsets_retention_ms\": 1000}}",
					  NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.offsets_retention_ms, 1000);
	kq__config_free(&cfg);
	assert_int_equal(kq__config_parse("{\"groups\": "
					  "{\"offsets_retention_ms\": "
					  "315360000000}}",
					  NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.offsets_retention_ms, 315360000000LL);
	kq__config_free(&cfg);
}

/* The consensus module is lent the cluster section checked, with every
 * default applied: it parses nothing again.  Without its own raft_port,
 * a broker listens where its peers dial it. */
static void test_cluster_lent(void **state)
{
	struct kq__config cfg;
	char err[512];

	(void)state;
	assert_int_equal(
		kq__config_parse(
			"{\"broker\": {\"id\": 2}, \"cluster\": {\"peers\": ["
			"{\"id\": 1, \"raft_port\": 7071},"
			"{\"id\": 2, \"host\": \"127.0.0.2\", \"raft_port\": "
			"7072}]}}",
			NULL, &cfg, err, sizeof(err)),
		0);
	assert_int_equal(cfg.cluster.raft_port, 7072);
	assert_int_equal(cfg.cluster.n_peers, 2);
	assert_ptr_equal(cfg.cluster.peers, cfg.peers);
	assert_string_equal(cfg.cluster.peers[1].host, "127.0.0.2");
	assert_int_equal(cfg.cluster.peers[0].raft_port, 7071);
	assert_null(cfg.cluster.secret_file);
	assert_int_equal(cfg.cluster.auth_timeout_ms, 5000);
	assert_int_equal(cfg.cluster.max_connections, 128);
	assert_int_equal(cfg.cluster.max_connections_per_address, 16);
	kq__config_free(&cfg);

	assert_int_equal(
		kq__config_parse(
			"{\"cluster\": {\"raft_port\": 7999, "
			"\"auth_timeout_ms\": 250, "
			"\"max_connections\": 9, "
			"\"max_connections_per_address\": 3, "
			"\"peers\": [{\"id\": 1, \"raft_port\": 7071}]}}",
			NULL, &cfg, err, sizeof(err)),
		0);
	assert_int_equal(cfg.cluster.raft_port, 7999);
	assert_int_equal(cfg.cluster.auth_timeout_ms, 250);
	assert_int_equal(cfg.cluster.max_connections, 9);
	assert_int_equal(cfg.cluster.max_connections_per_address, 3);
	kq__config_free(&cfg);

	/* Standalone: no section, nothing lent. */
	assert_int_equal(kq__config_parse("{}", NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.cluster.raft_port, 0);
	assert_int_equal(cfg.cluster.n_peers, 0);
	kq__config_free(&cfg);
}

static void test_errors(void **state)
{
	expect_error("[1, 2]", "config: expected a JSON object");
	expect_error("{\"broker\": ", "config: line 1 column 11: unexpected "
				      "token near end of file");
	expect_error("{\"a\": 1, \"a\": 2}",
		     "config: line 1 column 12: duplicate object key near "
		     "'\"a\"'");
	expect_error("{\"brokr\": {}}", "brokr: unknown key (neither a core "
					"section nor a module named in "
					"plugins)");
	expect_error("{\"broker\": []}", "broker: expected an object");
	expect_error("{\"broker\": {\"id\": 0}}",
		     "broker.id: expected an integer 1..2147483647");
	expect_error("{\"broker\": {\"id\": 1, \"dir\": \".\"}}",
		     "broker.dir: unknown key");
	expect_error("{\"broker\": {\"data_dir\": \"\"}}",
		     "broker.data_dir: expected a non-empty string");
	expect_error("{\"broker\": {\"log_file\": 1}}",
		     "broker.log_file: expected a non-empty string");
	expect_error("{\"plugins\": {\"storage\": [\"segment\"]}}",
		     "plugins.storage: expected a non-empty string");
	expect_error("{\"plugins\": {\"partitioner\": []}}",
		     "plugins.partitioner: expected a module name or a "
		     "non-empty list of names");
	expect_error("{\"plugins\": {\"transport\": [\"telnet\", 3]}}",
		     "plugins.transport[1]: expected a module name");
	expect_error("{\"plugin_path\": \"/usr/lib\"}",
		     "plugin_path: expected an array of folders");
	expect_error("{\"topics\": {\"max_partitions\": 10, "
		     "\"default_partitions\": 11}}",
		     "topics.default_partitions: expected an integer 1..10");
	expect_error("{\"topics\": {\"retention_ms\": -2}}",
		     "topics.retention_ms: expected an integer "
		     "-1..9223372036854775807");
	expect_error("{\"limits\": {\"max_groups\": 0}}",
		     "limits.max_groups: expected an integer 1..10000000");
	expect_error("{\"limits\": {\"max_sockets\": 3}}",
		     "limits.max_sockets: unknown key");
	expect_error("{\"groups\": {\"offsets_retention_ms\": 999}}",
		     "groups.offsets_retention_ms: expected an integer "
		     "1000..315360000000");
	expect_error("{\"groups\": {\"offsets_retention_ms\": "
		     "315360000001}}",
		     "groups.offsets_retention_ms: expected an integer "
		     "1000..315360000000");
	expect_error("{\"groups\": {\"retention_ms\": 1000}}",
		     "groups.retention_ms: unknown key");
	expect_error("{\"groups\": 7}", "groups: expected an object");
	expect_error("{\"log\": \"loud\"}",
		     "log: expected one of error, warn, info, debug");
	expect_error("{\"telnet\": 8080}", "telnet: expected an object");
	expect_error("{\"cluster\": {\"peers\": []}}",
		     "cluster.peers: expected a non-empty array");
	expect_error("{\"cluster\": {\"peers\": [{\"id\": 1}, {\"id\": 1}]}}",
		     "cluster.peers[1].id: broker 1 listed twice");
	expect_error("{\"cluster\": {\"peers\": [{\"id\": 2}]}}",
		     "cluster.peers: this broker (id 1) is not listed");
	expect_error("{\"cluster\": {\"peers\": [{\"port\": 1}]}}",
		     "cluster.peers[0].id: missing");
	expect_error("{\"cluster\": {\"peers\": [{\"id\": 1, \"port\": "
		     "70000}]}}",
		     "cluster.peers[0].port: expected an integer 1..65535");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_cluster),
		cmocka_unit_test(test_offsets_retention),
		cmocka_unit_test(test_cluster_lent),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
