#!/usr/bin/env bash
# The Debian packages (docs/deploy.md): cpack -G DEB builds qkdn-km,
# libqkdn0, libqkdn-dev and openssl-qkdn-provider from this build tree;
# lintian finds no error in them; dpkg -i installs them on this machine
# (root only; purged at exit); the installed units pass systemd-analyze
# verify and the man pages render without warnings; the installed openssl
# finds the provider without OPENSSL_MODULES; a program built with
# `pkg-config qkdn` links libqkdn.so.0; the installed binaries run a
# two-node network (a key at A, the same key by ID at B); a KM under
# SIGHUP re-reads its network file and says what changed without applying
# it, keeps running on a broken one, logs in journald form when stderr is
# the journal, and stops with status 0 on SIGTERM.
source "$QKDN_SRC/tests/integration/lib.sh"
source "$QKDN_SRC/tests/integration/package_lib.sh"

pkg_preflight
pkg_build

# ---- lintian: no errors ----
# lintian exits 1 when it reports an error, 2 when it could not check
st=0
lintian --tag-display-limit 0 "$PKG_DIR"/*.deb >"$TMP/lintian.out" 2>&1 || st=$?
[ "$st" -le 1 ] || fail "lintian could not run ($st): $(head -n 5 "$TMP/lintian.out")"
! grep -q '^E: ' "$TMP/lintian.out" && [ "$st" = 0 ] ||
	fail "lintian errors: $(grep '^E: ' "$TMP/lintian.out")"
echo "lintian: $(grep -c '^E: ' "$TMP/lintian.out") errors, $(grep -c '^W: ' "$TMP/lintian.out") warnings"

# ---- dependencies come from the libraries actually linked ----
deps=$(dpkg-deb -f "$PKG_DIR"/qkdn-km_*.deb Depends)
# libcurl (KME client) and cJSON in the KM; libevent's three in the
# ETSI 014 gateway, which qkdn-km ships too
for lib in libnng1 liblmdb0 libsodium23 libssl3 libmsgpackc2 libcurl4 \
	libcjson1 libevent-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7; do
	grep -q "$lib" <<<"$deps" || fail "qkdn-km does not depend on $lib: $deps"
done
deps=$(dpkg-deb -f "$PKG_DIR"/openssl-qkdn-provider_*.deb Depends)
grep -q libssl3 <<<"$deps" || fail "the provider does not depend on libssl3: $deps"
! grep -q libnng <<<"$deps" || fail "the provider depends on nng: $deps"

pkg_install
export PATH="/usr/sbin:/usr/bin:$PATH"
modules=$(pkg-config --variable=modulesdir libcrypto)
for f in /usr/sbin/qkdn-km /usr/sbin/qkdn-controller /usr/sbin/qkdn-etsi014 \
	/usr/bin/qkdn-etsi014-certs /usr/bin/qkdn \
	/usr/bin/qkdn-qkdsim /usr/bin/qkdn-certs "$modules/qkdn.so" \
	/etc/ssl/openssl.cnf.d/qkdn.cnf /usr/include/qkdn_ak.h \
	/usr/share/doc/qkdn-km/examples/three-host.cnf; do
	[ -e "$f" ] || fail "not installed: $f"
done
getent passwd qkdn >/dev/null || fail "the package made no user qkdn"

# ---- units and man pages ----
units="$TMP/units"
mkdir -p "$units"
cp /lib/systemd/system/qkdn-km@.service "$units/qkdn-km@A.service"
cp /lib/systemd/system/qkdn-controller@.service "$units/qkdn-controller@A.service"
cp /lib/systemd/system/qkdn-etsi014@.service "$units/qkdn-etsi014@A.service"
cp /lib/systemd/system/qkdn-controller.service /lib/systemd/system/qkdn-qkdsim.service "$units/"
systemd-analyze verify --man=no "$units"/*.service >"$TMP/verify.out" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$TMP/verify.out")"
[ ! -s "$TMP/verify.out" ] || fail "systemd-analyze verify warns: $(cat "$TMP/verify.out")"
for m in qkdn.1 qkdn-certs.1 qkdn-qkdsim.1 qkdn-km.8 qkdn-controller.8 \
	qkdn-etsi014.8 qkdn.cnf.5 qkdn-provider.7; do
	f=$(ls /usr/share/man/man*/"$m.gz" 2>/dev/null) || fail "no man page $m"
	w=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
	[ -z "$w" ] || fail "man $m warns: $w"
done

# ---- the installed openssl finds the provider by name ----
out=$(env -u OPENSSL_MODULES -u OPENSSL_CONF openssl list -providers \
	-provider qkdn 2>&1) || fail "openssl cannot load qkdn: $out"
grep -q 'status: active' <<<"$out" || fail "qkdn not active: $out"
out=$(env -u OPENSSL_MODULES OPENSSL_CONF=/etc/ssl/openssl.cnf.d/qkdn.cnf \
	openssl list -kem-algorithms 2>&1)
grep -q 'x25519_qkd @ qkdn' <<<"$out" ||
	fail "the installed qkdn.cnf does not give x25519_qkd: $out"

# ---- a program of the application's own, on libqkdn.so.0 ----
cat >"$TMP/app.c" <<'C'
#include <qkdn_ak.h>
#include <qkdn_err.h>
#include <stdio.h>
int
main(int argc, char **argv)
{
	struct qkdn_ak *ak;
	struct qkdn_ak_status st;
	if (argc != 3)
		return 2;
	int rv = qkdn_ak_open(&ak, argv[1], argv[2], 3000);
	if (rv == 0) {
		if ((rv = qkdn_ak_status(ak, &st)) == 0) {
			printf("node %s\n", st.node);
			qkdn_ak_status_free(&st);
		}
		qkdn_ak_close(ak);
	}
	if (rv != 0)
		fprintf(stderr, "%s: %s\n", qkdn_errname(rv), qkdn_ak_last_error());
	return rv != 0;
}
C
cc -o "$TMP/app" "$TMP/app.c" $(pkg-config --cflags --libs qkdn) 2>"$TMP/cc.out" ||
	fail "building against the installed libqkdn: $(cat "$TMP/cc.out")"
# captured first: ld.so writes ldd's lines one by one, and a grep -q that
# exits at the first match would make ldd die of SIGPIPE (pipefail)
libs=$(ldd "$TMP/app")
grep -qE 'libqkdn.so.0 => (/usr)?/lib/' <<<"$libs" ||
	fail "the program does not load the installed libqkdn.so.0: $libs"

# ---- a two-node network from the installed binaries ----
QKDN=/usr/bin/qkdn
PKG_STOP+=("/usr/bin/qkdn net down --run-dir '$RUN'")
write_net 8000000
net_up
for p in "$RUN"/*.pid; do
	exe=$(readlink "/proc/$(cat "$p")/exe")
	case $exe in /usr/sbin/* | /usr/bin/*) ;; *) fail "$p runs $exe, not an installed binary" ;; esac
done
wait_for 10 has_out_bytes A 4096 || fail "no key at A: $(status A)"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json >"$TMP/key.json" ||
	fail "key get at A"
id=$(jq -r '.keys[0].id' "$TMP/key.json")
key=$(jq -r '.keys[0].key' "$TMP/key.json")
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" --json >"$TMP/got.json" ||
	fail "key get by ID at B"
[ "$(jq -r '.keys[0].key' "$TMP/got.json")" = "$key" ] ||
	fail "B gave another key for $id"
out=$("$TMP/app" "$(AK_A)" alice 2>&1) || fail "app on libqkdn: $out"
[ "$out" = "node A" ] || fail "app on libqkdn: $out"

# ---- SIGHUP: re-read, check, say what changed, apply nothing ----
km=$(cat "$RUN/km-A.pid")
hup_said() { grep -c "\[reload\]" "$RUN/km-A.log"; }
hup() {
	local before
	before=$(hup_said)
	kill -HUP "$km"
	wait_for 5 test "$(hup_said)" -gt "$before" ||
		fail "KM A logged nothing on SIGHUP"
	grep "\[reload\]" "$RUN/km-A.log" | tail -n 1
}
line=$(hup)
grep -q 'is valid and unchanged' <<<"$line" || fail "unchanged file: $line"
sed -i '0,/^key_ttl = 600/s//key_ttl = 300/' "$CFG" # node A's section
line=$(hup)
grep -q 'changed: \[A\]; none of it applies until this daemon restarts' <<<"$line" ||
	fail "changed file: $line"
echo "[A_B]" >>"$CFG"
echo "rate = oops" >>"$CFG"
line=$(hup)
grep -q 'still running with the file as it was at start' <<<"$line" ||
	fail "broken file: $line"
kill -0 "$km" || fail "KM A died on a broken file"
status A >/dev/null || fail "KM A stopped answering after SIGHUP"

# ---- SIGTERM: a clean stop, status 0 ----
"$QKDN" net down --run-dir "$RUN" >"$TMP/down.out" 2>&1 ||
	fail "net down: $(cat "$TMP/down.out")"
grep -q 'stopping' "$RUN/km-A.log" || fail "KM A did not log its stop"
! grep -qi 'killed\|SIGKILL' "$TMP/down.out" || fail "a daemon had to be killed: $(cat "$TMP/down.out")"

# ---- journald form: "<N>" priority, no timestamp, only when stderr is
# the journal stream ----
write_net 8000000 # the file above is broken on purpose
# emulator_logs LOG: the installed emulator, told by JOURNAL_STREAM that
# its stderr is the journal when it is $jlog, logs into LOG, then stops
# (status 0 on SIGTERM)
jlog="$TMP/journal.log"
mkdir -p "$TMP/jrun"
emulator_logs() {
	: >"$1"
	JOURNAL_STREAM=$(stat -c '%d:%i' "$jlog") /usr/bin/qkdn-qkdsim \
		--config "$CFG" --run-dir "$TMP/jrun" 2>>"$1" &
	local sim=$! st=0
	PKG_STOP+=("kill $sim")
	wait_for 10 grep -q . "$1" || fail "the emulator logged nothing"
	kill -TERM "$sim"
	wait "$sim" || st=$?
	[ "$st" = 0 ] || fail "the emulator exited with $st on SIGTERM"
}
emulator_logs "$jlog"
grep -qE '^<6>qkdsim info \[' "$jlog" || fail "no journald lines: $(head -n 3 "$jlog")"
! grep -qE '^[0-9]{4}-' "$jlog" || fail "journald lines carry a time: $(head -n 3 "$jlog")"
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$RUN/km-A.log" ||
	fail "a log file that is not the journal lost its times"
# a child that inherits JOURNAL_STREAM with its stderr elsewhere keeps
# plain, timed lines
nlog="$TMP/not-journal.log"
emulator_logs "$nlog"
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$nlog" ||
	fail "stderr not the journal, JOURNAL_STREAM inherited: lines lost their times: $(head -n 3 "$nlog")"
! grep -qE '^<[0-9]>' "$nlog" || fail "journald prefixes on a stderr that is not the journal: $(head -n 3 "$nlog")"
echo "OK"
