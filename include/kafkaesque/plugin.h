/* kafkaesque plugin SDK: module descriptor and host services.
 *
 * A module is a libtool module (-module -avoid-version) exporting exactly
 * one symbol, kq_plugin_entry, which returns a descriptor.  At load the
 * core checks, and refuses the module with one line naming what differs:
 * the descriptor's ABI number (it must equal KQ_PLUGIN_ABI), its size,
 * its kind, the size its ops table says it has (it must equal this
 * broker's sizeof of the kind's table), and that no op of the table is
 * NULL (the core calls every one).  It then calls the kind's ops
 * table with a host table of services.  Plugins never call each other and
 * never link against the core: all they may use of the broker arrives
 * through struct kq_host.
 *
 * What bumps KQ_PLUGIN_ABI: any change to the descriptor, to an ops
 * table or the host table (an append included: the core calls every op
 * and a module may read every host field), to a struct either side
 * allocates for the other (kq_req, kq_consume, kq_propose_req, ...), or
 * to the meaning of an op or a field.  A new error code, a new log level
 * or a new comment does not.  The sizes are a second guard, for a module
 * built against a changed header whose number was not bumped.  History
 * (13: kq_store_api.group_stopped, by which a group that stops for a
 * cause of its own has itself and its log reopened, as after a write
 * error; close() of a failed log under KQ_SYNC_ALWAYS drops what no
 * sync made durable;
 * 12: kq_storage_ops.stage_hard_state, and kq_store_api's
 * save_hard_state replaced by it: consensus stages a hard state and
 * syncs, instead of waiting for a save on the loop; read() of a failed
 * log past its last good sync returns KQ_EUNAVAILABLE, not 0;
 * 11: kq_host.port, the -port a broker was started with, for the
 * first transport; the core no longer writes it into the module's config;
 * 10: kq_host.cluster is the checked kq_cluster_config, not JSON;
 * 9: kq_storage_ops.sync_many; save_snapshot refuses on a failed log;
 * 8: kq_broker_api.commit is a request, KQ_REQ_COMMIT, answered once
 * stored; kq_log_options.unsynced; sync() syncs under every policy;
 * 7: a size in the descriptor and every ops table, whose shared head
 * kq_module_ops comes first in each, transports' fini second; named
 * private fields for kq_req and kq_consume; one word for the durable
 * logs lent to consensus: struct kq_store, kq_store_api, host->store and
 * kq_group_config.store (were kq_plog, kq_log_api, host->logs, .log);
 * a standalone broker's kq_broker_info has no address; config.h's
 * typed readers replace kq_host_config_empty; snapshots are storage
 * ops, kq_storage_ops.save_snapshot and load_snapshot;
 * 6: kq_consume.wake and KQ_CONSUME_WAIT;
 * 5: kq_consensus_ops.call and reply, kq_host.serve,
 * kq_broker_info.leads;
 * 4: kq_host and kq_propose_req lost their unused private slots;
 * 3: kq_storage_ops.lost and kq_store_api.lost). */
#ifndef KAFKAESQUE_PLUGIN_H
#define KAFKAESQUE_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "error.h"

struct kq_incoming;

#define KQ_PLUGIN_ABI 13

/* The entry symbol's name, as lt_dlsym() looks it up. */
#define KQ_PLUGIN_ENTRY "kq_plugin_entry"

enum kq_plugin_kind {
	KQ_PLUGIN_TRANSPORT = 1,
	KQ_PLUGIN_PARTITIONER = 2,
	KQ_PLUGIN_STORAGE = 3,
	KQ_PLUGIN_CONSENSUS = 4,
};

struct kq_host;

/* The fields every ops table starts with, in this order, as libuv's
 * handles start with UV_HANDLE_FIELDS: the core inits and finis a module
 * of any kind through struct kq_module_ops. */
#define KQ_MODULE_OPS_FIELDS                                                   \
	/* sizeof the kind's whole ops table, as the module was built */       \
	uint32_t size;                                                         \
	/* Creates the module's state.  `host` stays valid until fini(). */    \
	int (*init)(const struct kq_host *host, void **state);                 \
	void (*fini)(void *state);

/* The head of any kind's ops table. */
struct kq_module_ops {
	KQ_MODULE_OPS_FIELDS
};

/* What kq_plugin_entry() returns.  Static storage owned by the module; it
 * must stay valid until the module is unloaded. */
struct kq_plugin_desc {
	uint32_t abi;  /* KQ_PLUGIN_ABI the module was built with */
	uint32_t size; /* sizeof(struct kq_plugin_desc) */
	enum kq_plugin_kind kind;
	const char *name;    /* "telnet", "keyhash", ... */
	const char *version; /* the module's own version string */
	const void *ops;     /* struct kq_<kind>_ops for the kind, which
			      * starts with KQ_MODULE_OPS_FIELDS */
};

/* Each module defines exactly this function (and exports nothing else). */
typedef const struct kq_plugin_desc *(*kq_plugin_entry_fn)(void);

enum kq_log_level {
	KQ_LOG_ERROR = 0,
	KQ_LOG_WARN = 1,
	KQ_LOG_INFO = 2,
	KQ_LOG_DEBUG = 3,
};

struct kq_broker_api;
struct kq_broker;
struct kq_store_api;
struct kq_cluster_config;

/* Services the core lends one module instance.  Owned by the core, valid
 * from the kind's init() until after its close/fini op returns. */
struct kq_host {
	uint32_t abi;	    /* KQ_PLUGIN_ABI of the core */
	const char *module; /* the module's name, for messages */
	uv_loop_t *loop;    /* the broker's single event loop */
	int broker_id;
	const char *data_dir; /* the broker's own folder,
			       * <data_dir>/kafkaesque-<id> */
	const json_t *config; /* the module's own config section
			       * (borrowed; NULL when absent) */

	/* Logs one line to the broker's log with the module's name.  Safe
	 * to call from any thread (storage sync() runs on worker threads). */
	void (*log)(const struct kq_host *host, enum kq_log_level level,
		    const char *fmt, ...)
#if defined(__GNUC__)
		__attribute__((format(printf, 3, 4)))
#endif
		;

	/* The broker's allocator.  Memory handed across the plugin boundary
	 * is always allocated and freed with these. */
	void *(*malloc)(size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);

	/* Transports only (NULL otherwise): the protocol-neutral broker. */
	const struct kq_broker_api *api;
	struct kq_broker *broker;
	/* Transports only: the client port the broker was started with
	 * (-port), lent to the first transport listed; 0 otherwise.  A
	 * transport that listens on a port must listen on this one when it
	 * is set, over its own config key (which is still checked). */
	int port;

	/* Consensus only (NULL otherwise): durable logs, backed by the
	 * storage module through the core. */
	const struct kq_store_api *store;

	/* Consensus only: the "cluster" config section, checked and with
	 * its defaults applied (consensus.h); NULL without one. */
	const struct kq_cluster_config *cluster;
	/* Consensus only: a request another broker's core sent with call().
	 * `req` is borrowed for the call; the core answers once, now or
	 * later, with the module's reply(in, ...). */
	void (*serve)(const struct kq_host *host, struct kq_incoming *in,
		      int from, const void *req, size_t len);
};

#endif /* KAFKAESQUE_PLUGIN_H */
