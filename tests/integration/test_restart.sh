# KM B is killed with SIGKILL and restarted while two clients take keys:
# no key is ever supplied twice (IDs and key bits unique across the run),
# no pair ever differs, and supply works again afterwards. Then the same for
# KM A, the side that allocates the pool: its lease must keep it from
# reusing bits it handed out before the crash (KM B would refuse them as
# replayed, so that must never happen).
source "$(dirname "$0")/lib.sh"
write_net 16000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"

lines() { { cat "$TMP"/p.* 2>/dev/null || true; } | wc -l; }
enough_lines() { [ "$(lines)" -ge "$1" ]; }

round=0
for victim in B A; do
	round=$((round + 1))
	for c in 1 2; do
		"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice \
			--dst-km "$(AK_B)" --dst-sae bob --n 400 --batch 4 \
			--tolerate-errors --timeout 2500 \
			--out "$TMP/p.$round.$c" >"$TMP/r.$round.$c" 2>"$TMP/e.$round.$c" &
		eval "pid$c=\$!"
	done
	before=$(lines)
	wait_for 30 enough_lines $((before + 100)) || fail "clients made no progress"
	restart_km --kill "$victim"
	wait "$pid1" || fail "client 1 ($victim): $(cat "$TMP/r.$round.1")"
	wait "$pid2" || fail "client 2 ($victim): $(cat "$TMP/r.$round.2")"
	for c in 1 2; do
		r="$TMP/r.$round.$c"
		[ "$(jq .mismatches "$r")" = 0 ] || fail "pair mismatch: $(cat "$r")"
		[ "$(jq .second_fetch_accepted "$r")" = 0 ] ||
			fail "second fetch accepted: $(cat "$r")"
	done
	echo "killed $victim: errors seen by clients:" \
		"$(jq .errors "$TMP/r.$round.1") + $(jq .errors "$TMP/r.$round.2")"
done

# A restarted past its synced lease, B kept its in-mark: B never saw key
# positions it had seen before (it would refuse them as replayed, which
# saves the keys but costs the clients a failed request each)
replays=$(grep -c 'refused a Kx request: replayed key material' \
	"$RUN/km-B.log") || [ "$?" = 1 ] || fail "no log of km B"
[ "$replays" = 0 ] || fail "KM A reused key positions after its crash:" \
	"KM B refused $replays KEY_SYNCs as replayed"

cat "$TMP"/p.* >"$TMP/all"
total=$(wc -l <"$TMP/all")
[ "$total" = 1600 ] || fail "expected 1600 keys, got $total"
[ "$(cut -d' ' -f1 "$TMP/all" | sort -u | wc -l)" = "$total" ] ||
	fail "a key ID was supplied twice"
[ "$(cut -d' ' -f2 "$TMP/all" | sort -u | wc -l)" = "$total" ] ||
	fail "the same key bits were supplied twice across a crash"

"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 10 --out "$TMP/after" >/dev/null ||
	fail "pairs do not match after the restarts"
echo "ok: $total keys across two crashes, none reused, all pairs equal"
