/* firstbyte: an example partitioner module built outside the kafkaesque
 * tree, against the installed SDK alone.
 *
 * A message goes to partition (first byte of its key) % partitions, or,
 * for a message without a key, (first byte of the message) % partitions.
 * Messages whose keys start alike share a partition: a toy, but one whose
 * placement is easy to predict by hand.
 *
 * A module exports exactly one symbol, kq_plugin_entry; everything else
 * here is static. */
#include <kafkaesque/config.h>
#include <kafkaesque/partitioner.h>

/* The module has no options: the SDK's helper names any key given and
 * refuses the configuration. */
static int firstbyte_init(const struct kq_host *host, void **state)
{
	*state = NULL;
	return kq_config_keys(host, NULL);
}

static void firstbyte_fini(void *state)
{
}

static uint32_t firstbyte_partition(void *state,
				    const struct kq_partition_req *req)
{
	const unsigned char *bytes = req->key ? req->key : req->value;
	size_t len = req->key ? req->key_len : req->value_len;

	if (!bytes || !len)
		return 0;
	return bytes[0] % req->partitions;
}

static const struct kq_partitioner_ops firstbyte_ops = {
	.size = sizeof(struct kq_partitioner_ops),
	.init = firstbyte_init,
	.fini = firstbyte_fini,
	.partition = firstbyte_partition,
};

static const struct kq_plugin_desc firstbyte_desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_PARTITIONER,
	.name = "firstbyte",
	.version = "1.0.0",
	.ops = &firstbyte_ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &firstbyte_desc;
}
