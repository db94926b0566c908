#!/bin/sh
# Runs `kafkaesque-bench disk` briefly in a folder of its own: it must
# print its five figures, remove every file it made, and refuse bad
# arguments with exit code 2 (make check).
set -u
bench=./kafkaesque-bench
[ -x "$bench" ] || { echo "bench-disk.sh: $bench not built" >&2; exit 99; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/kq-bench-disk.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail() { echo "bench-disk.sh: $*" >&2; exit 1; }

out=$("$bench" disk -D "$dir" -d 0.2 --files 20 --per-sync 8 -n 200) ||
	fail "exit $? from a good run: $out"
for want in 'fdatasync, 1 stream: p50 [0-9.]* us' \
	'fdatasync, 2 streams at once: p50 [0-9.]* us' \
	'fdatasync, 3 streams at once: p50 [0-9.]* us' \
	'^20 files, a syncfs every 8 appends: [0-9]* appends/s' \
	'^1 file, a syncfs every 8 appends: [0-9]* appends/s'; do
	echo "$out" | grep -q "$want" || fail "no line matching '$want' in: $out"
done
[ -z "$(ls -A "$dir")" ] || fail "files left behind: $(ls -A "$dir")"

for bad in "-d 0" "-d x" "--files 0" "--per-sync -1" "extra"; do
	# shellcheck disable=SC2086
	"$bench" disk -D "$dir" $bad >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 2 ] || fail "disk $bad: exit $rc, not 2"
done
"$bench" disk -D "$dir/missing" -d 0.1 >/dev/null 2>&1 &&
	fail "a missing folder was not an error"
exit 0
