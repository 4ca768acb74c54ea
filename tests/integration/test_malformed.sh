# Random and malformed bytes on Ak get error replies naming the cause, and
# the KM keeps serving keys afterwards.
source "$(dirname "$0")/lib.sh"
write_net 4000000
net_up
wait_for 10 has_out_bytes A 1024 || fail "pool of A never filled"
"$BIN/ak_raw" "$(AK_A)" 500 || fail "KM A mishandled malformed input"
"$BIN/ak_raw" "$(AK_B)" 200 || fail "KM B mishandled malformed input"
"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 20 --out "$TMP/p" >/dev/null ||
	fail "KMs stopped serving keys after malformed input"
errors=$("$QKDN" status --km "$(AK_A)" --json | jq .errors)
[ "$errors" -ge 508 ] || fail "KM A counted only $errors errors"
echo "ok: malformed input refused with reasons, service continued"
