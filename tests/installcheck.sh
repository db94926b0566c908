#!/bin/bash
# Run by `make installcheck` (and so by `make distcheck`): the installed
# kafkaesqued, started with no environment pointing anywhere, finds the
# installed plugins and serves.
set -eu
bindir=$1
pkglibdir=$2
tmp=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Ports below the kernel's ephemeral range, so that no client socket of
# another program holds the one picked; a port taken meanwhile anyway is
# picked again.
low=32768
read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
[ "$low" -gt 12000 ] || low=32768
cd "$tmp"
serving=
for _ in 1 2 3 4 5 6 7 8 9 10; do
	port=$((10000 + RANDOM % (low - 11000)))
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
	env -i PATH=/usr/bin:/bin "$bindir/kafkaesqued" -port="$port" \
		-datadir="$tmp" >"$tmp/log" 2>&1 &
	pid=$!
	for _ in $(seq 1 500); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			serving=1
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	[ -n "$serving" ] && break
	wait "$pid" 2>/dev/null || true
	grep -q "already in use" "$tmp/log" || { cat "$tmp/log"; exit 1; }
done
[ -n "$serving" ] || { echo "no free port found"; cat "$tmp/log"; exit 1; }
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'CRTP t 2\r\nPUBS t hello\r\nQUIT\r\n' >&3
answer=$(cat <&3 | tr -d '\r')
expected=$'OK t 2\nOK 0 0\nOK BYE'
if [ "$answer" != "$expected" ]; then
	echo "installed broker answered: $answer"
	cat "$tmp/log"
	exit 1
fi
for m in telnet keyhash roundrobin segment local; do
	[ -e "$pkglibdir/$m.so" ] || { echo "missing $pkglibdir/$m.so"; exit 1; }
done
kill -TERM "$pid"
wait "$pid"
echo "installed kafkaesqued in $bindir serves with the plugins of $pkglibdir"
