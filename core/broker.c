/* The broker's life: loading and wiring modules, the end-of-turn flush
 * that batches proposals and syncs, timers, signals and the graceful
 * stop. */
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

#include <kafkaesque/clock.h>

#include "broker.h"
#include "log.h"
#include "names.h"

static void host_log(const struct kq_host *h, enum kq_log_level level,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void host_log(const struct kq_host *h, enum kq_log_level level,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kq__logv(level, h->module, fmt, ap);
	va_end(ap);
}

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
	return fd; /* held until the process exits */
}

static int load_instance(struct kq_broker *b, struct kq__instance *in,
			 const char *name, enum kq_plugin_kind kind,
			 char **dirs)
{
	char err[1536];
	int rv = kq__module_load(name, kind, dirs, &in->mod, err, sizeof(err));

	if (rv != 0) {
		kq__error("%s", err);
		return rv;
	}
	memset(&in->host, 0, sizeof(in->host));
	in->host.abi = KQ_PLUGIN_ABI;
	in->host.module = in->mod.name;
	in->host.loop = b->loop;
	in->host.broker_id = b->cfg->broker_id;
	in->host.data_dir = b->dir;
	in->host.config = kq__config_section(b->cfg, name);
	in->host.log = host_log;
	in->host.malloc = malloc;
	in->host.realloc = realloc;
	in->host.free = free;
	if (kind == KQ_PLUGIN_TRANSPORT) {
		in->host.api = &kq__broker_api;
		in->host.broker = b;
	}
	if (kind == KQ_PLUGIN_CONSENSUS) {
		in->host.logs = &kq__log_api;
		in->host.serve = kq__serve;
		in->host.cluster = kq__config_section(b->cfg, "cluster");
	}
	kq__debug("loaded %s module %s %s from %s", kq__kind_name(kind), name,
		  in->mod.desc->version, in->mod.path);
	return 0;
}

/* Calls the kind's init op: every ops table starts with the same
 * init/fini pair except transports, which have start/stop between. */
static int init_instance(struct kq__instance *in)
{
	const void *ops = in->mod.desc->ops;
	int rv;

	switch (in->mod.desc->kind) {
	case KQ_PLUGIN_TRANSPORT:
		rv = ((const struct kq_transport_ops *)ops)
			     ->init(&in->host, &in->state);
		break;
	case KQ_PLUGIN_PARTITIONER:
		rv = ((const struct kq_partitioner_ops *)ops)
			     ->init(&in->host, &in->state);
		break;
	case KQ_PLUGIN_STORAGE:
		rv = ((const struct kq_storage_ops *)ops)
			     ->init(&in->host, &in->state);
		break;
	case KQ_PLUGIN_CONSENSUS:
		rv = ((const struct kq_consensus_ops *)ops)
			     ->init(&in->host, &in->state);
		break;
	default: rv = KQ_EKIND;
	}
	if (rv != 0)
		kq__error("%s module %s: init failed: %s",
			  kq__kind_name(in->mod.desc->kind), in->mod.name,
			  kq_strerror(rv));
	else
		in->started = 1;
	return rv;
}

static void fini_instance(struct kq__instance *in)
{
	const void *ops;

	if (!in->mod.desc)
		return;
	ops = in->mod.desc->ops;
	if (in->started) {
		switch (in->mod.desc->kind) {
		case KQ_PLUGIN_TRANSPORT:
			((const struct kq_transport_ops *)ops)->fini(in->state);
			break;
		case KQ_PLUGIN_PARTITIONER:
			((const struct kq_partitioner_ops *)ops)
				->fini(in->state);
			break;
		case KQ_PLUGIN_STORAGE:
			((const struct kq_storage_ops *)ops)->fini(in->state);
			break;
		case KQ_PLUGIN_CONSENSUS:
			((const struct kq_consensus_ops *)ops)->fini(in->state);
			break;
		}
	}
	in->started = 0;
	kq__module_unload(&in->mod);
}

/* ------------------------------------------------------------ flushing */

static void try_finish(struct kq_broker *b);

void kq__broker_flush(struct kq_broker *b)
{
	kq__batch_flush(b);
	kq__plog_flush(b);
	kq__defer_deliver(b);
	if (!b->dirty && !b->sync_list && !b->done &&
	    uv_is_active((uv_handle_t *)&b->idle))
		uv_idle_stop(&b->idle);
	if (b->stopping && !b->stopping_transports)
		try_finish(b);
}

static void on_check(uv_check_t *h)
{
	kq__broker_flush(h->data);
}

static void on_sync_timer(uv_timer_t *t)
{
	kq__plog_sync_all(t->data);
}

#define NHANDLES 12

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
}

static void on_reopen_timer(uv_timer_t *tm);

void kq__broker_init_handles(struct kq_broker *b, uv_loop_t *loop)
{
	uv_handle_t *hs[NHANDLES];

	b->flush_cb = kq__broker_flush;
	b->registered_cb = kq__subscribe_resume;
	b->serve_local_cb = kq__serve_local;
	b->reopen_cb = on_reopen_timer;
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
	own_handles(b, hs);
	for (size_t i = 0; i < NHANDLES; i++)
		hs[i]->data = b;
}

/* Partitions that could not be opened (out of descriptors or space, a
 * folder not writable), and logs that failed a write or a sync, are
 * opened again until they open. */
static void on_reopen_timer(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;
	struct kq__map_entry *e = NULL;
	unsigned left = 0;

	/* Whatever could not open is opened at the next start. */
	if (b->stopping) {
		uv_timer_stop(tm);
		return;
	}
	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *t = e->value;

		for (uint32_t i = 0; i < t->nparts; i++) {
			struct kq__partition *p = &t->parts[i];
			struct kq_plog *pl = &p->plog;
			int rv, was = p->open_error;

			if (p->group && pl->failed) {
				/* Reopened once nothing is in flight on it:
				 * recovery keeps what is durable, and its
				 * group starts again from there. */
				if (pl->sync_running || pl->waiting ||
				    pl->running || p->batch || p->dirty) {
					left++;
					continue;
				}
				was = pl->failed;
				/* With fsync always only synced records were
				 * acknowledged; with the other policies a
				 * written one was. */
				p->keep_below = b->sync_policy == KQ_SYNC_ALWAYS
							? pl->durable_end
							: UINT64_MAX;
				b->cops->group_close(p->group);
				p->group = NULL;
				kq__plog_close(pl);
			} else if (!p->open_error ||
				   p->open_error == -EINPROGRESS ||
				   p->open_error == KQ_ECANCELED) {
				continue; /* open, or its creation is on */
			}
			rv = kq__partition_open(b, p);
			p->open_error = rv;
			if (rv == 0)
				p->keep_below = UINT64_MAX;
			if (rv == 0) {
				kq__info("partition %s-%u: opened again after "
					 "%s",
					 t->name, i, kq_strerror(was));
				p->reopen_tries = 0;
				continue;
			}
			left++;
			/* One line at the first failure, then one a
			 * minute. */
			if (p->reopen_tries++ % (60000 / KQ__REOPEN_MS) == 0)
				kq__warn("partition %s-%u: cannot be opened: "
					 "%s; trying again every %u ms",
					 t->name, i, kq_strerror(rv),
					 KQ__REOPEN_MS);
		}
	}
	if (b->meta_log.failed || !b->meta_group) {
		int was = b->meta_log.failed;

		if (!kq__meta_idle(b)) {
			left++;
		} else if (kq__apply_reopen(b) == 0) {
			kq__info("metadata log: opened again after %s",
				 kq_strerror(was));
			b->meta_reopen_tries = 0;
		} else {
			left++;
			if (b->meta_reopen_tries++ % (60000 / KQ__REOPEN_MS) ==
			    0)
				kq__warn("metadata log: cannot be reopened; "
					 "trying again every %u ms",
					 KQ__REOPEN_MS);
		}
	}
	if (!left)
		uv_timer_stop(tm);
}

static void on_retention_timer(uv_timer_t *t)
{
	struct kq_broker *b = t->data;
	struct kq__map_entry *e = NULL;
	int64_t now;

	now = kq_wall_ms();
	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *tp = e->value;

		if (tp->retention_ms < 0 && tp->retention_bytes < 0)
			continue;
		for (uint32_t i = 0; i < tp->nparts; i++) {
			struct kq__partition *p = &tp->parts[i];
			uint64_t before;
			int n;

			/* Partitions replicated elsewhere have no log here. */
			if (!p->group ||
			    b->sops->retention_point(p->plog.log, now,
						     &before) != 0 ||
			    before <= b->sops->first_offset(p->plog.log))
				continue;
			n = b->cops->group_retain(p->group, before);
			if (n < 0)
				kq__warn(
					"partition %s-%u: retention failed: %s",
					tp->name, i, kq_strerror(n));
			else if (n > 0)
				kq__info("partition %s-%u: retention deleted "
					 "%d segment(s)",
					 tp->name, i, n);
		}
	}
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
	for (struct kq_plog *pl = b->all_logs; pl; pl = pl->next_all)
		if (pl->waiting || pl->running)
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
	if (b->stopping > 1 || logs_busy(b))
		return;
	/* A last sync of every log, whatever the policy. */
	for (struct kq_plog *pl = b->all_logs; pl; pl = pl->next_all) {
		int rv = b->sops->sync(pl->log);

		if (rv != 0) {
			kq__error("final sync of %s failed: %s", pl->dir,
				  kq_strerror(rv));
			b->exit_code = 1;
		}
	}
	b->stopping = 2;
	kq__topic_open_cancel_all(b); /* answers any CRTP still waiting on it */
	kq__fwd_stop(b);
	kq__fetch_stop(b);
	kq__sessions_close_all(b);
	b->serve_session = NULL;
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
	kq__topic_open_cancel_all(b);
	kq__fwd_stop(b);
	kq__fetch_stop(b);
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

/* ------------------------------------------------------------ orphans */

/* Whether `name` is a partition folder as open_partition() names them,
 * `<topic>-<n>` in decimal without leading zeros; *known says whether the
 * metadata has that partition. */
static int partition_folder(struct kq_broker *b, const char *name, int *known)
{
	const char *dash = strrchr(name, '-'), *d;
	char topic[KQ__NAME_MAX + 1];
	struct kq__topic *t;
	unsigned long n = 0;

	if (!dash || dash == name || (size_t)(dash - name) > KQ__NAME_MAX ||
	    !dash[1] || (dash[1] == '0' && dash[2]))
		return 0;
	for (d = dash + 1; *d; d++) {
		if (*d < '0' || *d > '9' || n > UINT32_MAX / 10)
			return 0;
		n = n * 10 + (unsigned long)(*d - '0');
	}
	memcpy(topic, name, (size_t)(dash - name));
	topic[dash - name] = '\0';
	if (n > UINT32_MAX || !kq__name_valid(topic))
		return 0;
	t = kq__topic_get(b, topic);
	/* A topic that failed to open (out of descriptors, say) is still
	 * the metadata's: its folders stay where they are. */
	*known = (t && n < t->nparts) ||
		 kq__map_get(&b->unopened, topic, strlen(topic));
	return 1;
}

/* Partition folders the metadata does not know (left over after the
 * metadata log was deleted by hand, say) would come back as the data of a
 * new topic of the same name: they are moved to orphaned/ instead.  Only a
 * broker that is the sole replica of its metadata knows it whole at
 * start. */
static void move_orphans(struct kq_broker *b)
{
	char from[4096], to[4096], stamp[32], odir[4096];
	const int *ids;
	struct dirent *de;
	struct tm tm;
	time_t now;
	DIR *d;

	if (kq__brokers_list(b, &ids) != 1)
		return;
	d = opendir(b->dir);
	if (!d) {
		kq__warn("data folder %s: %s", b->dir, strerror(errno));
		return;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(odir, sizeof(odir), "%s/orphaned", b->dir);
	while ((de = readdir(d))) {
		struct stat st;
		int known = 1, rv;

		if (!partition_folder(b, de->d_name, &known) || known)
			continue;
		snprintf(from, sizeof(from), "%s/%s", b->dir, de->d_name);
		if (stat(from, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		rv = make_dirs(odir);
		for (int i = 0; rv == 0 && i < 1000; i++) {
			int n = snprintf(to, sizeof(to), "%s/%s.%s", odir,
					 de->d_name, stamp);

			/* Two starts within a second: number the second. */
			if (i && n > 0 && (size_t)n < sizeof(to))
				n += snprintf(to + n, sizeof(to) - (size_t)n,
					      ".%d", i);
			if (n < 0 || (size_t)n >= sizeof(to))
				rv = -ENAMETOOLONG;
			else if (access(to, F_OK) != 0)
				break;
		}
		if (rv == 0 && rename(from, to) != 0)
			rv = -errno;
		if (rv != 0)
			kq__warn("partition folder %s is not in the metadata "
				 "and could not be moved aside: %s",
				 from, kq_strerror(rv));
		else
			kq__warn("partition folder %s is not in the metadata: "
				 "moved to %s",
				 from, to);
	}
	closedir(d);
}

/* ------------------------------------------------------------ opening */

static int load_all(struct kq_broker *b)
{
	const struct kq__config *cfg = b->cfg;
	char **dirs = kq__plugin_dirs(cfg->plugin_path, cfg->nplugin_path);
	size_t i;
	int rv;

	b->transports = calloc(cfg->ntransports, sizeof(*b->transports));
	b->partitioners = calloc(cfg->npartitioners, sizeof(*b->partitioners));
	if (!b->transports || !b->partitioners) {
		kq__plugin_dirs_free(dirs);
		return -ENOMEM;
	}
	rv = load_instance(b, &b->storage, cfg->storage, KQ_PLUGIN_STORAGE,
			   dirs);
	if (rv == 0)
		rv = load_instance(b, &b->consensus, cfg->consensus,
				   KQ_PLUGIN_CONSENSUS, dirs);
	for (i = 0; rv == 0 && i < cfg->npartitioners; i++) {
		rv = load_instance(b, &b->partitioners[i], cfg->partitioners[i],
				   KQ_PLUGIN_PARTITIONER, dirs);
		b->npartitioners += rv == 0;
	}
	for (i = 0; rv == 0 && i < cfg->ntransports; i++) {
		rv = load_instance(b, &b->transports[i], cfg->transports[i],
				   KQ_PLUGIN_TRANSPORT, dirs);
		b->ntransports += rv == 0;
	}
	kq__plugin_dirs_free(dirs);
	return rv;
}

static int init_all(struct kq_broker *b)
{
	size_t i;
	int rv;

	rv = init_instance(&b->storage);
	if (rv == 0)
		rv = init_instance(&b->consensus);
	for (i = 0; rv == 0 && i < b->npartitioners; i++)
		rv = init_instance(&b->partitioners[i]);
	if (rv != 0)
		return rv;
	b->sops = b->storage.mod.desc->ops;
	b->cops = b->consensus.mod.desc->ops;
	b->sync_policy = KQ_SYNC_ALWAYS;
	b->sync_interval_ms = 1000;
	if (b->sops->sync_policy)
		b->sync_policy = b->sops->sync_policy(b->storage.state,
						      &b->sync_interval_ms);
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
	return 0;
}

static int start_transports(struct kq_broker *b)
{
	for (size_t i = 0; i < b->ntransports; i++) {
		struct kq__instance *in = &b->transports[i];
		const struct kq_transport_ops *ops = in->mod.desc->ops;
		int rv = init_instance(in);

		if (rv != 0)
			return rv;
		rv = ops->start(in->state);
		if (rv != 0) {
			kq__error("transport %s: cannot start: %s",
				  in->mod.name, kq_strerror(rv));
			return rv;
		}
	}
	return 0;
}

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
	rv = kq__broker_api.session_open(b, &b->serve_session);
	if (rv == 0)
		rv = load_all(b);
	if (rv == 0)
		rv = init_all(b);
	if (rv != 0)
		return rv;
	rv = kq__apply_open(b);
	if (rv != 0)
		return rv;
	move_orphans(b);
	rv = start_transports(b);
	if (rv != 0)
		return rv;
	uv_check_start(&b->check, on_check);
	b->serving = 1;
	kq__defer_wake(b);
	if (b->sync_policy == KQ_SYNC_INTERVAL)
		uv_timer_start(&b->sync_timer, on_sync_timer,
			       b->sync_interval_ms, b->sync_interval_ms);
	uv_timer_start(&b->retention_timer, on_retention_timer,
		       cfg->retention_check_ms, cfg->retention_check_ms);
	kq__members_start(b);
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
	close_all_topics(b);
	kq__meta_close(b);
	kq__sessions_close_all(b); /* after a failed start: the serving one */
	b->serve_session = NULL;
	for (i = 0; i < b->ntransports; i++)
		fini_instance(&b->transports[i]);
	for (i = 0; i < b->npartitioners; i++)
		fini_instance(&b->partitioners[i]);
	fini_instance(&b->consensus);
	fini_instance(&b->storage);
	free(b->transports);
	free(b->partitioners);
	kq__map_free(&b->topics);
	kq__map_free(&b->subs);
	kq__map_free(&b->joining);
	kq__map_free(&b->creating);
	kq__map_free(&b->unopened);
	free(b->broker_ids);
	free(b->regs);
	free(b->dir);
	free(b);
}
