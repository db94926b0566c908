/* kafkaesque-bench: a load generator for the kafkaesque text protocol.
 *
 * It only speaks TCP to a broker (see docs/bench.md); it does not link the
 * broker core.  One libuv loop drives every connection. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "bench/disk.h"
#include "bench/hist.h"

#define NS_PER_SEC   1000000000ULL
#define RBUF_PUBLISH (64 * 1024)
#define RBUF_CONSUME (256 * 1024)
#define RBUF_MAX     (16 * 1024 * 1024)
/* Bytes of identical lines kept ready to send for constant messages. */
#define BLOCK_TARGET (256 * 1024)
#define MAX_CONNS    10000
#define MAX_WINDOW   65536

enum mode { MODE_PUBLISH, MODE_LATENCY, MODE_CONSUME };
enum keys { KEYS_NONE, KEYS_RANDOM, KEYS_FIXED };

struct opts {
	enum mode mode;
	const char *host;
	int port;
	const char *topic;
	const char *group;
	int conns;
	int window;
	uint64_t size;
	enum keys keys;
	const char *key;
	uint64_t key_space;
	uint64_t count;	 /* 0: no limit */
	double duration; /* seconds, 0: no limit */
	int create;	 /* partitions for CRTP, 0: do not create */
	int topics;	 /* publish: over <topic>0 .. <topic>N-1 when > 1 */
	const char *pids; /* brokers to report CPU and RSS of, "1,2,3" */
	uint64_t from;
	int json;
	int quiet;
	uint64_t seed;
};

enum phase {
	PH_CONNECTING,
	PH_CREATE, /* CRTP sent */
	PH_WAIT,   /* connected, waiting for the others */
	PH_SUBS,   /* SUBS sent */
	PH_PUBS,   /* publishing */
	PH_CONS,   /* CONS sent, reading its stream */
	PH_DONE,
};

struct bench;

/* Brokers --pids may name. */
#define MAX_PIDS 16

struct conn {
	uv_tcp_t tcp;
	uv_connect_t connect;
	struct bench *b;
	int id;
	enum phase phase;
	int closing;
	/* Unparsed input: a partial line at most. */
	char *rbuf;
	size_t rcap;
	size_t rlen;
	/* Send times of the unanswered PUBS, oldest first (answers keep
	 * their order). */
	uint64_t *sent_at;
	uint32_t head;
	uint32_t inflight;
	/* CONS stream: payload bytes still to skip, then a CRLF. */
	uint64_t skip;
	int want_eol;
};

struct bench {
	struct opts o;
	uv_loop_t *loop;
	struct sockaddr_storage addr;
	char addr_text[300];
	struct conn *conns;
	int open_conns;
	int pending_connects;
	int create_pending;
	int started;
	int no_more; /* stop sending, drain what is in flight */
	int aborted;
	int finished;
	uv_timer_t tick;
	uv_timer_t deadline;
	uv_signal_t sigint;
	uint64_t t_start;
	uint64_t t_end;

	/* Message lines: "PUBS <topic> <message>\r\n", all line_len long. */
	size_t line_len;
	size_t prefix_len; /* "PUBS <topic> " */
	char *block;	   /* block_lines copies of the constant line */
	size_t block_lines;
	uint64_t rng;

	uint64_t sent;
	uint64_t acked;
	uint64_t bytes;
	uint64_t errors; /* ERR answers */
	uint64_t conn_failures;
	uint64_t proto_errors; /* answers that break the protocol */
	uint64_t lost;	       /* in flight on a connection that failed */
	uint64_t reported;     /* the count of CONS's "OK <count>" */
	int cons_done;
	char first_error[512];
	struct bench_hist lat;

	uint64_t last_t;
	uint64_t last_count;
	uint64_t last_bytes;

	int created;	     /* topics created so far (CRTP answered) */
	uint64_t t_create;   /* when the first CRTP went out */
	double create_secs;  /* until the last one was answered */
	uint64_t next_topic; /* round robin over the topics */
	/* --pids: CPU ticks at the start of the run and at its end, RSS at
	 * the end. */
	int npids;
	int pid[MAX_PIDS];
	long ticks0[MAX_PIDS], ticks1[MAX_PIDS];
	long rss_kb[MAX_PIDS];
	uint64_t t_pids0, t_pids1;
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void conn_close(struct conn *c);
static void pub_fill(struct conn *c);
static void finish(struct bench *b);

/* ------------------------------------------------------------- output */

static void note_error(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Keeps and prints only the first problem; the counters say the rest. */
static void note_error(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->first_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(b->first_error, sizeof(b->first_error), fmt, ap);
	va_end(ap);
	fprintf(stderr, "kafkaesque-bench: first error: %s\n", b->first_error);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else if (ch >= 0x80)
			/* Broker text need not be UTF-8; keep the JSON valid.
			 */
			fputc('?', f);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static const char *mode_name(enum mode m)
{
	switch (m) {
	case MODE_PUBLISH: return "publish";
	case MODE_LATENCY: return "latency";
	case MODE_CONSUME: return "consume";
	}
	return "?";
}

static const char *keys_name(enum keys k)
{
	switch (k) {
	case KEYS_NONE: return "none";
	case KEYS_RANDOM: return "random";
	case KEYS_FIXED: return "fixed";
	}
	return "?";
}

/* CPU time (user and system, in clock ticks) of process pid; -1 when it
 * cannot be read. */
static long proc_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command name, which may hold spaces: state is field 3,
	 * utime and stime fields 14 and 15. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* Resident memory of process pid in KiB; -1 when it cannot be read. */
static long proc_rss_kb(int pid)
{
	char path[64];
	long size, pages = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	if (fscanf(f, "%ld %ld", &size, &pages) != 2)
		pages = -1;
	fclose(f);
	return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static void pids_sample(struct bench *b, int end)
{
	if (end)
		b->t_pids1 = uv_hrtime();
	else
		b->t_pids0 = uv_hrtime();
	for (int i = 0; i < b->npids; i++) {
		if (end) {
			b->ticks1[i] = proc_ticks(b->pid[i]);
			b->rss_kb[i] = proc_rss_kb(b->pid[i]);
		} else {
			b->ticks0[i] = proc_ticks(b->pid[i]);
		}
	}
}

/* Percent of one core process i used over the run; -1 when unknown. */
static double pid_cpu(const struct bench *b, int i)
{
	double secs = (double)(b->t_pids1 - b->t_pids0) / (double)NS_PER_SEC;

	if (b->ticks0[i] < 0 || b->ticks1[i] < 0 || secs <= 0)
		return -1;
	return 100.0 * (double)(b->ticks1[i] - b->ticks0[i]) /
	       (double)sysconf(_SC_CLK_TCK) / secs;
}

static double elapsed_s(const struct bench *b)
{
	if (!b->started || b->t_end <= b->t_start)
		return 0.0;
	return (double)(b->t_end - b->t_start) / (double)NS_PER_SEC;
}

static double per_s(double v, double secs)
{
	return secs > 0 ? v / secs : 0.0;
}

static double ns_to_us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void print_text(struct bench *b)
{
	const struct opts *o = &b->o;
	double secs = elapsed_s(b);
	uint64_t n = b->acked;

	if (o->mode == MODE_CONSUME) {
		printf("kafkaesque-bench consume: %s topic %s group %s "
		       "from offset %" PRIu64 "\n",
		       b->addr_text, o->topic, o->group, o->from);
		printf("messages:   %" PRIu64 " received in %.3f s", n, secs);
		if (b->cons_done)
			printf(" (broker counted %" PRIu64 ")", b->reported);
		printf("\n");
	} else {
		printf("kafkaesque-bench %s: %s topic %s, %d connection%s, "
		       "window %d, %" PRIu64 "-byte messages, keys %s\n",
		       mode_name(o->mode), b->addr_text, o->topic, o->conns,
		       o->conns == 1 ? "" : "s", o->window, o->size,
		       keys_name(o->keys));
		printf("messages:   %" PRIu64 " acknowledged in %.3f s "
		       "(%" PRIu64 " sent)\n",
		       n, secs, b->sent);
	}
	printf("throughput: %.0f msg/s, %.2f MB/s\n", per_s((double)n, secs),
	       per_s((double)b->bytes, secs) / 1e6);
	if (o->mode != MODE_CONSUME) {
		const struct bench_hist *h = &b->lat;

		printf("latency us: p50 %.1f, p99 %.1f, p99.9 %.1f, max %.1f "
		       "(min %.1f, mean %.1f)\n",
		       ns_to_us(bench_hist_percentile(h, 50.0)),
		       ns_to_us(bench_hist_percentile(h, 99.0)),
		       ns_to_us(bench_hist_percentile(h, 99.9)),
		       ns_to_us(h->max), ns_to_us(h->n ? h->min : 0),
		       bench_hist_mean(h) / 1000.0);
	}
	if (o->create)
		printf("creation:   %d topic%s of %d partitions in %.3f s\n",
		       b->created, b->created == 1 ? "" : "s", o->create,
		       b->create_secs);
	for (int i = 0; i < b->npids; i++)
		printf("broker:     pid %d, %.1f%% of a core over the run, RSS "
		       "%.1f MB\n",
		       b->pid[i], pid_cpu(b, i), (double)b->rss_kb[i] / 1024.0);
	printf("errors:     %" PRIu64 " ERR answers, %" PRIu64
	       " connection failures, %" PRIu64 " protocol errors",
	       b->errors, b->conn_failures, b->proto_errors);
	if (b->lost)
		printf(", %" PRIu64 " unanswered", b->lost);
	printf("\n");
	if (b->first_error[0])
		printf("first error: %s\n", b->first_error);
}

static void print_json(struct bench *b)
{
	const struct opts *o = &b->o;
	double secs = elapsed_s(b);
	FILE *f = stdout;

	fprintf(f, "{\"mode\":\"%s\",\"host\":", mode_name(o->mode));
	json_string(f, o->host);
	fprintf(f, ",\"port\":%d,\"topic\":", o->port);
	json_string(f, o->topic);
	if (o->mode == MODE_CONSUME) {
		fprintf(f, ",\"group\":");
		json_string(f, o->group);
		fprintf(f, ",\"from\":%" PRIu64, o->from);
	} else {
		fprintf(f,
			",\"connections\":%d,\"window\":%d,\"size\":%" PRIu64
			",\"keys\":\"%s\",\"sent\":%" PRIu64 ",\"topics\":%d",
			o->conns, o->window, o->size, keys_name(o->keys),
			b->sent, o->topics);
	}
	if (o->create)
		fprintf(f, ",\"created\":%d,\"creation_seconds\":%.3f",
			b->created, b->create_secs);
	if (b->npids) {
		fprintf(f, ",\"brokers\":[");
		for (int i = 0; i < b->npids; i++)
			fprintf(f, "%s{\"pid\":%d,\"cpu_percent\":%.2f,"
				   "\"rss_mb\":%.1f}",
				i ? "," : "", b->pid[i], pid_cpu(b, i),
				(double)b->rss_kb[i] / 1024.0);
		fprintf(f, "]");
	}
	fprintf(f,
		",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
		",\"seconds\":%.6f,\"msgs_per_sec\":%.1f,"
		"\"mb_per_sec\":%.3f",
		b->acked, b->bytes, secs, per_s((double)b->acked, secs),
		per_s((double)b->bytes, secs) / 1e6);
	if (o->mode == MODE_CONSUME) {
		if (b->cons_done)
			fprintf(f, ",\"broker_count\":%" PRIu64, b->reported);
		else
			fprintf(f, ",\"broker_count\":null");
	} else {
		const struct bench_hist *h = &b->lat;

		fprintf(f,
			",\"latency_us\":{\"samples\":%" PRIu64
			",\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
			"\"max\":%.1f,\"min\":%.1f,\"mean\":%.1f}",
			h->n, ns_to_us(bench_hist_percentile(h, 50.0)),
			ns_to_us(bench_hist_percentile(h, 99.0)),
			ns_to_us(bench_hist_percentile(h, 99.9)),
			ns_to_us(h->max), ns_to_us(h->n ? h->min : 0),
			bench_hist_mean(h) / 1000.0);
	}
	fprintf(f,
		",\"errors\":%" PRIu64 ",\"conn_failures\":%" PRIu64
		",\"protocol_errors\":%" PRIu64 ",\"unanswered\":%" PRIu64
		",\"first_error\":",
		b->errors, b->conn_failures, b->proto_errors, b->lost);
	if (b->first_error[0])
		json_string(f, b->first_error);
	else
		fprintf(f, "null");
	fprintf(f, "}\n");
}

static void on_tick(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = uv_hrtime();
	double since = (double)(now - b->t_start) / (double)NS_PER_SEC;
	double dt = (double)(now - b->last_t) / (double)NS_PER_SEC;
	uint64_t count = b->acked;

	/* Short runs stay quiet: only a run known or found to last more
	 * than 2 s reports progress. */
	if (!b->o.quiet && (b->o.duration > 2.0 || since >= 1.5)) {
		fprintf(stderr,
			"[%5.0fs] %.0f msg/s, %.2f MB/s, %s %" PRIu64
			", errors %" PRIu64 "\n",
			since, per_s((double)(count - b->last_count), dt),
			per_s((double)(b->bytes - b->last_bytes), dt) / 1e6,
			b->o.mode == MODE_CONSUME ? "received" : "acked", count,
			b->errors + b->conn_failures + b->proto_errors);
	}
	b->last_t = now;
	b->last_count = count;
	b->last_bytes = b->bytes;
}

/* ------------------------------------------------------------- writes */

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;

	free(w);
	if (status < 0 && !c->closing) {
		c->b->conn_failures++;
		note_error(c->b, "connection %d: write: %s", c->id,
			   uv_strerror(status));
		c->b->lost += c->inflight;
		c->inflight = 0;
		conn_close(c);
	}
}

static int send_bufs(struct conn *c, struct wreq *w, const uv_buf_t *bufs,
		     unsigned nbufs)
{
	int rc;

	w->c = c;
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write);
	if (rc < 0) {
		free(w);
		c->b->conn_failures++;
		note_error(c->b, "connection %d: write: %s", c->id,
			   uv_strerror(rc));
		conn_close(c);
	}
	return rc;
}

static void send_cmd(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void send_cmd(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	struct wreq *w;
	uv_buf_t buf;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	w = malloc(sizeof(*w) + (size_t)n + 1);
	if (!w) {
		fprintf(stderr, "kafkaesque-bench: out of memory\n");
		exit(2);
	}
	va_start(ap, fmt);
	vsnprintf(w->data, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf = uv_buf_init(w->data, (unsigned)n);
	send_bufs(c, w, &buf, 1);
}

/* ----------------------------------------------------------- messages */

static uint64_t rng_next(struct bench *b)
{
	/* xorshift64*: fast and good enough to spread keys. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ULL;
}

static const char KEY_OPEN[] = "{\"Key\":\"";
static const char KEY_BODY[] = "\",\"Body\":\"";
static const char BODY_CLOSE[] = "\"}";
#define JSON_OVERHEAD                                                          \
	(sizeof(KEY_OPEN) + sizeof(KEY_BODY) + sizeof(BODY_CLOSE) - 3)

/* The name of topic t of --topics (the topic itself without it). */
static const char *topic_name(const struct bench *b, int t, char *out,
			      size_t cap)
{
	if (b->o.topics <= 1)
		return b->o.topic;
	snprintf(out, cap, "%s%d", b->o.topic, t);
	return out;
}

/* Writes one "PUBS <topic> <message>\r\n" line with the given key (NULL
 * for a plain body); returns its length, at most line_len. */
static size_t build_line(const struct bench *b, char *p, const char *topic,
			 const char *key)
{
	size_t klen, body, tlen = strlen(topic);
	char *start = p;

	memcpy(p, "PUBS ", 5);
	memcpy(p + 5, topic, tlen);
	p[5 + tlen] = ' ';
	p += 6 + tlen;
	if (!key) {
		memset(p, 'x', b->o.size);
		p += b->o.size;
	} else {
		klen = strlen(key);
		body = b->o.size - JSON_OVERHEAD - klen;
		memcpy(p, KEY_OPEN, sizeof(KEY_OPEN) - 1);
		p += sizeof(KEY_OPEN) - 1;
		memcpy(p, key, klen);
		p += klen;
		memcpy(p, KEY_BODY, sizeof(KEY_BODY) - 1);
		p += sizeof(KEY_BODY) - 1;
		memset(p, 'x', body);
		p += body;
		memcpy(p, BODY_CLOSE, sizeof(BODY_CLOSE) - 1);
		p += sizeof(BODY_CLOSE) - 1;
	}
	p[0] = '\r';
	p[1] = '\n';
	return (size_t)(p + 2 - start);
}

static void random_key(struct bench *b, char *out, size_t cap)
{
	snprintf(out, cap, "k%" PRIu64, rng_next(b) % b->o.key_space);
}

static int setup_lines(struct bench *b)
{
	size_t n;

	char name[300];

	/* The longest topic name: the last one. */
	b->prefix_len =
		5 + strlen(topic_name(b, b->o.topics - 1, name, sizeof(name))) +
		1;
	b->line_len = b->prefix_len + b->o.size + 2;
	if (b->o.keys == KEYS_RANDOM || b->o.topics > 1)
		return 0;
	/* A constant line: keep a block of copies that every write of every
	 * connection points into, so publishing copies nothing. */
	n = BLOCK_TARGET / b->line_len;
	if (n < 1)
		n = 1;
	if (n > (size_t)b->o.window)
		n = (size_t)b->o.window;
	b->block = malloc(n * b->line_len);
	if (!b->block)
		return -1;
	for (size_t i = 0; i < n; i++)
		build_line(b, b->block + i * b->line_len, b->o.topic,
			   b->o.keys == KEYS_FIXED ? b->o.key : NULL);
	b->block_lines = n;
	return 0;
}

static int pub_more(const struct bench *b)
{
	return !b->no_more && !(b->o.count && b->sent >= b->o.count);
}

/* Tops the connection's window up with one write. */
static void pub_fill(struct conn *c)
{
	struct bench *b = c->b;
	uint64_t k = (uint64_t)b->o.window - c->inflight;
	uint64_t now;
	struct wreq *w;
	uv_buf_t one, *bufs;
	unsigned nbufs;

	if (c->closing || c->phase != PH_PUBS || !k || !pub_more(b))
		return;
	if (b->o.count && k > b->o.count - b->sent)
		k = b->o.count - b->sent;

	if (b->block) {
		nbufs = (unsigned)((k + b->block_lines - 1) / b->block_lines);
		bufs = nbufs == 1 ? &one : malloc(nbufs * sizeof(*bufs));
		w = malloc(sizeof(*w));
		if (!bufs || !w)
			goto oom;
		for (unsigned i = 0; i < nbufs; i++) {
			uint64_t lines = k - (uint64_t)i * b->block_lines;

			if (lines > b->block_lines)
				lines = b->block_lines;
			bufs[i] = uv_buf_init(b->block,
					      (unsigned)(lines * b->line_len));
		}
	} else {
		char key[32], name[300];
		size_t len = 0;

		nbufs = 1;
		bufs = &one;
		w = malloc(sizeof(*w) + k * b->line_len);
		if (!w)
			goto oom;
		for (uint64_t i = 0; i < k; i++) {
			int t = (int)(b->next_topic++ % (uint64_t)b->o.topics);

			if (b->o.keys == KEYS_RANDOM)
				random_key(b, key, sizeof(key));
			len += build_line(
				b, w->data + len,
				topic_name(b, t, name, sizeof(name)),
				b->o.keys == KEYS_RANDOM  ? key
				: b->o.keys == KEYS_FIXED ? b->o.key
							  : NULL);
		}
		one = uv_buf_init(w->data, (unsigned)len);
	}

	now = uv_hrtime();
	for (uint64_t i = 0; i < k; i++)
		c->sent_at[(c->head + c->inflight + i) % b->o.window] = now;
	c->inflight += (uint32_t)k;
	b->sent += k;
	/* libuv copies the buffer list, not the bytes. */
	send_bufs(c, w, bufs, nbufs);
	if (bufs != &one)
		free(bufs);
	return;
oom:
	fprintf(stderr, "kafkaesque-bench: out of memory\n");
	exit(2);
}

/* ------------------------------------------------------------ parsing */

static int starts_with(const char *line, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && !memcmp(line, word, n) &&
	       (len == n || line[n] == ' ');
}

/* Reads a decimal number at *p, skipping spaces before it. */
static int parse_num(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return 0;
}

static void protocol_error(struct conn *c, const char *what, const char *line,
			   size_t len)
{
	struct bench *b = c->b;

	b->proto_errors++;
	note_error(b, "connection %d: %s: \"%.*s\"", c->id, what,
		   (int)(len > 200 ? 200 : len), line);
	b->lost += c->inflight;
	c->inflight = 0;
	conn_close(c);
}

static void start_run(struct bench *b);

static void on_create_answer(struct conn *c, const char *line, size_t len)
{
	struct bench *b = c->b;

	char name[300];

	if (starts_with(line, len, "OK") ||
	    starts_with(line, len, "ERR EXISTS")) {
		/* One at a time, as a user creating them would. */
		if (++b->created < b->o.topics) {
			send_cmd(c, "CRTP %s %d\r\n",
				 topic_name(b, b->created, name, sizeof(name)),
				 b->o.create);
			return;
		}
		b->create_pending = 0;
		b->create_secs = (double)(uv_hrtime() - b->t_create) /
				 (double)NS_PER_SEC;
	} else if (starts_with(line, len, "ERR")) {
		b->errors++;
		note_error(b, "CRTP %s: %.*s",
			   topic_name(b, b->created, name, sizeof(name)),
			   (int)len, line);
		b->aborted = 1;
		finish(b);
		return;
	} else {
		protocol_error(c, "unexpected answer to CRTP", line, len);
		return;
	}
	if (b->o.mode == MODE_CONSUME) {
		c->phase = PH_SUBS;
		send_cmd(c, "SUBS %s %s\r\n", b->o.topic, b->o.group);
	} else {
		c->phase = PH_WAIT;
		start_run(b);
	}
}

static void on_subs_answer(struct conn *c, const char *line, size_t len)
{
	struct bench *b = c->b;
	const char *p = line + 2, *end = line + len;
	uint64_t subid;

	if (starts_with(line, len, "ERR")) {
		b->errors++;
		note_error(b, "SUBS %s %s: %.*s", b->o.topic, b->o.group,
			   (int)len, line);
		b->aborted = 1;
		finish(b);
		return;
	}
	if (!starts_with(line, len, "OK") || parse_num(&p, end, &subid) < 0) {
		protocol_error(c, "unexpected answer to SUBS", line, len);
		return;
	}
	c->phase = PH_CONS;
	start_run(b);
	if (b->o.count)
		send_cmd(c, "CONS %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\r\n",
			 b->o.topic, subid, b->o.from, b->o.count);
	else
		send_cmd(c, "CONS %s %" PRIu64 " %" PRIu64 "\r\n", b->o.topic,
			 subid, b->o.from);
}

static void conn_done(struct conn *c)
{
	struct bench *b = c->b;

	c->phase = PH_DONE;
	b->t_end = uv_hrtime();
	conn_close(c);
}

static void on_pubs_answer(struct conn *c, const char *line, size_t len)
{
	struct bench *b = c->b;
	int ok;

	if (!len)
		return;
	ok = starts_with(line, len, "OK");
	if ((!ok && !starts_with(line, len, "ERR")) || !c->inflight) {
		protocol_error(c, "unexpected answer to PUBS", line, len);
		return;
	}
	if (ok) {
		bench_hist_add(&b->lat, uv_hrtime() - c->sent_at[c->head]);
		b->acked++;
		b->bytes += b->o.size;
	} else {
		b->errors++;
		note_error(b, "PUBS: %.*s", (int)len, line);
	}
	c->head = (c->head + 1) % (uint32_t)b->o.window;
	c->inflight--;
}

static void on_cons_line(struct conn *c, const char *line, size_t len)
{
	struct bench *b = c->b;
	const char *p, *end = line + len;
	uint64_t part, off, n;

	if (len > 4 && !memcmp(line, "MSG ", 4)) {
		p = line + 4;
		if (parse_num(&p, end, &part) < 0 ||
		    parse_num(&p, end, &off) < 0 ||
		    parse_num(&p, end, &n) < 0) {
			protocol_error(c, "bad MSG header", line, len);
			return;
		}
		/* The payload is skipped, never scanned for line ends. */
		c->skip = n;
		c->want_eol = 1;
		b->acked++;
		b->bytes += n;
		return;
	}
	if (starts_with(line, len, "OK")) {
		p = line + 2;
		if (parse_num(&p, end, &b->reported) < 0) {
			protocol_error(c, "bad CONS status", line, len);
			return;
		}
		b->cons_done = 1;
		if (b->reported != b->acked) {
			b->proto_errors++;
			note_error(b,
				   "CONS answered OK %" PRIu64 " after %" PRIu64
				   " messages",
				   b->reported, b->acked);
		}
		conn_done(c);
		return;
	}
	if (starts_with(line, len, "ERR")) {
		b->errors++;
		note_error(b, "CONS: %.*s", (int)len, line);
		conn_done(c);
		return;
	}
	protocol_error(c, "unexpected line in CONS answer", line, len);
}

static void on_line(struct conn *c, const char *line, size_t len)
{
	switch (c->phase) {
	case PH_CREATE: on_create_answer(c, line, len); break;
	case PH_SUBS: on_subs_answer(c, line, len); break;
	case PH_PUBS: on_pubs_answer(c, line, len); break;
	case PH_CONS: on_cons_line(c, line, len); break;
	default:
		if (len)
			protocol_error(c, "unexpected line", line, len);
		break;
	}
}

/* Consumes what it can of rbuf; a partial line stays at its start. */
static void parse_input(struct conn *c)
{
	char *p = c->rbuf, *end = c->rbuf + c->rlen, *nl;
	size_t len;

	while (p < end && !c->closing) {
		if (c->skip) {
			uint64_t n = (uint64_t)(end - p);

			if (n > c->skip)
				n = c->skip;
			p += n;
			c->skip -= n;
			continue;
		}
		if (c->want_eol) {
			if (end - p < 2)
				break;
			if (p[0] != '\r' || p[1] != '\n') {
				protocol_error(c, "message not ended by CRLF",
					       p, 2);
				return;
			}
			p += 2;
			c->want_eol = 0;
			continue;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		on_line(c, p, len);
		p = nl + 1;
	}
	if (c->closing)
		return;
	c->rlen = (size_t)(end - p);
	if (c->rlen && p != c->rbuf)
		memmove(c->rbuf, p, c->rlen);
}

/* --------------------------------------------------------- connection */

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct bench *b = c->b;

	free(c->rbuf);
	c->rbuf = NULL;
	if (--b->open_conns == 0)
		finish(b);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->phase != PH_DONE && c->b->started)
		c->b->t_end = uv_hrtime();
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	*buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct bench *b = c->b;

	if (c->closing)
		return;
	if (nread < 0) {
		if (c->phase != PH_DONE) {
			b->conn_failures++;
			note_error(b, "connection %d: %s", c->id,
				   nread == UV_EOF ? "closed by the broker"
						   : uv_strerror((int)nread));
			b->lost += c->inflight;
			c->inflight = 0;
		}
		conn_close(c);
		return;
	}
	c->rlen += (size_t)nread;
	parse_input(c);
	if (c->closing)
		return;
	if (c->rlen == c->rcap) {
		/* One line filled the buffer: grow it, within reason. */
		char *nb;

		if (c->rcap >= RBUF_MAX) {
			protocol_error(c, "answer line too long", c->rbuf, 80);
			return;
		}
		nb = realloc(c->rbuf, c->rcap * 2);
		if (!nb) {
			fprintf(stderr, "kafkaesque-bench: out of memory\n");
			exit(2);
		}
		c->rbuf = nb;
		c->rcap *= 2;
	}
	if (c->phase == PH_PUBS) {
		pub_fill(c);
		if (!c->inflight && !pub_more(b))
			conn_done(c);
	}
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct bench *b = c->b;
	int rc;

	b->pending_connects--;
	if (c->closing)
		return;
	if (status < 0) {
		b->conn_failures++;
		note_error(b, "connection %d: connect to %s: %s", c->id,
			   b->addr_text, uv_strerror(status));
		if (c->id == 0 && b->o.create)
			b->create_pending = 0;
		conn_close(c);
		if (b->o.mode != MODE_CONSUME)
			start_run(b);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc < 0) {
		b->conn_failures++;
		note_error(b, "connection %d: read: %s", c->id,
			   uv_strerror(rc));
		conn_close(c);
		return;
	}
	if (c->id == 0 && b->o.create) {
		char name[300];

		c->phase = PH_CREATE;
		b->t_create = uv_hrtime();
		send_cmd(c, "CRTP %s %d\r\n", topic_name(b, 0, name, sizeof(name)),
			 b->o.create);
	} else if (b->o.mode == MODE_CONSUME) {
		c->phase = PH_SUBS;
		send_cmd(c, "SUBS %s %s\r\n", b->o.topic, b->o.group);
	} else {
		c->phase = PH_WAIT;
		start_run(b);
	}
}

/* ---------------------------------------------------------------- run */

static void on_deadline(uv_timer_t *t)
{
	struct bench *b = t->data;

	b->no_more = 1;
	if (b->o.mode == MODE_CONSUME) {
		/* A timed read ends here; what arrived is the result. */
		for (int i = 0; i < b->o.conns; i++)
			if (!b->conns[i].closing)
				conn_done(&b->conns[i]);
		return;
	}
	for (int i = 0; i < b->o.conns; i++) {
		struct conn *c = &b->conns[i];

		if (!c->closing && c->phase == PH_PUBS && !c->inflight)
			conn_done(c);
	}
}

static void on_sigint(uv_signal_t *s, int signum)
{
	struct bench *b = s->data;

	if (b->no_more || !b->started) {
		/* Second interrupt: stop waiting for answers. */
		b->aborted = 1;
		finish(b);
		return;
	}
	fprintf(stderr, "kafkaesque-bench: interrupted, draining "
			"(interrupt again to stop now)\n");
	on_deadline(&b->deadline);
}

/* Starts measuring once every connection is up and the topic exists. */
static void start_run(struct bench *b)
{
	if (b->started || b->finished)
		return;
	if (b->o.mode != MODE_CONSUME &&
	    (b->pending_connects || b->create_pending))
		return;
	b->started = 1;
	pids_sample(b, 0);
	b->t_start = b->t_end = b->last_t = uv_hrtime();
	uv_timer_start(&b->tick, on_tick, 1000, 1000);
	if (b->o.duration > 0)
		uv_timer_start(&b->deadline, on_deadline,
			       (uint64_t)(b->o.duration * 1000.0), 0);
	if (b->o.mode == MODE_CONSUME)
		return;
	for (int i = 0; i < b->o.conns; i++) {
		struct conn *c = &b->conns[i];

		if (c->closing || c->phase != PH_WAIT)
			continue;
		c->phase = PH_PUBS;
		pub_fill(c);
		if (!c->closing && !c->inflight)
			conn_done(c);
	}
}

static void close_if_open(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void finish(struct bench *b)
{
	if (b->aborted) {
		for (int i = 0; i < b->o.conns; i++) {
			struct conn *c = &b->conns[i];

			if (!c->closing) {
				b->lost += c->inflight;
				c->inflight = 0;
				conn_close(c);
			}
		}
	}
	if (b->finished)
		return;
	b->finished = 1;
	pids_sample(b, 1);
	close_if_open((uv_handle_t *)&b->tick);
	close_if_open((uv_handle_t *)&b->deadline);
	close_if_open((uv_handle_t *)&b->sigint);
}

static int resolve(struct bench *b)
{
	uv_getaddrinfo_t req;
	struct addrinfo hints;
	char port[16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", b->o.port);
	/* Without a callback libuv resolves synchronously. */
	rc = uv_getaddrinfo(b->loop, &req, NULL, b->o.host, port, &hints);
	if (rc < 0) {
		fprintf(stderr, "kafkaesque-bench: %s: %s\n", b->o.host,
			uv_strerror(rc));
		return -1;
	}
	memcpy(&b->addr, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	snprintf(b->addr_text, sizeof(b->addr_text),
		 strchr(b->o.host, ':') ? "[%s]:%d" : "%s:%d", b->o.host,
		 b->o.port);
	return 0;
}

static int run(struct bench *b)
{
	b->loop = uv_default_loop();
	if (resolve(b) < 0)
		return -1;
	if (b->o.mode != MODE_CONSUME && setup_lines(b) < 0)
		return -1;
	bench_hist_init(&b->lat);
	uv_timer_init(b->loop, &b->tick);
	uv_timer_init(b->loop, &b->deadline);
	uv_signal_init(b->loop, &b->sigint);
	b->tick.data = b->deadline.data = b->sigint.data = b;
	uv_signal_start(&b->sigint, on_sigint, SIGINT);

	b->conns = calloc((size_t)b->o.conns, sizeof(*b->conns));
	if (!b->conns)
		return -1;
	b->create_pending = b->o.create > 0;
	b->pending_connects = b->o.conns;
	for (int i = 0; i < b->o.conns; i++) {
		struct conn *c = &b->conns[i];
		int rc;

		c->b = b;
		c->id = i;
		c->rcap =
			b->o.mode == MODE_CONSUME ? RBUF_CONSUME : RBUF_PUBLISH;
		c->rbuf = malloc(c->rcap);
		if (b->o.mode != MODE_CONSUME)
			c->sent_at = calloc((size_t)b->o.window,
					    sizeof(*c->sent_at));
		if (!c->rbuf || (b->o.mode != MODE_CONSUME && !c->sent_at))
			return -1;
		uv_tcp_init(b->loop, &c->tcp);
		c->tcp.data = c;
		c->connect.data = c;
		b->open_conns++;
		rc = uv_tcp_connect(&c->connect, &c->tcp,
				    (const struct sockaddr *)&b->addr,
				    on_connect);
		if (rc < 0) {
			b->pending_connects--;
			b->conn_failures++;
			note_error(b, "connection %d: connect to %s: %s", i,
				   b->addr_text, uv_strerror(rc));
			if (i == 0)
				b->create_pending = 0;
			conn_close(c);
		}
	}
	uv_run(b->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < b->o.conns; i++)
		free(b->conns[i].sent_at);
	free(b->conns);
	free(b->block);
	uv_loop_close(b->loop);
	return 0;
}

/* -------------------------------------------------------------- flags */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kafkaesque-bench MODE [options]\n"
		"\n"
		"A load generator for the kafkaesque text protocol.\n"
		"\n"
		"Modes:\n"
		"  publish   PUBS from -c connections, each keeping up to -w\n"
		"            commands unanswered (pipelined)\n"
		"  latency   PUBS one at a time on one connection (-c 1 -w "
		"1):\n"
		"            the round trip of each message\n"
		"  consume   SUBS TOPIC GROUP then CONS TOPIC SUBID OFFSET "
		"on one\n"
		"            connection, counting the MSG records up to OK\n"
		"  disk      no broker: fdatasync and spread-append figures\n"
		"            of the disk under a folder (disk --help)\n"
		"\n"
		"Options:\n"
		"  -h, --host HOST       broker host (default 127.0.0.1)\n"
		"  -p, --port PORT       broker client port (default 8080)\n"
		"  -t, --topic TOPIC     topic (default bench)\n"
		"      --create P        first CRTP TOPIC P; ERR EXISTS is "
		"fine\n"
		"      --topics N        publish: over N topics TOPIC0 .. "
		"TOPIC<N-1>,\n"
		"                        round robin (with --create P: each "
		"created\n"
		"                        with P partitions, one at a time, "
		"timed)\n"
		"      --pids PIDS       report the CPU (over the run) and "
		"RSS (at\n"
		"                        its end) of these broker processes "
		"(1,2,3)\n"
		"  -c, --connections N   publish: connections (default 4)\n"
		"  -w, --window W        publish: unanswered PUBS per "
		"connection\n"
		"                        (default 32)\n"
		"  -s, --size S          message size in bytes (default "
		"100)\n"
		"      --keys MODE       none: a plain body of S bytes "
		"(default);\n"
		"                        random, fixed: the JSON message\n"
		"                        {\"Key\":\"k123\",\"Body\":\"xx..."
		"\"} padded to S\n"
		"      --key KEY         the key of --keys fixed (default "
		"k123)\n"
		"      --key-space N     --keys random draws k0 .. k<N-1> "
		"(default\n"
		"                        1000000)\n"
		"      --seed N          seed of the random keys (default: "
		"the time)\n"
		"  -n, --count COUNT     publish, latency: messages in all;\n"
		"                        consume: at most COUNT messages "
		"(CONS's\n"
		"                        <max>; default: all there are)\n"
		"  -d, --duration SECS   stop sending after SECS seconds "
		"and wait\n"
		"                        for the answers; consume: stop "
		"reading\n"
		"                        (default: -n 100000 for publish, "
		"10000\n"
		"                        for latency)\n"
		"  -g, --group GROUP     consume: consumer group (default "
		"bench)\n"
		"      --from OFFSET     consume: first offset (default 0)\n"
		"  -j, --json            print one JSON object on stdout at "
		"the end\n"
		"                        instead of the text summary\n"
		"  -q, --quiet           no progress lines (runs over 2 s "
		"print one\n"
		"                        a second on stderr)\n"
		"      --help            this help\n"
		"      --version         print the version\n"
		"\n"
		"Exit status: 0 when every command was answered OK, 1 when "
		"an ERR\n"
		"answer, a protocol error or a connection failure happened, "
		"2 on a\n"
		"usage error.\n");
}

enum long_only {
	OPT_CREATE = 256,
	OPT_TOPICS,
	OPT_PIDS,
	OPT_KEYS,
	OPT_KEY,
	OPT_KEY_SPACE,
	OPT_SEED,
	OPT_FROM,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_opts[] = {
	{"host", required_argument, NULL, 'h'},
	{"port", required_argument, NULL, 'p'},
	{"topic", required_argument, NULL, 't'},
	{"create", required_argument, NULL, OPT_CREATE},
	{"topics", required_argument, NULL, OPT_TOPICS},
	{"pids", required_argument, NULL, OPT_PIDS},
	{"connections", required_argument, NULL, 'c'},
	{"window", required_argument, NULL, 'w'},
	{"size", required_argument, NULL, 's'},
	{"keys", required_argument, NULL, OPT_KEYS},
	{"key", required_argument, NULL, OPT_KEY},
	{"key-space", required_argument, NULL, OPT_KEY_SPACE},
	{"seed", required_argument, NULL, OPT_SEED},
	{"count", required_argument, NULL, 'n'},
	{"duration", required_argument, NULL, 'd'},
	{"group", required_argument, NULL, 'g'},
	{"from", required_argument, NULL, OPT_FROM},
	{"json", no_argument, NULL, 'j'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static int parse_u64(const char *flag, const char *v, uint64_t min,
		     uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n < min || n > max) {
		fprintf(stderr,
			"kafkaesque-bench: %s: expected an integer %" PRIu64
			"..%" PRIu64 ", got \"%s\"\n",
			flag, min, max, v);
		return -1;
	}
	*out = n;
	return 0;
}

static int parse_int(const char *flag, const char *v, int min, int max,
		     int *out)
{
	uint64_t n;

	if (parse_u64(flag, v, (uint64_t)min, (uint64_t)max, &n) < 0)
		return -1;
	*out = (int)n;
	return 0;
}

static int check_key(const char *key)
{
	if (!*key)
		return -1;
	for (const char *p = key; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			return -1;
	return 0;
}

/* Returns 0 to run, 1 to exit 0, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	int ch, conns_set = 0, window_set = 0;
	const char *mode = NULL;
	char *end;

	o->host = "127.0.0.1";
	o->port = 8080;
	o->topic = "bench";
	o->group = "bench";
	o->conns = 4;
	o->window = 32;
	o->size = 100;
	o->keys = KEYS_NONE;
	o->key = "k123";
	o->key_space = 1000000;
	o->seed = uv_hrtime();
	o->topics = 1;

	while ((ch = getopt_long(argc, argv, "h:p:t:c:w:s:n:d:g:jq", long_opts,
				 NULL)) != -1) {
		switch (ch) {
		case 'h': o->host = optarg; break;
		case 'p':
			if (parse_int("-p", optarg, 1, 65535, &o->port) < 0)
				return -1;
			break;
		case 't': o->topic = optarg; break;
		case OPT_CREATE:
			if (parse_int("--create", optarg, 1, 1000000,
				      &o->create) < 0)
				return -1;
			break;
		case OPT_TOPICS:
			if (parse_int("--topics", optarg, 1, 100000,
				      &o->topics) < 0)
				return -1;
			break;
		case OPT_PIDS: o->pids = optarg; break;
		case 'c':
			if (parse_int("-c", optarg, 1, MAX_CONNS, &o->conns) <
			    0)
				return -1;
			conns_set = 1;
			break;
		case 'w':
			if (parse_int("-w", optarg, 1, MAX_WINDOW, &o->window) <
			    0)
				return -1;
			window_set = 1;
			break;
		case 's':
			if (parse_u64("-s", optarg, 1, 64 * 1024 * 1024,
				      &o->size) < 0)
				return -1;
			break;
		case OPT_KEYS:
			if (!strcmp(optarg, "none"))
				o->keys = KEYS_NONE;
			else if (!strcmp(optarg, "random"))
				o->keys = KEYS_RANDOM;
			else if (!strcmp(optarg, "fixed"))
				o->keys = KEYS_FIXED;
			else {
				fprintf(stderr,
					"kafkaesque-bench: --keys: expected "
					"none, random or fixed, got \"%s\"\n",
					optarg);
				return -1;
			}
			break;
		case OPT_KEY:
			if (check_key(optarg) < 0) {
				fprintf(stderr,
					"kafkaesque-bench: --key: a non-empty "
					"key without '\"', '\\' or control "
					"characters\n");
				return -1;
			}
			o->key = optarg;
			break;
		case OPT_KEY_SPACE:
			if (parse_u64("--key-space", optarg, 1, UINT64_MAX,
				      &o->key_space) < 0)
				return -1;
			break;
		case OPT_SEED:
			if (parse_u64("--seed", optarg, 0, UINT64_MAX,
				      &o->seed) < 0)
				return -1;
			break;
		case 'n':
			if (parse_u64("-n", optarg, 1, UINT64_MAX, &o->count) <
			    0)
				return -1;
			break;
		case 'd':
			errno = 0;
			o->duration = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(o->duration > 0 && o->duration < 1e7)) {
				fprintf(stderr,
					"kafkaesque-bench: -d: expected a "
					"positive number of seconds, got "
					"\"%s\"\n",
					optarg);
				return -1;
			}
			break;
		case 'g': o->group = optarg; break;
		case OPT_FROM:
			if (parse_u64("--from", optarg, 0, UINT64_MAX,
				      &o->from) < 0)
				return -1;
			break;
		case 'j': o->json = 1; break;
		case 'q': o->quiet = 1; break;
		case OPT_HELP: usage(stdout); return 1;
		case OPT_VERSION:
			printf("kafkaesque-bench %s\n", PACKAGE_VERSION);
			return 1;
		default:
			fprintf(stderr, "Try 'kafkaesque-bench --help'.\n");
			return -1;
		}
	}
	if (optind < argc)
		mode = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "kafkaesque-bench: unexpected argument %s\n",
			argv[optind]);
		return -1;
	}
	if (!mode) {
		usage(stderr);
		return -1;
	}
	if (!strcmp(mode, "publish")) {
		o->mode = MODE_PUBLISH;
	} else if (!strcmp(mode, "latency")) {
		o->mode = MODE_LATENCY;
	} else if (!strcmp(mode, "consume")) {
		o->mode = MODE_CONSUME;
	} else {
		fprintf(stderr,
			"kafkaesque-bench: unknown mode \"%s\" (publish, "
			"latency or consume)\n",
			mode);
		return -1;
	}

	if (o->mode != MODE_PUBLISH) {
		if ((conns_set && o->conns != 1) ||
		    (window_set && o->window != 1))
			fprintf(stderr,
				"kafkaesque-bench: %s uses one connection "
				"and window 1; -c and -w are ignored\n",
				mode);
		o->conns = 1;
		o->window = 1;
	}
	if (o->mode != MODE_CONSUME && !o->count && !o->duration)
		o->count = o->mode == MODE_LATENCY ? 10000 : 100000;
	if (o->keys != KEYS_NONE) {
		char widest[32];
		size_t klen;

		if (o->keys == KEYS_FIXED)
			klen = strlen(o->key);
		else
			klen = (size_t)snprintf(widest, sizeof(widest),
						"k%" PRIu64, o->key_space - 1);
		if (o->size < JSON_OVERHEAD + klen) {
			fprintf(stderr,
				"kafkaesque-bench: -s %" PRIu64
				" is too small for a keyed message: at least "
				"%zu bytes\n",
				o->size, JSON_OVERHEAD + klen);
			return -1;
		}
	}
	if (o->mode != MODE_CONSUME &&
	    (uint64_t)o->window * (o->size + strlen(o->topic) + 8) >
		    ((uint64_t)1 << 30)) {
		fprintf(stderr, "kafkaesque-bench: -w x -s is over 1 GiB in "
				"flight per connection\n");
		return -1;
	}
	if (o->topics > 1 && o->mode != MODE_PUBLISH) {
		fprintf(stderr, "kafkaesque-bench: --topics is for publish\n");
		return -1;
	}
	if (!o->seed)
		o->seed = 1; /* xorshift stays at zero from zero */
	return 0;
}

/* --pids: up to MAX_PIDS process ids, comma-separated. */
static int parse_pids(struct bench *b)
{
	const char *p = b->o.pids;

	while (p && *p) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (errno || end == p || v <= 0 || v > INT32_MAX ||
		    (*end && *end != ',') || b->npids == MAX_PIDS) {
			fprintf(stderr,
				"kafkaesque-bench: --pids: expected up to %d "
				"process ids separated by commas, got \"%s\"\n",
				MAX_PIDS, b->o.pids);
			return -1;
		}
		b->pid[b->npids++] = (int)v;
		p = *end ? end + 1 : end;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct bench b;
	int rc;

	if (argc > 1 && strcmp(argv[1], "disk") == 0)
		return bench_disk_main(argc - 1, argv + 1);
	rc = parse_args(argc, argv, &b.o);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (parse_pids(&b) < 0)
		return 2;
	b.rng = b.o.seed;
	/* A broker that goes away must surface as EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (run(&b) < 0)
		return 2;
	if (b.o.json)
		print_json(&b);
	else
		print_text(&b);
	fflush(stdout);
	if (b.errors || b.conn_failures || b.proto_errors || b.lost ||
	    (b.o.mode == MODE_CONSUME && !b.cons_done && !b.no_more))
		return 1;
	return 0;
}
