/* The in-memory file system of the fuzz targets (see memfs.h). */
#include "memfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../plugins/segment/io.h"

#define MAX_NODES 256
#define MAX_FDS	  128
#define FD_BASE	  10000 /* far from real descriptors, so mix-ups fail */
#define PATH_MAX_ 160

struct node {
	int used;
	char path[PATH_MAX_];
	int dir;
	uint8_t *data;
	size_t size, cap;
};

/* An open folder listing; handed out as an opaque DIR pointer. */
struct listing {
	int dirnode;
	int next; /* node to look at next */
	struct dirent de;
};

static struct node nodes[MAX_NODES];
static int top;		 /* nodes at or above are free */
static int fds[MAX_FDS]; /* node + 1; 0: free */
static struct listing *listings[8];
static size_t used, limit = (size_t)64 << 20;
static long fail_in = -1;
static int fail_err = EIO;

/* A plain loop: libFuzzer hooks strcmp and memcmp even in code built
 * without coverage, and the file system's lookups are not the code under
 * test. */
static int same(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static int find(const char *path)
{
	for (int i = 0; i < top; i++)
		if (nodes[i].used && same(nodes[i].path, path))
			return i;
	return -1;
}

static int add(const char *path, int dir)
{
	size_t n = strlen(path);

	if (n >= PATH_MAX_)
		return -1;
	for (int i = 0; i < MAX_NODES; i++) {
		if (nodes[i].used)
			continue;
		nodes[i].used = 1;
		memcpy(nodes[i].path, path, n + 1);
		nodes[i].dir = dir;
		nodes[i].data = NULL;
		nodes[i].size = nodes[i].cap = 0;
		if (i >= top)
			top = i + 1;
		return i;
	}
	return -1;
}

static void drop(int i)
{
	used -= nodes[i].size;
	free(nodes[i].data);
	nodes[i].used = 0;
	nodes[i].data = NULL;
	nodes[i].size = nodes[i].cap = 0;
}

/* The folder part of `path` ("" for a bare name). */
static void parent_of(const char *path, char *out)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (slash == path)
		n = 1;
	memcpy(out, path, n);
	out[n] = '\0';
}

/* A changing call: fails once the countdown reaches zero. */
static int fault(void)
{
	if (fail_in < 0)
		return 0;
	if (fail_in > 0) {
		fail_in--;
		return 0;
	}
	errno = fail_err;
	return -1;
}

static int node_of_fd(int fd)
{
	int k = fd - FD_BASE;

	if (k < 0 || k >= MAX_FDS || !fds[k]) {
		errno = EBADF;
		return -1;
	}
	return fds[k] - 1;
}

static int resolve(int dirfd, const char *path, char *out)
{
	int d;

	if (path[0] == '/' || dirfd == AT_FDCWD) {
		if (strlen(path) >= PATH_MAX_)
			goto toolong;
		strcpy(out, path);
		return 0;
	}
	d = node_of_fd(dirfd);
	if (d < 0)
		return -1;
	if (!nodes[d].dir) {
		errno = ENOTDIR;
		return -1;
	}
	{
		size_t a = strlen(nodes[d].path), b = strlen(path);

		if (a + b + 2 > PATH_MAX_)
			goto toolong;
		memcpy(out, nodes[d].path, a);
		out[a] = '/';
		memcpy(out + a + 1, path, b + 1);
	}
	return 0;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

/* The node a path names, or -1 with errno set. */
static int find_at(int dirfd, const char *path)
{
	char full[PATH_MAX_];
	int i;

	if (resolve(dirfd, path, full) != 0)
		return -1;
	i = find(full);
	if (i < 0)
		errno = ENOENT;
	return i;
}

static int new_fd(int node)
{
	for (int k = 0; k < MAX_FDS; k++) {
		if (!fds[k]) {
			fds[k] = node + 1;
			return FD_BASE + k;
		}
	}
	errno = EMFILE;
	return -1;
}

static int m_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	char full[PATH_MAX_], parent[PATH_MAX_];
	int i;

	(void)mode;
	if (resolve(dirfd, path, full) != 0)
		return -1;
	i = find(full);
	if (flags & O_DIRECTORY) {
		if (i < 0 || !nodes[i].dir) {
			errno = i < 0 ? ENOENT : ENOTDIR;
			return -1;
		}
		return new_fd(i);
	}
	if (i >= 0 && nodes[i].dir) {
		errno = EISDIR;
		return -1;
	}
	if (i < 0) {
		if (!(flags & O_CREAT)) {
			errno = ENOENT;
			return -1;
		}
		parent_of(full, parent);
		if (parent[0] && find(parent) < 0) {
			errno = ENOENT;
			return -1;
		}
		if (fault() != 0)
			return -1;
		i = add(full, 0);
		if (i < 0) {
			errno = ENOSPC;
			return -1;
		}
	} else if (flags & O_TRUNC) {
		used -= nodes[i].size;
		nodes[i].size = 0;
	}
	return new_fd(i);
}

static int m_close(int fd)
{
	if (node_of_fd(fd) < 0)
		return -1;
	fds[fd - FD_BASE] = 0;
	return 0;
}

static ssize_t m_pread(int fd, void *buf, size_t n, off_t off)
{
	int i = node_of_fd(fd);
	struct node *f;

	if (i < 0)
		return -1;
	f = &nodes[i];
	if (f->dir) {
		errno = EISDIR;
		return -1;
	}
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)off >= f->size)
		return 0;
	if (n > f->size - (size_t)off)
		n = f->size - (size_t)off;
	memcpy(buf, f->data + off, n);
	return (ssize_t)n;
}

/* Sets a file's size, zero-filling what grows. */
static int resize(struct node *f, size_t size)
{
	if (size > f->size && used + (size - f->size) > limit) {
		errno = ENOSPC;
		return -1;
	}
	if (size > f->cap) {
		size_t cap = f->cap ? f->cap : 256;
		uint8_t *p;

		while (cap < size)
			cap *= 2;
		p = realloc(f->data, cap);
		if (!p) {
			errno = ENOSPC;
			return -1;
		}
		f->data = p;
		f->cap = cap;
	}
	if (size > f->size)
		memset(f->data + f->size, 0, size - f->size);
	used = used - f->size + size;
	f->size = size;
	return 0;
}

static ssize_t m_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	int i = node_of_fd(fd);
	struct node *f;

	if (i < 0)
		return -1;
	f = &nodes[i];
	if (off < 0 || f->dir) {
		errno = off < 0 ? EINVAL : EISDIR;
		return -1;
	}
	if (fault() != 0)
		return -1;
	if ((size_t)off + n > f->size && resize(f, (size_t)off + n) != 0)
		return -1;
	memcpy(f->data + off, buf, n);
	return (ssize_t)n;
}

static int m_ftruncate(int fd, off_t len)
{
	int i = node_of_fd(fd);

	if (i < 0)
		return -1;
	if (len < 0 || nodes[i].dir) {
		errno = EINVAL;
		return -1;
	}
	if (fault() != 0)
		return -1;
	return resize(&nodes[i], (size_t)len);
}

static int m_sync(int fd)
{
	if (node_of_fd(fd) < 0)
		return -1;
	return fault();
}

static int m_renameat(int olddir, const char *oldp, int newdir,
		      const char *newp)
{
	char from[PATH_MAX_], to[PATH_MAX_];
	int i, j;

	if (resolve(olddir, oldp, from) != 0 || resolve(newdir, newp, to) != 0)
		return -1;
	i = find(from);
	if (i < 0) {
		errno = ENOENT;
		return -1;
	}
	if (fault() != 0)
		return -1;
	j = find(to);
	if (j >= 0 && j != i) {
		/* An open descriptor of the replaced file keeps reading
		 * nothing; the segment module never does that. */
		for (int k = 0; k < MAX_FDS; k++)
			if (fds[k] == j + 1)
				fds[k] = 0;
		drop(j);
	}
	strcpy(nodes[i].path, to);
	return 0;
}

static int m_unlinkat(int dirfd, const char *path, int flags)
{
	int i = find_at(dirfd, path);

	(void)flags;
	if (i < 0)
		return -1;
	/* Open descriptors of an unlinked file stay valid. */
	for (int k = 0; k < MAX_FDS; k++) {
		if (fds[k] == i + 1) {
			nodes[i].path[0] = '\0'; /* no name finds it */
			return 0;
		}
	}
	drop(i);
	return 0;
}

static int m_mkdir(const char *path, mode_t mode)
{
	char parent[PATH_MAX_];

	(void)mode;
	if (strlen(path) >= PATH_MAX_) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (find(path) >= 0) {
		errno = EEXIST;
		return -1;
	}
	parent_of(path, parent);
	if (parent[0] && find(parent) < 0) {
		errno = ENOENT;
		return -1;
	}
	if (add(path, 1) < 0) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

static void fill_stat(const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = n->dir ? S_IFDIR | 0755 : S_IFREG | 0644;
	st->st_size = (off_t)n->size;
	st->st_nlink = 1;
}

static int m_fstat(int fd, struct stat *st)
{
	int i = node_of_fd(fd);

	if (i < 0)
		return -1;
	fill_stat(&nodes[i], st);
	return 0;
}

/* An ext4 to the module, so that its syncfs() paths run here too. */
static int m_fstatfs(int fd, struct statfs *st)
{
	if (node_of_fd(fd) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	st->f_type = 0xEF53;
	return 0;
}

static int m_uname(struct utsname *u)
{
	memset(u, 0, sizeof(*u));
	strcpy(u->release, "6.1.0");
	return 0;
}

static int m_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	int i = find_at(dirfd, path);

	(void)flags;
	if (i < 0)
		return -1;
	fill_stat(&nodes[i], st);
	return 0;
}

static DIR *m_opendir(const char *path)
{
	int i = find(path);

	if (i < 0 || !nodes[i].dir) {
		errno = i < 0 ? ENOENT : ENOTDIR;
		return NULL;
	}
	for (size_t k = 0; k < sizeof(listings) / sizeof(*listings); k++) {
		if (listings[k])
			continue;
		listings[k] = calloc(1, sizeof(*listings[k]));
		if (!listings[k]) {
			errno = ENOMEM;
			return NULL;
		}
		listings[k]->dirnode = i;
		return (DIR *)listings[k];
	}
	errno = EMFILE;
	return NULL;
}

static struct dirent *m_readdir(DIR *d)
{
	struct listing *l = (struct listing *)d;
	const char *dir = nodes[l->dirnode].path;
	size_t dlen = strlen(dir);

	while (l->next < top) {
		struct node *n = &nodes[l->next++];
		const char *name;

		size_t k = 0;

		if (!n->used)
			continue;
		while (k < dlen && n->path[k] == dir[k])
			k++;
		if (k < dlen || n->path[dlen] != '/')
			continue;
		name = n->path + dlen + 1;
		if (strchr(name, '/') || strlen(name) >= sizeof(l->de.d_name))
			continue;
		strcpy(l->de.d_name, name);
		l->de.d_type = n->dir ? DT_DIR : DT_REG;
		return &l->de;
	}
	return NULL;
}

static int m_closedir(DIR *d)
{
	for (size_t k = 0; k < sizeof(listings) / sizeof(*listings); k++) {
		if (listings[k] == (struct listing *)d) {
			free(listings[k]);
			listings[k] = NULL;
			return 0;
		}
	}
	errno = EBADF;
	return -1;
}

void kq__memfs_install(void)
{
	kq__seg_io.openat = m_openat;
	kq__seg_io.close = m_close;
	kq__seg_io.pread = m_pread;
	kq__seg_io.pwrite = m_pwrite;
	kq__seg_io.ftruncate = m_ftruncate;
	kq__seg_io.fdatasync = m_sync;
	kq__seg_io.fsync = m_sync;
	kq__seg_io.syncfs = m_sync;
	kq__seg_io.renameat = m_renameat;
	kq__seg_io.unlinkat = m_unlinkat;
	kq__seg_io.mkdir = m_mkdir;
	kq__seg_io.fstat = m_fstat;
	kq__seg_io.fstatfs = m_fstatfs;
	kq__seg_io.uname = m_uname;
	kq__seg_io.fstatat = m_fstatat;
	kq__seg_io.opendir = m_opendir;
	kq__seg_io.readdir = m_readdir;
	kq__seg_io.closedir = m_closedir;
}

int kq__memfs_reset(void)
{
	int open = 0;

	for (int k = 0; k < MAX_FDS; k++) {
		open += fds[k] != 0;
		fds[k] = 0;
	}
	for (size_t k = 0; k < sizeof(listings) / sizeof(*listings); k++) {
		open += listings[k] != NULL;
		free(listings[k]);
		listings[k] = NULL;
	}
	for (int i = 0; i < top; i++)
		if (nodes[i].used)
			drop(i);
	top = 0;
	used = 0;
	fail_in = -1;
	return open;
}

void kq__memfs_mkdir(const char *path)
{
	char buf[PATH_MAX_];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (find(buf) < 0)
			add(buf, 1);
		*p = '/';
	}
	if (find(buf) < 0)
		add(buf, 1);
}

void kq__memfs_put(const char *path, const void *data, size_t len)
{
	int i = find(path);

	if (i < 0)
		i = add(path, 0);
	if (i < 0 || nodes[i].dir)
		return;
	if (resize(&nodes[i], len) == 0 && len)
		memcpy(nodes[i].data, data, len);
}

void kq__memfs_fail_after(long n, int err)
{
	fail_in = n;
	fail_err = err;
}

size_t kq__memfs_used(void)
{
	return used;
}

void kq__memfs_set_limit(size_t l)
{
	limit = l;
}
