/* Partition folders the metadata does not know, left over after the
 * metadata log was deleted by hand for instance, would come back as the
 * data of a new topic of the same name: a broker that knows its metadata
 * whole at start moves them to orphaned/ instead. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "map.h"
#include "names.h"
#include "orphans.h"
#include "partition.h"
#include "topic.h"
#include "types.h"

/* Whether `name` is a partition folder as open_partition() names them,
 * `<topic>-<n>` in decimal without leading zeros; *known says whether the
 * metadata has that partition. */
static int partition_folder(struct kq_broker *b, const char *name, int *known)
{
	const char *dash = strrchr(name, '-'), *d;
	char topic[KQ__NAME_MAX + 1];
	struct kq__topic *t;
	unsigned long n = 0;

	if (!dash || dash == name || (size_t)(dash - name) > KQ__NAME_MAX ||
	    !dash[1] || (dash[1] == '0' && dash[2]))
		return 0;
	for (d = dash + 1; *d; d++) {
		if (*d < '0' || *d > '9' || n > UINT32_MAX / 10)
			return 0;
		n = n * 10 + (unsigned long)(*d - '0');
	}
	memcpy(topic, name, (size_t)(dash - name));
	topic[dash - name] = '\0';
	if (n > UINT32_MAX || !kq__name_valid(topic))
		return 0;
	t = kq__topic_get(b, topic);
	/* A topic that failed to open (out of descriptors, say) is still
	 * the metadata's: its folders stay where they are. */
	*known = (t && n < t->nparts) ||
		 kq__map_get(&b->unopened, topic, strlen(topic));
	return 1;
}

void kq__orphans_move(struct kq_broker *b)
{
	char from[4096], to[4096], stamp[32], odir[4096];
	const int *ids;
	struct dirent *de;
	struct tm tm;
	time_t now;
	DIR *d;

	if (kq__partition_brokers(b, &ids) != 1)
		return;
	d = opendir(b->dir);
	if (!d) {
		kq__warn("data folder %s: %s", b->dir, strerror(errno));
		return;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(odir, sizeof(odir), "%s/orphaned", b->dir);
	while ((de = readdir(d))) {
		struct stat st;
		int known = 1, rv;

		if (!partition_folder(b, de->d_name, &known) || known)
			continue;
		snprintf(from, sizeof(from), "%s/%s", b->dir, de->d_name);
		if (stat(from, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		rv = mkdir(odir, 0755) == 0 || errno == EEXIST ? 0 : -errno;
		for (int i = 0; rv == 0 && i < 1000; i++) {
			int n = snprintf(to, sizeof(to), "%s/%s.%s", odir,
					 de->d_name, stamp);

			/* Two starts within a second: number the second. */
			if (i && n > 0 && (size_t)n < sizeof(to))
				n += snprintf(to + n, sizeof(to) - (size_t)n,
					      ".%d", i);
			if (n < 0 || (size_t)n >= sizeof(to))
				rv = -ENAMETOOLONG;
			else if (access(to, F_OK) != 0)
				break;
		}
		if (rv == 0 && rename(from, to) != 0)
			rv = -errno;
		if (rv != 0)
			kq__warn("partition folder %s is not in the metadata "
				 "and could not be moved aside: %s",
				 from, kq_strerror(rv));
		else
			kq__warn("partition folder %s is not in the metadata: "
				 "moved to %s",
				 from, to);
	}
	closedir(d);
}
