# Controllers (qkdn-controller) on a 3-node line N1 - N2 - N3, without KMs:
# ctl_feed plays the KMs (LINK_STATE reports on Ck) and the CLI.
# Distributed: each node's controller floods its KM's report to the
# adjacent controllers, which pass it on (N3 learns N1's links through
# N2); an adjacent controller that is not up is skipped and reached once
# it is; NEXT_HOP and ROUTE_QUERY answer from the whole view, honouring the
# demand; a report for another node is refused; an origin that stops
# reporting ages out and routes change. Centralized: one controller takes
# every report, answers routes (17 -> 18), counts 20s, refuses a bad
# report, and runs I.4b to the point where the absent KM1 fails it (a
# clear error, the reservation released). CTL_STATUS counters are exact.
source "$(dirname "$0")/lib.sh"
FEED="$BIN/ctl_feed"
CTL="$BIN/qkdn-controller"
mkdir -m 0700 -p "$RUN"

# write_line MODE: the line network in MODE (distributed | centralized);
# the KMs' Kx ports are free ones nobody listens on
write_line() {
	cat >"$CFG" <<CNF
[qkdn]
nodes = N1, N2, N3
links = N1_N2, N2_N3
saes = alice, carol
controller = $1
run_dir = $RUN

[N1]
kx = tcp://127.0.0.1:$(free_port)
kx_timeout_ms = 500

[N2]
kx = tcp://127.0.0.1:$(free_port)
kx_timeout_ms = 500

[N3]
kx = tcp://127.0.0.1:$(free_port)
kx_timeout_ms = 500

[N1_N2]
nodes = N1, N2
rate = 1000000

[N2_N3]
nodes = N2, N3
rate = 2000000

[alice]
node = N1

[carol]
node = N3
CNF
}

# Controllers run as children of this shell; each must stop on SIGTERM
# with status 0 (its log is checked for sanitizer reports by teardown).
declare -A PIDS=()
start_ctl() {
	local name=$1
	shift
	"$CTL" --config "$CFG" --run-dir "$RUN" "$@" \
		>>"$RUN/ctl-$name.log" 2>&1 &
	PIDS[$name]=$!
}
stop_ctl() {
	local pid=${PIDS[$1]} rc=0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	unset "PIDS[$1]"
	[ "$rc" = 0 ] || fail "controller $1 exited with status $rc"
}
stop_all() {
	local rc=$? p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	set +e # teardown reads the status of the test from $?
	(exit $rc)
	teardown
}
trap stop_all EXIT

ck() { echo "ipc://$RUN/$1.ck"; }
answers() { "$FEED" "$1" status >/dev/null; }
# feed URL ARGS...: one request that must succeed; its output on stdout
feed() {
	"$FEED" "$@" 2>&1 || fail "ctl_feed $*: $("$FEED" "$@" 2>&1)"
}
# refused URL NAME ARGS...: one request that must get ERROR NAME; the
# reason on stdout
refused() {
	local url=$1 name=$2 out rc=0
	shift 2
	out=$("$FEED" "$url" "$@" 2>&1) || rc=$?
	[ "$rc" = 1 ] && [[ "$out" == "error $name: "* ]] ||
		fail "ctl_feed $*: want error $name, got ($rc) $out"
	echo "${out#error "$name": }"
}
# expect TEXT PATTERN WHAT: TEXT has a line matching PATTERN (grep -E)
expect() {
	grep -qE "$2" <<<"$1" || fail "$3: want /$2/ in: $1"
}
# status_has URL PATTERN
status_has() { "$FEED" "$1" status 2>/dev/null | grep -qE "$2"; }
route_has() { "$FEED" "$1" route "$2" "$3" "$4" 2>/dev/null | grep -qE "$5"; }
counters() { feed "$1" status | head -n 1; }

MiB=1000000
# ---------------------------------------------------------------------
# distributed
write_line distributed
rc=0
"$CTL" --config "$CFG" --run-dir "$RUN" >"$TMP/err" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "distributed: say which node's controller" \
	"$TMP/err" || fail "distributed without --node: ($rc) $(cat "$TMP/err")"

# N3's controller is not up yet: N2 skips it
start_ctl N1 --node N1
start_ctl N2 --node N2
wait_for 10 answers "$(ck N1)" || fail "controller N1 does not answer"
wait_for 10 answers "$(ck N2)" || fail "controller N2 does not answer"
expect "$(feed "$(ck N1)" ls N1 1 60000 N1_N2:N2:1:$MiB)" '^ack [0-9]+$' \
	"N1's report"
feed "$(ck N2)" ls N2 1 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:500000 >/dev/null
# N2's links reach N1 (and N1's reach N2) by flooding
wait_for 5 status_has "$(ck N1)" '^link N2_N3 N2 N3 up 1 aout 500000 ' ||
	fail "N2's report did not reach N1: $(feed "$(ck N1)" status)"
wait_for 5 status_has "$(ck N2)" "^link N1_N2 N1 N2 up 1 aout $MiB bout $MiB" ||
	fail "N1's report did not reach N2: $(feed "$(ck N2)" status)"
wait_for 5 grep -q "controller of node N3 .* did not take link state" \
	"$RUN/ctl-N2.log" || fail "N2 did not report N3's controller as away"

start_ctl N3 --node N3
wait_for 10 answers "$(ck N3)" || fail "controller N3 does not answer"
feed "$(ck N3)" ls N3 1 60000 N2_N3:N2:1:500000 >/dev/null
# the KMs report again (new seq): now N3 hears of N1's links via N2
feed "$(ck N1)" ls N1 2 60000 N1_N2:N2:1:$MiB >/dev/null
feed "$(ck N2)" ls N2 2 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:500000 >/dev/null
wait_for 5 status_has "$(ck N3)" "^link N1_N2 N1 N2 up 1 aout $MiB bout $MiB" ||
	fail "N1's report did not reach N3: $(feed "$(ck N3)" status)"
wait_for 5 status_has "$(ck N1)" "^link N2_N3 N2 N3 up 1 aout 500000 bout 500000 " ||
	fail "N3's report did not reach N1: $(feed "$(ck N1)" status)"
grep -q "controller of node N3 answers again" "$RUN/ctl-N2.log" ||
	fail "N2 did not log N3's controller back"
s=$(feed "$(ck N1)" status)
expect "$s" '^link N1_N2 N1 N2 up 1 aout 1000000 bout 1000000 rate 1000000 age [0-9]+$' \
	"N1's view of N1_N2"
expect "$s" '^link N2_N3 N2 N3 up 1 aout 500000 bout 500000 rate 2000000 age [0-9]+$' \
	"N1's view of N2_N3"

# next hops, from either end, within the demand only
expect "$(feed "$(ck N1)" nexthop N1 N3 1000)" '^next N2 link N1_N2 version [0-9]+$' \
	"next hop N1 -> N3"
expect "$(feed "$(ck N3)" nexthop N3 N1 1000)" '^next N2 link N2_N3 version [0-9]+$' \
	"next hop N3 -> N1"
expect "$(feed "$(ck N1)" nexthop N1 N3 500001)" '^no_route version [0-9]+$' \
	"next hop over a link with too little key"
expect "$(feed "$(ck N3)" route N1 N3 500000)" '^route N1 N2 N3$' "route N1 -> N3"
expect "$(feed "$(ck N3)" route N1 N3 500001)" '^version [0-9]+ routes 0$' \
	"route over a link with too little key"
# a KM reports to its own node's controller only
why=$(refused "$(ck N3)" bad_request ls N1 9 60000 N1_N2:N2:1:$MiB)
[[ "$why" == *"a report from node N1 belongs to its own"* ]] ||
	fail "report for another node: $why"
# reservations need the central controller
why=$(refused "$(ck N1)" unsupported reserve N1 N3 alice carol 1 256)
[[ "$why" == *"runs on the central controller"* ]] || fail "reserve: $why"

# the version: a capacity change above 64 KiB keeps it, a fall below
# moves it by one (N2's own controller answers with its version)
v0=$(feed "$(ck N2)" ls N2 3 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:500000)
v1=$(feed "$(ck N2)" ls N2 4 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:70000)
v2=$(feed "$(ck N2)" ls N2 5 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:1000)
[ "${v1#ack }" = "${v0#ack }" ] || fail "version moved above the mark: $v0 $v1"
[ "${v2#ack }" = $((${v0#ack } + 1)) ] || fail "version below the mark: $v0 $v2"
feed "$(ck N2)" ls N2 6 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:500000 >/dev/null

# N3 sends a last report that lives 1.5 s, then stops: its link state
# ages out everywhere, and N3 -> N1 (which needs N3's own edge) goes
feed "$(ck N3)" ls N3 2 1500 N2_N3:N2:1:500000 >/dev/null
wait_for 5 route_has "$(ck N1)" N3 N1 1000 '^route N3 N2 N1$' ||
	fail "route N3 -> N1 before ageing"
wait_for 10 route_has "$(ck N1)" N3 N1 1000 '^version [0-9]+ routes 0$' ||
	fail "N3's link state did not age out at N1"
wait_for 5 status_has "$(ck N1)" '^link N2_N3 N2 N3 up 1 aout 500000 bout 0 ' ||
	fail "N1's view after ageing: $(feed "$(ck N1)" status)"
expect "$(feed "$(ck N1)" route N1 N3 1000)" '^route N1 N2 N3$' \
	"N1 -> N3 after N3 aged out (N2's edge)"
grep -q "node N3's link state aged out" "$RUN/ctl-N1.log" ||
	fail "N1 did not log the ageing"

# exact counters (updates also count floods, whose number depends on
# timing: at least the reports fed here)
c=$(counters "$(ck N1)")
expect "$c" '^node N1 central 0 version [0-9]+ nexthop 2 relreq 1 relrsp 0 reserve 0 alloc 0 updates [0-9]+$' \
	"N1's counters"
[ "$(awk '{print $NF}' <<<"$c")" -ge 2 ] || fail "N1's updates: $c"
expect "$(counters "$(ck N3)")" '^node N3 central 0 version [0-9]+ nexthop 1 relreq 0 relrsp 0 reserve 0 alloc 0 ' \
	"N3's counters"
for n in N1 N2 N3; do stop_ctl $n; done

# ---------------------------------------------------------------------
# centralized
write_line centralized
C=$(ck central)
rc=0
"$CTL" --config "$CFG" --node N1 --run-dir "$RUN" >"$TMP/err" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "centralized: its one controller takes no --node" \
	"$TMP/err" || fail "centralized with --node: ($rc) $(cat "$TMP/err")"
start_ctl central
wait_for 10 answers "$C" || fail "central controller does not answer"
feed "$C" ls N1 1 60000 N1_N2:N2:1:$MiB >/dev/null
feed "$C" ls N2 1 60000 N1_N2:N1:1:$MiB N2_N3:N3:1:500000 >/dev/null
feed "$C" ls N3 1 60000 N2_N3:N2:1:500000 >/dev/null
# an older report is taken (ACK) but changes nothing
feed "$C" ls N3 1 60000 >/dev/null
why=$(refused "$C" bad_request ls N2 2 60000 N2_N3:N1:1:5)
[[ "$why" == "link N2_N3: b is 'N1', but its other end is N3" ]] ||
	fail "bad report: $why"

r=$(feed "$C" route N1 N3 1000)
expect "$r" '^version [0-9]+ routes 1$' "route count"
expect "$r" '^route N1 N2 N3$' "route N1 -> N3"
# 17 (reserve 0) -> 18: demand count*bits/8 + 64 per hop
r=$(feed "$C" notif N3 N1 10 256)
expect "$r" '^relay_id ok$' "relay id echoed"
expect "$r" '^route N3 N2 N1$' "routes for a relay"
r=$(feed "$C" notif N1 N3 4096 1024) # 524352 bytes > 500000 on N2_N3
expect "$r" '^version [0-9]+ routes 0$' "routes for a relay too big"
expect "$(feed "$C" done 0)" '^ack$' "20 acknowledged"
expect "$(feed "$C" done -5)" '^ack$' "20 acknowledged"
expect "$(feed "$C" nexthop N1 N3 100)" '^next N2 link N1_N2 ' \
	"next hop from the central controller"
refused "$C" bad_request route N1 N1 1 >/dev/null
refused "$C" bad_request route N1 N9 1 >/dev/null

# I.4b with no KM there: KM1's reservation times out, the reservation is
# released and the error names the step and KM
start=$(date +%s%N)
why=$(refused "$C" timeout reserve N1 N3 alice carol 2 256)
ms=$((($(date +%s%N) - start) / 1000000))
[[ "$why" == "reservation "*" released: key reservation at KM N1 (tcp://127.0.0.1:"*"): timeout: "* ]] ||
	fail "reserve without KMs: $why"
[ "$ms" -lt 4000 ] || fail "reserve without KMs took $ms ms"
why=$(refused "$C" bad_request reserve N1 N3 alice bob 2 256)
[[ "$why" == *"not made: destination SAE 'bob' is not in this network" ]] ||
	fail "reserve for an unknown SAE: $why"
why=$(refused "$C" bad_request reserve N1 N3 carol alice 2 256)
[[ "$why" == *"source SAE carol is attached to node N3, not N1" ]] ||
	fail "reserve for SAEs on the wrong nodes: $why"
grep -q "release at KM N1 failed" "$RUN/ctl-central.log" ||
	fail "no release logged"

# I.4b against stand-in KMs at N1's and N2's Kx: 21 to KM1, 18 with the
# reservation to KM2, 23 to KM1, then 24 with the IDs to the operator
start_km() {
	"$FEED" "$(kx_url "$1")" km N1_N2 "${@:2}" >"$TMP/km-$1.out" 2>&1 &
	PIDS[km$1]=$!
	wait_for 5 grep -q listening "$TMP/km-$1.out" ||
		fail "stand-in KM $1: $(cat "$TMP/km-$1.out")"
}
start_km N1
start_km N2
out=$(feed "$C" reserve N1 N3 alice carol 3 256)
id='[0-9a-f-]{36}'
expect "$out" "^alloc 3 $id $id $id\$" "I.4b reply"
resid=$(awk '$1 == "reserve" { print $2 }' "$TMP/km-N1.out")
expect "$(cat "$TMP/km-N1.out")" "^reserve $resid 3 256 N2 10000\$" "21 at KM1"
expect "$(cat "$TMP/km-N2.out")" "^relay $resid N1 N2 N3 ids 3 link N1_N2 segs 1 src alice dst carol bits 256 rid =resid\$" \
	"18 at KM2"
expect "$(cat "$TMP/km-N1.out")" "^alloc $resid alice carol\$" "23 at KM1"
grep -q release "$TMP/km-N1.out" "$TMP/km-N2.out" &&
	fail "a successful reservation was released"
# KM2's relay fails: both KMs are told to release, the error names it
stop_ctl kmN2
start_km N2 -2
why=$(refused "$C" insufficient_key_material reserve N1 N3 alice carol 1 256)
[[ "$why" == *" released: key relay from KM N2: insufficient key material" ]] ||
	fail "reserve with a failing relay: $why"
resid=${why#reservation }
resid=${resid%% *}
grep -q "^release $resid\$" "$TMP/km-N1.out" || fail "KM1 not released"
grep -q "^release $resid\$" "$TMP/km-N2.out" || fail "KM2 not released"
grep -q "^alloc $resid" "$TMP/km-N1.out" && fail "allocated after a failure"
stop_ctl kmN1
stop_ctl kmN2

# ageing: N3's last report lives 1.5 s
feed "$C" ls N3 2 1500 N2_N3:N2:1:500000 >/dev/null
wait_for 10 route_has "$C" N3 N1 1000 '^version [0-9]+ routes 0$' ||
	fail "N3's link state did not age out"
expect "$(feed "$C" route N1 N3 1000)" '^route N1 N2 N3$' \
	"N1 -> N3 after N3 aged out"
s=$(feed "$C" status)
# 6 reports: 3 + an old one + a refused one + N3's last; nexthop 1; 17:
# 2 notif + 5 reserve; 20: 2 on Ck + 2 from KM2; 21: 3 sent (the SAE checks
# come first); 23: 1
expect "$s" '^node central central 1 version [0-9]+ nexthop 1 relreq 7 relrsp 4 reserve 3 alloc 1 updates 6$' \
	"central counters"
expect "$s" '^link N2_N3 N2 N3 up 1 aout 500000 bout 0 rate 2000000 age [0-9]+$' \
	"central view after ageing"
stop_ctl central
echo "ok"
