#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <time.h>

/* An int: a level below every one (-1) silences the log. */
static int max_level = KQ_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void kq__log_set_level(enum kq_log_level level)
{
	max_level = (int)level;
}

int kq__log_file_open(const char *path)
{
	/* The file replaces fd 2 itself, so that everything written to
	 * stderr (by modules and libraries too) follows a rotation. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	fflush(stderr);
	if (fd != STDERR_FILENO) {
		if (dup2(fd, STDERR_FILENO) < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
		close(fd);
	}
	return 0;
}

int kq__log_parse_level(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(*level_names); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void kq__logv(enum kq_log_level level, const char *who, const char *fmt,
	      va_list ap)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	int n;

	if ((int)level > max_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
		     level_names[level], who);
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One fputs per line so lines of concurrent threads never mix. */
	n = (int)strlen(line);
	if (n < (int)sizeof(line) - 1) {
		line[n++] = '\n';
		line[n] = '\0';
	}
	fputs(line, stderr);
}

void kq__log(enum kq_log_level level, const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kq__logv(level, who, fmt, ap);
	va_end(ap);
}
