-- mod_xedge_pool: one domain over several Prosody servers behind xedge
-- (doc/pool-routing.md in the xedge tree).
--
-- Each user of the domain has one home: the server xedge pins them to, else
-- the rendezvous choice of the pool (the same computation as xedge's
-- src/core/pool.c). This module keeps a link to each of xedge's routing
-- listeners (one per xedge node), authenticated by an assertion
-- (doc/assertion.md, purpose "route", identity "DOMAIN SERVER"), and over
-- them:
--   * xedge sends the map of homes (<pool/>: the servers with their
--     weights, the pins), whole at the link's start and after a reload,
--     and a <delta/> of the pins that changed after a pin, an unpin or a
--     user's removal (a generation number on each: a gap asks for the
--     map whole, <resync/>);
--   * every stanza this server would handle for a user of the domain homed
--     elsewhere (message, presence, iq; bare or full JID) goes to xedge,
--     which sends it to the home; nothing of it is handled here (no
--     offline storage, no vCard or PEP answer, no subscription state).
--     It goes on the first link of the list that is up (a node that has
--     no link to the home gives it back, <unroutable/>: then the next link
--     up after that one, each once; none left: recipient-unavailable, wait);
--     the map in use
--     is the last whole one received on any link (every node computes
--     the same map from the shared user store);
--   * stanzas xedge routes here are delivered locally and never sent on
--     again (xedge refuses a stanza whose home is the server that sent it).
-- Without a map (no link ever came up), and for a user homed elsewhere
-- while no link is up, the sender gets recipient-unavailable (wait):
-- nothing is stored on a server that is not the user's home.
--
-- Configuration (on the VirtualHost):
--   modules_enabled = { ...; "xedge_pool"; }
--   xedge_secret_file = "/etc/prosody/xedge.secret"  -- the pool's secret (as for c2s)
--   xedge_pool_route = "127.0.0.1:5290"              -- xedge's routing listener, or
--   xedge_pool_route = { "10.0.0.1:5290", "10.0.0.2:5290" } -- one per xedge node
--   xedge_pool_server = "prosody-1"                  -- this server's name in xedge.conf
--   xedge_pool_ping_interval = 30  -- a ping on a link quiet this long (seconds)
--   xedge_pool_ping_timeout = 10   -- no answer this long after it: the link is dead

local st = require "util.stanza";
local jid_split = require "util.jid".split;
local jid_bare = require "util.jid".bare;
local jid_prep = require "util.jid".prep;
local xmppstream = require "util.xmppstream";
local connect = require "net.connect".connect;
local basic_resolver = require "net.resolvers.basic";
local random_bytes = require "util.random".bytes;
local hex_to = require "util.hex".to;
local timer = require "util.timer";

local A = dofile(module:get_directory() .. "/xedge_assertion.lib.lua");
local P = dofile(module:get_directory() .. "/xedge_pool.lib.lua");

local host = module.host;
local tostring, tonumber, ipairs = tostring, tonumber, ipairs;
local now = require "util.time".now;

local secret = A.load_module_secret(module, "mod_xedge_pool");
local self_name = module:get_option_string("xedge_pool_server");
if not self_name or self_name == "" then
	module:log("error", "xedge_pool_server must name this server as xedge.conf's pool does");
	error("mod_xedge_pool: xedge_pool_server is not set");
end
-- xedge's routing listeners: "HOST:PORT", or a list of them (one per
-- xedge node of a cluster sharing its users, doc/scaling.md). A link to
-- each, in this order: stanzas go on the first one up.
local links = {}; -- { spec =, host =, port =, index =, delay =, session = }
do
	local specs = module:get_option_array("xedge_pool_route") or {};
	local seen = {};
	for i, spec in ipairs(specs) do
		local h, p;
		if type(spec) == "string" then
			h, p = spec:match("^%[([^%]]+)%]:(%d+)$");
			if not h then h, p = spec:match("^([^:%[%]]+):(%d+)$"); end
			p = tonumber(p);
		end
		if not h or not p or p < 1 or p > 65535 or seen[spec] then
			module:log("error", "xedge_pool_route must be \"HOST:PORT\" or a list of distinct ones "
				.. "(xedge's routing listeners), got %q at %d", tostring(spec), i);
			error("mod_xedge_pool: bad xedge_pool_route");
		end
		seen[spec] = true;
		links[i] = { spec = spec, host = h, port = p, index = i, delay = 1 };
	end
	if #links == 0 then
		module:log("error", "xedge_pool_route must be \"HOST:PORT\" or a list of them (xedge's routing listeners)");
		error("mod_xedge_pool: missing xedge_pool_route");
	end
end

-- Liveness of the links: a node that hangs, or a path that drops packets
-- silently, closes no connection. On a link where nothing came from xedge
-- or nothing went to it for ping_interval seconds, a <ping/> goes out
-- (xedge answers <pong/>; any byte from xedge counts); no byte back within
-- ping_timeout seconds: the link is dead, closed, and the next link up
-- takes the stanzas. (The ping carries the interval: xedge closes a link
-- silent for three of them, doc/pool-routing.md.) A link not yet
-- authenticated gets ping_interval + ping_timeout to answer.
local ping_interval = module:get_option_number("xedge_pool_ping_interval", 30);
local ping_timeout = module:get_option_number("xedge_pool_ping_timeout", 10);
if ping_interval < 1 or ping_interval > 3600 or ping_timeout < 1 or ping_timeout > 3600 then
	module:log("error", "xedge_pool_ping_interval and xedge_pool_ping_timeout must be 1 to 3600 seconds "
		.. "(got %s and %s)", tostring(ping_interval), tostring(ping_timeout));
	error("mod_xedge_pool: bad xedge_pool_ping_interval or xedge_pool_ping_timeout");
end
ping_interval, ping_timeout = math.floor(ping_interval), math.floor(ping_timeout);

---------------------------------------------------------------- homes

-- The map from xedge: servers = { {name=, weight=}, ... } in pool order,
-- pins = { [bare] = name }, got = the count of pins. nil until the first
-- whole map arrives (xedge sends a large map in parts: <pool gen='G'
-- pins='N'/>, then <pins/> up to N; each link builds its own,
-- session.pending), then <delta gen='G+1'/>s of the pins that changed
-- (session.gen: the generation the link last applied; session.resync_asked:
-- a whole map asked for and not yet come). The last whole map received on
-- any link is the one in use, and every link's deltas apply to it: every
-- xedge node computes the map from the same store, so two links' maps
-- differ only while a change (a pin, a reload) reaches the nodes one after
-- the other, a second or so, and a pin or unpin applied twice (once per
-- link) leaves the same map.
local map;

-- The home of a bare JID: its pin, else the rendezvous choice, as xedge
-- computes it (xedge_pool.lib.lua; checked against xedge by t/lua-pool.t).
local function home_of(bare)
	return P.home(map, bare);
end

module:provides("xedge_pool_home", { home_of = function(bare) return map and home_of(bare); end });

---------------------------------------------------------------- the links

-- links[i].session: the connection to listener i (nil while down and
-- waiting for its retry): { conn =, authed =, stream =, pending =, link = }.
-- Each link reconnects on its own, with its own backoff (1 s doubling to
-- 30 s, back to 1 s once authenticated).
local stopping = false;
module:hook_global("server-stopping", function() stopping = true; end);

-- Stanzas routed here are handled as if they came from this host, with
-- this origin: the hooks below let them through (delivered locally, never
-- sent on). Replies the handlers send through origin.send go back out
-- through the normal route (and to their sender's home).
local route_origin = {
	type = "local", host = host, xedge_route = true,
	log = module._log,
	send = function(stanza) module:send(stanza); end,
};
function route_origin.close() end

-- The link stanzas go out on: the first authenticated one in the
-- configuration's order. Stable, so that while all are up every stanza of
-- this server takes one node (in order); a list in another order on each
-- server spreads the servers over the nodes.
local function send_link()
	for _, L in ipairs(links) do
		local s = L.session;
		if s and s.conn and s.authed then return L; end
	end
end

local current; -- the link send_link gave last (for the log)
local function note_send_link()
	local L = send_link();
	if L == current then return; end
	current = L;
	if L then
		module:log("info", "xedge routing: stanzas go through %s", L.spec);
	else
		module:log("warn", "xedge routing: no link up (%d configured)", #links);
	end
end

local function link_write(session, data)
	session.last_out = now();
	session.conn:write(data);
end

local function link_send(data)
	local L = send_link();
	if not L then return false; end
	link_write(L.session, data);
	return true;
end

local stream_callbacks = { default_ns = "jabber:server" };

function stream_callbacks.streamopened(session, attr)
	session.notopen = nil;
	local token = A.make(secret, "route", host .. " " .. self_name, os.time() + 30,
		hex_to(random_bytes(16)));
	-- unroutable='yes': a stanza whose home has no link on that node comes
	-- back (<unroutable/>) for the next link to try, not as an error
	link_write(session, tostring(st.stanza("auth", { xmlns = "urn:xedge:route:0", server = self_name,
		unroutable = "yes" })
		:text(token)));
end

-- A <delta gen='G'/> of the pins: applied to the whole map in use when
-- it is the link's next generation (xedge sends deltas in order, and never
-- between the parts of a map: one arriving while a map is being built is
-- a gap too). A gap: the map whole is asked for, once; the map in use
-- stays until it comes. (A pin or an unpin applied twice, by two links,
-- is the same map.)
local function ask_resync(session, why)
	if session.resync_asked then return; end -- once, until the map comes
	session.resync_asked = true;
	module:log("warn", "xedge pool map (from %s): %s: asking for the whole map", session.link.spec, why);
	link_write(session, tostring(st.stanza("resync", { xmlns = "urn:xedge:route:0",
		gen = session.gen and tostring(session.gen) or nil })));
end

local function apply_delta(session, delta)
	local ok, pinned, unpinned, count_ok = P.apply_delta(map, session, delta);
	if not ok then
		ask_resync(session, pinned);
		return;
	end
	module:log("info", "xedge pool map: %d servers, %d pins (from %s) (delta, generation %d: %d pinned, %d unpinned)",
		#map.servers, map.got, session.link.spec, session.gen, pinned, unpinned);
	if not count_ok then
		ask_resync(session, ("%d pins after the delta, xedge has %s"):format(map.got, tostring(delta.attr.pins)));
	end
end

local function read_map(pool)
	local m = P.read_map(pool);
	local known = false;
	for _, s in ipairs(m.servers) do if s.name == self_name then known = true; end end
	if not known then
		module:log("error", "xedge's pool map does not name this server (%s)", self_name);
	end
	return m;
end

local bounce; -- (below)

local function link_up(L)
	local s = L.session;
	return s and s.conn and s.authed;
end

-- A stanza the node of this link could not route (its home has no link to
-- that node): the next link up after this one in the list takes it; after
-- the last, the sender gets recipient-unavailable, the error xedge gives.
-- Each link once per stanza (P.next_link goes forward only).
local function unroutable(session, wrapped)
	local stanza = P.unwrap(wrapped);
	if not stanza then
		module:log("warn", "xedge routing link (%s): an <unroutable/> without a stanza", session.link.spec);
		return;
	end
	local L = P.next_link(links, session.link.index, link_up);
	if L then
		module:log("debug", "xedge routing: %s for %s unroutable through %s (%s): trying %s", stanza.name,
			tostring(stanza.attr.to), session.link.spec, tostring(wrapped.attr.reason), L.spec);
		link_write(L.session, tostring(stanza));
		return;
	end
	module:log("info", "xedge routing: %s for %s unroutable through %s (%s), no other link to try: refused",
		stanza.name, tostring(stanza.attr.to), session.link.spec, tostring(wrapped.attr.reason));
	bounce(stanza, "the recipient's server is unavailable");
end

function stream_callbacks.handlestanza(session, stanza)
	local xmlns = stanza.attr.xmlns;
	if xmlns == "urn:xedge:route:0" then
		if stanza.name == "success" then
			session.authed = true;
			session.link.delay = 1;
			module:log("info", "xedge routing link up (%s) as %s", session.link.spec, self_name);
			note_send_link();
		elseif stanza.name == "failure" then
			module:log("error", "xedge refused the routing link (%s): %s", session.link.spec, tostring(stanza));
		elseif stanza.name == "pool" then
			-- the map's first part: the rest of its pins='N' pins follow in
			-- <pins/> parts; the map in use stays until the last one
			session.pending = read_map(stanza);
		elseif stanza.name == "pins" and session.pending then
			P.add_pins(session.pending, stanza);
		elseif stanza.name == "delta" then
			apply_delta(session, stanza);
		elseif stanza.name == "unroutable" and session.authed then
			unroutable(session, stanza);
		end
		-- (a <pong/>: the byte that came is the answer)
		local pending = session.pending;
		if pending and pending.got >= pending.want then
			map, session.gen, session.pending, session.resync_asked = pending, pending.gen, nil, nil;
			module:log("info", "xedge pool map: %d servers, %d pins (from %s) (full, generation %s)",
				#map.servers, map.got, session.link.spec, tostring(session.gen));
		end
		return;
	end
	if not session.authed then return; end
	-- a remote domain's stanza comes as its server wrote it (xedge sends it
	-- straight to the home): prepared here as Prosody's router prepares
	-- what reaches it over s2s
	local to, from = jid_prep(stanza.attr.to), stanza.attr.from and jid_prep(stanza.attr.from);
	if not to or (stanza.attr.from and not from) then
		module:log("warn", "dropping a routed %s with a malformed address (to %s, from %s)", stanza.name,
			tostring(stanza.attr.to), tostring(stanza.attr.from));
		return;
	end
	stanza.attr.to, stanza.attr.from = to, from;
	local _, to_host = jid_split(to);
	local ours = to_host == host
		or (map and map.components[to_host] == self_name and prosody.hosts[to_host]);
	-- xedge's error for a stanza this server sent on behalf of another
	-- domain's user (the home down: recipient-unavailable) goes back out
	-- to that domain like any error of ours
	local bounce_out = not ours and stanza.attr.type == "error" and to_host and not prosody.hosts[to_host];
	if bounce_out then ours = true; end
	if not ours or (stanza.name ~= "message" and stanza.name ~= "presence" and stanza.name ~= "iq") then
		module:log("warn", "dropping a routed %s for %s (not a user of %s)", stanza.name, tostring(to), host);
		return;
	end
	stanza.attr.xmlns = nil;
	module:log("debug", "routed in: %s", stanza:top_tag());
	prosody.core_post_stanza(route_origin, stanza);
end

function stream_callbacks.streamclosed(session)
	session.conn:close();
end

function stream_callbacks.error(session, error, data)
	module:log("warn", "xedge routing link (%s): %s %s", session.link.spec, tostring(error), tostring(data));
	session.conn:close();
end

local schedule_connect;

-- The callbacks of link L's connections (one at a time per link).
local function new_listeners(L)
	local listeners = {};
	function listeners.onconnect(conn)
		local session = L.session;
		if not session then conn:close(); return; end
		session.conn = conn;
		session.last_in, session.last_out = now(), now();
		-- many small stanzas each way: no Nagle (Prosody's default keeps it),
		-- or one waits for the other side's delayed ACK
		conn:setoption("tcp-nodelay", true);
		conn:write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
			.. "xmlns:stream='http://etherx.jabber.org/streams' to='" .. host .. "' version='1.0'>");
	end
	function listeners.onincoming(conn, data)
		local session = L.session;
		if not session or session.conn ~= conn then return; end
		session.last_in, session.ping_sent = now(), nil;
		local ok, err = session.stream:feed(data);
		if not ok then
			module:log("warn", "xedge routing link (%s): bad XML: %s", L.spec, tostring(err));
			conn:close();
		end
	end
	function listeners.ondisconnect(conn, err)
		local session = L.session;
		if session and session.conn == conn then
			module:log(session.authed and "warn" or "info", "xedge routing link down (%s): %s", L.spec,
				tostring(err));
			L.session = nil;
			note_send_link();
			schedule_connect(L);
		end
	end
	function listeners.onfail(data, err)
		if L.session == data then
			module:log("info", "cannot reach xedge's routing listener %s: %s", L.spec, tostring(err));
			L.session = nil;
			schedule_connect(L);
		end
	end
	return listeners;
end

local function start_link(L)
	if not L or L.session or stopping then return; end
	local session = { notopen = true, link = L };
	session.stream = xmppstream.new(session, stream_callbacks, 1024 * 1024);
	L.session = session;
	L.listeners = L.listeners or new_listeners(L);
	connect(basic_resolver.new(L.host, L.port, "tcp", {}), L.listeners, nil, session);
end

-- (through an event: a timer left by a module since unloaded finds no hook)
function schedule_connect(L)
	if stopping then return; end
	local delay = L.delay;
	L.delay = math.min(L.delay * 2, 30);
	timer.add_task(delay, function() module:fire_event("xedge-pool-connect", { index = L.index }); end);
end

-- A dead link: forgotten at once (its close may wait on a write buffer a
-- hung node never reads), the next link takes the stanzas, and it
-- reconnects with its backoff.
local function link_dead(L, why)
	local session = L.session;
	module:log("warn", "xedge routing link dead (%s): %s", L.spec, why);
	L.session = nil;
	note_send_link();
	if session.conn then session.conn:close(); end
	schedule_connect(L);
end

local ping_seq = 0;
local function check_link(L)
	local session = L.session;
	if not session or not session.conn or not session.last_in then return; end
	local t = now();
	if not session.authed then
		if t - session.last_in >= ping_interval + ping_timeout then
			link_dead(L, ("no answer to the stream's start in %d s"):format(ping_interval + ping_timeout));
		end
	elseif session.ping_sent then
		if t - session.ping_sent >= ping_timeout then
			link_dead(L, ("no answer to a ping in %d s"):format(ping_timeout));
		end
	elseif t - session.last_in >= ping_interval or t - session.last_out >= ping_interval then
		ping_seq = ping_seq + 1;
		link_write(session, "<ping xmlns='urn:xedge:route:0' id='" .. ping_seq .. "' interval='"
			.. ping_interval .. "'/>");
		session.ping_sent = t;
	end
end

-- (every tick, a fraction of the shorter of the two: a second at most)
local tick = math.max(0.2, math.min(1, ping_interval / 4, ping_timeout / 4));
local function check_links()
	if stopping then return; end
	for _, L in ipairs(links) do check_link(L); end
	timer.add_task(tick, function() module:fire_event("xedge-pool-check"); end);
end
module:hook("xedge-pool-check", check_links);

local function start_links()
	for _, L in ipairs(links) do start_link(L); end
end
module:hook_global("server-started", check_links);
if prosody.start_time then timer.add_task(0, check_links); end
module:hook("xedge-pool-connect", function(event) start_link(links[event.index]); end);
module:hook_global("server-started", start_links);
if prosody.start_time then timer.add_task(0, start_links); end -- a reload of the module

function module.unload()
	stopping = true;
	for _, L in ipairs(links) do
		if L.session and L.session.conn then L.session.conn:close(); end
	end
end

---------------------------------------------------------------- the hooks

local subscription_types = { subscribe = true, subscribed = true, unsubscribe = true, unsubscribed = true };

-- The error for a stanza that cannot reach its home now.
function bounce(stanza, why)
	local t = stanza.attr.type;
	if t == "error" or t == "result" then return; end
	if stanza.name == "presence" and not subscription_types[t] then return; end
	module:send(st.error_reply(stanza, "wait", "recipient-unavailable", why));
end

local function route(event)
	local origin, stanza = event.origin, event.stanza;
	if origin == route_origin or event.to_self then return; end -- delivered here
	local to = stanza.attr.to;
	if not to then return; end
	local node, to_host = jid_split(to);
	if not node or to_host ~= host then return; end
	local bare = node .. "@" .. to_host;
	if not map then
		-- no map yet: only a user with a session here is known to be ours
		if prosody.bare_sessions[bare] then return; end
		module:log("warn", "no pool map from xedge yet: %s for %s refused", stanza.name, bare);
		bounce(stanza, "the server's routing link is not up");
		return true;
	end
	local home = home_of(bare);
	-- no home: not a JID (Prosody's own checks refuse it); ours: here
	if not home or home == self_name then return; end
	if stanza.attr.xmlns == "jabber:client" then stanza.attr.xmlns = nil; end
	if not link_send(tostring(stanza)) then
		module:log("warn", "routing link down: %s for %s (home %s) refused (no link up)", stanza.name, bare,
			tostring(home));
		bounce(stanza, "the recipient's server is unreachable");
		return true;
	end
	module:log("debug", "routed out to %s: %s", tostring(home), stanza:top_tag());
	return true;
end

-- A component domain of the pool (MUC, upload...) hosted by another
-- server: not a host here, so Prosody routes it as remote; before
-- mod_s2s (-1) and mod_xedge_s2s (-5) see it, it goes to xedge, which
-- passes it to the component's server.
module:hook("route/remote", function(event)
	local stanza = event.stanza;
	local server = map and map.components[event.to_host];
	if not server or server == self_name then return; end
	if not link_send(tostring(stanza)) then
		module:log("warn", "routing link down: %s for %s (on %s) refused (no link up)", stanza.name,
			tostring(stanza.attr.to), server);
		bounce(stanza, "the component's server is unreachable");
	end
	return true;
end, 100);

for _, name in ipairs({ "message", "presence", "iq" }) do
	module:hook(name .. "/bare", route, 1000);
	module:hook(name .. "/full", route, 1000);
end

do
	local specs = {};
	for i, L in ipairs(links) do specs[i] = L.spec; end
	module:log("info", "xedge pool routing for %s as %s through %s (ping after %d s quiet, dead after %d s more)",
		host, self_name, table.concat(specs, ", "), ping_interval, ping_timeout);
end
