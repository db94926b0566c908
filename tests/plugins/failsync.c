/* Preloaded into a broker (LD_PRELOAD) by the integration tests:
 * fdatasync() fails with EIO while the file named by $KQ_FAILSYNC_FILE
 * exists, waits while the file named by $KQ_HOLDSYNC_FILE exists (for up
 * to a minute), and is the real one otherwise.  So a test makes a sync
 * fail after the write succeeded, then lets the disk "heal", or holds a
 * write in flight while it does something else. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd);

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *flag = getenv("KQ_FAILSYNC_FILE");
	const char *hold = getenv("KQ_HOLDSYNC_FILE");

	for (int i = 0; hold && i < 60000 && access(hold, F_OK) == 0; i++)
		usleep(1000);
	if (flag && access(flag, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	return real ? real(fd) : -1;
}
