/* The broker's life: its data folder, opening (modules in instance.c),
 * the end-of-turn flush that batches proposals and syncs, its timers and
 * signals, folders of topics it no longer knows, and the graceful stop. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "apply.h"
#include "broker.h"
#include "commit.h"
#include "consume.h"
#include "defer.h"
#include "fetch.h"
#include "forward.h"
#include "instance.h"
#include "log.h"
#include "members.h"
#include "meta.h"
#include "names.h"
#include "opening.h"
#include "orphans.h"
#include "publish.h"
#include "reopen.h"
#include "retention.h"
#include "retire.h"
#include "serve.h"
#include "session.h"
#include "store.h"
#include "subscribe.h"
#include "topic.h"

/* mkdir -p */
static int make_dirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* One broker per data folder: a second one would corrupt the logs. */
static int lock_dir(const char *dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		close(fd);
		return err;
	}
	return fd; /* held until kq__broker_close() */
}

/* ------------------------------------------------------------ flushing */

static void try_finish(struct kq_broker *b);

void kq__broker_flush(struct kq_broker *b)
{
	/* The syncs a round of batches asks for start at its end, together,
	 * as when it was written in one turn. */
	if (kq__batch_flush(b))
		kq__store_flush(b);
	kq__defer_deliver(b);
	if (!b->dirty && !b->sync_list && !b->done && !b->cons_parked &&
	    uv_is_active((uv_handle_t *)&b->idle))
		uv_idle_stop(&b->idle);
	if (b->stopping && !b->stopping_transports)
		try_finish(b);
}

static void on_check(uv_check_t *h)
{
	/* After this turn's I/O: reads that yielded in an earlier turn go
	 * on, with a poll between each of their steps. */
	kq__consume_wake_parked(h->data);
	kq__broker_flush(h->data);
}

#define NHANDLES 13

/* The broker's own handles, in one list for init and close alike. */
static void own_handles(struct kq_broker *b, uv_handle_t *hs[NHANDLES])
{
	hs[0] = (uv_handle_t *)&b->check;
	hs[1] = (uv_handle_t *)&b->idle;
	hs[2] = (uv_handle_t *)&b->sync_timer;
	hs[3] = (uv_handle_t *)&b->retention_timer;
	hs[4] = (uv_handle_t *)&b->reopen_timer;
	hs[5] = (uv_handle_t *)&b->open_idle;
	hs[6] = (uv_handle_t *)&b->sigint;
	hs[7] = (uv_handle_t *)&b->sigterm;
	hs[8] = (uv_handle_t *)&b->sighup;
	hs[9] = (uv_handle_t *)&b->fwd_timer;
	hs[10] = (uv_handle_t *)&b->members_timer;
	hs[11] = (uv_handle_t *)&b->fetch_timer;
	hs[12] = (uv_handle_t *)&b->retire_timer;
}

void kq__broker_init_handles(struct kq_broker *b, uv_loop_t *loop)
{
	uv_handle_t *hs[NHANDLES];

	b->flush_cb = kq__broker_flush;
	b->registered_cb = kq__subscribe_resume;
	b->members_wake_cb = kq__members_wake;
	b->serve_local_cb = kq__serve_local;
	b->reopen_cb = kq__reopen_on_timer;
	uv_check_init(loop, &b->check);
	uv_idle_init(loop, &b->idle);
	uv_timer_init(loop, &b->sync_timer);
	uv_timer_init(loop, &b->retention_timer);
	uv_timer_init(loop, &b->reopen_timer);
	uv_idle_init(loop, &b->open_idle);
	b->opening_tail = &b->opening;
	uv_signal_init(loop, &b->sigint);
	uv_signal_init(loop, &b->sigterm);
	uv_signal_init(loop, &b->sighup);
	uv_timer_init(loop, &b->fwd_timer);
	uv_timer_init(loop, &b->members_timer);
	uv_timer_init(loop, &b->fetch_timer);
	uv_timer_init(loop, &b->retire_timer);
	own_handles(b, hs);
	for (size_t i = 0; i < NHANDLES; i++)
		hs[i]->data = b;
}

/* ------------------------------------------------------------ stopping */

static void on_signal(uv_signal_t *h, int signum)
{
	struct kq_broker *b = h->data;

	if (b->stopping) {
		kq__warn("second %s: exiting now", strsignal(signum));
		exit(1);
	}
	kq__info("%s: stopping", strsignal(signum));
	kq__broker_stop(b);
}

/* SIGHUP, as logrotate sends it: the log file is opened anew; without one
 * the signal changes nothing. */
static void on_hangup(uv_signal_t *h, int signum)
{
	struct kq_broker *b = h->data;
	const char *path = b->cfg->log_file;
	int rv;

	if (!path) {
		kq__info("%s: ignored (no broker.log_file to reopen)",
			 strsignal(signum));
		return;
	}
	rv = kq__log_file_open(path);
	if (rv != 0)
		kq__error("%s: cannot reopen %s: %s; logging on to the old "
			  "file",
			  strsignal(signum), path, kq_strerror(rv));
	else
		kq__info("%s: reopened the log file %s", strsignal(signum),
			 path);
}

static void transport_stopped(void *ctx)
{
	struct kq_broker *b = ctx;

	b->stopping_transports--;
	kq__defer_wake(b);
}

static int logs_busy(struct kq_broker *b)
{
	if (b->works || b->sync_list || b->dirty || b->done || kq__fwd_busy(b))
		return 1;
	for (struct kq_store *pl = b->all_stores; pl; pl = pl->next_all)
		if (kq__store_busy(pl))
			return 1;
	return 0;
}

static void close_all_topics(struct kq_broker *b)
{
	struct kq__map_entry *e;

	while ((e = kq__map_next(&b->topics, NULL))) {
		struct kq__topic *t = e->value;

		kq__map_del(&b->topics, t->name, strlen(t->name));
		b->npartitions -= t->nparts;
		kq__topic_free(b, t);
	}
}

/* Closes every partition's consensus group, keeping the partitions: the
 * proposals they held complete (canceled) from a later loop turn, into
 * partitions still there. */
static void close_all_groups(struct kq_broker *b)
{
	struct kq__map_entry *e = NULL;

	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *t = e->value;

		for (uint32_t i = 0; i < t->nparts; i++) {
			struct kq__partition *p = &t->parts[i];

			if (p->group)
				b->cops->group_close(p->group);
			p->group = NULL;
		}
	}
}

static void close_handles(struct kq_broker *b)
{
	uv_handle_t *hs[NHANDLES];

	own_handles(b, hs);
	for (size_t i = 0; i < NHANDLES; i++)
		if (!uv_is_closing(hs[i]))
			uv_close(hs[i], NULL);
}

/* Everything in flight is done: sync what is left and close. */
static void try_finish(struct kq_broker *b)
{
	if (b->stopping > 1 || logs_busy(b) || b->ending_run)
		return;
	if (b->proposals) {
		/* Those waiting for followers' acks may wait for ever. */
		close_all_groups(b);
		return;
	}
	/* A last sync of every log, whatever the policy, in one call. */
	kq__store_final_sync(b);
	b->stopping = 2;
	kq__opening_cancel_all(b); /* answers any CRTP still waiting on it */
	kq__fwd_stop(b);
	kq__fetch_stop(b);
	kq__session_close_all(b);
	b->serve_session = NULL;
	kq__retention_free(b); /* it points at the topics */
	close_all_topics(b);
	kq__meta_close(b);
	close_handles(b);
	kq__info("stopped");
}

void kq__broker_stop(struct kq_broker *b)
{
	if (b->stopping)
		return;
	b->stopping = 1;
	b->stopping_transports = 0;
	kq__opening_cancel_all(b);
	kq__fwd_stop(b);
	kq__fetch_stop(b);
	kq__commit_stop(b);
	kq__members_stop(b); /* before the connections close */
	for (size_t i = 0; i < b->ntransports; i++) {
		struct kq__instance *in = &b->transports[i];

		if (!in->started)
			continue;
		b->stopping_transports++;
		((const struct kq_transport_ops *)in->mod.desc->ops)
			->stop(in->state, transport_stopped, b);
	}
	kq__defer_wake(b);
}

/* ------------------------------------------------------------ opening */

int kq__broker_open(uv_loop_t *loop, struct kq__config *cfg,
		    struct kq_broker **out)
{
	struct kq_broker *b = calloc(1, sizeof(*b));
	char dir[4096];
	int rv;

	if (!b)
		return -ENOMEM;
	b->loop = loop;
	b->cfg = cfg;
	b->lock_fd = -1;
	b->done_tail = &b->done;
	b->sub_waiting_tail = &b->sub_waiting;
	snprintf(dir, sizeof(dir), "%s/kafkaesque-%d", cfg->data_dir,
		 cfg->broker_id);
	b->dir = strdup(dir);
	*out = b;
	b->nbroker_ids = cfg->npeers ? cfg->npeers : 1;
	b->broker_ids = calloc(b->nbroker_ids, sizeof(*b->broker_ids));
	if (!b->dir || !b->broker_ids)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->npeers; i++)
		b->broker_ids[i] = cfg->peers[i].id;
	if (!cfg->npeers)
		b->broker_ids[0] = cfg->broker_id;

	kq__broker_init_handles(b, loop);
	/* Before any port listens: whoever can connect may stop us with
	 * SIGTERM and must get a graceful stop, not the default action.  A
	 * signal caught during start-up is acted on once the loop runs. */
	uv_signal_start(&b->sigint, on_signal, SIGINT);
	uv_signal_start(&b->sigterm, on_signal, SIGTERM);
	uv_signal_start(&b->sighup, on_hangup, SIGHUP);

	rv = make_dirs(b->dir);
	if (rv != 0) {
		kq__error("data folder %s: %s", b->dir, kq_strerror(rv));
		return rv;
	}
	rv = lock_dir(b->dir);
	if (rv < 0) {
		kq__error("data folder %s: %s", b->dir,
			  rv == -EBUSY ? "in use by another broker"
				       : kq_strerror(rv));
		return rv;
	}
	b->lock_fd = rv;
	rv = kq__broker_api.session_open(b, &b->serve_session);
	if (rv == 0)
		rv = kq__instance_load_all(b);
	if (rv == 0)
		rv = kq__instance_init_all(b);
	if (rv != 0)
		return rv;
	rv = kq__apply_open(b);
	if (rv != 0)
		return rv;
	kq__orphans_move(b);
	rv = kq__instance_start_transports(b);
	if (rv != 0)
		return rv;
	uv_check_start(&b->check, on_check);
	b->serving = 1;
	kq__defer_wake(b);
	kq__store_start(b);
	uv_timer_start(&b->retention_timer, kq__retention_on_timer,
		       cfg->retention_check_ms, cfg->retention_check_ms);
	kq__members_start(b);
	uv_timer_start(&b->retire_timer, kq__retire_on_timer,
		       kq__retire_period(b), kq__retire_period(b));
	kq__info("broker %d ready: data in %s, %zu topic(s), storage %s, "
		 "consensus %s",
		 cfg->broker_id, b->dir, b->topics.count, cfg->storage,
		 cfg->consensus);
	return 0;
}

void kq__broker_close(struct kq_broker *b)
{
	size_t i;

	if (!b)
		return;
	if (b->stopping < 2) {
		/* Start-up failed: release the loop's handles before the
		 * memory holding them goes. */
		b->stopping = 2;
		close_handles(b);
		uv_run(b->loop, UV_RUN_NOWAIT);
	}
	kq__retention_free(b);
	close_all_topics(b);
	kq__meta_close(b);
	kq__session_close_all(b); /* after a failed start: the serving one */
	b->serve_session = NULL;
	for (i = 0; i < b->ntransports; i++)
		kq__instance_fini(&b->transports[i]);
	for (i = 0; i < b->npartitioners; i++)
		kq__instance_fini(&b->partitioners[i]);
	kq__instance_fini(&b->consensus);
	kq__instance_fini(&b->storage);
	free(b->syncing);
	free(b->transports);
	free(b->partitioners);
	kq__map_free(&b->topics);
	kq__map_free(&b->subs);
	kq__map_free(&b->joining);
	kq__map_free(&b->creating);
	kq__map_free(&b->unopened);
	free(b->broker_ids);
	free(b->regs);
	/* Everything of the folder is closed: another broker may take it. */
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	free(b->dir);
	free(b);
}
