# Key expiry (key_ttl): keys made for bob wait at KM B, counted exactly as
# pending; bob fetches some of them in time; the rest expire after key_ttl
# and are swept by the KM's housekeeping tick (pending then exactly 0, never
# before the TTL has passed), and a fetch by an expired ID, or by the ID of a
# key supplied before, is refused as unknown_key_id (the sweep deletes the
# waiting key and the tombstone alike).
source "$(dirname "$0")/lib.sh"
TTL=5 # seconds: room for the steps before expiry on a loaded machine
N=6
K=2 # fetched before expiry
write_net 8000000 "" "$TTL"
net_up
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"

start_ms=$(($(date +%s%N) / 1000000))
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --count "$N" \
	>"$TMP/keys" || fail "key request"
[ "$(wc -l <"$TMP/keys")" = "$N" ] || fail "expected $N keys"
expect_status A "$N" 0 0
expect_status B 0 "$N" 0

# bob fetches K of them before the TTL: N-K stay pending
head -n "$K" "$TMP/keys" >"$TMP/early"
"$QKDN" key get --km "$(AK_B)" --sae bob --ids-from "$TMP/early" \
	>"$TMP/early.got" || fail "fetch before expiry"
cmp -s "$TMP/early" "$TMP/early.got" || fail "early keys differ"
expect_status B "$K" $((N - K)) 0
fetched_ms=$(($(date +%s%N) / 1000000))
[ $((fetched_ms - start_ms)) -lt $((TTL * 1000)) ] ||
	fail "set-up took $((fetched_ms - start_ms)) ms, not within the" \
		"${TTL} s TTL: the counts above are not before expiry"

# the sweep: pending reaches exactly 0, and not before the TTL has passed
pending_zero() { [ "$(status_field B .pending)" = 0 ]; }
wait_for $((TTL + 30)) pending_zero || fail "keys never expired: $(
	"$QKDN" status --km "$(AK_B)" --json)"
zero_ms=$(($(date +%s%N) / 1000000))
[ $((zero_ms - start_ms)) -ge $((TTL * 1000)) ] ||
	fail "keys expired after $((zero_ms - start_ms)) ms, before the TTL"
expect_status B "$K" 0 0
expect_status A "$N" 0 0

# fetches by expired IDs: unknown_key_id, and nothing supplied
fetch_refused() { # ID: bob's fetch by ID is refused as unknown_key_id
	if "$QKDN" key get --km "$(AK_B)" --sae bob --id "$1" --json \
		>"$TMP/late.json" 2>/dev/null; then
		fail "expired key $1 was supplied"
	fi
	[ "$(jq -r .error.name "$TMP/late.json")" = unknown_key_id ] ||
		fail "expired key $1: $(cat "$TMP/late.json")"
}
fetch_refused "$(sed -n "$((K + 1))p" "$TMP/keys" | cut -d' ' -f1)"
fetch_refused "$(tail -n 1 "$TMP/keys" | cut -d' ' -f1)"
fetch_refused "$(head -n 1 "$TMP/keys" | cut -d' ' -f1)" # supplied early
expect_status B "$K" 0 3
echo "ok: $N keys, $K fetched, $((N - K)) expired after" \
	"$((zero_ms - start_ms)) ms (TTL ${TTL} s)"
