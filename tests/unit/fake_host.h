/* A host table for unit tests of partitioner modules: the module's log
 * lines are gathered in kq__test_logbuf for the test to read. */
#ifndef KQ_TEST_FAKE_HOST_H
#define KQ_TEST_FAKE_HOST_H

#include <kafkaesque/partitioner.h>

/* Every line logged since the last kq__test_host() call, '\n'-ended. */
extern char kq__test_logbuf[1024];

/* A host for module `module` with `config` (borrowed); clears the log. */
struct kq_host kq__test_host(const char *module, const json_t *config);

/* The module's partitioner ops, after checking its descriptor (ABI, kind,
 * name `module`, version). */
const struct kq_partitioner_ops *kq__test_partitioner(const char *module);

#endif /* KQ_TEST_FAKE_HOST_H */
