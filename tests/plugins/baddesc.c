/* A module whose descriptor is shorter than this broker's, as one built
 * against a header that changed without an ABI bump would be: loading it
 * must fail with a message naming both sizes. */
#include <kafkaesque/partitioner.h>

static int bd_init(const struct kq_host *host, void **state)
{
	(void)host;
	*state = NULL;
	return 0;
}

static void bd_fini(void *state)
{
	(void)state;
}

static const struct kq_partitioner_ops ops = {
	.size = sizeof(struct kq_partitioner_ops),
	.init = bd_init,
	.fini = bd_fini,
};

static const struct kq_plugin_desc desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc) - sizeof(void *),
	.kind = KQ_PLUGIN_PARTITIONER,
	.name = "baddesc",
	.version = "0",
	.ops = &ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &desc;
}
