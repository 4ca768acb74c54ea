# A dead KM must not stall the provider's host (issue "hostile networks",
# finding 6). Stock nginx (alice, node A; one worker, so that a blocked
# worker blocks every client; ssl_ecdh_curve x25519_qkd:X25519; batch 1,
# so that every QKD handshake asks the KM) serves one QKD request, then
# KM A is killed (SIGKILL, from its pid file):
#  (a) QKD clients (curl, bob, --curves x25519_qkd) fail: the first within
#      1000 ms (one connect attempt, not the 3000 ms timeout), each of the
#      next three within 100 ms (the provider fails fast while its Ak
#      handle backs off), as curl measures the request; nginx logs the
#      provider's reason: peer unreachable, and that calls are held back;
#  (b) with QKD clients arriving at the same time, an X25519-only client
#      without the provider is served within 50 ms (curl's time_total).
# Before the back-off each QKD handshake held the worker for the whole
# timeout and the X25519 client waited behind it.
source "$(dirname "$0")/tls_lib.sh"
command -v nginx >/dev/null || fail "nginx is not installed (scripts/setup.sh)"
command -v curl >/dev/null || fail "curl is not installed (scripts/setup.sh)"
if [ ${#STOCK_ENV[@]} -ne 0 ]; then
	# Debian's curl deadlocks at start-up with the ASan runtime preloaded
	# (see test_tls_nginx.sh), and the timings are the point here
	echo "skipped: needs curl with the provider, not in an ASan build"
	exit 0
fi
tls_net_up

ossl_conf "$TMP/server.cnf" "$(AK_A)" alice "x25519_qkd:X25519" 3000 1
ossl_conf "$TMP/client.cnf" "$(AK_B)" bob "x25519_qkd:X25519" 3000
page="qkdn: served while the KM is down"
nginx_start 1 x25519_qkd:X25519 "$page"

# get NAME CONF CURVES: one request; curl's exit status, its time_total in
# ms in $TMP/NAME.ms, the body in $TMP/NAME.body
get() {
	local rc=0
	env OPENSSL_CONF="$2" timeout 30 curl -sS --max-time 20 --fail \
		--tlsv1.3 --curves "$3" --cacert "$CA" -H 'Connection: close' \
		-o "$TMP/$1.body" -w '%{time_total}\n' \
		"https://127.0.0.1:$port/" >"$TMP/$1.time" 2>"$TMP/$1.out" ||
		rc=$?
	awk '{ printf "%d\n", $1 * 1000 }' "$TMP/$1.time" >"$TMP/$1.ms"
	return $rc
}
ms() { cat "$TMP/$1.ms"; }

get warm "$TMP/client.cnf" x25519_qkd ||
	fail "QKD request with KM A up: $(cat "$TMP/warm.out")"
grep -qF "$page" "$TMP/warm.body" || fail "QKD request: wrong body"
echo "ok: QKD request with KM A up ($(ms warm) ms)"

km_pid=$(cat "$RUN/km-A.pid")
kill -KILL "$km_pid"
wait_for 5 bash -c "! kill -0 $km_pid" || fail "KM A did not die"

# (a)
rc=0
get q1 "$TMP/client.cnf" x25519_qkd || rc=$?
[ "$rc" != 0 ] || fail "(a) QKD request served with KM A dead"
[ "$(ms q1)" -lt 1000 ] ||
	fail "(a) first QKD failure took $(ms q1) ms (timeout 3000 ms)"
for i in 2 3 4; do
	rc=0
	get "q$i" "$TMP/client.cnf" x25519_qkd || rc=$?
	[ "$rc" != 0 ] || fail "(a) QKD request $i served with KM A dead"
	[ "$(ms "q$i")" -lt 100 ] ||
		fail "(a) QKD failure $i took $(ms "q$i") ms, not under 100 ms"
done
grep -q 'peer unreachable' "$ND/error.log" ||
	fail "(a) nginx did not log 'peer unreachable': $(tail "$ND/error.log")"
grep -q 'held back for [0-9]* ms more' "$ND/error.log" ||
	fail "(a) nginx did not log a call failed fast while backing off: $(tail "$ND/error.log")"
alert=$(grep -o 'alert [a-z ]*' "$TMP/q2.out" | head -n 1)
echo "ok: (a) QKD requests fail in $(ms q1), $(ms q2), $(ms q3)," \
	"$(ms q4) ms; the client saw: ${alert:-$(cat "$TMP/q2.out")}"

# (b) QKD clients and an X25519-only client without the provider at once
bg=()
for i in 5 6 7; do
	get "q$i" "$TMP/client.cnf" x25519_qkd &
	bg+=($!)
done
get x /dev/null X25519 ||
	fail "(b) X25519 request: exit $?: $(cat "$TMP/x.out")"
for p in "${bg[@]}"; do
	wait "$p" && fail "(b) a QKD request was served with KM A dead"
done
grep -qF "$page" "$TMP/x.body" || fail "(b) X25519 request: wrong body"
[ "$(ms x)" -lt 50 ] ||
	fail "(b) X25519 request took $(ms x) ms, not under 50 ms"
tail -n 1 "$ND/access.log" | grep -q " TLSv1.3 X25519 200$" ||
	fail "(b) not served on X25519: $(tail -n 1 "$ND/access.log")"
echo "ok: (b) X25519-only client served in $(ms x) ms beside QKD clients" \
	"that failed in $(ms q5), $(ms q6), $(ms q7) ms"
