/* Preloaded into a broker (LD_PRELOAD) by the integration tests:
 * fdatasync() and syncfs() fail with EIO while the file named by
 * $KQ_FAILSYNC_FILE exists, waits while the file named by $KQ_HOLDSYNC_FILE
 * exists (for up to a minute), and is the real one otherwise.  So a test makes
 * a sync fail after the write succeeded, then lets the disk "heal", or holds a
 * write in flight while it does something else. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd);
int syncfs(int fd);

/* `*real` caches the libc call named `name`, looked up once. */
static int fake(int fd, const char *name, int (**real)(int))
{
	const char *flag = getenv("KQ_FAILSYNC_FILE");
	const char *hold = getenv("KQ_HOLDSYNC_FILE");

	for (int i = 0; hold && i < 60000 && access(hold, F_OK) == 0; i++)
		usleep(1000);
	if (flag && access(flag, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!*real)
		*(void **)real = dlsym(RTLD_NEXT, name);
	return *real ? (*real)(fd) : -1;
}

int fdatasync(int fd)
{
	static int (*real)(int);

	return fake(fd, "fdatasync", &real);
}

int syncfs(int fd)
{
	static int (*real)(int);

	return fake(fd, "syncfs", &real);
}
