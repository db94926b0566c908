/* Writes seed inputs for the fuzz targets from the project's real inputs;
 * run by tests/fuzz/make-corpus.sh, which says where each part goes.
 *
 *   gen_corpus literals OUT FILE...  configurations written in C sources:
 *                                    adjacent string literals joined, kept
 *                                    when they hold a JSON object (a
 *                                    harness extra becomes {extra})
 *   gen_corpus sessions OUT FILE...  .kqs transcripts as fuzz_commands
 *                                    inputs: the client's side only
 *   gen_corpus bodies OUT FILE...    the messages PUBS sends in them
 *   gen_corpus segments OUT DIR...   segment fixtures as fuzz_segment_open
 *                                    inputs (docs in that target)
 *   gen_corpus frames OUT            cluster-port byte streams made with
 *                                    the real frame encoder (frame.c)
 *   gen_corpus auth OUT              handshakes of the real auth module
 *                                    (auth.c), as fuzz_raft_auth reads
 *                                    them: a mode byte, then what the
 *                                    other end sends */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "frame.h"

static const char *out_dir;
static unsigned nout;

static void put(const char *kind, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s-%03u", out_dir, kind, nout++);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		perror(path);
		exit(1);
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		exit(1);
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* A growing byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

static void add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			exit(1);
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void addc(struct buf *b, char c)
{
	add(b, &c, 1);
}

/* ------------------------------------------------------------ literals */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads one C string literal at s (after its quote); returns the end. */
static const char *literal(const char *s, struct buf *b)
{
	while (*s && *s != '"') {
		if (*s != '\\') {
			addc(b, *s++);
			continue;
		}
		s++;
		switch (*s) {
		case 'n': addc(b, '\n'); break;
		case 't': addc(b, '\t'); break;
		case 'r': addc(b, '\r'); break;
		case 'x': {
			int v = 0;

			while (hexval(s[1]) >= 0)
				v = v * 16 + hexval(*++s);
			addc(b, (char)v);
			break;
		}
		default: addc(b, *s); break;
		}
		if (*s)
			s++;
	}
	return *s ? s + 1 : s;
}

static void literals(const char *path)
{
	size_t len;
	char *src = slurp(path, &len);
	const char *s = src;

	while ((s = strchr(s, '"')) != NULL) {
		struct buf b = {0};
		const char *t;

		/* Skip character constants such as '"'. */
		if (s > src && s[-1] == '\'') {
			s++;
			continue;
		}
		s = literal(s + 1, &b);
		/* Adjacent literals are one string. */
		for (;;) {
			t = s;
			while (*t == ' ' || *t == '\t' || *t == '\n')
				t++;
			if (*t != '"')
				break;
			s = literal(t + 1, &b);
		}
		if (b.len > 2 && b.p[0] == '{' && strstr(b.p, "\":")) {
			put("config", b.p, b.len);
		} else if (b.len > 4 && b.p[0] == '"' && strstr(b.p, "\": ")) {
			struct buf w = {0};

			add(&w, "{", 1);
			add(&w, b.p, b.len);
			add(&w, "}", 1);
			put("extra", w.p, w.len);
			free(w.p);
		}
		free(b.p);
	}
	free(src);
}

/* ------------------------------------------------------------ sessions */

/* "\xff", "\r", "\n", "\t" in an @raw line. */
static void unescape(const char *s, struct buf *b)
{
	while (*s && *s != '\n') {
		if (s[0] == '\\' && s[1] == 'x' && hexval(s[2]) >= 0 &&
		    hexval(s[3]) >= 0) {
			addc(b, (char)(hexval(s[2]) * 16 + hexval(s[3])));
			s += 4;
		} else if (s[0] == '\\' && (s[1] == 'r' || s[1] == 'n' ||
					    s[1] == 't' || s[1] == '\\')) {
			addc(b, s[1] == 'r'   ? '\r'
				: s[1] == 'n' ? '\n'
				: s[1] == 't' ? '\t'
					      : '\\');
			s += 2;
		} else {
			addc(b, *s++);
		}
	}
}

/* The client's side of a transcript; `bodies` gets each PUBS message. */
static void session(const char *path, int bodies)
{
	size_t len;
	char *text = slurp(path, &len), *line, *save = NULL;
	struct buf all = {0}, part = {0};
	int n = 0;

	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct buf cmd = {0};

		if (strncmp(line, "> ", 2) == 0) {
			add(&cmd, line + 2, strlen(line + 2));
			addc(&cmd, '\n');
			if (bodies && strncmp(line + 2, "PUBS ", 5) == 0) {
				const char *sp = strchr(line + 7, ' ');

				if (sp && sp[1])
					put("body", sp + 1, strlen(sp + 1));
			}
		} else if (strncmp(line, "@conn ", 6) == 0) {
			add(&cmd, "\x01", 1);
			addc(&cmd, (char)('0' + atoi(line + 6) % 4));
		} else if (strncmp(line, "@raw ", 5) == 0) {
			unescape(line + 5, &cmd);
		} else if (strcmp(line, "@close") == 0) {
			add(&cmd,
			    "\x01"
			    "e",
			    2);
		}
		if (!cmd.len)
			continue;
		add(&all, cmd.p, cmd.len);
		add(&part, cmd.p, cmd.len);
		/* Small pieces too: most paths need only a few commands. */
		if (++n % 6 == 0 && !bodies) {
			put("part", part.p, part.len);
			part.len = 0;
		}
		free(cmd.p);
	}
	if (!bodies) {
		if (part.len)
			put("part", part.p, part.len);
		put("session", all.p, all.len);
	}
	free(all.p);
	free(part.p);
	free(text);
}

/* ------------------------------------------------------------ segments */

static uint64_t base_of(const char *name)
{
	return strtoull(name, NULL, 10);
}

/* One fixture folder as one input, with each flag combination the
 * target knows. */
static void segments(const char *dir)
{
	static const uint8_t flags[] = {0x00, 0x04, 0x08, 0x10, 0x05, 0x26};
	struct buf files = {0};
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d) {
		perror(dir);
		exit(1);
	}
	while ((de = readdir(d)) != NULL) {
		const char *dot = strrchr(de->d_name, '.');
		char path[4096];
		uint8_t head[11];
		uint64_t base;
		size_t len;
		char *data;

		if (!dot || (strcmp(dot, ".log") && strcmp(dot, ".index")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		data = slurp(path, &len);
		if (len > 65535)
			len = 65535;
		base = base_of(de->d_name);
		head[0] = strcmp(dot, ".index") == 0;
		for (int i = 0; i < 8; i++)
			head[1 + i] = (uint8_t)(base >> (8 * i));
		head[9] = (uint8_t)len;
		head[10] = (uint8_t)(len >> 8);
		add(&files, head, sizeof(head));
		add(&files, data, len);
		free(data);
	}
	closedir(d);
	for (size_t i = 0; i < sizeof(flags); i++) {
		struct buf in = {0};

		add(&in, &flags[i], 1);
		add(&in, files.p, files.len);
		put("segment", in.p, in.len);
		free(in.p);
	}
	free(files.p);
}

/* ------------------------------------------------------------ frames */

static void frame_msg(struct buf *b, uint64_t group,
		      const struct kq__raft_msg *m)
{
	size_t n = kq__frame_msg_size(m);
	uint8_t *p = malloc(n);

	if (!p)
		exit(1);
	kq__frame_put_msg(p, group, m);
	add(b, p, n);
	free(p);
}

static void frames(void)
{
	static char payload[3][64] = {
		"{\"type\":\"topic\",\"name\":\"t\",\"partitions\":3}",
		"{\"Key\":\"21\",\"Body\":\"x\"}",
		"plain message",
	};
	struct kq__raft_entry entries[3];
	struct kq__frame_hb hb[3];
	struct buf b = {0};
	uint8_t tmp[256], nonce[KQ__FRAME_NONCE], mac[KQ__FRAME_MAC];

	for (size_t i = 0; i < sizeof(nonce); i++)
		nonce[i] = (uint8_t)(i * 37 + 11);
	for (size_t i = 0; i < sizeof(mac); i++)
		mac[i] = (uint8_t)(i * 53 + 7);
	memset(entries, 0, sizeof(entries));
	for (int i = 0; i < 3; i++) {
		entries[i].index = 5 + (uint64_t)i;
		entries[i].term = 2;
		entries[i].flags = i == 0;
		entries[i].len = (uint32_t)strlen(payload[i]);
		entries[i].data = payload[i];
	}
	/* Every message type, each after a hello, as a connection sends. */
	for (int t = KQ__RAFT_MSG_APPEND; t <= KQ__RAFT_MSG_SNAPSHOT; t++) {
		struct kq__raft_msg m;

		memset(&m, 0, sizeof(m));
		m.type = (enum kq__raft_msg_type)t;
		m.from = 1;
		m.to = 2;
		m.term = 2;
		m.index = 4;
		m.log_term = 1;
		m.commit = 4;
		if (t == KQ__RAFT_MSG_APPEND) {
			m.entries = entries;
			m.n_entries = 3;
		}
		if (t == KQ__RAFT_MSG_APPEND_RESP ||
		    t == KQ__RAFT_MSG_VOTE_RESP)
			m.reject = true, m.hint = 3;
		if (t == KQ__RAFT_MSG_SNAPSHOT) {
			m.snap.index = 4;
			m.snap.term = 1;
			m.snap.data = payload[0];
			m.snap.len = (uint32_t)strlen(payload[0]);
		}
		b.len = 0;
		kq__frame_put_hello(tmp, 1, 2, KQ__FRAME_HELLO_AUTH, nonce);
		add(&b, tmp, kq__frame_hello_size());
		kq__frame_put_auth(tmp, mac);
		add(&b, tmp, kq__frame_auth_size());
		frame_msg(&b, t == KQ__RAFT_MSG_SNAPSHOT ? 0 : 1 << 17, &m);
		put("frame", b.p, b.len);
	}
	/* Heartbeats: a keepalive and a batch. */
	for (uint32_t n = 0; n <= 3; n += 3) {
		for (uint32_t i = 0; i < n; i++) {
			hb[i].group = (uint64_t)i << 17;
			hb[i].type = i % 2 ? KQ__RAFT_MSG_HEARTBEAT_RESP
					   : KQ__RAFT_MSG_HEARTBEAT;
			hb[i].term = 3;
			hb[i].commit = 10 + i;
		}
		b.len = 0;
		kq__frame_put_hello(tmp, 2, 0, 0, nonce);
		add(&b, tmp, kq__frame_hello_size());
		kq__frame_put_hb(tmp, 2, 1, hb, n);
		add(&b, tmp, kq__frame_hb_size(n));
		put("frame", b.p, b.len);
	}
	/* A forwarded PUBS (the core's request as core/wire.h lays out
	 * it) and its answer. */
	{
		static const uint8_t req[] = {
			2, 3, 0, 't', 'o', 'p', 0, 0, 0, 0, 1, 0, 0, 0,
			5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0};
		static const uint8_t ans[] = {0, 0, 0, 0, 0, 0,	 0, 0, 0, 0,
					      0, 0, 0, 0, 0, 0,	 0, 0, 0, 0,
					      0, 0, 0, 0, 0, 42, 0, 0, 0, 0,
					      0, 0, 0};

		b.len = 0;
		kq__frame_put_hello(tmp, 2, 0, 0, nonce);
		add(&b, tmp, kq__frame_hello_size());
		kq__frame_put_call(tmp, KQ__FRAME_CALL, 1, req, sizeof(req));
		add(&b, tmp, kq__frame_call_size(sizeof(req)));
		kq__frame_put_call(tmp, KQ__FRAME_REPLY, 1, ans, sizeof(ans));
		add(&b, tmp, kq__frame_call_size(sizeof(ans)));
		put("frame", b.p, b.len);
	}
	free(b.p);
}

/* ------------------------------------------------------------ auth */

static int accept_any(void *ctx, int id)
{
	(void)ctx;
	return id == 1;
}

/* Both ends of a real handshake, run against each other; the seed is
 * the mode byte and the other end's bytes (after its hello when the
 * target sends a genuine one itself), then a heartbeat frame as the
 * first frame after the handshake.  The nonces are fresh in each run of
 * the target, so a seed's AUTH reaches the MAC check and fails there:
 * what it gives the fuzzer is the shape of every frame. */
static void auth(void)
{
	static const uint8_t chunks[] = {0, 3, 31};
	struct kq__auth_key *key;
	struct kq__frame_hb hb = {.group = 1 << 17,
				  .type = KQ__RAFT_MSG_HEARTBEAT,
				  .term = 3,
				  .commit = 7};
	uint8_t tmp[256];

	if (kq__auth_global_init() != 0 ||
	    kq__auth_key_new("fuzzing secret, 32 bytes long...", 32, &key) !=
		    0)
		exit(1);
	for (unsigned mode = 0; mode < 8; mode++) {
		bool dialer = mode & 1, with_key = mode & 2, genuine = mode & 4;
		struct kq__auth a, other;
		struct buf b = {0};
		size_t hello_len, used = 0;
		const char *why = NULL;

		if (dialer) {
			kq__auth_start(&a, with_key ? key : NULL, 1, 2, true,
				       NULL, NULL);
			kq__auth_start(&other, with_key ? key : NULL, 2, 0,
				       false, accept_any, NULL);
		} else {
			kq__auth_start(&a, with_key ? key : NULL, 2, 0, false,
				       accept_any, NULL);
			kq__auth_start(&other, with_key ? key : NULL, 1, 2,
				       true, NULL, NULL);
		}
		hello_len = other.out_len;
		add(&b, other.out, other.out_len);
		other.out_len = 0;
		if (kq__auth_feed(&other, a.out, a.out_len, &used, &why) < 0) {
			fprintf(stderr, "auth: %s\n", why);
			exit(1);
		}
		add(&b, other.out, other.out_len);
		kq__frame_put_hb(tmp, 1, 2, &hb, 1);
		add(&b, tmp, kq__frame_hb_size(1));
		for (size_t c = 0; c < sizeof(chunks); c++) {
			uint8_t m = (uint8_t)(mode | chunks[c] << 3);
			struct buf seed = {0};
			size_t skip = genuine ? hello_len : 0;

			add(&seed, &m, 1);
			add(&seed, b.p + skip, b.len - skip);
			put("auth", seed.p, seed.len);
			free(seed.p);
		}
		kq__auth_clear(&a);
		kq__auth_clear(&other);
		free(b.p);
	}
	kq__auth_key_free(key);
}

/* ------------------------------------------------------------ forwarded */

static void put16le(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	add(b, x, 2);
}

static void put32le(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			(uint8_t)(v >> 24)};

	add(b, x, 4);
}

static void put_str(struct buf *b, const char *s)
{
	put16le(b, (uint16_t)strlen(s));
	add(b, s, strlen(s));
}

/* fuzz_commands inputs: a client's CRTP, then requests another broker
 * forwarded (laid out as core/wire.h says) behind the control pair "\1F"
 * and their length. */
static void forwarded(void)
{
	static const char *const opts[] = {"replicas=1", "retention.ms=1000"};
	/* Consumer group membership records (core/members.c). */
	static const char *const members[] = {
		"{\"type\":\"register\",\"broker\":2,\"boot\":7}",
		"{\"type\":\"join\",\"topic\":\"t\",\"group\":\"g\","
		"\"sub\":5001,\"cap\":0,\"broker\":2,\"boot\":7}",
		"{\"type\":\"leave\",\"sub\":1}",
		"{\"type\":\"expire\",\"broker\":2,\"boot\":7}",
	};
	struct buf reqs[9] = {{0}};

	add(&reqs[0], "\1", 1); /* CREATE */
	put_str(&reqs[0], "fwd");
	put32le(&reqs[0], 2);
	put16le(&reqs[0], 2);
	put_str(&reqs[0], opts[0]);
	put_str(&reqs[0], opts[1]);
	add(&reqs[1], "\2", 1); /* PUBLISH: two messages, one keyed */
	put_str(&reqs[1], "t");
	put32le(&reqs[1], 0);
	put32le(&reqs[1], 2);
	put32le(&reqs[1], 5);
	add(&reqs[1], "hello", 5);
	put32le(&reqs[1], 0);
	put32le(&reqs[1], 2);
	add(&reqs[1], "hi", 2);
	put32le(&reqs[1], 1);
	add(&reqs[1], "k", 1);
	add(&reqs[2], "\3", 1); /* META: committed offsets */
	add(&reqs[2],
	    "{\"type\":\"offsets\",\"topic\":\"t\",\"group\":\"g\","
	    "\"offsets\":[[0,1]],\"set\":false,\"broker\":2,\"boot\":7}",
	    strlen("{\"type\":\"offsets\",\"topic\":\"t\",\"group\":"
		   "\"g\",\"offsets\":[[0,1]],\"set\":false,\"broker\":2,"
		   "\"boot\":7}"));
	for (int k = 0; k < 4; k++) {
		add(&reqs[3 + k], "\3", 1);
		add(&reqs[3 + k], members[k], strlen(members[k]));
	}
	for (int k = 0; k < 2; k++) { /* FETCH: all, then 1 from offset 1 */
		add(&reqs[7 + k], "\4", 1);
		put_str(&reqs[7 + k], "t");
		put32le(&reqs[7 + k], 0);
		put32le(&reqs[7 + k], (uint32_t)k); /* from */
		put32le(&reqs[7 + k], 0);
		put32le(&reqs[7 + k], k ? 9 : 0xffffffffu); /* end */
		put32le(&reqs[7 + k], k ? 0 : 0xffffffffu);
		put32le(&reqs[7 + k], k ? 4096 : 0); /* budget */
		put32le(&reqs[7 + k], (uint32_t)k);  /* max */
	}
	for (int k = 0; k < 9; k++) {
		struct buf in = {0};
		uint8_t len[2] = {(uint8_t)reqs[k].len,
				  (uint8_t)(reqs[k].len >> 8)};

		add(&in, "CRTP t 2\nSUBS t g\n", 18);
		add(&in, "\1p\1F", 4);
		add(&in, len, 2);
		add(&in, reqs[k].p, reqs[k].len);
		add(&in, "\1pCONS t 1 0\nDESC t\nGRPS t\n", 27);
		put("forward", in.p, in.len);
		free(in.p);
		free(reqs[k].p);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: gen_corpus MODE OUT [INPUT...]\n");
		return 2;
	}
	out_dir = argv[2];
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[1], "literals") == 0)
			literals(argv[i]);
		else if (strcmp(argv[1], "sessions") == 0)
			session(argv[i], 0);
		else if (strcmp(argv[1], "bodies") == 0)
			session(argv[i], 1);
		else if (strcmp(argv[1], "segments") == 0)
			segments(argv[i]);
	}
	if (strcmp(argv[1], "frames") == 0)
		frames();
	if (strcmp(argv[1], "auth") == 0)
		auth();
	if (strcmp(argv[1], "forwarded") == 0)
		forwarded();
	return 0;
}
