/* kafkaesque plugin SDK: error codes.
 *
 * Every call that can fail returns 0 or a negative code: either one of the
 * KQ_E* values below or a negated errno value (-EIO, -ENOSPC, ...).  The
 * functions here are header-only so that plugins, which never link against
 * the core, can name and describe errors too. */
#ifndef KAFKAESQUE_ERROR_H
#define KAFKAESQUE_ERROR_H

#include <string.h>

/* Protocol-level failures; each maps to one `ERR <CODE>` of the text
 * protocol.  They sit far below errno values so the two never collide. */
enum {
	KQ_ESYNTAX = -10001,	  /* cannot be parsed, wrong number of words */
	KQ_EUNKNOWN = -10002,	  /* no such command */
	KQ_EBADARG = -10003,	  /* value out of range or a bad name */
	KQ_ENOTOPIC = -10004,	  /* no such topic */
	KQ_EEXISTS = -10005,	  /* topic already exists */
	KQ_ENOSUB = -10006,	  /* no such subscription for that topic */
	KQ_EUNAVAILABLE = -10007, /* no leader, no quorum, or a log that
				   * stopped accepting writes */
	KQ_ETOOLONG = -10008,	  /* line longer than the configured maximum */
	KQ_EBUSY = -10009,	  /* a configured limit was reached */
	KQ_EINTERNAL = -10010,	  /* a bug or damaged data */
	KQ_ECORRUPT = -10011,	  /* a checksum or structure check failed */
	KQ_EABI = -10012,	  /* plugin built for another ABI */
	KQ_ENOENTRY = -10013,	  /* plugin without the entry symbol */
	KQ_EKIND = -10014,	  /* plugin of another kind than expected */
	KQ_ECONFIG = -10015,	  /* invalid configuration */
	KQ_ECANCELED = -10016,	  /* request canceled by shutdown */
	KQ_EAUTH = -10017,	  /* authentication required or failed */
};

/* The protocol code for an error ("NOTOPIC", ...).  Codes without a
 * protocol meaning (errno values, KQ_ECORRUPT, ...) map to "INTERNAL",
 * except -ENOSPC/-EIO style storage failures which the broker reports as
 * UNAVAILABLE itself. Returns a static string. */
static inline const char *kq_err_code(int err)
{
	switch (err) {
	case KQ_ESYNTAX: return "SYNTAX";
	case KQ_EUNKNOWN: return "UNKNOWN";
	case KQ_EBADARG: return "BADARG";
	case KQ_ENOTOPIC: return "NOTOPIC";
	case KQ_EEXISTS: return "EXISTS";
	case KQ_ENOSUB: return "NOSUB";
	case KQ_EUNAVAILABLE: return "UNAVAILABLE";
	case KQ_ETOOLONG: return "TOOLONG";
	case KQ_EBUSY: return "BUSY";
	case KQ_EAUTH: return "AUTH";
	default: return "INTERNAL";
	}
}

/* A human description of any error this SDK returns. Returns a static
 * string; never NULL. */
static inline const char *kq_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case KQ_ESYNTAX: return "syntax error";
	case KQ_EUNKNOWN: return "unknown command";
	case KQ_EBADARG: return "bad argument";
	case KQ_ENOTOPIC: return "no such topic";
	case KQ_EEXISTS: return "already exists";
	case KQ_ENOSUB: return "no such subscription";
	case KQ_EUNAVAILABLE: return "unavailable";
	case KQ_ETOOLONG: return "line too long";
	case KQ_EBUSY: return "limit reached";
	case KQ_EINTERNAL: return "internal error";
	case KQ_ECORRUPT: return "data corrupted";
	case KQ_EABI: return "plugin built for another ABI";
	case KQ_ENOENTRY: return "no kq_plugin_entry symbol";
	case KQ_EKIND: return "plugin of the wrong kind";
	case KQ_ECONFIG: return "invalid configuration";
	case KQ_ECANCELED: return "canceled";
	case KQ_EAUTH: return "authentication required";
	default:
		return err < 0 && err > -4096 ? strerror(-err)
					      : "unknown error";
	}
}

#endif /* KAFKAESQUE_ERROR_H */
