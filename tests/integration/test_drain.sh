# A drained pool answers "insufficient key material" within the request
# deadline, and supply recovers when the emulator refills the pool.
source "$(dirname "$0")/lib.sh"
write_net 4000000
net_up
wait_for 10 has_out_bytes A 8192 || fail "pool of A never filled"
"$QKDN" link pause A_B --config "$CFG" --run-dir "$RUN" >/dev/null ||
	fail "could not pause the link"

# drain in ever smaller requests until not even one 256-bit key is left;
# every refusal must name the cause and come well within the deadline
for spec in "8192 16" "8192 1" "256 1"; do
	set -- $spec
	refused=0
	for _ in $(seq 1 3000); do
		start=$(date +%s%N)
		if ! "$QKDN" key get --km "$(AK_A)" --sae alice --to bob \
			--bits "$1" --count "$2" --timeout 3000 --json \
			>"$TMP/d.json" 2>/dev/null; then
			elapsed_ms=$((($(date +%s%N) - start) / 1000000))
			refused=1
			break
		fi
	done
	[ "$refused" = 1 ] || fail "pool never ran dry while the link was paused"
	[ "$(jq -r .error.name "$TMP/d.json")" = insufficient_key_material ] ||
		fail "drained pool gave: $(cat "$TMP/d.json")"
	[ "$elapsed_ms" -lt 3000 ] || fail "refusal took ${elapsed_ms} ms"
done

# drained: less than one 256-bit key and the 64 bytes of its sync's two
# MAC keys is left, and A counted exactly the three refusals
left=$(out_bytes A)
[ "$left" -lt 96 ] || fail "A refused with $left bytes left"
[ "$(status_field A .ak_errors)" = 3 ] ||
	fail "A counted $(status_field A .ak_errors) Ak errors, not 3 refusals"

"$QKDN" link resume A_B --config "$CFG" --run-dir "$RUN" >/dev/null ||
	fail "could not resume the link"
wait_for 10 "$QKDN" key get --km "$(AK_A)" --sae alice --to bob ||
	fail "supply did not recover after the refill"
echo "ok: insufficient key material while drained, recovered after refill"
