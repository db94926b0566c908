/* Logs lent to consensus modules: storage calls plus grouped syncs run on
 * libuv's worker threads, so one fsync covers every write of a loop turn
 * while the loop goes on accepting the next ones. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker.h"
#include "log.h"

int kq__plog_open(struct kq_broker *b, struct kq_plog *pl, const char *dir,
		  const struct kq_log_options *opts)
{
	int rv;

	memset(pl, 0, sizeof(*pl));
	pl->b = b;
	pl->waiting_tail = &pl->waiting;
	rv = b->sops->open(b->storage.state, dir, opts, &pl->log);
	if (rv != 0) {
		kq__error("cannot open log %s: %s", dir, kq_strerror(rv));
		return rv;
	}
	/* Recovery left what it kept durable. */
	pl->durable_end = b->sops->next_offset(pl->log);
	pl->dir = strdup(dir);
	pl->next_all = b->all_logs;
	if (b->all_logs)
		b->all_logs->prev_all = pl;
	b->all_logs = pl;
	return 0;
}

void kq__plog_close(struct kq_plog *pl)
{
	struct kq_broker *b = pl->b;

	if (!pl->log)
		return;
	if (pl->prev_all)
		pl->prev_all->next_all = pl->next_all;
	else
		b->all_logs = pl->next_all;
	if (pl->next_all)
		pl->next_all->prev_all = pl->prev_all;
	b->sops->close(pl->log);
	pl->log = NULL;
	free(pl->dir);
	pl->dir = NULL;
}

static void sync_work(uv_work_t *w)
{
	struct kq_plog *pl = w->data;

	pl->sync_status = pl->b->sops->sync(pl->log);
}

static void start_sync(struct kq_plog *pl);

/* A write or sync failed: the storage log refuses writes from now on, so
 * the broker reopens it once the cause may be gone. */
static void note_failure(struct kq_plog *pl, int rv)
{
	if (!pl->failed)
		pl->failed = rv;
	kq__defer_reopen(pl->b);
}

static void list_log(struct kq_plog *pl)
{
	if (pl->listed)
		return;
	pl->listed = 1;
	pl->next_listed = pl->b->sync_list;
	pl->b->sync_list = pl;
	kq__defer_wake(pl->b);
}

static void sync_done(uv_work_t *w, int status)
{
	struct kq_plog *pl = w->data;
	struct kq_sync_req *req, *next;
	int rv = status ? status : pl->sync_status;

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

static void start_sync(struct kq_plog *pl)
{
	int rv;

	pl->running = pl->waiting;
	pl->waiting = NULL;
	pl->waiting_tail = &pl->waiting;
	pl->unsynced = 0;
	pl->sync_target = pl->b->sops->next_offset(pl->log);
	pl->work.data = pl;
	rv = uv_queue_work(pl->b->loop, &pl->work, sync_work, sync_done);
	if (rv != 0) {
		/* The thread pool refused: sync on the loop thread instead of
		 * acknowledging anything undurable. */
		pl->sync_running = 1;
		pl->b->works++;
		sync_work(&pl->work);
		sync_done(&pl->work, 0);
		return;
	}
	pl->sync_running = 1;
	pl->b->works++;
}

/* Completes the waiting syncs of a log whose policy does not sync before
 * acknowledging. */
static void complete_unsynced(struct kq_plog *pl)
{
	struct kq_sync_req *req = pl->waiting, *next;

	pl->waiting = NULL;
	pl->waiting_tail = &pl->waiting;
	for (; req; req = next) {
		next = req->next;
		req->cb(req, 0);
	}
}

void kq__plog_flush(struct kq_broker *b)
{
	struct kq_plog *pl = b->sync_list, *next;

	b->sync_list = NULL;
	for (; pl; pl = next) {
		next = pl->next_listed;
		pl->listed = 0;
		if (b->sync_policy != KQ_SYNC_ALWAYS)
			complete_unsynced(pl);
		else if (!pl->sync_running && pl->waiting)
			start_sync(pl);
	}
}

/* The interval policy's timer: sync every log written since last time. */
void kq__plog_sync_all(struct kq_broker *b)
{
	for (struct kq_plog *pl = b->all_logs; pl; pl = pl->next_all)
		if (pl->unsynced && !pl->sync_running)
			start_sync(pl);
}

static int plog_append(struct kq_plog *pl, const struct kq_record *recs,
		       size_t n)
{
	int rv = pl->b->sops->append(pl->log, recs, n);

	if (rv == 0)
		pl->unsynced = 1;
	else if (rv != KQ_EBADARG)
		note_failure(pl, rv);
	return rv;
}

static int plog_sync(struct kq_plog *pl, struct kq_sync_req *req, kq_sync_cb cb)
{
	req->cb = cb;
	req->next = NULL;
	*pl->waiting_tail = req;
	pl->waiting_tail = &req->next;
	list_log(pl);
	return 0;
}

static int plog_read(struct kq_plog *pl, uint64_t from, uint64_t end,
		     size_t max_bytes, kq_record_cb cb, void *ctx,
		     uint64_t *next)
{
	return pl->b->sops->read(pl->log, from, end, max_bytes, cb, ctx, next);
}

static uint64_t plog_first(struct kq_plog *pl)
{
	return pl->b->sops->first_offset(pl->log);
}

static uint64_t plog_next(struct kq_plog *pl)
{
	return pl->b->sops->next_offset(pl->log);
}

static int plog_term_at(struct kq_plog *pl, uint64_t off, uint64_t *term)
{
	return pl->b->sops->term_at(pl->log, off, term);
}

static int plog_truncate(struct kq_plog *pl, uint64_t from)
{
	int rv = pl->b->sops->truncate(pl->log, from);

	if (rv != 0)
		note_failure(pl, rv);
	return rv;
}

static int plog_reset(struct kq_plog *pl, uint64_t next)
{
	int rv = pl->b->sops->reset(pl->log, next);

	if (rv != 0)
		note_failure(pl, rv);
	return rv;
}

/* A group whose term and vote could not be saved stops (consensus may
 * not answer without them): the log is reopened like one whose write
 * failed, and the group starts again from what is durable. */
static int plog_save_hs(struct kq_plog *pl, const struct kq_hard_state *hs)
{
	int rv = pl->b->sops->save_hard_state(pl->log, hs);

	if (rv != 0)
		note_failure(pl, rv);
	return rv;
}

static int plog_load_hs(struct kq_plog *pl, struct kq_hard_state *hs)
{
	return pl->b->sops->load_hard_state(pl->log, hs);
}

/* A group whose snapshot or retention point could not be saved stops: its
 * log is reopened like one whose write failed.  A sleeping group's
 * followers only notice a leader gone when its broker falls silent, so a
 * stopped group must not stay stopped. */
static int plog_save_snapshot(struct kq_plog *pl, uint64_t index, uint64_t term,
			      const void *data, size_t len)
{
	int rv = kq__snapshot_save(pl->dir, index, term, data, len);

	if (rv != 0)
		note_failure(pl, rv);
	return rv;
}

static int plog_load_snapshot(struct kq_plog *pl, uint64_t *index,
			      uint64_t *term, void **data, size_t *len)
{
	return kq__snapshot_load(pl->dir, index, term, data, len);
}

static int plog_compact(struct kq_plog *pl, uint64_t before)
{
	return pl->b->sops->compact(pl->log, before);
}

static int plog_lost(struct kq_plog *pl, const struct kq_offset_range **out)
{
	return pl->b->sops->lost(pl->log, out);
}

const struct kq_log_api kq__log_api = {
	.append = plog_append,
	.sync = plog_sync,
	.read = plog_read,
	.first_offset = plog_first,
	.next_offset = plog_next,
	.term_at = plog_term_at,
	.truncate = plog_truncate,
	.reset = plog_reset,
	.save_hard_state = plog_save_hs,
	.load_hard_state = plog_load_hs,
	.save_snapshot = plog_save_snapshot,
	.load_snapshot = plog_load_snapshot,
	.compact = plog_compact,
	.lost = plog_lost,
};
