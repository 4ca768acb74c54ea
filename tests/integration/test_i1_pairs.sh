# Q.4160 I.1 across two KMs with real processes: two client processes take
# 1000 keys in all; every pair identical, every ID and every key unique, a
# second fetch refused (checked inside ak_pairs), a fetch by a
# non-destination SAE refused, and status counting exactly what was supplied,
# what still waits (nothing) and what was refused.
source "$(dirname "$0")/lib.sh"
write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"

"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 500 --out "$TMP/p1" >"$TMP/r1" &
p1=$!
"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 500 --batch 8 --out "$TMP/p2" >"$TMP/r2" &
p2=$!
wait $p1 || fail "client 1: $(cat "$TMP/r1")"
wait $p2 || fail "client 2: $(cat "$TMP/r2")"
for r in "$TMP/r1" "$TMP/r2"; do
	[ "$(jq .mismatches "$r")" = 0 ] || fail "pairs differ: $(cat "$r")"
	[ "$(jq .ok "$r")" = 500 ] || fail "short run: $(cat "$r")"
	[ "$(jq .errors "$r")" = 0 ] || fail "requests failed: $(cat "$r")"
done
# every second fetch ak_pairs tried was refused (it checks that) at B
second=$(($(jq .second_fetches "$TMP/r1") + $(jq .second_fetches "$TMP/r2")))
[ "$second" -gt 0 ] || fail "no second fetch was tried"
expect_status A 1000 0 0
expect_status B 1000 0 "$second"

cat "$TMP/p1" "$TMP/p2" >"$TMP/all"
[ "$(wc -l <"$TMP/all")" = 1000 ] || fail "expected 1000 keys"
[ "$(cut -d' ' -f1 "$TMP/all" | sort -u | wc -l)" = 1000 ] ||
	fail "a key ID was handed out twice"
[ "$(cut -d' ' -f2 "$TMP/all" | sort -u | wc -l)" = 1000 ] ||
	fail "the same key bits were handed out twice"

# a key made for bob may not be fetched by mallory (also on node B)
id=$("$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json |
	jq -r '.keys[0].id')
if "$QKDN" key get --km "$(AK_B)" --sae mallory --id "$id" --json \
	>"$TMP/m.json" 2>/dev/null; then
	fail "mallory fetched bob's key"
fi
[ "$(jq -r .error.name "$TMP/m.json")" = not_authorised ] ||
	fail "wrong refusal for mallory: $(cat "$TMP/m.json")"
# ... and the refusal changed nothing: the key still waits, bob gets it once
expect_status B 1000 1 $((second + 1))
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" >/dev/null ||
	fail "bob could not fetch after mallory's attempt"
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" --json \
	>"$TMP/again.json" 2>/dev/null && fail "second fetch accepted"
[ "$(jq -r .error.name "$TMP/again.json")" = already_supplied ] ||
	fail "wrong refusal for a second fetch: $(cat "$TMP/again.json")"
# an SAE of node A may not ask node B's KM at all
"$QKDN" key get --km "$(AK_B)" --sae alice --to bob --json \
	>"$TMP/alien.json" 2>/dev/null && fail "KM B served an SAE attached to A"
[ "$(jq -r .error.name "$TMP/alien.json")" = not_authorised ] ||
	fail "wrong refusal for a foreign SAE: $(cat "$TMP/alien.json")"

# A: 1000 keys + the one for mallory's test; B: 1000 fetches + bob's one;
# B refused mallory, the second fetch and alice
expect_status A 1001 0 0
expect_status B 1001 0 $((second + 3))
echo "ok: 1000 pairs matched, IDs and keys unique, refusals correct"
