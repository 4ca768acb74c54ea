# Southbound ETSI GS QKD 014 (docs/etsi014.md): link A_B takes its key from
# a KME (the stand-in kme_standin.py, mutual TLS, both ends of one QKD link)
# instead of the emulator. Asserts:
#  1. the emulator leaves the link alone; both KMs fill their pools from
#     the KME (A, the master, with enc_keys; B with dec_keys), and every key
#     the KME handed out by enc_keys was taken by dec_keys, once;
#  2. applications get keys as with the emulator, both ways (key get at
#     one end, fetch by ID at the other: equal), and both pools stay in
#     sync (no key sync failed authentication);
#  3. the KME stopped: both ends show the link down (status up = false,
#     status's link `down` (JSON and text) names the KME's URL, each KM's
#     log names the KME and the cause), and so does each KM's link-state
#     report: a controller fed by A alone, then one fed by B alone, sees
#     A_B down; once A's pool is drained a key request fails with exit
#     status 1, insufficient_key_material, and a reason naming the link
#     down and its KME;
#  4. the KME back: the link comes up again (`down` null at both ends, B's
#     controller sees it up) and keys flow;
#  5. qkdn net status gives up on a gateway address whose listener never
#     accepts (its backlog full, so SYNs go unanswered) within about its
#     500 ms deadline, as not answering, instead of hanging in connect.
source "$(dirname "$0")/lib.sh"

PKI="$TMP/kme-pki"
"$BIN/qkdn-etsi014-certs" "$PKI" gw kme 127.0.0.1 sae kme-a kme-b \
	>/dev/null || fail "no test PKI"
KPORT=$(free_port)
KME_PID=""
start_kme() {
	python3 "$QKDN_SRC/tests/integration/kme_standin.py" --port "$KPORT" \
		--cert "$PKI/kme.pem" --key "$PKI/kme.key" --ca "$PKI/ca.pem" \
		--master kme-a --slave kme-b --max-per-request 16 \
		>>"$TMP/kme.out" 2>&1 &
	KME_PID=$!
	wait_for 10 grep -q ready "$TMP/kme.out" || fail "stand-in KME did not start"
}
stop_kme() {
	[ -z "$KME_PID" ] || { kill "$KME_PID" 2>/dev/null; wait "$KME_PID" 2>/dev/null || true; }
	KME_PID=""
}
# a controller per node, started by hand (net up runs none for two
# nodes); only one at a time, so that its view is one KM's report alone
CTL_PID=""
start_ctl() {
	"$BIN/qkdn-controller" --config "$CFG" --run-dir "$RUN" --node "$1" \
		>>"$RUN/ctl-$1.log" 2>&1 &
	CTL_PID=$!
}
stop_ctl() {
	[ -z "$CTL_PID" ] || { kill "$CTL_PID" 2>/dev/null; wait "$CTL_PID" 2>/dev/null || true; }
	CTL_PID=""
}
# ctl_up NODE: whether NODE's controller sees A_B up ("" before a report)
ctl_up() {
	"$QKDN" status --ctl "ipc://$RUN/$1.ck" --json 2>/dev/null |
		jq -r '.links[] | select(.link == "A_B") | .up'
}
WEDGE_PID=""
trap 'rc=$?; set +e; stop_kme; stop_ctl; [ -z "$WEDGE_PID" ] || kill "$WEDGE_PID"; (exit $rc); teardown' EXIT

# 1088 bytes of material per 1024-byte block: 34 keys of 256 bits, taken
# in requests of at most 16; a pool of 16 blocks
write_net 8000000 "" 600 "block_bytes = 1024
pool_max_bytes = 16384
kme = https://127.0.0.1:$KPORT
kme_ca = $PKI/ca.pem
kme_master_sae = kme-a
kme_master_cert = $PKI/kme-a.pem
kme_master_key = $PKI/kme-a.key
kme_slave_sae = kme-b
kme_slave_cert = $PKI/kme-b.pem
kme_slave_key = $PKI/kme-b.key"
start_kme
net_up
start_ctl A

# 1. the pools fill from the KME, up to the pool's 16 blocks
blocks() { status "$1" | jq '.links[0].blocks'; }
full() { [ "$(blocks A)" = 16 ] && [ "$(blocks B)" = 16 ]; }
wait_for 20 full || fail "pools never filled from the KME: A $(blocks A), B $(blocks B)"
grep -q "link A_B: fed by its KME https://127.0.0.1:$KPORT, not emulated" \
	"$RUN/qkdsim.log" || fail "the emulator did not leave A_B alone"
grep -q "fed by KME https://127.0.0.1:$KPORT as SAE kme-a (master" \
	"$RUN/km-A.log" || fail "KM A is not the master end"
grep -q "as SAE kme-b (slave" "$RUN/km-B.log" || fail "KM B is not the slave end"
# every key enc_keys handed out was taken by dec_keys: none lost, none twice
sum() { awk -v w="$1" '$1 == w { s += $2 } END { print s + 0 }' "$TMP/kme.out"; }
settled() { [ "$(sum enc)" = "$(sum dec)" ]; }
wait_for 5 settled || fail "enc_keys $(sum enc) keys, dec_keys $(sum dec)"
[ $(($(sum enc) % 34)) = 0 ] && [ "$(sum enc)" -ge $((16 * 34)) ] ||
	fail "enc_keys gave $(sum enc) keys: not whole blocks of 34"
! grep -q "^refused" "$TMP/kme.out" || fail "the KME refused: $(grep refused "$TMP/kme.out")"

# 2. keys as with the emulator, both ways, equal at both ends
for dir in "A alice B bob" "B bob A alice"; do
	read -r src ssae dst dsae <<<"$dir"
	"$QKDN" key get --km "ipc://$RUN/$src.ak" --sae "$ssae" --to "$dsae" \
		--count 3 >"$TMP/k.$src" || fail "no key at $src"
	while read -r id key; do
		got=$("$QKDN" key get --km "ipc://$RUN/$dst.ak" --sae "$dsae" --id "$id") ||
			fail "$dsae could not fetch $id"
		[ "$got" = "$id $key" ] || fail "keys differ for $id"
	done <"$TMP/k.$src"
done
for n in A B; do
	[ "$(status "$n" | jq '.links[0].in_sync')" = true ] || fail "$n out of sync: $(status "$n")"
	[ "$(status "$n" | jq '.links[0].sync_failures')" = 0 ] || fail "$n: sync failures"
	[ "$(status "$n" | jq '.links[0].up')" = true ] || fail "$n: link not up"
	[ "$(status "$n" | jq '.links[0].down')" = null ] || fail "$n: down while up: $(status "$n")"
done
ctl_is() { [ "$(ctl_up "$1")" = "$2" ]; }
wait_for 5 ctl_is A true || fail "A's controller does not see A_B up: $(ctl_up A)"

# 3. the KME stops: the link is down at both ends, with the reason
stop_kme
down() { [ "$(status "$1" | jq '.links[0].up')" = false ]; }
wait_for 10 down A || fail "A never showed the link down"
wait_for 10 down B || fail "B never showed the link down"
for n in A B; do
	grep -q "link A_B down: KME https://127.0.0.1:$KPORT: status: .*onnect" \
		"$RUN/km-$n.log" || fail "KM $n's log does not name the KME and the cause"
	status "$n" | jq -r '.links[0].down' | grep -q "KME https://127.0.0.1:$KPORT" ||
		fail "$n's status does not give the reason: $(status "$n")"
	"$QKDN" status --km "ipc://$RUN/$n.ak" |
		grep -q "^link A_B down: KME https://127.0.0.1:$KPORT" ||
		fail "$n's status text lacks the reason: $("$QKDN" status --km "ipc://$RUN/$n.ak")"
done
# the controllers see it too (Kx is up: only the KME test says down)
wait_for 5 ctl_is A false || fail "A's controller sees A_B $(ctl_up A) with the KME down"
stop_ctl
start_ctl B
wait_for 5 ctl_is B false || fail "B's controller sees A_B $(ctl_up B) with the KME down"
# drain A's direction: 1088 bytes a request; at most 8 KiB are left
rc=0
for _ in $(seq 1 12); do
	"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --bits 8192 --json \
		>"$TMP/d.json" 2>"$TMP/d.err" || { rc=$?; break; }
done
[ "$rc" = 1 ] || fail "a key request on a drained link with its KME down: exit $rc"
[ "$(jq -r .error.name "$TMP/d.json")" = insufficient_key_material ] ||
	fail "wrong refusal: $(cat "$TMP/d.json")"
jq -r .error.reason "$TMP/d.json" | grep -q \
	"link A_B holds [0-9]* bytes for this direction; link down: KME https://127.0.0.1:$KPORT" ||
	fail "the refusal does not name the link down: $(cat "$TMP/d.json")"

# 4. the KME back: the link comes up, keys flow again
start_kme
up() { [ "$(status "$1" | jq '.links[0].up')" = true ]; }
wait_for 10 up A || fail "A never came up again"
wait_for 10 up B || fail "B never came up again"
for n in A B; do
	[ "$(status "$n" | jq '.links[0].down')" = null ] ||
		fail "$n still shows a down reason: $(status "$n")"
done
wait_for 5 ctl_is B true || fail "B's controller does not see A_B up again: $(ctl_up B)"
wait_for 10 has_out_bytes A 1200 || fail "A's pool did not refill"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --bits 8192 >"$TMP/k2" ||
	fail "no key after the KME came back"
id=$(cut -d' ' -f1 "$TMP/k2")
[ "$("$QKDN" key get --km "$(AK_B)" --sae bob --id "$id")" = "$(cat "$TMP/k2")" ] ||
	fail "keys differ after the KME came back"
grep -q "link A_B: its KME answers again" "$RUN/km-A.log" || fail "A did not log the KME back"

# 5. net status and a gateway address that never accepts: a listener with
# its backlog filled, so that a blocking connect would wait for minutes
python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(0)
fill = [socket.socket() for _ in range(4)]
for c in fill:
    c.setblocking(False); c.connect_ex(l.getsockname())
time.sleep(0.3)
print(l.getsockname()[1], flush=True)
time.sleep(60)' >"$TMP/wedge.port" &
WEDGE_PID=$!
wedged() { [ -s "$TMP/wedge.port" ]; }
wait_for 5 wedged || fail "no wedged listener"
mkdir -m 0700 "$TMP/gwrun"
sed "/^\[A\]/a etsi014 = https://127.0.0.1:$(cat "$TMP/wedge.port")" "$CFG" >"$TMP/gw.cnf"
t0=$(date +%s%N)
timeout 10 "$QKDN" net status "$TMP/gw.cnf" --run-dir "$TMP/gwrun" --json >"$TMP/gw.json" ||
	fail "net status with a wedged gateway: exit $?"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 2000 ] || fail "net status took $ms ms on a gateway that never accepts"
[ "$(jq '.nodes[0].etsi014.answering' "$TMP/gw.json")" = false ] ||
	fail "a wedged gateway shown answering: $(cat "$TMP/gw.json")"
echo "ok: a KME fed both KMs; keys matched; the KME's stop showed and refused clearly"
