-- mod_xedge_pool: one domain over several Prosody servers behind xedge
-- (doc/pool-routing.md in the xedge tree).
--
-- Each user of the domain has one home: the server xedge pins them to, else
-- the rendezvous choice of the pool (the same computation as xedge's
-- src/core/pool.c). This module keeps one link to xedge's routing listener,
-- authenticated by an assertion (doc/assertion.md, purpose "route",
-- identity "DOMAIN SERVER"), and over it:
--   * xedge sends the map of homes (<pool/>: the servers with their
--     weights, the pins), whole at the link's start and after a reload,
--     and a <delta/> of the pins that changed after a pin, an unpin or a
--     user's removal (a generation number on each: a gap asks for the
--     map whole, <resync/>);
--   * every stanza this server would handle for a user of the domain homed
--     elsewhere (message, presence, iq; bare or full JID) goes to xedge,
--     which sends it to the home; nothing of it is handled here (no
--     offline storage, no vCard or PEP answer, no subscription state);
--   * stanzas xedge routes here are delivered locally and never sent on
--     again (xedge refuses a stanza whose home is the server that sent it).
-- Without a map (the link never came up), and for a user homed elsewhere
-- while the link is down, the sender gets recipient-unavailable (wait):
-- nothing is stored on a server that is not the user's home.
--
-- Configuration (on the VirtualHost):
--   modules_enabled = { ...; "xedge_pool"; }
--   xedge_secret_file = "/etc/prosody/xedge.secret"  -- the pool's secret (as for c2s)
--   xedge_pool_route = "127.0.0.1:5290"              -- xedge's routing listener
--   xedge_pool_server = "prosody-1"                  -- this server's name in xedge.conf

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

local secret = A.load_module_secret(module, "mod_xedge_pool");
local self_name = module:get_option_string("xedge_pool_server");
if not self_name or self_name == "" then
	module:log("error", "xedge_pool_server must name this server as xedge.conf's pool does");
	error("mod_xedge_pool: xedge_pool_server is not set");
end
local route_spec = module:get_option_string("xedge_pool_route");
local route_host, route_port;
if route_spec then
	route_host, route_port = route_spec:match("^%[([^%]]+)%]:(%d+)$");
	if not route_host then route_host, route_port = route_spec:match("^([^:%[%]]+):(%d+)$"); end
	route_port = tonumber(route_port);
end
if not route_host or not route_port or route_port < 1 or route_port > 65535 then
	module:log("error", "xedge_pool_route must be \"HOST:PORT\" (xedge's routing listener), got %q",
		tostring(route_spec));
	error("mod_xedge_pool: bad or missing xedge_pool_route");
end

---------------------------------------------------------------- homes

-- The map from xedge: servers = { {name=, weight=}, ... } in pool order,
-- pins = { [bare] = name }, got = the count of pins. nil until the first
-- whole map arrives (xedge sends a large map in parts: <pool gen='G'
-- pins='N'/>, then <pins/> up to N). What a link is receiving is its own
-- (its session): session.pending, a map whose parts are still arriving;
-- session.gen, the generation of the last map or delta it applied;
-- session.resync_asked, a whole map asked for and not yet come.
local map;

-- The home of a bare JID: its pin, else the rendezvous choice, as xedge
-- computes it (xedge_pool.lib.lua; checked against xedge by t/lua-pool.t).
local function home_of(bare)
	return P.home(map, bare);
end

module:provides("xedge_pool_home", { home_of = function(bare) return map and home_of(bare); end });

---------------------------------------------------------------- the link

local link; -- { conn =, authed =, stream = }
local reconnect_delay = 1;
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

local function link_send(data)
	if link and link.conn and link.authed then
		link.conn:write(data);
		return true;
	end
	return false;
end

local stream_callbacks = { default_ns = "jabber:server" };

function stream_callbacks.streamopened(session, attr)
	session.notopen = nil;
	local token = A.make(secret, "route", host .. " " .. self_name, os.time() + 30,
		hex_to(random_bytes(16)));
	session.conn:write(tostring(st.stanza("auth", { xmlns = "urn:xedge:route:0", server = self_name })
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
	module:log("warn", "xedge pool map: %s: asking for the whole map", why);
	session.conn:write(tostring(st.stanza("resync", { xmlns = "urn:xedge:route:0",
		gen = session.gen and tostring(session.gen) or nil })));
end

local function apply_delta(session, delta)
	local ok, pinned, unpinned, count_ok = P.apply_delta(map, session, delta);
	if not ok then
		ask_resync(session, pinned);
		return;
	end
	module:log("info", "xedge pool map: %d servers, %d pins (delta, generation %d: %d pinned, %d unpinned)",
		#map.servers, map.got, session.gen, pinned, unpinned);
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

function stream_callbacks.handlestanza(session, stanza)
	local xmlns = stanza.attr.xmlns;
	if xmlns == "urn:xedge:route:0" then
		if stanza.name == "success" then
			session.authed = true;
			reconnect_delay = 1;
			module:log("info", "xedge routing link up (%s:%d) as %s", route_host, route_port, self_name);
		elseif stanza.name == "failure" then
			module:log("error", "xedge refused the routing link: %s", tostring(stanza));
		elseif stanza.name == "pool" then
			-- the map's first part: the rest of its pins='N' pins follow in
			-- <pins/> parts; the map in use stays until the last one
			session.pending = read_map(stanza);
		elseif stanza.name == "pins" and session.pending then
			P.add_pins(session.pending, stanza);
		elseif stanza.name == "delta" then
			apply_delta(session, stanza);
		end
		local pending = session.pending;
		if pending and pending.got >= pending.want then
			map, session.gen, session.pending, session.resync_asked = pending, pending.gen, nil, nil;
			module:log("info", "xedge pool map: %d servers, %d pins (full, generation %s)", #map.servers,
				map.got, tostring(session.gen));
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
	module:log("warn", "xedge routing link: %s %s", tostring(error), tostring(data));
	session.conn:close();
end

local listeners = {};
local function schedule_connect()
	if stopping then return; end
	local delay = reconnect_delay;
	reconnect_delay = math.min(reconnect_delay * 2, 30);
	timer.add_task(delay, function() module:fire_event("xedge-pool-connect"); end);
end

function listeners.onconnect(conn)
	local session = link;
	session.conn = conn;
	-- many small stanzas each way: no Nagle (Prosody's default keeps it),
	-- or one waits for the other side's delayed ACK
	conn:setoption("tcp-nodelay", true);
	conn:write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
		.. "xmlns:stream='http://etherx.jabber.org/streams' to='" .. host .. "' version='1.0'>");
end
function listeners.onincoming(conn, data)
	local session = link;
	if not session or session.conn ~= conn then return; end
	local ok, err = session.stream:feed(data);
	if not ok then
		module:log("warn", "xedge routing link: bad XML: %s", tostring(err));
		conn:close();
	end
end
function listeners.ondisconnect(conn, err)
	if link and link.conn == conn then
		module:log(link.authed and "warn" or "info", "xedge routing link down: %s", tostring(err));
		link = nil;
		schedule_connect();
	end
end
function listeners.onfail(data, err)
	if link == data then
		module:log("info", "cannot reach xedge's routing listener %s:%d: %s", route_host, route_port, tostring(err));
		link = nil;
		schedule_connect();
	end
end

local function start_link()
	if link or stopping then return; end
	local session = { notopen = true };
	session.stream = xmppstream.new(session, stream_callbacks, 1024 * 1024);
	link = session;
	connect(basic_resolver.new(route_host, route_port, "tcp", {}), listeners, nil, session);
end
module:hook("xedge-pool-connect", start_link);
module:hook_global("server-started", start_link);
if prosody.start_time then timer.add_task(0, start_link); end -- a reload of the module

function module.unload()
	stopping = true;
	if link and link.conn then link.conn:close(); end
end

---------------------------------------------------------------- the hooks

local subscription_types = { subscribe = true, subscribed = true, unsubscribe = true, unsubscribed = true };

-- The error for a stanza that cannot reach its home now.
local function bounce(stanza, why)
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
		module:log("warn", "routing link down: %s for %s (home %s) refused", stanza.name, bare, tostring(home));
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
		module:log("warn", "routing link down: %s for %s (on %s) refused", stanza.name,
			tostring(stanza.attr.to), server);
		bounce(stanza, "the component's server is unreachable");
	end
	return true;
end, 100);

for _, name in ipairs({ "message", "presence", "iq" }) do
	module:hook(name .. "/bare", route, 1000);
	module:hook(name .. "/full", route, 1000);
end

module:log("info", "xedge pool routing for %s as %s through %s:%d", host, self_name, route_host, route_port);
