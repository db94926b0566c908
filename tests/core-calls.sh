#!/bin/sh
# Checks that the core's files call one way, as docs/architecture.md
# says: no file calls one listed above it in its table "The core's
# files" (the leaves, its last row, call only each other); and that no
# file includes, through others, its own header.  Reads the
# symbols each object of libkqcore defines and needs with nm (make check).
set -u
top=${srcdir:-.}
doc="$top/docs/architecture.md"
objs=core/.libs
[ -d "$objs" ] || objs=core
if ! command -v nm >/dev/null || [ ! -f "$objs/broker.o" ]; then
	echo "core-calls.sh: nm or $objs/broker.o missing" >&2
	exit 99
fi

# The files in the table's order, one a line; the leaves' row last.
order=$(awk '
	/^## The core.s files/ { on = 1; next }
	on && /^## / { exit }
	on && /^\| `[a-z]+\.c`/ {
		n = split($0, cells, "|")
		row = cells[2]
		while (match(row, /`[a-z]+\.c`/)) {
			print substr(row, RSTART + 1, RLENGTH - 2), rows + 0
			row = substr(row, RSTART + RLENGTH)
		}
		rows++
	}' "$doc")
if [ -z "$order" ]; then
	echo "core-calls.sh: no table of the core's files in $doc" >&2
	exit 1
fi

# The include graph, each file with its own header as one node, has no
# circle either.
loop=$(for f in "$top"/core/*.c "$top"/core/*.h; do
	name=$(basename "$f" | sed 's/\.[ch]$//')
	sed -n 's/^#include "\([a-z_]*\)\.h"$/\1/p' "$f" |
		awk -v f="$name" '$1 != f { print f, $1 }'
done | tsort 2>&1 >/dev/null)
if [ -n "$loop" ]; then
	echo "core-calls.sh: the core's includes run in a circle:"
	echo "$loop" | head -20
	exit 1
fi

for f in "$objs"/*.o; do
	name=$(basename "$f" .o)
	# An object left from a file since removed is not the core's.
	[ -f "$top/core/$name.c" ] || continue
	nm "$f" | awk -v f="$name" '
		NF == 3 && $2 ~ /^[TDBR]$/ { print "def", $3, f }
		NF == 2 && $1 == "U" { print "use", $2, f }'
done | awk -v order="$order" '
	BEGIN {
		n = split(order, lines, "\n")
		for (i = 1; i <= n; i++) {
			split(lines[i], w, " ")
			rank[w[1]] = w[2] + 0
			if (w[2] + 0 > last)
				last = w[2] + 0
		}
	}
	$1 == "def" { def[$2] = $3 ".c"; next }
	{ uses[++nu] = $3 ".c " $2 }
	END {
		bad = 0
		for (i = 1; i <= nu; i++) {
			split(uses[i], u, " ")
			from = u[1]
			to = def[u[2]]
			if (to == "" || to == from)
				continue
			if (!(from in rank) || !(to in rank)) {
				if (!(from in rank))
					missing[from] = 1
				if (!(to in rank))
					missing[to] = 1
				continue
			}
			if (rank[to] < rank[from] ||
			    (rank[to] == rank[from] && rank[from] != last)) {
				printf "core-calls.sh: %s calls %s (%s), " \
				       "listed above it in %s\n",
				       from, to, u[2], "docs/architecture.md"
				bad = 1
			}
		}
		for (m in missing) {
			printf "core-calls.sh: %s is not in the table of " \
			       "docs/architecture.md\n", m
			bad = 1
		}
		exit bad
	}'
