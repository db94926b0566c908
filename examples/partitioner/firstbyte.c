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
#include <kafkaesque/partitioner.h>

static int firstbyte_init(const struct kq_host *host, void **state)
{
	const char *key;
	json_t *v;
	int err = 0;

	*state = NULL;
	if (!host->config)
		return 0;
	if (!json_is_object(host->config)) {
		host->log(host, KQ_LOG_ERROR, "%s: expected an object",
			  host->module);
		return KQ_ECONFIG;
	}
	/* The module has no options: name every key given, then refuse. */
	json_object_foreach((json_t *)host->config, key, v)
	{
		host->log(host, KQ_LOG_ERROR, "%s.%s: unknown key",
			  host->module, key);
		err = KQ_ECONFIG;
	}
	return err;
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
	.init = firstbyte_init,
	.fini = firstbyte_fini,
	.partition = firstbyte_partition,
};

static const struct kq_plugin_desc firstbyte_desc = {
	.abi = KQ_PLUGIN_ABI,
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
