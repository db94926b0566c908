/* The broker API for transports (kq__broker_api): the table that hands
 * each call to its file: session.c, create.c, publish.c, subscribe.c,
 * consume.c, commit.c, query.c. */
#include <stdlib.h>

#include "api.h"
#include "commit.h"
#include "consume.h"
#include "create.h"
#include "publish.h"
#include "query.h"
#include "session.h"
#include "subscribe.h"
#include "types.h"

static void req_cleanup(struct kq_req *req)
{
	if (req->type == KQ_REQ_SUBSCRIBE) {
		free(req->result.subscribe.parts);
		req->result.subscribe.parts = NULL;
		req->result.subscribe.nparts = 0;
	}
}

const struct kq_broker_api kq__broker_api = {
	.session_open = kq__session_open,
	.session_close = kq__session_close,
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
