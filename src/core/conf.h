/* xedge: the configuration, loaded from one libconfig file and validated. */
#ifndef XE_CONF_H
#define XE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy.h"
#include "tls.h"

enum xe_listener_kind {
    XE_LISTEN_STARTTLS,
    XE_LISTEN_DIRECT_TLS,
    XE_LISTEN_WEBSOCKET,      /* XMPP over WebSocket (RFC 7395; ws below) */
    XE_LISTEN_S2S,            /* remote servers, STARTTLS (doc/federation.md) */
    XE_LISTEN_S2S_DIRECT_TLS, /* remote servers, Direct TLS (ALPN xmpp-server) */
    XE_LISTEN_S2S_BACKEND,    /* the backends' outgoing s2s streams */
};
/* a listener of the s2s glue (s2s_io.c), not of server.c */
#define XE_LISTEN_IS_S2S(k) ((k) >= XE_LISTEN_S2S)

struct xe_listener_conf {
    enum xe_listener_kind kind;
    char *address; /* numeric IPv4 or IPv6 address */
    int port;
    bool proxy_protocol;        /* connections start with a PROXY header (proxy.h) */
    struct xe_cidr *proxy_from; /* ... from these sources only (the others: refused) */
    size_t n_proxy_from;
    const struct xe_ws_listener_conf *ws; /* kind = websocket: its settings */
};

/* A WebSocket listener (kind = "websocket"; RFC 7395, doc/websocket.md).
 * Its entry in `listeners` (kind XE_LISTEN_WEBSOCKET, with the address,
 * port and PROXY settings) points here for the rest; the glue is
 * src/io/conn_ws.c. */
struct xe_ws_listener_conf {
    char *address; /* numeric IPv4 or IPv6 address */
    int port;
    bool tls;       /* wss (default); false: plain ws behind a TLS-terminating proxy */
    bool encrypted; /* plain ws: the operator says the proxy terminated TLS */
    struct xe_cidr *trusted_proxies; /* plain ws: the only sources accepted; their
                                      * X-Forwarded-For names the client */
    size_t n_trusted_proxies;
    bool proxy_protocol; /* as a listener's (proxy.h), handled by the glue */
    struct xe_cidr *proxy_from;
    size_t n_proxy_from;
    char *path;     /* the Upgrade's path; default "/xmpp-websocket" */
    char **origins; /* allowed Origin values; none: any */
    size_t n_origins;
    char *host_meta_url; /* the URL XEP-0156 host-meta lists; NULL: no host-meta */
};

/* informational: logged and shown (xedgectl backend list) */
enum xe_server_kind {
    XE_KIND_GENERIC,
    XE_KIND_PROSODY,
    XE_KIND_EJABBERD,
    XE_KIND_JABBERD2
};

struct xe_server_conf {
    char *name;
    char *host; /* numeric address, or the path of a unix socket ("/...") */
    int port;   /* 0 with a unix socket */
    bool unix_socket;
    unsigned weight;
    enum xe_server_kind kind;
    int s2s_port; /* the backend's s2s port for federation links; 0: none */
    /* kind jabberd2: the router this c2s is attached to (its address:port,
     * as the operator writes it), NULL: none declared. Servers of one pool
     * naming the same router are one jabberd2 cluster (session managers
     * bound with multi="to"), so least-conn may spread sessions over them */
    char *jabberd2_router;
};

/* how a pool chooses a server for a new session (pool.h) */
enum xe_pool_policy { XE_POLICY_STICKY, XE_POLICY_LEAST_CONN, XE_POLICY_ROUND_ROBIN };
/* what a sticky user whose server is down or draining gets */
enum xe_on_down { XE_ON_DOWN_ERROR, XE_ON_DOWN_NEXT };

struct xe_pool_conf {
    char *name;
    unsigned char *secret; /* the assertion secret, read from secret_file */
    size_t secret_len;
    char *secret_file;
    struct xe_server_conf *servers;
    size_t n_servers;
    bool proxy_protocol; /* send a PROXY v2 header first to each server */
    enum xe_pool_policy policy;
    enum xe_on_down on_down;
    unsigned retries; /* other servers tried when connecting or the handshake fails */
    /* admission control (admit.h): backend logins in progress per server
     * (0: no cap), and logins waiting for one of them to end */
    unsigned max_pending_logins, max_queued_logins;
    /* health checks; interval 0: none (every server is always up) */
    struct {
        unsigned interval_ms, timeout_ms;
        unsigned fall, rise;    /* consecutive failures / successes */
        unsigned slow_start_ms; /* back up: the weight ramps up over this */
    } health;
    /* one domain over several servers (route.h): stanzas for a user homed
     * on another server of the pool go there through xedge's routing
     * listener (sticky, on_down = "error" only) */
    bool route;
    /* with route: component domains (MUC, upload...) each hosted by one
     * server of the pool; their stanzas go there */
    struct xe_pool_component {
        char *domain;  /* lower case */
        size_t server; /* index in servers */
    } * components;
    size_t n_components;
};

struct xe_domain_conf {
    char *name; /* lower case */
    char *certificate;
    char *key;
    struct xe_pool_conf *pool;
    char **mechanisms; /* this domain's own list; NULL: the sasl group's */
    size_t n_mechanisms;
    char *client_ca;            /* CAs of client certificates (EXTERNAL), or NULL */
    unsigned client_identities; /* XE_ID_* (tls.h): the names that count */
    bool iq_auth;               /* offer non-SASL authentication (XEP-0078) */
    bool register_;             /* in-band registration (XEP-0077) */
    /* a logged-in user's own password change and account removal (XEP-0077),
     * without registration; default on (off with compression) */
    bool account_management;
    bool compression; /* offer XEP-0138 zlib after authentication */
    bool sasl2;       /* offer SASL2/Bind2/FAST (issue 16; default: sasl2.enabled) */
    struct xe_tls_settings tls; /* the top tls group, with this domain's own */
};

/* federation (the s2s group; doc/federation.md) */
enum xe_s2s_policy_conf {
    XE_S2S_POL_EXTERNAL,
    XE_S2S_POL_DIALBACK,
    XE_S2S_POL_REFUSE,
    XE_S2S_POL_SECRET
};
struct xe_s2s_peer_conf {
    char *domain;  /* lower case */
    int policy;    /* enum xe_s2s_policy_conf, or -1: the default */
    char *address; /* a static route (numeric), or NULL */
    int port;
    /* SASL with a pre-shared secret (secret_file), NULL: none */
    char *secret_file;
    unsigned char *secret;
    size_t secret_len;
    char **mechanisms; /* the SASL mechanisms for the secret, in order */
    size_t n_mechanisms;
};

struct xe_conf {
    char *path;
    int log_level;         /* XE_LOG_* */
    int log_to;            /* XE_LOG_TO_* (log.h) */
    int syslog_facility;   /* LOG_DAEMON, ... (syslog.h) */
    char *run_user;        /* switch to this user after binding (NULL: stay) */
    unsigned workers;      /* worker threads, each with its own loop (>= 1) */
    bool workers_auto;     /* workers = "auto": one per CPU we may run on */
    char *run_group;       /* ... and group (NULL: the user's) */
    char *metrics_address; /* Prometheus endpoint (NULL: none) */
    char *route_address;   /* the routing listener (route_io.h; NULL: none) */
    int route_port;
    int metrics_port;
    char *user_store;
    size_t user_store_map_mb;
    /* several nodes (doc/scaling.md): the PostgreSQL database that is the
     * source of truth (a libpq connection string; NULL: none, user_store is
     * the store itself), the file holding its password, and this node's name
     * in the cluster's heartbeat table (default: the host name) */
    char *user_store_database;
    char *user_store_database_password_file;
    char *node_name;
    unsigned changes_retention_s; /* user_store.changes_retention: the log's pruning */

    struct xe_listener_conf *listeners;
    size_t n_listeners;
    struct xe_ws_listener_conf *websockets; /* kind = "websocket" (listeners[].ws) */
    size_t n_websockets;
    struct xe_domain_conf *domains;
    size_t n_domains;
    struct xe_pool_conf *pools;
    size_t n_pools;

    struct xe_tls_settings tls; /* the top tls group (every domain's defaults) */
    /* tls.ticket_key_file: TLS session ticket keys, XE_TLS_TICKET_KEY_BYTES
     * each, the first encrypts; NULL: OpenSSL's own, per context */
    char *ticket_key_file;
    unsigned char *ticket_keys;
    size_t ticket_keys_len;

    /* sasl */
    char **mechanisms; /* upper case, in order of preference */
    size_t n_mechanisms;
    unsigned max_auth_attempts;
    unsigned scram_iterations;
    bool tls13_tls_unique; /* accept tls-unique bindings on TLS 1.3 (old clients) */

    /* limits */
    size_t max_stanza_preauth;
    unsigned max_xml_depth;
    unsigned max_attrs;
    size_t max_sasl_bytes;
    size_t pump_high_water;
    size_t pump_low_water;
    size_t pump_hard_cap;
    unsigned max_connections;
    unsigned max_preauth_connections; /* 0: unset (xelimits.h) */
    unsigned max_conns_per_address;   /* IPv4 address or IPv6 /64; 0 = no limit */
    unsigned conn_rate_per_address;   /* new connections per second; 0 = no limit */
    unsigned conn_burst_per_address;
    unsigned registrations_per_address; /* per hour; IPv6 per /64; 0 = no limit */
    size_t max_stanza_postauth;         /* when xedge parses after auth (register) */
    size_t max_proxy_header;            /* bytes of a PROXY v2 header we accept */

    /* timeouts, milliseconds */
    unsigned tls_timeout_ms;
    unsigned auth_timeout_ms;
    unsigned preauth_idle_ms; /* silence before authentication */
    unsigned backend_connect_ms;
    unsigned backend_handshake_ms;
    unsigned assertion_lifetime_s;
    unsigned shutdown_grace_ms; /* SIGTERM: sessions go on this long, then end */
    unsigned s2s_connect_ms, s2s_handshake_ms, dns_ms, s2s_idle_ms;

    /* SASL2 (XEP-0388) with Bind2 and FAST (doc/sasl2.md): the default of
     * the domains' own sasl2 switch; FAST tokens' lifetime and rotation */
    struct {
        bool enabled;
    } sasl2;
    struct {
        unsigned token_lifetime_s, rotate_after_s;
    } fast;

    /* lockout: brute-force protection (lockout.h) */
    struct {
        unsigned free_failures;
        unsigned delay_ms, max_delay_ms;
        unsigned address_threshold, account_threshold; /* 0 = never */
        unsigned time_s, window_s;
        unsigned max_entries; /* per kind */
    } lockout;

    struct {
        unsigned char *dialback_secret; /* NULL: no s2s group */
        size_t dialback_secret_len;
        char *dialback_secret_file;
        char *trust_anchors; /* CA file for peer certificates, or NULL */
        char *dns_servers;   /* "" or NULL: /etc/resolv.conf */
        int default_policy;  /* enum xe_s2s_policy_conf */
        bool require_encryption;
        struct xe_s2s_peer_conf *peers;
        size_t n_peers;
        size_t max_stanza; /* limits.max_stanza_s2s */
    } s2s;

    /* control: the daemon's control socket (control.c) */
    struct {
        char *socket; /* NULL: none */
        unsigned mode;
    } control;
};

/* Load and validate PATH. On error returns a negative code and sets *error_r
 * to a malloc'ed message that names the file, line and setting. */
int xe_conf_load(const char *path, struct xe_conf **conf_r, char **error_r);
void xe_conf_free(struct xe_conf **conf);
/* What a reload cannot change (listeners, user_store, control, metrics,
 * user/group, log_to): NULL when NEW keeps OLD's, else a malloc'ed message
 * naming the settings that differ. */
char *xe_conf_fixed_changes(const struct xe_conf *old, const struct xe_conf *new);
/* The served domain whose routed pool hosts the component domain NAME
 * (pools[].components), else NULL: such a component is served on the s2s
 * listeners as that domain is (its certificate, dialback). */
const struct xe_domain_conf *xe_conf_component(const struct xe_conf *conf,
                                               const char *name);
/* The served domain NAME (in any case; a non-ASCII NAME is folded through
 * nameprep first, as the configured names are at load), else NULL. */
const struct xe_domain_conf *xe_conf_domain(const struct xe_conf *conf, const char *name);
/* NAME as the configuration keeps a domain: itself when it is ASCII
 * without an A-label (the lookups ignore its case), else its nameprep form
 * (A-labels, xn--, decoded first: a TLS SNI has them) in BUF (SIZE bytes),
 * or NAME when that fails (it then matches no configured name). */
const char *xe_conf_fold(const char *name, char *buf, size_t size);
/* The SASL mechanisms offered on domain d: its own list, else the sasl
 * group's (d NULL: the sasl group's). */
/* The s2s.peers entry of a domain, or NULL. */
const struct xe_s2s_peer_conf *xe_conf_s2s_peer(const struct xe_conf *conf,
                                                const char *domain);
char *const *xe_conf_mechanisms(const struct xe_conf *conf,
                                const struct xe_domain_conf *d, size_t *n_r);

#endif
