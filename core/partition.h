#ifndef KQ_CORE_PARTITION_H
#define KQ_CORE_PARTITION_H

#include "types.h"

/* partition.c: a partition's replica on this broker. */
/* The brokers of the cluster, which partitions are placed on (one: this
 * broker when standalone), in configuration order. */
size_t kq__partition_brokers(struct kq_broker *b, const int **ids);
/* Places partition p of t: `replicas` consecutive brokers, starting at an
 * offset of the topic's name hash plus the partition number, so that a
 * topic's leaders spread over the brokers.  Every broker computes the
 * same list (p->replicas, owned by p).  0 or -ENOMEM. */
int kq__partition_place(struct kq_broker *b, struct kq__topic *t,
			struct kq__partition *p);
/* Whether this broker holds a replica of p. */
int kq__partition_held_here(struct kq_broker *b, const struct kq__partition *p);
/* Opens this broker's replica of p (its log and consensus group) unless
 * it is open or held elsewhere.  Returns 0 or the error. */
int kq__partition_open(struct kq_broker *b, struct kq__partition *p);
/* 0 when this broker's replica of p serves, else KQ_EUNAVAILABLE with
 * the reason (being opened, cannot be opened, not held here) written to
 * errmsg. */
int kq__partition_usable(const struct kq__partition *p, char *errmsg,
			 size_t errlen);
/* Whether another broker holds a replica of p. */
int kq__partition_held_elsewhere(struct kq_broker *b,
				 const struct kq__partition *p);
/* Whether this broker's replica of p is open and leads it. */
int kq__partition_led_here(struct kq_broker *b, const struct kq__partition *p);

#endif /* KQ_CORE_PARTITION_H */
