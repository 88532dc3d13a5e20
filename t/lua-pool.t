#!/bin/bash
# t/lua-pool.t: mod_xedge_pool's home computation
# (contrib/prosody/xedge_pool.lib.lua, under lua5.4 with Prosody's
# util.hashes) gives every user the home xedge gives them (xedgectl user
# where, which uses src/core/route.c and src/core/pool.c): 300 JIDs over three
# servers of weights 1, 2 and 3, and a pinned user. The glue and xedge
# must agree, or a stanza would be refused as a loop or kept at the wrong
# server. TAP output.
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
echo "1..4"

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
# the weights matter: about 1:2:3 (a loose bound: 300 users)
na=$(grep -c ' a$' "$d/lua.homes"); nb=$(grep -c ' bb$' "$d/lua.homes"); nc=$(grep -c ' ccc$' "$d/lua.homes")
if [ "$na" -lt "$nb" ] && [ "$nb" -lt "$nc" ] && [ "$na" -ge 20 ]; then
    echo "ok 4 - homes follow the weights ($na, $nb, $nc)"
else
    echo "not ok 4 - homes follow the weights ($na, $nb, $nc)"
fi
