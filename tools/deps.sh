#!/bin/sh
# Installs the Debian packages kafkaesque needs to build and test, when any
# is missing.  Sourced by run-broker.sh and run-tests.sh.
kq_install_deps() {
	pkgs="build-essential autoconf automake libtool libltdl-dev pkg-config \
libuv1-dev libjansson-dev libcmocka-dev libsodium-dev"
	[ "${1:-}" = tests ] &&
		pkgs="$pkgs telnet tmux clang libclang-rt-14-dev valgrind nftables iproute2"
	missing=
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "installing:$missing"
	sudo=
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
			$missing >/dev/null
}
