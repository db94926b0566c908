/* The broker API for transports (kq__broker_api): sessions, and the table
 * that hands each command to its file: create.c, publish.c, subscribe.c,
 * consume.c, query.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "api.h"
#include "commit.h"
#include "consume.h"
#include "create.h"
#include "members.h"
#include "publish.h"
#include "query.h"
#include "subscribe.h"
#include "types.h"

/* ------------------------------------------------------------ sessions */

static int session_open(struct kq_broker *b, struct kq_session **out)
{
	struct kq_session *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->b = b;
	KQ_LIST_PUSH(b->sessions, s);
	*out = s;
	return 0;
}

static void session_close(struct kq_session *s)
{
	struct kq_broker *b = s->b;

	kq__members_session_closed(b, s);
	kq__subscribe_session_closed(b, s);
	KQ_LIST_REMOVE(b->sessions, s);
	free(s);
}

void kq__sessions_close_all(struct kq_broker *b)
{
	while (b->sessions)
		session_close(b->sessions);
}

static void req_cleanup(struct kq_req *req)
{
	if (req->type == KQ_REQ_SUBSCRIBE) {
		free(req->result.subscribe.parts);
		req->result.subscribe.parts = NULL;
		req->result.subscribe.nparts = 0;
	}
}

const struct kq_broker_api kq__broker_api = {
	.session_open = session_open,
	.session_close = session_close,
	.create_topic = kq__create_topic,
	.publish = kq__publish,
	.subscribe = kq__subscribe,
	.unsubscribe = kq__unsubscribe,
	.req_cleanup = req_cleanup,
	.consume_open = kq__consume_open,
	.consume_next = kq__consume_next,
	.consume_close = kq__consume_close,
	.commit = kq__commit,
	.list_topics = kq__list_topics,
	.describe = kq__describe,
	.assignment = kq__assignment,
	.groups = kq__groups,
	.brokers = kq__brokers,
};
