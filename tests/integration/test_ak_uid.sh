# Ak peer uid check (km/ak.c check_sae): on ipc, an SAE with a configured
# uid is served only to a client running as that uid, an SAE without one
# only to a client running as the KM's own uid; a refused client gets
# not_authorised and changes nothing (supplied and pending counts exact).
# Run as root, it also runs clients as the other uid (setpriv).
source "$(dirname "$0")/lib.sh"
me=$(id -u)
other=$((me + 1))
# carol runs as the KM's uid, dave as another one; alice and bob have none
write_net 8000000 "" 600 "" "carol A $me
dave A $other"

as_other=0
if [ "$me" = 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid "$other" --regid "$other" --clear-groups \
		test -x "$QKDN"; then
	as_other=1
	# let the other uid reach the sockets: traverse only, no listing
	chmod 0711 "$TMP"
	mkdir -m 0711 "$RUN"
fi
net_up
wait_for 10 has_out_bytes A 4096 || fail "pool of A never filled"
wait_for 10 has_out_bytes B 4096 || fail "pool of B never filled"

# an SAE of node A with a uid opens A's Ak socket to every user; B has none
[ "$(stat -c %a "$RUN/A.ak")" = 666 ] || fail "A.ak mode $(stat -c %a "$RUN/A.ak")"
[ "$(stat -c %a "$RUN/B.ak")" = 600 ] || fail "B.ak mode $(stat -c %a "$RUN/B.ak")"

# get NAME ARGS...: qkdn key get ARGS (as this uid) into $TMP/NAME.json;
# its exit status is kept in $TMP/NAME.rc
get() {
	local name=$1 rc=0
	shift
	"$QKDN" key get --json "$@" >"$TMP/$name.json" 2>"$TMP/$name.err" ||
		rc=$?
	echo "$rc" >"$TMP/$name.rc"
}
get_other() { # as get, with the client running as uid $other
	local name=$1 rc=0
	shift
	setpriv --reuid "$other" --regid "$other" --clear-groups \
		"$QKDN" key get --json "$@" >"$TMP/$name.json" \
		2>"$TMP/$name.err" || rc=$?
	echo "$rc" >"$TMP/$name.rc"
}
served() { # NAME: the request succeeded with exactly one key
	[ "$(cat "$TMP/$1.rc")" = 0 ] ||
		fail "$1 refused: $(cat "$TMP/$1.err")"
	[ "$(jq '.keys | length' "$TMP/$1.json")" = 1 ] ||
		fail "$1: $(cat "$TMP/$1.json")"
}
refused_uid() { # NAME SAE UID: refused as not_authorised for that uid
	[ "$(cat "$TMP/$1.rc")" = 1 ] ||
		fail "$1 not refused: $(cat "$TMP/$1.json")"
	[ "$(jq -r .error.name "$TMP/$1.json")" = not_authorised ] ||
		fail "$1 wrong refusal: $(cat "$TMP/$1.json")"
	jq -r .error.reason "$TMP/$1.json" |
		grep -q "SAE $2 must connect as uid $3" ||
		fail "$1 reason: $(cat "$TMP/$1.json")"
	[ "$(jq -c .keys "$TMP/$1.json")" = "[]" ] || fail "$1 got keys"
}
same_key() { # NAME1 NAME2: both hold the same key ID and key
	[ "$(jq -c '.keys' "$TMP/$1.json")" = "$(jq -c '.keys' "$TMP/$2.json")" ] ||
		fail "keys of $1 and $2 differ"
}
id_of() { jq -r '.keys[0].id' "$TMP/$1.json"; }

# served: carol (uid = ours) and alice (no uid: the KM's uid, ours)
get carol --km "$(AK_A)" --sae carol --to bob
served carol
get carol_b --km "$(AK_B)" --sae bob --id "$(id_of carol)"
served carol_b
same_key carol carol_b
get alice --km "$(AK_A)" --sae alice --to bob
served alice
get alice_b --km "$(AK_B)" --sae bob --id "$(id_of alice)"
served alice_b
same_key alice alice_b
expect_status A 2 0 0
expect_status B 2 0 0

# refused: dave's uid is not ours; no key is made, nothing reaches B
get dave --km "$(AK_A)" --sae dave --to bob
refused_uid dave dave "$other"
expect_status A 2 0 1
expect_status B 2 0 0

# a key bob makes for dave waits at A; we may not fetch it as dave
get for_dave --km "$(AK_B)" --sae bob --to dave
served for_dave
expect_status B 3 0 0
expect_status A 2 1 1
get dave_id --km "$(AK_A)" --sae dave --id "$(id_of for_dave)"
refused_uid dave_id dave "$other"
expect_status A 2 1 2

if [ "$as_other" = 0 ]; then
	echo "ok: uid checks as uid $me (not root: other-uid clients skipped)"
	exit 0
fi

# as uid $other: dave is served, and the refusal above consumed nothing
get_other dave_id2 --km "$(AK_A)" --sae dave --id "$(id_of for_dave)"
served dave_id2
same_key for_dave dave_id2
expect_status A 3 0 2
get_other dave2 --km "$(AK_A)" --sae dave --to bob
served dave2
expect_status A 4 0 2
expect_status B 3 1 0
get dave2_b --km "$(AK_B)" --sae bob --id "$(id_of dave2)"
served dave2_b
same_key dave2 dave2_b
expect_status B 4 0 0

# ... but not as alice (no uid: only the KM's uid) nor as carol
get_other alice2 --km "$(AK_A)" --sae alice --to bob
refused_uid alice2 alice "$me"
get_other carol2 --km "$(AK_A)" --sae carol --to bob
refused_uid carol2 carol "$me"
expect_status A 4 0 4
expect_status B 4 0 0
echo "ok: uid checks as uid $me and as uid $other"
