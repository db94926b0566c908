/* A module built for a plugin ABI this broker does not speak: loading it
 * must fail with a message naming the ABI. */
#include <kafkaesque/partitioner.h>

static const struct kq_plugin_desc desc = {
	.abi = 999,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_PARTITIONER,
	.name = "badabi",
	.version = "0",
	.ops = &desc,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &desc;
}
