# A forged key relay completion notification never makes the source KM
# hand out a key. Line N1 - N2 - N3, alice at N1, carol at N3. KM N1's
# network file names a man in the middle (kx_mitm) as N2's Kx address.
#  1. passed through honestly, the relayed key reaches both ends, equal;
#  2. when the man in the middle answers N1's key relay itself with a
#     completion of success under a random tag, N1 refuses it as failing
#     authentication: alice gets no key, N1 counts the relay failed (and
#     none completed), and N3 stores nothing;
#  3. passed through again, keys flow as before.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN/qkdn-controller" ] || fail "no $BIN/qkdn-controller"

line_net distributed 3 alice:N1 carol:N3
net_up
ak() { echo "ipc://$RUN/$1.ak"; }
# pools_at NODE BYTES: every link of NODE has BYTES to send
pools_at() { [ "$(status "$1" | jq '[.links[].out] | min')" -ge "$2" ]; }
wait_for 15 pools_at N1 65536 || fail "N1's pools never filled"
wait_for 15 pools_at N2 65536 || fail "N2's pools never filled"

kx_n2=$(kx_url N2)
mitm="tcp://127.0.0.1:$(free_port)"
CFG_1="$TMP/net-n1.cnf"
awk -v m="$mitm" '/^\[/ { s = ($0 == "[N2]") } s && /^kx = / { $0 = "kx = " m } 1' \
	"$CFG" >"$CFG_1"
grep -qF "kx = $mitm" "$CFG_1" || fail "could not point N1 at the MITM"
"$BIN/kx_mitm" "$mitm" "$kx_n2" forward,forge-done,forward \
	>"$TMP/mitm.out" 2>&1 &
mitm_pid=$!
trap 'rc=$?; set +e; kill $mitm_pid 2>/dev/null; (exit $rc); teardown' EXIT
wait_for 10 grep -q ready "$TMP/mitm.out" || fail "kx_mitm did not start"
restart_km N1 "$CFG_1"
# the restarted N1 has reported its links to its controller again
wait_for 10 "$QKDN" route --from N1 --to N3 --config "$CFG" --run-dir "$RUN" ||
	fail "no route from N1 to N3 after N1's restart"

# get_key N: key request number N from alice; fetch_key: carol's copy
get_key() {
	"$QKDN" key get --km "$(ak N1)" --sae alice --to carol >"$TMP/k$1" \
		2>"$TMP/k$1.err"
}
fetch_key() {
	"$QKDN" key get --km "$(ak N3)" --sae carol \
		--id "$(cut -d' ' -f1 "$TMP/k$1")" >"$TMP/c$1" ||
		fail "carol could not fetch key $1"
	[ "$(cat "$TMP/c$1")" = "$(cat "$TMP/k$1")" ] || fail "key $1 differs"
}

# 1. honest
get_key 1 || fail "no key through the honest man in the middle: $(cat "$TMP/k1.err")"
fetch_key 1
pending3=$(status N3 | jq .pending)
done1=$(status N1 | jq .relay.completed)
failed1=$(status N1 | jq .relay.failed)

# 2. forged completion
get_key 2 && fail "alice got a key on a forged completion: $(cat "$TMP/k2")"
grep -q "authentication" "$TMP/k2.err" ||
	fail "the refusal does not name authentication: $(cat "$TMP/k2.err")"
[ -s "$TMP/k2" ] && fail "a key was printed: $(cat "$TMP/k2")"
grep -q "request 2: forge-done: success" "$TMP/mitm.out" ||
	fail "the man in the middle did not forge: $(cat "$TMP/mitm.out")"
[ "$(status N1 | jq .relay.completed)" = "$done1" ] ||
	fail "N1 counted the forged relay as completed: $(status N1 | jq .relay)"
[ "$(status N1 | jq .relay.failed)" = $((failed1 + 1)) ] ||
	fail "N1 did not count the relay failed: $(status N1 | jq .relay)"
[ "$(status N3 | jq .pending)" = "$pending3" ] ||
	fail "N3 stored keys of the forged relay: $(status N3)"

# 3. honest again
get_key 3 || fail "no key after the forgery: $(cat "$TMP/k3.err")"
fetch_key 3
echo "ok: a forged completion was refused (no key, relay failed, nothing" \
	"stored at the destination); honest relays before and after matched"
