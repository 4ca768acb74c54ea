# storage_key (docs/network-file.md): the node storage key lives outside
# the store it seals: by default <run_dir>/<node>.storage.key, or where the
# network file says. A store whose key is still inside it (made before the
# key moved) keeps working from there.
source "$(dirname "$0")/lib.sh"
mkdir -p "$RUN" "$TMP/keys"
write_net 8000000
sed -i "/^\[B\]$/a storage_key = $TMP/keys/B.key" "$CFG"
net_up
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"
[ -f "$RUN/A.storage.key" ] || fail "no $RUN/A.storage.key"
[ "$(stat -c %a "$RUN/A.storage.key")" = 600 ] || fail "A.storage.key mode"
[ -f "$TMP/keys/B.key" ] || fail "no configured key for B"
[ ! -e "$RUN/A.db/storage.key" ] && [ ! -e "$RUN/B.db/storage.key" ] ||
	fail "a storage key inside a store"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json >"$TMP/k.json" ||
	fail "no key"

# an old store: its key inside it, nothing at the new place; the KM reads
# it and keeps its blocks (they unseal: the pool still supplies key)
"$QKDN" link pause A_B --config "$CFG" --run-dir "$RUN" >/dev/null
blocks=$(status A | jq '.links[0].blocks')
mv "$RUN/A.storage.key" "$RUN/A.db/storage.key"
restart_km A
grep -q "storage key read from $RUN/A.db/storage.key" "$RUN/km-A.log" ||
	fail "A did not say where it read its key"
[ ! -e "$RUN/A.storage.key" ] || fail "A made a new key"
[ "$(status A | jq '.links[0].blocks')" = "$blocks" ] ||
	fail "A lost blocks: $blocks before, $(status A)"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json >"$TMP/k2.json" ||
	fail "no key from the old store: $(cat "$TMP/k2.json")"

# a key inside the store is refused in the network file
sed -i "/^\[A\]$/a storage_key = A.db/storage.key" "$CFG"
! "$QKDN" net restart A --config "$CFG" --run-dir "$RUN" >"$TMP/r.out" 2>&1 ||
	fail "a storage key inside the store was accepted"
grep -q "lies in the store" "$TMP/r.out" || fail "reason: $(cat "$TMP/r.out")"
echo "ok: storage keys outside the stores"
