# What must not work, or must still work, around the provider's TLS groups,
# with stock openssl s_server (alice, node A) and s_client (bob, node B):
#  (a) a client offering only X25519, with or without the provider, still
#      connects to a server that loads it, on X25519 (and no QKD key is
#      used);
#  (b) a qkd-only client against a server without the provider fails with
#      a handshake failure alert (the server found no suitable key share)
#      and no key is used;
#  (c) when the client's KM is unreachable or stopped, the handshake fails
#      within the configured timeout (1500 ms) plus a margin, with the
#      provider's reason, and the server keeps serving; with the client's
#      KM unreachable, KM A supplied the server's one key and KM B none;
#      with KM B stopped, KM A supplied none;
#  (d) a man in the middle (tls_mitm) that flips one bit of the key ID in
#      the ServerHello makes client and server fail, for qkd and
#      x25519_qkd: the client asks KM B for an unknown key ID, never
#      completes with a wrong key, and the real key is left untouched; a
#      flipped bit in the X25519 half of x25519_qkd fails as well (bad
#      record MAC at the client, whose QKD key is right). The MITM exits 0
#      (it flipped the bit it was asked to).
source "$(dirname "$0")/tls_lib.sh"
tls_net_up

TIMEOUT_MS=1500
MARGIN_MS=2500
ossl_conf "$TMP/server.cnf" "$(AK_A)" alice "x25519_qkd:qkd:X25519" \
	$TIMEOUT_MS 1
ossl_conf "$TMP/client.cnf" "$(AK_B)" bob "x25519_qkd:X25519" $TIMEOUT_MS
counters() { echo "$(supplied A)/$(supplied B)"; }

# server NAME [CONF]: a one-connection s_server on a fresh port ($port)
server() {
	port=$(tls_port)
	start_s_server "$1" "${2:-$TMP/server.cnf}" "$port" -naccept 1
	server_pid=$BG_PID
}
# server_done NAME: it handled its connection and exited
server_done() {
	wait_exit "$server_pid" 10 ||
		fail "$1 still running after its connection: $(tail "$TMP/$1.out")"
}
# handshake_failed NAME: s_client never decrypted the server's certificate
# (TLS 1.3 encrypts it under the handshake keys) and no data went through
handshake_failed() {
	local out="$TMP/$1.out"
	! grep -q "^Server certificate" "$out" ||
		fail "$1: the handshake keys agreed: $(tail -n 30 "$out")"
	! reply_ok "$out" || fail "$1: data went through"
}

# (a) X25519-only clients to the qkdn server
before=$(counters)
server a1
s_client a1.client "$TMP/client.cnf" "$port" X25519 ||
	fail "(a) X25519 with provider: exit $?: $(tail -n 30 "$TMP/a1.client.out")"
reply_ok "$TMP/a1.client.out" || fail "(a) no reply"
[ "$(hello_shares a1.client | cut -d' ' -f1)" = 29 ] ||
	fail "(a) not X25519: $(hello_shares a1.client)"
server_done a1
server a2
s_client a2.client /dev/null "$port" X25519:P-256 ||
	fail "(a) client without provider: exit $?: $(tail -n 30 "$TMP/a2.client.out")"
reply_ok "$TMP/a2.client.out" || fail "(a) no reply without provider"
[ "$(hello_shares a2.client | cut -d' ' -f1)" = 29 ] ||
	fail "(a) without provider: not X25519: $(hello_shares a2.client)"
server_done a2
[ "$(counters)" = "$before" ] || fail "(a) QKD keys used: $before -> $(counters)"
echo "ok: (a) X25519-only clients (with and without the provider) connect"

# (b) qkd-only client, server without the provider
server b /dev/null
rc=0
s_client b.client "$TMP/client.cnf" "$port" qkd || rc=$?
[ "$rc" != 0 ] || fail "(b) qkd-only client connected to a plain server"
handshake_failed b.client
grep -q "handshake failure" "$TMP/b.client.out" ||
	fail "(b) no handshake failure: $(tail -n 30 "$TMP/b.client.out")"
grep -q "alert handshake failure" "$TMP/b.client.out" ||
	fail "(b) no handshake failure alert: $(tail -n 30 "$TMP/b.client.out")"
server_done b
grep -q "no suitable key share" "$TMP/b.out" ||
	fail "(b) s_server did not refuse the key share: $(tail "$TMP/b.out")"
[ "$(counters)" = "$before" ] || fail "(b) QKD keys used"
echo "ok: (b) qkd-only client vs server without the provider:" \
	"$(grep -m1 -o 'alert handshake failure' "$TMP/b.client.out")"

# (c1) the client's KM address leads nowhere: decapsulate gives up after
# timeout_ms; the server (KM A and B up) did its part
ossl_conf "$TMP/lost.cnf" "ipc://$TMP/no-such-km.ak" bob "qkd" $TIMEOUT_MS
before=$(counters)
server c1
t0=$(date +%s%N)
rc=0
s_client c1.client "$TMP/lost.cnf" "$port" qkd || rc=$?
ms=$(elapsed_ms "$t0")
[ "$rc" != 0 ] && [ "$rc" != 124 ] ||
	fail "(c1) s_client exit $rc after $ms ms: $(tail -n 30 "$TMP/c1.client.out")"
handshake_failed c1.client
[ "$ms" -lt $((TIMEOUT_MS + MARGIN_MS)) ] ||
	fail "(c1) took $ms ms, timeout_ms is $TIMEOUT_MS"
grep -E ':qkdn:' "$TMP/c1.client.out" | grep -qiE 'timeout|unreachable' ||
	fail "(c1) no provider reason: $(tail -n 30 "$TMP/c1.client.out")"
server_done c1
grep -q "CONNECTION FAILURE" "$TMP/c1.out" ||
	fail "(c1) s_server saw no failure: $(tail "$TMP/c1.out")"
# the server encapsulated (one key at A, batch = 1); the client fetched none
a=$(($(cut -d/ -f1 <<<"$before") + 1))
b=$(cut -d/ -f2 <<<"$before")
[ "$(counters)" = "$a/$b" ] ||
	fail "(c1) counters $before -> $(counters), expected $a/$b"
echo "ok: (c1) client KM unreachable: failed after $ms ms:" \
	"$(qkdn_error "$TMP/c1.client.out")"

# (d) flip one bit of the ServerHello's key_share on the way: of the key
# ID (qkd; x25519_qkd, whose key_exchange is X25519 share then key ID), and
# of the X25519 share of x25519_qkd (the client then gets the right QKD key
# but the wrong X25519 secret). Every time both ends fail.
for case in qkd:last x25519_qkd:last x25519_qkd:0; do
	group=${case%:*}
	at=${case#*:}
	name="d.$group.$at"
	before=$(counters)
	server "$name"
	rm -f "$TMP/mitm.port"
	flip=(--flip)
	[ "$at" = last ] || flip+=(--byte "$at")
	bg_start "$name.mitm" "$BIN/tls_mitm" --upstream "$port" \
		--port-file "$TMP/mitm.port" "${flip[@]}" --timeout-ms 15000
	mitm_pid=$BG_PID
	wait_for 10 test -s "$TMP/mitm.port" || fail "(d) no MITM port"
	rc=0
	s_client "$name.client" "$TMP/client.cnf" "$(cat "$TMP/mitm.port")" \
		"$group" || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] ||
		fail "(d) $case: s_client exit $rc: $(tail -n 30 "$TMP/$name.client.out")"
	handshake_failed "$name.client"
	wait_for 20 bash -c "! kill -0 $mitm_pid 2>/dev/null" ||
		fail "(d) $case: MITM still running"
	rc=0
	wait "$mitm_pid" || rc=$?
	[ "$rc" = 0 ] || fail "(d) $case: MITM exit $rc: $(cat "$TMP/$name.mitm.out")"
	code=$GROUP_QKD
	[ "$group" = qkd ] || code=$GROUP_X25519_QKD
	flipped=$(cat "$TMP/$name.mitm.out")
	grep -qx "flipped group=0x$(printf %04x "$code") len=.* byte=.*" \
		<<<"$flipped" || fail "(d) $case: the MITM did not flip: $flipped"
	server_done "$name"
	grep -q "CONNECTION FAILURE" "$TMP/$name.out" ||
		fail "(d) $case: s_server saw no failure: $(tail "$TMP/$name.out")"
	read -r _ _ hex <<<"$(hello_shares "$name" | head -n 1)"
	real=$(uuid "${hex: -32}")
	a=$(($(cut -d/ -f1 <<<"$before") + 1))
	b=$(cut -d/ -f2 <<<"$before")
	if [ "$at" = last ]; then
		# the client asked KM B for a key ID that does not exist; the
		# real key is still there for bob, once
		grep ':qkdn:' "$TMP/$name.client.out" | grep -q 'unknown key ID' ||
			fail "(d) $case: no unknown key ID: $(tail -n 30 "$TMP/$name.client.out")"
		[ "$(counters)" = "$a/$b" ] ||
			fail "(d) $case: counters $before -> $(counters), expected $a/$b"
		"$QKDN" key get --km "$(AK_B)" --sae bob --id "$real" >/dev/null ||
			fail "(d) $case: the real key $real was consumed"
		how="key $real untouched"
	else
		# the right QKD key, the wrong X25519 secret: the client's
		# handshake keys differ from the server's, it cannot decrypt
		# what the server sent and says so
		[ "$(counters)" = "$a/$((b + 1))" ] ||
			fail "(d) $case: counters $before -> $(counters), expected $a/$((b + 1))"
		grep -q "bad record mac" "$TMP/$name.client.out" ||
			fail "(d) $case: client: no bad record mac: $(tail -n 30 "$TMP/$name.client.out")"
		grep -q "alert bad record mac" "$TMP/$name.out" ||
			fail "(d) $case: s_server got no bad record mac alert: $(tail "$TMP/$name.out")"
		how=$(grep -m1 -oE 'alert [a-z ]+|bad record mac|decrypt error' \
			"$TMP/$name.client.out" "$TMP/$name.out" | head -n 1 | cut -d: -f2)
	fi
	echo "ok: (d) $group, $flipped: client and server failed ($how)"
done

# (c2) stop KM B itself: the handshake fails within the timeout, and the
# same server process then serves the next client
port=$(tls_port)
start_s_server c2 "$TMP/server.cnf" "$port"
a0=$(supplied A)
kill -TERM "$(cat "$RUN/km-B.pid")"
wait_for 10 bash -c "! kill -0 $(cat "$RUN/km-B.pid") 2>/dev/null" ||
	fail "(c2) KM B did not stop"
t0=$(date +%s%N)
rc=0
s_client c2.client "$TMP/client.cnf" "$port" qkd || rc=$?
ms=$(elapsed_ms "$t0")
[ "$rc" != 0 ] && [ "$rc" != 124 ] ||
	fail "(c2) s_client exit $rc after $ms ms: $(tail -n 30 "$TMP/c2.client.out")"
handshake_failed c2.client
[ "$ms" -lt $((TIMEOUT_MS + MARGIN_MS)) ] ||
	fail "(c2) took $ms ms, timeout_ms is $TIMEOUT_MS"
has_reason() {
	grep -hE ':qkdn:' "$TMP/c2.out" "$TMP/c2.client.out" |
		grep -qiE 'timeout|unreachable|KM error'
}
wait_for 5 has_reason ||
	fail "(c2) no provider reason: $(tail -n 30 "$TMP/c2.out")"
[ "$(supplied A)" = "$a0" ] ||
	fail "(c2) KM A supplied $(($(supplied A) - a0)) keys for a failed handshake"
echo "ok: (c2) KM B stopped: failed after $ms ms:" \
	"$(qkdn_error "$TMP/c2.out" "$TMP/c2.client.out")"
s_client c2.next "$TMP/client.cnf" "$port" X25519 ||
	fail "(c2) server stuck after the KM failure: $(tail -n 30 "$TMP/c2.next.out")"
reply_ok "$TMP/c2.next.out" || fail "(c2) no reply from the server afterwards"
[ "$(hello_shares c2.next | cut -d' ' -f1)" = 29 ] ||
	fail "(c2) next client not on X25519: $(hello_shares c2.next)"
[ "$(supplied A)" = "$a0" ] || fail "(c2) KM A supplied keys for X25519"
echo "ok: (c2) the same server then serves the next client"
