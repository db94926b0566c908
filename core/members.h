#ifndef KQ_CORE_MEMBERS_H
#define KQ_CORE_MEMBERS_H

#include "types.h"

/* members.c: membership proposed (joins, leaves, this run's
 * registration, expiry of brokers out of reach) as metadata records. */
struct kq__joining;
/* Proposes this run's registration unless it is applied or in flight. */
void kq__members_register(struct kq_broker *b);
/* Proposes req's join of group `group` of `topic` with id `sub_id`; req
 * completes once it is applied here (result: the assignment).  Returns 0,
 * or an error with req->errmsg set (req does not complete). */
int kq__members_join(struct kq_broker *b, struct kq_req *req, const char *topic,
		     const char *group, uint64_t sub_id, uint32_t cap);
/* Proposes m's leave; req (may be NULL) completes once it is applied
 * here.  Returns 0, or an error with req->errmsg set. */
int kq__members_leave(struct kq_broker *b, struct kq__member *m,
		      struct kq_req *req);
/* A session closes: its members are left, its joins in flight will be. */
void kq__members_session_closed(struct kq_broker *b, struct kq_session *s);
/* Sets up the registrations of the configured brokers (before the
 * metadata is opened). */
int kq__members_init(struct kq_broker *b);
/* Starts the membership timer (registration retries, owed leaves, and
 * on the metadata leader the expiry of brokers gone for
 * cluster.session_timeout_ms). */
void kq__members_start(struct kq_broker *b);
/* A graceful stop begins: in a cluster, proposes one record that ends
 * this run's members (an expiry of its own run), so that the others take
 * their partitions now instead of after cluster.session_timeout_ms.
 * b->ending_run is set until it is applied, failed, or
 * topics.request_timeout_ms passed; the stop waits for that. */
void kq__members_stop(struct kq_broker *b);
/* Runs the membership timer now: a member owes a leave, or this run must
 * register again (b->members_wake_cb, for roster.c). */
void kq__members_wake(struct kq_broker *b);

#endif /* KQ_CORE_MEMBERS_H */
