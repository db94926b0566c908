/* telnet transport: the module's entry.  It joins the connection layer
 * (server.c, conn.c) to the command layer (commands.c) by handing the server
 * the commands as hooks, so that neither file calls the other back. */
#include <kafkaesque/transport.h>

#include "telnet.h"

static int tn_init(const struct kq_host *host, void **state)
{
	int rv = kq__tn_server_init(host, state);
	struct kq__tn_server *srv;

	if (rv != 0)
		return rv;
	srv = *state;
	srv->cmd.exec = kq__tn_exec;
	srv->cmd.can_start = kq__tn_can_start;
	srv->cmd.cons_pump = kq__tn_cons_pump;
	srv->cmd.cons_abort = kq__tn_cons_abort;
	return 0;
}

static const struct kq_transport_ops tn_ops = {
	.size = sizeof(struct kq_transport_ops),
	.init = tn_init,
	.start = kq__tn_server_start,
	.stop = kq__tn_server_stop,
	.fini = kq__tn_server_fini,
};

static const struct kq_plugin_desc tn_desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_TRANSPORT,
	.name = "telnet",
	.version = "1.0",
	.ops = &tn_ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &tn_desc;
}
