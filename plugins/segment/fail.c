/* A log's first failure: kept with its reason from any thread, and
 * reported on the loop thread.  A failed log refuses writes until it is
 * reopened. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "module.h"

void kq__seg_log_fail(struct kq_log *log, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&log->mu);
	if (log->failed == 0) {
		va_start(ap, fmt);
		vsnprintf(log->reason, sizeof(log->reason), fmt, ap);
		va_end(ap);
		log->reason_pending = true;
		__atomic_store_n(&log->failed, err, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&log->mu);
}

int kq__seg_log_failed(struct kq_log *log)
{
	return __atomic_load_n(&log->failed, __ATOMIC_ACQUIRE);
}

void kq__seg_log_report(struct kq_log *log)
{
	char reason[sizeof(log->reason)];
	bool pending;

	/* sync() fails on a worker thread; the host log is the loop's. */
	if (kq__seg_log_failed(log) == 0)
		return;
	pthread_mutex_lock(&log->mu);
	pending = log->reason_pending;
	log->reason_pending = false;
	memcpy(reason, log->reason, sizeof(reason));
	pthread_mutex_unlock(&log->mu);
	if (pending)
		log->host->log(log->host, KQ_LOG_ERROR,
			       "%s: log failed, refusing writes: %s", log->dir,
			       reason);
}
