/* Helpers for the core's request entry points. */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "req.h"
#include "types.h"

int kq__req_fail(struct kq_req *req, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->errmsg, sizeof(req->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

void kq__req_init(struct kq_req *req, struct kq_session *s,
		  enum kq_req_type type, kq_req_cb cb)
{
	req->type = type;
	req->errmsg[0] = '\0';
	req->cb = cb;
	req->session = s;
	memset(&req->result, 0, sizeof(req->result));
	memset(&req->priv, 0, sizeof(req->priv));
}

void kq__req_batch_free(struct kq__batch *bt)
{
	free(bt->reqs);
	free(bt->lens);
	free(bt->klens);
	free(bt->buf);
	free(bt);
}
