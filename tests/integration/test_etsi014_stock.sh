# The gateway's key stock (etsi014/stock.c, docs/etsi014.md "Key stock"):
# gateway A keeps the default stock (etsi014_stock = 32 keys per caller,
# slave and size), gateway B none (etsi014_stock = 0). key_ttl is 32 s on
# both nodes, so a stocked key's max age is 8 s (min(60 s, key_ttl / 4)).
# Asserts:
#  1. with etsi014_stock = 0 (gateway B) nothing beyond the request is
#     taken: KM B's supplied grows by exactly the keys asked (first, since
#     its dec_keys at A counts at KM A);
#  2. the first enc_keys at A is served by the KM and starts the stock: KM
#     A's supplied counter grows by exactly 1 + 32 (the request, then one
#     refill of the whole stock) and no more;
#  3. a run of enc_keys (GET of 1 key, POST of 2) draws on the stock: KM
#     A supplies nothing more meanwhile; every key ID is distinct; each
#     key equals what dec_keys at B returns; a second dec_keys of each is
#     400 "keys not found" (the mutant etsi-stock-key-twice fails here);
#  4. a stocked key past its max age is not handed out: past the max age,
#     the key enc_keys hands out is younger than the max age (its UUIDv7
#     key ID says when KM A made it), and the expired keys were replaced
#     by exactly one refill (the mutant etsi-stock-expired-served fails
#     here);
#  5. no key of any reply appears in any log.
source "$(dirname "$0")/etsi014_lib.sh"
TTL=32
MAX_AGE_MS=$((TTL * 1000 / 4))
STOCK=32
etsi014_net "" "etsi014_stock = 0" "" "$TTL"
net_up
wait_for 10 has_out_bytes A 8192 || fail "pool of A never filled"
wait_for 10 has_out_bytes B 8192 || fail "pool of B never filled"
K="api/v1/keys"
supplied() { status_field "$1" .supplied; }
# key_ms ID: when the KM made a key (ms since the epoch): a UUIDv7's
# first 48 bits
key_ms() { echo $((16#$(tr -d - <<<"$1" | cut -c1-12))); }
now_ms() { date +%s%3N; }

# ---- 1. no stock: nothing beyond the request ----
b0=$(supplied B)
call nb1 bob "$GW_B/$K/alice/enc_keys"
expect nb1 200
call nb2 bob "$GW_B/$K/alice/enc_keys" -d '{"number":3}'
expect nb2 200
sleep 1 # a refill would have come by now
b1=$(supplied B)
[ "$b1" = $((b0 + 4)) ] ||
	fail "KM B supplied $((b1 - b0)) keys for 4 asked through a gateway with etsi014_stock = 0"
grep -q "key stock 0 a triple" "$RUN/etsi014-B.log" ||
	fail "gateway B does not say it has no stock"
call nd alice "$GW_A/$K/bob/dec_keys" \
	-d "$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$TMP/nb2.json")"
expect nd 200
[ "$(jq -c .keys "$TMP/nd.json")" = "$(jq -c .keys "$TMP/nb2.json")" ] ||
	fail "enc_keys at B differs from dec_keys at A"
echo "ok: etsi014_stock = 0: KM B supplied exactly the 4 keys asked"

# ---- 2. the first request starts the stock ----
s0=$(supplied A)
call f1 alice "$GW_A/$K/bob/enc_keys"
expect f1 200
stocked() { [ "$(supplied A)" -ge $((s0 + 1 + STOCK)) ]; }
wait_for 10 stocked || fail "no refill: KM A supplied $(($(supplied A) - s0)) keys"
t1=$(now_ms) # the stock's keys were made before this
sleep 0.5 # a second refill, if any, would show by now
s1=$(supplied A)
[ "$s1" = $((s0 + 1 + STOCK)) ] ||
	fail "KM A supplied $((s1 - s0)) keys, want 1 asked + $STOCK stocked"
grep -q "key stock $STOCK a triple" "$RUN/etsi014-A.log" ||
	fail "gateway A does not say its stock"
echo "ok: the first enc_keys took 1 key; the stock then took $STOCK more"

# ---- 3. a run of enc_keys from the stock ----
# 8 GETs of 1 key and 4 POSTs of 2: 16 keys, leaving the stock at half,
# where no refill starts yet
: >"$TMP/run.ids"
for i in $(seq 1 12); do
	if [ "$i" -le 8 ]; then
		call r$i alice "$GW_A/$K/bob/enc_keys"
	else
		call r$i alice "$GW_A/$K/bob/enc_keys" -d '{"number":2}'
	fi
	expect r$i 200
	jq -r '.keys[].key_ID' "$TMP/r$i.json" >>"$TMP/run.ids"
done
s2=$(supplied A)
[ "$s2" = "$s1" ] ||
	fail "the run went to KM A: it supplied $((s2 - s1)) keys meanwhile"
[ "$(wc -l <"$TMP/run.ids")" = 16 ] || fail "the run got $(wc -l <"$TMP/run.ids") keys"
[ "$(sort -u "$TMP/run.ids" | wc -l)" = 16 ] ||
	fail "a key handed out twice: $(sort "$TMP/run.ids" | uniq -d)"
for i in $(seq 1 12); do
	call rd$i bob "$GW_B/$K/alice/dec_keys" \
		-d "$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$TMP/r$i.json")"
	expect rd$i 200
	[ "$(jq -c .keys "$TMP/rd$i.json")" = "$(jq -c .keys "$TMP/r$i.json")" ] ||
		fail "dec_keys at B $(body rd$i) differs from stocked enc_keys $(body r$i)"
done
n=0
while read -r id; do
	n=$((n + 1))
	call again$n bob "$GW_B/$K/alice/dec_keys?key_ID=$id"
	expect_error again$n 400 "keys not found"
done <"$TMP/run.ids"
echo "ok: 16 keys from the stock (no KM call): all distinct, each = dec_keys at B, a second dec_keys 400"

# ---- 4. expired keys are never handed out ----
# The 16 keys left in the stock pass their max age at t1 + MAX_AGE_MS at
# the latest; the stock, asked for since its refill, is then refilled once
# (an unused one would not be). At t1 + MAX_AGE_MS + 2 s the key handed
# out must be younger than the max age: one of that refill, never one of
# the expired keys (which would be over MAX_AGE_MS + 2 s old).
until [ "$(now_ms)" -ge $((t1 + MAX_AGE_MS + 2000)) ]; do sleep 0.1; done
t0=$(now_ms)
call x1 alice "$GW_A/$K/bob/enc_keys"
expect x1 200
id=$(jq -r '.keys[0].key_ID' "$TMP/x1.json")
age=$((t0 - $(key_ms "$id")))
[ "$age" -lt "$MAX_AGE_MS" ] ||
	fail "a key made $age ms before the request was handed out (max age $MAX_AGE_MS ms)"
call xd bob "$GW_B/$K/alice/dec_keys?key_ID=$id"
expect xd 200
[ "$(jq -c .keys "$TMP/xd.json")" = "$(jq -c .keys "$TMP/x1.json")" ] ||
	fail "x1: dec_keys at B differs"
[ "$(supplied A)" = $((s2 + STOCK)) ] ||
	fail "KM A supplied $(($(supplied A) - s2)) keys since the run, want one refill of $STOCK"
echo "ok: past the max age ($MAX_AGE_MS ms) the key handed out was $age ms old; the expired stock was replaced once"

# ---- 5. no key in any log ----
for f in "$TMP"/*.json; do
	jq -r '.keys[]?.key // empty' "$f" 2>/dev/null
done | sort -u >"$TMP/keys.txt"
[ "$(wc -l <"$TMP/keys.txt")" -ge 20 ] || fail "too few keys collected"
if grep -F -f "$TMP/keys.txt" "$RUN"/*.log; then fail "a key in a log"; fi
echo "ok: $(wc -l <"$TMP/keys.txt") keys seen, none in a log"
