#!/usr/bin/env bash
# Install the Debian 12 packages qkdn needs (apt-get, as root) and build it
# into build/. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
	build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
	libssl-dev libsodium-dev libnng-dev libmsgpack-dev liblmdb-dev
	libcmocka-dev libcjson-dev openssl curl nginx-light jq procps iproute2
	gdb libevent-dev python3-requests
	# the KM's ETSI 014 client of a QKD device's KME (docs/etsi014.md)
	libcurl4-openssl-dev
	# the package tests (test_package*): cpack's dependency lists, lintian,
	# man pages, unit checks, the packages' own dependency
	dpkg-dev lintian man-db groff-base systemd adduser
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== building into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
