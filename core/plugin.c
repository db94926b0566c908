#include "plugin.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kafkaesque/kafkaesque.h>

#ifndef KQ_PKGLIBDIR
#define KQ_PKGLIBDIR "/usr/local/lib/kafkaesque"
#endif
#ifndef KQ_BUILDDIR
#define KQ_BUILDDIR ""
#endif

/* True when the running binary sits at the top of the build tree, where
 * the uninstalled modules are the ones that match it. */
static int running_from_build_tree(void)
{
	char exe[PATH_MAX], build[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0 || KQ_BUILDDIR[0] == '\0')
		return 0;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	if (!realpath(KQ_BUILDDIR, build))
		return 0;
	return strcmp(exe, build) == 0;
}

static void push(char ***dirs, size_t *n, const char *dir)
{
	*dirs = realloc(*dirs, (*n + 2) * sizeof(char *));
	(*dirs)[(*n)++] = strdup(dir);
	(*dirs)[*n] = NULL;
}

char **kq__plugin_dirs(char *const *extra, size_t nextra)
{
	char **dirs = NULL;
	size_t n = 0, i;
	const char *env = getenv("KQ_PLUGIN_PATH");

	for (i = 0; i < nextra; i++)
		push(&dirs, &n, extra[i]);
	if (env && *env) {
		char *copy = strdup(env), *save = NULL, *tok;

		for (tok = strtok_r(copy, ":", &save); tok;
		     tok = strtok_r(NULL, ":", &save))
			push(&dirs, &n, tok);
		free(copy);
	}
	if (running_from_build_tree())
		push(&dirs, &n, KQ_BUILDDIR "/plugins");
	else
		push(&dirs, &n, KQ_PKGLIBDIR);
	return dirs;
}

void kq__plugin_dirs_free(char **dirs)
{
	for (char **d = dirs; d && *d; d++)
		free(*d);
	free(dirs);
}

static int ltdl_ready(void)
{
	static int done;

	if (!done) {
		if (lt_dlinit() != 0)
			return -1;
		done = 1;
	}
	return 0;
}

/* Opens `base` (no extension) trying libtool's .la then .so, and records
 * the path of the shared object that was found. */
static lt_dlhandle open_one(const char *base, char **path)
{
	lt_dlhandle h = lt_dlopenext(base);
	const lt_dlinfo *info;

	if (h) {
		info = lt_dlgetinfo(h);
		*path = strdup(info && info->filename ? info->filename : base);
	}
	return h;
}

static void append(char *buf, size_t len, const char *s)
{
	size_t used = strlen(buf), n = strlen(s);

	/* Truncates quietly: the list of paths tried is only a hint. */
	if (used + 1 >= len)
		return;
	if (n > len - used - 1)
		n = len - used - 1;
	memcpy(buf + used, s, n);
	buf[used + n] = '\0';
}

/* The ops past the head, each of which the core calls: a module must
 * have them all. */
struct op_slot {
	size_t off;
	const char *name;
};

#define OP(kind, f)                                                            \
	{                                                                      \
		offsetof(struct kq_##kind##_ops, f), #f                        \
	}
static const struct op_slot transport_ops[] = {OP(transport, start),
					       OP(transport, stop)};
static const struct op_slot partitioner_ops[] = {OP(partitioner, partition)};
static const struct op_slot storage_ops[] = {OP(storage, open),
					     OP(storage, close),
					     OP(storage, append),
					     OP(storage, sync),
					     OP(storage, sync_many),
					     OP(storage, read),
					     OP(storage, first_offset),
					     OP(storage, next_offset),
					     OP(storage, term_at),
					     OP(storage, truncate),
					     OP(storage, reset),
					     OP(storage, compact),
					     OP(storage, retention_point),
					     OP(storage, save_hard_state),
					     OP(storage, stage_hard_state),
					     OP(storage, load_hard_state),
					     OP(storage, save_snapshot),
					     OP(storage, load_snapshot),
					     OP(storage, sync_policy),
					     OP(storage, lost)};
static const struct op_slot consensus_ops[] = {
	OP(consensus, group_open), OP(consensus, group_close),
	OP(consensus, propose),	   OP(consensus, commit_end),
	OP(consensus, leader),	   OP(consensus, group_retain),
	OP(consensus, peer_up),	   OP(consensus, call),
	OP(consensus, reply)};
#undef OP

#define SLOTS(a) a, sizeof(a) / sizeof(*(a))
/* What the core knows of each kind of module: its name, the size of its
 * ops table in this broker, and the ops past the head. */
static const struct {
	const char *name;
	size_t ops_size;
	const struct op_slot *slots;
	size_t n;
} kinds[] = {
	[KQ_PLUGIN_TRANSPORT] = {"transport", sizeof(struct kq_transport_ops),
				 SLOTS(transport_ops)},
	[KQ_PLUGIN_PARTITIONER] = {"partitioner",
				   sizeof(struct kq_partitioner_ops),
				   SLOTS(partitioner_ops)},
	[KQ_PLUGIN_STORAGE] = {"storage", sizeof(struct kq_storage_ops),
			       SLOTS(storage_ops)},
	[KQ_PLUGIN_CONSENSUS] = {"consensus", sizeof(struct kq_consensus_ops),
				 SLOTS(consensus_ops)},
};
#undef SLOTS

static bool known(enum kq_plugin_kind kind)
{
	return (unsigned)kind < sizeof(kinds) / sizeof(*kinds) &&
	       kinds[kind].name != NULL;
}

const char *kq__kind_name(enum kq_plugin_kind kind)
{
	return known(kind) ? kinds[kind].name : "unknown";
}

/* sizeof the kind's ops table in this broker (0: no such kind). */
static size_t ops_size(enum kq_plugin_kind kind)
{
	return known(kind) ? kinds[kind].ops_size : 0;
}

/* The first op of the kind's table that `ops` lacks, or NULL. */
static const char *missing_op(enum kq_plugin_kind kind, const void *ops)
{
	for (size_t i = 0; i < kinds[kind].n; i++) {
		const struct op_slot *slot = &kinds[kind].slots[i];
		void (*fn)(void);

		memcpy(&fn, (const char *)ops + slot->off, sizeof(fn));
		if (!fn)
			return slot->name;
	}
	return NULL;
}

/* Modules linked into the program, found by name before any folder. */
#define MAX_LINKED 8
static struct {
	const char *name;
	kq_plugin_entry_fn entry;
} linked[MAX_LINKED];
static size_t nlinked;

int kq__module_link(const char *name, kq_plugin_entry_fn entry)
{
	for (size_t i = 0; i < nlinked; i++)
		if (strcmp(linked[i].name, name) == 0) {
			linked[i].entry = entry;
			return 0;
		}
	if (nlinked == MAX_LINKED)
		return -ENOSPC;
	linked[nlinked].name = name;
	linked[nlinked++].entry = entry;
	return 0;
}

/* Opens the shared object of module `name`: a path, or a bare name
 * searched in `dirs`.  Returns its handle and entry point, or an error
 * with one line in err. */
static int find_module(const char *name, const char *kname, char *const *dirs,
		       lt_dlhandle *hp, char **path, kq_plugin_entry_fn *entry,
		       char *err, size_t errlen)
{
	char tried[1024] = "", base[PATH_MAX];
	const char *why = "file not found";
	lt_dlhandle h = NULL;

	if (ltdl_ready() != 0) {
		snprintf(err, errlen, "%s module %s: libltdl: %s", kname, name,
			 lt_dlerror());
		return KQ_EINTERNAL;
	}
	if (strchr(name, '/')) {
		h = open_one(name, path);
		snprintf(tried, sizeof(tried), "%s", name);
		if (!h)
			why = lt_dlerror();
	} else {
		for (char *const *d = dirs; *d && !h; d++) {
			snprintf(base, sizeof(base), "%s/%s", *d, name);
			if (tried[0])
				append(tried, sizeof(tried), ", ");
			append(tried, sizeof(tried), base);
			h = open_one(base, path);
			/* A file that exists but fails to load explains more
			 * than "not found" does. */
			if (!h) {
				const char *e = lt_dlerror();

				if (e && !strstr(e, "file not found"))
					why = e;
			}
		}
	}
	if (!h) {
		snprintf(err, errlen,
			 "%s module %s: cannot load (tried %s): %s", kname,
			 name, tried, why);
		return -ENOENT;
	}
	*entry = (kq_plugin_entry_fn)(uintptr_t)lt_dlsym(h, KQ_PLUGIN_ENTRY);
	if (!*entry) {
		snprintf(err, errlen, "%s module %s: %s: no %s symbol", kname,
			 name, *path, KQ_PLUGIN_ENTRY);
		lt_dlclose(h);
		free(*path);
		*path = NULL;
		return KQ_ENOENTRY;
	}
	*hp = h;
	return 0;
}

/* Checks a module's descriptor against this broker: ABI, sizes, kind and
 * the shared head of its ops table.  0, or an error with one line in err. */
static int check_desc(const struct kq_plugin_desc *desc,
		      enum kq_plugin_kind kind, const char *name,
		      const char *path, char *err, size_t errlen)
{
	const char *kname = kq__kind_name(kind);
	const struct kq_module_ops *ops;
	const char *missing;

	if (!desc || desc->abi != KQ_PLUGIN_ABI) {
		snprintf(err, errlen,
			 "%s module %s: %s: built for plugin ABI %u, this "
			 "broker speaks ABI %u",
			 kname, name, path, desc ? desc->abi : 0u,
			 (unsigned)KQ_PLUGIN_ABI);
		return KQ_EABI;
	}
	if (desc->size != sizeof(*desc)) {
		snprintf(err, errlen,
			 "%s module %s: %s: its descriptor is %u bytes, this "
			 "broker's is %zu: rebuild it against this broker's "
			 "SDK",
			 kname, name, path, (unsigned)desc->size,
			 sizeof(*desc));
		return KQ_EABI;
	}
	if (desc->kind != kind || !desc->ops) {
		snprintf(err, errlen, "%s module %s: %s: is a %s module", kname,
			 name, path, kq__kind_name(desc->kind));
		return KQ_EKIND;
	}
	ops = desc->ops;
	if (ops->size != ops_size(kind)) {
		snprintf(err, errlen,
			 "%s module %s: %s: its ops table is %u bytes, this "
			 "broker's is %zu: rebuild it against this broker's "
			 "SDK",
			 kname, name, path, (unsigned)ops->size,
			 ops_size(kind));
		return KQ_EABI;
	}
	missing = !ops->init   ? "init"
		  : !ops->fini ? "fini"
			       : missing_op(kind, desc->ops);
	if (missing) {
		snprintf(err, errlen,
			 "%s module %s: %s: its ops table has no %s", kname,
			 name, path, missing);
		return KQ_EABI;
	}
	return 0;
}

int kq__module_load(const char *name, enum kq_plugin_kind kind,
		    char *const *dirs, struct kq__module *out, char *err,
		    size_t errlen)
{
	kq_plugin_entry_fn entry = NULL;
	const struct kq_plugin_desc *desc;
	lt_dlhandle h = NULL;
	char *path = NULL;
	int rv = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < nlinked && !entry; i++)
		if (strcmp(linked[i].name, name) == 0) {
			entry = linked[i].entry;
			path = strdup("(linked in)");
		}
	if (!entry)
		rv = find_module(name, kq__kind_name(kind), dirs, &h, &path,
				 &entry, err, errlen);
	if (rv != 0)
		return rv;
	desc = entry();
	rv = check_desc(desc, kind, name, path ? path : name, err, errlen);
	if (rv == 0 && !(out->name = strdup(name)))
		rv = -ENOMEM;
	if (rv != 0) {
		if (h)
			lt_dlclose(h);
		free(path);
		return rv;
	}
	out->path = path;
	out->handle = h;
	out->desc = desc;
	return 0;
}

void kq__module_unload(struct kq__module *m)
{
	if (m->handle)
		lt_dlclose(m->handle);
	free(m->name);
	free(m->path);
	memset(m, 0, sizeof(*m));
}
