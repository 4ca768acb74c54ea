# pool_max_bytes: a KM's link pool never holds more key than its cap, and
# once full holds exactly cap / block_bytes blocks, the newest ones: the
# emulator delivers far more than the cap (its own status counts that), no
# keys are taken meanwhile (so nothing but the cap drops blocks), and after
# the link is paused exactly the capped pool's key can be taken, no more.
source "$(dirname "$0")/lib.sh"
BLOCK=64                # bytes; half of each block per direction
CAP=512                 # bytes: 8 blocks
CAP_BLOCKS=$((CAP / BLOCK))
HALF_CAP=$((CAP / 2))   # key of one direction in a full pool
RATE=$((1000 * BLOCK * 8)) # 1000 blocks/s
# the emulator queues at most 1024 blocks per KM (SEND_BUF in qkdsim.c)
# and counts a block delivered once both KMs' queues took it; a few more
# may be in transit, so each KM has received at least delivered - 1024 - 64
# blocks: ten times the cap once this much is delivered
DELIVERED=$(((1024 + 64 + 10 * CAP_BLOCKS) * BLOCK))
write_net "$RATE" "" 600 "block_bytes = $BLOCK
pool_max_bytes = $CAP"
net_up

# pool_ok NODE: the pool holds at most the cap; with FULL, exactly the cap
pool_ok() {
	local s b o i
	s=$("$QKDN" status --km "ipc://$RUN/$1.ak" --json) ||
		fail "no status from KM $1"
	b=$(jq '.links[0].blocks' <<<"$s")
	o=$(jq '.links[0].out' <<<"$s")
	i=$(jq '.links[0].in' <<<"$s")
	[ "$b" -le "$CAP_BLOCKS" ] && [ "$o" -le "$HALF_CAP" ] &&
		[ "$i" -le "$HALF_CAP" ] && [ $((o + i)) -le "$CAP" ] ||
		fail "KM $1 holds more than the $CAP-byte cap: $s"
	[ "${2:-}" != full ] ||
		{ [ "$b" = "$CAP_BLOCKS" ] && [ "$o" = "$HALF_CAP" ] &&
			[ "$i" = "$HALF_CAP" ]; } ||
		fail "KM $1 pool not exactly full: $s"
}
delivered() {
	"$QKDN" status --km "ipc://$RUN/sim.ctl" --json | jq '.links[0].out'
}

# while the emulator delivers many times the cap, sample both pools
deadline=$(($(date +%s) + 60))
samples=0
while [ "$(delivered)" -lt "$DELIVERED" ]; do
	[ "$(date +%s)" -lt "$deadline" ] ||
		fail "emulator delivered only $(delivered) bytes in 60 s"
	pool_ok A
	pool_ok B
	samples=$((samples + 1))
done
pool_ok A full
pool_ok B full
[ "$("$QKDN" status --km "ipc://$RUN/sim.ctl" --json |
	jq '.links[0].in')" = 0 ] || fail "the emulator dropped blocks"

# paused: each pool holds the same newest CAP_BLOCKS blocks; A can start
# exactly HALF_CAP bytes of key (64 of them key the KEY_SYNC's MAC and its
# acknowledgement's)
"$QKDN" link pause A_B --config "$CFG" --run-dir "$RUN" >/dev/null ||
	fail "could not pause the link"
pool_ok A full
pool_ok B full
n=$(((HALF_CAP - 64) / 32))
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --count "$n" \
	>"$TMP/keys" || fail "the full pool did not give $n keys"
"$QKDN" key get --km "$(AK_B)" --sae bob --ids-from "$TMP/keys" \
	>"$TMP/got" || fail "bob could not fetch the keys"
cmp -s "$TMP/keys" "$TMP/got" || fail "keys differ"
[ "$(out_bytes A)" = 0 ] || fail "A has $(out_bytes A) bytes left"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --bits 8 --json \
	>"$TMP/more.json" 2>/dev/null && fail "more key than the cap"
[ "$(jq -r .error.name "$TMP/more.json")" = insufficient_key_material ] ||
	fail "past the cap: $(cat "$TMP/more.json")"
echo "ok: pools capped at $CAP_BLOCKS blocks while $(delivered) bytes" \
	"were delivered ($samples samples); exactly $n keys from a full pool"
