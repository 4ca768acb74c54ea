# One stock `openssl s_server` (alice, node A) whose provider caches keys
# (batch = 4) serves two client SAEs of node B in turn: bob and mallory,
# each handshake a separate `openssl s_client` process with its own
# OPENSSL_CONF, alternating bob, mallory, bob, mallory, bob, mallory, on the
# qkd and x25519_qkd groups. The server's cache then holds keys for both
# SAEs at once; a key cached for one must never go to the other: KM B
# refuses a key ID made for bob when mallory fetches it (not_authorised),
# so such a handshake fails, and this test with it.
#
# For each handshake: s_client exits 0 with a verified TLS 1.3 session, the
# ServerHello (from the client's -trace, and the same one in the server's)
# carries the group's code point with a key_exchange of the right size,
# the line sent comes back reversed, and the key ID is new and already
# supplied at KM B afterwards. KM A supplies a whole batch (4 keys) at the
# first handshake of each SAE and none at the next two (they come from the
# cache); KM B supplies exactly one key per handshake.
source "$(dirname "$0")/tls_lib.sh"
tls_net_up

BATCH=4
ROUNDS=3 # handshakes per SAE: the first fetches a batch, the rest use it
ossl_conf "$TMP/server.cnf" "$(AK_A)" alice "x25519_qkd:qkd:X25519" 3000 \
	$BATCH
ossl_conf "$TMP/bob.cnf" "$(AK_B)" bob "x25519_qkd:qkd:X25519"
ossl_conf "$TMP/mallory.cnf" "$(AK_B)" mallory "x25519_qkd:qkd:X25519"
port=$(tls_port)
start_s_server server "$TMP/server.cnf" "$port"
server_pid=$BG_PID

declare -A seen=() first=()
n=0
a_start=$(supplied A)
b_start=$(supplied B)
for ((r = 1; r <= ROUNDS; r++)); do
	for sae in bob mallory; do
		n=$((n + 1))
		# both groups for each SAE, in turn
		if (((n + r) % 2)); then
			group=qkd code=$GROUP_QKD len=16
		else
			group=x25519_qkd code=$GROUP_X25519_QKD len=48
		fi
		name="$sae.$n"
		out="$TMP/$name.out"
		a0=$(supplied A)
		b0=$(supplied B)
		s_client "$name" "$TMP/$sae.cnf" "$port" "$group" ||
			fail "handshake $n ($sae, $group): s_client exit $?:" \
				"$(qkdn_error "$out")" "$(tail -n 30 "$out")"
		# the certificate is encrypted under the handshake keys: a
		# failed handshake prints "Verify return code: 0 (ok)" too
		grep -q "^New, TLSv1.3, Cipher is" "$out" &&
			grep -q "^Server certificate" "$out" &&
			grep -q "^Verification: OK" "$out" &&
			grep -q "^Verify return code: 0 (ok)" "$out" ||
			fail "handshake $n ($sae): no verified TLS 1.3 session:" \
				"$(tail -n 30 "$out")"
		reply_ok "$out" ||
			fail "handshake $n ($sae): no reversed reply from the server"

		# the group, as the client received it and the server sent it
		read -r g l hex <<<"$(hello_shares "$name" | head -n 1)"
		[ "$(hello_shares "$name" | wc -l)" = 1 ] ||
			fail "handshake $n ($sae): $(hello_shares "$name" | wc -l) ServerHellos"
		[ "${g:-}" = "$code" ] && [ "${l:-}" = "$len" ] ||
			fail "handshake $n ($sae, $group): ServerHello key_share" \
				"is group ${g:-none} len ${l:-none}, expected $code len $len"
		hello_shares server | grep -qx "$code $len $hex" ||
			fail "handshake $n ($sae): s_server did not send that key_share"

		# KM A: a batch at the SAE's first handshake, the cache after
		want_a=0
		[ -n "${first[$sae]:-}" ] || want_a=$BATCH
		first[$sae]=$n
		da=$(($(supplied A) - a0))
		db=$(($(supplied B) - b0))
		[ "$da" = "$want_a" ] ||
			fail "handshake $n ($sae): KM A supplied $da keys, expected $want_a"
		[ "$db" = 1 ] ||
			fail "handshake $n ($sae): KM B supplied $db keys, expected 1"

		# a key of its own, which KM B has supplied (to $sae: any
		# other SAE's fetch would have been refused)
		id=$(uuid "${hex: -32}")
		[ -z "${seen[$id]:-}" ] ||
			fail "handshake $n ($sae): key ID $id already used by handshake ${seen[$id]}"
		seen[$id]=$n
		"$QKDN" key get --km "$(AK_B)" --sae "$sae" --id "$id" --json \
			>"$TMP/refetch.json" 2>/dev/null &&
			fail "handshake $n ($sae): key $id still available after it"
		[ "$(jq -r .error.name "$TMP/refetch.json")" = already_supplied ] ||
			fail "handshake $n ($sae): key $id: $(cat "$TMP/refetch.json")"
		echo "ok: handshake $n: $sae on $group (0x$(printf %04x "$code")):" \
			"data echoed, key $id; KM A supplied $da, KM B $db"
	done
done

kill -0 "$server_pid" ||
	fail "s_server died: $(tail -n 20 "$TMP/server.out")"
[ "$n" = $((2 * ROUNDS)) ] || fail "$n handshakes, expected $((2 * ROUNDS))"
[ $(($(supplied A) - a_start)) = $((2 * BATCH)) ] ||
	fail "KM A supplied $(($(supplied A) - a_start)) keys in all, expected $((2 * BATCH))"
[ $(($(supplied B) - b_start)) = "$n" ] ||
	fail "KM B supplied $(($(supplied B) - b_start)) keys in all, expected $n"
echo "ok: $n handshakes alternating bob and mallory through one server" \
	"cache: KM A supplied $((2 * BATCH)) keys (one batch of $BATCH per SAE)," \
	"KM B $n"
