/* The cluster port between two brokers in one process, over loopback:
 * the frames a loop turn sends to a peer leave in one write, in order,
 * the receiver hands up at most TURN_FRAMES of them a turn, a
 * connection closed with frames held still tries to send them, and a
 * reply goes out however much Raft traffic its connection holds. */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include <kafkaesque/consensus.h>

#include "../../plugins/raft/port/cluster.h"
#include "../../plugins/raft/port/link.h"
#include "../fake_host.h"

#define N_MSGS 200

static uv_loop_t loop;

struct side {
	struct kq_host host;
	struct kq_peer_config peers[2];
	struct kq_cluster_config conf;
	struct kq__cluster *c;
	uint64_t got;	     /* messages delivered */
	uint64_t turn_got;   /* of which in the test's current loop turn */
	uint64_t last_index; /* of the last one, to check the order */
	int out_of_order;
	uint64_t reply_id; /* of the last reply received (0: none) */
};

static void deliver(void *ctx, uint64_t group, const struct kq__raft_msg *m)
{
	struct side *s = ctx;

	(void)group;
	if (m->index != s->last_index + 1)
		s->out_of_order++;
	s->last_index = m->index;
	s->got++;
	s->turn_got++;
}

static void on_reply(void *ctx, int from, uint64_t id, const uint8_t *body,
		     size_t len)
{
	struct side *s = ctx;

	(void)from;
	(void)body;
	(void)len;
	s->reply_id = id;
}

/* A loopback port nobody listens on now. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Caps of the accepting side, when a test sets them (0: the defaults). */
static unsigned cap_all, cap_per_address, auth_ms;

static void open_side(struct side *s, int id, int port1, int port2)
{
	struct kq__cluster_setup cfg = {
		.tick_ms = 50,
		.election_ticks = 10,
		.heartbeat_ticks = 1,
		.deliver = deliver,
		.on_reply = on_reply,
		.ctx = s,
	};

	memset(s, 0, sizeof(*s));
	s->peers[0] = (struct kq_peer_config){1, "127.0.0.1", 0, port1};
	s->peers[1] = (struct kq_peer_config){2, "127.0.0.1", 0, port2};
	s->conf = (struct kq_cluster_config){
		.raft_port = id == 1 ? port1 : port2,
		.peers = s->peers,
		.n_peers = 2,
		.auth_timeout_ms = auth_ms ? auth_ms : 5000,
		.max_connections = cap_all ? cap_all : 128,
		.max_connections_per_address =
			cap_per_address ? cap_per_address : 16,
	};
	s->host = kq__test_host("raft", NULL);
	s->host.loop = &loop;
	s->host.broker_id = id;
	s->host.cluster = &s->conf;
	assert_int_equal(kq__cluster_new(&s->host, &cfg, &s->c), 0);
}

static void close_side(struct side *s)
{
	kq__cluster_close(s->c);
	while (kq__cluster_handles(s->c) > 0)
		uv_run(&loop, UV_RUN_ONCE);
	kq__cluster_free(s->c);
}

/* Runs the loop until `done` holds, for 5 s at most. */
static void run_until(int (*done)(struct side *, struct side *), struct side *a,
		      struct side *b)
{
	uint64_t end = uv_now(&loop) + 5000;

	while (!done(a, b) && uv_now(&loop) < end)
		uv_run(&loop, UV_RUN_NOWAIT), usleep(1000),
			uv_update_time(&loop);
	assert_true(done(a, b));
}

static int connected(struct side *a, struct side *b)
{
	return kq__cluster_peer_up(a->c, 2) && kq__cluster_peer_up(b->c, 1);
}

/* A fresh loop with brokers 1 (a) and 2 (b) on free ports, connected. */
static void connected_pair(struct side *a, struct side *b)
{
	int p1 = free_port(), p2 = free_port();

	assert_int_equal(uv_loop_init(&loop), 0);
	open_side(a, 1, p1, p2);
	open_side(b, 2, p1, p2);
	run_until(connected, a, b);
}

static int all_there(struct side *a, struct side *b)
{
	(void)a;
	return b->got == N_MSGS;
}

/* The write's callback, which gives back what was queued, runs on a
 * later loop turn than the one the bytes were read on. */
static int drained(struct side *a, struct side *b)
{
	(void)b;
	return a->c->conns->queued == 0;
}

static void send_n(struct side *a, uint64_t from_index, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct kq__raft_msg m = {
			.type = KQ__RAFT_MSG_APPEND_RESP,
			.from = 1,
			.to = 2,
			.term = 1,
			.index = from_index + i,
		};

		kq__cluster_send(a->c, 7, &m);
	}
}

static void send_turn(struct side *a, uint64_t from_index)
{
	send_n(a, from_index, N_MSGS);
}

static void test_one_write_a_turn(void **state)
{
	struct side a, b;
	uint64_t writes;

	(void)state;
	connected_pair(&a, &b);
	/* Whatever the handshake wrote has gone: the loop polled since. */
	writes = a.c->writes;
	send_turn(&a, 1);
	run_until(all_there, &a, &b);
	assert_int_equal(b.out_of_order, 0);
	assert_int_equal(a.c->writes - writes, 1);
	run_until(drained, &a, &b);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A burst of frames (a leader's turn over thousands of partitions, each
 * an append to a log here) is handed up TURN_FRAMES a loop turn at
 * most, the rest on the next turns, in order: counted per turn, not
 * timed. */
static void test_frames_a_turn_are_bounded(void **state)
{
	enum { N = 4 * TURN_FRAMES };
	uint64_t end, most = 0;
	struct side a, b;

	(void)state;
	connected_pair(&a, &b);
	send_n(&a, 1, N);
	end = uv_now(&loop) + 5000;
	while (b.got < N && uv_now(&loop) < end) {
		b.turn_got = 0;
		uv_run(&loop, UV_RUN_NOWAIT);
		if (b.turn_got > most)
			most = b.turn_got;
		usleep(1000);
		uv_update_time(&loop);
	}
	assert_int_equal(b.got, N);
	assert_int_equal(b.out_of_order, 0);
	assert_true(most <= TURN_FRAMES);
	assert_true(b.c->pauses > 0);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Frames held when the connection is closed go out with the close, as
 * a write just before it would have. */
static void test_close_sends_what_it_holds(void **state)
{
	struct side a, b;

	(void)state;
	connected_pair(&a, &b);
	send_turn(&a, 1);
	kq__link_close(a.c->peers[1].conn);
	run_until(all_there, &a, &b);
	assert_int_equal(b.out_of_order, 0);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int replied(struct side *a, struct side *b)
{
	(void)a;
	return b->reply_id == 42;
}

/* A reply queued behind more Raft traffic than requests may take (half
 * the queue: replication of the very requests answered) still goes out:
 * replies have a bound of their own. */
static void test_reply_behind_raft_traffic(void **state)
{
	static uint8_t payload[64 << 10];
	struct kq__raft_entry e[16];
	struct side a, b;
	struct conn *cn;
	uint8_t answer[32] = {0};

	(void)state;
	connected_pair(&a, &b);
	cn = a.c->peers[1].conn;
	for (size_t i = 0; i < 16; i++)
		e[i] = (struct kq__raft_entry){.index = i + 1,
					       .term = 1,
					       .len = sizeof(payload),
					       .data = payload};
	/* 1 MiB a message, until past half the queue, all in one turn. */
	for (uint64_t k = 0; cn->queued <= QUEUE_MAX / 2 + (1u << 20); k++) {
		struct kq__raft_msg m = {
			.type = KQ__RAFT_MSG_APPEND,
			.from = 1,
			.to = 2,
			.term = 1,
			.entries = e,
			.n_entries = 16,
		};

		assert_true(k < 64);
		kq__cluster_send(a.c, 7, &m);
	}
	assert_int_equal(a.c->dropped, 0);
	kq__cluster_reply(a.c, 2, a.c->peers[1].conn_seq, 42, answer,
			  sizeof(answer));
	assert_int_equal(a.c->dropped, 0);
	run_until(replied, &a, &b);
	run_until(drained, &a, &b);
	assert_int_equal(cn->replies, 0);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Runs the loop for `ms`. */
static void run_for_ms(uint64_t ms)
{
	for (uint64_t end = uv_now(&loop) + ms; uv_now(&loop) < end;)
		uv_run(&loop, UV_RUN_NOWAIT), usleep(1000),
			uv_update_time(&loop);
}

/* Opens a TCP connection to the loopback port and sends nothing. */
static int stranger(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Strangers that take every slot of the accepting side and never finish
 * a handshake do not keep a peer out: the oldest of them makes room (a
 * handshake takes a round trip, a stranger may sit until
 * auth_timeout_ms). */
static void test_strangers_make_room_for_a_peer(void **state)
{
	int p1 = free_port(), p2 = free_port(), fds[4];
	struct side a, b;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	cap_all = 4;
	cap_per_address = 4;
	auth_ms = 60000; /* the strangers stay, but for the room made */
	open_side(&b, 2, p1, p2);
	for (int i = 0; i < 4; i++)
		fds[i] = stranger(p2);
	run_for_ms(300);
	assert_int_equal(b.c->n_inbound, 4);
	open_side(&a, 1, p1, p2);
	run_until(connected, &a, &b);
	cap_all = cap_per_address = auth_ms = 0;
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Brokers 1 (a) and 2 (b) on a new loop, connected; the number of b's
 * connection from 1. */
static uint64_t pair_up(struct side *a, struct side *b, int p1, int p2)
{
	assert_int_equal(uv_loop_init(&loop), 0);
	open_side(a, 1, p1, p2);
	open_side(b, 2, p1, p2);
	run_until(connected, a, b);
	return kq__link_peer(b->c, 1)->conn_seq;
}

/* A second broker with the id of one connected (a copy started by
 * mistake, with the secret) is refused while the first one's connection
 * is live, with a line that says so, and does not take its place: the
 * two would replace each other without end, and both take part in Raft
 * under one id. */
static void test_duplicate_id_refused(void **state)
{
	int p1 = free_port(), p2 = free_port(), p3 = free_port();
	struct side a, b, dup;
	uint64_t seq;

	(void)state;
	seq = pair_up(&a, &b, p1, p2);
	open_side(&dup, 1, p3, p2);
	/* Ticks, as the module's timer gives them: keepalives go out. */
	for (int i = 0; i < 30; i++) {
		kq__cluster_tick(a.c);
		kq__cluster_tick(b.c);
		kq__cluster_tick(dup.c);
		run_for_ms(50);
	}
	assert_int_equal(kq__link_peer(b.c, 1)->conn_seq, seq);
	assert_true(connected(&a, &b));
	if (!strstr(kq__test_logbuf, "two brokers run with id 1"))
		fail_msg("no line about the duplicate:\n%s", kq__test_logbuf);
	close_side(&dup);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* The same when the copy's hello and its first frames come in one read:
 * the refused connection's frames are not read, so they reach neither
 * Raft nor a peer it never became. */
static void test_duplicate_id_frames_dropped(void **state)
{
	int p1 = free_port(), p2 = free_port(), fd;
	uint8_t buf[512], nonce[KQ__FRAME_NONCE] = {0};
	struct kq__frame_hb hb = {
		.group = 7, .type = KQ__RAFT_MSG_HEARTBEAT, .term = 1};
	struct side a, b;
	uint64_t seq, got;
	size_t len;

	(void)state;
	seq = pair_up(&a, &b, p1, p2);
	got = b.got;
	kq__frame_put_hello(buf, 1, 2, 0, nonce);
	len = kq__frame_hello_size();
	kq__frame_put_hb(buf + len, 1, 2, &hb, 1);
	len += kq__frame_hb_size(1);
	fd = stranger(p2);
	for (int i = 0; i < 10; i++) {
		kq__cluster_tick(a.c);
		kq__cluster_tick(b.c);
		if (i == 0)
			assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL),
					 (ssize_t)len);
		run_for_ms(50);
	}
	assert_int_equal(kq__link_peer(b.c, 1)->conn_seq, seq);
	assert_int_equal(b.got, got);
	assert_true(connected(&a, &b));
	close(fd);
	close_side(&a);
	close_side(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_write_a_turn),
		cmocka_unit_test(test_frames_a_turn_are_bounded),
		cmocka_unit_test(test_close_sends_what_it_holds),
		cmocka_unit_test(test_reply_behind_raft_traffic),
		cmocka_unit_test(test_strangers_make_room_for_a_peer),
		cmocka_unit_test(test_duplicate_id_refused),
		cmocka_unit_test(test_duplicate_id_frames_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
