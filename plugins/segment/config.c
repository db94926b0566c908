/* The module's configuration section. */
#include <limits.h>
#include <string.h>

#include "log.h"

static int bad(const struct kq_host *host, const char *key, const char *what)
{
	host->log(host, KQ_LOG_ERROR, "segment.%s: %s", key, what);
	return KQ_ECONFIG;
}

/* Reads an integer in [min, max] into *out; returns 0 or KQ_ECONFIG. */
static int integer(const struct kq_host *host, const char *key,
		   const json_t *val, json_int_t min, json_int_t max,
		   const char *what, json_int_t *out)
{
	if (!json_is_integer(val) || json_integer_value(val) < min ||
	    json_integer_value(val) > max)
		return bad(host, key, what);
	*out = json_integer_value(val);
	return 0;
}

int kq__seg_conf_parse(const struct kq_host *host, const json_t *cfg,
		       struct kq__seg_conf *conf)
{
	json_int_t v;
	int rv = 0;

	conf->segment_bytes = 1073741824;
	conf->fsync = KQ_SYNC_ALWAYS;
	conf->fsync_interval_ms = 1000;
	conf->retention_ms = -1;
	conf->retention_bytes = -1;
	conf->index_interval = 4096;
	conf->open_files = 1000;
	if (cfg == NULL)
		return 0;
	if (!json_is_object(cfg)) {
		host->log(host, KQ_LOG_ERROR, "segment: expected an object");
		return KQ_ECONFIG;
	}
	for (void *it = json_object_iter((json_t *)cfg); it != NULL;
	     it = json_object_iter_next((json_t *)cfg, it)) {
		const char *key = json_object_iter_key(it);
		json_t *val = json_object_iter_value(it);

		if (strcmp(key, "segment_bytes") == 0) {
			rv = integer(host, key, val, 4096, LLONG_MAX,
				     "expected an integer of at least 4096",
				     &v);
			conf->segment_bytes = (uint64_t)v;
		} else if (strcmp(key, "fsync") == 0) {
			const char *s = json_string_value(val);

			if (s != NULL && strcmp(s, "always") == 0)
				conf->fsync = KQ_SYNC_ALWAYS;
			else if (s != NULL && strcmp(s, "interval") == 0)
				conf->fsync = KQ_SYNC_INTERVAL;
			else if (s != NULL && strcmp(s, "never") == 0)
				conf->fsync = KQ_SYNC_NEVER;
			else
				rv = bad(host, key,
					 "expected one of always, interval, "
					 "never");
		} else if (strcmp(key, "fsync_interval_ms") == 0) {
			rv = integer(host, key, val, 1, UINT32_MAX,
				     "expected an integer from 1 to "
				     "4294967295",
				     &v);
			conf->fsync_interval_ms = (uint32_t)v;
		} else if (strcmp(key, "index_interval_bytes") == 0) {
			rv = integer(host, key, val, 1, 1 << 30,
				     "expected an integer from 1 to "
				     "1073741824",
				     &v);
			conf->index_interval = (uint64_t)v;
		} else if (strcmp(key, "open_files") == 0) {
			rv = integer(host, key, val, 16, 1000000,
				     "expected an integer from 16 to 1000000",
				     &v);
			conf->open_files = (uint32_t)v;
		} else {
			rv = bad(host, key, "unknown key");
		}
		if (rv != 0)
			return rv;
	}
	return 0;
}
