/* The keys of the raft section, NULL-terminated: read by plugin.c, and
 * by the configuration fuzzer, which builds sections from them without
 * linking the module. */
#ifndef KQ_RAFT_KEYS_H
#define KQ_RAFT_KEYS_H

#include <stddef.h>

static const char *const kq__raft_conf_keys[] = {
	"tick_ms",     "election_ticks", "heartbeat_ticks",
	"pre_vote",    "check_quorum",	 "snapshot_every",
	"cache_bytes", "max_campaigns",	 "balance_leaders",
	NULL};

#endif /* KQ_RAFT_KEYS_H */
