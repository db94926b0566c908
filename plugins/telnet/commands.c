/* telnet transport: the commands of the text protocol, executed through
 * the broker API, and their answers. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <kafkaesque/kafkaesque.h>

#include "telnet.h"

/* Most words any command takes (CRTP with its options). */
#define MAX_WORDS 64

struct cmd {
	const char *name;
	const char *usage;
	int minw, maxw; /* words, the command's name included */
	void (*run)(struct kq__tn_conn *c, struct kq__tn_slot *s,
		    struct kq__tn_word *w, int n);
};

static const struct kq_broker_api *api(const struct kq__tn_conn *c)
{
	return c->srv->api;
}

/* ---------------------------------------------------------------- answers */

/* Replaces whatever the slot gathered with `ERR <CODE> <text>`. */
static void put_err(struct kq__tn_slot *s, int err, const char *text)
{
	s->out.len = 0;
	kq__tn_buf_printf(&s->out, "ERR %s ", kq_err_code(err));
	kq__tn_buf_append_text(&s->out,
			       text && *text ? text : kq_strerror(err));
	kq__tn_buf_append(&s->out, "\r\n", 2);
}

static void answer_err(struct kq__tn_conn *c, struct kq__tn_slot *s, int err,
		       const char *text)
{
	put_err(s, err, text);
	kq__tn_slot_finish(c, s);
}

static void answer_syntax(struct kq__tn_conn *c, struct kq__tn_slot *s,
			  const char *usage)
{
	s->out.len = 0;
	kq__tn_buf_printf(&s->out, "ERR SYNTAX usage: %s\r\n", usage);
	kq__tn_slot_finish(c, s);
}

static void answer_line(struct kq__tn_conn *c, struct kq__tn_slot *s,
			const char *line)
{
	kq__tn_buf_printf(&s->out, "%s\r\n", line);
	kq__tn_slot_finish(c, s);
}

/* Appends `p1,p2,...` or `-`. */
static void put_parts(struct kq__tn_buf *b, const uint32_t *parts, uint32_t n)
{
	uint32_t i;

	if (n == 0)
		kq__tn_buf_append(b, "-", 1);
	/* Without printf: GRPS writes one number per partition per member. */
	for (i = 0; i < n; i++) {
		if (i)
			kq__tn_buf_append(b, ",", 1);
		kq__tn_buf_u64(b, parts[i]);
	}
}

/* ---------------------------------------------------------------- words */

/* Ends the word with a NUL in place: the byte after an unquoted word is a
 * separator or the line's NUL, and a quoted word's content is shorter than
 * the word as typed. */
static const char *cstr(struct kq__tn_word *w)
{
	w->p[w->len] = '\0';
	return w->p;
}

static int parse_u64(const struct kq__tn_word *w, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (w->len == 0 || w->len > 20)
		return -1;
	for (i = 0; i < w->len; i++) {
		unsigned d = (unsigned char)w->p[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The protocol's name rule, checked here too so that only printable,
 * NUL-free names reach the broker and the answers. */
static int name_ok(const struct kq__tn_word *w)
{
	size_t i;

	if (w->len == 0 || w->len > KQ__TN_NAME_MAX)
		return 0;
	if ((w->len == 1 && w->p[0] == '.') ||
	    (w->len == 2 && w->p[0] == '.' && w->p[1] == '.'))
		return 0;
	for (i = 0; i < w->len; i++) {
		char ch = w->p[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return 0;
	}
	return 1;
}

/* Checks a topic (or group) word; answers BADARG and returns NULL when it
 * is not a valid name. */
static const char *name_arg(struct kq__tn_conn *c, struct kq__tn_slot *s,
			    struct kq__tn_word *w, const char *what)
{
	char text[96];

	if (!name_ok(w)) {
		snprintf(text, sizeof(text),
			 "bad %s name (1 to 249 of A-Z a-z 0-9 . _ -)", what);
		answer_err(c, s, KQ_EBADARG, text);
		return NULL;
	}
	return cstr(w);
}

static int sub_arg(struct kq__tn_conn *c, struct kq__tn_slot *s,
		   const struct kq__tn_word *w, uint64_t *id)
{
	if (parse_u64(w, 1, UINT64_MAX, id) == 0)
		return 0;
	answer_err(c, s, KQ_EBADARG,
		   "subscription id must be a positive integer");
	return -1;
}

/* ---------------------------------------------------------------- async */

/* Writes the `OK ...` of a completed request. */
static void put_result(struct kq__tn_slot *s, const struct kq_req *req)
{
	switch (req->type) {
	case KQ_REQ_CREATE_TOPIC:
		kq__tn_buf_printf(&s->out, "OK %s %" PRIu32 "\r\n", s->name,
				  req->result.create_topic.partitions);
		break;
	case KQ_REQ_PUBLISH:
		kq__tn_buf_append(&s->out, "OK ", 3);
		kq__tn_buf_u64(&s->out, req->result.publish.partition);
		kq__tn_buf_append(&s->out, " ", 1);
		kq__tn_buf_u64(&s->out, req->result.publish.offset);
		kq__tn_buf_append(&s->out, "\r\n", 2);
		break;
	case KQ_REQ_SUBSCRIBE:
		kq__tn_buf_printf(&s->out, "OK %" PRIu64 " ",
				  req->result.subscribe.sub_id);
		put_parts(&s->out, req->result.subscribe.parts,
			  req->result.subscribe.nparts);
		kq__tn_buf_append(&s->out, "\r\n", 2);
		break;
	case KQ_REQ_UNSUBSCRIBE: kq__tn_buf_append(&s->out, "OK\r\n", 4); break;
	case KQ_REQ_COMMIT:
		kq__tn_buf_printf(&s->out, "OK %" PRIu32 "\r\n",
				  req->result.commit.changed);
		break;
	}
}

static void on_req(struct kq_req *req, int status)
{
	struct kq__tn_slot *s = req->data;
	struct kq__tn_conn *c = s->conn;

	s->inflight = 0;
	c->inflight--;
	if (s->orphan) {
		api(c)->req_cleanup(req);
		kq__tn_slot_orphan_done(s);
		return;
	}
	if (status < 0)
		put_err(s, status, req->errmsg);
	else
		put_result(s, req);
	/* A finished slot may be reused at once: clean up first. */
	api(c)->req_cleanup(req);
	kq__tn_slot_finish(c, s);
}

/* Counts the callback as outstanding before the call, so that a broker
 * answering from inside the call finds the books right. */
static void begin(struct kq__tn_conn *c, struct kq__tn_slot *s)
{
	s->inflight = 1;
	c->inflight++;
}

/* After an asynchronous call: a failure means no callback will come. */
static void started(struct kq__tn_conn *c, struct kq__tn_slot *s, int r)
{
	if (r < 0) {
		s->inflight = 0;
		c->inflight--;
		answer_err(c, s, r, s->req.errmsg);
	}
}

static void run_crtp(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	const char *opts[MAX_WORDS];
	struct kq_topic_spec spec;
	uint64_t parts = 0;
	const char *topic;
	int i = 2, k;

	if (!(topic = name_arg(c, s, &w[1], "topic")))
		return;
	if (n > 2 && !memchr(w[2].p, '=', w[2].len)) {
		if (parse_u64(&w[2], 1, UINT32_MAX, &parts) < 0) {
			answer_err(c, s, KQ_EBADARG,
				   "partitions must be a positive integer");
			return;
		}
		i = 3;
	}
	for (k = i; k < n; k++) {
		const char *eq = memchr(w[k].p, '=', w[k].len);

		if (!eq || eq == w[k].p || memchr(w[k].p, '\0', w[k].len)) {
			answer_err(c, s, KQ_EBADARG,
				   "options are <option>=<value>");
			return;
		}
		opts[k - i] = cstr(&w[k]);
	}
	memset(&spec, 0, sizeof(spec));
	spec.name = topic;
	spec.partitions = (uint32_t)parts;
	spec.options = opts;
	spec.noptions = (size_t)(n - i);
	strcpy(s->name, topic);
	begin(c, s);
	started(c, s, api(c)->create_topic(c->session, &s->req, &spec, on_req));
}

static void run_pubs(struct kq__tn_conn *c, struct kq__tn_slot *s, char *line,
		     size_t len)
{
	static const char usage[] = "PUBS <topic> <message>";
	struct kq__tn_word cmd, topic;
	size_t pos = 0;
	char *msg;
	size_t mlen;

	if (kq__tn_word_next(line, len, &pos, &cmd) != 1 ||
	    kq__tn_word_next(line, len, &pos, &topic) != 1 ||
	    kq__tn_pubs_message(line, len, pos, &msg, &mlen) < 0) {
		answer_syntax(c, s, usage);
		return;
	}
	if (mlen == 0) {
		answer_err(c, s, KQ_EBADARG, "empty message");
		return;
	}
	/* The message starts after the separator that cstr() overwrites. */
	if (!name_arg(c, s, &topic, "topic"))
		return;
	begin(c, s);
	s->pub_bytes = mlen;
	c->pub_bytes += mlen;
	started(c, s,
		api(c)->publish(c->session, &s->req, topic.p, msg, mlen,
				on_req));
}

static void run_subs(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	const char *topic, *group;
	uint64_t cap = 0;

	if (!(topic = name_arg(c, s, &w[1], "topic")) ||
	    !(group = name_arg(c, s, &w[2], "group")))
		return;
	if (n > 3 && parse_u64(&w[3], 1, UINT32_MAX, &cap) < 0) {
		answer_err(c, s, KQ_EBADARG, "n must be a positive integer");
		return;
	}
	begin(c, s);
	started(c, s,
		api(c)->subscribe(c->session, &s->req, topic, group,
				  (uint32_t)cap, on_req));
}

static void run_unsb(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	const char *topic;
	uint64_t id;

	if (!(topic = name_arg(c, s, &w[1], "topic")) ||
	    sub_arg(c, s, &w[2], &id) < 0)
		return;
	begin(c, s);
	started(c, s,
		api(c)->unsubscribe(c->session, &s->req, topic, id, on_req));
}

/* ---------------------------------------------------------------- CONS */

static int on_msg(void *ctx, const struct kq_message *m)
{
	struct kq__tn_conn *c = ctx;

	kq__tn_buf_append(&c->out, "MSG ", 4);
	kq__tn_buf_u64(&c->out, m->partition);
	kq__tn_buf_append(&c->out, " ", 1);
	kq__tn_buf_u64(&c->out, m->offset);
	kq__tn_buf_append(&c->out, " ", 1);
	kq__tn_buf_u64(&c->out, m->len);
	kq__tn_buf_append(&c->out, "\r\n", 2);
	kq__tn_buf_append(&c->out, m->data, m->len);
	kq__tn_buf_append(&c->out, "\r\n", 2);
	return c->out.failed ? -1 : 0;
}

/* Ends the CONS with `OK <count>`, or the error after the messages sent. */
static void cons_end(struct kq__tn_conn *c, int r, const char *text)
{
	struct kq__tn_slot *s = c->cons_slot;
	uint64_t count;

	c->cons_slot = NULL;
	count = api(c)->consume_close(&c->cons);
	if (r < 0) {
		answer_err(c, s, r, text);
		return;
	}
	kq__tn_buf_printf(&s->out, "OK %" PRIu64 "\r\n", count);
	kq__tn_slot_finish(c, s);
}

void kq__tn_cons_pump(struct kq__tn_conn *c)
{
	while (c->cons_slot && !c->closing &&
	       kq__tn_pending(c) < KQ__TN_OUT_HIGH) {
		int r;

		c->errmsg[0] = '\0';
		r = api(c)->consume_next(&c->cons, KQ__TN_CONS_BUDGET, on_msg,
					 c, c->errmsg, sizeof(c->errmsg));
		if (c->out.failed) {
			kq__tn_close(c);
			return;
		}
		if (r == KQ_CONSUME_WAIT)
			break; /* cons_wake() pumps again */
		if (r > 0) {
			/* Start writing while the next batch is read. */
			kq__tn_flush(c);
			continue;
		}
		cons_end(c, r, c->errmsg);
	}
	kq__tn_flush(c);
}

/* Records read from another broker arrived. */
static void cons_wake(struct kq_consume *cons)
{
	struct kq__tn_conn *c = cons->data;

	if (c->cons_slot)
		kq__tn_cons_pump(c);
}

void kq__tn_cons_abort(struct kq__tn_conn *c)
{
	cons_end(c, KQ_EUNAVAILABLE, "broker stopping");
}

static void run_cons(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	const char *topic;
	uint64_t id, off, max = 0;
	int64_t from = -1;
	int r;

	if (!(topic = name_arg(c, s, &w[1], "topic")) ||
	    sub_arg(c, s, &w[2], &id) < 0)
		return;
	if (n > 3 && !(w[3].len == 1 && w[3].p[0] == '-')) {
		if (parse_u64(&w[3], 0, INT64_MAX, &off) < 0) {
			answer_err(c, s, KQ_EBADARG,
				   "offset must be a non-negative integer "
				   "or -");
			return;
		}
		from = (int64_t)off;
	}
	if (n > 4 && parse_u64(&w[4], 1, UINT64_MAX, &max) < 0) {
		answer_err(c, s, KQ_EBADARG, "max must be a positive integer");
		return;
	}
	/* Messages go straight to the connection's output, so every earlier
	 * answer must be there first; they are all complete, as CONS only
	 * starts once earlier commands are done. */
	kq__tn_flush_slots(c);
	if (c->closing)
		return;
	c->errmsg[0] = '\0';
	c->cons.data = c;
	c->cons.wake = cons_wake;
	r = api(c)->consume_open(c->session, &c->cons, topic, id, from, max,
				 c->errmsg, sizeof(c->errmsg));
	if (r < 0) {
		answer_err(c, s, r, c->errmsg);
		return;
	}
	c->cons_slot = s;
	kq__tn_cons_pump(c);
}

#define CMIT_USAGE "CMIT <topic> <subscription-id> [<partition> <offset>]"

/* CMIT acknowledges what CONS handed out (or, with a partition and an
 * offset, sets the group's position there): answered once stored. */
static void run_cmit(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	const char *topic;
	uint64_t id, part = 0, off = 0;

	if (n == 4) {
		answer_syntax(c, s, CMIT_USAGE);
		return;
	}
	if (!(topic = name_arg(c, s, &w[1], "topic")) ||
	    sub_arg(c, s, &w[2], &id) < 0)
		return;
	if (n == 5 && (parse_u64(&w[3], 0, UINT32_MAX, &part) < 0 ||
		       parse_u64(&w[4], 0, INT64_MAX, &off) < 0)) {
		answer_err(c, s, KQ_EBADARG,
			   "partition and offset must be non-negative "
			   "integers");
		return;
	}
	begin(c, s);
	started(c, s,
		api(c)->commit(c->session, &s->req, topic, id,
			       n == 5 ? (int64_t)part : -1, off, on_req));
}

/* ---------------------------------------------------------------- queries */

/* Context of the query callbacks. */
struct qctx {
	struct kq__tn_buf *out;
	int n;
	const struct kq__tn_server *srv; /* STAT: this broker's own address */
};

static void on_topic(void *ctx, const char *name, uint32_t partitions)
{
	struct qctx *q = ctx;

	kq__tn_buf_append(q->out, "TOPIC ", 6);
	kq__tn_buf_append_text(q->out, name);
	kq__tn_buf_printf(q->out, " %" PRIu32 "\r\n", partitions);
}

static void run_list(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	struct qctx q = {&s->out, 0, c->srv};
	int r = api(c)->list_topics(c->srv->host->broker, on_topic, &q);

	if (r < 0) {
		answer_err(c, s, r, "");
		return;
	}
	kq__tn_buf_printf(&s->out, "OK %d\r\n", r);
	kq__tn_slot_finish(c, s);
}

static void on_partition(void *ctx, const struct kq_partition_info *p)
{
	struct qctx *q = ctx;
	size_t i;

	kq__tn_buf_printf(q->out, "PARTITION %" PRIu32 " LEADER ",
			  p->partition);
	if (p->leader)
		kq__tn_buf_printf(q->out, "%d", p->leader);
	else
		kq__tn_buf_append(q->out, "-", 1);
	kq__tn_buf_append(q->out, " REPLICAS ", 10);
	if (p->nreplicas == 0)
		kq__tn_buf_append(q->out, "-", 1);
	for (i = 0; i < p->nreplicas; i++)
		kq__tn_buf_printf(q->out, i ? ",%d" : "%d", p->replicas[i]);
	kq__tn_buf_printf(q->out, " START %" PRIu64 " END %" PRIu64, p->start,
			  p->end);
	if (p->error) {
		kq__tn_buf_append(q->out, " UNAVAILABLE ", 13);
		kq__tn_buf_append_text(q->out, kq_strerror(p->error));
	}
	kq__tn_buf_append(q->out, "\r\n", 2);
}

static void on_assigned(void *ctx, uint32_t partition)
{
	struct qctx *q = ctx;

	kq__tn_buf_printf(q->out, q->n++ ? ",%" PRIu32 : "%" PRIu32, partition);
}

static void run_asgn(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	struct qctx q = {&s->out, 0, c->srv};
	const char *topic;
	uint64_t id;
	int r;

	if (!(topic = name_arg(c, s, &w[1], "topic")) ||
	    sub_arg(c, s, &w[2], &id) < 0)
		return;
	kq__tn_buf_printf(&s->out, "OK %" PRIu64 " ", id);
	c->errmsg[0] = '\0';
	r = api(c)->assignment(c->srv->host->broker, topic, id, on_assigned, &q,
			       c->errmsg, sizeof(c->errmsg));
	if (r < 0) {
		answer_err(c, s, r, c->errmsg);
		return;
	}
	if (q.n == 0)
		kq__tn_buf_append(&s->out, "-", 1);
	kq__tn_buf_append(&s->out, "\r\n", 2);
	kq__tn_slot_finish(c, s);
}

static void on_member(void *ctx, const char *group, uint64_t sub_id,
		      const uint32_t *parts, uint32_t nparts)
{
	struct qctx *q = ctx;

	kq__tn_buf_append(q->out, "GROUP ", 6);
	kq__tn_buf_append_text(q->out, group);
	kq__tn_buf_printf(q->out, " %" PRIu64 " ", sub_id);
	put_parts(q->out, parts, nparts);
	kq__tn_buf_append(q->out, "\r\n", 2);
}

/* DESC and GRPS: rows first, then "OK <topic> <n>" or "OK <n>". */
static void run_listing(struct kq__tn_conn *c, struct kq__tn_slot *s,
			struct kq__tn_word *w, bool groups)
{
	struct qctx q = {&s->out, 0, c->srv};
	struct kq_broker *b = c->srv->host->broker;
	const char *topic;
	int r;

	if (!(topic = name_arg(c, s, &w[1], "topic")))
		return;
	c->errmsg[0] = '\0';
	r = groups ? api(c)->groups(b, topic, on_member, &q, c->errmsg,
				    sizeof(c->errmsg))
		   : api(c)->describe(b, topic, on_partition, &q, c->errmsg,
				      sizeof(c->errmsg));
	if (r < 0) {
		answer_err(c, s, r, c->errmsg);
		return;
	}
	if (groups)
		kq__tn_buf_printf(&s->out, "OK %d\r\n", r);
	else
		kq__tn_buf_printf(&s->out, "OK %s %d\r\n", topic, r);
	kq__tn_slot_finish(c, s);
}

static void run_desc(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	run_listing(c, s, w, false);
}

static void run_grps(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	run_listing(c, s, w, true);
}

static void on_broker(void *ctx, const struct kq_broker_info *bi)
{
	struct qctx *q = ctx;
	/* A standalone broker leaves its address to the transport. */
	int self = !bi->host && bi->port == 0;
	const char *host = self ? q->srv->bind_host : bi->host ? bi->host : "-";
	int port = self ? q->srv->port : bi->port;
	/* An IPv6 address is bracketed so the port stays readable. */
	int v6 = strchr(host, ':') != NULL;

	kq__tn_buf_printf(q->out, "BROKER %d %s", bi->id, v6 ? "[" : "");
	kq__tn_buf_append_text(q->out, host);
	kq__tn_buf_printf(q->out, "%s:%d %s LEADS %u%s\r\n", v6 ? "]" : "",
			  port, bi->up ? "up" : "down", bi->leads,
			  bi->meta_leader ? " META-LEADER" : "");
}

static void run_stat(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	struct qctx q = {&s->out, 0, c->srv};
	int r = api(c)->brokers(c->srv->host->broker, on_broker, &q);

	if (r < 0) {
		answer_err(c, s, r, "");
		return;
	}
	kq__tn_buf_printf(&s->out, "OK %d\r\n", r);
	kq__tn_slot_finish(c, s);
}

static void run_help(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n);

/* ---------------------------------------------------------------- AUTH */

/* The delay before a failed AUTH is answered: 100 ms, doubling with each
 * failure of the connection. */
#define AUTH_DELAY_MS 100

/* A failed AUTH's answer waiting for its delay.  The slot counts as a
 * request in flight, so the commands after it wait, and a connection that
 * closes meanwhile leaves the slot to this timer. */
struct auth_delay {
	uv_timer_t timer;
	struct kq__tn_slot *slot;
};

static void auth_delay_free(uv_handle_t *h)
{
	free(h->data);
}

static void on_auth_delay(uv_timer_t *t)
{
	struct auth_delay *d = t->data;
	struct kq__tn_slot *s = d->slot;
	struct kq__tn_conn *c = s->conn;

	uv_close((uv_handle_t *)t, auth_delay_free);
	s->inflight = 0;
	c->inflight--;
	if (s->orphan) {
		kq__tn_slot_orphan_done(s);
		return;
	}
	if (c->auth_failures >= KQ__TN_AUTH_TRIES) {
		put_err(s, KQ_EAUTH,
			"wrong password; too many attempts, closing");
		c->quit = 1;
	} else {
		put_err(s, KQ_EAUTH, "wrong password");
	}
	kq__tn_slot_finish(c, s);
}

static void run_auth(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	struct auth_delay *d;
	unsigned shift;

	if (!c->srv->password_len) {
		answer_err(c, s, KQ_EAUTH,
			   "no password is configured (telnet.password_file)");
		return;
	}
	if (kq__tn_password_ok(c->srv, w[1].p, w[1].len)) {
		c->authed = 1;
		answer_line(c, s, "OK");
		return;
	}
	c->auth_failures++;
	kq__tn_auth_log(c);
	d = malloc(sizeof(*d));
	if (!d || uv_timer_init(c->srv->host->loop, &d->timer) != 0) {
		free(d);
		kq__tn_close(c);
		return;
	}
	d->timer.data = d;
	d->slot = s;
	begin(c, s);
	shift = c->auth_failures - 1 < 5 ? c->auth_failures - 1 : 5;
	uv_timer_start(&d->timer, on_auth_delay,
		       (uint64_t)AUTH_DELAY_MS << shift, 0);
}

static void run_ping(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	answer_line(c, s, "OK PONG");
}

static void run_quit(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	/* Stops parsing; the connection closes once BYE is written. */
	c->quit = 1;
	answer_line(c, s, "OK BYE");
}

/* In HELP order.  PUBS is parsed by run_pubs() and only listed here. */
static const struct cmd cmds[] = {
	{"CRTP", "CRTP <topic> [<partitions>] [<option>=<value> ...]", 2,
	 MAX_WORDS, run_crtp},
	{"PUBS", "PUBS <topic> <message>", 3, 3, NULL},
	{"SUBS", "SUBS <topic> <group> [<n>]", 3, 4, run_subs},
	{"CONS", "CONS <topic> <subscription-id> [<offset>|-] [<max>]", 3, 5,
	 run_cons},
	{"CMIT", CMIT_USAGE, 3, 5, run_cmit},
	{"UNSB", "UNSB <topic> <subscription-id>", 3, 3, run_unsb},
	{"ASGN", "ASGN <topic> <subscription-id>", 3, 3, run_asgn},
	{"GRPS", "GRPS <topic>", 2, 2, run_grps},
	{"LIST", "LIST", 1, 1, run_list},
	{"DESC", "DESC <topic>", 2, 2, run_desc},
	{"STAT", "STAT", 1, 1, run_stat},
	{"HELP", "HELP", 1, 1, run_help},
	{"PING", "PING", 1, 1, run_ping},
	{"QUIT", "QUIT", 1, 1, run_quit},
	{"AUTH", "AUTH <password>", 2, 2, run_auth},
};

/* Whether the command may run before AUTH succeeded. */
static int open_to_all(const struct cmd *cmd)
{
	return cmd && (cmd->run == run_help || cmd->run == run_ping ||
		       cmd->run == run_quit || cmd->run == run_auth);
}

static void run_help(struct kq__tn_conn *c, struct kq__tn_slot *s,
		     struct kq__tn_word *w, int n)
{
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		kq__tn_buf_printf(&s->out, "%s\r\n", cmds[i].usage);
	answer_line(c, s, "OK");
}

int kq__tn_can_start(const struct kq__tn_conn *c, const char *line, size_t len)
{
	if (c->nbusy == 0)
		return 1;
	return c->nbusy == c->nbusy_pubs &&
	       kq__tn_first_word_is(line, len, "PUBS");
}

static void answer_unknown(struct kq__tn_conn *c, struct kq__tn_slot *s,
			   const struct kq__tn_word *w)
{
	char name[40];
	size_t i, n = w->len < 32 ? w->len : 32;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)w->p[i];

		name[i] = ch > 32 && ch < 127 ? (char)ch : '?';
	}
	name[n] = '\0';
	s->out.len = 0;
	kq__tn_buf_printf(&s->out,
			  "ERR UNKNOWN unknown command '%s' (try HELP)\r\n",
			  name);
	kq__tn_slot_finish(c, s);
}

void kq__tn_exec(struct kq__tn_conn *c, char *line, size_t len)
{
	struct kq__tn_word w[MAX_WORDS];
	int pubs = kq__tn_first_word_is(line, len, "PUBS");
	struct kq__tn_slot *s = kq__tn_slot_new(c, pubs);
	const struct cmd *cmd = NULL;
	size_t i;
	int n;

	if (!s) {
		kq__tn_close(c);
		return;
	}
	if (pubs && c->authed) {
		run_pubs(c, s, line, len);
		return;
	}
	n = pubs ? 0 : kq__tn_split(line, len, w, MAX_WORDS);
	if (n < 0 && c->authed) {
		answer_err(c, s, KQ_ESYNTAX,
			   "unterminated quote or text right after one");
		return;
	}
	for (i = 0; n > 0 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (w[0].len == 4 && strncasecmp(w[0].p, cmds[i].name, 4) == 0)
			cmd = &cmds[i];
	}
	/* Before AUTH, nothing about a command is looked at: not even
	 * whether it exists or parses. */
	if (!c->authed && (n < 0 || !open_to_all(cmd))) {
		answer_err(c, s, KQ_EAUTH,
			   "authentication required: AUTH <password>");
		return;
	}
	if (!cmd) {
		answer_unknown(c, s, &w[0]);
		return;
	}
	if (n < cmd->minw || n > cmd->maxw || !cmd->run) {
		answer_syntax(c, s, cmd->usage);
		return;
	}
	cmd->run(c, s, w, n);
}
