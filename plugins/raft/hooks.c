/* The storage hooks the core reads through: entries it no longer caches
 * are read back from the broker's store, terms from the term index. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

struct kq__raft_hook_read {
	struct kq__raft_entry *out;
	size_t n, room;
	uint64_t expect;
	size_t bytes;
	int error;
};

static int hook_read_one(void *ctx, const struct kq_record *rec)
{
	struct kq__raft_hook_read *hr = ctx;
	struct kq__raft_entry *e = &hr->out[hr->n];

	if (rec->offset != hr->expect) {
		hr->error = KQ_ECORRUPT;
		return 1;
	}
	memset(e, 0, sizeof(*e));
	e->index = rec->offset;
	e->term = rec->term;
	e->flags = rec->flags & KQ__RAFT_ENTRY_CONTROL;
	hr->error = kq__raft_entry_encode(rec, true, &e->data, &e->len);
	if (hr->error)
		return 1;
	hr->n++;
	hr->expect++;
	hr->bytes += e->len;
	return hr->n >= hr->room;
}

/* The core's read hook: stored records become entries. */
int kq__raft_hook_read(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		       struct kq__raft_entry *out, size_t *n)
{
	struct kq_group *g = ctx;
	struct kq__raft_hook_read hr = {out, 0, to - from + 1, from, 0, 0};
	uint64_t next;
	int rv;

	while (hr.n < hr.room && (!max_bytes || hr.bytes < max_bytes)) {
		rv = kq__raft_store(g)->read(g->store, hr.expect, to + 1,
					     max_bytes ? max_bytes - hr.bytes
						       : 1u << 20,
					     hook_read_one, &hr, &next);
		if (rv < 0 && !hr.error)
			hr.error = rv;
		if (hr.error || rv == 0)
			break;
	}
	if (!hr.error && hr.n == 0)
		hr.error = KQ_ECORRUPT;
	if (hr.error) {
		g->mod->host->log(g->mod->host, KQ_LOG_ERROR,
				  "group %s: cannot read offset %" PRIu64
				  " back from the log: %s",
				  g->name, hr.expect, kq_strerror(hr.error));
		for (size_t i = 0; i < hr.n; i++)
			kq__raft_buf_unref(out[i].data);
		hr.n = 0;
	}
	*n = hr.n;
	return hr.error;
}

/* The core's term_at hook: from the terms kept in memory. */
int kq__raft_hook_term_at(void *ctx, uint64_t index, uint64_t *term)
{
	struct kq_group *g = ctx;

	if (kq__raft_terms_lookup(g, index, term) == 0)
		return 0;
	return kq__raft_store(g)->term_at(g->store, index, term);
}
