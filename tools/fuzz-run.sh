#!/bin/sh
# Runs one libFuzzer target the way the test scripts do (docs/fuzzing.md):
#   tools/fuzz-run.sh TARGET SECONDS CORPUS FINDINGS [libFuzzer flags...]
# TARGET is the built binary (e.g. build/fuzz_config).  New inputs go to
# CORPUS; the committed seeds tests/fuzz/corpus/<target> are read, never
# written; the target's dictionary and options (tests/fuzz/<target>.dict,
# .options) are passed; a crash, leak or timeout is written to FINDINGS.
# Exits non-zero on a finding.
#   tools/fuzz-run.sh -summary LOG
# prints "N runs (N/s), cov N, ft N, corpus N" from a run's output.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = -summary ]; then
	awk '
		/^#[0-9]+/ && / cov: / {
			for (i = 1; i <= NF; i++) {
				if ($i == "cov:") cov = $(i + 1)
				if ($i == "ft:") ft = $(i + 1)
				if ($i == "corp:") corp = $(i + 1)
				if ($i == "exec/s:") eps = $(i + 1)
			}
			runs = substr($1, 2)
		}
		/^Done [0-9]+ runs/ { runs = $2 }
		END {
			sub(/\/.*/, "", corp)
			printf "%s runs (%s/s), cov %s, ft %s, corpus %s\n",
				runs, eps, cov, ft, corp
		}' "$2"
	exit 0
fi

[ $# -ge 4 ] || {
	echo "usage: $0 TARGET SECONDS CORPUS FINDINGS [flags...]" >&2
	exit 2
}
bin=$1 seconds=$2 corpus=$3 findings=$4
shift 4
# A bare name is a file here, not a command on PATH.
case $bin in */*) ;; *) bin=./$bin ;; esac
name=$(basename "$bin")
seeds=$top/tests/fuzz/corpus/$name
set -- -max_total_time="$seconds" -print_final_stats=1 \
	-artifact_prefix="$findings/$name-" "$@"
[ -f "$top/tests/fuzz/$name.dict" ] &&
	set -- -dict="$top/tests/fuzz/$name.dict" "$@"
# shellcheck disable=SC2046 # the options file holds flags, one per word
[ -f "$top/tests/fuzz/$name.options" ] &&
	set -- $(grep -v '^#' "$top/tests/fuzz/$name.options") "$@"
mkdir -p "$corpus" "$findings"
if [ -d "$seeds" ]; then
	exec "$bin" "$@" "$corpus" "$seeds"
else
	exec "$bin" "$@" "$corpus"
fi
