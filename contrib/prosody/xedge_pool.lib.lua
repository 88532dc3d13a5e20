-- xedge_pool.lib.lua: a user's home in a routed pool of xedge
-- (doc/pool-routing.md), computed as xedge's src/core/pool.c and src/core/route.c do.
--
-- Pure logic, no Prosody state: loaded by mod_xedge_pool through
--   dofile(module:get_directory() .. "/xedge_pool.lib.lua")
-- and by t/lua-pool.t under a plain lua5.4 with Prosody's libraries on
-- package.path/package.cpath (util.hashes, util.encodings). Needs Lua 5.3+
-- integers.
--
--   local P = dofile(".../xedge_pool.lib.lua")
--   local map = { servers = { { name = "prosody-0", weight = 1 }, ... },
--                 pins = { ["alice@example.test"] = "prosody-2" } }
--   local server, why = P.home(map, "bob@example.test")  -- why: "pin" or "rendezvous"

local sha256 = require "util.hashes".sha256;
local stringprep = require "util.encodings".stringprep;
local s_unpack, m_log, ipairs = string.unpack, math.log, ipairs;

local M = {};

-- pool.c's unit_hash: SHA-256(server NUL jid), its first 8 bytes as a
-- big-endian integer, the top 53 bits, shifted away from 0 and 1.
function M.unit_hash(server, jid)
	local v = s_unpack(">I8", sha256(server .. "\0" .. jid));
	return ((v >> 11) + 0.5) / 9007199254740992.0;
end

-- A bare JID as xedge keys and hashes it (src/core/jidprep.c): the
-- localpart through nodeprep, the domain through nameprep (Prosody's
-- util.encodings: the same ICU profiles), or nil when a part fails.
function M.prep(bare)
	local node, host = tostring(bare):match("^([^@/]+)@([^@/]+)$");
	if not node then return nil; end
	node, host = stringprep.nodeprep(node), stringprep.nameprep(host);
	if not node or not host or node == "" or host == "" then return nil; end
	return node .. "@" .. host;
end

-- The home of a bare JID (prepared here as xedge prepares it, so any case
-- of a name has the same home): its pin, else the weighted rendezvous
-- choice (the highest weight / -ln(hash); the first server in the pool's
-- order on a tie). nil, "invalid" for a JID that fails the profiles.
function M.home(map, bare)
	bare = M.prep(bare);
	if not bare then return nil, "invalid"; end
	local pin = map.pins and map.pins[bare];
	if pin then return pin, "pin"; end
	local best, best_score = nil, -1.0;
	for _, s in ipairs(map.servers) do
		local score = s.weight / -m_log(M.unit_hash(s.name, bare));
		if score > best_score then best, best_score = s.name, score; end
	end
	return best, "rendezvous";
end

return M;
