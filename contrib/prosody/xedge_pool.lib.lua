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

-- The map's elements from xedge (doc/pool-routing.md), util.stanza
-- objects. read_map: a <pool gen='G' pins='N'/>, the map's first part:
-- { servers = { {name=, weight=} }, components = { [domain] = server },
-- pins = { [jid] = server }, got = pins so far, want = N, gen = G }.
function M.read_map(pool)
	local m = { servers = {}, pins = {}, components = {}, got = 0 };
	for s in pool:childtags("server") do
		m.servers[#m.servers + 1] = { name = s.attr.name, weight = tonumber(s.attr.weight) or 1 };
	end
	for c in pool:childtags("component") do
		m.components[c.attr.domain] = c.attr.server;
	end
	M.add_pins(m, pool);
	m.want = tonumber(pool.attr.pins) or m.got;
	m.gen = tonumber(pool.attr.gen);
	return m;
end

-- The pins of a part (<pool/> or <pins/>) into a map being built.
function M.add_pins(m, part)
	for p in part:childtags("pin") do
		m.pins[p.attr.jid] = p.attr.server;
		m.got = m.got + 1;
	end
end

-- A <delta gen='G' pins='N'/> onto MAP, the whole map of a link whose
-- state is LINK ({ gen = its last generation, pending = a map being
-- built }). Applied only when G is the link's next generation and no map
-- is being built: then true, the counts pinned and unpinned, and whether
-- the map's count of pins matches N (false: ask for the whole map). Else
-- nil and why (a gap: ask for the whole map; nothing changed). A pin or an
-- unpin applied twice (by two links) leaves the same map.
function M.apply_delta(map, link, delta)
	local gen = tonumber(delta.attr.gen);
	if not map or link.pending or not gen or not link.gen or gen ~= link.gen + 1 then
		return nil, ("a delta of generation %s, ours is %s%s"):format(tostring(delta.attr.gen),
			tostring(link.gen), link.pending and " (a map is being built)" or "");
	end
	local pinned, unpinned = 0, 0;
	for e in delta:childtags() do
		local j = e.attr.jid;
		if j and e.name == "pin" and e.attr.server then
			if not map.pins[j] then map.got = map.got + 1; end
			map.pins[j] = e.attr.server;
			pinned = pinned + 1;
		elseif j and e.name == "unpin" then
			if map.pins[j] then map.got = map.got - 1; end
			map.pins[j] = nil;
			unpinned = unpinned + 1;
		end
	end
	link.gen = gen;
	local want = tonumber(delta.attr.pins);
	return true, pinned, unpinned, want == nil or want == map.got;
end

-- A stanza xedge gave back on link number AFTER (<unroutable/>: that node
-- has no link to its home): the next link to try, the first of the list
-- after AFTER for which up(link) holds, else nil (the sender gets
-- recipient-unavailable). Only links after it: each link is tried once per
-- stanza, in the list's order, so a stanza goes out at most #links times.
-- (The first try is the first link up, from the list's start.)
function M.next_link(links, after, up)
	for i = after + 1, #links do
		if up(links[i]) then return links[i]; end
	end
end

-- The stanza inside an <unroutable/> (the one the glue sent), ready to send
-- again or to answer: nil if there is none.
function M.unwrap(unroutable)
	local inner = unroutable.tags[1];
	if not inner or (inner.name ~= "message" and inner.name ~= "presence" and inner.name ~= "iq") then
		return nil;
	end
	-- (parsed below <unroutable/>, the stanza and its children say
	-- jabber:server outright; at a stream's top they would not)
	local function clear(e)
		if e.attr.xmlns == "jabber:server" then e.attr.xmlns = nil; end
		for _, c in ipairs(e.tags) do clear(c); end
	end
	clear(inner);
	inner.attr.xmlns = nil;
	return inner;
end

return M;
