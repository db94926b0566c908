/* Errors in words for clients: a lack of descriptors names its limit,
 * since the fix is to raise it. */
#include "why.h"

#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include <kafkaesque/error.h>

const char *kq__why(int err)
{
	static char buf[160];
	struct rlimit rl;

	if (err == -EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		snprintf(buf, sizeof(buf),
			 "%s (this broker may have %llu open: raise ulimit -n)",
			 kq_strerror(err), (unsigned long long)rl.rlim_cur);
		return buf;
	}
	if (err == -ENFILE) {
		snprintf(buf, sizeof(buf),
			 "%s (the system's limit: raise fs.file-max)",
			 kq_strerror(err));
		return buf;
	}
	return kq_strerror(err);
}
