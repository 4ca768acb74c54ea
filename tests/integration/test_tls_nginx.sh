# Stock nginx (alice, node A; master plus 4 workers forked after the
# provider is loaded; ssl_ecdh_curve x25519_qkd) serves a page to stock
# curl (bob, node B; --curves x25519_qkd), both loading the provider only
# through OPENSSL_CONF. 20 requests, each a new curl process and a new
# connection, 4 at a time (s_client instead of curl in the ASan build):
# every body arrives intact, nginx logs every request as TLS 1.3 on group
# 0xfe61 (x25519_qkd), served by more than one worker (the provider works
# in forked workers), and KM B supplied exactly one key per request.
#
# The server keeps the provider's default batch (16 keys per KM call) and
# each worker has a cache of its own: a worker that served k requests made
# ceil(k / 16) KM calls, so KM A supplied exactly 16 times the sum of those
# over the workers (from the pids nginx logged). A key used twice would
# fail the client's fetch by ID (already supplied).
#
# What this cannot show: that a forked child never hands out keys its
# parent fetched ahead. nginx's master does no handshake, so its cache is
# empty when it forks the workers. The fork wipe is guarded by
# test_tls_inproc (tls_inproc fork: a parent with cached keys forks, the
# child must fetch its own and the parent's keys stay fetchable once) and
# by unit.test_keycache (the atfork child handler leaves none of the
# parent's key bytes in the child's cache memory).
source "$(dirname "$0")/tls_lib.sh"
command -v nginx >/dev/null || fail "nginx is not installed (scripts/setup.sh)"
command -v curl >/dev/null || fail "curl is not installed (scripts/setup.sh)"
tls_net_up

N=20
ossl_conf "$TMP/server.cnf" "$(AK_A)" alice "x25519_qkd:X25519" 3000 16
ossl_conf "$TMP/client.cnf" "$(AK_B)" bob "x25519_qkd:X25519"
page="qkdn: this page travelled under a QKD key"
nginx_start 4 x25519_qkd "$page"
workers() { pgrep -P "$nginx_pid" | wc -l; }
has_workers() { [ "$(workers)" -ge 4 ]; }
wait_for 10 has_workers || fail "nginx started $(workers) workers, not 4"

b0=$(supplied B)
a0=$(supplied A)
# get I: one request in its own process: curl; with a provider built with
# AddressSanitizer (build-asan) openssl s_client instead, because Debian's
# curl deadlocks in setlocale() at start-up with the ASan runtime preloaded
if [ ${#STOCK_ENV[@]} -eq 0 ]; then
	client=curl
	get() {
		env OPENSSL_CONF="$TMP/client.cnf" timeout 30 \
			curl -sS --max-time 20 --fail --tlsv1.3 \
			--curves x25519_qkd --cacert "$CA" \
			-H 'Connection: close' -o "$TMP/body.$1" \
			"https://127.0.0.1:$port/" >"$TMP/curl.$1.out" 2>&1
	}
else
	client="openssl s_client (ASan build)"
	get() {
		printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
			env "${STOCK_ENV[@]}" OPENSSL_CONF="$TMP/client.cnf" \
			timeout 30 openssl s_client -quiet -ign_eof \
			-connect "127.0.0.1:$port" -groups x25519_qkd \
			-CAfile "$CA" -verify_return_error \
			>"$TMP/body.$1" 2>"$TMP/curl.$1.out" &&
			grep -q '^HTTP/1.1 200' "$TMP/body.$1"
	}
fi
streams=()
for s in 0 1 2 3; do
	(for ((i = s + 1; i <= N; i += 4)); do
		rc=0
		get "$i" || rc=$?
		echo "$rc" >"$TMP/rc.$i"
	done) &
	streams+=($!)
done
wait "${streams[@]}"
for i in $(seq 1 $N); do
	[ "$(cat "$TMP/rc.$i")" = 0 ] ||
		fail "request $i: $client exit $(cat "$TMP/rc.$i"): $(cat "$TMP/curl.$i.out")
$(tail -n 20 "$ND/error.log")"
	grep -qF "$page" "$TMP/body.$i" || fail "request $i: wrong body"
done
echo "ok: $N requests by $client on x25519_qkd, every page intact"

# nginx's own view: each request TLS 1.3 on the x25519_qkd code point
logged=$(wc -l <"$ND/access.log")
[ "$logged" = $N ] || fail "nginx logged $logged requests, not $N"
bad=$(grep -vc " TLSv1.3 0xfe61 200$" "$ND/access.log" || true)
[ "$bad" = 0 ] || fail "requests not on TLSv1.3/0xfe61: $(grep -v " TLSv1.3 0xfe61 200$" "$ND/access.log")"
pids=$(cut -d' ' -f1 "$ND/access.log" | sort -u | wc -l)
[ "$pids" -ge 2 ] || fail "all requests went to one worker"
echo "ok: nginx logged $N requests on TLSv1.3 group 0xfe61 by $pids workers"

[ "$(supplied B)" = $((b0 + N)) ] ||
	fail "KM B supplied $(($(supplied B) - b0)) keys for $N handshakes"
# requests per worker -> KM calls per worker -> keys at A
want_a=$(cut -d' ' -f1 "$ND/access.log" | sort | uniq -c |
	awk '{ calls += int(($1 + 15) / 16) } END { print 16 * calls }')
[ "$(supplied A)" = $((a0 + want_a)) ] ||
	fail "KM A supplied $(($(supplied A) - a0)) keys for $N handshakes by" \
		"$pids workers, expected $want_a (16 per KM call, one call per" \
		"16 requests of a worker): $(cut -d' ' -f1 "$ND/access.log" |
			sort | uniq -c | tr '\n' ' ')"
echo "ok: KM B supplied $N keys to bob, KM A $want_a to nginx's $pids" \
	"workers (batches of 16)"
! grep -E '\[(alert|emerg|crit)\]' "$ND/error.log" ||
	fail "nginx logged errors"
