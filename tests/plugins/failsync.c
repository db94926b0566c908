/* Preloaded into a broker (LD_PRELOAD) by the storage tests: fdatasync()
 * fails with EIO while the file named by $KQ_FAILSYNC_FILE exists, and
 * is the real one otherwise.  So a test makes a sync fail after the
 * write succeeded, then lets the disk "heal". */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd);

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *flag = getenv("KQ_FAILSYNC_FILE");

	if (flag && access(flag, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	return real ? real(fd) : -1;
}
