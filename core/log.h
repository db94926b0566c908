/* Broker log: one line per event on stderr, with time and level. */
#ifndef KQ_CORE_LOG_H
#define KQ_CORE_LOG_H

#include <kafkaesque/plugin.h>

/* Lines above this level are dropped (default KQ_LOG_INFO). */
void kq__log_set_level(enum kq_log_level level);

/* Sends the log (the process's stderr) to `path`, appending; called again
 * with the same path after a rotation, it opens the file anew.  Returns 0
 * or a negative errno; on failure stderr is left as it was. */
int kq__log_file_open(const char *path);

/* Parses "error", "warn", "info" or "debug"; -1 when unknown. */
int kq__log_parse_level(const char *name);

/* Logs one line; `who` names the component ("core", a module name). */
void kq__log(enum kq_log_level level, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void kq__logv(enum kq_log_level level, const char *who, const char *fmt,
	      va_list ap);

#define kq__error(...) kq__log(KQ_LOG_ERROR, "core", __VA_ARGS__)
#define kq__warn(...)  kq__log(KQ_LOG_WARN, "core", __VA_ARGS__)
#define kq__info(...)  kq__log(KQ_LOG_INFO, "core", __VA_ARGS__)
#define kq__debug(...) kq__log(KQ_LOG_DEBUG, "core", __VA_ARGS__)

#endif /* KQ_CORE_LOG_H */
