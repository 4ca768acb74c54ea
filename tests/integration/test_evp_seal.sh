# The provider's KEM through plain EVP calls (examples/seal.c, open.c):
# bob (node B) exports his "qkd" public key; alice (node A) seals a file to
# it with a fresh QKD key (encapsulate: KM A makes a key for bob); bob opens
# it (decapsulate: KM B supplies the key by ID) and gets the same bytes.
# Opening twice fails because the KM supplies each key once; a tampered
# body, a tampered key ID and mallory (another SAE of node B) all fail and
# leave no output behind. Both programs load the provider only through
# OPENSSL_CONF. Every step costs exactly the keys it must: one at KM A per
# seal, one at KM B per open that reaches the key (none for a refused ID or
# an input that is not sealed).
source "$(dirname "$0")/tls_lib.sh"
write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"

SEAL="$BIN/qkdn-seal"
OPEN="$BIN/qkdn-open"
ossl_conf "$TMP/alice.cnf" "$(AK_A)" alice qkd
ossl_conf "$TMP/bob.cnf" "$(AK_B)" bob qkd
ossl_conf "$TMP/mallory.cnf" "$(AK_B)" mallory qkd
as() { # as SAE CMD...: run CMD as that application (its OPENSSL_CONF)
	local sae=$1
	shift
	OPENSSL_CONF="$TMP/$sae.cnf" "$@"
}
seal() { as alice "$SEAL" --recipient "$TMP/bob.pub" "$@"; }
# since A0 B0 WHAT DA DB: KM A supplied DA keys and KM B DB since A0/B0
since() {
	local da=$(($(supplied A) - $1)) db=$(($(supplied B) - $2))
	[ "$da" = "$4" ] && [ "$db" = "$5" ] ||
		fail "$3: KM A supplied $da keys (expected $4), KM B $db (expected $5)"
}
no_leftovers() { # no output and no temporary file (OUT.XXXXXX) beside it
	local f
	for f in "$1" "$1".??????; do
		[ ! -e "$f" ] || fail "left behind: $f"
	done
}

# bob's public key: 0x01, length, SAE ID
as bob "$OPEN" --export-pub "$TMP/bob.pub" || fail "export-pub"
[ "$(hex_at "$TMP/bob.pub" 0 5)" = "0103626f62" ] ||
	fail "public key is $(hex_at "$TMP/bob.pub" 0 64), not 01 03 'bob'"

# seal at A, open at B: byte-identical; one key from each KM
head -c 1000000 /dev/urandom >"$TMP/plain"
a0=$(supplied A)
b0=$(supplied B)
seal "$TMP/plain" "$TMP/sealed" 2>"$TMP/seal.err" ||
	fail "seal: $(cat "$TMP/seal.err")"
[ "$(head -c 8 "$TMP/sealed")" = QKDNSEAL ] || fail "no magic"
[ "$(hex_at "$TMP/sealed" 8 2)" = 0110 ] ||
	fail "expected version 1 and a 16-byte key ID"
[ "$(stat -c %s "$TMP/sealed")" = $((1000000 + 10 + 16 + 12 + 16)) ] ||
	fail "sealed size $(stat -c %s "$TMP/sealed")"
id=$(uuid "$(hex_at "$TMP/sealed" 10 16)")
grep -qF "with key $id" "$TMP/seal.err" ||
	fail "seal reported another key ID: $(cat "$TMP/seal.err")"
[ "$(supplied A)" = $((a0 + 1)) ] || fail "KM A supplied $(($(supplied A) - a0)) keys for one seal"

as bob "$OPEN" "$TMP/sealed" "$TMP/opened" 2>"$TMP/open.err" ||
	fail "open: $(cat "$TMP/open.err")"
cmp "$TMP/plain" "$TMP/opened" || fail "opened file differs"
[ "$(stat -c %a "$TMP/opened")" = 600 ] || fail "plaintext is not 0600"
[ "$(supplied B)" = $((b0 + 1)) ] || fail "KM B supplied $(($(supplied B) - b0)) keys for one open"
echo "ok: 1 MB sealed at A with key $id, opened at B byte-identical"

# opening twice fails: the KM supplied that key already
a0=$(supplied A)
b0=$(supplied B)
rc=0
as bob "$OPEN" "$TMP/sealed" "$TMP/again" 2>"$TMP/again.err" || rc=$?
[ "$rc" = 1 ] || fail "second open: exit $rc: $(cat "$TMP/again.err")"
grep -q "opens only once" "$TMP/again.err" ||
	fail "second open: unclear error: $(cat "$TMP/again.err")"
grep -qi "already supplied" "$TMP/again.err" ||
	fail "second open: the KM's reason is missing: $(cat "$TMP/again.err")"
no_leftovers "$TMP/again"
since "$a0" "$b0" "second open" 0 0
echo "ok: second open refused: $(head -n 1 "$TMP/again.err")"

# a flipped bit in the body: the key is fetched, the tag fails, no output
echo "short message" >"$TMP/plain2"
a0=$(supplied A)
b0=$(supplied B)
seal "$TMP/plain2" "$TMP/body" 2>/dev/null || fail "seal 2"
flip_byte "$TMP/body" $((54 + 3))
rc=0
as bob "$OPEN" "$TMP/body" "$TMP/body.out" 2>"$TMP/body.err" || rc=$?
[ "$rc" = 3 ] || fail "tampered body: exit $rc: $(cat "$TMP/body.err")"
grep -q "authentication failed" "$TMP/body.err" ||
	fail "tampered body: unclear error: $(cat "$TMP/body.err")"
no_leftovers "$TMP/body.out"
since "$a0" "$b0" "seal, tampered body" 1 1
echo "ok: tampered body refused: $(head -n 1 "$TMP/body.err")"

# a flipped bit in the key ID: KM B knows no such key; the real key stays
a0=$(supplied A)
b0=$(supplied B)
seal "$TMP/plain2" "$TMP/kid" 2>/dev/null || fail "seal 3"
real=$(uuid "$(hex_at "$TMP/kid" 10 16)")
flip_byte "$TMP/kid" 25
rc=0
as bob "$OPEN" "$TMP/kid" "$TMP/kid.out" 2>"$TMP/kid.err" || rc=$?
[ "$rc" = 1 ] || fail "tampered key ID: exit $rc: $(cat "$TMP/kid.err")"
grep -qi "unknown key" "$TMP/kid.err" ||
	fail "tampered key ID: unclear error: $(cat "$TMP/kid.err")"
no_leftovers "$TMP/kid.out"
since "$a0" "$b0" "seal, tampered key ID" 1 0
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$real" >/dev/null ||
	fail "the real key of a file with a tampered ID was consumed"
echo "ok: tampered key ID refused: $(head -n 1 "$TMP/kid.err")"

# mallory, also on node B, cannot open bob's file; bob still can, once
a0=$(supplied A)
b0=$(supplied B)
seal "$TMP/plain2" "$TMP/m" 2>/dev/null || fail "seal 4"
rc=0
as mallory "$OPEN" "$TMP/m" "$TMP/m.out" 2>"$TMP/m.err" || rc=$?
[ "$rc" = 1 ] || fail "mallory: exit $rc: $(cat "$TMP/m.err")"
grep -qi "not authori" "$TMP/m.err" ||
	fail "mallory: unclear error: $(cat "$TMP/m.err")"
no_leftovers "$TMP/m.out"
since "$a0" "$b0" "seal, mallory's open" 1 0
as bob "$OPEN" "$TMP/m" "$TMP/m.bob" 2>"$TMP/m.bob.err" ||
	fail "bob after mallory: $(cat "$TMP/m.bob.err")"
cmp "$TMP/plain2" "$TMP/m.bob" || fail "bob after mallory: differs"
since "$a0" "$b0" "seal, mallory's open, bob's open" 1 1
echo "ok: mallory refused, bob opened it afterwards"

# stdin in, empty input, and a file that is not sealed
: >"$TMP/empty"
a0=$(supplied A)
b0=$(supplied B)
seal - "$TMP/e.sealed" <"$TMP/empty" 2>/dev/null || fail "seal from stdin"
as bob "$OPEN" "$TMP/e.sealed" "$TMP/e.out" 2>/dev/null || fail "open empty"
cmp "$TMP/empty" "$TMP/e.out" || fail "empty file differs"
since "$a0" "$b0" "empty input sealed and opened" 1 1
b0=$(supplied B)
rc=0
as bob "$OPEN" "$TMP/plain2" "$TMP/n.out" 2>"$TMP/n.err" || rc=$?
[ "$rc" = 3 ] && grep -q "not a file made by qkdn-seal" "$TMP/n.err" ||
	fail "unsealed input: exit $rc: $(cat "$TMP/n.err")"
no_leftovers "$TMP/n.out"
since "$a0" "$b0" "unsealed input" 1 0
echo "ok: stdin, empty input and unsealed input"
