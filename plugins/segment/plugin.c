/* The segment storage module: descriptor, init/fini and the ops table. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "module.h"

/* The bound on held descriptors: as configured, but at most half the
 * process's limit, so that clients and the rest keep the other half. */
static unsigned open_files(const struct kq_host *host, unsigned want)
{
	struct rlimit rl;
	rlim_t half;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return want;
	half = rl.rlim_cur / 2;
	if (half >= want)
		return want;
	if (half < 16)
		half = 16;
	host->log(host, KQ_LOG_INFO,
		  "segment: holding at most %u open files (open_files is %u, "
		  "the process may open %llu)",
		  (unsigned)half, want, (unsigned long long)rl.rlim_cur);
	return (unsigned)half;
}

static int seg_init(const struct kq_host *host, void **state)
{
	struct kq__seg_module *mod = host->malloc(sizeof(*mod));
	int rv;

	if (mod == NULL)
		return -ENOMEM;
	memset(mod, 0, sizeof(*mod));
	mod->host = host;
	rv = kq__seg_conf_parse(host, &mod->conf);
	if (rv != 0) {
		host->free(mod);
		return rv;
	}
	kq__seg_fds_init(&mod->fds, open_files(host, mod->conf.open_files),
			 kq__seg_evict_close, kq__seg_evict_sync_held);
	kq__seg_fsys_init(mod);
	*state = mod;
	return 0;
}

static void seg_fini(void *state)
{
	struct kq__seg_module *mod = state;

	kq__seg_fsys_fini(mod);
	mod->host->free(mod);
}

static int seg_sync_policy(void *state, uint32_t *interval_ms)
{
	struct kq__seg_module *mod = state;

	if (interval_ms != NULL)
		*interval_ms = mod->conf.fsync_interval_ms;
	return (int)mod->conf.fsync;
}

static const struct kq_storage_ops ops = {
	.size = sizeof(struct kq_storage_ops),
	.init = seg_init,
	.fini = seg_fini,
	.open = kq__seg_log_open,
	.close = kq__seg_log_close,
	.append = kq__seg_log_append,
	.sync = kq__seg_log_sync,
	.sync_many = kq__seg_log_sync_many,
	.read = kq__seg_log_read,
	.first_offset = kq__seg_log_first_offset,
	.next_offset = kq__seg_log_next_offset,
	.term_at = kq__seg_log_term_at,
	.truncate = kq__seg_log_truncate,
	.reset = kq__seg_log_reset,
	.compact = kq__seg_log_compact,
	.retention_point = kq__seg_log_retention_point,
	.save_hard_state = kq__seg_log_save_hard_state,
	.stage_hard_state = kq__seg_log_stage_hard_state,
	.load_hard_state = kq__seg_log_load_hard_state,
	.save_snapshot = kq__seg_log_save_snapshot,
	.load_snapshot = kq__seg_log_load_snapshot,
	.lost = kq__seg_log_lost,
	.sync_policy = seg_sync_policy,
};

static const struct kq_plugin_desc desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_STORAGE,
	.name = "segment",
	.version = "1.0.0",
	.ops = &ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &desc;
}
