#!/bin/sh
# A long fuzzing session over every libFuzzer target (docs/fuzzing.md).
#
#   tools/fuzz-soak.sh [-s SECONDS] [-j 1|2] [-b BUILD] [TARGET...]
#
# Runs each target (default: all fuzz_* built by `make fuzz` in BUILD,
# default build/) from the committed seeds plus what earlier soaks found,
# for SECONDS in all (default 3600, an hour), shared evenly: one target at
# a time, or two side by side with -j 2.  New inputs are kept in
# BUILD/soak-corpus/<target>; crashes, leaks and timeouts in a new folder
# under BUILD/soak-findings/, which the last line names.  Prints runs, execs per
# second, coverage and findings per target; exits non-zero on a finding.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=3600
jobs=1
build=$top/build
while getopts s:j:b: opt; do
	case $opt in
	s) seconds=$OPTARG ;;
	j) jobs=$OPTARG ;;
	b) build=$(cd "$OPTARG" && pwd) ;;
	*)
		sed -n '3,12p' "$0" >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
case $jobs in 1 | 2) ;; *) echo "-j: 1 or 2" >&2 && exit 2 ;; esac

cd "$build" || exit 1
make -s fuzz >soak-build.log 2>&1 || {
	cat soak-build.log
	exit 1
}
if [ $# -eq 0 ]; then
	for f in fuzz_*; do
		[ -f "$f" ] && [ -x "$f" ] && set -- "$@" "$f"
	done
fi
per=$((seconds * jobs / $#))
[ "$per" -ge 1 ] || per=1
findings=$build/soak-findings/$(date +%Y%m%d-%H%M%S)
mkdir -p "$findings" soak-logs
echo "fuzzing $# targets for ${per}s each, $jobs at a time"

run() { # target
	"$top/tools/fuzz-run.sh" "./$1" "$per" "soak-corpus/$1" "$findings" \
		>"soak-logs/$1.log" 2>&1
	echo $? >"soak-logs/$1.rc"
}

status=0
report() { # target
	rc=$(cat "soak-logs/$1.rc")
	n=$(find "$findings" -name "$1-*" | wc -l)
	printf '%-20s %s, findings %s\n' "$1" \
		"$("$top/tools/fuzz-run.sh" -summary "soak-logs/$1.log")" "$n"
	[ "$rc" -eq 0 ] && [ "$n" -eq 0 ] || status=1
}

while [ $# -gt 0 ]; do
	a=$1
	shift
	if [ "$jobs" -eq 2 ] && [ $# -gt 0 ]; then
		b=$1
		shift
		run "$a" &
		run "$b"
		wait
		report "$a"
		report "$b"
	else
		run "$a"
		report "$a"
	fi
done
echo "logs in $build/soak-logs, new inputs in $build/soak-corpus"
echo "findings (crashes, leaks, timeouts) in $findings"
exit $status
