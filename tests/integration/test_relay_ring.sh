# Key relay on a ring of five hosts with a chord (issue 9): R1 - R2 - R3 -
# R4 - R5 - R1 plus R1 - R3, each node in its own network namespace
# (netns_topo.sh), alice at R1, dave at R4. Routes from R1 to R4:
# R1-R5-R4, R1-R2-R3-R4 and R1-R3-R4 (the chord).
#
# Each link's key rate differs (R4-R5 16, R1-R5 4, R1-R2, R2-R3 and R3-R4
# 2, the chord R1-R3 1 Mbit/s); once R1-R2 holds 200 kB for R1, the
# emulator's delivery on every link is paused (`qkdn link pause`), so the
# pools stand still and the controllers' choice is deterministic: R1-R5-R4
# (about 400 kB a direction) before R1-R2-R3-R4 (200 kB) before R1-R3-R4
# (the chord: 100 kB). R4-R5 holds by far the most, so that drawing R1-R5
# down never makes R5's own widest route to R4 turn back through R1
# (distributed routing is hop by hop: each controller routes from its
# node, and a next hop already on the route fails the relay as a loop).
#
# For each controller mode (distributed, then centralized):
#  1. `qkdn route --from R1 --to R4` names R1-R5-R4, and key requests are
#     relayed over it (R5 forwards them);
#  2. R1-R5 (its delivery paused) is drawn down by relays until R1's pool
#     of it is below the 64 KiB low-water mark (or the relays leave it
#     first): the route changes to R1-R2-R3-R4 and later requests go over
#     R2 and R3, not R5; its delivery resumed until the route comes back;
#  3. R1-R5 is cut (both veth ends down) mid-run: a request right after
#     fails cleanly (or completes); the route changes to R1-R2-R3-R4 and
#     later requests succeed over it (R2 and R3 forward them, R5 nothing
#     more); mended, the route comes back;
#  4. every key alice got, dave fetches once, equal;
#  5. with both links of R4 cut (every route), `qkdn route` and alice's key
#     request fail with no_route naming R4.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns_topo.sh"

[ -x "$BIN/qkdn-controller" ] || fail "$BIN/qkdn-controller is not built"

NODES=(R1 R2 R3 R4 R5)
LINKS="R1-R2 R2-R3 R3-R4 R4-R5 R1-R5 R1-R3"
topo_up "${NODES[*]}" "$LINKS"
KiB=1024
TOPO_RATE=([R4-R5]=16000000 [R1-R5]=4000000 [R1-R2]=2000000
	[R2-R3]=2000000 [R3-R4]=2000000 [R1-R3]=1000000)
VIA_R5='["R1","R5","R4"]'
VIA_R2='["R1","R2","R3","R4"]'

# route_is JSON: `qkdn route` from R1 to R4 answers JSON as its first route
route_is() {
	[ "$("$QKDN" route --from R1 --to R4 --config "$CFG" --json |
		jq -c '.routes[0]')" = "$1" ]
}
route_now() { "$QKDN" route --from R1 --to R4 --config "$CFG" --json 2>&1; }
fwd() { km_relay "$1" | jq .forwarded; }
# out_of NODE LINK: key NODE's KM holds for keys it starts on LINK
out_of() {
	"$QKDN" status --km "$(topo_km "$1")" --json |
		jq --arg l "$2" '.links[] | select(.link == $l) | .out'
}

has_out() { [ "$(out_of "$1" "$2")" -ge "$3" ]; }

# keys N [WHAT]: one key request of N keys, alice -> dave; must succeed
keys() {
	"$QKDN" key get --km "$(topo_km R1)" --sae alice --to dave --count "$1" \
		>>"$TMP/$RUN_NAME.alice" 2>"$TMP/err" ||
		fail "$RUN_NAME: ${2:-key request}: $(cat "$TMP/err"); route now $(route_now)"
}

# fwd_snap NODES...: remember the forwarded counters of NODES
declare -A BEFORE=()
fwd_snap() {
	local k
	for k in "$@"; do BEFORE[$k]=$(fwd "$k"); done
}
# fwd_moved YES NO N: since fwd_snap, the KMs in YES (space separated)
# forwarded exactly N more relays, those in NO none; else 1, why in WHY
fwd_moved() {
	local k
	WHY=""
	for k in $1; do
		[ "$(fwd "$k")" = $((BEFORE[$k] + $3)) ] ||
			WHY+="$k forwarded $(($(fwd "$k") - BEFORE[$k])), not $3; "
	done
	for k in $2; do
		[ "$(fwd "$k")" = "${BEFORE[$k]}" ] ||
			WHY+="$k forwarded $(($(fwd "$k") - BEFORE[$k])), not 0; "
	done
	[ -z "$WHY" ]
}
# via YES NO N CMD...: run CMD; then fwd_moved YES NO N, or fail
via() {
	local yes=$1 no=$2 n=$3
	shift 3
	fwd_snap $yes $no
	"$@"
	fwd_moved "$yes" "$no" "$n" ||
		fail "$RUN_NAME: $*: $WHY; route now $(route_now)"
}
# settle YES NO WHAT: a request of 10 keys succeeds and is relayed through
# YES, not NO, within 10 s: the KMs follow a new topology version within
# a link-state report (250 ms), a request racing it may fail or go the
# old way; its keys, if any, are kept for dave
settle() {
	local deadline=$(($(date +%s) + 15))
	while [ "$(date +%s)" -lt $deadline ]; do
		fwd_snap $1 $2
		"$QKDN" key get --km "$(topo_km R1)" --sae alice --to dave \
			--count 10 --timeout 3000 >>"$TMP/$RUN_NAME.alice" \
			2>"$TMP/err" && fwd_moved "$1" "$2" 1 && return 0
		sleep 0.25
	done
	fail "$RUN_NAME: $3: relays never went through $1 within 15 s: $(cat "$TMP/err") $WHY; route now $(route_now)"
}
three() { keys 100 "$1" && keys 100 "$1" && keys 100 "$1"; }

one_run() {
	RUN_NAME=$1
	local mode=$1 i n out rc l
	RUN="$TMP/run-$mode"
	CFG="$TMP/$mode.cnf"
	: >"$TMP/$mode.alice"
	topo_net_file "$CFG" "$mode" "alice:R1 dave:R4"
	topo_net_start "$CFG"
	wait_for 20 has_out R1 R1_R2 200000 ||
		fail "$mode: R1_R2 never held 200 kB at R1"
	for l in $LINKS; do
		"$QKDN" link pause "${l/-/_}" --config "$CFG" >/dev/null ||
			fail "$mode: could not pause ${l/-/_}"
	done

	# 1. the widest route
	wait_for 20 route_is "$VIA_R5" ||
		fail "$mode: the route never became R1-R5-R4: $(route_now)"
	via "R5" "R2 R3" 3 three "before the cut"
	echo "ok: $mode: route $(route_now)"

	# 2. starve R1-R5 (its delivery paused): keys drawn over it until
	# its pool at R1 is below the 64 KiB low-water mark (where a new
	# topology version makes every KM drop its cached route), or until
	# the relays leave it already (another version came first)
	for i in $(seq 1 30); do
		out=$(out_of R1 R1_R5)
		[ "$out" -ge $((64 * KiB)) ] || break
		n=$(((out - 40000) / 32))
		[ $n -le 4096 ] || n=4096
		[ $n -ge 1 ] || n=1
		fwd_snap R5
		keys $n "drawing R1_R5 down ($out bytes left)"
		fwd_moved R5 "" 1 || break
	done
	[ "$(out_of R1 R1_R5)" -lt $((64 * KiB)) ] || ! fwd_moved R5 "" 1 ||
		fail "$mode: R1_R5 still holds $(out_of R1 R1_R5) bytes at R1"
	wait_for 20 route_is "$VIA_R2" ||
		fail "$mode: the route did not leave R1_R5 ($(out_of R1 R1_R5) bytes): $(route_now)"
	settle "R2 R3" "R5" "with R1_R5 paused"
	via "R2 R3" "R5" 3 three "with R1_R5 paused"
	echo "ok: $mode: R1_R5 paused at $(out_of R1 R1_R5) bytes: route $(route_now)"
	"$QKDN" link resume R1_R5 --config "$CFG" >/dev/null ||
		fail "$mode: could not resume R1_R5"
	wait_for 20 route_is "$VIA_R5" ||
		fail "$mode: the route did not come back once R1_R5 refilled: $(route_now)"
	"$QKDN" link pause R1_R5 --config "$CFG" >/dev/null ||
		fail "$mode: could not pause R1_R5 again"
	settle "R5" "R2 R3" "R1_R5 refilled"
	echo "ok: $mode: R1_R5 refilled: route $(route_now)"

	# 3. cut R1-R5 mid-run: a request right after may fail (cleanly)
	topo_cut R1 R5
	rc=0
	"$QKDN" key get --km "$(topo_km R1)" --sae alice --to dave --count 10 \
		>>"$TMP/$mode.alice" 2>"$TMP/err" || rc=$?
	[ $rc = 0 ] || [ $rc = 1 ] ||
		fail "$mode: request across the cut exited $rc: $(cat "$TMP/err")"
	echo "ok: $mode: request right after the cut: exit $rc $(cat "$TMP/err")"
	wait_for 20 route_is "$VIA_R2" ||
		fail "$mode: the route did not move to R1-R2-R3-R4 after the cut: $(route_now)"
	settle "R2 R3" "R5" "after the cut"
	via "R2 R3" "R5" 3 three "after the cut"
	echo "ok: $mode: R1-R5 cut: route $(route_now)"

	topo_mend R1 R5
	wait_for 20 route_is "$VIA_R5" ||
		fail "$mode: the route did not come back after the mend: $(route_now)"
	settle "R5" "R2 R3" "after the mend"
	echo "ok: $mode: R1-R5 mended: route $(route_now)"

	# 4. dave gets every key alice got, once
	n=$(wc -l <"$TMP/$mode.alice")
	"$QKDN" key get --km "$(topo_km R4)" --sae dave \
		--ids-from "$TMP/$mode.alice" >"$TMP/$mode.dave" 2>"$TMP/err" ||
		fail "$mode: dave's fetch: $(cat "$TMP/err")"
	cmp -s "$TMP/$mode.alice" "$TMP/$mode.dave" ||
		fail "$mode: dave's keys differ from alice's"
	"$QKDN" key get --km "$(topo_km R4)" --sae dave \
		--id "$(head -n 1 "$TMP/$mode.alice" | cut -d' ' -f1)" \
		>/dev/null 2>&1 && fail "$mode: a key was fetched twice"
	relay_ok R1 ".in_flight == 0 and .rejected == 0"
	for n in R2 R3 R4 R5; do relay_ok "$n" ".rejected == 0"; done
	echo "ok: $mode: dave fetched all $(wc -l <"$TMP/$mode.alice") keys, equal; R1 $(km_relay R1)"

	# 5. R4 cut off: no route, naming the destination
	topo_cut R3 R4
	topo_cut R4 R5
	wait_for 20 no_route_now ||
		fail "$mode: still a route to R4 with both its links cut: $(route_now)"
	# (the KM's cache follows within a link-state report)
	local deadline=$(($(date +%s) + 15))
	while :; do
		"$QKDN" key get --km "$(topo_km R1)" --sae alice --to dave \
			--timeout 3000 --json >"$TMP/nr.json" 2>/dev/null &&
			fail "$mode: alice got a key with R4 cut off: $(cat "$TMP/nr.json")"
		[ "$(jq -r .error.name "$TMP/nr.json")" != no_route ] || break
		[ "$(date +%s)" -lt $deadline ] ||
			fail "$mode: key request with R4 cut off: $(cat "$TMP/nr.json")"
		sleep 0.25
	done
	grep -q R4 <<<"$(jq -r .error.reason "$TMP/nr.json")" ||
		fail "$mode: no_route does not name R4: $(cat "$TMP/nr.json")"
	echo "ok: $mode: every route cut: $(jq -r .error.reason "$TMP/nr.json")"
	topo_mend R3 R4
	topo_mend R4 R5
	topo_net_stop
}
no_route_now() {
	local out
	out=$("$QKDN" route --from R1 --to R4 --config "$CFG" --json 2>/dev/null) &&
		return 1
	[ "$(jq -r .error.name <<<"$out")" = no_route ] &&
		jq -r .error.reason <<<"$out" | grep -q R4
}
relay_ok() {
	local r
	r=$(km_relay "$1") || fail "no status from KM $1"
	jq -e "$2" <<<"$r" >/dev/null || fail "$RUN_NAME: KM $1 relay counters: want $2, have $r"
}

for m in ${RING_MODES:-distributed centralized}; do
	one_run "$m"
done
echo "ok: ring-5: routes follow a cut link and a starved pool, keys" \
	"always match, no_route names R4 (${RING_MODES:-distributed centralized})"
