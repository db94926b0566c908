#!/bin/sh
# Failover soak: tests/integration/test_failover with many more faults.
# Three brokers with a publisher each; the brokers leading partitions are
# killed (SIGKILL) and restarted N times, one is stopped (SIGSTOP) for 10 s
# and broker 3 is cut off the cluster port for 5 s (nft, in a network
# namespace the test makes).  At the end every acknowledged message must
# be on every broker exactly once at its offset, in order.  Prints the
# faults, the counts and the worst publish gap.  Needs root and nftables.
#
# Usage: tools/failover-soak.sh [N]   (N kills, default 200; from a built
# tree: run `make check` or `make tests/integration/test_failover` first)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${KQ_BUILD_DIR:-$top/build}
n=${1:-200}
prog=$build/tests/integration/test_failover
[ -x "$prog" ] || { echo "$prog: not built" >&2; exit 1; }
start=$(date +%s)
KQ_FAILOVERS=$n "$prog"
echo "failover soak: $n kills in $(( $(date +%s) - start )) s"
