/* The module's configuration section. */
#include <kafkaesque/config.h>

#include "module.h"

const char *const kq__seg_conf_keys[] = {"segment_bytes",
					 "fsync",
					 "fsync_interval_ms",
					 "open_files",
					 "index_interval_bytes",
					 "syncfs",
					 NULL};

int kq__seg_conf_parse(const struct kq_host *host, struct kq__seg_conf *conf)
{
	static const char *const policies[] = {"always", "interval", "never",
					       NULL};
	static const enum kq_sync_policy policy_of[] = {
		KQ_SYNC_ALWAYS, KQ_SYNC_INTERVAL, KQ_SYNC_NEVER};
	int64_t segment_bytes = 1073741824, interval = 1000;
	int64_t index_interval = 4096, open_files = 1000;
	int policy = 0, rv;

	conf->retention_ms = -1;
	conf->retention_bytes = -1;
	rv = kq_config_keys(host, kq__seg_conf_keys);
	if (rv == 0)
		rv = kq_config_int(host, "segment_bytes", 4096, INT64_MAX,
				   &segment_bytes);
	if (rv == 0)
		rv = kq_config_choice(host, "fsync", policies, &policy);
	if (rv == 0)
		rv = kq_config_int(host, "fsync_interval_ms", 1, UINT32_MAX,
				   &interval);
	if (rv == 0)
		rv = kq_config_int(host, "index_interval_bytes", 1, 1 << 30,
				   &index_interval);
	if (rv == 0)
		rv = kq_config_int(host, "open_files", 16, 1000000,
				   &open_files);
	conf->syncfs = true;
	if (rv == 0)
		rv = kq_config_bool(host, "syncfs", &conf->syncfs);
	if (rv != 0)
		return rv;
	conf->segment_bytes = (uint64_t)segment_bytes;
	conf->fsync = policy_of[policy];
	conf->fsync_interval_ms = (uint32_t)interval;
	conf->index_interval = (uint64_t)index_interval;
	conf->open_files = (uint32_t)open_files;
	return 0;
}
