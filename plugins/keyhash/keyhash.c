/* The `keyhash` partitioner: a keyed message goes where Kafka's default
 * partitioner would put it, (murmur2(key) & 0x7fffffff) % partitions; a
 * message without a key goes round-robin over the partitions. */
#include <kafkaesque/partitioner.h>

#include "murmur2.h"

#define KEYHASH_NAME "keyhash"

/* The module takes no options yet: any key in its section is a mistake
 * worth stopping the broker for, reported with its JSON path. */
static int keyhash_init(const struct kq_host *host, void **state)
{
	const char *section = host->module ? host->module : KEYHASH_NAME;
	const char *key;
	json_t *v;
	int err = 0;

	*state = NULL;
	if (!host->config)
		return 0;
	if (!json_is_object(host->config)) {
		host->log(host, KQ_LOG_ERROR, "%s: expected an object",
			  section);
		return KQ_ECONFIG;
	}
	/* jansson's iteration API takes a non-const object but only reads
	 * it here. */
	json_object_foreach((json_t *)host->config, key, v)
	{
		host->log(host, KQ_LOG_ERROR, "%s.%s: unknown key", section,
			  key);
		err = KQ_ECONFIG;
	}
	return err;
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
	.init = keyhash_init,
	.fini = keyhash_fini,
	.partition = keyhash_partition,
};

static const struct kq_plugin_desc keyhash_desc = {
	.abi = KQ_PLUGIN_ABI,
	.kind = KQ_PLUGIN_PARTITIONER,
	.name = KEYHASH_NAME,
	.version = "1.0.0",
	.ops = &keyhash_ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &keyhash_desc;
}
