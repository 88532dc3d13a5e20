-- mod_auth_xedge: Prosody 0.12 authentication provider for servers behind
-- xedge, the TLS/SASL-terminating XMPP edge.
--
-- xedge authenticates the user itself, then logs in to this server with SASL
-- PLAIN: authzid empty, authcid = the user's localpart, password = a signed,
-- short-lived identity assertion (doc/assertion.md in the xedge tree). This
-- module checks the assertion with the secret shared with xedge and refuses
-- everything else. Users and passwords live in xedge, not here.
--
-- Configuration (see README.md next to this file):
--   plugin_paths = { "/path/to/xedge/contrib/prosody" }
--   authentication = "xedge"
--   xedge_secret_file = "/etc/prosody/xedge.secret"   -- required, >= 32 bytes
--   xedge_assertion_max_lifetime = 120                -- seconds, default 120
--   xedge_replay_cache_size = 100000                  -- nonces kept at most
--   xedge_allow_anonymous = false                     -- admit xedge's ANONYMOUS
--                                                     -- sessions (purpose c2s-anonymous)
--   xedge_direct_auth = true                          -- offer xedge the direct
--                                                     -- login (below)
--
-- The direct login (doc/assertion.md, "Direct login"): the module offers
-- <auth xmlns='urn:xedge:auth:0'/> in the stream features of an
-- unauthenticated stream; xedge then sends the same assertion in
-- <auth xmlns='urn:xedge:auth:0' user='LOCALPART'>TOKEN</auth> and gets
-- <success xmlns='urn:xedge:auth:0'/> followed by the stream features of the
-- authenticated session, on the same stream: no SASL exchange and no stream
-- restart. xedge falls back to SASL PLAIN where it is not offered.

local new_sasl = require "util.sasl".new;
local st = require "util.stanza";
local nodeprep = require "util.encodings".stringprep.nodeprep;
local sm_make_authenticated = require "core.sessionmanager".make_authenticated;

local A = dofile(module:get_directory() .. "/xedge_assertion.lib.lua");

local os_time = os.time;

-- The secret: read once at load. A missing or short secret stops the module
-- from loading (Prosody then logs the error and offers no authentication).
-- a relative path is taken relative to the directory of the config file
local secret = A.load_module_secret(module, "mod_auth_xedge");

local max_lifetime = module:get_option_number("xedge_assertion_max_lifetime", 120);
max_lifetime = math.tointeger(math.floor(max_lifetime)) or 120;
if max_lifetime < 1 then
	module:log("error", "xedge_assertion_max_lifetime must be at least 1 (got %d)", max_lifetime);
	error("mod_auth_xedge: bad xedge_assertion_max_lifetime");
end
local replay_cache_size = module:get_option_number("xedge_replay_cache_size", 100000);
-- xedge marks the sessions it authenticated with SASL ANONYMOUS (random,
-- temporary JIDs) by the purpose c2s-anonymous: admitted only when allowed.
local allow_anonymous = module:get_option_boolean("xedge_allow_anonymous", false);

module:log("info", "xedge assertions accepted for %s (max lifetime %ds)", module.host, max_lifetime);

-- Replay cache: nonce -> expiry of every accepted assertion, kept until that
-- expiry. An assertion is accepted once. The cache is bounded by the rate of
-- logins times max_lifetime; past replay_cache_size we fail closed.
local replay = A.new_replay_cache(replay_cache_size);

-- Returns true, or nil and a reason.
local function check_assertion(username, token)
	local now = os_time();
	local identity = username .. "@" .. module.host;
	local purpose = "c2s";
	if allow_anonymous and token:match("^xe1:c2s%-anonymous:") then
		purpose = "c2s-anonymous";
	end
	local result, info = A.verify(secret, purpose, identity, token, now, max_lifetime);
	if result ~= A.OK then
		module:log("warn", "xedge assertion rejected for %s: %s", identity, result);
		return nil, result;
	end
	local fresh, why = replay:accept(info.nonce, info.expiry, now);
	if why == "replayed" then
		module:log("warn", "xedge assertion rejected for %s: replayed (nonce already used)", identity);
		return nil, why;
	elseif not fresh then
		module:log("warn", "xedge assertion rejected for %s: replay cache full (%d entries)", identity, replay:size());
		return nil, why;
	end
	module:log("debug", "xedge assertion accepted for %s%s (expires in %ds)", identity,
		purpose == "c2s" and "" or " (anonymous)", info.expiry - now);
	return true;
end

local provider = {};

function provider.test_password(username, password)
	local ok, why = check_assertion(username, password);
	if ok then return true; end
	return nil, "Auth failed (" .. why .. ")";
end

function provider.user_exists(username) return true; end
function provider.users() return function() return nil; end; end
function provider.get_password(username) return nil, "managed by xedge"; end
function provider.set_password(username, password) return nil, "managed by xedge"; end
function provider.create_user(username, password) return nil, "managed by xedge"; end
-- The account lives in xedge; a removal through Prosody (mod_register's
-- <remove/>, which xedge sends as the user to purge a deleted user's data,
-- or prosodyctl deluser) succeeds here so that usermanager.delete_user goes
-- on to purge every per-user store (doc/assertion.md, "Purging").
function provider.delete_user(username)
	module:log("info", "account removal of %s@%s: its data is purged", username, module.host);
	return true;
end

function provider.get_sasl_handler()
	return new_sasl(module.host, {
		-- PLAIN only. username: the nodeprep'ed authcid; password: the token.
		plain_test = function(sasl, username, password, realm)
			return check_assertion(username, password) == true, true;
		end;
	});
end

module:provides("auth", provider);

-- The direct login.
local xmlns_direct = "urn:xedge:auth:0";

if module:get_option_boolean("xedge_direct_auth", true) then
	module:hook("stream-features", function(event)
		if not event.origin.username then
			event.features:tag("auth", { xmlns = xmlns_direct }):up();
		end
	end);

	module:hook("stanza/" .. xmlns_direct .. ":auth", function(event)
		local session, stanza = event.origin, event.stanza;
		local function failure(condition)
			session.send(st.stanza("failure", { xmlns = xmlns_direct }):tag(condition):up());
			return true;
		end
		if session.type ~= "c2s_unauthed" or session.username then
			return failure("not-allowed");
		end
		local username = nodeprep(stanza.attr.user or "");
		local token = stanza:get_text();
		if not username or username == "" or not token or token == "" then
			module:fire_event("authentication-failure", { session = session, condition = "malformed-request" });
			return failure("malformed-request");
		end
		local ok = check_assertion(username, token);
		if ok then
			ok = sm_make_authenticated(session, username);
		end
		if not ok then
			module:fire_event("authentication-failure", { session = session, condition = "not-authorized" });
			return failure("not-authorized");
		end
		module:fire_event("authentication-success", { session = session });
		session.sasl_handler = nil;
		session.send(st.stanza("success", { xmlns = xmlns_direct }));
		-- the features of the authenticated session, as a stream restart would
		-- have sent them
		local features = st.stanza("stream:features");
		module:fire_event("stream-features", { origin = session, features = features });
		session.send(features);
		return true;
	end);
end
