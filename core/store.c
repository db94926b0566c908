/* Stores: the logs lent to consensus modules (host->store): storage calls plus
 * grouped syncs run on libuv's worker threads, so one fsync covers every write
 * of a loop turn while the loop goes on accepting the next ones.  The logs
 * synced in one loop turn go to the storage module together (sync_many), so
 * that many partitions written at once cost about one sync, not one each.
 * The storage module's fsync policy is read and applied here only. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <kafkaesque/list.h>

#include "defer.h"
#include "log.h"
#include "store.h"
#include "types.h"

void kq__store_policy(struct kq_broker *b)
{
	b->sync_interval_ms = 1000;
	b->sync_policy =
		b->sops->sync_policy(b->storage.state, &b->sync_interval_ms);
	if (b->sync_interval_ms == 0)
		b->sync_interval_ms = 1;
	if (b->cfg->npeers > 1 && b->sync_policy != KQ_SYNC_ALWAYS)
		kq__warn("fsync %s in a cluster: a replica counts an entry "
			 "durable once written, so an acknowledged write "
			 "survives broker crashes but not a power failure of "
			 "a majority of its replicas (see "
			 "docs/configuration.md)",
			 b->sync_policy == KQ_SYNC_INTERVAL ? "interval"
							    : "never");
}

static void on_sync_timer(uv_timer_t *t)
{
	kq__store_sync_all(t->data);
}

void kq__store_start(struct kq_broker *b)
{
	if (b->sync_policy == KQ_SYNC_INTERVAL)
		uv_timer_start(&b->sync_timer, on_sync_timer,
			       b->sync_interval_ms, b->sync_interval_ms);
}

uint64_t kq__store_acked_end(const struct kq_store *pl)
{
	/* With fsync always only synced records were acknowledged; with
	 * the other policies a written one was. */
	return pl->b->sync_policy == KQ_SYNC_ALWAYS ? pl->durable_end
						    : UINT64_MAX;
}

int kq__store_open(struct kq_broker *b, struct kq_store *pl, const char *dir,
		   const struct kq_log_options *options, uint64_t keep_below)
{
	struct kq_log_options opts = *options;
	int rv;

	memset(pl, 0, sizeof(*pl));
	pl->b = b;
	pl->waiting_tail = &pl->waiting;
	/* Never synced, the storage module need not track what to sync. */
	opts.unsynced = b->sync_policy == KQ_SYNC_NEVER;
	rv = b->sops->open(b->storage.state, dir, &opts, &pl->log);
	if (rv != 0) {
		kq__error("cannot open log %s: %s", dir, kq_strerror(rv));
		return rv;
	}
	/* Reopened after a failure: records written but never made durable
	 * were never acknowledged, and may not survive a crash, so they
	 * must not become committed now. */
	if (b->sops->next_offset(pl->log) > keep_below) {
		rv = b->sops->truncate(pl->log, keep_below);
		if (rv != 0) {
			kq__error("cannot drop what %s never made durable: %s",
				  dir, kq_strerror(rv));
			b->sops->close(pl->log);
			pl->log = NULL;
			return rv;
		}
	}
	/* Recovery left what it kept durable. */
	pl->durable_end = b->sops->next_offset(pl->log);
	pl->dir = strdup(dir);
	KQ_LIST_PUSH_BY(b->all_stores, pl, prev_all, next_all);
	return 0;
}

void kq__store_close(struct kq_store *pl)
{
	struct kq_broker *b = pl->b;

	if (!pl->log)
		return;
	KQ_LIST_REMOVE_BY(b->all_stores, pl, prev_all, next_all);
	b->sops->close(pl->log);
	pl->log = NULL;
	free(pl->dir);
	pl->dir = NULL;
}

static void sync_work(uv_work_t *w)
{
	struct kq_store *pl = w->data;

	pl->sync_status = pl->b->sops->sync(pl->log);
}

static void start_sync(struct kq_store *pl);

/* A write or sync failed: the storage log refuses writes from now on, so
 * the broker reopens it once the cause may be gone. */
static void note_failure(struct kq_store *pl, int rv)
{
	if (!pl->failed)
		pl->failed = rv;
	kq__defer_reopen(pl->b);
}

static void list_log(struct kq_store *pl)
{
	if (pl->listed)
		return;
	pl->listed = 1;
	pl->next_listed = pl->b->sync_list;
	pl->b->sync_list = pl;
	kq__defer_wake(pl->b);
}

/* A sync of pl ended with rv: the requests it covered are answered. */
static void sync_ended(struct kq_store *pl, int rv)
{
	struct kq_sync_req *req, *next;

	pl->sync_running = 0;
	pl->b->works--;
	if (rv == 0 && pl->sync_target > pl->durable_end)
		pl->durable_end = pl->sync_target;
	if (rv != 0) {
		kq__error("sync of %s failed: %s", pl->dir, kq_strerror(rv));
		note_failure(pl, rv);
	}
	for (req = pl->running; req; req = next) {
		next = req->next;
		req->cb(req, rv);
	}
	pl->running = NULL;
	if (pl->waiting)
		list_log(pl);
}

static void sync_done(uv_work_t *w, int status)
{
	struct kq_store *pl = w->data;

	sync_ended(pl, status ? status : pl->sync_status);
}

/* The requests waiting on pl become the running sync's. */
static void begin_sync(struct kq_store *pl)
{
	pl->running = pl->waiting;
	pl->waiting = NULL;
	pl->waiting_tail = &pl->waiting;
	pl->appended = 0;
	pl->hs_staged = 0;
	pl->sync_target = pl->b->sops->next_offset(pl->log);
	pl->sync_running = 1;
	pl->b->works++;
}

static void start_sync(struct kq_store *pl)
{
	begin_sync(pl);
	pl->work.data = pl;
	if (uv_queue_work(pl->b->loop, &pl->work, sync_work, sync_done) != 0) {
		/* The thread pool refused: sync on the loop thread instead of
		 * acknowledging anything undurable. */
		sync_work(&pl->work);
		sync_done(&pl->work, 0);
	}
}

/* Logs synced together by one sync_many() on a worker thread: the
 * storage module may make them all durable at the cost of one. */
struct kq__sync_many {
	uv_work_t work;
	struct kq_broker *b;
	size_t n;
	struct kq_store **stores;
	struct kq_log **logs;
	int *results;
};

static void sync_many_work(uv_work_t *w)
{
	struct kq__sync_many *m = w->data;

	m->b->sops->sync_many(m->b->storage.state, m->logs, m->n, m->results);
}

static void sync_many_done(uv_work_t *w, int status)
{
	struct kq__sync_many *m = w->data;

	for (size_t i = 0; i < m->n; i++)
		sync_ended(m->stores[i], status ? status : m->results[i]);
	free(m);
}

/* Starts the syncs of the n stores in ps (each with requests waiting and
 * none running): one sync_many() for them all when there are enough to
 * share one, else one sync() each, which run in parallel.  ps is the
 * caller's. */
static void start_syncs(struct kq_broker *b, struct kq_store **ps, size_t n)
{
	struct kq__sync_many *m = NULL;

	if (n >= KQ_SYNC_MANY_MIN)
		m = malloc(sizeof(*m) +
			   n * (sizeof(*m->stores) + sizeof(*m->logs) +
				sizeof(*m->results)));
	if (m == NULL) {
		for (size_t i = 0; i < n; i++)
			start_sync(ps[i]);
		return;
	}
	m->b = b;
	m->n = n;
	m->stores = (struct kq_store **)(m + 1);
	m->logs = (struct kq_log **)(m->stores + n);
	m->results = (int *)(m->logs + n);
	for (size_t i = 0; i < n; i++) {
		begin_sync(ps[i]);
		m->stores[i] = ps[i];
		m->logs[i] = ps[i]->log;
	}
	m->work.data = m;
	if (uv_queue_work(b->loop, &m->work, sync_many_work, sync_many_done) !=
	    0) {
		sync_many_work(&m->work);
		sync_many_done(&m->work, 0);
	}
}

/* Completes the waiting syncs of a log whose policy does not sync before
 * acknowledging. */
static void complete_unsynced(struct kq_store *pl)
{
	struct kq_sync_req *req = pl->waiting, *next;

	pl->waiting = NULL;
	pl->waiting_tail = &pl->waiting;
	for (; req; req = next) {
		next = req->next;
		req->cb(req, 0);
	}
}

/* Gathers stores to sync into b->syncing, growing it; false without
 * memory (the caller then syncs each store alone). */
static bool gather(struct kq_broker *b, struct kq_store *pl, size_t *n)
{
	if (*n == b->syncing_cap) {
		size_t cap = b->syncing_cap ? 2 * b->syncing_cap : 64;
		struct kq_store **v = realloc(b->syncing, cap * sizeof(*v));

		if (v == NULL)
			return false;
		b->syncing = v;
		b->syncing_cap = cap;
	}
	b->syncing[(*n)++] = pl;
	return true;
}

void kq__store_flush(struct kq_broker *b)
{
	struct kq_store *pl = b->sync_list, *next;
	size_t n = 0;

	b->sync_list = NULL;
	for (; pl; pl = next) {
		next = pl->next_listed;
		pl->listed = 0;
		if (b->sync_policy != KQ_SYNC_ALWAYS && !pl->hs_staged)
			complete_unsynced(pl);
		else if (!pl->sync_running && pl->waiting && !gather(b, pl, &n))
			start_sync(pl);
	}
	if (n > 0)
		start_syncs(b, b->syncing, n);
}

/* The interval policy's timer: sync every log written since last time. */
void kq__store_sync_all(struct kq_broker *b)
{
	size_t n = 0;

	for (struct kq_store *pl = b->all_stores; pl; pl = pl->next_all)
		if (pl->appended && !pl->sync_running && !gather(b, pl, &n))
			start_sync(pl);
	if (n > 0)
		start_syncs(b, b->syncing, n);
}

bool kq__store_busy(const struct kq_store *pl)
{
	return pl->sync_running || pl->waiting || pl->running || pl->listed;
}

static void final_sync_one(struct kq_store *pl, int rv)
{
	if (rv != 0) {
		kq__error("final sync of %s failed: %s", pl->dir,
			  kq_strerror(rv));
		pl->b->exit_code = 1;
	}
}

void kq__store_final_sync(struct kq_broker *b)
{
	struct kq_log **logs;
	int *results;
	size_t n = 0, i = 0;
	struct kq_store *pl;

	for (pl = b->all_stores; pl; pl = pl->next_all)
		n++;
	logs = malloc(n * sizeof(*logs) + 1);
	results = malloc(n * sizeof(*results) + 1);
	if (logs == NULL || results == NULL) {
		for (pl = b->all_stores; pl; pl = pl->next_all)
			final_sync_one(pl, b->sops->sync(pl->log));
	} else {
		for (pl = b->all_stores; pl; pl = pl->next_all)
			logs[i++] = pl->log;
		b->sops->sync_many(b->storage.state, logs, n, results);
		i = 0;
		for (pl = b->all_stores; pl; pl = pl->next_all)
			final_sync_one(pl, results[i++]);
	}
	free(logs);
	free(results);
}

static int store_append(struct kq_store *pl, const struct kq_record *recs,
			size_t n)
{
	int rv = pl->b->sops->append(pl->log, recs, n);

	if (rv == 0)
		pl->appended = 1;
	else if (rv != KQ_EBADARG)
		note_failure(pl, rv);
	return rv;
}

static int store_sync(struct kq_store *pl, struct kq_sync_req *req,
		      kq_sync_cb cb)
{
	req->cb = cb;
	req->next = NULL;
	*pl->waiting_tail = req;
	pl->waiting_tail = &req->next;
	list_log(pl);
	return 0;
}

static int store_read(struct kq_store *pl, uint64_t from, uint64_t end,
		      size_t max_bytes, kq_record_cb cb, void *ctx,
		      uint64_t *next)
{
	return pl->b->sops->read(pl->log, from, end, max_bytes, cb, ctx, next);
}

static uint64_t store_first(struct kq_store *pl)
{
	return pl->b->sops->first_offset(pl->log);
}

static uint64_t store_next(struct kq_store *pl)
{
	return pl->b->sops->next_offset(pl->log);
}

static int store_term_at(struct kq_store *pl, uint64_t off, uint64_t *term)
{
	return pl->b->sops->term_at(pl->log, off, term);
}

/* Records from `end` on were dropped (or may be, if the drop failed), and
 * what is appended there next is durable only once a later sync ends: the
 * sync running now must not raise durable_end past `end` either, or a
 * reopen would keep records never synced and count them acknowledged. */
static void cut_durable(struct kq_store *pl, uint64_t end)
{
	if (pl->durable_end > end)
		pl->durable_end = end;
	if (pl->sync_target > end)
		pl->sync_target = end;
}

static int store_truncate(struct kq_store *pl, uint64_t from)
{
	int rv = pl->b->sops->truncate(pl->log, from);

	cut_durable(pl, from);
	if (rv != 0)
		note_failure(pl, rv);
	return rv;
}

static int store_reset(struct kq_store *pl, uint64_t next)
{
	int rv = pl->b->sops->reset(pl->log, next);

	cut_durable(pl, next);
	if (rv == 0)
		pl->durable_end = next; /* durable when it returns */
	else
		note_failure(pl, rv);
	return rv;
}

/* A group whose term and vote could not be saved stops (consensus may
 * not answer without them): the log is reopened like one whose write
 * failed, and the group starts again from what is durable.  A staged
 * hard state is synced under every policy: a vote forgotten in a crash
 * could be given twice. */
static int store_stage_hs(struct kq_store *pl, const struct kq_hard_state *hs)
{
	int rv = pl->b->sops->stage_hard_state(pl->log, hs);

	/* KQ_EBUSY: the log wants a sync first, which must then be real
	 * too, or the stage that follows would be refused again. */
	if (rv == 0 || rv == KQ_EBUSY)
		pl->hs_staged = 1;
	else
		note_failure(pl, rv);
	return rv;
}

static int store_load_hs(struct kq_store *pl, struct kq_hard_state *hs)
{
	return pl->b->sops->load_hard_state(pl->log, hs);
}

/* A group whose snapshot or retention point could not be saved stops: its
 * log is reopened like one whose write failed.  A sleeping group's
 * followers only notice a leader gone when its broker falls silent, so a
 * stopped group must not stay stopped. */
static int store_save_snapshot(struct kq_store *pl, uint64_t index,
			       uint64_t term, const void *data, size_t len)
{
	int rv = pl->b->sops->save_snapshot(pl->log, index, term, data, len);

	if (rv != 0)
		note_failure(pl, rv);
	return rv;
}

static int store_load_snapshot(struct kq_store *pl, uint64_t *index,
			       uint64_t *term, void **data, size_t *len)
{
	return pl->b->sops->load_snapshot(pl->log, index, term, data, len);
}

static int store_compact(struct kq_store *pl, uint64_t before)
{
	return pl->b->sops->compact(pl->log, before);
}

static int store_lost(struct kq_store *pl, const struct kq_offset_range **out)
{
	return pl->b->sops->lost(pl->log, out);
}

/* The module logged why; the reopen logs when it is open again. */
static void store_group_stopped(struct kq_store *pl, int err)
{
	note_failure(pl, err);
}

const struct kq_store_api kq__store_api = {
	.append = store_append,
	.sync = store_sync,
	.read = store_read,
	.first_offset = store_first,
	.next_offset = store_next,
	.term_at = store_term_at,
	.truncate = store_truncate,
	.reset = store_reset,
	.stage_hard_state = store_stage_hs,
	.load_hard_state = store_load_hs,
	.save_snapshot = store_save_snapshot,
	.load_snapshot = store_load_snapshot,
	.compact = store_compact,
	.lost = store_lost,
	.group_stopped = store_group_stopped,
};
