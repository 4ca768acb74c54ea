# A plain tcp:// Ak carries no identity: any local process can connect and
# claim any SAE. A key ID is no secret (it travels in clear in the TLS
# ServerHello), so such a listener must not hand out keys:
#  1. KM B's Ak on tcp:// (not marked trusted): bob's key, whose ID a local
#     user read, cannot be fetched over it (not_authorised, reason given),
#     nothing changes at B (still pending, exactly one Ak error); status
#     still answers;
#  2. the same listener marked `ak_trusted = yes` (one host) serves it;
#  3. a tcp:// Ak beyond loopback is refused when the file is loaded.
source "$(dirname "$0")/lib.sh"
write_net 8000000
AK_TCP="tcp://127.0.0.1:$(free_port)"
sed -i "/^\[B\]/a ak = $AK_TCP" "$CFG"
net_up
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"

"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >"$TMP/key" ||
	fail "alice's key request"
id=$(cut -d' ' -f1 "$TMP/key")

# status_b FIELD: one field of B's status over its tcp:// Ak
status_b() { "$QKDN" status --km "$AK_TCP" --json | jq -e "$1"; }

# 1. untrusted: refused, nothing consumed
"$QKDN" key get --km "$AK_TCP" --sae bob --id "$id" --json >"$TMP/r.json" \
	2>/dev/null && fail "a key was handed out over an untrusted tcp:// Ak"
[ "$(jq -r .error.name "$TMP/r.json")" = not_authorised ] ||
	fail "expected not_authorised, got $(cat "$TMP/r.json")"
grep -q "carries no identity" <<<"$(jq -r .error.reason "$TMP/r.json")" ||
	fail "the refusal does not say why: $(cat "$TMP/r.json")"
[ "$(status_b .pending)" = 1 ] || fail "B's key left: $(status_b .)"
[ "$(status_b .supplied)" = 0 ] || fail "B supplied: $(status_b .)"
[ "$(status_b .ak_errors)" = 1 ] || fail "B's Ak errors: $(status_b .)"

# 2. the same listener, trusted: served, and the key matches alice's
sed -i "/^\[B\]/a ak_trusted = yes" "$CFG"
restart_km B
"$QKDN" key get --km "$AK_TCP" --sae bob --id "$id" >"$TMP/got" ||
	fail "a trusted tcp:// Ak refused bob's key"
[ "$(cat "$TMP/got")" = "$(cat "$TMP/key")" ] || fail "bob's key differs"

# 3. beyond loopback: the file is refused with the reason
sed -i "s|^ak = $AK_TCP|ak = tcp://0.0.0.0:$(free_port)|" "$CFG"
"$BIN/qkdn-km" --config "$CFG" --node B --run-dir "$RUN" \
	>"$TMP/km.out" 2>&1 && fail "qkdn-km accepted a tcp:// Ak on 0.0.0.0"
grep -q "carries no identity" "$TMP/km.out" ||
	fail "no clear reason: $(cat "$TMP/km.out")"
echo "ok: untrusted tcp:// Ak refused the key (nothing consumed), trusted" \
	"served it, non-loopback refused at load"
