# The two ends of a link hold different bits in one block (a faulty QKD
# module, a corrupted disk): KM B's copy of the oldest block is altered
# while B is stopped. The KEY_SYNC tag covers the key bits themselves, so
# the next key request that uses that block is refused as failing
# authentication before any key is supplied or stored at either end; both
# KMs mark the link out of sync and count the failure; A gives up the
# block, and the request after that succeeds with equal keys at both ends.
source "$(dirname "$0")/lib.sh"
write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"
pause_link

# alter B's copy of the oldest block while B is stopped
pid=$(cat "$RUN/km-B.pid")
kill -TERM "$pid"
wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "KM B did not stop"
blk=$("$BIN/store_flip" "$RUN/B.db" A_B 4096 "$RUN/B.storage.key") || fail "could not alter B's block"
restart_km B # not running: just started again

link_field() { status "$1" | jq ".links[0].$2"; }
[ "$(link_field A sync_failures)" = 0 ] && [ "$(link_field A in_sync)" = true ] ||
	fail "A's link is out of sync before any key was taken: $(status A)"
supplied_a=$(status A | jq .supplied)

"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json >"$TMP/k.json" \
	2>/dev/null && fail "a key was supplied over a block the ends disagree on"
[ "$(jq -r .error.name "$TMP/k.json")" = authentication_failed ] ||
	fail "refused as $(cat "$TMP/k.json")"
[ "$(jq '.keys | length' "$TMP/k.json")" = 0 ] || fail "keys came with the error"
[ "$(status A | jq .supplied)" = "$supplied_a" ] || fail "A counted a supplied key"
[ "$(status B | jq .pending)" = 0 ] || fail "B stored keys: $(status B)"
for n in A B; do
	[ "$(link_field $n sync_failures)" = 1 ] ||
		fail "KM $n counted $(link_field $n sync_failures) sync failures, not 1"
	[ "$(link_field $n in_sync)" = false ] ||
		fail "KM $n does not show the link out of sync: $(status $n)"
done
grep -q "giving up the pool through block $blk" "$RUN/km-A.log" ||
	fail "A did not give up block $blk"

# the next request uses the next block: equal keys, the link in sync again
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >"$TMP/k2" ||
	fail "no key after the bad block was given up"
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$(cut -d' ' -f1 "$TMP/k2")" \
	>"$TMP/b2" || fail "bob could not fetch the next key"
[ "$(cat "$TMP/b2")" = "$(cat "$TMP/k2")" ] || fail "the keys differ"
for n in A B; do
	[ "$(link_field $n in_sync)" = true ] ||
		fail "KM $n still shows the link out of sync"
	[ "$(link_field $n sync_failures)" = 1 ] || fail "KM $n's count changed"
done
echo "ok: block $blk altered at B: the sync over it failed authentication," \
	"nothing supplied, link marked out of sync; the next key matched"
