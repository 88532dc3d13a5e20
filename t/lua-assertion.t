#!/bin/bash
# t/lua-assertion.t: check contrib/prosody/xedge_assertion.lib.lua (the
# verification used by mod_auth_xedge) against every vector in
# doc/assertion-vectors.tsv, under lua5.4 with Prosody's own libraries
# (util.hashes). TAP output.
set -u

top=${XE_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
lib=$top/contrib/prosody/xedge_assertion.lib.lua
tsv=$top/doc/assertion-vectors.tsv

LUA=${LUA:-$(command -v lua5.4 || command -v lua)}
PROSODY_LIBDIR=${PROSODY_LIBDIR:-/usr/lib/prosody}

# a missing dependency fails the test (never a skip): .ci/run installs both
if [ -z "$LUA" ]; then echo "Bail out! lua5.4 not found (apt-get install lua5.4)"; exit 1; fi
if [ ! -e "$PROSODY_LIBDIR/util/hashes.so" ]; then
    echo "Bail out! Prosody's util/hashes.so not found under $PROSODY_LIBDIR (apt-get install prosody)"; exit 1
fi
for f in "$lib" "$tsv"; do
    if [ ! -r "$f" ]; then echo "1..1"; echo "not ok 1 - missing $f"; exit 1; fi
done

exec "$LUA" - "$lib" "$tsv" "$PROSODY_LIBDIR" <<'LUA'
local lib_path, tsv_path, libdir = arg[1], arg[2], arg[3]
package.path = libdir .. "/?.lua;" .. package.path
package.cpath = libdir .. "/?.so;" .. package.cpath

local results = {}   -- { ok=bool, name=string, diag=string|nil }
local function check(ok, name, diag)
	results[#results + 1] = { ok = ok and true or false, name = name, diag = diag }
end

local loaded, A = pcall(dofile, lib_path)
check(loaded and type(A) == "table" and type(A.verify) == "function",
	"xedge_assertion.lib.lua loads and exports verify()", not loaded and tostring(A) or nil)
if not loaded or type(A) ~= "table" then A = nil end

local function unhex(h)
	return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

local function split_tab(line)
	local t, start = {}, 1
	while true do
		local i = line:find("\t", start, true)
		if not i then t[#t + 1] = line:sub(start); return t end
		t[#t + 1] = line:sub(start, i - 1)
		start = i + 1
	end
end

local fh = assert(io.open(tsv_path, "rb"))
local comment, n_vectors, seen_kinds = nil, 0, {}
local lineno = 0
for line in fh:lines() do
	lineno = lineno + 1
	line = line:gsub("\r$", "")
	if line:sub(1, 1) == "#" then
		comment = line:gsub("^#%s*", "")
	elseif line ~= "" then
		local f = split_tab(line)
		local name = ("vector line %d: %s"):format(lineno, comment or "?")
		if #f ~= 7 then
			check(false, name, ("expected 7 tab-separated fields, got %d"):format(#f))
		else
			n_vectors = n_vectors + 1
			local secret, purpose, identity = unhex(f[1]), f[2], f[3]
			local now, maxl = math.tointeger(tonumber(f[4])), math.tointeger(tonumber(f[5]))
			local token, expected = f[6], f[7]
			seen_kinds[expected] = true
			if not A then
				check(false, name, "library not loaded")
			else
				local ok, got = pcall(A.verify, secret, purpose, identity, token, now, maxl)
				if not ok then
					check(false, name, "verify() raised: " .. tostring(got))
				else
					check(got == expected, name,
						("expected %s, got %s"):format(expected, tostring(got)))
				end
				-- a valid token must be reproduced by make() from its own fields
				if expected == "ok" and ok then
					local p = A.parse(token)
					local again = p and A.make(secret, purpose, identity, p.expiry, p.nonce)
					check(again == token, name .. " (make() reproduces the token)",
						"make() gave " .. tostring(again))
				end
			end
		end
	end
end
fh:close()

-- The vector file itself must cover every outcome and be of a useful size,
-- so that an emptied or truncated file cannot pass.
check(n_vectors >= 20, ("at least 20 vectors (found %d)"):format(n_vectors))
for _, kind in ipairs { "ok", "malformed", "wrong-purpose", "expired", "lifetime-too-long", "bad-signature" } do
	check(seen_kinds[kind], "the vectors include expected=" .. kind)
end

-- Secret file handling (spec: trailing \r \n space tab stripped, >= 32 bytes).
if A then
	local s32 = string.rep("a", 32)
	check(A.secret_from_file_contents(s32 .. " \t\r\n\n") == s32, "secret: trailing white space stripped")
	check(A.secret_from_file_contents("  " .. s32) == "  " .. s32, "secret: leading white space kept")
	check(A.secret_from_file_contents(string.rep("a", 31) .. "\n") == nil, "secret: 31 bytes refused")
	-- expiry that does not fit a signed 64-bit integer is malformed
	local big = "xe1:c2s:99999999999999999999:" .. string.rep("0", 32) .. ":" .. string.rep("0", 64)
	check(A.verify(s32, "c2s", "a@b", big, 1700000000, 60) == "malformed", "expiry beyond int64 is malformed")
end

-- The replay cache (mod_xedge_s2s): once per nonce, until its expiry;
-- full, it fails closed.
if A and A.new_replay_cache then
	local c = A.new_replay_cache(2)
	local n1, n2, n3 = string.rep("1", 32), string.rep("2", 32), string.rep("3", 32)
	check(c:accept(n1, 1000, 900) == true, "replay cache: a new nonce is accepted")
	local ok, why = c:accept(n1, 1000, 901)
	check(ok == nil and why == "replayed", "replay cache: the same nonce again is refused (replayed)")
	check(c:accept(n2, 950, 902) == true, "replay cache: another nonce is accepted")
	ok, why = c:accept(n3, 1000, 903)
	check(ok == nil and why == "replay-cache-full", "replay cache: full, a new nonce is refused")
	check(c:accept(n3, 1100, 950) == true, "replay cache: an expired nonce is forgotten, making room")
	ok, why = c:accept(n1, 1000, 951)
	check(ok == nil and why ~= nil, "replay cache: an unexpired nonce is still remembered")
else
	check(false, "the library exports new_replay_cache()")
end

print("1.." .. #results)
local failed = 0
for i, r in ipairs(results) do
	print(("%s %d - %s"):format(r.ok and "ok" or "not ok", i, r.name))
	if not r.ok then
		failed = failed + 1
		if r.diag then print("# " .. r.diag) end
	end
end
os.exit(failed == 0 and 0 or 1)
LUA
