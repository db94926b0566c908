/* The `roundrobin` partitioner: keys are ignored, message n of the topic
 * (as counted by this broker) goes to partition n % partitions. */
#include <kafkaesque/config.h>
#include <kafkaesque/partitioner.h>

/* No options yet: any key in the module's section is reported with its
 * JSON path and refused. */
static int roundrobin_init(const struct kq_host *host, void **state)
{
	*state = NULL;
	return kq_config_keys(host, NULL);
}

static void roundrobin_fini(void *state)
{
}

static uint32_t roundrobin_partition(void *state,
				     const struct kq_partition_req *req)
{
	return (uint32_t)(req->seq % req->partitions);
}

static const struct kq_partitioner_ops roundrobin_ops = {
	.size = sizeof(struct kq_partitioner_ops),
	.init = roundrobin_init,
	.fini = roundrobin_fini,
	.partition = roundrobin_partition,
};

static const struct kq_plugin_desc roundrobin_desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_PARTITIONER,
	.name = "roundrobin",
	.version = "1.0.0",
	.ops = &roundrobin_ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &roundrobin_desc;
}
