# Stock `openssl s_server` (alice, node A) and `openssl s_client` (bob, node
# B) as separate processes, each loading the provider only through its own
# OPENSSL_CONF, complete TLS 1.3 handshakes on the "qkd" and "x25519_qkd"
# groups. For each handshake: the ServerHello both programs print (-trace)
# carries that group's code point with a key_exchange of the right size
# (16-byte key ID; 32-byte X25519 share + key ID), a line sent by the client
# comes back reversed from the server, KM A and KM B each supplied exactly
# one key (batch = 1), and the key ID of the ServerHello is one KM B has
# already supplied to bob (the client used exactly that key). Key IDs
# differ between handshakes.
source "$(dirname "$0")/tls_lib.sh"
tls_net_up

ossl_conf "$TMP/server.cnf" "$(AK_A)" alice "x25519_qkd:qkd:X25519" 3000 1
ossl_conf "$TMP/client.cnf" "$(AK_B)" bob "x25519_qkd:X25519"
port=$(tls_port)
start_s_server server "$TMP/server.cnf" "$port"

declare -A seen=()
n=0
for group in qkd x25519_qkd qkd x25519_qkd; do
	n=$((n + 1))
	case $group in
	qkd) code=$GROUP_QKD len=16 ;;
	x25519_qkd) code=$GROUP_X25519_QKD len=48 ;;
	esac
	a0=$(supplied A)
	b0=$(supplied B)
	out="$TMP/client.$n.out"
	s_client "client.$n" "$TMP/client.cnf" "$port" "$group" ||
		fail "$group handshake: s_client exit $?: $(tail -n 30 "$out")"
	grep -q "^New, TLSv1.3, Cipher is" "$out" &&
		grep -q "^Verification: OK" "$out" ||
		fail "$group: no verified TLS 1.3 session: $(tail -n 30 "$out")"
	reply_ok "$out" || fail "$group: no reversed reply from the server"

	# the group, from what the client received
	read -r g l hex <<<"$(hello_shares "client.$n" | head -n 1)"
	[ "${g:-}" = "$code" ] && [ "${l:-}" = "$len" ] ||
		fail "$group: ServerHello key_share is group ${g:-none} len ${l:-none}, expected $code len $len"
	# ... and from what the server sent
	hello_shares server | grep -qx "$code $len $hex" ||
		fail "$group: s_server did not send that key_share"

	[ "$(supplied A)" = $((a0 + 1)) ] ||
		fail "$group: KM A supplied $(($(supplied A) - a0)) keys for one handshake"
	[ "$(supplied B)" = $((b0 + 1)) ] ||
		fail "$group: KM B supplied $(($(supplied B) - b0)) keys for one handshake"

	# the last 16 bytes are the key ID; bob got that key in the handshake
	id=$(uuid "${hex: -32}")
	[ -z "${seen[$id]:-}" ] || fail "key ID $id used twice"
	seen[$id]=1
	"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" --json \
		>"$TMP/refetch.json" 2>/dev/null &&
		fail "$group: key $id was still available after the handshake"
	[ "$(jq -r .error.name "$TMP/refetch.json")" = already_supplied ] ||
		fail "$group: key $id: $(cat "$TMP/refetch.json")"
	echo "ok: $group (0x$(printf %04x "$code")): TLS 1.3 handshake, data" \
		"echoed, key $id supplied once at each end"
done

kill -0 "$BG_PID" || fail "s_server died: $(tail -n 20 "$TMP/server.out")"
echo "ok: $n handshakes, $(supplied A) keys supplied by KM A," \
	"$(supplied B) by KM B"
