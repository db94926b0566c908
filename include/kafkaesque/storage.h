/* kafkaesque plugin SDK: storage modules.
 *
 * A storage module keeps logs: one per partition replica (and one for the
 * metadata group), each in its own folder.  A log is a sequence of records
 * with strictly increasing offsets; offsets may have gaps (consensus
 * control records take offsets too) but never repeat.
 *
 * Threading: every op runs on the loop thread, except sync(), which the
 * core runs on a worker thread so that the loop keeps accepting writes
 * while the disk flushes.  sync() may therefore run concurrently with
 * append(), read() and the other ops on the same log; the core never runs
 * two sync() calls of one log at once, and never calls close() while a
 * sync() is running. */
#ifndef KAFKAESQUE_STORAGE_H
#define KAFKAESQUE_STORAGE_H

#include "plugin.h"

/* Record flags. */
enum {
	KQ_RECORD_CONTROL = 1u << 0, /* consensus-internal (a no-op of a new
				      * term, ...): never shown to consumers */
};

/* One record.  On append every pointer is borrowed for the duration of the
 * call; in read callbacks they point into storage buffers valid only
 * until the callback returns. */
struct kq_record {
	uint64_t offset;
	uint64_t term;	      /* consensus term (0 without consensus) */
	int64_t timestamp_ms; /* wall clock at the leader's append */
	uint32_t flags;	      /* KQ_RECORD_* */
	const void *key;      /* NULL or key_len == 0: no key */
	uint32_t key_len;
	const void *value;
	uint32_t value_len;
};

struct kq_log_options {
	uint64_t segment_bytes;	 /* roll to a new segment past this size */
	int64_t retention_ms;	 /* -1: keep forever */
	int64_t retention_bytes; /* -1: no size bound */
	/* Nonzero when the core calls sync() on this log only before it
	 * closes it (its fsync policy is "never"): a file written since the
	 * last sync may then be closed without a sync, to stay within a
	 * descriptor bound.  Zero: every record appended must stay durable
	 * by the next sync(). */
	int unsynced;
};

/* Durable per-log consensus state (Raft's currentTerm and votedFor). */
struct kq_hard_state {
	uint64_t term;
	uint64_t vote; /* broker id voted for in term, 0 = none */
};

/* Durability policies, see kq_storage_ops.sync_policy. */
enum kq_sync_policy {
	KQ_SYNC_ALWAYS = 0,
	KQ_SYNC_INTERVAL = 1,
	KQ_SYNC_NEVER = 2,
};

/* Offsets from <= offset < end. */
struct kq_offset_range {
	uint64_t from, end;
};

struct kq_log; /* opaque, owned by the storage module */

/* The fewest logs synced in one loop turn that the core hands to
 * sync_many() together (see there). */
#define KQ_SYNC_MANY_MIN 8

/* Called by read() once per record in offset order.  Return 0 to go on,
 * non-zero to stop after this record. */
typedef int (*kq_record_cb)(void *ctx, const struct kq_record *rec);

struct kq_storage_ops {
	KQ_MODULE_OPS_FIELDS

	/* Opens (creating when missing) the log kept in folder `dir`,
	 * recovering it: a torn tail of the newest segment is truncated and
	 * logged (complete records failing their checksum are dropped too,
	 * and their offsets kept as lost, see lost()); a missing or
	 * inconsistent index is rebuilt.  On success
	 * *out is owned by the caller until close(). */
	int (*open)(void *state, const char *dir,
		    const struct kq_log_options *opts, struct kq_log **out);
	void (*close)(struct kq_log *log);

	/* Appends `n` records in one write.  Each recs[i].offset must be at
	 * least next_offset() and greater than the one before it.  The data
	 * is written but not durable until a later sync() returns 0.  After a
	 * write or sync error the log refuses appends (KQ_EUNAVAILABLE) until
	 * it is reopened; what was durable stays readable. */
	int (*append)(struct kq_log *log, const struct kq_record *recs,
		      size_t n);

	/* Makes every record appended before the call durable (fdatasync of
	 * the segments written, and of the folder when a segment was
	 * created), whatever the policy: the core alone decides when to
	 * call it.  Never retries an error into success. */
	int (*sync)(struct kq_log *log);

	/* sync() of each of logs[0..n) (all opened by this module), with
	 * results[i] what sync(logs[i]) would return; returns 0.  One call
	 * may make many logs durable at the cost of one (the segment module
	 * uses one syncfs() per file system for them), so the core hands it
	 * every log it syncs in one loop turn when there are at least
	 * KQ_SYNC_MANY_MIN of them; fewer are synced with sync(), each on a
	 * worker of its own, in parallel.  Runs on a worker thread, like
	 * sync(); `logs` and `results` are the caller's. */
	int (*sync_many)(void *state, struct kq_log *const *logs, size_t n,
			 int *results);

	/* Calls cb for each record with from <= offset < end, in order,
	 * stopping once the record data passed exceeds max_bytes (at least
	 * one record is passed when any is in range) or cb returns non-zero.
	 * *next is set to the offset to read from next time.  Returns the
	 * number of records passed, or KQ_ECORRUPT when a record fails its
	 * checksum (then *next is the damaged record's offset and the records
	 * before it were passed), or KQ_EUNAVAILABLE when `from` is past what
	 * a failed log's last good sync covered and records are there: 0
	 * would say offsets have a gap, and a reader would skip them. */
	int (*read)(struct kq_log *log, uint64_t from, uint64_t end,
		    size_t max_bytes, kq_record_cb cb, void *ctx,
		    uint64_t *next);

	/* The first readable offset, and the offset after the last record
	 * (both equal for an empty log). */
	uint64_t (*first_offset)(struct kq_log *log);
	uint64_t (*next_offset)(struct kq_log *log);

	/* The term of the record at `offset`; -ENOENT when there is none. */
	int (*term_at)(struct kq_log *log, uint64_t offset, uint64_t *term);

	/* Drops every record with offset >= `from` (a follower discarding a
	 * conflicting uncommitted suffix); durable when it returns. */
	int (*truncate)(struct kq_log *log, uint64_t from);

	/* Drops every record and restarts the empty log at `next` (a
	 * follower whose needed entries were deleted on the leader). */
	int (*reset)(struct kq_log *log, uint64_t next);

	/* Deletes whole segments whose records all have offsets below
	 * `before` (log compaction after a snapshot), never the newest one.
	 * first_offset() may stay below `before`. Returns segments deleted. */
	int (*compact)(struct kq_log *log, uint64_t before);

	/* The offset retention would drop records before: the base of the
	 * oldest whole segment that stays within the retention bounds
	 * (never past the newest segment's base); first_offset() when
	 * nothing is due.  Deletes nothing: the consensus module decides
	 * what may go (only committed records) and deletes it with
	 * compact(). */
	int (*retention_point)(struct kq_log *log, int64_t now_ms,
			       uint64_t *before);

	/* Hard state, replaced atomically and durably. A log that never
	 * saved one loads {0, 0}. */
	int (*save_hard_state)(struct kq_log *log,
			       const struct kq_hard_state *hs);
	/* Stages hs without waiting for the disk: it is written now and
	 * the next sync() or sync_many() of the log makes it durable with
	 * the records, so that many logs' hard states share one flush and
	 * the loop never waits for one.  Until that sync returns 0, a
	 * crash leaves the last durable hard state or hs, whole.  Returns
	 * KQ_EBUSY when the log must be synced first: the hard state
	 * staged before is not durable yet, or the log is new and not
	 * durable itself; sync() and stage again.  While one is staged and
	 * not durable, save_hard_state() refuses (KQ_EBUSY) too. */
	int (*stage_hard_state)(struct kq_log *log,
				const struct kq_hard_state *hs);
	int (*load_hard_state)(struct kq_log *log, struct kq_hard_state *hs);

	/* The latest snapshot of a state-machine group, kept beside its
	 * log and replaced atomically and durably: after a crash load
	 * returns the old one or the new one, whole.  `data` (len bytes) is
	 * borrowed by save.  Load hands back a buffer allocated with
	 * host->malloc that the caller frees with host->free; -ENOENT when
	 * none was saved, KQ_ECORRUPT (logged, naming the file) when it is
	 * damaged.  Save refuses (KQ_EUNAVAILABLE) on a log that failed a
	 * write or sync, until it is reopened, as save_hard_state does. */
	int (*save_snapshot)(struct kq_log *log, uint64_t index, uint64_t term,
			     const void *data, size_t len);
	int (*load_snapshot)(struct kq_log *log, uint64_t *index,
			     uint64_t *term, void **data, size_t *len);

	/* The durability policy the module was configured with.  Only the
	 * core acts on it, when it syncs and acknowledges writes:
	 * KQ_SYNC_ALWAYS (sync before every acknowledgement, grouped),
	 * KQ_SYNC_INTERVAL (sync every *interval_ms, acknowledge after the
	 * write) or KQ_SYNC_NEVER (leave write-back to the OS; sync only at
	 * a graceful stop).  The module's own calls do not change with
	 * it, but for close() of a failed log under KQ_SYNC_ALWAYS: that
	 * drops the records no sync() made durable, none of them
	 * acknowledged, whose pages a failed sync may have left in the
	 * cache, marked clean though never written. */
	int (*sync_policy)(void *state, uint32_t *interval_ms);

	/* Offsets lost to damage: complete records that failed their
	 * checksum at the end of the log when it was opened, and were
	 * dropped.  They may have been acknowledged, so they are never
	 * handed out again by a module that assigns offsets itself (it
	 * starts at the end of the last range when next_offset() is below),
	 * and a reader refuses them rather than skip them unawares.
	 * Appending at an offset below a range's end drops that range (a
	 * replica fetching the records from its peers); truncate() and
	 * reset() keep it.  *out is owned by the log and valid until the
	 * next call on it; ranges are in offset order.  Returns how many. */
	int (*lost)(struct kq_log *log, const struct kq_offset_range **out);
};

#endif /* KAFKAESQUE_STORAGE_H */
