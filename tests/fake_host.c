#include "fake_host.h"

#include <kafkaesque/partitioner.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weak: a test without a module linked in uses the host alone. */
const struct kq_plugin_desc *kq_plugin_entry(void) __attribute__((weak));

char kq__test_logbuf[8192];
char kq__test_lastlog[512];
int kq__test_nlogs;

/* Storage logs from its sync workers too. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void host_log(const struct kq_host *host, enum kq_log_level level,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void host_log(const struct kq_host *host, enum kq_log_level level,
		     const char *fmt, ...)
{
	size_t used;
	va_list ap;

	pthread_mutex_lock(&log_lock);
	used = strlen(kq__test_logbuf);
	va_start(ap, fmt);
	vsnprintf(kq__test_lastlog, sizeof(kq__test_lastlog), fmt, ap);
	va_end(ap);
	snprintf(kq__test_logbuf + used, sizeof(kq__test_logbuf) - used, "%s\n",
		 kq__test_lastlog);
	kq__test_nlogs++;
	if (getenv("KQ_TEST_VERBOSE") != NULL)
		fprintf(stderr, "[%s %d] %s\n", host->module, (int)level,
			kq__test_lastlog);
	pthread_mutex_unlock(&log_lock);
}

void kq__test_log_clear(void)
{
	kq__test_logbuf[0] = '\0';
	kq__test_lastlog[0] = '\0';
}

struct kq_host kq__test_host(const char *module, const json_t *config)
{
	struct kq_host h = {
		.abi = KQ_PLUGIN_ABI,
		.module = module,
		.broker_id = 1,
		.config = config,
		.log = host_log,
		.malloc = malloc,
		.realloc = realloc,
		.free = free,
	};

	kq__test_log_clear();
	return h;
}

const void *kq__test_module_ops(enum kq_plugin_kind kind, const char *module,
				size_t ops_size)
{
	const struct kq_plugin_desc *d =
		kq_plugin_entry ? kq_plugin_entry() : NULL;
	const struct kq_module_ops *ops;

	if (!d || d->abi != KQ_PLUGIN_ABI || d->size != sizeof(*d) ||
	    d->kind != kind || !d->name || strcmp(d->name, module) != 0 ||
	    !d->version || !d->ops)
		return NULL;
	ops = d->ops;
	return ops->size == ops_size ? d->ops : NULL;
}

const struct kq_partitioner_ops *kq__test_partitioner(const char *module)
{
	const struct kq_partitioner_ops *o =
		kq__test_module_ops(KQ_PLUGIN_PARTITIONER, module, sizeof(*o));

	if (!o) {
		fprintf(stderr, "%s: not the partitioner linked in\n", module);
		abort();
	}
	return o;
}
