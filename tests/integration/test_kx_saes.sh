# A KM takes keys over Kx only for SAEs that its own network file places
# across that link: the source SAE at the peer's node, the destination at
# its own. Here KM A's network file is wrong (or A is compromised): it
# thinks eve is attached to A and carol to B. KM B's file puts eve at B
# and has no carol. A's KEY_SYNCs for eve -> bob and alice -> carol are
# refused by B as not authorised, B stores nothing, and the source
# application gets the refusal; honest keys keep flowing.
source "$(dirname "$0")/lib.sh"
write_net 8000000
CFG_B="$TMP/net-b.cnf"
cp "$CFG" "$CFG_B"
sed -i 's/^saes = .*/&, eve, carol/' "$CFG"
printf '\n[eve]\nnode = A\n\n[carol]\nnode = B\n' >>"$CFG"
sed -i 's/^saes = .*/&, eve/' "$CFG_B"
printf '\n[eve]\nnode = B\n' >>"$CFG_B"
net_up
restart_km B "$CFG_B" # KM B again, reading its own file
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"

errors0=$(status B | jq .errors)
for pair in "eve bob" "alice carol"; do
	set -- $pair
	"$QKDN" key get --km "$(AK_A)" --sae "$1" --to "$2" --json \
		>"$TMP/k.json" 2>/dev/null && fail "KM B took a key for $1 -> $2"
	[ "$(jq -r .error.name "$TMP/k.json")" = not_authorised ] ||
		fail "$1 -> $2: $(cat "$TMP/k.json")"
	grep -q "not served across link A_B" <<<"$(jq -r .error.reason "$TMP/k.json")" ||
		fail "$1 -> $2: the refusal does not name the cause: $(cat "$TMP/k.json")"
done
[ "$(status B | jq .pending)" = 0 ] || fail "KM B stored keys: $(status B)"
[ "$(status B | jq .errors)" = $((errors0 + 2)) ] ||
	fail "KM B did not count its 2 refusals"
"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 20 --out "$TMP/p" >"$TMP/r" ||
	fail "honest keys after the refusals: $(cat "$TMP/r")"
[ "$(jq .ok "$TMP/r")" = 20 ] || fail "short run: $(cat "$TMP/r")"
echo "ok: syncs for SAEs not served across the link refused by the peer KM"
