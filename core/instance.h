#ifndef KQ_CORE_INSTANCE_H
#define KQ_CORE_INSTANCE_H

#include "types.h"

/* instance.c: module instances. */
/* Fills in->host for a module of `kind` named in->mod.name: the services
 * the core lends it, its config section and, by kind, the broker API
 * (transports) or the store and serve hooks (consensus).  The table
 * borrows from b and b->cfg, which outlive it. */
void kq__instance_host(struct kq_broker *b, struct kq__instance *in,
		       enum kq_plugin_kind kind);
/* Loads every configured module and fills its host table. */
int kq__instance_load_all(struct kq_broker *b);
/* Inits storage, consensus and partitioners, and reads the sync policy. */
int kq__instance_init_all(struct kq_broker *b);
/* Inits and starts every transport. */
int kq__instance_start_transports(struct kq_broker *b);
/* Calls the module's fini, if its init succeeded, and unloads it. */
void kq__instance_fini(struct kq__instance *in);

#endif /* KQ_CORE_INSTANCE_H */
