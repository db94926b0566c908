/* The one fake host of the tests: the host table a module gets from the
 * broker, with the broker's allocator and a log gathered in memory for
 * the test to read.  Tests that need more (a loop, the broker API, the
 * store) fill those fields of the table it returns; none makes its own.
 * Its log may be called from any thread, as the host table promises. */
#ifndef KQ_TEST_FAKE_HOST_H
#define KQ_TEST_FAKE_HOST_H

#include <kafkaesque/plugin.h>

/* Every line logged since the last kq__test_log_clear(), each ended by
 * '\n' (lines past the buffer's end are cut, and still counted). */
extern char kq__test_logbuf[8192];
/* The last line logged, without its '\n'. */
extern char kq__test_lastlog[512];
/* How many lines were logged since the start of the process. */
extern int kq__test_nlogs;

/* A host for module `module` over `config` (borrowed, NULL for none):
 * abi, module, broker id 1, config, log and allocator; the rest zero.
 * Clears the log.  Set KQ_TEST_VERBOSE to see the lines on stderr. */
struct kq_host kq__test_host(const char *module, const json_t *config);

/* Empties kq__test_logbuf and kq__test_lastlog. */
void kq__test_log_clear(void);

/* The ops table of the module linked into the test, or NULL when its
 * descriptor is not a `kind` module named `module` built for this ABI
 * with an ops table of `ops_size` bytes. */
const void *kq__test_module_ops(enum kq_plugin_kind kind, const char *module,
				size_t ops_size);

struct kq_partitioner_ops;
/* The ops of the partitioner `module` linked into the test; aborts when
 * it is not (kq__test_module_ops). */
const struct kq_partitioner_ops *kq__test_partitioner(const char *module);

#endif /* KQ_TEST_FAKE_HOST_H */
