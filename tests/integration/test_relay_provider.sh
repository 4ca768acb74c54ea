# TLS 1.3 over a relayed key (issue 9): stock `openssl s_server` as dave
# at N4 and `openssl s_client` as alice at N1 of examples/line-4.cnf
# (N1 - N2 - N3 - N4, started with `qkdn net up` on this host), each
# loading the qkdn provider through its own OPENSSL_CONF, complete
# handshakes on the x25519_qkd group. No link joins N1 and N4: the server's
# KM (N4) gets each key by relaying it over three hops, N4 -> N3 -> N2 ->
# N1, where alice's provider fetches it by ID.
#
# For each controller mode (distributed, centralized) and each handshake:
# a verified TLS 1.3 session, the ServerHello carrying group x25519_qkd
# (0xFE61) with a 48-byte share (X25519 + key ID), the line sent echoed
# back reversed; the KMs' relay counters moved by exactly one relay (N4
# started and completed one and relayed one key, N3 and N2 forwarded one,
# N1 delivered one and sent one completion), N4 and N1 each supplied one
# key (batch = 1), and the key ID is one alice already fetched (a second
# fetch is refused). Key IDs differ between handshakes.
source "$(dirname "$0")/tls_lib.sh"

[ -x "$BIN/qkdn-controller" ] || fail "$BIN/qkdn-controller is not built"
HANDSHAKES=3

# line_net MODE: examples/line-4.cnf with free Kx ports, this test's run
# dir and controller = MODE
line_net() {
	local n
	sed -e "/^\[qkdn\]\$/a run_dir = $RUN" \
		-e "s/^controller = distributed\$/controller = $1/" \
		"$SRC/examples/line-4.cnf" >"$CFG"
	for n in 1 2 3 4; do
		sed -i "s#^kx = tcp://127.0.0.1:1730$n\$#kx = tcp://127.0.0.1:$(free_port)#" "$CFG"
	done
	grep -q "^controller = $1$" "$CFG" || fail "no controller = $1 in $CFG"
	! grep -q ':1730[1-4]$' "$CFG" || fail "ports not replaced: $(cat "$CFG")"
}

relay() { "$QKDN" status --km "ipc://$RUN/$1.ak" --json | jq -c .relay; }
# counters NODE: "started completed forwarded delivered done_notifs
# keys_relayed failed supplied" of NODE's KM
counters() {
	"$QKDN" status --km "ipc://$RUN/$1.ak" --json | jq -r '.relay as $r |
		"\($r.started) \($r.completed) \($r.forwarded) \($r.delivered) \($r.done_notifs) \($r.keys_relayed) \($r.failed) \(.supplied)"'
}
# moved NODE BEFORE "d_started d_completed ... d_supplied": NODE's
# counters are BEFORE plus exactly these
moved() {
	local now want="" a d i
	now=$(counters "$1")
	read -r -a a <<<"$2"
	read -r -a d <<<"$3"
	for i in "${!a[@]}"; do
		want+="${want:+ }$((a[i] + d[i]))"
	done
	[ "$now" = "$want" ] ||
		fail "$MODE handshake $n: KM $1 (started completed forwarded delivered done_notifs keys_relayed failed supplied): want $want, have $now; relay $(relay "$1")"
}
# has_out_bytes_of NODE N: every link of NODE's KM holds N bytes each way
has_out_bytes_of() {
	status "$1" | jq -e --argjson m "$2" \
		'[.links[] | select(.out < $m or .in < $m)] | length == 0' >/dev/null
}
# the relay's completion reaches the KMs' counters as the reply goes back
settled() { [ "$(relay N4 | jq .in_flight)" = 0 ]; }

make_certs
declare -A seen=()
for MODE in distributed centralized; do
	RUN="$TMP/run-$MODE"
	line_net $MODE
	net_up
	for n in N1 N2 N3 N4; do
		wait_for 15 has_out_bytes_of "$n" 40000 ||
			fail "$MODE: pools of $n never filled: $(status "$n")"
	done
	wait_for 15 "$QKDN" route --from N4 --to N1 --config "$CFG" ||
		fail "$MODE: no route N4 -> N1"

	ossl_conf "$TMP/server.cnf" "ipc://$RUN/N4.ak" dave "x25519_qkd:X25519" 3000 1
	ossl_conf "$TMP/client.cnf" "ipc://$RUN/N1.ak" alice "x25519_qkd:X25519"
	port=$(tls_port)
	start_s_server "server-$MODE" "$TMP/server.cnf" "$port"
	server_pid=$BG_PID

	for n in $(seq 1 $HANDSHAKES); do
		declare -A before=()
		for k in N1 N2 N3 N4; do before[$k]=$(counters $k); done
		out="$TMP/client.$MODE.$n.out"
		s_client "client.$MODE.$n" "$TMP/client.cnf" "$port" x25519_qkd ||
			fail "$MODE handshake $n: s_client exit $?: $(tail -n 30 "$out"); server: $(tail -n 20 "$TMP/server-$MODE.out")"
		grep -q "^New, TLSv1.3, Cipher is" "$out" &&
			grep -q "^Verification: OK" "$out" ||
			fail "$MODE handshake $n: no verified TLS 1.3 session: $(tail -n 30 "$out")"
		reply_ok "$out" || fail "$MODE handshake $n: no reversed reply"
		read -r g l hex <<<"$(hello_shares "client.$MODE.$n" | head -n 1)"
		[ "${g:-}" = "$GROUP_X25519_QKD" ] && [ "${l:-}" = 48 ] ||
			fail "$MODE handshake $n: ServerHello key_share is group ${g:-none} len ${l:-none}"
		hello_shares "server-$MODE" | grep -qx "$GROUP_X25519_QKD 48 $hex" ||
			fail "$MODE handshake $n: s_server did not send that key_share"

		wait_for 5 settled || fail "$MODE handshake $n: N4 relay in flight: $(relay N4)"
		#               started completed forwarded delivered done keys failed supplied
		moved N4 "${before[N4]}" "1 1 0 0 0 1 0 1"
		moved N3 "${before[N3]}" "0 0 1 0 0 0 0 0"
		moved N2 "${before[N2]}" "0 0 1 0 0 0 0 0"
		moved N1 "${before[N1]}" "0 0 0 1 1 0 0 1"

		id=$(uuid "${hex: -32}")
		[ -z "${seen[$id]:-}" ] || fail "key ID $id used twice"
		seen[$id]=1
		"$QKDN" key get --km "ipc://$RUN/N1.ak" --sae alice --id "$id" \
			--json >"$TMP/refetch.json" 2>/dev/null &&
			fail "$MODE handshake $n: key $id was still available at N1"
		[ "$(jq -r .error.name "$TMP/refetch.json")" = already_supplied ] ||
			fail "$MODE handshake $n: key $id: $(cat "$TMP/refetch.json")"
		echo "ok: $MODE handshake $n: TLS 1.3 on x25519_qkd, key $id relayed N4 -> N3 -> N2 -> N1"
	done
	kill -0 "$server_pid" || fail "s_server died: $(tail -n 20 "$TMP/server-$MODE.out")"
	bg_stop "$server_pid"
	echo "ok: $MODE: N4 $(relay N4)"
	"$QKDN" net down --run-dir "$RUN" >/dev/null || fail "$MODE: net down"
done
echo "ok: $((2 * HANDSHAKES)) TLS 1.3 handshakes (s_server dave at N4, s_client" \
	"alice at N1) on keys relayed over 3 hops, distributed and centralized"
