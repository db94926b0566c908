#!/bin/sh
# Runs `kafkaesque-bench disk` briefly in a folder of its own: it must
# print its five figures, leave nothing behind (after a good run, a
# SIGTERM, or a refusal), and refuse bad arguments with exit code 2
# (make check).
set -u
bench=./kafkaesque-bench
[ -x "$bench" ] || { echo "bench-disk.sh: $bench not built" >&2; exit 99; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/kq-bench-disk.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM
fail() { echo "bench-disk.sh: $*" >&2; exit 1; }
empty() { [ -z "$(ls -A "$dir")" ] || fail "$1: left behind: $(ls -A "$dir")"; }

out=$("$bench" disk -D "$dir" -d 0.2 --files 20 --per-sync 8 -n 200) ||
	fail "exit $? from a good run: $out"
for want in 'fdatasync, 1 stream: p50 [0-9.]* us' \
	'fdatasync, 2 streams at once: p50 [0-9.]* us' \
	'fdatasync, 3 streams at once: p50 [0-9.]* us' \
	'^20 files, a syncfs every 8 appends: [0-9]* appends/s' \
	'^1 file, a syncfs every 8 appends: [0-9]* appends/s'; do
	echo "$out" | grep -q "$want" || fail "no line matching '$want' in: $out"
done
# The streams' histograms are merged: percentiles are real durations
# (a merge that left the maximum out read as 1.8e16 us, or capped every
# percentile at one stream's maximum), and p50 below p99.
echo "$out" | sed -n 's/^fdatasync.*p50 \([0-9.]*\) us, p99 \([0-9.]*\) us.*/\1 \2/p' |
	awk '{
	p50 = $1; p99 = $2
	if (!(p50 > 0 && p50 < p99 && p99 < 10000000)) { print; exit 1 }
}
END { if (NR != 3) exit 1
}' || fail "percentiles out of range in: $out"
empty "a good run"

# A user's file of the same name as the bench's own is not touched.
echo mine > "$dir/stream0"
"$bench" disk -D "$dir" -d 0.1 --files 2 -n 10 >/dev/null ||
	fail "a run beside a user's file failed"
[ "$(cat "$dir/stream0")" = mine ] || fail "a user's file was changed"
rm "$dir/stream0"

# Stopped halfway, it still removes what it made, and says it failed.
"$bench" disk -D "$dir" -d 5 >/dev/null 2>&1 &
pid=$!
sleep 1
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 1 ] || fail "after SIGTERM: exit $rc, not 1"
empty "a run stopped by SIGTERM"

for bad in "-d 0" "-d x" "-d nan" "--files 0" "--files 4294967297" \
	"--per-sync -1" "-n 99999999999999999999" "extra"; do
	# shellcheck disable=SC2086
	"$bench" disk -D "$dir" $bad >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 2 ] || fail "disk $bad: exit $rc, not 2"
done
"$bench" disk -D "$dir/missing" -d 0.1 >/dev/null 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "a missing folder: exit $rc, not 1"
empty "the refusals"
exit 0
