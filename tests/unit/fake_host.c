#include "fake_host.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

const struct kq_plugin_desc *kq_plugin_entry(void);

char kq__test_logbuf[1024];

static void host_log(const struct kq_host *host, enum kq_log_level level,
		     const char *fmt, ...)
{
	size_t used = strlen(kq__test_logbuf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kq__test_logbuf + used, sizeof(kq__test_logbuf) - used, fmt,
		  ap);
	va_end(ap);
	used = strlen(kq__test_logbuf);
	snprintf(kq__test_logbuf + used, sizeof(kq__test_logbuf) - used, "\n");
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

	kq__test_logbuf[0] = '\0';
	return h;
}

const struct kq_partitioner_ops *kq__test_partitioner(const char *module)
{
	const struct kq_plugin_desc *d = kq_plugin_entry();

	assert_non_null(d);
	assert_int_equal(d->abi, KQ_PLUGIN_ABI);
	assert_int_equal(d->kind, KQ_PLUGIN_PARTITIONER);
	assert_string_equal(d->name, module);
	assert_non_null(d->version);
	assert_non_null(d->ops);
	return d->ops;
}
