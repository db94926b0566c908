/* Sessions: a transport's connections as the broker sees them.  A
 * session holds the subscriptions made on it; closing it ends them. */
#include <errno.h>
#include <stdlib.h>

#include <kafkaesque/list.h>

#include "members.h"
#include "session.h"
#include "subscribe.h"
#include "types.h"

int kq__session_open(struct kq_broker *b, struct kq_session **out)
{
	struct kq_session *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->b = b;
	KQ_LIST_PUSH(b->sessions, s);
	*out = s;
	return 0;
}

void kq__session_close(struct kq_session *s)
{
	struct kq_broker *b = s->b;

	kq__members_session_closed(b, s);
	kq__subscribe_session_closed(b, s);
	KQ_LIST_REMOVE(b->sessions, s);
	free(s);
}

void kq__session_close_all(struct kq_broker *b)
{
	while (b->sessions)
		kq__session_close(b->sessions);
}
