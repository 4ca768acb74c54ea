# The CLI's side of key relay, shown without the KMs' relay engine:
# `qkdn net up` of examples/line-4.cnf (N1 - N2 - N3 - N4) starts one
# controller per node (distributed) or one central controller, before the
# KMs; `qkdn status --ctl` / `--controller` shows each controller's view of
# the three links, up, once the KMs report them; `qkdn route` prints
# N1 -> N2 -> N3 -> N4; a KM's status carries the relay counters; `qkdn net
# down` stops everything. Needs build/bin/qkdn-controller.
#   QKDN_BIN=build QKDN_SRC=. bash tests/integration/test_cli_relay.sh
source "${QKDN_SRC:?}/tests/integration/lib.sh"

# A missing controller fails rather than skips: a skipped test would hide a
# build that lost the program.
[ -x "$BIN/qkdn-controller" ] ||
	fail "$BIN/qkdn-controller is not built: net up cannot start the controllers"

# expect STATUS CMD...: run CMD, which must exit with STATUS
expect() {
	local want=$1 rc=0
	shift
	"$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	[ "$rc" = "$want" ] ||
		fail "'$*' exited $rc, not $want: $(cat "$TMP/err") $(cat "$TMP/out")"
}

NODES="N1 N2 N3 N4"

# line_net MODE: examples/line-4.cnf with free Kx ports, this test's run
# dir and controller = MODE
line_net() {
	local n
	sed -e "/^\[qkdn\]\$/a run_dir = $RUN" \
		-e "s/^controller = distributed\$/controller = $1/" \
		"$QKDN_SRC/examples/line-4.cnf" >"$CFG"
	for n in 1 2 3 4; do
		sed -i "s#^kx = tcp://127.0.0.1:1730$n\$#kx = tcp://127.0.0.1:$(free_port)#" "$CFG"
	done
	grep -q "^controller = $1$" "$CFG" || fail "no controller = $1 in $CFG"
	! grep -q ':1730[1-4]$' "$CFG" || fail "ports not replaced: $(cat "$CFG")"
}

# links_up ARGS...: how many links the controller named by ARGS (--ctl
# ADDR, or --config ... --controller [NODE]) reports up
links_up() {
	"$QKDN" status "$@" --json |
		jq '[.links[] | select(.up) | .link] | unique | length'
}
three_up() { [ "$(links_up "$@")" = 3 ]; }

# check_route ARGS...: route from N1 to N4, asked as ARGS say, is the line
check_route() {
	expect 0 "$QKDN" route --from N1 --to N4 "$@"
	head -n1 "$TMP/out" |
		grep -qE '^N1 -> N2 -> N3 -> N4( \(bottleneck [0-9]+ bytes\))?$' ||
		fail "route $*: $(cat "$TMP/out")"
	expect 0 "$QKDN" route --from N1 --to N4 "$@" --json
	[ "$(jq -c '.routes[0]' "$TMP/out")" = '["N1","N2","N3","N4"]' ] ||
		fail "route $* --json: $(cat "$TMP/out")"
	jq -e '.version | type == "number"' "$TMP/out" >/dev/null ||
		fail "route $* --json: no version: $(cat "$TMP/out")"
	# no link holds 4 GiB of key: no route, named
	expect 1 "$QKDN" route --from N1 --to N4 --bytes 4294967295 "$@" --json
	[ "$(jq -r .error.name "$TMP/out")" = no_route ] ||
		fail "route $* --bytes 4294967295: $(cat "$TMP/out")"
	grep -q "^qkdn: no_route: " "$TMP/err" || fail "no_route: $(cat "$TMP/err")"
}

# net_down WANT: net down stops WANT daemons and leaves no pid file
net_down() {
	expect 0 "$QKDN" net down --run-dir "$RUN" --json
	[ "$(jq '.stopped | length' "$TMP/out")" = "$1" ] ||
		fail "net down: $(cat "$TMP/out")"
	! ls "$RUN"/*.pid >/dev/null 2>&1 || fail "pid files left: $(ls "$RUN")"
}

RELAY_KEYS='["allocations","completed","delivered","done_notifs","failed","forwarded","in_flight","keys_relayed","next_hop_reqs","rejected","relay_req_notifs","relay_req_rsps","reservations","started"]'

# ---- distributed: a controller per node ----
line_net distributed
launching "$QKDN" net up "$CFG" --run-dir "$RUN" --json >"$TMP/up.json" \
	2>"$TMP/up.err" || fail "net up: $(cat "$TMP/up.err")"
[ "$(jq -c '[.controllers[].name]' "$TMP/up.json")" = \
	'["ctl-N1","ctl-N2","ctl-N3","ctl-N4"]' ] ||
	fail "net up controllers: $(cat "$TMP/up.json")"
[ "$(jq -r .controller "$TMP/up.json")" = distributed ] ||
	fail "net up mode: $(cat "$TMP/up.json")"
[ "$(jq -r '.controllers[1].ck' "$TMP/up.json")" = "ipc://$RUN/N2.ck" ] ||
	fail "net up ck: $(cat "$TMP/up.json")"
[ "$(jq '.nodes | length' "$TMP/up.json")" = 4 ] ||
	fail "net up nodes: $(cat "$TMP/up.json")"
for d in qkdsim ctl-N1 ctl-N2 ctl-N3 ctl-N4 km-N1 km-N2 km-N3 km-N4; do
	kill -0 "$(cat "$RUN/$d.pid")" || fail "$d not running"
done
# each controller runs for its node: --node in its command line
tr '\0' '\n' <"/proc/$(cat "$RUN/ctl-N3.pid")/cmdline" | grep -qx N3 ||
	fail "ctl-N3 was not started with --node N3"

# every controller learns all three links (its own KM's, the rest
# flooded), up once the KMs reach their peers
for n in $NODES; do
	wait_for 15 three_up --ctl "ipc://$RUN/$n.ck" ||
		fail "controller of $n: $("$QKDN" status --ctl "ipc://$RUN/$n.ck" --json)"
done
expect 0 "$QKDN" status --config "$CFG" --run-dir "$RUN" --controller N2
grep -q "^controller: N2 (distributed)$" "$TMP/out" ||
	fail "status --controller N2: $(cat "$TMP/out")"
grep -qE "^N2_N3 +N[23] +N[23] +yes " "$TMP/out" ||
	fail "status --controller N2 links: $(cat "$TMP/out")"
expect 0 "$QKDN" status --ctl "ipc://$RUN/N4.ck" --json
[ "$(jq -r '.node + " " + .mode' "$TMP/out")" = "N4 distributed" ] ||
	fail "status --ctl N4: $(cat "$TMP/out")"
jq -e '.links[0] | has("a") and has("b") and has("up") and has("a_out")
	and has("b_out") and has("age_ms")' "$TMP/out" >/dev/null ||
	fail "status --ctl link fields: $(cat "$TMP/out")"
# distributed: a controller is one node's
expect 2 "$QKDN" status --config "$CFG" --run-dir "$RUN" --controller
grep -q "give --controller NODE" "$TMP/err" || fail "$(cat "$TMP/err")"

check_route --config "$CFG" --run-dir "$RUN"
check_route --ctl "ipc://$RUN/N1.ck"

# a KM's relay counters: the wire's names, all 14 (zero: nothing relayed)
expect 0 "$QKDN" status --km "ipc://$RUN/N2.ak" --json
[ "$(jq -c '.relay | keys' "$TMP/out")" = "$RELAY_KEYS" ] ||
	fail "status relay: $(cat "$TMP/out")"
expect 0 "$QKDN" status --km "ipc://$RUN/N2.ak"
grep -q "^relays: started [0-9]*, completed" "$TMP/out" ||
	fail "status relay text: $(cat "$TMP/out")"

# usage errors: no daemon asked
expect 2 "$QKDN" route --to N4 --config "$CFG" --run-dir "$RUN"
expect 2 "$QKDN" route --from N1 --to N9 --config "$CFG" --run-dir "$RUN"
expect 2 "$QKDN" status --km "ipc://$RUN/N1.ak" --ctl "ipc://$RUN/N1.ck"
expect 2 "$QKDN" relay reserve --config "$CFG" --run-dir "$RUN" --from N1 \
	--to N4 --sae alice --dst-sae dave
grep -q "central controller" "$TMP/err" || fail "reserve: $(cat "$TMP/err")"

net_down 9

# ---- centralized: one controller ----
line_net centralized
launching "$QKDN" net up "$CFG" --run-dir "$RUN" >"$TMP/up.out" \
	2>"$TMP/up.err" || fail "net up: $(cat "$TMP/up.err")"
grep -qx "ctl-central ck=ipc://$RUN/central.ck" "$TMP/up.out" ||
	fail "net up (centralized): $(cat "$TMP/up.out")"
! ls "$RUN"/ctl-N*.pid >/dev/null 2>&1 || fail "per-node controllers started"
kill -0 "$(cat "$RUN/ctl-central.pid")" || fail "ctl-central not running"
wait_for 15 three_up --config "$CFG" --run-dir "$RUN" --controller ||
	fail "central controller: $("$QKDN" status --ctl "ipc://$RUN/central.ck" --json)"
expect 0 "$QKDN" status --ctl "ipc://$RUN/central.ck" --json
[ "$(jq -r .mode "$TMP/out")" = centralized ] ||
	fail "status --ctl central: $(cat "$TMP/out")"
check_route --config "$CFG" --run-dir "$RUN"
net_down 6

echo "ok: qkdn CLI relay"
