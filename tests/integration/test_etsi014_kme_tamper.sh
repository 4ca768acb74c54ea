# Southbound ETSI 014: a key ID list altered or forged on Kx never desyncs
# the pools. KM A's network file names a man in the middle (kme_kx_tamper)
# as KM B's Kx address; the KME (kme_standin.py) starts only once it is in
# place, so every KME_KEYS_AUTH passes it. Asserts:
#  1. two IDs swapped (all still valid at the KME), the block ID altered,
#     and a random tag are each refused by B as authentication_failed
#     (one-time MAC keyed by the KME's own keys); an unknown ID is refused
#     by the KME (bad_request); B counts exactly 3 failed syncs and logs
#     that nothing was stored;
#  2. then, passed on unchanged, the link fills and keys match at both
#     ends, both ways, and both pools end in sync.
source "$(dirname "$0")/lib.sh"

PKI="$TMP/kme-pki"
"$BIN/qkdn-etsi014-certs" "$PKI" gw kme 127.0.0.1 sae kme-a kme-b \
	>/dev/null || fail "no test PKI"
KPORT=$(free_port)
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
net_up # no KME yet: nothing is pulled

kx_b=$(kx_url B)
mitm="tcp://127.0.0.1:$(free_port)"
CFG_A="$TMP/net-a.cnf"
awk -v m="$mitm" '/^\[/ { s = ($0 == "[B]") } s && /^kx = / { $0 = "kx = " m } 1' \
	"$CFG" >"$CFG_A"
grep -qF "kx = $mitm" "$CFG_A" || fail "could not point A at the MITM"
"$BIN/kme_kx_tamper" "$mitm" "$kx_b" swap-ids,alter-blk,forge-tag,alter-id,forward \
	>"$TMP/mitm.out" 2>&1 &
mitm_pid=$!
KME_PID=""
trap 'rc=$?; set +e; kill $mitm_pid $KME_PID 2>/dev/null; (exit $rc); teardown' EXIT
wait_for 10 grep -q ready "$TMP/mitm.out" || fail "kme_kx_tamper did not start"
restart_km A "$CFG_A"

python3 "$QKDN_SRC/tests/integration/kme_standin.py" --port "$KPORT" \
	--cert "$PKI/kme.pem" --key "$PKI/kme.key" --ca "$PKI/ca.pem" \
	--master kme-a --slave kme-b >"$TMP/kme.out" 2>&1 &
KME_PID=$!

# 1. the tampered lists are refused
tampered() { [ "$(grep -c '^keys [0-9]*:' "$TMP/mitm.out")" -ge 5 ]; }
wait_for 20 tampered || fail "fewer than 5 key ID lists seen: $(cat "$TMP/mitm.out")"
for want in "keys 1: swap-ids: authentication_failed" \
	"keys 2: alter-blk: authentication_failed" \
	"keys 3: forge-tag: authentication_failed" \
	"keys 4: alter-id: bad_request" "keys 5: forward: ok"; do
	grep -qx "$want" "$TMP/mitm.out" || fail "want '$want': $(cat "$TMP/mitm.out")"
done
[ "$(status B | jq '.links[0].sync_failures')" = 3 ] ||
	fail "B counted other than 3 failed syncs: $(status B)"
grep -q "key IDs for block [0-9]* failed authentication; nothing stored" \
	"$RUN/km-B.log" || fail "B did not log the refusal"
grep -q "keys not found" "$TMP/kme.out" || fail "the KME did not refuse the unknown ID"

# 2. passed on unchanged: the pools fill and agree
blocks() { status "$1" | jq '.links[0].blocks'; }
full() { [ "$(blocks A)" = 16 ] && [ "$(blocks B)" = 16 ]; }
wait_for 20 full || fail "pools never filled: A $(blocks A), B $(blocks B)"
for dir in "A alice B bob" "B bob A alice"; do
	read -r src ssae dst dsae <<<"$dir"
	"$QKDN" key get --km "ipc://$RUN/$src.ak" --sae "$ssae" --to "$dsae" \
		--count 4 >"$TMP/k.$src" || fail "no key at $src"
	while read -r id key; do
		got=$("$QKDN" key get --km "ipc://$RUN/$dst.ak" --sae "$dsae" --id "$id") ||
			fail "$dsae could not fetch $id"
		[ "$got" = "$id $key" ] || fail "keys differ for $id"
	done <"$TMP/k.$src"
done
for n in A B; do
	[ "$(status "$n" | jq '.links[0].in_sync')" = true ] ||
		fail "$n out of sync at the end: $(status "$n")"
done
echo "ok: altered and forged key ID lists refused; the pools stayed equal"
