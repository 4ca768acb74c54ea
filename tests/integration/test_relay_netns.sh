# Key relay over a line of four hosts (issue 9): N1 - N2 - N3 - N4, each
# node in its own network namespace (netns_topo.sh), each link a veth
# pair, so N1 reaches only N2 and every key between alice (N1) and dave
# (N4) must be relayed by the KMs of N2 and N3. The KMs' Kx listen on
# tcp://10.79.0.<i>:17101; the emulator runs in the root namespace and
# delivers key over ipc:// (Kq-1).
#
# Three runs, each on fresh daemons:
#  - distributed: a controller per node in its namespace, Ck on ipc (its
#    KM), Cx on tcp://10.79.0.<i>:17102 (its neighbours' controllers);
#  - centralized: one controller in the root namespace, Ck on ipc (every
#    KM reaches it: an ipc socket is a file);
#  - distributed with Kx and Cx over tls+tcp:// (certificates from
#    qkdn-certs): N1's controller learns N3's and N4's links only from
#    link state flooded over TLS, so the route N1 -> N4 proves it works.
# Each run: 500 keys from alice to dave in 5 key requests of 100; dave
# fetches every one, once, and gets the same key; a second fetch of each
# is refused (already_supplied); the KMs' relay counters show exactly the
# five relays (N1 started and completed 5, N2 and N3 forwarded 5, N4
# delivered 5 and sent 5 completions, 500 keys relayed), the routing
# messages a cache keeps between 1 and 5 (14 per KM on the route,
# distributed; 17 at N1 and 5 of 20, centralized), and each controller
# counted exactly what its KMs say they sent.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns_topo.sh"

[ -x "$BIN/qkdn-controller" ] || fail "$BIN/qkdn-controller is not built"

NODES=(N1 N2 N3 N4)
topo_up "${NODES[*]}" "N1-N2 N2-N3 N3-N4"
REQS=5
PER=100
KEYS=$((REQS * PER))

# relay_is NODE JQ: NODE's relay counters satisfy JQ (a boolean), else fail
relay_is() {
	local r
	r=$(km_relay "$1") || fail "no status from KM $1"
	jq -e "$2" <<<"$r" >/dev/null || fail "$RUN_NAME: KM $1 relay counters: want $2, have $r"
}
relay_settled() { km_relay N1 | jq -e "$1" >/dev/null; }

# one_run NAME MODE: start the network, relay, fetch, check, stop
one_run() {
	RUN_NAME=$1
	local mode=$2 b n r c id
	RUN="$TMP/run-$1"
	CFG="$TMP/$1.cnf"
	topo_net_file "$CFG" "$mode" "alice:N1 dave:N4"
	topo_net_start "$CFG"

	# the topology holds: N1 reaches N2's Kx, not N3's or N4's
	if [ "$1" = distributed ]; then
		topo_reach N1 N2 17101 || fail "N1 cannot reach N2's Kx"
		! topo_reach N1 N3 17101 || fail "N1 reaches N3 directly"
		! topo_reach N1 N4 17101 || fail "N1 reaches N4 directly"
		! topo_reach N2 N4 17102 || fail "N2 reaches N4's Cx directly"
	fi
	wait_for 10 "$QKDN" route --from N1 --to N4 --config "$CFG" ||
		fail "$1: no route N1 -> N4"
	"$QKDN" route --from N1 --to N4 --config "$CFG" --json >"$TMP/route" ||
		fail "$1: route: $(cat "$TMP/route")"
	[ "$(jq -c '.routes[0]' "$TMP/route")" = '["N1","N2","N3","N4"]' ] ||
		fail "$1: route: $(cat "$TMP/route")"

	# over TLS, N1's controller takes link state from N2's controller
	# (adjacent: the flood above made the route) and from no other node's,
	# even with a valid certificate: N4's, sent from N2's host
	if [ "$1" = tls ]; then
		local out
		out=$(CK_SEND_CA="$TOPO_CERTS/ca.pem" CK_SEND_CERT="$TOPO_CERTS/N4.pem" \
			CK_SEND_KEY="$TOPO_CERTS/N4.key" CK_SEND_PEER=N1 \
			in_node N2 "$BIN/ck_send" "tls+tcp://$(node_ip N1):17102" \
			linkstate N4 999999999) || fail "ck_send to N1's Cx: $out"
		[ "$out" = not_authorised ] ||
			fail "N1's controller took link state over TLS from N4's certificate: $out"
		"$QKDN" route --from N1 --to N4 --config "$CFG" --json >"$TMP/route" &&
			[ "$(jq -c '.routes[0]' "$TMP/route")" = '["N1","N2","N3","N4"]' ] ||
			fail "N1's route changed after N4's forged link state: $(cat "$TMP/route")"
		echo "ok: tls: Cx refuses link state from a non-adjacent node's certificate"

		# nor does any certificate order the reservation scheme (I.4b)
		# over TLS, not even a neighbour KM's: N2's, at N1's Kx
		local resid order
		resid=$(cat /proc/sys/kernel/random/uuid)
		for order in "reserve $resid N4 N2 2 256 300" \
			"alloc $resid N4 alice dave" "release $resid"; do
			# shellcheck disable=SC2086 # the order's words
			out=$(CK_SEND_CA="$TOPO_CERTS/ca.pem" \
				CK_SEND_CERT="$TOPO_CERTS/N2.pem" \
				CK_SEND_KEY="$TOPO_CERTS/N2.key" CK_SEND_PEER=N1 \
				in_node N2 "$BIN/ck_send" \
				"tls+tcp://$(node_ip N1):17101" $order) ||
				fail "ck_send ${order%% *} to N1's Kx: $out"
			[ "$(head -n 1 <<<"$out")" = not_authorised ] ||
				fail "N1's KM took a ${order%% *} over TLS from N2's certificate: $out"
		done
		[ "$(km_relay N1 | jq .reservations)" = 0 ] ||
			fail "N1 holds a reservation after refused orders"
		echo "ok: tls: Kx refuses reservation orders from any certificate"
	fi

	: >"$TMP/$1.alice"
	for b in $(seq 1 $REQS); do
		"$QKDN" key get --km "$(topo_km N1)" --sae alice --to dave \
			--count $PER >>"$TMP/$1.alice" 2>"$TMP/err" ||
			fail "$1: key request $b of alice: $(cat "$TMP/err")"
	done
	[ "$(wc -l <"$TMP/$1.alice")" = $KEYS ] ||
		fail "$1: alice got $(wc -l <"$TMP/$1.alice") keys, not $KEYS"
	[ "$(cut -d' ' -f1 "$TMP/$1.alice" | sort -u | wc -l)" = $KEYS ] ||
		fail "$1: key IDs repeat"

	# dave fetches each once: the same keys, in the same order
	"$QKDN" key get --km "$(topo_km N4)" --sae dave \
		--ids-from "$TMP/$1.alice" >"$TMP/$1.dave" 2>"$TMP/err" ||
		fail "$1: dave's fetch: $(cat "$TMP/err")"
	cmp -s "$TMP/$1.alice" "$TMP/$1.dave" ||
		fail "$1: dave's keys differ from alice's: $(diff "$TMP/$1.alice" "$TMP/$1.dave" | head -n 4)"
	# ... and a second fetch of each is refused
	while read -r id _; do
		"$QKDN" key get --km "$(topo_km N4)" --sae dave --id "$id" \
			>/dev/null 2>"$TMP/again" &&
			fail "$1: dave fetched $id twice"
		# (no jq here: 500 of them take longer than the fetches)
		grep -q "^qkdn: already_supplied: .*key $id for SAE dave" \
			"$TMP/again" ||
			fail "$1: second fetch of $id: $(cat "$TMP/again")"
	done <"$TMP/$1.alice"
	expect_supplied N1 $KEYS 0
	expect_supplied N4 $KEYS 0
	for n in N2 N3; do expect_supplied $n 0 0; done

	# the relay counters: the last 20 (centralized) may follow the reply
	local rsps=0
	[ "$mode" = distributed ] || rsps=$REQS
	wait_for 10 relay_settled ".in_flight == 0 and .relay_req_rsps == $rsps" ||
		fail "$1: N1 never settled: $(km_relay N1)"
	local common=".failed == 0 and .in_flight == 0 and .rejected == 0
		and .reservations == 0 and .allocations == 0"
	relay_is N1 "$common and .started == $REQS and .completed == $REQS
		and .keys_relayed == $KEYS and .forwarded == 0
		and .delivered == 0 and .done_notifs == 0"
	for n in N2 N3; do
		relay_is $n "$common and .started == 0 and .completed == 0
			and .forwarded == $REQS and .delivered == 0
			and .done_notifs == 0 and .relay_req_rsps == 0"
	done
	relay_is N4 "$common and .started == 0 and .forwarded == 0
		and .delivered == $REQS and .done_notifs == $REQS
		and .next_hop_reqs == 0 and .relay_req_notifs == 0
		and .relay_req_rsps == 0"
	if [ "$mode" = distributed ]; then
		# the source and each intermediate asks its controller for the
		# next hop: at least once, at most once per relay (a cache)
		for n in N1 N2 N3; do
			relay_is $n ".next_hop_reqs >= 1 and .next_hop_reqs <= $REQS
				and .relay_req_notifs == 0"
		done
		for n in "${NODES[@]}"; do
			r=$(km_relay "$n" | jq .next_hop_reqs)
			c=$(ctl_status "$n") || fail "$1: no status from controller $n"
			jq -e --argjson r "$r" '.mode == "distributed" and
				.next_hop_reqs == $r and .relay_req_notifs == 0 and
				.relay_req_rsps == 0 and .updates > 0' <<<"$c" \
				>/dev/null ||
				fail "$1: controller $n (KM sent $r next-hop requests): $c"
		done
	else
		relay_is N1 ".relay_req_notifs >= 1 and .relay_req_notifs <= $REQS
			and .relay_req_rsps == $REQS and .next_hop_reqs == 0"
		for n in N2 N3; do
			relay_is $n ".next_hop_reqs == 0 and .relay_req_notifs == 0"
		done
		r=$(km_relay N1 | jq .relay_req_notifs)
		c=$(ctl_status N1) || fail "$1: no status from the central controller"
		jq -e --argjson r "$r" --argjson q $REQS '.mode == "centralized"
			and .relay_req_notifs == $r and .relay_req_rsps == $q
			and .next_hop_reqs == 0 and .reservations == 0
			and .updates > 0' <<<"$c" >/dev/null ||
			fail "$1: central controller (N1 sent $r notifications): $c"
	fi
	echo "ok: $1: $KEYS keys relayed N1 -> N2 -> N3 -> N4 in $REQS requests," \
		"fetched once by dave; N1 $(km_relay N1)"
	[ "$mode" = distributed ] ||
		echo "ok: $1: central controller $(ctl_status N1 | jq -c 'del(.links)')"
	topo_net_stop
}

# expect_supplied NODE SUPPLIED PENDING
expect_supplied() {
	local s
	s=$("$QKDN" status --km "$(topo_km "$1")" --json) ||
		fail "$RUN_NAME: no status from KM $1"
	[ "$(jq .supplied <<<"$s")" = "$2" ] && [ "$(jq .pending <<<"$s")" = "$3" ] ||
		fail "$RUN_NAME: KM $1: want supplied $2 pending $3: $s"
}

one_run distributed distributed
one_run centralized centralized
TOPO_CERTS="$TMP/certs"
"$BIN/qkdn-certs" "$TOPO_CERTS" node "${NODES[@]}" >/dev/null ||
	fail "qkdn-certs"
one_run tls distributed
grep -q "kx = tls+tcp://10.79.0.2:17101" "$CFG" || fail "the tls run was not over TLS"
grep -q "cx = tls+tcp://10.79.0.2:17102" "$CFG" || fail "the tls run's Cx was not over TLS"
echo "ok: $((3 * KEYS)) keys relayed over 3 hosts between alice and dave:" \
	"distributed and centralized controllers, Kx over tcp:// and tls+tcp://," \
	"Cx over tcp:// and tls+tcp:// (N1 routed to N4 only through flooded link state)"
