-- mod_xedge_s2s: Prosody 0.12 federation behind xedge, the TLS-terminating
-- XMPP edge (doc/federation.md in the xedge tree, "The Prosody glue").
--
-- Inbound: xedge authenticates the remote server (SASL EXTERNAL or
-- dialback), then opens a plaintext stream to this server's s2s port,
-- from=PEER to=LOCAL, and sends <db:result from=PEER to=LOCAL>TOKEN</db:result>
-- where TOKEN is a signed, short-lived identity assertion (doc/assertion.md:
-- purpose "s2s", identity "PEER LOCAL", the pool's secret). This module
-- checks it before mod_dialback sees it: valid, the pair is authenticated
-- (s2s-authenticated, mechanism "xedge") and <db:result type='valid'/> is
-- sent; not valid, <db:result type='invalid'/> and the stream is closed
-- with <not-authorized/>. A key that is not an xedge assertion ("xe1:...")
-- goes to mod_dialback unchanged.
--
-- Outbound: every new outgoing s2s connection of the host goes to xedge's
-- s2s_backend listener (xedge_s2s_route), never to DNS. Instead of a
-- dialback key, our <db:result> there carries an assertion (purpose
-- "s2s-out", identity "FROM TO", the same secret), which xedge checks
-- before it federates on our behalf: a connection from loopback alone
-- proves nothing, any local process could make one.
--
-- Configuration (README.md next to this file):
--   modules_enabled = { ...; "xedge_s2s"; }
--   xedge_secret_file = "/etc/prosody/xedge.secret"   -- required, >= 32 bytes (as for c2s)
--   xedge_s2s_route = "127.0.0.1:5280"                -- required: xedge's s2s_backend listener
--   xedge_assertion_max_lifetime = 120                -- seconds, default 120
--   xedge_replay_cache_size = 100000                  -- nonces kept at most
--   s2s_require_encryption = false                    -- the links are plaintext on loopback
--   s2s_secure_auth = false

local st = require "util.stanza";
local nameprep = require "util.encodings".stringprep.nameprep;
local new_outgoing = require "core.s2smanager".new_outgoing;
local connect = require "net.connect".connect;
local basic_resolver = require "net.resolvers.basic";
local portmanager = require "core.portmanager";
local random_bytes = require "util.random".bytes;
local hex_to = require "util.hex".to;

local A = dofile(module:get_directory() .. "/xedge_assertion.lib.lua");

local hosts = prosody.hosts;
local os_time = os.time;
local tostring, tonumber, ipairs, type = tostring, tonumber, ipairs, type;

-- mod_s2s owns the s2s sessions, its listener and route_to_existing_session;
-- mod_dialback handles every key that is not ours.
module:depends("s2s");
module:depends("dialback");

-- The secret: read once at load. A missing or short secret stops the module
-- from loading (Prosody logs the error; nothing is authenticated by it).
local secret = A.load_module_secret(module, "mod_xedge_s2s");

-- The route: "HOST:PORT" or "[IPV6]:PORT".
local route_spec = module:get_option_string("xedge_s2s_route");
local route_host, route_port;
if route_spec then
	route_host, route_port = route_spec:match("^%[([^%]]+)%]:(%d+)$");
	if not route_host then
		route_host, route_port = route_spec:match("^([^:%[%]]+):(%d+)$");
	end
	route_port = tonumber(route_port);
end
if not route_host or not route_port or route_port < 1 or route_port > 65535 then
	module:log("error", "xedge_s2s_route must be \"HOST:PORT\" (xedge's s2s_backend listener), got %q",
		tostring(route_spec));
	error("mod_xedge_s2s: bad or missing xedge_s2s_route");
end

local max_lifetime = module:get_option_number("xedge_assertion_max_lifetime", 120);
max_lifetime = math.tointeger(math.floor(max_lifetime)) or 120;
if max_lifetime < 1 then
	module:log("error", "xedge_assertion_max_lifetime must be at least 1 (got %d)", max_lifetime);
	error("mod_xedge_s2s: bad xedge_assertion_max_lifetime");
end
local replay = A.new_replay_cache(module:get_option_number("xedge_replay_cache_size", 100000));
local unauthed_stanza_size_limit = module:get_option_number("s2s_unauthed_stanza_size_limit", 10000, 1000);

module:log("info", "xedge s2s assertions accepted for %s; outgoing s2s routed to %s:%d",
	module.host, route_host, route_port);

---------------------------------------------------------------- inbound

local function reply(origin, from, to, type)
	origin.sends2s(st.stanza("db:result", { from = to, to = from, type = type }));
end

local function refuse(origin, from, to, why)
	module:log("warn", "xedge s2s assertion rejected for %s -> %s: %s", tostring(from), tostring(to), why);
	if from and to then reply(origin, from, to, "invalid"); end
	origin:close({ condition = "not-authorized", text = "xedge assertion refused" });
	return true;
end

-- Above mod_dialback's handler (priority 0): only xedge's tokens are ours.
module:hook("stanza/jabber:server:dialback:result", function(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "s2sin_unauthed" and origin.type ~= "s2sin" then return; end
	local token = stanza:get_text();
	if type(token) ~= "string" or token:sub(1, 4) ~= A.VERSION .. ":" then
		return; -- a dialback key: mod_dialback's
	end
	local attr = stanza.attr;
	local to, from = attr.to and nameprep(attr.to), attr.from and nameprep(attr.from);
	if not to or not from then
		module:log("warn", "xedge s2s assertion without valid from/to (from=%q, to=%q)",
			tostring(attr.from), tostring(attr.to));
		origin:close("improper-addressing");
		return true;
	end
	if not hosts[to] then
		module:log("warn", "xedge s2s assertion for %s, a host we do not serve", to);
		origin:close("host-unknown");
		return true;
	end
	if to ~= module.host then
		-- Prosody fires the event on the host named by `to`, so this is a
		-- guard: the secret checked must be that host's
		return refuse(origin, from, to, "to is not this module's host " .. module.host);
	end
	if hosts[from] then
		return refuse(origin, from, to, "from is a host we serve");
	end
	local now = os_time();
	local result, info = A.verify(secret, "s2s", from .. " " .. to, token, now, max_lifetime);
	if result ~= A.OK then
		return refuse(origin, from, to, result);
	end
	local accepted, why = replay:accept(info.nonce, info.expiry, now);
	if not accepted then
		return refuse(origin, from, to, why);
	end

	-- as mod_dialback does
	if not origin.from_host then origin.from_host = from; end
	if not origin.to_host then origin.to_host = to; end
	origin.hosts[from] = origin.hosts[from] or {};
	local authed = module:fire_event("s2s-authenticated", { session = origin, host = from, mechanism = "xedge" });
	if not authed or origin.destroyed or not (origin.hosts[from] and origin.hosts[from].authed) then
		-- mod_s2s refused it (and closed the stream, saying why)
		module:log("warn", "xedge s2s assertion for %s -> %s valid, but the session was not authenticated", from, to);
		return true;
	end
	module:log("info", "xedge s2s assertion accepted for %s -> %s (expires in %ds)", from, to, info.expiry - now);
	reply(origin, from, to, "valid");
	return true;
end, 10);

---------------------------------------------------------------- outbound

-- Why a route/remote hook: Prosody 0.12.3 (Debian 12) has no event to
-- replace the resolver of a new outgoing connection ("s2sout-pre-connect"
-- came in 0.12.4), and mod_s2s's route_to_new_session always asks DNS. The
-- route/remote event is Prosody's documented extension point for routing
-- to remote domains: mod_s2s hooks it twice, route_to_existing_session at
-- -1 and route_to_new_session at -10. This handler, at -5, runs only when
-- there is no session to the remote domain yet and does what
-- route_to_new_session does (s2smanager.new_outgoing, the queue, the
-- s2sout-created event, net.connect with mod_s2s's own listener, taken from
-- the port manager) with a net.resolvers.basic resolver on the route
-- instead of the DNS one. Nothing of Prosody is patched; mod_s2s then runs
-- the session as any other (stream, dialback, queue flush, bounces).
local stopping = false;
module:hook_global("server-stopping", function() stopping = true; end);

-- mod_s2s's bounce_sendq is local to it, and s2smanager.destroy_session
-- calls session:bounce_sendq() on an outgoing session that failed: the
-- queued stanzas get remote-server-not-found (or -timeout) errors.
local bouncy = { message = true, presence = true, iq = true };
local function bounce_sendq(session, reason)
	local sendq = session.sendq;
	if not sendq then return; end
	session.sendq = nil;
	session.log("info", "Sending error replies for %d queued stanzas: the xedge route %s:%d failed",
		#sendq, route_host, route_port);
	local dummy = { type = "s2sin"; dummy = true; send = function() end; close = function() end; };
	local error_type, condition = "cancel", "remote-server-not-found";
	if session.had_stream then error_type, condition = "wait", "remote-server-timeout"; end
	local failure = session.xedge_failure;
	if failure then
		-- what xedge said went wrong with the remote server (below)
		error_type, condition, reason = failure.type, failure.condition, failure.text;
	end
	for _, item in ipairs(sendq) do
		local r = item[2];
		if r and not r.attr.xmlns and bouncy[r.name] then
			r.attr.type = "error";
			r:tag("error", { type = error_type, by = session.from_host })
				:tag(condition, { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" }):up();
			if type(reason) == "string" then
				r:tag("text", { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" })
					:text("Server-to-server connection failed: " .. reason):up();
			end
			prosody.core_process_stanza(dummy, r);
		end
	end
end

-- xedge's answer when the remote server could not be reached or refused
-- us: <db:result type='error'> with the stanza error our bounces should
-- carry (doc/federation.md: a DNS failure, EXTERNAL refused, dialback
-- refused, a timeout, ...). Kept for bounce_sendq; the stream to xedge is
-- then closed without an error of ours (nothing is wrong with the link).
-- Above mod_dialback (priority 0), which would take any non-valid result
-- for "dialback authentication failed".
local known_types = { cancel = true, wait = true, modify = true, auth = true };
module:hook("stanza/jabber:server:dialback:result", function(event)
	local origin, stanza = event.origin, event.stanza;
	if not origin.xedge_routed or origin.direction ~= "outgoing" or stanza.attr.type ~= "error" then
		return;
	end
	-- <error/> is in the stream's namespace (jabber:server), not db:'s
	local err = stanza:child_with_name("error");
	local cond = err and err.tags[1];
	local text = err and err:get_child_text("text", "urn:ietf:params:xml:ns:xmpp-stanzas");
	local etype = err and known_types[err.attr.type] and err.attr.type or "cancel";
	local condition = cond and cond.attr.xmlns == "urn:ietf:params:xml:ns:xmpp-stanzas"
		and cond.name:match("^[a-z%-]+$") or "remote-server-not-found";
	origin.xedge_failure = { type = etype, condition = condition, text = text and text:sub(1, 300) };
	origin.log("info", "xedge could not federate %s -> %s: %s (%s)", tostring(origin.from_host),
		tostring(origin.to_host), condition, tostring(text));
	origin:close();
	return true;
end, 10);

module:hook("route/remote", function(event)
	local from_host, to_host, stanza = event.from_host, event.to_host, event.stanza;
	-- (mod_s2s's route_to_existing_session refuses these first)
	if not hosts[from_host] or hosts[to_host] then return false; end
	if stopping then
		return false; -- no new connection while stopping (never DNS): bounced
	end
	local s2s_service = portmanager.get_service("s2s");
	if not s2s_service or not s2s_service.listener then
		module:log("error", "mod_s2s's listener is not registered: cannot route to %s", to_host);
		return false;
	end
	module:log("debug", "new outgoing s2s %s -> %s through xedge at %s:%d", from_host, to_host,
		route_host, route_port);
	local session = new_outgoing(from_host, to_host);
	session.version = 1;
	session.stanza_size_limit = unauthed_stanza_size_limit;
	session.bounce_sendq = bounce_sendq;
	session.sendq = { { tostring(stanza),
		stanza.attr.type ~= "error" and stanza.attr.type ~= "result" and st.reply(stanza) } };
	-- as mod_s2s does (mod_tls attaches its client context: STARTTLS is used
	-- if xedge ever offers it)
	session.xedge_routed = true; -- our key on it is an assertion (below)
	module:context(from_host):fire_event("s2sout-created", { session = session });
	connect(basic_resolver.new(route_host, route_port, "tcp", {}), s2s_service.listener, nil,
		{ session = session });
	return true;
end, -5);

---------------------------------------------------------------- outbound key

-- On a stream to xedge, the dialback key is an assertion that xedge checks
-- (doc/assertion.md, purpose "s2s-out", identity "FROM TO"); mod_dialback
-- sends its own key (priority 100) on every other stream.
local OUT_LIFETIME = 30; -- seconds: xedge refuses more than its assertion_lifetime (60)

local function send_assertion(session)
	local token = A.make(secret, "s2s-out", session.from_host .. " " .. session.to_host,
		os_time() + OUT_LIFETIME, hex_to(random_bytes(16)));
	session.sends2s(st.stanza("db:result", { from = session.from_host, to = session.to_host }):text(token));
	session.log("debug", "sent an xedge s2s-out assertion on the stream to xedge");
end

module:hook_tag("http://etherx.jabber.org/streams", "features", function(origin)
	if origin.xedge_routed and (not origin.external_auth or origin.external_auth == "failed") then
		send_assertion(origin);
		return true;
	end
end, 110);

module:hook("s2sout-authenticate-legacy", function(event)
	if event.origin.xedge_routed then
		send_assertion(event.origin);
		return true;
	end
end, 110);
