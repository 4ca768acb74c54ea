# Random and malformed bytes on Ak get error replies naming the cause, each
# counted exactly once as an error, and the KM keeps serving keys afterwards.
source "$(dirname "$0")/lib.sh"
write_net 4000000
net_up
wait_for 10 has_out_bytes A 1024 || fail "pool of A never filled"
"$BIN/ak_raw" "$(AK_A)" 500 >"$TMP/raw.A" ||
	fail "KM A mishandled malformed input: $(cat "$TMP/raw.A")"
"$BIN/ak_raw" "$(AK_B)" 200 >"$TMP/raw.B" ||
	fail "KM B mishandled malformed input: $(cat "$TMP/raw.B")"
# inputs sent, each answered by exactly one error reply (ak_raw checks)
sent() { # "RANDOM + CRAFTED" from ak_raw's last line
	sed -n 's/^ok: \([0-9]*\) random and \([0-9]*\) crafted inputs$/\1 + \2/p' "$1"
}
[ -n "$(sent "$TMP/raw.A")" ] && [ -n "$(sent "$TMP/raw.B")" ] ||
	fail "ak_raw output: $(cat "$TMP/raw.A" "$TMP/raw.B")"
errors_a=$(($(sent "$TMP/raw.A")))
errors_b=$(($(sent "$TMP/raw.B")))
expect_status A 0 0 "$errors_a"
expect_status B 0 0 "$errors_b"

"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 20 --out "$TMP/p" >"$TMP/r" ||
	fail "key supply after malformed input failed: $(cat "$TMP/r")"
# B also refused ak_pairs' second fetches
expect_status A 20 0 "$errors_a"
expect_status B 20 0 $((errors_b + $(jq .second_fetches "$TMP/r")))
echo "ok: malformed input refused with reasons ($errors_a + $errors_b" \
	"errors counted), service continued"
