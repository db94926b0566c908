#!/bin/sh
# check-replay.sh SIM ARGS...: runs SIM with ARGS, which must find a
# violation, then the command its last line prints to replay the first
# failing seed, which must find it again: the printed command carries
# every option that shapes a run.
sim=$1
shift
out=$("$sim" "$@" 2>/dev/null)
if [ $? -ne 1 ]; then
	echo "check-replay.sh: $sim $*: expected a violation" >&2
	exit 1
fi
replay=$(printf '%s\n' "$out" | tail -n 1 | sed -n 's/.*replay: [^ ]* //p')
if [ -z "$replay" ]; then
	echo "check-replay.sh: $sim $*: no replay command" >&2
	exit 1
fi
# shellcheck disable=SC2086 # the options are words
"$sim" $replay >/dev/null 2>&1
rc=$?
# 1 is a violation; 2 would be options the simulation refused.
if [ $rc -ne 1 ]; then
	echo "check-replay.sh: replay of $sim $* exited $rc, not 1: $replay" >&2
	exit 1
fi
echo "replayed: $replay"
