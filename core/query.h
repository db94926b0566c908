#ifndef KQ_CORE_QUERY_H
#define KQ_CORE_QUERY_H

#include "types.h"

/* query.c: read-only queries (LIST, DESC, ASGN, GRPS, STAT). */
int kq__list_topics(struct kq_broker *b,
		    void (*cb)(void *ctx, const char *name, uint32_t n),
		    void *ctx);
int kq__describe(struct kq_broker *b, const char *topic,
		 void (*cb)(void *ctx, const struct kq_partition_info *p),
		 void *ctx, char *errmsg, size_t errlen);
int kq__assignment(struct kq_broker *b, const char *topic, uint64_t sub_id,
		   void (*cb)(void *ctx, uint32_t partition), void *ctx,
		   char *errmsg, size_t errlen);
int kq__groups(struct kq_broker *b, const char *topic,
	       void (*cb)(void *ctx, const char *group, uint64_t sub_id,
			  const uint32_t *parts, uint32_t nparts),
	       void *ctx, char *errmsg, size_t errlen);
int kq__brokers(struct kq_broker *b,
		void (*cb)(void *ctx, const struct kq_broker_info *bi),
		void *ctx);

#endif /* KQ_CORE_QUERY_H */
