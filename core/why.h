/* Errors in words for clients. */
#ifndef KQ_CORE_WHY_H
#define KQ_CORE_WHY_H

/* kq_strerror(err), and where descriptors ran out the limit that was
 * hit and what raises it.  The text is valid until the next call; loop
 * thread only. */
const char *kq__why(int err);

#endif /* KQ_CORE_WHY_H */
