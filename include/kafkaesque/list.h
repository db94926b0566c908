/* Intrusive doubly-linked lists: the elements carry `prev` and `next`
 * pointers to their own type, and the list is a head pointer (NULL when
 * empty).  The list owns nothing; the macros evaluate their arguments
 * more than once, so pass plain lvalues. */
#ifndef KAFKAESQUE_LIST_H
#define KAFKAESQUE_LIST_H

/* Puts `n` first in the list at `head`. */
#define KQ_LIST_PUSH(head, n)                                                 \
	do {                                                                  \
		(n)->prev = NULL;                                             \
		(n)->next = (head);                                           \
		if ((head) != NULL)                                           \
			(head)->prev = (n);                                   \
		(head) = (n);                                                 \
	} while (0)

/* Takes `n` out of the list at `head` (its own pointers are left as
 * they were). */
#define KQ_LIST_REMOVE(head, n)                                               \
	do {                                                                  \
		if ((n)->prev != NULL)                                        \
			(n)->prev->next = (n)->next;                          \
		else                                                          \
			(head) = (n)->next;                                   \
		if ((n)->next != NULL)                                        \
			(n)->next->prev = (n)->prev;                          \
	} while (0)

#endif /* KAFKAESQUE_LIST_H */
