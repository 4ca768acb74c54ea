# SIGHUP (issue 11): a KM re-reads and checks its network file and says, in
# one [reload] line, that it is unchanged, which sections changed (none of
# which applies before a restart), or that the file is broken (and it keeps
# running on the one it started with); a changed [qkdn] log_level applies
# at once: with warn, the next "unchanged" line (info) is not logged, and
# with info again it is. The KM answers status throughout.
source "$(dirname "$0")/lib.sh"

write_net
net_up
km=$(cat "$RUN/km-A.pid")
said() { grep -c "\[reload\]" "$RUN/km-A.log" || true; }
hup() { # hup: SIGHUP, then the KM's new [reload] line
	local before
	before=$(said)
	kill -HUP "$km"
	wait_for 5 test_more "$before" ||
		fail "KM A logged nothing on SIGHUP"
	grep "\[reload\]" "$RUN/km-A.log" | tail -n 1
}
test_more() { [ "$(said)" -gt "$1" ]; }

line=$(hup)
grep -q 'is valid and unchanged' <<<"$line" || fail "unchanged file: $line"

# log_level = warn applies at once ...
sed -i '0,/^\[qkdn\]$/s//[qkdn]\nlog_level = warn/' "$CFG"
line=$(hup)
grep -q 'log_level warn applied' <<<"$line" || fail "log_level warn: $line"
# ... so the next "unchanged" (info) is not logged: a second is the wait
before=$(said)
kill -HUP "$km"
sleep 1
[ "$(said)" = "$before" ] ||
	fail "an info line logged at warn: $(grep "\[reload\]" "$RUN/km-A.log" | tail -n 1)"
# ... and info again brings it back
sed -i 's/^log_level = warn$/log_level = info/' "$CFG"
line=$(hup)
grep -q 'log_level info applied' <<<"$line" || fail "log_level info: $line"
line=$(hup)
grep -q 'is valid and unchanged' <<<"$line" || fail "unchanged at info: $line"
echo "ok: log_level applied at once (warn hides info lines, info shows them)"

# anything else changed: said, not applied
sed -i '0,/^key_ttl = 600/s//key_ttl = 300/' "$CFG" # node A's section
line=$(hup)
grep -q 'changed: \[A\]; none of it applies until this daemon restarts' <<<"$line" ||
	fail "changed file: $line"

# a broken file: refused, the KM keeps running on its own
sed -i 's/^log_level = info$/log_level = loud/' "$CFG"
line=$(hup)
grep -q "log_level: 'loud' is not error, warn, info or debug" <<<"$line" &&
	grep -q 'still running with the file as it was at start' <<<"$line" ||
	fail "broken file: $line"
kill -0 "$km" || fail "KM A died on a broken file"
status A >/dev/null || fail "KM A stopped answering after SIGHUP"
echo "ok: SIGHUP: unchanged, log_level applied, other changes named, a broken file refused"
