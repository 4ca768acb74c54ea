# Kq-1 guard (km/kq.c) and the emulator's control socket under a hostile
# local user: with umask 000 the Kq-1, control and Ak sockets are still
# 0600; as root, another uid can neither push a block nor pause the link;
# a block ID must advance: an exact duplicate is ignored, a held ID with
# other bytes marks the link out of sync, a far-future ID is refused and
# key supply goes on.
source "$(dirname "$0")/lib.sh"
PUSH="$BIN/kq_push"
write_net 8000000

other=65534
as_other=0
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid $other --regid $other --clear-groups \
		test -x "$QKDN"; then
	as_other=1
	chmod 0711 "$TMP" # traverse only, as a shared /run would be
	mkdir -m 0711 "$RUN"
fi
(umask 000 && net_up)
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"
wait_for 10 has_out_bytes B 4096 || fail "pool of B never filled"

# the CLI names the socket's own error, not a timeout (any uid)
rc=0
"$QKDN" status --km "ipc://$RUN/none.ak" --timeout 1000 >/dev/null \
	2>"$TMP/none.err" || rc=$?
[ "$rc" != 0 ] || fail "status of a missing socket succeeded"
grep -q "cannot connect to ipc://$RUN/none.ak: No such file or directory" \
	"$TMP/none.err" || fail "status of a missing socket: $(cat "$TMP/none.err")"
rc=0
"$QKDN" key get --km "ipc://$RUN/none.ak" --sae alice --to bob \
	--timeout 1000 >/dev/null 2>"$TMP/none.err" || rc=$?
[ "$rc" != 0 ] || fail "key get from a missing socket succeeded"
grep -q "No such file or directory" "$TMP/none.err" ||
	fail "key get from a missing socket: $(cat "$TMP/none.err")"

for s in A.kq B.kq sim.ctl A.ak B.ak; do
	[ "$(stat -c %a "$RUN/$s")" = 600 ] ||
		fail "$s mode $(stat -c %a "$RUN/$s") under umask 000"
done

# push NODE FILL ID...: push blocks of A_B to NODE's Kq-1 (kq_push stays
# connected until unpush closes its stdin)
push() {
	local node=$1
	shift
	coproc PUSHER { "$PUSH" "ipc://$RUN/$node.kq" A_B 4096 "$@"; }
	local line=""
	read -r -t 10 -u "${PUSHER[0]}" line || true
	[ "$line" = sent ] || fail "kq_push to $node: ${line:-no output}"
}
unpush() {
	local pid=$PUSHER_PID
	eval "exec ${PUSHER[1]}>&-"
	wait "$pid" || true
}
logged() { grep -q "$2" "$RUN/km-$1.log"; }

if [ "$as_other" = 1 ]; then
	# another user can neither push a block nor pause the link
	rc=0
	setpriv --reuid $other --regid $other --clear-groups \
		"$PUSH" "ipc://$RUN/A.kq" A_B 4096 0xAA 1 </dev/null \
		>/dev/null 2>"$TMP/push.err" || rc=$?
	[ "$rc" = 3 ] || fail "uid $other pushed a block (rc $rc)"
	rc=0
	setpriv --reuid $other --regid $other --clear-groups \
		"$QKDN" link pause A_B --config "$CFG" --run-dir "$RUN" \
		--timeout 1000 >/dev/null 2>"$TMP/pause.err" || rc=$?
	[ "$rc" != 0 ] || fail "uid $other paused the link"
	# the CLI names the socket's own error
	grep -qi "permission denied" "$TMP/pause.err" ||
		fail "pause as uid $other: $(cat "$TMP/pause.err")"
	rc=0
	setpriv --reuid $other --regid $other --clear-groups \
		"$QKDN" status --km "ipc://$RUN/A.ak" --timeout 1000 \
		>/dev/null 2>"$TMP/status.err" || rc=$?
	[ "$rc" != 0 ] || fail "uid $other read A's status"
	grep -qi "permission denied" "$TMP/status.err" ||
		fail "status as uid $other: $(cat "$TMP/status.err")"
	rc=0
	setpriv --reuid $other --regid $other --clear-groups \
		"$QKDN" key get --km "ipc://$RUN/A.ak" --sae alice --to bob \
		--timeout 1000 >/dev/null 2>"$TMP/get.err" || rc=$?
	[ "$rc" != 0 ] || fail "uid $other got a key"
	grep -qi "permission denied" "$TMP/get.err" ||
		fail "key get as uid $other: $(cat "$TMP/get.err")"
	status A | jq -e '.links[0].in_sync' >/dev/null ||
		fail "A out of sync after uid $other's attempts"
fi

pause_link
blocks=$(status A | jq '.links[0].blocks')
# the emulator's next block ID (its first plus those it made): the test
# takes it first, as a faulty module would; the emulator's own block of
# that ID then clashes, which must not stop the pool
first=$(sed -n 's/.*first block \([0-9]*\)$/\1/p' "$RUN/qkdsim.log")
made=$("$QKDN" status --km "ipc://$RUN/sim.ctl" --json | jq '.links[0].blocks')
id=$((first + made))
for n in A B; do
	push "$n" 0xAA "$id"
	wait_for 10 eval '[ "$(status '"$n"' | jq ".links[0].blocks")" -gt '"$blocks"' ]' ||
		fail "KM $n did not take block $id"
	unpush
done
[ "$(status A | jq '.links[0].blocks')" = $((blocks + 1)) ] ||
	fail "A holds $(status A | jq '.links[0].blocks') blocks, not $((blocks + 1))"

# an exact duplicate is ignored: no alarm, no new block; an ID below
# every block held is refused (pushed after it on the same pipe: its
# refusal shows both were handled)
push A 0xAA "$id" $((first - 1))
wait_for 10 logged A "block $((first - 1)) refused: not above the newest" ||
	fail "old block $((first - 1)) not refused"
unpush
status A | jq -e '.links[0].in_sync and .links[0].sync_failures == 0' \
	>/dev/null || fail "a duplicate marked A out of sync: $(status A)"
! logged A "arrived again with other bytes" || fail "duplicate raised an alarm"
[ "$(status A | jq '.links[0].blocks')" = $((blocks + 1)) ] ||
	fail "the duplicate or the old block was stored"

# the same ID with other bytes: alarm, out of sync, first bytes kept
push A 0xBB "$id"
wait_for 10 logged A "block $id arrived again with other bytes" ||
	fail "no alarm for block $id with other bytes"
unpush
status A | jq -e '(.links[0].in_sync | not) and .links[0].sync_failures >= 1' \
	>/dev/null || fail "A not out of sync: $(status A)"
[ "$(status A | jq '.links[0].blocks')" = $((blocks + 1)) ] ||
	fail "the clashing block was stored"

# a far-future ID (2^33 past) is refused; the emulator's blocks still land
far=$((id + (1 << 33)))
for n in A B; do
	push "$n" 0xDD "$far"
	wait_for 10 logged "$n" "block $far refused: more than" ||
		fail "far block $far not refused by $n"
	unpush
done
"$QKDN" link resume A_B --config "$CFG" --run-dir "$RUN" >/dev/null ||
	fail "could not resume the link"
wait_for 10 eval '[ "$(status A | jq ".links[0].blocks")" -gt $((blocks + 3)) ]' ||
	fail "A's pool stopped after the far-future block: $(status A)"
wait_for 10 eval '[ "$(status B | jq ".links[0].blocks")" -gt $((blocks + 3)) ]' ||
	fail "B's pool stopped after the far-future block: $(status B)"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json >"$TMP/k.json" ||
	fail "no key after the far-future block: $(cat "$TMP/k.json")"
echo "ok: Kq-1 guarded (other uid tested: $as_other)"
