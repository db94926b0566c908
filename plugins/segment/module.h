/* Internal types of the segment storage module: the module state, a log
 * (one folder), its segments and the cursor that reads them. */
#ifndef KQ_SEGMENT_MODULE_H
#define KQ_SEGMENT_MODULE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <kafkaesque/storage.h>

#include "index.h"

/* Effective settings: the module's config, with the per-log options of
 * open() applied on top. */
struct kq__seg_conf {
	uint64_t segment_bytes;
	uint32_t open_files; /* descriptors held across calls, see fds.c */
	enum kq_sync_policy fsync; /* only reported (sync_policy): the
				    * core alone acts on it */
	uint32_t fsync_interval_ms;
	int64_t retention_ms;	 /* -1: keep forever */
	int64_t retention_bytes; /* -1: no size bound */
	uint64_t index_interval; /* bytes of log between index entries */
	bool unsynced;		 /* kq_log_options.unsynced */
	bool syncfs;		 /* one syncfs() for many files, see sync.c */
};

struct kq_log;
struct kq__seg;

/* Something that holds descriptors across calls: a log's folder (seg
 * NULL) or a segment's .log and .index files.  On its module's
 * least-recently-used list while it holds any. */
struct kq__seg_fdslot {
	struct kq__seg_fdslot *prev, *next; /* toward the oldest, the newest */
	bool linked;			    /* on the list */
	struct kq_log *log;
	struct kq__seg *seg;
};

/* The module's bound on descriptors held across calls, whatever the
 * number of logs and segments: holders past it are closed least recently
 * used first and reopened when needed.  Loop thread only. */
struct kq__seg_fds {
	unsigned limit;
	unsigned held; /* descriptors holders have now */
	/* Holders by last use: `oldest` is closed first. */
	struct kq__seg_fdslot *oldest, *newest;
	/* The module's (evict.c): closes what segment holder s has, or
	 * returns false when it must stay (written since its last sync and
	 * not `force`, still used by a sync or a read, or its index could
	 * not be written). */
	bool (*close)(struct kq__seg_fdslot *s, bool force);
	/* Before closes are forced: makes the written files held durable
	 * at once where one call can. */
	void (*sync_held)(struct kq__seg_fds *fds);
};

/* A file system the module's logs live on (fsys.c).  One syncfs() on
 * `fd` makes every file written on it durable, where each file would
 * cost an fdatasync and a journal commit of its own.  `fd` is opened
 * before the first write of any log on it and held until fini, so that
 * syncfs() reports every error since (Linux 5.17 and later).  An error
 * is reported through `fd` once, to one caller: the calls take turns
 * (`mu`), and once one reported an error `broken` is set and each file
 * is fdatasync'd from then on, its own descriptor still reporting it. */
struct kq__seg_fsys {
	dev_t dev;
	int fd;
	pthread_mutex_t mu; /* held across a syncfs() and setting broken */
	int broken;	    /* atomic: set (to the errno) by sync workers */
	/* Logs created here and not yet known durable (kq_log.settle_no):
	 * `created` numbers them (atomic, bumped on the loop once a new
	 * log's folder and files exist); every syncfs() that succeeds
	 * raises `covered` to the `created` it read before it began. */
	uint64_t created, covered;
};

#define KQ__SEG_FSYS_MAX 8

/* Owned by the module between init() and fini(). */
struct kq__seg_module {
	const struct kq_host *host;
	struct kq__seg_conf conf;
	struct kq__seg_fds fds;
	struct kq__seg_fsys fsys[KQ__SEG_FSYS_MAX]; /* loop thread adds */
	size_t nfsys;
	bool syncfs_ok; /* the kernel reports errors through syncfs() */
};

/* The keys of the segment section, NULL-terminated (config.c). */
extern const char *const kq__seg_conf_keys[];

/* Parses the module's config section (host->config; NULL: all defaults)
 * into *conf.  Returns 0, or KQ_ECONFIG after logging one line naming the
 * JSON path. */
int kq__seg_conf_parse(const struct kq_host *host, struct kq__seg_conf *conf);

/* A segment's .log file descriptor.  Shared with sync(), which may still
 * flush it after the segment was deleted: closed when the last reference
 * goes.  refs, dirty, dprev and dnext are guarded by the log's mutex. */
struct kq__seg_sfile {
	int fd;
	unsigned refs;
	bool dirty;			     /* on the log's to-sync list */
	struct kq__seg_sfile *dprev, *dnext; /* on the to-sync list */
};

/* One segment: a .log and an .index file named after `base`.  Owned by
 * the log and used on the loop thread only. */
struct kq__seg {
	struct kq__seg_fdslot slot; /* file and ifd, on the module's LRU */
	unsigned held;		    /* of them, counted against the bound */
	bool sealed;   /* not the newest: its index file is whole */
	uint64_t base; /* from the file name: offsets >= base */
	uint64_t size; /* bytes of the .log file in use */
	struct kq__seg_sfile *file; /* NULL while closed */
	int ifd; /* .index fd of the newest while open, or -1 */
	struct kq__seg_index idx;
	bool idx_loaded;
	bool idx_trusted; /* built by a scan in this process */
	bool tail_known;  /* last, last_term and max_ts are set */
	uint64_t last;	  /* offset of the last record */
	uint64_t last_term;
	int64_t max_ts;	   /* largest timestamp seen in the tail */
	uint64_t reported; /* damaged position already logged */
};

/* Ranges of lost offsets a log keeps (lost.c). */
#define KQ__SEG_LOST_MAX 16

/* The log of one folder.  Everything is used on the loop thread only
 * except the fields under `mu`, which sync() shares from its worker. */
struct kq_log {
	const struct kq_host *host;
	struct kq__seg_conf conf;
	struct kq__seg_fds *fds;   /* the module's */
	struct kq__seg_fsys *fsys; /* the module's, or NULL: no syncfs() */
	/* A log created by open() skips the syncs that would make its new
	 * folder, its name and its first segment durable: thousands of
	 * partitions created at once then cost one syncfs() instead of
	 * three syncs each.  Until one syncfs() began after the open
	 * (settle_no <= fsys->covered), the log settles (kq__seg_log_settle)
	 * before anything of it is made durable; an old log too, whose name
	 * a failed settle may have left undurable.  0: nothing to settle.
	 * Atomic. */
	uint64_t settle_no;
	struct kq__seg_fdslot slot;
	char *dir;
	int dirfd;	       /* -1 while closed: see kq__seg_log_dirfd() */
	struct kq__seg **segs; /* by base; the last one is the newest */
	size_t nsegs, cap;
	uint8_t *wbuf; /* append encoding buffer */
	size_t wcap;
	uint64_t first;	 /* cached first_offset() */
	uint64_t hs_seq; /* of the newest copy in raft.state (0: none of
			  * format 2 known yet) */
	/* raft.state was written by open() with its folder: durable once
	 * the log is settled (which makes it so where it settles file by
	 * file), so a first save goes in place.  Set before settle_no is,
	 * then read only. */
	bool hs_made;
	bool hs_unread; /* folder made by open(), nothing saved since */
	bool reading;	/* read() is running: rbuf is in use */
	uint8_t *rbuf;	/* read buffer reused across reads */
	size_t rcap;

	pthread_mutex_t mu;
	uint64_t next;		     /* next_offset(); written under mu */
	uint64_t durable_next;	     /* next_offset() at the last good sync */
	uint64_t gen;		     /* bumped when records are dropped */
	struct kq__seg_sfile *dirty; /* written since the last sync */
	bool dir_dirty;		     /* segments created or deleted */
	int failed;		     /* first error; atomic loads elsewhere */
	/* A hard state staged (kq__seg_log_stage_hard_state): written in
	 * raft.state for the next sync to make durable (hs_dirty), and
	 * taken by a sync running now (hs_syncing).  Meanwhile another
	 * save or stage waits its turn (KQ_EBUSY): it would overwrite the
	 * copy of the last durable one. */
	bool hs_dirty, hs_syncing;
	bool reason_pending; /* reason not logged yet */
	char reason[320];

	/* Offsets lost to damage (lost.c), by offset. */
	struct kq_offset_range lost[KQ__SEG_LOST_MAX];
	size_t nlost;
};

#define KQ__SEG_CHUNK                                                          \
	(64 * 1024) /* read() fetches the log this much at a time */

/* Reads the records of one segment in order, checking each: position,
 * checksum, structure, offsets above the previous one.  Owned by its
 * caller on the loop thread; the segment must stay alive meanwhile. */
struct kq__seg_cursor {
	struct kq_log *log;
	struct kq__seg *seg;
	struct kq__seg_sfile *file; /* a reference of the cursor's own */
	int err;		    /* why file is NULL */
	uint8_t *buf;		    /* buffered bytes of the file */
	size_t cap;
	bool own;	/* buf is ours to free, not log->rbuf */
	uint64_t bpos;	/* file position of buf[0] */
	size_t blen;	/* valid bytes in buf */
	size_t chunk;	/* bytes fetched per read */
	uint64_t pos;	/* position of the next record */
	uint64_t limit; /* end of the data to scan */
	bool has_prev;
	uint64_t prev;	 /* offset of the last record returned */
	const char *why; /* what was wrong with a damaged record */
};

/* Starts a cursor at `pos` of `seg`, which must have its file open; the
 * cursor keeps the file open until fini, even if the segment lets it go.
 * `shared` borrows log->rbuf (read() only).  Returns 0 or -ENOMEM. */
int kq__seg_cursor_init(struct kq__seg_cursor *c, struct kq_log *log,
			struct kq__seg *seg, uint64_t pos, uint64_t limit,
			size_t chunk, bool shared);

/* Releases the cursor's buffer, or hands a shared one back to the log. */
void kq__seg_cursor_fini(struct kq__seg_cursor *c);

/* Returns 1 with *rec (valid until the next call) and *size for the next
 * record, 0 at the limit, KQ_ECORRUPT for a damaged record (c->pos stays
 * on it, c->why says why) or -errno on an I/O error. */
int kq__seg_cursor_next(struct kq__seg_cursor *c, struct kq_record *rec,
			uint64_t *size);

/* A best guess at the offset of the damaged record at c->pos: its offset
 * field when plausible, else one above the last good record. */
uint64_t kq__seg_cursor_bad_offset(const struct kq__seg_cursor *c);

/* --- segments (segment.c) -------------------------------------------- */

/* Writes the file name of a segment, "<20 digits>.<ext>", into buf[32]. */
void kq__seg_name(char *buf, uint64_t base, const char *ext);

/* Reads the header of the open .log file `fd` of the segment at `base`:
 * 0 when it is whole and names that segment, 1 when it is short or not
 * (torn at creation, or damaged), or a negative error. */
int kq__seg_check_header(int fd, uint64_t base);

/* Opens `name` in the log's folder with `flags` and gives its size.  On
 * success the caller owns *fd; on failure returns -errno. */
int kq__seg_open_sized(struct kq_log *log, const char *name, int flags, int *fd,
		       uint64_t *size);

/* Allocates an unopened segment.  Returns NULL without memory. */
struct kq__seg *kq__seg_new(struct kq_log *log, uint64_t base);

/* Releases a segment's memory and descriptors (not its files). */
void kq__seg_free(struct kq_log *log, struct kq__seg *seg);

/* Creates the files of a new, empty segment at `base` with their headers,
 * ready for appending; not synced.  With `tmp` the files get a ".tmp"
 * suffix until kq__seg_publish().  Returns 0 or -errno. */
int kq__seg_create(struct kq_log *log, uint64_t base, bool tmp,
		   struct kq__seg **out);

/* Renames the ".tmp" files of a segment made by kq__seg_create() to
 * their final names.  Returns 0 or -errno. */
int kq__seg_publish(struct kq_log *log, struct kq__seg *seg);

/* Opens a segment's .log file and checks its header, once.  Returns 0,
 * KQ_ECORRUPT (logged) or -errno. */
int kq__seg_open_file(struct kq_log *log, struct kq__seg *seg);

/* Reads the .index file into the empty seg->idx, keeping its valid
 * prefix (entries below `log_size`).  Returns 0 when the whole file was
 * valid, KQ_ECORRUPT when only a prefix was, or -errno (-ENOENT: no
 * file). */
int kq__seg_read_index(struct kq_log *log, struct kq__seg *seg,
		       uint64_t log_size);

/* Replaces the .index file with the in-memory index (temp file, rename;
 * not synced: an index is only a hint that is checked when used). */
int kq__seg_write_index(struct kq_log *log, struct kq__seg *seg);

/* Opens the .index file for appending entries (the newest segment). */
int kq__seg_open_ifd(struct kq_log *log, struct kq__seg *seg);

/* Writes the index entries not yet in the file. Returns 0 or -errno. */
int kq__seg_flush_index(struct kq_log *log, struct kq__seg *seg);

/* Logs a damaged record of `seg` at `pos` once per position. */
void kq__seg_report(struct kq_log *log, struct kq__seg *seg, uint64_t pos,
		    const char *why);

/* Removes the files of a segment (the caller then frees it and marks the
 * folder for sync).  Returns 0 or -errno. */
int kq__seg_unlink(struct kq_log *log, struct kq__seg *seg);

/* Counts n descriptors a segment opened against the module's bound and
 * makes it the most recently used holder.  Done once they are in place,
 * so a segment is never closed to make room while it is being set up. */
void kq__seg_hold(struct kq_log *log, struct kq__seg *seg, unsigned n);

/* Makes the open .log descriptor fd the segment's (seg->file, not yet
 * counted against the bound), or closes it and returns -ENOMEM. */
int kq__seg_adopt_file(struct kq_log *log, struct kq__seg *seg, int fd);

/* Closes what a segment holds: its .log reference (readers and syncs
 * keep theirs) and .index descriptor, after writing pending index
 * entries.  Returns 0, or the error that kept the index open. */
int kq__seg_close_fds(struct kq_log *log, struct kq__seg *seg);

/* --- descriptors held across calls, within the bound (fds.c) -------- */

/* An empty bound of `limit` descriptors; room is made by closing the
 * least recently used holders, segments through `close` and
 * `sync_held` (see struct kq__seg_fds). */
void kq__seg_fds_init(struct kq__seg_fds *fds, unsigned limit,
		      bool (*close)(struct kq__seg_fdslot *s, bool force),
		      void (*sync_held)(struct kq__seg_fds *fds));

/* Makes `s` the most recently used holder. */
void kq__seg_fds_touch(struct kq__seg_fds *fds, struct kq__seg_fdslot *s);

/* Before a holder opens a descriptor: closes the least recently used
 * others (never `keep`) until one more fits within the limit. */
void kq__seg_fds_make_room(struct kq__seg_fds *fds,
			   struct kq__seg_fdslot *keep);

/* A holder opened (n > 0) or closed (n < 0) descriptors; one that holds
 * none leaves the list. */
void kq__seg_fds_count(struct kq__seg_fds *fds, struct kq__seg_fdslot *s,
		       int n);

/* Takes a holder that goes away off the list, if it is on it. */
void kq__seg_fds_unlink(struct kq__seg_fds *fds, struct kq__seg_fdslot *s);

/* After a call that failed with `err`: where that is EMFILE or ENFILE,
 * closes up to 8 of the least recently used holders' descriptors (never
 * `keep`'s).  Whether any went, so that the call may be made again. */
bool kq__seg_fds_shed(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep,
		      int err);

/* openat(); where the process or the system is out of descriptors
 * (clients can take them all), once more after closing a few of the
 * least recently used holders' (never `keep`'s): the bound is a
 * ceiling, not a promise, and a log must not fail for want of one
 * descriptor.  -1 with errno set on failure. */
int kq__seg_fds_openat(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep,
		       int dirfd, const char *path, int flags, mode_t mode);

/* --- a log's folder (folder.c) ------------------------------------- */

/* The log's folder, opened when closed (within the bound).  Returns the
 * descriptor, or -1 with errno set. */
int kq__seg_log_dirfd(struct kq_log *log);

/* openat, unlinkat, renameat and fstatat in the log's folder; -1 with
 * errno set when the folder cannot be opened. */
int kq__seg_log_openat(struct kq_log *log, const char *name, int flags,
		       mode_t mode);
int kq__seg_log_unlinkat(struct kq_log *log, const char *name, int flags);
int kq__seg_log_renameat(struct kq_log *log, const char *from, const char *to);
int kq__seg_log_fstatat(struct kq_log *log, const char *name, struct stat *st);

/* --- shared .log descriptors, the to-sync list (sfile.c) ------------- */

/* A new reference-counted descriptor holder (refs 1), or NULL. */
struct kq__seg_sfile *kq__seg_sfile_new(struct kq_log *log, int fd);

/* Puts the file on the to-sync list unless it is there.  Caller holds
 * log->mu. */
void kq__seg_sfile_mark(struct kq_log *log, struct kq__seg_sfile *f);

/* Makes f's writes durable now (when it is on the to-sync list, or
 * `always`) and takes it off that list.  The list's reference is dropped
 * only once the data is durable: a sync of the log running meanwhile
 * either takes f itself or finds it done.  Returns 0 or -errno (the
 * caller fails the log).  Takes log->mu. */
int kq__seg_sfile_sync(struct kq_log *log, struct kq__seg_sfile *f,
		       bool always);

/* Takes f off the to-sync list without a sync (kq_log_options.unsynced),
 * dropping the list's reference.  Takes log->mu. */
void kq__seg_sfile_unlist(struct kq_log *log, struct kq__seg_sfile *f);

/* Drops a reference; the last one closes the fd.  Takes log->mu. */
void kq__seg_sfile_unref(struct kq_log *log, struct kq__seg_sfile *f);

/* Takes a reference.  Takes log->mu. */
void kq__seg_sfile_ref(struct kq_log *log, struct kq__seg_sfile *f);

/* Whether a reference besides its segment's and its to-sync list's holds
 * f (a sync on a worker took it, a cursor reads it): dropping the
 * segment's would not close it.  Off the loop only a listed file gains
 * a reference, so a file found unshared stays so until the loop lists
 * or reads it.  Takes log->mu. */
bool kq__seg_sfile_shared(struct kq_log *log, struct kq__seg_sfile *f);

/* --- closing a segment to keep the bound (evict.c) ----------------- */

/* The hooks the module hands kq__seg_fds_init(): see struct kq__seg_fds.
 * Loop thread. */
bool kq__seg_evict_close(struct kq__seg_fdslot *s, bool force);
void kq__seg_evict_sync_held(struct kq__seg_fds *fds);

/* --- a segment's index and tail, by scanning (scan.c) ---------------- */

/* Loads the index, once, rebuilding it from the log when the file is
 * missing, short or inconsistent.  Returns 0, or an error of the file. */
int kq__seg_load_index(struct kq_log *log, struct kq__seg *seg);

/* Opens seg's .log file (kq__seg_open_file), then loads its index. */
int kq__seg_open_indexed(struct kq_log *log, struct kq__seg *seg);

/* Rebuilds the index by scanning the log from its header up to the first
 * damaged record and rewrites the .index file.  *end is where the scan
 * stopped.  Returns 0 or -errno. */
int kq__seg_rebuild_index(struct kq_log *log, struct kq__seg *seg,
			  uint64_t *end);

/* Fills seg->last, last_term and max_ts by scanning from the last index
 * entry, once.  Returns 0, KQ_ECORRUPT or -errno. */
int kq__seg_tail(struct kq_log *log, struct kq__seg *seg);

/* --- a log's first failure (fail.c) ---------------------------------- */

/* Marks the log failed with `err` (first failure wins) and keeps a
 * reason to log.  Any thread. */
void kq__seg_log_fail(struct kq_log *log, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logs a pending failure reason; loop thread. */
void kq__seg_log_report(struct kq_log *log);

/* The first error of a failed log, or 0. */
int kq__seg_log_failed(struct kq_log *log);

/* --- a log's segments (segs.c) --------------------------------------- */

/* Appends a segment as the newest.  Returns 0 or -ENOMEM. */
int kq__seg_log_push_seg(struct kq_log *log, struct kq__seg *seg);

/* Deletes the segment at position i of log->segs: files, then memory.
 * Returns 0 or -errno (the log is then failed). */
int kq__seg_log_drop_seg(struct kq_log *log, size_t i);

/* Recomputes log->first from the oldest segment. */
void kq__seg_log_refresh_first(struct kq_log *log);

/* Sets next_offset() from the newest segment, dropping durability claims
 * above it when records were removed (`dropped`). */
void kq__seg_log_set_next(struct kq_log *log, bool dropped);

/* --- recovery at open (recover.c) ------------------------------------- */

/* Recovers seg, the newest segment of a log being opened: checks its
 * header, trusts the index up to its last entry whose record checks out,
 * and scans from there to the end of the file.  A bad record with valid
 * ones after it is damage: reported, kept and scanned past; one with
 * nothing valid after it is a torn tail, and truncated.  Returns 0 or an
 * error. */
int kq__seg_recover_newest(struct kq_log *log, struct kq__seg *seg);

/* --- how many logs one syncfs() must stand for (settle.c, sync.c) --- */

/* syncfs() writes back every dirty file of its file system, other
 * programs' too: it is used where it stands for the syncs of at least
 * this many logs (written in one loop turn, or opened and not yet
 * settled), so that a few partitions stay clear of other writers' dirty
 * data on a shared file system, and pay an fdatasync each as before.
 * The core's threshold for handing logs over together. */
#define KQ__SEG_TOGETHER KQ_SYNC_MANY_MIN

/* --- file systems and syncfs() (fsys.c) ---------------------------- */

/* Whether syncfs() reports every error on a kernel of this release
 * (uname's): Linux 5.17 and later. */
bool kq__seg_syncfs_reports_errors(const char *release);

/* Whether syncfs() on a file system of this type (statfs's f_type)
 * commits what fdatasync would. */
bool kq__seg_syncfs_commits(long f_type);

/* At init: no file system known yet; syncfs() is used when configured
 * and the kernel reports its errors.  fini closes what attach opened. */
void kq__seg_fsys_init(struct kq__seg_module *mod);
void kq__seg_fsys_fini(struct kq__seg_module *mod);

/* Sets log->fsys to the file system of its open folder, holding a
 * descriptor on it from now on when it is a new one (at most
 * KQ__SEG_FSYS_MAX; NULL past that, or without syncfs()); true then.
 * Called at open, before the log is written. */
bool kq__seg_fsys_attach(struct kq__seg_module *mod, struct kq_log *log);

/* Whether syncfs() may stand for the syncs of files on fs (NULL: no). */
bool kq__seg_fsys_usable(struct kq__seg_fsys *fs);

/* syncfs() of fs; false when it failed, which from then on makes fs
 * unusable (logged once, naming log's folder), or (without `wait`) when
 * another syncfs() of fs is running.  On success every log created on
 * fs before the call is settled.  With `no` (a log's settle_no; 0: none)
 * it is true at once when the syncfs() it waited for covered that log.
 * Any thread. */
bool kq__seg_fsys_sync(struct kq__seg_fsys *fs, struct kq_log *log, bool wait,
		       uint64_t no);

/* --- settling new logs, syncs by path (settle.c) -------------------- */

/* fsync of the folder at `path` (fdatasync of the file, with `file`) on
 * a descriptor of its own: from a worker, the loop may close the log's at
 * any time to stay within the bound.  Where no descriptor can be had
 * (EMFILE, ENFILE), one syncfs() of the log's file system stands for it
 * when that is usable.  0 or -errno; any thread. */
int kq__seg_log_sync_path(struct kq_log *log, const char *path, bool file);

/* kq__seg_log_sync_path() of the log's folder; failure fails the log. */
int kq__seg_log_sync_folder(struct kq_log *log);

/* fsync of the folder holding the log's folder (its name), on a
 * descriptor of its own.  0 or -errno; any thread. */
int kq__seg_log_sync_parent(struct kq_log *log);

/* Makes a log opened by open() durable, once: its folder, the folder's
 * name and (created) its first segment and raft.state, with one
 * syncfs() (which settles every log opened before it on that file
 * system), or where that fails an fsync of the parent folder and a sync
 * of the log.  Called before anything of the log is made durable; any
 * thread.  0 or -errno (the log is then failed). */
int kq__seg_log_settle(struct kq_log *log);

/* --- files replaced in the log's folder (replace.c) ---------------- */

/* Writes `head_len` bytes of head and `body_len` of body (none when 0) to
 * `tmp`, fdatasyncs it when `durable`, and renames it over `name`; on
 * failure `tmp` is gone.  The rename itself is not made durable.  0 or
 * -errno. */
int kq__seg_log_swap_file(struct kq_log *log, const char *name, const char *tmp,
			  const void *head, size_t head_len, const void *body,
			  size_t body_len, bool durable);

/* fsyncs the folder now (loop thread); failure fails the log. */
int kq__seg_log_sync_dir(struct kq_log *log);

/* Replaces the file `name` of the folder with `head_len` bytes of head
 * followed by `body_len` bytes of body (none when 0), atomically and
 * durably, by way of `tmp`.  0 or -errno. */
int kq__seg_log_replace_file(struct kq_log *log, const char *name,
			     const char *tmp, const void *head, size_t head_len,
			     const void *body, size_t body_len);

/* --- the log: open and close in log.c, each op in a file of its own --- */

/* The storage ops (storage.h documents them). */
int kq__seg_log_open(void *state, const char *dir,
		     const struct kq_log_options *opts, struct kq_log **out);
void kq__seg_log_close(struct kq_log *log);
int kq__seg_log_append(struct kq_log *log, const struct kq_record *recs,
		       size_t n);
int kq__seg_log_sync(struct kq_log *log);
int kq__seg_log_sync_many(void *state, struct kq_log *const *logs, size_t n,
			  int *results);
int kq__seg_log_read(struct kq_log *log, uint64_t from, uint64_t end,
		     size_t max_bytes, kq_record_cb cb, void *ctx,
		     uint64_t *next);
uint64_t kq__seg_log_first_offset(struct kq_log *log);
uint64_t kq__seg_log_next_offset(struct kq_log *log);
int kq__seg_log_term_at(struct kq_log *log, uint64_t offset, uint64_t *term);
int kq__seg_log_truncate(struct kq_log *log, uint64_t from);
int kq__seg_log_reset(struct kq_log *log, uint64_t next);

/* Cuts a failed log to what its last good sync made durable (close(),
 * under fsync "always").  Returns 0 or an error. */
int kq__seg_log_drop_unsynced(struct kq_log *log);
int kq__seg_log_compact(struct kq_log *log, uint64_t before);
int kq__seg_log_retention_point(struct kq_log *log, int64_t now_ms,
				uint64_t *before);
int kq__seg_log_save_hard_state(struct kq_log *log,
				const struct kq_hard_state *hs);
int kq__seg_log_stage_hard_state(struct kq_log *log,
				 const struct kq_hard_state *hs);
/* On a sync's worker: makes the hard state staged durable, by path (or
 * a syncfs where descriptors ran out).  0, or -errno (the log
 * failed). */
int kq__seg_log_sync_staged(struct kq_log *log);
/* Whether a log open() made is durable (settled), or was never one to
 * settle. */
bool kq__seg_log_settled(struct kq_log *log);
int kq__seg_log_load_hard_state(struct kq_log *log, struct kq_hard_state *hs);

/* At open() of a new folder, left to be settled: writes raft.state with
 * both copies of term 0, no vote (not synced), so that the first save
 * overwrites one in place instead of replacing the file.  0 or -errno
 * (no file left). */
int kq__seg_log_make_hard_state(struct kq_log *log);

int kq__seg_log_save_snapshot(struct kq_log *log, uint64_t index, uint64_t term,
			      const void *data, size_t len);
int kq__seg_log_load_snapshot(struct kq_log *log, uint64_t *index,
			      uint64_t *term, void **data, size_t *len);
int kq__seg_log_lost(struct kq_log *log, const struct kq_offset_range **out);

/* lost.c: reads lost_offsets at open (0 when there is none; KQ_ECORRUPT,
 * logged, when it is damaged); adds the range [from, end) found lost by
 * recovery, durably; drops the ranges that end above `offset`, where
 * records are appended (they refill them), failing the log when the
 * file cannot be updated.  0 or a negative error. */
int kq__seg_lost_load(struct kq_log *log);
int kq__seg_lost_add(struct kq_log *log, uint64_t from, uint64_t end);
int kq__seg_lost_refill(struct kq_log *log, uint64_t offset);

#endif /* KQ_SEGMENT_MODULE_H */
