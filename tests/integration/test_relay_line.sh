# Key relay over a line N1 - N2 - N3 - N4 (Q.4160 I.5a and I.5b), in both
# controller modes: alice at N1 gets 20 keys for dave at N4 (20 key
# requests, so 20 relays of 3 hops), dave fetches each by ID and they are
# equal; every KM's relay counters move by exactly what the relays did;
# forged and replayed key relays are refused without consuming any pool
# bits; with the controller down a relay fails at once as unreachable,
# naming the controller, while direct keys (alice -> bob at N2) still work.
source "$(dirname "$0")/lib.sh"

CTL_BIN="$BIN/qkdn-controller"
[ -x "$CTL_BIN" ] || fail "no $CTL_BIN: build the controller first"


ak() { echo "ipc://$RUN/$1.ak"; }
# relay NODE FIELD: one relay counter of NODE
relay() { status "$1" | jq -e ".relay.$2"; }
# link_in NODE LINK: key left in NODE's in direction of LINK
link_in() { status "$1" | jq -e ".links[] | select(.link == \"$2\") | .in"; }

# every link of every KM up with 256 KiB to send both ways: the
# controllers' view is then stable (capacities far above the low-water
# mark), so route caches hold for the whole run
pools_full() {
	local n
	for n in N1 N2 N3 N4; do
		status "$n" | jq -e '(.links | length) as $n | [.links[] |
			select(.up and .out >= 262144 and .in >= 262144)] |
			length == $n' \
			>/dev/null || return 1
	done
}

# expect_delta NODE FIELD WANT: NODE's counter moved by WANT since snap
declare -A SNAP
snap() {
	local n f
	for n in N1 N2 N3 N4; do
		for f in started completed failed in_flight forwarded delivered \
			rejected next_hop_reqs relay_req_notifs relay_req_rsps \
			done_notifs keys_relayed; do
			SNAP[$n.$f]=$(relay "$n" "$f")
		done
	done
}
expect_delta() {
	local now
	now=$(relay "$1" "$2") || fail "no relay.$2 in status of $1"
	[ $((now - SNAP[$1.$2])) = "$3" ] ||
		fail "$MODE: $1 relay.$2 moved by $((now - SNAP[$1.$2])), want $3: $(status "$1" | jq -c .relay)"
}
delta_is() { [ $(($(relay "$1" "$2") - SNAP[$1.$2])) = "$3" ]; }

# ctls_see_all MODE: each controller of MODE reports the 3 links up
ctls_see_all() {
	local n nodes=N1
	[ "$1" = centralized ] || nodes="N1 N2 N3 N4"
	for n in $nodes; do
		"$QKDN" status --config "$CFG" --run-dir "$RUN" --controller "$n" \
			--json | jq -e '[.links[] | select(.up == true or .up == 1)] |
			length == 3' >/dev/null || return 1
	done
}

run_mode() {
	MODE=$1
	line_net "$MODE" 4 alice:N1 bob:N2 dave:N4
	net_up
	grep -q "ctl" "$TMP/up.out" ||
		fail "qkdn net up started no controller: $(cat "$TMP/up.out")"
	wait_for 20 pools_full || fail "$MODE: pools never filled"
	# every controller has every node's link state, all links up
	wait_for 10 ctls_see_all "$MODE" || fail "$MODE: controllers never saw every link"
	snap

	"$BIN/ak_pairs" --src-km "$(ak N1)" --src-sae alice \
		--dst-km "$(ak N4)" --dst-sae dave --n 20 --timeout 5000 \
		--out "$TMP/pairs.$MODE" >"$TMP/r" ||
		fail "$MODE: relayed keys: $(cat "$TMP/r")"
	[ "$(jq .ok "$TMP/r")" = 20 ] || fail "$MODE: short run: $(cat "$TMP/r")"
	[ "$(wc -l <"$TMP/pairs.$MODE")" = 20 ] || fail "$MODE: not 20 keys"

	# exact counters: 20 relays N1 -> N2 -> N3 -> N4, one route lookup
	# per node (cached: the topology did not change)
	expect_delta N1 started 20
	expect_delta N1 completed 20
	expect_delta N1 failed 0
	expect_delta N1 in_flight 0
	expect_delta N1 keys_relayed 20
	for n in N2 N3; do
		expect_delta $n forwarded 20
		expect_delta $n started 0
		expect_delta $n delivered 0
	done
	expect_delta N4 delivered 20
	expect_delta N4 done_notifs 20
	for n in N1 N2 N3 N4; do expect_delta $n rejected 0; done
	if [ "$MODE" = distributed ]; then
		for n in N1 N2 N3; do expect_delta $n next_hop_reqs 1; done
		expect_delta N4 next_hop_reqs 0
		expect_delta N1 relay_req_notifs 0
	else
		for n in N1 N2 N3 N4; do expect_delta $n next_hop_reqs 0; done
		expect_delta N1 relay_req_notifs 1
		# 20 goes to the controller after each reply, from another
		# thread
		wait_for 5 delta_is N1 relay_req_rsps 20 ||
			expect_delta N1 relay_req_rsps 20
	fi

	# forged / replayed / misrouted relays at N2, pool levels exact
	"$QKDN" link pause L12 --config "$CFG" --run-dir "$RUN" >/dev/null ||
		fail "could not pause L12"
	sleep 0.5 # blocks already sent land
	in_before=$(link_in N2 L12)
	rej_before=$(relay N2 rejected)
	kx_n2=$(kx_url N2)
	"$BIN/relay_forge" "$kx_n2" N1,N2,N3,N4 L12 L23 alice dave \
		>"$TMP/forge.$MODE" 2>"$TMP/forge.err" ||
		fail "$MODE: forged relays not refused as they should be: $(cat "$TMP/forge.err" "$TMP/forge.$MODE")"
	[ "$(wc -l <"$TMP/forge.$MODE")" = 3 ] || fail "relay_forge sent no forgeries"
	[ "$(link_in N2 L12)" = "$in_before" ] ||
		fail "$MODE: forged relays consumed pool bits at N2: $in_before -> $(link_in N2 L12)"
	# the probe and the 3 forgeries
	[ "$(relay N2 rejected)" = $((rej_before + 4)) ] ||
		fail "$MODE: N2 rejected $(relay N2 rejected), want $((rej_before + 4))"
	"$QKDN" link resume L12 --config "$CFG" --run-dir "$RUN" >/dev/null ||
		fail "could not resume L12"

	# controller down: relays fail at once, naming it; direct keys work
	local ctl_pid ctl_url
	if [ "$MODE" = distributed ]; then
		ctl_pid="$RUN/ctl-N1.pid"
		ctl_url="$RUN/N1.ck"
	else
		ctl_pid="$RUN/ctl-central.pid"
		ctl_url="$RUN/central.ck"
	fi
	[ -f "$ctl_pid" ] || fail "no pid file $ctl_pid: $(ls "$RUN")"
	kill "$(cat "$ctl_pid")"
	wait_for 10 bash -c "! kill -0 $(cat "$ctl_pid") 2>/dev/null" ||
		fail "controller did not stop"
	snap
	# (not `qkdn key get`: on "unreachable" it probes the Ak socket with
	# a bare connect, which wedges the KM's Ak server: a daemon bug)
	local t0 t1
	t0=$(date +%s%N)
	"$BIN/relay_forge" keyreq "$(ak N1)" alice dave >"$TMP/down" ||
		fail "$MODE: key request: $(cat "$TMP/down")"
	t1=$(date +%s%N)
	read -r name reason <"$TMP/down"
	[ "$name" = unreachable ] || fail "$MODE: controller down: $(cat "$TMP/down")"
	grep -qF "$ctl_url" "$TMP/down" ||
		fail "$MODE: reason does not name $ctl_url: $(cat "$TMP/down")"
	[ $(((t1 - t0) / 1000000)) -lt 1500 ] ||
		fail "$MODE: the refusal took $(((t1 - t0) / 1000000)) ms"
	expect_delta N1 started 1
	expect_delta N1 failed 1
	"$BIN/ak_pairs" --src-km "$(ak N1)" --src-sae alice \
		--dst-km "$(ak N2)" --dst-sae bob --n 4 --out "$TMP/direct" \
		>"$TMP/r" || fail "$MODE: direct keys without a controller: $(cat "$TMP/r")"
	[ "$(jq .ok "$TMP/r")" = 4 ] || fail "$MODE: direct: $(cat "$TMP/r")"
	expect_delta N1 started 1

	"$QKDN" net down --run-dir "$RUN" >/dev/null 2>&1 ||
		fail "$MODE: net down"
	if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' \
		"$RUN"/*.log 2>/dev/null; then
		fail "$MODE: sanitizer report"
	fi
	rm -rf "$RUN"
	echo "ok: $MODE: 20 relayed keys, exact counters, forgeries refused," \
		"controller down refused at once"
}

run_mode distributed
run_mode centralized
