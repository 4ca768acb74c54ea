# Key relay with key reservation (Q.4160 I.4b), centralized, over a line
# N1 - N2 - N3 - N4 with alice at N1 and dave at N4:
#  1. `qkdn relay reserve` makes the central controller reserve 3 keys at
#     N1 (their bits are N1-N2 link key), have N2 relay them to N4 and
#     allocate them at N1: alice fetches each ID at N1, dave at N4, and the
#     pairs are equal; the procedure's messages are counted (controller:
#     one reservation and one allocation; N1: one of each served; N2: one
#     relay started and completed; N4: one delivered);
#  2. the same reservation allocated a second time is refused
#     (already_supplied), and nothing more can be fetched;
#  3. a reservation never allocated is released when its time is up: its
#     allocation is then refused, and its keys cannot be fetched at N1.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN/qkdn-controller" ] || fail "no $BIN/qkdn-controller"

line_net centralized 4 alice:N1 dave:N4
net_up
ak() { echo "ipc://$RUN/$1.ak"; }
relay() { status "$1" | jq -e ".relay.$2"; }
ctl() { "$QKDN" status --config "$CFG" --run-dir "$RUN" --controller --json |
	jq -e ".$1"; }
wait_for 20 "$QKDN" route --from N1 --to N4 --bytes 20000 --config "$CFG" \
	--run-dir "$RUN" || fail "no route N1 -> N4 with room for the keys"

# 1. reserve, relay, allocate
"$QKDN" relay reserve --config "$CFG" --run-dir "$RUN" --from N1 --to N4 \
	--sae alice --dst-sae dave --count 3 --json >"$TMP/res.json" ||
	fail "relay reserve: $(cat "$TMP/res.json")"
resid=$(jq -r .reservation_id "$TMP/res.json")
[ "$(jq '.ids | length' "$TMP/res.json")" = 3 ] ||
	fail "expected 3 IDs: $(cat "$TMP/res.json")"
for id in $(jq -r '.ids[]' "$TMP/res.json"); do
	"$QKDN" key get --km "$(ak N1)" --sae alice --id "$id" >"$TMP/a" ||
		fail "alice could not fetch $id at N1"
	"$QKDN" key get --km "$(ak N4)" --sae dave --id "$id" >"$TMP/d" ||
		fail "dave could not fetch $id at N4"
	[ "$(cat "$TMP/a")" = "$(cat "$TMP/d")" ] || fail "key $id differs"
done
[ "$(ctl reservations)" = 1 ] && [ "$(ctl allocations)" = 1 ] ||
	fail "controller counters: $(ctl .)"
[ "$(relay N1 reservations)" = 1 ] && [ "$(relay N1 allocations)" = 1 ] ||
	fail "N1 counters: $(status N1 | jq .relay)"
[ "$(relay N2 started)" = 1 ] && [ "$(relay N2 completed)" = 1 ] ||
	fail "N2 counters: $(status N2 | jq .relay)"
[ "$(relay N4 delivered)" = 1 ] || fail "N4 counters: $(status N4 | jq .relay)"

# 2. allocated twice
kx1=$(kx_url N1)
"$BIN/ck_send" "$kx1" alloc "$resid" N4 alice dave >"$TMP/again" ||
	fail "ck_send alloc"
[ "$(head -n 1 "$TMP/again")" = already_supplied ] ||
	fail "a second allocation was not refused: $(cat "$TMP/again")"
[ "$(wc -l <"$TMP/again")" = 1 ] || fail "IDs came back: $(cat "$TMP/again")"

# 3. a reservation left unallocated is released when its time is up
resid2=$(cat /proc/sys/kernel/random/uuid)
"$BIN/ck_send" "$kx1" reserve "$resid2" N4 N2 2 256 300 >"$TMP/r2" ||
	fail "ck_send reserve"
[ "$(head -n 1 "$TMP/r2")" = ok ] || fail "reserve: $(cat "$TMP/r2")"
[ "$(wc -l <"$TMP/r2")" = 3 ] || fail "expected 2 IDs: $(cat "$TMP/r2")"
sleep 1 # the 300 ms are up, and the KM's 200 ms tick has run
"$BIN/ck_send" "$kx1" alloc "$resid2" N4 alice dave >"$TMP/late" ||
	fail "ck_send alloc"
[ "$(head -n 1 "$TMP/late")" != ok ] ||
	fail "a released reservation was allocated: $(cat "$TMP/late")"
for id in $(tail -n +2 "$TMP/r2"); do
	"$QKDN" key get --km "$(ak N1)" --sae alice --id "$id" --json \
		>"$TMP/gone.json" 2>/dev/null && fail "released key $id fetched"
	[ "$(jq -r .error.name "$TMP/gone.json")" = unknown_key_id ] ||
		fail "released key $id: $(cat "$TMP/gone.json")"
done
echo "ok: I.4b reserved, relayed and allocated 3 keys (equal at both ends);" \
	"a second allocation was refused; an unallocated reservation was" \
	"released after its time ($(head -n 1 "$TMP/late"))"
