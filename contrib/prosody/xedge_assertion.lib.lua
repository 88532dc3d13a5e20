-- xedge_assertion.lib.lua: verification of the xedge identity assertion
-- (format: doc/assertion.md in the xedge source tree).
--
-- Pure logic, no Prosody state: loaded by mod_auth_xedge through
--   dofile(module:get_directory() .. "/xedge_assertion.lib.lua")
-- and by t/lua-assertion.t under a plain lua5.4 with Prosody's libraries on
-- package.path/package.cpath. Needs util.hashes (hmac_sha256, equals).
--
--   local A = dofile(".../xedge_assertion.lib.lua")
--   local result, info = A.verify(secret, purpose, identity, token, now, max_lifetime)
--   -- result: "ok", "malformed", "wrong-purpose", "expired",
--   --         "lifetime-too-long" or "bad-signature"
--   -- info (when parsing succeeded): { purpose=, expiry= (integer), nonce= }

local hashes = require "util.hashes";
local hmac_sha256 = hashes.hmac_sha256;
local secure_equals = hashes.equals;

local type, tostring, pairs = type, tostring, pairs;
local s_find, s_sub = string.find, string.sub;
local m_tointeger = math.tointeger;

local M = {};

M.VERSION = "xe1";
M.MIN_SECRET_LEN = 32;

-- The results, in the order the checks are made.
M.OK = "ok";
M.MALFORMED = "malformed";
M.WRONG_PURPOSE = "wrong-purpose";
M.EXPIRED = "expired";
M.LIFETIME_TOO_LONG = "lifetime-too-long";
M.BAD_SIGNATURE = "bad-signature";

local function is_lower_hex(s, len)
	return #s == len and not s_find(s, "[^0-9a-f]");
end

-- Split on ":" keeping empty fields. Returns the list of fields.
local function split_colon(s)
	local fields, start = {}, 1;
	while true do
		local i = s_find(s, ":", start, true);
		if not i then
			fields[#fields + 1] = s_sub(s, start);
			return fields;
		end
		fields[#fields + 1] = s_sub(s, start, i - 1);
		start = i + 1;
	end
end

-- Parse a token. Returns a table {purpose, expiry_str, expiry, nonce, mac}
-- or nil when it is malformed.
function M.parse(token)
	if type(token) ~= "string" or token == "" or #token > 512 then return nil; end
	local f = split_colon(token);
	if #f ~= 5 or f[1] ~= M.VERSION then return nil; end
	local purpose, expiry_str, nonce, mac = f[2], f[3], f[4], f[5];
	if purpose == "" then return nil; end
	-- expiry: 1..20 decimal digits, no sign; must fit a signed 64-bit integer
	if #expiry_str < 1 or #expiry_str > 20 or s_find(expiry_str, "[^0-9]") then return nil; end
	local expiry = m_tointeger(tonumber(expiry_str));
	if not expiry or expiry < 0 then return nil; end
	if not is_lower_hex(nonce, 32) or not is_lower_hex(mac, 64) then return nil; end
	return { purpose = purpose, expiry_str = expiry_str, expiry = expiry, nonce = nonce, mac = mac };
end

-- The MAC of a token: lowercase hex HMAC-SHA256 over
-- "xe1" LF purpose LF identity LF expiry LF nonce.
function M.mac(secret, purpose, identity, expiry_str, nonce)
	return hmac_sha256(secret, M.VERSION .. "\n" .. purpose .. "\n" .. identity
		.. "\n" .. expiry_str .. "\n" .. nonce, true);
end

-- Build a token (for tests and tools; xedge builds them in C).
function M.make(secret, purpose, identity, expiry, nonce_hex)
	local expiry_str = tostring(expiry);
	return M.VERSION .. ":" .. purpose .. ":" .. expiry_str .. ":" .. nonce_hex .. ":"
		.. M.mac(secret, purpose, identity, expiry_str, nonce_hex);
end

-- Verify a token. now and max_lifetime: integers (seconds).
function M.verify(secret, purpose, identity, token, now, max_lifetime)
	local t = M.parse(token);
	if not t then return M.MALFORMED; end
	local info = { purpose = t.purpose, expiry = t.expiry, nonce = t.nonce };
	if t.purpose ~= purpose then return M.WRONG_PURPOSE, info; end
	if not (now < t.expiry) then return M.EXPIRED, info; end
	if t.expiry - now > max_lifetime then return M.LIFETIME_TOO_LONG, info; end
	local want = M.mac(secret, t.purpose, identity, t.expiry_str, t.nonce);
	if not secure_equals(want, t.mac) then return M.BAD_SIGNATURE, info; end
	return M.OK, info;
end

-- The secret from the contents of a secret file: trailing \r \n space tab
-- removed. Returns the secret, or nil and an error message.
function M.secret_from_file_contents(data)
	if type(data) ~= "string" then return nil, "no data"; end
	local secret = data:gsub("[\r\n \t]+$", "");
	if #secret < M.MIN_SECRET_LEN then
		return nil, ("secret is %d bytes, at least %d are required"):format(#secret, M.MIN_SECRET_LEN);
	end
	return secret;
end

-- The secret of a Prosody module (its xedge_secret_file option; a relative
-- path is taken relative to the config file's directory), read once at
-- load. Missing, unreadable or short: logs why and raises an error, which
-- stops the module from loading (nothing is authenticated by it).
--   local secret = A.load_module_secret(module, "mod_auth_xedge")
function M.load_module_secret(module, name)
	local path = module:get_option_path("xedge_secret_file", nil, "config");
	if not path then
		module:log("error", "xedge_secret_file is not set; it must name the file holding the secret shared with xedge");
		error(name .. ": xedge_secret_file is not set");
	end
	local fh, err = io.open(path, "rb");
	if not fh then
		module:log("error", "cannot read xedge_secret_file %s: %s", path, tostring(err));
		error(name .. ": cannot read xedge_secret_file " .. path);
	end
	local data = fh:read("a");
	fh:close();
	local secret, why = M.secret_from_file_contents(data);
	if not secret then
		module:log("error", "xedge_secret_file %s refused: %s", path, why);
		error(name .. ": xedge_secret_file " .. path .. " refused: " .. why);
	end
	return secret;
end

-- A replay cache: the nonce of every accepted assertion, kept until its
-- expiry, so that an assertion is accepted once. Bounded by max_entries
-- (the rate of accepted assertions times their lifetime); when full it
-- fails closed.
--   local cache = A.new_replay_cache(100000)
--   local ok, why = cache:accept(info.nonce, info.expiry, now)
--   -- true, or nil and "replayed" / "replay-cache-full"
function M.new_replay_cache(max_entries)
	local seen, n, next_purge = {}, 0, 0;
	local cache = { max = max_entries };
	local function purge(now)
		for nonce, expiry in pairs(seen) do
			if expiry <= now then
				seen[nonce] = nil;
				n = n - 1;
			end
		end
		next_purge = now + 10;
	end
	function cache:accept(nonce, expiry, now)
		if now >= next_purge or n >= self.max then purge(now); end
		if seen[nonce] then return nil, "replayed"; end
		if n >= self.max then return nil, "replay-cache-full"; end
		seen[nonce] = expiry;
		n = n + 1;
		return true;
	end
	function cache:size() return n; end
	return cache;
end

return M;
