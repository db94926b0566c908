/* Helpers the test_segment files share, defined in test_segment.c. */
#ifndef KQ_TEST_SEGMENT_H
#define KQ_TEST_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include <kafkaesque/storage.h>

/* The module's ops, set up by test_segment.c's main. */
extern const struct kq_storage_ops *t_ops;

/* A host whose config is `config_json` (NULL: none). */
void t_host_setup(const char *config_json);
/* The module initialised over `config_json`; t_module_free() it. */
void *t_module(const char *config_json);
void t_module_free(void *mod);
/* A fresh folder under /tmp, its path in buf (64 bytes at least). */
void t_mkdtemp(char *buf);
void t_rmrf(const char *dir);
/* Opens a log that keeps everything; fails the test on error. */
struct kq_log *t_open(void *mod, const char *dir, uint64_t segment_bytes);
/* Record `offset` with its value in storage (at least 64 bytes). */
void t_rec(struct kq_record *r, uint64_t offset, uint8_t *storage);
/* Appends n records from offset `from`, `step` apart. */
int t_append(struct kq_log *log, uint64_t from, size_t n, uint64_t step);
/* Reads from `from` to the end, checking each record; the offsets in
 * offs (max of them), the read's status in *rv and where it stopped in
 * *next.  Returns the count. */
size_t t_read_all(struct kq_log *log, uint64_t from, uint64_t *offs, size_t max,
		  int *rv, uint64_t *next);
size_t t_count_files(const char *dir, const char *ext);
uint64_t t_file_size(const char *dir, const char *name);
void t_copy_file(const char *from, const char *to);

/* The other files' groups of tests. */
int run_recovery_tests(void);
int run_fault_tests(void);

#endif /* KQ_TEST_SEGMENT_H */
