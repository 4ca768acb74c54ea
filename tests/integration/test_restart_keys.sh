# Keys waiting at the destination KM across restarts (km/store.c, the boot
# ID rule; QKDN_TEST_BOOT_ID stands in for the kernel's boot ID):
#  1. a clean stop (qkdn net down: SIGTERM) keeps every waiting key, even
#     when the restart comes after a reboot (new boot ID);
#  2. SIGKILL and a restart on the same boot keeps them too, and the
#     tombstone of a key fetched just before the kill: no second supply;
#  3. SIGKILL and a restart with a new boot ID (a power cut) drops every
#     waiting key and tombstone: fetches get unknown_key_id; and the next
#  4. key request succeeds: KM A catches up with B's in-mark in one step.
# Pending and supplied counts are exact after each restart (counters of
# supplied keys start at 0 with each run of a KM).
source "$(dirname "$0")/lib.sh"
N=5
write_net 8000000

# boot_id_is NODE ID: the running KM of NODE got QKDN_TEST_BOOT_ID=ID
boot_id_is() {
	local pid
	pid=$(cat "$RUN/km-$1.pid") || fail "no pid file of km $1"
	tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "QKDN_TEST_BOOT_ID=$2" ||
		fail "km $1 (pid $pid) runs without QKDN_TEST_BOOT_ID=$2"
}

key_line() { sed -n "${1}p" "$TMP/keys"; } # "ID KEY" of key number $1
key_id() { key_line "$1" | cut -d' ' -f1; }

# fetch I: bob gets key number I, the same key alice got
fetch() {
	"$QKDN" key get --km "$(AK_B)" --sae bob --id "$(key_id "$1")" \
		>"$TMP/got" 2>"$TMP/got.err" ||
		fail "key $1 not supplied: $(cat "$TMP/got.err")"
	[ "$(cat "$TMP/got")" = "$(key_line "$1")" ] || fail "key $1 differs"
}
# refused I ERROR: bob's fetch of key number I is refused with ERROR
refused() {
	"$QKDN" key get --km "$(AK_B)" --sae bob --id "$(key_id "$1")" \
		--json >"$TMP/ref.json" 2>/dev/null &&
		fail "key $1 supplied, expected $2"
	[ "$(jq -r .error.name "$TMP/ref.json")" = "$2" ] ||
		fail "key $1: expected $2, got $(cat "$TMP/ref.json")"
}

export QKDN_TEST_BOOT_ID=boot-1
net_up
boot_id_is A boot-1
boot_id_is B boot-1
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --count "$N" \
	>"$TMP/keys" || fail "key request"
[ "$(wc -l <"$TMP/keys")" = "$N" ] || fail "expected $N keys"
expect_status B 0 "$N" 0

# 1. clean stop, then a restart after a reboot: all N keys still wait
"$QKDN" net down --run-dir "$RUN" --json >"$TMP/down.json" ||
	fail "net down: $(cat "$TMP/down.json")"
[ "$(jq -r '.stopped[] | select(.name == "km-B") | .signal' \
	"$TMP/down.json")" = TERM ] || fail "km B not stopped cleanly:" \
	"$(cat "$TMP/down.json")"
export QKDN_TEST_BOOT_ID=boot-2
net_up
boot_id_is A boot-2
boot_id_is B boot-2
expect_status B 0 "$N" 0
fetch 1
expect_status B 1 $((N - 1)) 0

# 2. SIGKILL right after a fetch, restart on the same boot: the waiting
# keys are there, the fetched ones stay supplied
fetch 2
expect_status B 2 $((N - 2)) 0
restart_km --kill B
boot_id_is B boot-2
expect_status B 0 $((N - 2)) 0
refused 2 already_supplied
refused 1 already_supplied
fetch 3
expect_status B 1 $((N - 3)) 2

# 3. SIGKILL, restart after a reboot (power cut): nothing waits any more,
# nothing can be fetched, waiting or supplied before
export QKDN_TEST_BOOT_ID=boot-3
restart_km --kill B
boot_id_is B boot-3
expect_status B 0 0 0
for i in $(seq 1 "$N"); do
	refused "$i" unknown_key_id
done
expect_status B 0 0 "$N"

# 4. B moved its in-mark past every block it held, so A's next positions
# lie behind it: B names the last block it used, A moves past it in one
# step, and the very next key request succeeds with matching keys
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >"$TMP/after" \
	2>"$TMP/after.err" || fail "no key after B's power cut: $(cat "$TMP/after.err")"
grep -q "peer has used link A_B through block" "$RUN/km-A.log" ||
	fail "A did not move past the positions B had used"
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$(cut -d' ' -f1 "$TMP/after")" \
	>"$TMP/after.b" || fail "bob could not fetch the key made after the power cut"
[ "$(cat "$TMP/after.b")" = "$(cat "$TMP/after")" ] || fail "the key differs"
echo "ok: $N keys kept across a clean stop and a reboot, and across" \
	"SIGKILL on the same boot; dropped after SIGKILL and a reboot;" \
	"supply resumed at once after the peer's power cut"
