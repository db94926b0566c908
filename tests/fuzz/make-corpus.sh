#!/bin/sh
# Regenerates the seed corpora under tests/fuzz/corpus/ from the project's
# real inputs (see docs/fuzzing.md):
#   fuzz_config        etc/*.json and the configurations the tests write
#   fuzz_commands      the client side of tests/integration/sessions/*.kqs,
#                      and requests of another broker (gen_corpus.c)
#   fuzz_telnet_parse  the same byte streams (chunk and line-length bytes
#                      first, as that target reads them)
#   fuzz_jsonkey       the messages those sessions publish, and a few more
#   fuzz_segment_open  the segment fixtures (tests/fixtures/segment)
#   fuzz_raft_frame    frames made with the frame encoder (gen_corpus.c)
#   fuzz_raft_auth     handshakes of the auth module, run end against end
# Usage: tests/fuzz/make-corpus.sh   (from anywhere; needs a C compiler
# and libsodium)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
corpus=$top/tests/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

${CC:-cc} -O1 -I"$top/include" -I"$top/plugins/raft/port" \
	"$top/tests/fuzz/gen_corpus.c" "$top/plugins/raft/port/frame.c" \
	"$top/plugins/raft/port/auth.c" $(pkg-config --cflags --libs libsodium) \
	-o "$tmp/gen_corpus"
gen=$tmp/gen_corpus

for t in fuzz_config fuzz_commands fuzz_telnet_parse fuzz_jsonkey \
	fuzz_segment_open fuzz_raft_frame fuzz_raft_auth; do
	rm -rf "${corpus:?}/$t"
	mkdir -p "$corpus/$t"
done

cp "$top"/etc/*.json "$corpus/fuzz_config/"
"$gen" literals "$corpus/fuzz_config" "$top/tests/unit/test_config.c" \
	"$top"/tests/integration/*.c "$top/core/conf.c"

"$gen" sessions "$corpus/fuzz_commands" "$top"/tests/integration/sessions/*.kqs
"$gen" forwarded "$corpus/fuzz_commands"

# fuzz_telnet_parse reads a chunk-size byte and a line-length byte first.
for f in "$corpus"/fuzz_commands/*; do
	{ printf '\017\100'; tr -d '\001' <"$f"; } \
		>"$corpus/fuzz_telnet_parse/$(basename "$f")"
done

"$gen" bodies "$corpus/fuzz_jsonkey" "$top"/tests/integration/sessions/*.kqs
n=0
for body in '{"Key":"k"}' '{"Body":"no key"}' '{"Key":""}' \
	'{"Key":"\u00e9\n","Body":1}' '{"a":{"Key":"inner"},"Key":"outer"}' \
	'{"Key":12}' '[{"Key":"x"}]' '{"Key":"a","Key":"b"}' ' { "Key" : "s" } ' \
	'{"Body":"x","Key":"late"}' '"just a string"' '{"Key":"k"' '{}'; do
	printf '%s' "$body" >"$corpus/fuzz_jsonkey/extra-$n"
	n=$((n + 1))
done

"$gen" segments "$corpus/fuzz_segment_open" "$top"/tests/fixtures/segment/*
"$gen" frames "$corpus/fuzz_raft_frame"
"$gen" auth "$corpus/fuzz_raft_auth"

for t in "$corpus"/*; do
	echo "$(basename "$t"): $(find "$t" -type f | wc -l) files, $(cat "$t"/* | wc -c) bytes"
done
