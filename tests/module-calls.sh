#!/bin/sh
# Checks that the files of each module under plugins/ call one way: no
# file calls, through others, back into itself.  Reads the symbols each
# object defines and needs with nm, then sorts the calls with tsort,
# which names a circle when it finds one (make check).  The core's own
# order is checked by core-calls.sh.
set -u
top=${srcdir:-.}
if ! command -v nm >/dev/null || ! command -v tsort >/dev/null ||
	[ ! -d plugins ]; then
	echo "module-calls.sh: nm, tsort or the built plugins/ missing" >&2
	exit 99
fi

bad=0
checked=0
for dir in plugins/*/; do
	mod=$(basename "$dir")
	objs=$(find "$dir" -path '*/.libs/*.o' | sort)
	[ -n "$objs" ] || objs=$(find "$dir" -name '*.o' | sort)
	[ -n "$objs" ] || continue
	# One name per file: its folder under the module and its own name
	# (libtool's la- prefix dropped).
	edges=$(for f in $objs; do
		rel=${f#"$dir"}
		name=$(echo "$rel" | sed 's#\.libs/##; s#la-##; s#\.o$##')
		# An object left from a file since removed is not the module's.
		[ -f "$top/plugins/$mod/$name.c" ] || continue
		nm "$f" | awk -v f="$name" '
			NF == 3 && $2 ~ /^[TDBR]$/ { print "def", $3, f }
			NF == 2 && $1 == "U" { print "use", $2, f }'
	done | awk '
		$1 == "def" { def[$2] = $3; next }
		{ use[++n] = $3 " " $2 }
		END {
			for (i = 1; i <= n; i++) {
				split(use[i], u, " ")
				to = def[u[2]]
				if (to != "" && to != u[1])
					print u[1], to
			}
		}' | sort -u)
	# Objects that match none of the module's sources (a static-only
	# build names them otherwise) check nothing: say so, not pass.
	matched=$(for f in $objs; do
		rel=${f#"$dir"}
		name=$(echo "$rel" | sed 's#\.libs/##; s#la-##; s#\.o$##')
		[ -f "$top/plugins/$mod/$name.c" ] && echo "$name"
	done | wc -l)
	if [ "$matched" -eq 0 ]; then
		echo "module-calls.sh: no object of plugins/$mod matches its" \
			"sources (configure --enable-shared)" >&2
		exit 99
	fi
	checked=$((checked + 1))
	[ -n "$edges" ] || continue
	if ! loop=$(echo "$edges" | tsort 2>&1 >/dev/null) || [ -n "$loop" ]; then
		echo "module-calls.sh: plugins/$mod calls in a circle:"
		# tsort names each circle it breaks, one file a line.
		echo "$loop" | awk '
			/input contains a loop/ { if (c != "") print "  " c; c = ""; next }
			/^tsort: / { sub(/^tsort: /, ""); c = c == "" ? $0 : c " -> " $0 }
			END { if (c != "") print "  " c }'
		bad=1
	fi
done
if [ "$checked" -eq 0 ]; then
	echo "module-calls.sh: no built module under plugins/" >&2
	exit 99
fi
exit $bad
