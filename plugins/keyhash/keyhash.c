/* The `keyhash` partitioner: a keyed message goes where Kafka's default
 * partitioner would put it, (murmur2(key) & 0x7fffffff) % partitions; a
 * message without a key goes round-robin over the partitions. */
#include <kafkaesque/config.h>
#include <kafkaesque/partitioner.h>

#include "murmur2.h"

/* The module takes no options yet: any key in its section is a mistake
 * worth stopping the broker for, reported with its JSON path. */
static int keyhash_init(const struct kq_host *host, void **state)
{
	*state = NULL;
	return kq_config_keys(host, NULL);
}

static void keyhash_fini(void *state)
{
}

static uint32_t keyhash_partition(void *state,
				  const struct kq_partition_req *req)
{
	if (!req->key)
		return (uint32_t)(req->keyless_seq % req->partitions);
	return kq__murmur2_partition(kq__murmur2(req->key, req->key_len),
				     req->partitions);
}

static const struct kq_partitioner_ops keyhash_ops = {
	.size = sizeof(struct kq_partitioner_ops),
	.init = keyhash_init,
	.fini = keyhash_fini,
	.partition = keyhash_partition,
};

static const struct kq_plugin_desc keyhash_desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_PARTITIONER,
	.name = "keyhash",
	.version = "1.0.0",
	.ops = &keyhash_ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &keyhash_desc;
}
