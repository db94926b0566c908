#!/bin/sh
# Runs the Raft simulation over 500 seeds (make check).  Programs are
# found relative to the build directory, which is the working directory
# of every test.  Set RAFT_SIM_SEEDS for a longer soak.
sim=./tests/sim/raft-sim
if [ ! -x "$sim" ]; then
	echo "run-sim.sh: $sim not built" >&2
	exit 99
fi
"$sim" --seeds "${RAFT_SIM_SEEDS:-500}" --first-seed "${RAFT_SIM_FIRST_SEED:-1}" ||
	exit 1
# Too few ticks to converge: the seeds that fail replay from the line
# printed, options and all.
sh "$(dirname "$0")/check-replay.sh" "$sim" --seeds 20 --nodes 3 \
	--cache-bytes 40 --converge-ticks 5
