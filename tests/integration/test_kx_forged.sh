# A forged KEY_SYNC sent to a running KM over Kx, by a process that knows
# the link's real pool positions but not its key bits, is refused as
# failing authentication, and changes nothing: no key is stored (pending
# stays 0, the forged IDs cannot be fetched), the pool's in direction is
# not consumed (exact byte counts with the link paused), and honest keys
# still pair up afterwards.
source "$(dirname "$0")/lib.sh"
write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"
pause_link
before=$(status B)

kx_b=$(kx_url B)
"$BIN/kx_forge" "$kx_b" A_B alice bob >"$TMP/forged" 2>"$TMP/forge.err" ||
	fail "forged KEY_SYNC not refused as it should be: $(cat "$TMP/forge.err")"
[ "$(wc -l <"$TMP/forged")" = 3 ] || fail "kx_forge made no forgeries"

after=$(status B)
[ "$(jq .pending <<<"$after")" = 0 ] ||
	fail "KM B stored keys from a forged sync: $after"
[ "$(jq '.links[0].in' <<<"$after")" = "$(jq '.links[0].in' <<<"$before")" ] ||
	fail "a forged sync consumed pool bits: $before -> $after"
[ "$(jq '.links[0].blocks' <<<"$after")" = "$(jq '.links[0].blocks' <<<"$before")" ] ||
	fail "blocks changed while the link was paused: $before -> $after"
# 6 forged syncs, each refused with an error reply (the probe is not one)
[ "$(jq .errors <<<"$after")" = $(($(jq .errors <<<"$before") + 6)) ] ||
	fail "KM B did not count 6 refusals: $before -> $after"
while read -r id; do
	"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" --json \
		>"$TMP/f.json" 2>/dev/null && fail "bob fetched forged key $id"
	[ "$(jq -r .error.name "$TMP/f.json")" = unknown_key_id ] ||
		fail "forged key $id: $(cat "$TMP/f.json")"
done <"$TMP/forged"

"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 20 --out "$TMP/p" >"$TMP/r" ||
	fail "honest keys after the forgeries: $(cat "$TMP/r")"
[ "$(jq .ok "$TMP/r")" = 20 ] || fail "short run: $(cat "$TMP/r")"
echo "ok: forged KEY_SYNCs refused (auth failed), nothing stored or consumed"
