# Misbehaving raw clients cannot stop a listener (nanomsg/nng#1518: with
# nng 1.5.2's own ipc listener, one connect and close before the SP
# header exchange ended stopped the KM's Ak for good; ipc:// is now served
# by daemon/front.c):
#  1. a real KM's ipc:// Ak: a connect and close (also 50 in a row), a
#     partial SP header, a garbage header, a bad frame type, and four
#     stalled connections held meanwhile: after each, a status and a key
#     request succeed within 2 s; each refusal is logged with the peer's
#     uid and pid, rate-limited; stalled headers time out after 5 s;
#  2. the same against the peer KM's tcp:// Kx with raw TCP connects
#     (also resets and an oversized frame), each followed by a status
#     over a new Kx connection and a key request across the link;
#  3. the Ak socket is 0600; a KM killed leaves a stale socket file that
#     the next start removes; a second listener on a live socket fails
#     with "address in use" and the first one keeps serving.
source "$(dirname "$0")/lib.sh"
WEDGE="$BIN/wedge_probe"
PROBE="$BIN/listener_probe"
ECHO="$BIN/srv_echo"

write_net 8000000
net_up
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"
AK=$(AK_A)
KX_B=$(kx_url B)
LOG_A="$RUN/km-A.log"
ME=$(id -u)

# served WHAT: KM A answers a status and a key request (alice to bob,
# across the link to B), and B the fetch by ID, each within 2 s
served() {
	local id
	wedge call "$AK"
	timeout 2 "$QKDN" status --km "$AK" >/dev/null ||
		fail "$1: no status from KM A within 2 s"
	id=$(timeout 2 "$QKDN" key get --km "$AK" --sae alice --to bob |
		awk '{ print $1 }') || fail "$1: no key from KM A within 2 s"
	[ -n "$id" ] || fail "$1: no key ID from KM A"
	timeout 2 "$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" >/dev/null ||
		fail "$1: KM B did not supply key $id within 2 s"
}

# wedge MODE URL [ARG]: the raw client must report ok
wedge() {
	local out
	out=$("$WEDGE" "$@") || fail "wedge_probe $*: $out"
}

# logged FILE PATTERN: FILE has a line matching PATTERN (within 3 s)
logged() {
	wait_for 3 grep -qE "$2" "$1" || fail "no log line /$2/ in $1"
}

# --- 1. the Ak (ipc://)
[ "$(stat -c %a "$RUN/A.ak")" = 600 ] ||
	fail "A.ak has mode $(stat -c %a "$RUN/A.ak"), not 600"
served "before any abuse"
REF="refused a Ak connection from ipc peer uid $ME pid [0-9]+"
wedge close "$AK"
served "ipc connect and close"
logged "$LOG_A" "$REF: closed during the SP header exchange"
wedge partial "$AK"
served "ipc partial SP header"
wedge garbage "$AK"
served "ipc garbage header"
logged "$LOG_A" "$REF: not an SP REQ peer"
wedge badframe "$AK"
served "ipc bad frame type"
logged "$LOG_A" "$REF: a frame of type 2 \(not 1\)"
sleep 1.1 # a fresh second of the refusal lines' rate limit
before=$(grep -c "closed during the SP header exchange" "$LOG_A")
wedge close "$AK" 50
served "50 ipc connects and closes"
after=$(grep -c "closed during the SP header exchange" "$LOG_A")
# the limiter's seconds are the monotonic clock's, not aligned with any
# moment the test can see: a burst of a few milliseconds may still cross
# into its next second, so at most two seconds' worth (10 each)
[ $((after - before)) -ge 1 ] && [ $((after - before)) -le 20 ] ||
	fail "50 refusals logged $((after - before)) lines (rate limit: 10/s)"
"$WEDGE" stall "$AK" 6000 >"$TMP/stall.out" &
stall=$!
sleep 0.5
served "4 stalled ipc connections"
served "4 stalled ipc connections, again"
wait "$stall" || fail "ipc stall: $(cat "$TMP/stall.out")"
logged "$LOG_A" "$REF: handshake timed out \(no SP header\)"
served "after the stalled ipc connections"
echo "ok: KM A's ipc:// Ak kept serving through raw closes, garbage and stalls"

# --- 2. KM B's Kx (tcp://)
kx_served() {
	wedge call "$KX_B" ||
		fail "$1: KM B's Kx did not answer a new connection within 2 s"
	served "$1"
}
for mode in close rst partial garbage badframe; do
	wedge "$mode" "$KX_B"
	kx_served "tcp $mode"
done
wedge close "$KX_B" 50
kx_served "50 tcp connects and closes"
"$WEDGE" stall "$KX_B" 3000 >"$TMP/stall-kx.out" &
stall=$!
sleep 0.5
kx_served "4 stalled tcp connections"
wait "$stall" || fail "tcp stall: $(cat "$TMP/stall-kx.out")"
kx_served "after the stalled tcp connections"
echo "ok: KM B's tcp:// Kx kept serving through raw closes, resets, garbage and stalls"

# --- 3. the socket file: stale removed, live kept
restart_km --kill A
[ -S "$RUN/A.ak" ] || fail "no Ak socket after the restart"
served "after KM A was killed and restarted over its stale socket"
IPC="ipc://$TMP/echo.ipc"
"$ECHO" "$IPC" >"$TMP/echo-1.log" 2>&1 &
echo1=$!
wait_for 10 grep -q "listening on" "$TMP/echo-1.log" ||
	fail "srv_echo did not start: $(cat "$TMP/echo-1.log")"
if "$ECHO" "$IPC" >"$TMP/echo-2.log" 2>&1; then
	fail "a second listener started on a live socket"
fi
grep -q "cannot listen on $IPC: bind: address in use" "$TMP/echo-2.log" ||
	fail "the second listener did not say why: $(cat "$TMP/echo-2.log")"
[ "$("$PROBE" status "$IPC")" = "-" ] ||
	fail "the first listener stopped serving"
kill -9 "$echo1"
wait "$echo1" 2>/dev/null || true
[ -S "$TMP/echo.ipc" ] || fail "no stale socket file left by a killed srv_echo"
"$ECHO" "$IPC" >"$TMP/echo-3.log" 2>&1 &
echo3=$!
wait_for 10 grep -q "listening on" "$TMP/echo-3.log" ||
	fail "srv_echo did not start over a stale socket: $(cat "$TMP/echo-3.log")"
[ "$("$PROBE" status "$IPC")" = "-" ] ||
	fail "srv_echo over a stale socket did not answer"
kill "$echo3"
wait "$echo3" || fail "srv_echo did not stop cleanly"
[ ! -e "$TMP/echo.ipc" ] || fail "a clean stop left the socket file"
echo "ok: stale socket removed, live one refused with address in use"
