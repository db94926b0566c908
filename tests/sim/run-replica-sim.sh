#!/bin/sh
# Runs the whole-replica simulation over 2000 seeds of 3 or 5 replicas,
# then 2000 seeds of a lone replica (damaged records for a message log)
# (make check).  Set REPLICA_SIM_SEEDS for a longer soak.
sim=./tests/sim/replica-sim
if [ ! -x "$sim" ]; then
	echo "run-replica-sim.sh: $sim not built" >&2
	exit 99
fi
"$sim" --seeds "${REPLICA_SIM_SEEDS:-2000}" \
	--first-seed "${REPLICA_SIM_FIRST_SEED:-1}" || exit 1
"$sim" --seeds "${REPLICA_SIM_SEEDS:-2000}" \
	--first-seed "${REPLICA_SIM_FIRST_SEED:-1}" --nodes 1 || exit 1
# Too few ticks to converge: the seeds that fail replay from the line
# printed, options and all.
sh "$(dirname "$0")/check-replay.sh" "$sim" --seeds 20 --nodes 1 \
	--no-damage --converge-ticks 2
