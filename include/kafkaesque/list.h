/* Intrusive doubly-linked lists: the elements carry `prev` and `next`
 * pointers to their own type (or, with the _BY forms, a pair named by
 * the caller, one per list an element sits on), and the list is a head
 * pointer (NULL when empty).  The list owns nothing; the macros evaluate their
 * arguments more than once, so pass plain lvalues. */
#ifndef KAFKAESQUE_LIST_H
#define KAFKAESQUE_LIST_H

/* Puts `n` first in the list at `head`, threaded through the members
 * `prev` and `next` (an element may sit on several lists, each through
 * a pair of its own). */
#define KQ_LIST_PUSH_BY(head, n, prev, next)                                   \
	do {                                                                   \
		(n)->prev = NULL;                                              \
		(n)->next = (head);                                            \
		if ((head) != NULL)                                            \
			(head)->prev = (n);                                    \
		(head) = (n);                                                  \
	} while (0)

/* Takes `n` out of the list at `head` threaded through `prev` and
 * `next` (its own pointers are left as they were). */
#define KQ_LIST_REMOVE_BY(head, n, prev, next)                                 \
	do {                                                                   \
		if ((n)->prev != NULL)                                         \
			(n)->prev->next = (n)->next;                           \
		else                                                           \
			(head) = (n)->next;                                    \
		if ((n)->next != NULL)                                         \
			(n)->next->prev = (n)->prev;                           \
	} while (0)

/* The same through the members named `prev` and `next`. */
#define KQ_LIST_PUSH(head, n)	KQ_LIST_PUSH_BY(head, n, prev, next)
#define KQ_LIST_REMOVE(head, n) KQ_LIST_REMOVE_BY(head, n, prev, next)

/* For a list that also keeps a `tail` pointer (a FIFO): puts `n` last. */
#define KQ_LIST_APPEND_BY(head, tail, n, prev, next)                           \
	do {                                                                   \
		(n)->next = NULL;                                              \
		(n)->prev = (tail);                                            \
		if ((tail) != NULL)                                            \
			(tail)->next = (n);                                    \
		else                                                           \
			(head) = (n);                                          \
		(tail) = (n);                                                  \
	} while (0)

/* Takes `n` out of a list with a `tail` pointer. */
#define KQ_LIST_REMOVE_TAIL_BY(head, tail, n, prev, next)                      \
	do {                                                                   \
		if ((n)->next == NULL)                                         \
			(tail) = (n)->prev;                                    \
		KQ_LIST_REMOVE_BY(head, n, prev, next);                        \
	} while (0)

#define KQ_LIST_APPEND(head, tail, n)                                          \
	KQ_LIST_APPEND_BY(head, tail, n, prev, next)
#define KQ_LIST_REMOVE_TAIL(head, tail, n)                                     \
	KQ_LIST_REMOVE_TAIL_BY(head, tail, n, prev, next)

#endif /* KAFKAESQUE_LIST_H */
