#!/usr/bin/env bash
# The demo: set up and build, start a local two-node QKD network (emulated
# QKD link, two key managers), take a key for bob at alice's node (Q.4160
# I.1 steps 1-2), fetch it by ID at bob's node (steps 4-5), and show both
# side by side. Everything is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

QKDN=build/bin/qkdn
TMP=$(mktemp -d /tmp/qkdn-demo.XXXXXX)
RUN="$TMP/run"
trap '"$QKDN" net down --run-dir "$RUN" >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT

echo "== qkdn net up examples/two-node.cnf"
"$QKDN" net up examples/two-node.cnf --run-dir "$RUN"
AK_A="ipc://$RUN/A.ak"
AK_B="ipc://$RUN/B.ak"

# the emulated link needs a moment to deliver its first key blocks
for _ in $(seq 1 200); do
	out=$("$QKDN" status --km "$AK_A" --json | jq '.links[0].out')
	[ "$out" -ge 64 ] && break
	sleep 0.05
done

echo
echo "== alice (node A) asks KM A for a 256-bit key shared with bob"
src=$("$QKDN" key get --km "$AK_A" --sae alice --to bob --bits 256 --json)
id=$(jq -r '.keys[0].id' <<<"$src")
echo "== bob (node B) fetches key $id from KM B"
dst=$("$QKDN" key get --km "$AK_B" --sae bob --id "$id" --json)

printf '\n%-8s %-66s %s\n' "" "alice @ node A (source)" "bob @ node B (destination)"
printf '%-8s %-66s %s\n' "key ID" "$id" "$(jq -r '.keys[0].id' <<<"$dst")"
printf '%-8s %-66s %s\n' "key" "$(jq -r '.keys[0].key' <<<"$src")" \
	"$(jq -r '.keys[0].key' <<<"$dst")"
if [ "$(jq -r '.keys[0].key' <<<"$src")" = "$(jq -r '.keys[0].key' <<<"$dst")" ]; then
	echo "=> the same key at both ends"
else
	echo "=> MISMATCH" >&2
	exit 1
fi

echo
echo "== a second fetch of the same ID is refused:"
"$QKDN" key get --km "$AK_B" --sae bob --id "$id" || true
echo
echo "== qkdn status --km KM A"
"$QKDN" status --km "$AK_A"
