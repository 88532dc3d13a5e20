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

local new_sasl = require "util.sasl".new;

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
	module:log("info", "xedge assertion accepted for %s%s (expires in %ds)", identity,
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
function provider.delete_user(username) return nil, "managed by xedge"; end

function provider.get_sasl_handler()
	return new_sasl(module.host, {
		-- PLAIN only. username: the nodeprep'ed authcid; password: the token.
		plain_test = function(sasl, username, password, realm)
			return check_assertion(username, password) == true, true;
		end;
	});
end

module:provides("auth", provider);
