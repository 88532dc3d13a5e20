#!/bin/bash
# t/lua-pool.t: mod_xedge_pool's home computation
# (contrib/prosody/xedge_pool.lib.lua, under lua5.4 with Prosody's
# util.hashes) gives every user the home xedge gives them (xedgectl user
# where, which uses src/core/route.c and src/core/pool.c): 300 JIDs over three
# servers of weights 1, 2 and 3, and a pinned user; then non-ASCII users,
# each asked of xedge in one case and of the glue in another (nodeprep
# folds them to one JID: xedge through ICU in src/core/jidprep.c, the glue
# through Prosody's util.encodings). The glue and xedge must agree, or a
# stanza would be refused as a loop or kept at the wrong server. Last, the
# map's deltas as the glue applies them (in order of generation; a gap
# refused, for the glue to ask for the map whole), and an <unroutable/>
# as the glue parses it: the stanza inside as sent, the next link to try
# (each link once per stanza). TAP output.
set -u

top=${XE_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${XE_TOP_BUILDDIR:-$top}
lib=$top/contrib/prosody/xedge_pool.lib.lua
LUA=${LUA:-$(command -v lua5.4 || command -v lua)}
PROSODY_LIBDIR=${PROSODY_LIBDIR:-/usr/lib/prosody}
CTL=$build/src/xedgectl

if [ -z "$LUA" ]; then echo "Bail out! lua5.4 not found (apt-get install lua5.4)"; exit 1; fi
if [ ! -e "$PROSODY_LIBDIR/util/hashes.so" ]; then
    echo "Bail out! Prosody's util/hashes.so not found under $PROSODY_LIBDIR (apt-get install prosody)"; exit 1
fi
[ -x "$CTL" ] || { echo "Bail out! $CTL not built"; exit 1; }
d=$(mktemp -d "${TMPDIR:-/tmp}/xedge-luapool.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
echo "1..11"

openssl rand -hex 32 >"$d/secret"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/key.pem" \
    -out "$d/cert.pem" -days 1 -subj "/CN=example.test" >/dev/null 2>&1
cat >"$d/xedge.conf" <<CONF
user_store = { path = "$d/users"; map_size_mb = 16; };
listeners = ( { kind = "starttls"; address = "127.0.0.1"; port = 5222; } );
domains = ( { name = "example.test"; certificate = "$d/cert.pem"; key = "$d/key.pem"; pool = "main"; } );
pools = ( { name = "main"; secret_file = "$d/secret"; route = true;
            servers = ( { name = "a"; address = "127.0.0.1"; port = 1; weight = 1; },
                        { name = "bb"; address = "127.0.0.1"; port = 2; weight = 2; },
                        { name = "ccc"; address = "127.0.0.1"; port = 3; weight = 3; } ); } );
routing = { address = "127.0.0.1"; port = 5290; };
CONF
mkdir -p "$d/users"
printf 'pw\n' | "$CTL" -c "$d/xedge.conf" user add pinned@example.test >/dev/null 2>&1 &&
    "$CTL" -c "$d/xedge.conf" user pin pinned@example.test a >/dev/null 2>&1
ok=$?
echo "$([ $ok = 0 ] && echo ok || echo not ok) 1 - a user pinned to server a (xedgectl)"

jids=(pinned@example.test)
for i in $(seq 1 300); do jids+=("user$i@example.test"); done
# non-ASCII names: what xedge is asked, and the same user as the glue sees
# it (another case, or another form that nodeprep folds to the same)
xe_names=(Straße STRASSE ΟΔΥΣΣΕΥΣ οδυσσευς İstanbul ＡＬＩＣＥ Ǆemal ÉLODIE Ærø 李小龍 Ⅸ_ﬁ)
lua_names=(strasse straße οδυσσευσ ΟΔΥΣΣΕΥΣ i̇STANBUL Alice ǅEMAL élodie ærØ 李小龍 ix_fi)
for j in "${jids[@]}"; do
    printf '%s %s\n' "$j" "$("$CTL" -c "$d/xedge.conf" user where "$j" | sed -n 's/^home: //p')"
done >"$d/xedge.homes"

"$LUA" - "$lib" "$PROSODY_LIBDIR" "${jids[@]}" >"$d/lua.homes" <<'LUA'
local lib_path, libdir = arg[1], arg[2]
package.path = libdir .. "/?.lua;" .. package.path
package.cpath = libdir .. "/?.so;" .. package.cpath
local P = dofile(lib_path)
local map = { servers = { { name = "a", weight = 1 }, { name = "bb", weight = 2 }, { name = "ccc", weight = 3 } },
              pins = { ["pinned@example.test"] = "a" } }
for i = 3, #arg do print(arg[i] .. " " .. P.home(map, arg[i])) end
LUA
lua_rc=$?
echo "$([ $lua_rc = 0 ] && [ "$(wc -l <"$d/lua.homes")" = 301 ] && echo ok || echo not ok) 2 - the Lua library computes 301 homes"
if cmp -s "$d/xedge.homes" "$d/lua.homes"; then
    echo "ok 3 - every home agrees with xedge's (user where)"
else
    echo "not ok 3 - every home agrees with xedge's (user where)"
    diff "$d/xedge.homes" "$d/lua.homes" | head -n 10 | sed 's/^/# /'
fi
# non-ASCII users: xedgectl keeps the prepared name, and the homes agree
rc=0
printf 'pw\n' | "$CTL" -c "$d/xedge.conf" user add "Straße@example.test" >/dev/null 2>&1 || rc=1
"$CTL" -c "$d/xedge.conf" user list example.test >"$d/list" 2>&1 || rc=1
if [ $rc = 0 ] && grep -qx 'strasse@example.test' "$d/list"; then
    echo "ok 4 - user add Straße@example.test keeps strasse@example.test (nodeprep)"
else
    echo "not ok 4 - user add Straße@example.test keeps strasse@example.test (nodeprep)"
    sed 's/^/# /' "$d/list"
fi
out=$(printf 'pw\n' | "$CTL" -c "$d/xedge.conf" user add "STRASSE@example.test" 2>&1)
if [ $? != 0 ] && printf '%s' "$out" | grep -qi 'exists'; then
    echo "ok 5 - STRASSE@example.test is the same user: refused as existing"
else
    echo "not ok 5 - STRASSE@example.test is the same user: refused as existing"
    printf '%s\n' "$out" | sed 's/^/# /'
fi
out=$(printf 'pw\n' | "$CTL" -c "$d/xedge.conf" user add "a＠b@example.test" 2>&1)
if [ $? != 0 ] && printf '%s' "$out" | grep -q 'nodeprep' && printf '%s' "$out" | grep -q 'prohibits'; then
    echo "ok 6 - a localpart that fails nodeprep is refused with the reason"
else
    echo "not ok 6 - a localpart that fails nodeprep is refused with the reason"
    printf '%s\n' "$out" | sed 's/^/# /'
fi
for i in "${!xe_names[@]}"; do
    printf '%s %s\n' "$i" "$("$CTL" -c "$d/xedge.conf" user where "${xe_names[$i]}@example.test" | sed -n 's/^home: //p')"
done >"$d/xedge.uhomes"
"$LUA" - "$lib" "$PROSODY_LIBDIR" "${lua_names[@]}" >"$d/lua.uhomes" <<'LUA'
local lib_path, libdir = arg[1], arg[2]
package.path = libdir .. "/?.lua;" .. package.path
package.cpath = libdir .. "/?.so;" .. package.cpath
local P = dofile(lib_path)
local map = { servers = { { name = "a", weight = 1 }, { name = "bb", weight = 2 }, { name = "ccc", weight = 3 } },
              pins = {} }
for i = 3, #arg do print((i - 3) .. " " .. tostring(P.home(map, arg[i] .. "@EXAMPLE.test"))) end
LUA
if [ "$(wc -l <"$d/xedge.uhomes")" = "${#xe_names[@]}" ] && ! grep -q ' $\| nil$' "$d/xedge.uhomes" "$d/lua.uhomes" &&
    cmp -s "$d/xedge.uhomes" "$d/lua.uhomes"; then
    echo "ok 7 - ${#xe_names[@]} non-ASCII users, each in another case or form: the homes agree"
else
    echo "not ok 7 - ${#xe_names[@]} non-ASCII users, each in another case or form: the homes agree"
    paste "$d/xedge.uhomes" "$d/lua.uhomes" | sed 's/^/# /'
fi
# and they spread: not all on one server (the fold reached the hash)
if [ "$(cut -d' ' -f2 "$d/xedge.uhomes" | sort -u | wc -l)" -ge 2 ]; then
    echo "ok 8 - the non-ASCII users' homes are spread over the servers"
else
    echo "not ok 8 - the non-ASCII users' homes are spread over the servers"
fi
# the weights matter: about 1:2:3 (a loose bound: 300 users)
na=$(grep -c ' a$' "$d/lua.homes"); nb=$(grep -c ' bb$' "$d/lua.homes"); nc=$(grep -c ' ccc$' "$d/lua.homes")
if [ "$na" -lt "$nb" ] && [ "$nb" -lt "$nc" ] && [ "$na" -ge 20 ]; then
    echo "ok 9 - homes follow the weights ($na, $nb, $nc)"
else
    echo "not ok 9 - homes follow the weights ($na, $nb, $nc)"
fi
# the map's deltas (xedge_pool.lib.lua, as mod_xedge_pool applies them):
# in order of generation, a gap or a delta while a map is being built
# refused (the glue then asks for the map whole), a count that does not
# match said so
out=$("$LUA" - "$lib" "$PROSODY_LIBDIR" <<'LUA' 2>&1
local lib_path, libdir = arg[1], arg[2]
package.path = libdir .. "/?.lua;" .. package.path
package.cpath = libdir .. "/?.so;" .. package.cpath
local P = dofile(lib_path)
local st = require "util.stanza"
local NS = "urn:xedge:route:0"
local pool = st.stanza("pool", { xmlns = NS, self = "a", gen = "5", pins = "2" })
	:tag("server", { name = "a", weight = "1" }):up():tag("server", { name = "bb", weight = "2" }):up()
	:tag("pin", { jid = "x@example.test", server = "a" }):up()
local m = P.read_map(pool)
local parts = st.stanza("pins", { xmlns = NS }):tag("pin", { jid = "y@example.test", server = "bb" }):up()
P.add_pins(m, parts)
local link = { gen = m.gen }
local function delta(gen, pins, ...)
	local d = st.stanza("delta", { xmlns = NS, gen = tostring(gen), pins = tostring(pins) })
	for _, e in ipairs({ ... }) do d:tag(e[1], { jid = e[2], server = e[3] }):up() end
	return d
end
local r = {}
r[#r + 1] = tostring(m.got == m.want and m.gen == 5)
local ok, a, b, c = P.apply_delta(m, link, delta(6, 3, { "pin", "z@example.test", "a" }, { "pin", "x@example.test", "bb" }))
r[#r + 1] = ("%s:%s:%s:%s:%s:%s"):format(tostring(ok), a, b, tostring(c), m.pins["x@example.test"], m.got)
ok, a = P.apply_delta(m, link, delta(6, 3, { "unpin", "z@example.test" }))
r[#r + 1] = ("%s:%s"):format(tostring(ok), tostring(m.pins["z@example.test"]))
ok, a = P.apply_delta(m, link, delta(8, 2, { "unpin", "z@example.test" }))
r[#r + 1] = tostring(ok)
ok, a, b, c = P.apply_delta(m, link, delta(7, 2, { "unpin", "z@example.test" }))
r[#r + 1] = ("%s:%s:%s:%s"):format(tostring(ok), b, tostring(c), tostring(m.pins["z@example.test"]))
ok, a, b, c = P.apply_delta(m, link, delta(8, 9, { "pin", "w@example.test", "a" }))
r[#r + 1] = ("%s:%s"):format(tostring(ok), tostring(c))
link.pending = {}
ok, a = P.apply_delta(m, link, delta(9, 3))
r[#r + 1] = ("%s:%s"):format(tostring(ok), a)
print(table.concat(r, " "))
LUA
)
want="true true:2:0:true:bb:3 nil:a nil true:1:true:nil true:false nil:a delta of generation 9, ours is 8 (a map is being built)"
if [ "$out" = "$want" ]; then
    echo "ok 10 - deltas apply in order of generation; a gap, a delta during a map, a count that differs: refused or said"
else
    echo "not ok 10 - deltas apply in order of generation; a gap, a delta during a map, a count that differs: refused or said"
    echo "# got:  $out"
    echo "# want: $want"
fi
# an <unroutable/> from xedge (xedge_pool.lib.lua, as mod_xedge_pool takes
# it): parsed as the glue's link parses it, the stanza inside comes out as
# it was sent (its body's namespace and text too); the next link to try is
# the first up after the one that gave it back; each link once per stanza
# (from the last link, or with none up after it: nil, the sender's error)
out=$("$LUA" - "$lib" "$PROSODY_LIBDIR" <<'LUA' 2>&1
local lib_path, libdir = arg[1], arg[2]
package.path = libdir .. "/?.lua;" .. package.path
package.cpath = libdir .. "/?.so;" .. package.cpath
local P = dofile(lib_path)
local xmppstream = require "util.xmppstream"
local got
local session = { notopen = true }
local stream = xmppstream.new(session, { default_ns = "jabber:server",
	streamopened = function(s) s.notopen = nil end, handlestanza = function(_, s) got = s end })
assert(stream:feed("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
	.. "<xr:unroutable xmlns:xr='urn:xedge:route:0' reason='home-down'><message from='a@example.test/r' "
	.. "to='b@example.test' type='chat' id='m1'><body>x &amp; y</body><active "
	.. "xmlns='http://jabber.org/protocol/chatstates'/></message></xr:unroutable>"))
local r = {}
r[#r + 1] = got and got.name .. ":" .. tostring(got.attr.xmlns) .. ":" .. tostring(got.attr.reason) or "nothing"
local inner = P.unwrap(got)
local body, active = inner:get_child("body"), inner.tags[2]
r[#r + 1] = ("%s %s %s %s %s %s %s %s %s"):format(inner.name, tostring(inner.attr.xmlns), inner.attr.from,
	inner.attr.to, inner.attr.type, inner.attr.id, tostring(body and body.attr.xmlns), inner:get_child_text("body"),
	active and active.attr.xmlns)
local links = { { n = 1, up = true }, { n = 2, up = false }, { n = 3, up = true } }
local function up(L) return L.up end
local function n(L) return L and L.n or "nil" end
r[#r + 1] = ("%s,%s,%s"):format(n(P.next_link(links, 1, up)), n(P.next_link(links, 3, up)),
	n(P.next_link(links, 2, up)))
links[3].up = false
r[#r + 1] = n(P.next_link(links, 1, up))
-- a stanza bounced by every link: tried at most #links times
links[2].up, links[3].up = true, true
local tries, at = 1, 1
while true do
	local L = P.next_link(links, at, up)
	if not L then break end
	tries, at = tries + 1, L.n
end
r[#r + 1] = "tries=" .. tries
r[#r + 1] = tostring(P.unwrap({ tags = {} }))
print(table.concat(r, " | "))
LUA
)
want="unroutable:urn:xedge:route:0:home-down | message nil a@example.test/r b@example.test chat m1 nil x & y http://jabber.org/protocol/chatstates | 3,nil,3 | nil | tries=3 | nil"
if [ "$out" = "$want" ]; then
    echo "ok 11 - an <unroutable/> gives back the stanza as sent; the next link is the first up after it, each link once"
else
    echo "not ok 11 - an <unroutable/> gives back the stanza as sent; the next link is the first up after it, each link once"
    echo "# got:  $out"
    echo "# want: $want"
fi
