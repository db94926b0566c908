#!/bin/sh
# Sets up and runs every kafkaesque test on a fresh Debian machine:
# installs what is missing, builds, runs `make check` (unit tests, the Raft
# simulation, integration tests with real brokers), runs it again under
# AddressSanitizer and UndefinedBehaviorSanitizer, then `make distcheck`,
# then runs each libFuzzer target for a while.
# Ends with one line "N passed, N failed" over all suites and exits
# non-zero when anything failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tools/deps.sh"
kq_install_deps tests || exit 1
jobs=$(nproc)
failed_steps=

step() {
	name=$1
	shift
	echo "== $name"
	if ! "$@"; then
		echo "== $name: FAILED"
		failed_steps="$failed_steps $name"
		return 1
	fi
}

cd "$top" || exit 1
step autoreconf autoreconf -fi || { echo "0 passed, 1 failed"; exit 1; }

build() { # dir configure-args...
	dir=$1
	shift
	rm -rf "$top/$dir" && mkdir -p "$top/$dir" && cd "$top/$dir" &&
		../configure -q "$@" && make -j"$jobs" -s
}

check() { # dir
	cd "$top/$1" && make -j"$jobs" check
}

step build build build && step check check build
step build-sanitizers build build-sanitizers --enable-sanitizers &&
	step check-sanitizers check build-sanitizers
step distcheck sh -c "cd '$top/build' && make -j$jobs distcheck >distcheck.log 2>&1 || { tail -50 distcheck.log; exit 1; }"

# Fuzz every parser of outside input for a while (KQ_FUZZ_SECONDS each),
# starting from the committed seeds (read only: new finds go to the build
# folder's corpus-<target>, crashes to fuzz-findings/).  docs/fuzzing.md
fuzz_passed=0
fuzz_failed=0
fuzz() {
	cd "$top/build" && make -s fuzz >fuzz-build.log 2>&1 ||
		{ cat fuzz-build.log; return 1; }
	mkdir -p fuzz-findings
	for f in fuzz_*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		mkdir -p "corpus-$f"
		if "$top/tools/fuzz-run.sh" "$f" "${KQ_FUZZ_SECONDS:-15}" \
			"corpus-$f" fuzz-findings >"$f.log" 2>&1; then
			echo "$f: $("$top/tools/fuzz-run.sh" -summary "$f.log")"
			fuzz_passed=$((fuzz_passed + 1))
		else
			tail -30 "$f.log"
			fuzz_failed=$((fuzz_failed + 1))
		fi
	done
	[ "$fuzz_failed" -eq 0 ]
}
step fuzz fuzz

# One summary over every suite: cmocka programs count their own tests,
# other test programs count as one test each.
cd "$top" || exit 1
passed=0
failed=0
for dir in build build-sanitizers; do
	for trs in $(find "$dir/tests" -name '*.trs' 2>/dev/null); do
		log=${trs%.trs}.log
		result=$(sed -n 's/^:test-result: //p' "$trs" | head -1)
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
		if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
			case $result in
			PASS) p=1 ;;
			*) f=1 ;;
			esac
		elif [ "$result" != PASS ] && [ "$f" -eq 0 ]; then
			f=1 # crashed after its summary
		fi
		passed=$((passed + p))
		failed=$((failed + f))
	done
done
passed=$((passed + fuzz_passed))
failed=$((failed + fuzz_failed))
for s in $failed_steps; do
	case $s in
	check | check-sanitizers | fuzz) ;;
	*) failed=$((failed + 1)) ;; # a build step counts as a failed test
	esac
done
[ -n "$failed_steps" ] && echo "failed steps:$failed_steps"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ -z "$failed_steps" ]
