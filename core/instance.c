/* Module instances: loading each configured module, the host table the
 * core lends it, and its init and fini. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "instance.h"
#include "log.h"
#include "serve.h"
#include "store.h"
#include "types.h"

static void host_log(const struct kq_host *h, enum kq_log_level level,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void host_log(const struct kq_host *h, enum kq_log_level level,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kq__logv(level, h->module, fmt, ap);
	va_end(ap);
}

void kq__instance_host(struct kq_broker *b, struct kq__instance *in,
		       enum kq_plugin_kind kind)
{
	memset(&in->host, 0, sizeof(in->host));
	in->host.abi = KQ_PLUGIN_ABI;
	in->host.module = in->mod.name;
	in->host.loop = b->loop;
	in->host.broker_id = b->cfg->broker_id;
	in->host.data_dir = b->dir;
	in->host.config = kq__config_section(b->cfg, in->mod.name);
	in->host.log = host_log;
	in->host.malloc = malloc;
	in->host.realloc = realloc;
	in->host.free = free;
	if (kind == KQ_PLUGIN_TRANSPORT) {
		in->host.api = &kq__broker_api;
		in->host.broker = b;
		if (in == &b->transports[0]) /* the first listed */
			in->host.port = b->cfg->port;
	}
	if (kind == KQ_PLUGIN_CONSENSUS) {
		in->host.store = &kq__store_api;
		in->host.serve = kq__serve;
		in->host.cluster =
			b->cfg->cluster.raft_port ? &b->cfg->cluster : NULL;
	}
}

static int load_instance(struct kq_broker *b, struct kq__instance *in,
			 const char *name, enum kq_plugin_kind kind,
			 char **dirs)
{
	char err[1536];
	int rv = kq__module_load(name, kind, dirs, &in->mod, err, sizeof(err));

	if (rv != 0) {
		kq__error("%s", err);
		return rv;
	}
	kq__instance_host(b, in, kind);
	kq__debug("loaded %s module %s %s from %s", kq__kind_name(kind), name,
		  in->mod.desc->version, in->mod.path);
	return 0;
}

static const struct kq_module_ops *ops_of(const struct kq__instance *in)
{
	return in->mod.desc->ops;
}

static int init_instance(struct kq__instance *in)
{
	int rv = ops_of(in)->init(&in->host, &in->state);

	if (rv != 0)
		kq__error("%s module %s: init failed: %s",
			  kq__kind_name(in->mod.desc->kind), in->mod.name,
			  kq_strerror(rv));
	else
		in->started = 1;
	return rv;
}

void kq__instance_fini(struct kq__instance *in)
{
	if (!in->mod.desc)
		return;
	if (in->started)
		ops_of(in)->fini(in->state);
	in->started = 0;
	kq__module_unload(&in->mod);
}

int kq__instance_load_all(struct kq_broker *b)
{
	const struct kq__config *cfg = b->cfg;
	char **dirs = kq__plugin_dirs(cfg->plugin_path, cfg->nplugin_path);
	size_t i;
	int rv;

	b->transports = calloc(cfg->ntransports, sizeof(*b->transports));
	b->partitioners = calloc(cfg->npartitioners, sizeof(*b->partitioners));
	if (!b->transports || !b->partitioners) {
		kq__plugin_dirs_free(dirs);
		return -ENOMEM;
	}
	rv = load_instance(b, &b->storage, cfg->storage, KQ_PLUGIN_STORAGE,
			   dirs);
	if (rv == 0)
		rv = load_instance(b, &b->consensus, cfg->consensus,
				   KQ_PLUGIN_CONSENSUS, dirs);
	for (i = 0; rv == 0 && i < cfg->npartitioners; i++) {
		rv = load_instance(b, &b->partitioners[i], cfg->partitioners[i],
				   KQ_PLUGIN_PARTITIONER, dirs);
		b->npartitioners += rv == 0;
	}
	for (i = 0; rv == 0 && i < cfg->ntransports; i++) {
		rv = load_instance(b, &b->transports[i], cfg->transports[i],
				   KQ_PLUGIN_TRANSPORT, dirs);
		b->ntransports += rv == 0;
	}
	kq__plugin_dirs_free(dirs);
	return rv;
}

int kq__instance_init_all(struct kq_broker *b)
{
	size_t i;
	int rv;

	rv = init_instance(&b->storage);
	if (rv == 0)
		rv = init_instance(&b->consensus);
	for (i = 0; rv == 0 && i < b->npartitioners; i++)
		rv = init_instance(&b->partitioners[i]);
	if (rv != 0)
		return rv;
	b->sops = b->storage.mod.desc->ops;
	b->cops = b->consensus.mod.desc->ops;
	kq__store_policy(b);
	return 0;
}

int kq__instance_start_transports(struct kq_broker *b)
{
	for (size_t i = 0; i < b->ntransports; i++) {
		struct kq__instance *in = &b->transports[i];
		const struct kq_transport_ops *ops = in->mod.desc->ops;
		int rv = init_instance(in);

		if (rv != 0)
			return rv;
		rv = ops->start(in->state);
		if (rv != 0) {
			kq__error("transport %s: cannot start: %s",
				  in->mod.name, kq_strerror(rv));
			return rv;
		}
	}
	return 0;
}
