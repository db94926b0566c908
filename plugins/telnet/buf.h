/* telnet transport: growable byte buffers for answers. */
#ifndef KQ_TELNET_BUF_H
#define KQ_TELNET_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A byte buffer owning `p` (malloc'd).  A failed allocation sets `failed`
 * and leaves the contents as they were; the owner checks it and gives up
 * the connection. */
struct kq__tn_buf {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

/* Appends n bytes.  Returns 0 or -ENOMEM. */
int kq__tn_buf_append(struct kq__tn_buf *b, const void *data, size_t n);

/* Appends formatted text.  Returns 0 or -ENOMEM. */
int kq__tn_buf_printf(struct kq__tn_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Appends `s` with every control byte replaced by a space, so text from
 * elsewhere cannot break a protocol line.  Returns 0 or -ENOMEM. */
int kq__tn_buf_append_text(struct kq__tn_buf *b, const char *s);

/* Appends `v` in decimal: the hot answers (OK of PUBS, MSG headers) are
 * built with this rather than printf. 0 or -ENOMEM. */
int kq__tn_buf_u64(struct kq__tn_buf *b, uint64_t v);

/* Releases the storage and zeroes the buffer. */
void kq__tn_buf_free(struct kq__tn_buf *b);

#endif /* KQ_TELNET_BUF_H */
