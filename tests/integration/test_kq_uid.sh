# kq_uid (docs/network-file.md): a KM takes Kq-1 blocks only from a module
# running as the configured uid. B expects a uid the emulator does not run
# as: B gets no block and logs the refusal, while A (default: its own uid,
# the emulator's) fills its pool.
source "$(dirname "$0")/lib.sh"
me=$(id -u)
write_net 8000000
sed -i "/^\[B\]$/a kq_uid = $((me + 1))" "$CFG"
net_up
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"
wait_for 10 grep -q "dropped a Kq-1 message from uid $me" "$RUN/km-B.log" ||
	fail "B logged no refusal"
[ "$(status B | jq '.links[0].blocks')" = 0 ] ||
	fail "B took blocks from uid $me: $(status B)"
[ "$(status A | jq '.links[0].blocks')" -gt 0 ] || fail "A has no blocks"
# the refusals are rate-limited, not one line per block
n=$(grep -c "dropped a Kq-1 message" "$RUN/km-B.log")
[ "$n" -le 30 ] || fail "B logged $n refusals"
echo "ok: B refused blocks from uid $me"
