# The qkdn CLI end to end: usage errors and exit statuses, bad network
# files, net up / key get / status / link / net restart / net down against
# the real daemons, and net up and net restart failing cleanly when a
# daemon never answers.
# Written to run as tests/integration/test_cli.sh (QKDN_BIN, QKDN_SRC set by
# ctest); by hand:
#   QKDN_BIN=build QKDN_SRC=. bash tools/qkdn/test_cli.sh
source "${QKDN_SRC:?}/tests/integration/lib.sh"

# expect STATUS CMD...: run CMD, which must exit with STATUS
expect() {
	local want=$1 rc=0
	shift
	"$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	[ "$rc" = "$want" ] ||
		fail "'$*' exited $rc, not $want: $(cat "$TMP/err")"
}

# has TEXT...: every TEXT is a line (or part of one) of the last stdout
has() {
	local t
	for t in "$@"; do
		grep -qF -- "$t" "$TMP/out" ||
			fail "output lacks '$t': $(cat "$TMP/out")"
	done
}

# help: 0, the usage on stdout naming every command and common option
expect 0 "$QKDN" help
[ ! -s "$TMP/err" ] || fail "help wrote to stderr: $(cat "$TMP/err")"
has "usage: qkdn COMMAND [ARGS] [OPTIONS]" "qkdn net up FILE [--run-dir DIR]" \
	"qkdn net down [FILE] [--run-dir DIR]" \
	"qkdn net restart NODE --config FILE [--run-dir DIR] [--kill]" \
	"qkdn key get (--km ADDR | --config FILE [--run-dir DIR] [--node ID])" \
	"--sae SAE (--to SAE [--bits N] [--count N]" \
	"| --id UUID [--id UUID ...] | --ids-from FILE)" \
	"qkdn status (--km ADDR | --config FILE [--run-dir DIR] --node ID)" \
	"qkdn link pause LINK (--sim ADDR | --config FILE [--run-dir DIR])" \
	"qkdn link resume LINK (--sim ADDR | --config FILE [--run-dir DIR])" \
	"qkdn help [COMMAND]" "--json" "--timeout MS" "-h, --help"
cp "$TMP/out" "$TMP/help"
expect 0 "$QKDN" --help
cmp -s "$TMP/out" "$TMP/help" || fail "--help differs from help"
expect 0 "$QKDN" net up --help
has "usage: qkdn net up FILE [--run-dir DIR]" \
	"options of every command: --json, --timeout MS, --help"
! grep -q "key get" "$TMP/out" || fail "net up --help shows other commands"
expect 0 "$QKDN" help net up
has "usage: qkdn net up FILE [--run-dir DIR]"
expect 0 "$QKDN" help key
has "qkdn key get (--km ADDR" "--ids-from FILE"
expect 0 "$QKDN" key get --help
has "usage: qkdn key get (--km ADDR" "--ids-from FILE" "--json"
expect 0 "$QKDN" status --help
has "usage: qkdn status (--km ADDR | --config FILE [--run-dir DIR] --node ID)"
expect 0 "$QKDN" help link
has "qkdn link pause LINK" "qkdn link resume LINK"
expect 0 "$QKDN" help net
has "qkdn net up FILE" "qkdn net down [FILE]" "qkdn net restart NODE"

# usage errors: 2, with the usage on stderr and nothing on stdout
expect 2 "$QKDN"
[ ! -s "$TMP/out" ] || fail "usage error wrote to stdout"
grep -qF "usage: qkdn COMMAND" "$TMP/err" || fail "no usage: $(cat "$TMP/err")"
expect 2 "$QKDN" help bogus
grep -q "^qkdn: no command 'bogus'" "$TMP/err" || fail "$(cat "$TMP/err")"
expect 2 "$QKDN" bogus
expect 2 "$QKDN" net
expect 2 "$QKDN" net up
expect 2 "$QKDN" key get --km ipc:///nowhere --sae a --to b --bits 12
expect 2 "$QKDN" key get --km ipc:///nowhere --sae a --to b --id x
expect 2 "$QKDN" status --km ipc:///nowhere --sae a
expect 2 "$QKDN" status --json --json --km ipc:///nowhere
expect 2 "$QKDN" net restart --config "$TMP/none.cnf"
expect 2 "$QKDN" net restart A --run-dir "$TMP/badrun"
expect 2 "$QKDN" net restart A --config "$TMP/none.cnf" --kill --kill
[ ! -s "$TMP/out" ] || fail "usage error wrote to stdout"

# a bad network file: its FILE:LINE: reason, status 2, JSON error on --json
bad="$QKDN_SRC/examples/bad/syntax.cnf"
expect 2 "$QKDN" net up "$bad" --run-dir "$TMP/badrun"
grep -q "syntax.cnf:6: " "$TMP/err" || fail "no FILE:LINE: $(cat "$TMP/err")"
expect 2 "$QKDN" net up "$bad" --run-dir "$TMP/badrun" --json
[ "$(jq -r .error.name "$TMP/out")" = bad_configuration ] ||
	fail "bad file JSON: $(cat "$TMP/out")"
[ ! -e "$TMP/badrun" ] || fail "run dir made for a bad file"

# nothing to answer: status 1 with the error named (a missing socket fails
# at once as unreachable, not after the timeout)
expect 1 "$QKDN" status --km "ipc://$TMP/none.ak" --timeout 300 --json
[ "$(jq -r .error.name "$TMP/out")" = unreachable ] ||
	fail "unreachable JSON: $(cat "$TMP/out")"
grep -q "^qkdn: unreachable: " "$TMP/err" || fail "stderr: $(cat "$TMP/err")"

# the real network
write_net 8000000
expect 0 "$QKDN" net up "$CFG" --run-dir "$RUN"
grep -q "^A ak=ipc://$RUN/A.ak kx=tcp://" "$TMP/out" ||
	fail "net up output: $(cat "$TMP/out")"
for d in qkdsim km-A km-B; do
	kill -0 "$(cat "$RUN/$d.pid")" || fail "$d not running"
done
[ "$(stat -c %a "$RUN")" = 700 ] || fail "run dir mode $(stat -c %a "$RUN")"
expect 1 "$QKDN" net up "$CFG" --run-dir "$RUN"
grep -q "already running" "$TMP/err" || fail "second net up: $(cat "$TMP/err")"
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"

# key request, then key request with ID, text and JSON
expect 0 "$QKDN" key get --km "$(AK_A)" --sae alice --to bob --count 3
cp "$TMP/out" "$TMP/src"
[ "$(wc -l <"$TMP/src")" = 3 ] || fail "3 keys: $(cat "$TMP/src")"
expect 0 "$QKDN" key get --km "$(AK_B)" --sae bob --ids-from "$TMP/src"
cmp -s "$TMP/out" "$TMP/src" || fail "keys differ: $(cat "$TMP/out")"
expect 1 "$QKDN" key get --km "$(AK_B)" --sae bob --json \
	--id "$(head -n1 "$TMP/src" | cut -d' ' -f1)"
[ "$(jq -r .error.name "$TMP/out")" = already_supplied ] ||
	fail "second fetch: $(cat "$TMP/out")"
expect 0 "$QKDN" key get --config "$CFG" --run-dir "$RUN" --sae alice \
	--to bob --bits 128 --json
id=$(jq -r '.keys[0].id' "$TMP/out")
key=$(jq -r '.keys[0].key' "$TMP/out")
[ "${#key}" = 32 ] || fail "128-bit key: $key"
expect 0 "$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" --json
[ "$(jq -r '.keys[0].key' "$TMP/out")" = "$key" ] || fail "JSON keys differ"

# status
expect 0 "$QKDN" status --config "$CFG" --run-dir "$RUN" --node A --json
[ "$(jq -r .node "$TMP/out")" = A ] || fail "status: $(cat "$TMP/out")"
[ "$(jq -r .supplied "$TMP/out")" = 4 ] || fail "supplied: $(cat "$TMP/out")"
[ "$(jq -r '.links[0].peer' "$TMP/out")" = B ] || fail "peer"
expect 0 "$QKDN" status --km "$(AK_B)"
grep -q "^node: B$" "$TMP/out" || fail "status text: $(cat "$TMP/out")"

# link control
expect 0 "$QKDN" link pause A_B --config "$CFG" --run-dir "$RUN"
[ "$(cat "$TMP/out")" = ok ] || fail "pause: $(cat "$TMP/out")"
expect 1 "$QKDN" link resume X_Y --sim "ipc://$RUN/sim.ctl"
expect 2 "$QKDN" link resume X_Y --config "$CFG" --run-dir "$RUN"
expect 0 "$QKDN" link resume A_B --sim "ipc://$RUN/sim.ctl" --json
[ "$(jq -r .ok "$TMP/out")" = true ] || fail "resume: $(cat "$TMP/out")"

# net restart: SIGKILL (a crash), then the KM again, answering as soon as
# the command returns
old=$(cat "$RUN/km-B.pid")
expect 0 "$QKDN" net restart B --config "$CFG" --run-dir "$RUN" --kill
new=$(cat "$RUN/km-B.pid")
[ "$new" != "$old" ] || fail "km-B kept pid $old"
has "killed km-B (pid $old)" "started km-B (pid $new)" \
	"B ak=ipc://$RUN/B.ak kx=tcp://"
# gone, or a zombie its new parent has not reaped yet
state=$(sed -n 's/^[0-9]* (.*) \(.\) .*/\1/p' "/proc/$old/stat" 2>/dev/null) || true
[ -z "$state" ] || [ "$state" = Z ] || fail "the old km-B ($old) still runs"
expect 0 "$QKDN" status --km "$(AK_B)" --timeout 1000 --json
[ "$(jq -r .node "$TMP/out")" = B ] || fail "status after restart"
# SIGTERM, from a file of its own, with the caller's environment; JSON
cp "$CFG" "$TMP/net-b.cnf"
old=$new
expect 0 env QKDN_CLI_TEST=restart "$QKDN" net restart B \
	--config "$TMP/net-b.cnf" --run-dir "$RUN" --json
new=$(cat "$RUN/km-B.pid")
[ "$(jq -r '.stopped[0].name + " " + .stopped[0].signal' "$TMP/out")" = \
	"km-B TERM" ] || fail "restart JSON: $(cat "$TMP/out")"
[ "$(jq '.stopped[0].pid' "$TMP/out") $(jq '.node.pid' "$TMP/out")" = \
	"$old $new" ] || fail "restart JSON pids: $(cat "$TMP/out")"
[ "$(jq -r '.node.id + " " + .node.ak' "$TMP/out")" = "B ipc://$RUN/B.ak" ] ||
	fail "restart JSON node: $(cat "$TMP/out")"
tr '\0' '\n' <"/proc/$new/cmdline" | grep -qx "$TMP/net-b.cnf" ||
	fail "km-B does not read $TMP/net-b.cnf"
tr '\0' '\n' <"/proc/$new/environ" | grep -qx QKDN_CLI_TEST=restart ||
	fail "km-B did not get the caller's environment"
expect 2 "$QKDN" net restart C --config "$CFG" --run-dir "$RUN"
grep -q "has no node 'C'" "$TMP/err" || fail "restart C: $(cat "$TMP/err")"
expect 0 "$QKDN" key get --km "$(AK_A)" --sae alice --to bob
expect 0 "$QKDN" key get --km "$(AK_B)" --sae bob --id "$(cut -d' ' -f1 "$TMP/out")"

# net down
expect 0 "$QKDN" net down --run-dir "$RUN" --json
[ "$(jq '.stopped | length' "$TMP/out")" = 3 ] ||
	fail "net down: $(cat "$TMP/out")"
! ls "$RUN"/*.pid >/dev/null 2>&1 || fail "pid files left"
expect 0 "$QKDN" net down "$CFG"
grep -q "nothing running" "$TMP/out" || fail "second down: $(cat "$TMP/out")"

# a KM that never answers: net up gives up at the deadline, names it, shows
# its log and leaves nothing running
mkdir "$TMP/fake"
cp "$QKDN" "$TMP/fake/qkdn"
ln -s "$(cd "$BIN" && pwd)/qkdn-qkdsim" "$TMP/fake/qkdn-qkdsim"
printf '#!/bin/sh\necho $$ >>"%s"\necho "fake km $*"\nexec sleep 60\n' \
	"$TMP/fake/pids" >"$TMP/fake/qkdn-km"
chmod +x "$TMP/fake/qkdn-km"
expect 1 "$TMP/fake/qkdn" net up "$CFG" --run-dir "$RUN" --timeout 500
grep -q "^qkdn: timeout: .*km-A" "$TMP/err" || fail "timeout: $(cat "$TMP/err")"
grep -q "fake km --config" "$TMP/err" || fail "no log tail: $(cat "$TMP/err")"
! ls "$RUN"/*.pid >/dev/null 2>&1 || fail "pid files left after failure"
[ "$(wc -l <"$TMP/fake/pids")" = 2 ] || fail "fake KMs did not start"
while read -r pid; do
	! kill -0 "$pid" 2>/dev/null || fail "fake KM $pid left running"
done <"$TMP/fake/pids"
# and net restart the same, for the one KM (none ran: it is just started)
expect 1 "$TMP/fake/qkdn" net restart A --config "$CFG" --run-dir "$RUN" \
	--timeout 500
grep -q "^qkdn: timeout: .*km-A (ipc://$RUN/A.ak): no answer within 500 ms; km-A stopped" \
	"$TMP/err" || fail "restart timeout: $(cat "$TMP/err")"
grep -q "fake km --config" "$TMP/err" || fail "no log tail: $(cat "$TMP/err")"
! ls "$RUN"/*.pid >/dev/null 2>&1 || fail "pid file left after failure"
[ "$(wc -l <"$TMP/fake/pids")" = 3 ] || fail "fake KM did not start"
while read -r pid; do
	! kill -0 "$pid" 2>/dev/null || fail "fake KM $pid left running"
done <"$TMP/fake/pids"

echo "ok: qkdn CLI"
