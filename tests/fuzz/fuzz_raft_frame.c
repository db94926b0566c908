/* libFuzzer target for the cluster port's frame decoder: any bytes a
 * peer may send, split into frames the way a connection splits them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, flen;
	const char *why;

	while (off < size) {
		struct kq__frame f;
		uint8_t *copy;

		if (kq__frame_peek(data + off, size - off, &flen, &why) != 1)
			break;
		/* An exact-size copy, so reads past the frame are caught. */
		copy = malloc(flen);
		if (!copy)
			break;
		memcpy(copy, data + off, flen);
		if (kq__frame_decode(copy, flen, &f, &why) == 0) {
			struct kq__frame_hb hb;

			for (uint32_t i = 0; i < f.n_hb; i++)
				kq__frame_hb_get(&f, i, &hb);
			/* Touch every payload's last byte. */
			for (size_t i = 0; i < f.msg.n_entries; i++) {
				const struct kq__raft_entry *e =
					&f.msg.entries[i];

				if (e->len)
					sink ^= ((const uint8_t *)
							 e->data)[e->len - 1];
			}
			kq__frame_release(&f);
		}
		free(copy);
		off += flen;
	}
	return 0;
}
