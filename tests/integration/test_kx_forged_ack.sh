# A forged acknowledgement on Kx never makes a KM hand out a key its peer
# did not store. KM A's network file names a man in the middle (kx_mitm)
# as KM B's Kx address. Passed through honestly, keys flow and match;
# when it answers A's key syncs itself with "success" (untagged, or with a
# random tag), A refuses the acknowledgement as failing authentication,
# alice gets no key, and KM B stores nothing.
source "$(dirname "$0")/lib.sh"
write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"
kx_b=$(kx_url B)
mitm="tcp://127.0.0.1:$(free_port)"
CFG_A="$TMP/net-a.cnf"
awk -v m="$mitm" '/^\[/ { s = ($0 == "[B]") } s && /^kx = / { $0 = "kx = " m } 1' \
	"$CFG" >"$CFG_A"
grep -qF "kx = $mitm" "$CFG_A" || fail "could not point A at the MITM"

"$BIN/kx_mitm" "$mitm" "$kx_b" forward,forge,forge-tag >"$TMP/mitm.out" \
	2>&1 &
mitm_pid=$!
# stop it too at exit, keeping the test's exit status for teardown
trap 'rc=$?; set +e; kill $mitm_pid 2>/dev/null; (exit $rc); teardown' EXIT
wait_for 10 grep -q ready "$TMP/mitm.out" || fail "kx_mitm did not start"
restart_km A "$CFG_A"

# 1. passed through: the key arrives at both ends
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >"$TMP/k1" ||
	fail "no key through the honest relay: $(cat "$TMP/mitm.out")"
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$(cut -d' ' -f1 "$TMP/k1")" \
	>"$TMP/b1" || fail "bob could not fetch the key"
[ "$(cat "$TMP/b1")" = "$(cat "$TMP/k1")" ] || fail "keys differ"

# 2. and 3. forged acknowledgements: refused, nothing supplied or stored
supplied_a=$(status A | jq .supplied)
for forgery in untagged "with a random tag"; do
	"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json \
		>"$TMP/f.json" 2>/dev/null &&
		fail "A handed out a key on a forged acknowledgement ($forgery)"
	[ "$(jq -r .error.name "$TMP/f.json")" = authentication_failed ] ||
		fail "forged acknowledgement ($forgery): $(cat "$TMP/f.json")"
	grep -q "acknowledgement of peer KM B failed authentication" \
		<<<"$(jq -r .error.reason "$TMP/f.json")" ||
		fail "the refusal does not name the cause: $(cat "$TMP/f.json")"
done
[ "$(status A | jq .supplied)" = "$supplied_a" ] || fail "A counted keys supplied"
[ "$(status B | jq .pending)" = 0 ] || fail "KM B stored keys: $(status B)"
[ "$(grep -c "forge" "$TMP/mitm.out")" = 2 ] ||
	fail "the MITM did not forge two acks: $(cat "$TMP/mitm.out")"
echo "ok: keys through an honest relay; forged acknowledgements refused"
