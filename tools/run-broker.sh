#!/bin/sh
# Sets up and starts a standalone kafkaesque broker on a fresh Debian
# machine: installs what is missing, builds, and runs kafkaesqued in the
# foreground (telnet on 127.0.0.1:8080, data under ./kafkaesque-1).
# Arguments are passed to kafkaesqued, e.g. -port=9090 or -c etc/standalone.json.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tools/deps.sh"
kq_install_deps
cd "$top"
[ -x configure ] || autoreconf -fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure -q
make -j"$(nproc)" -s
cd "$top"
exec "$top/build/kafkaesqued" "$@"
