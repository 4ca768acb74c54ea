# The Debian packages of this build tree, installed on this machine for the
# length of one test. Source it after lib.sh, before netns_topo.sh (whose
# teardown must stop the daemons before the packages go). Then:
#
#   pkg_preflight      exit 77 (ctest: skipped) unless root; fail unless
#                      dpkg, cpack and lintian are here and no qkdn package,
#                      /etc/qkdn or /var/lib/qkdn exists yet (the test
#                      installs, then purges: it must not touch a real one)
#   pkg_build          cpack -G DEB of $QKDN_BIN into $PKG_DIR
#   pkg_install        dpkg -i of all four; from here on the EXIT trap
#                      stops what runs from them and purges them
#   unit_cmd UNIT [INSTANCE]
#                      the ExecStart= of an installed unit, %i replaced,
#                      one word a line (mapfile it)
#   "${AS_UNIT_USER[@]}" CMD...
#                      CMD as the units run it: user and group qkdn, umask
#                      0077, no new privileges, no capabilities (the rest
#                      of the sandbox needs systemd; docs/deploy.md)
PKG_NAMES=(qkdn-km libqkdn0 libqkdn-dev openssl-qkdn-provider)
PKG_DIR="$TMP/packages"
PKG_INSTALLED=0
PKG_USER_MADE=0
PKG_STOP=() # commands run at exit before the purge

pkg_preflight() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: not root (uid $(id -u)): installing packages with dpkg -i needs root (CI runs as root)"
		exit 77
	fi
	# what is packaged is the release build; a sanitizer build's binaries
	# would drag libasan into the packages' dependencies
	if grep -q '^QKDN_SANITIZE:BOOL=ON' "$QKDN_BIN/CMakeCache.txt" 2>/dev/null; then
		echo "SKIP: $QKDN_BIN is a sanitizer build: packages are built and tested from the release build"
		exit 77
	fi
	local t p
	for t in dpkg cpack lintian setpriv systemd-analyze; do
		command -v "$t" >/dev/null ||
			fail "no $t: run scripts/setup.sh (it installs what this test needs)"
	done
	for p in "${PKG_NAMES[@]}"; do
		! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'installed' ||
			fail "$p is installed on this machine already; this test installs and purges it, so it will not run here"
	done
	[ ! -e /etc/qkdn ] && [ ! -e /var/lib/qkdn ] ||
		fail "/etc/qkdn or /var/lib/qkdn exists: a qkdn installation is here, and this test would purge it"
	getent passwd qkdn >/dev/null || PKG_USER_MADE=1
}

pkg_build() {
	mkdir -p "$PKG_DIR"
	(cd "$QKDN_BIN" && cpack -G DEB -B "$PKG_DIR") >"$TMP/cpack.out" 2>&1 ||
		fail "cpack -G DEB: $(tail -n 20 "$TMP/cpack.out")"
	local p
	for p in "${PKG_NAMES[@]}"; do
		ls "$PKG_DIR/${p}"_*.deb >/dev/null 2>&1 ||
			fail "cpack made no $p package: $(ls "$PKG_DIR")"
	done
}

pkg_install() {
	PKG_INSTALLED=1
	dpkg -i "$PKG_DIR"/*.deb >"$TMP/dpkg.out" 2>&1 ||
		fail "dpkg -i: $(tail -n 20 "$TMP/dpkg.out")"
}

unit_cmd() {
	local line
	line=$(grep -m1 '^ExecStart=' "/lib/systemd/system/$1") ||
		fail "no ExecStart= in /lib/systemd/system/$1"
	line=${line#ExecStart=}
	line=${line//%i/${2:-}}
	tr ' ' '\n' <<<"$line"
}

AS_UNIT_USER=(setpriv --reuid=qkdn --regid=qkdn --init-groups
	--no-new-privs --inh-caps=-all --bounding-set=-all --
	sh -c 'umask 0077 && exec "$@"' sh)

pkg_teardown() {
	local rc=$? c
	set +e
	for c in "${PKG_STOP[@]}"; do
		eval "$c" >/dev/null 2>&1
	done
	if [ "$PKG_INSTALLED" = 1 ]; then
		rm -rf /etc/qkdn/pki /etc/qkdn/qkdn.cnf
		if ! dpkg --purge "${PKG_NAMES[@]}" >"$TMP/purge.out" 2>&1; then
			echo "FAIL: dpkg --purge: $(tail -n 20 "$TMP/purge.out")" >&2
			rc=1
		fi
		for p in "${PKG_NAMES[@]}"; do
			if dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
				grep -q installed; then
				echo "FAIL: $p still installed after the test" >&2
				rc=1
			fi
		done
		if [ -e /var/lib/qkdn ] || [ -e /etc/qkdn ]; then
			echo "FAIL: the purge left /var/lib/qkdn or /etc/qkdn" >&2
			rc=1
		fi
		if [ "$PKG_USER_MADE" = 1 ] && getent passwd qkdn >/dev/null; then
			userdel qkdn >/dev/null 2>&1 ||
				echo "package_lib.sh: cannot remove user qkdn (a process of it left?)" >&2
			! getent group qkdn >/dev/null || groupdel qkdn 2>/dev/null
		fi
	fi
	if [ -n "$PKG_PREV_TRAP" ]; then
		(exit "$rc")
		eval "$PKG_PREV_TRAP"
	fi
	exit "$rc"
}
PKG_PREV_TRAP=$(trap -p EXIT)
PKG_PREV_TRAP=${PKG_PREV_TRAP#"trap -- "}
PKG_PREV_TRAP=${PKG_PREV_TRAP%" EXIT"}
eval "PKG_PREV_TRAP=${PKG_PREV_TRAP:-''}"
trap pkg_teardown EXIT
