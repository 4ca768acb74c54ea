# Both ends of a link account for the same pool bits: with the link paused,
# each KEY_SYNC takes exactly its two 32-byte MAC keys (the sync's and its
# acknowledgement's) plus its keys from the source KM's out direction, and
# the destination KM's in direction (its in-mark) moves by exactly the same
# amount, also across a clean restart of the destination.
source "$(dirname "$0")/lib.sh"
write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"
pause_link
links() { # NODE: "out in blocks" of its one link
	status "$1" | jq -r '.links[0] | "\(.out) \(.in) \(.blocks)"'
}
read -r a_out0 _ a_blk0 <<<"$(links A)"
read -r _ b_in0 b_blk0 <<<"$(links B)"

# 5 requests one after another (one KEY_SYNC each) of 4 keys of 256 bits
for _ in 1 2 3 4 5; do
	"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --count 4 \
		>/dev/null || fail "key request refused"
done
want=$((5 * (64 + 4 * 32)))
read -r a_out1 _ a_blk1 <<<"$(links A)"
read -r _ b_in1 b_blk1 <<<"$(links B)"
[ "$a_blk1" = "$a_blk0" ] && [ "$b_blk1" = "$b_blk0" ] ||
	fail "blocks changed while paused: A $a_blk0->$a_blk1, B $b_blk0->$b_blk1"
[ $((a_out0 - a_out1)) = "$want" ] ||
	fail "A's out direction moved by $((a_out0 - a_out1)), not $want"
[ $((b_in0 - b_in1)) = "$want" ] ||
	fail "B's in-mark moved by $((b_in0 - b_in1)), not $want"
[ "$(status B | jq .pending)" = 20 ] || fail "B does not hold 20 keys"

# a clean restart of B keeps its in-mark where it was
"$QKDN" net down --run-dir "$RUN" >/dev/null || fail "net down"
net_up
pause_link
read -r a_out2 _ a_blk2 <<<"$(links A)"
read -r _ b_in2 b_blk2 <<<"$(links B)"
# blocks that arrived around the restart add a half block each
half=2048
[ $((a_out2 - a_out1)) = $(((a_blk2 - a_blk1) * half)) ] ||
	fail "A's cursor moved across a clean restart: $a_out1 -> $a_out2"
[ $((b_in2 - b_in1)) = $(((b_blk2 - b_blk1) * half)) ] ||
	fail "B's in-mark moved across a clean restart: $b_in1 -> $b_in2"
"$BIN/ak_pairs" --src-km "$(AK_A)" --src-sae alice --dst-km "$(AK_B)" \
	--dst-sae bob --n 10 --out "$TMP/p" >"$TMP/r" ||
	fail "pairs after the restart: $(cat "$TMP/r")"
echo "ok: both ends consumed exactly $want bytes; marks kept across a restart"
