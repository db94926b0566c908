/* Requests between the cores of two brokers (kq_consensus_ops.call and
 * reply) over the cluster port: ids, deadlines, the calls of a peer that
 * went away, and a cap on the requests of other brokers served here at
 * once.
 *
 * A REPLY frame's body is one status byte of this module (OK, or BUSY
 * when the peer had too many requests in flight) and the core's answer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "module.h"

enum { CALL_OK = 0, CALL_BUSY = 1 };

struct kq_incoming {
	int from;
	uint64_t conn; /* the connection the request came on */
	uint64_t id;
};

static size_t slot_of(const struct kq__raft_module *mod, uint64_t id)
{
	id ^= id >> 31;
	id *= 0x9e3779b97f4a7c15ull;
	return (size_t)(id >> 32) & (mod->call_cap - 1);
}

/* The slot of call `id` to peer `to`, or of the empty slot that ends
 * its probe. */
static size_t find_slot(struct kq__raft_module *mod, uint64_t id, int to)
{
	size_t i = slot_of(mod, id);

	for (;; i = (i + 1) & (mod->call_cap - 1)) {
		struct kq_call *c = mod->call_slots[i];

		mod->calls_looked++;
		if (!c || (c->id == id && c->to == to))
			return i;
	}
}

static int grow(struct kq__raft_module *mod)
{
	size_t cap = mod->call_cap ? mod->call_cap * 2 : 64;
	struct kq_call **old = mod->call_slots, **slots;
	size_t old_cap = mod->call_cap;

	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	mod->call_slots = slots;
	mod->call_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			slots[find_slot(mod, old[i]->id, old[i]->to)] = old[i];
	free(old);
	return 0;
}

/* Takes a call off the calls out (the list and the table). */
static void unlink_call(struct kq__raft_module *mod, struct kq_call *call)
{
	size_t i = find_slot(mod, call->id, call->to), j = i;

	KQ_LIST_REMOVE(mod->calls, call);
	mod->call_slots[i] = NULL;
	mod->n_calls--;
	/* Those after it in its run move back where their probe finds
	 * them (no tombstones). */
	for (;;) {
		struct kq_call *c;
		size_t home;

		j = (j + 1) & (mod->call_cap - 1);
		c = mod->call_slots[j];
		if (!c)
			return;
		home = slot_of(mod, c->id);
		/* Stays when its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		mod->call_slots[i] = c;
		mod->call_slots[j] = NULL;
		i = j;
	}
}

void kq__raft_calls_free(struct kq__raft_module *mod)
{
	free(mod->call_slots);
	mod->call_slots = NULL;
	mod->call_cap = mod->n_calls = 0;
}

/* Moves a pending call to the failed list, completed from the `later`
 * timer: a connection can close inside call() itself, whose caller must
 * not see the callback before call() returns. */
static void fail_later(struct kq__raft_module *mod, struct kq_call *call,
		       int status)
{
	unlink_call(mod, call);
	call->status = status;
	KQ_LIST_PUSH(mod->calls_failed, call);
	kq__raft_module_later(mod);
}

int kq__raft_call(void *state, struct kq_call *call, int to, const void *buf,
		  size_t len, unsigned timeout_ms, kq_call_cb cb)
{
	struct kq__raft_module *mod = state;
	int rv;

	if (mod->closed || !mod->cluster)
		return KQ_EUNAVAILABLE;
	call->id = ++mod->call_seq;
	call->to = to;
	call->cb = cb;
	call->deadline_ms = uv_now(mod->host->loop) + timeout_ms;
	if ((mod->n_calls + 1) * 2 > mod->call_cap && grow(mod) != 0)
		return -ENOMEM;
	mod->call_slots[find_slot(mod, call->id, to)] = call;
	mod->n_calls++;
	KQ_LIST_PUSH(mod->calls, call);
	rv = kq__cluster_call(mod->cluster, to, call->id, buf, len);
	if (rv != 0) {
		unlink_call(mod, call);
		return rv;
	}
	return 0;
}

void kq__raft_calls_run_failed(struct kq__raft_module *mod)
{
	struct kq_call *call;

	while ((call = mod->calls_failed)) {
		KQ_LIST_REMOVE(mod->calls_failed, call);
		call->cb(call, call->status, NULL, 0);
	}
}

void kq__raft_calls_reply(void *ctx, int from, uint64_t id, const uint8_t *body,
			  size_t len)
{
	struct kq__raft_module *mod = ctx;
	struct kq_call *call = NULL;

	if (mod->call_cap)
		call = mod->call_slots[find_slot(mod, id, from)];
	if (!call || len < 1) /* timed out already, or not ours */
		return;
	unlink_call(mod, call);
	if (body[0] == CALL_OK)
		call->cb(call, 0, body + 1, len - 1);
	else if (body[0] == CALL_BUSY)
		call->cb(call, KQ_EBUSY, NULL, 0);
	else /* not known to be "not run" */
		call->cb(call, KQ_EUNAVAILABLE, NULL, 0);
}

void kq__raft_calls_down(void *ctx, int id)
{
	struct kq__raft_module *mod = ctx;
	struct kq_call *call, *next;

	for (call = mod->calls; call; call = next) {
		next = call->next;
		if (call->to == id)
			fail_later(mod, call, KQ_EUNAVAILABLE);
	}
}

void kq__raft_calls_tick(struct kq__raft_module *mod)
{
	uint64_t now = uv_now(mod->host->loop);
	struct kq_call *call, *next, *expired = NULL;

	/* Collected first: a callback may call again, or close a
	 * connection and so move other calls. */
	for (call = mod->calls; call; call = next) {
		next = call->next;
		if (now >= call->deadline_ms) {
			unlink_call(mod, call);
			KQ_LIST_PUSH(expired, call);
		}
	}
	while ((call = expired)) {
		KQ_LIST_REMOVE(expired, call);
		call->cb(call, KQ_EUNAVAILABLE, NULL, 0);
	}
}

void kq__raft_calls_cancel(struct kq__raft_module *mod)
{
	while (mod->calls)
		fail_later(mod, mod->calls, KQ_ECANCELED);
}

static void send_reply(struct kq__raft_module *mod, int to, uint64_t conn,
		       uint64_t id, uint8_t status, const void *buf, size_t len)
{
	uint8_t *body;

	if (!mod->cluster)
		return;
	body = malloc(len + 1);
	if (!body)
		return; /* the caller times out */
	body[0] = status;
	if (len)
		memcpy(body + 1, buf, len);
	kq__cluster_reply(mod->cluster, to, conn, id, body, len + 1);
	free(body);
}

void kq__raft_calls_serve(void *ctx, int from, uint64_t conn, uint64_t id,
			  const uint8_t *body, size_t len)
{
	struct kq__raft_module *mod = ctx;
	struct kq_incoming *in;

	if (mod->closed || mod->n_incoming >= KQ__RAFT_INCOMING_MAX ||
	    !mod->host->serve || !(in = malloc(sizeof(*in)))) {
		send_reply(mod, from, conn, id, CALL_BUSY, NULL, 0);
		return;
	}
	in->from = from;
	in->conn = conn;
	in->id = id;
	mod->n_incoming++;
	mod->host->serve(mod->host, in, from, body, len);
}

void kq__raft_reply(void *state, struct kq_incoming *in, const void *buf,
		    size_t len)
{
	struct kq__raft_module *mod = state;

	if (!mod->closed)
		send_reply(mod, in->from, in->conn, in->id, CALL_OK, buf, len);
	mod->n_incoming--;
	free(in);
}
