/* Loading modules through libltdl and checking their descriptors. */
#ifndef KQ_CORE_PLUGIN_H
#define KQ_CORE_PLUGIN_H

#include <stddef.h>

#include <ltdl.h>

#include <kafkaesque/plugin.h>

/* A loaded module. */
struct kq__module {
	char *name; /* as configured, owned */
	char *path; /* the file loaded, owned */
	lt_dlhandle handle;
	const struct kq_plugin_desc *desc; /* owned by the module */
};

/* The folders searched for modules, in order: `extra` (the config's
 * plugin_path), $KQ_PLUGIN_PATH (colon-separated), then the build tree's
 * plugins when the running binary is the build tree's, else the installed
 * plugin folder.  Returns a NULL-terminated array owned by the caller
 * (kq__plugin_dirs_free). */
char **kq__plugin_dirs(char *const *extra, size_t nextra);
void kq__plugin_dirs_free(char **dirs);

/* Loads module `name` (a bare name searched in `dirs`, or a path) and
 * checks it is of `kind` and built for this ABI.  On failure returns a
 * negative error and writes one line to err naming the module, the paths
 * tried and the reason. */
int kq__module_load(const char *name, enum kq_plugin_kind kind,
		    char *const *dirs, struct kq__module *out, char *err,
		    size_t errlen);

void kq__module_unload(struct kq__module *m);

/* Makes module `name` (borrowed; static storage) load from `entry`, a
 * module linked into the program, instead of a file: the unit tests run
 * the core over fake modules this way.  Its descriptor is checked as a
 * loaded one's.  Returns 0, or -ENOSPC past 8 modules. */
int kq__module_link(const char *name, kq_plugin_entry_fn entry);

/* "transport", "partitioner", ... */
const char *kq__kind_name(enum kq_plugin_kind kind);

#endif /* KQ_CORE_PLUGIN_H */
