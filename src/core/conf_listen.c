/* xedge: configuration, the listeners (c2s, WebSocket, PROXY protocol), the
 * routing and metrics listeners and the s2s group. Split from conf.c (issue
 * 14: no source file over ~1,500 lines); the shared helpers are in conf_impl.h. */
#include "config.h"
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <libconfig.h>

#include "jidprep.h"
#include "mech.h"
#include "xelimits.h"
#include "log.h"
#include "util.h"
#include "conf_impl.h"

/* A listener's proxy_protocol and proxy_from (the trusted sources, required
 * with proxy_protocol). */
static int
load_listener_proxy(struct xe_conf_ctx *c, const config_setting_t *g,
                    struct xe_listener_conf *l)
{
    const config_setting_t *from = config_setting_get_member(g, "proxy_from");

    if (xe_conf_get_bool(c, g, "proxy_protocol", false, &l->proxy_protocol) < 0)
        return -1;
    if (from == NULL) {
        if (l->proxy_protocol)
            return xe_conf_fail(
                c, g, "proxy_from",
                "missing required setting with proxy_protocol (the addresses "
                "or prefixes of the proxies to trust)");
        return 0;
    }
    if (!l->proxy_protocol)
        return xe_conf_fail(c, from, "proxy_from", "only with proxy_protocol = true");
    if (!config_setting_is_array(from) && !config_setting_is_list(from))
        return xe_conf_fail(c, from, "proxy_from",
                            "must be a list of addresses or prefixes");
    if (config_setting_length(from) < 1)
        return xe_conf_fail(c, from, "proxy_from", "must not be empty");
    l->n_proxy_from = (size_t)config_setting_length(from);
    l->proxy_from = xe_calloc(l->n_proxy_from, sizeof(*l->proxy_from));
    for (size_t i = 0; i < l->n_proxy_from; i++) {
        const config_setting_t *e = config_setting_get_elem(from, (unsigned)i);
        const char *v = config_setting_get_string(e);
        if (v == NULL)
            return xe_conf_fail(c, from, "proxy_from", "must be a list of strings");
        if (xe_cidr_parse(v, &l->proxy_from[i]) < 0)
            return xe_conf_fail(
                c, from, "proxy_from",
                "'%s' is not a numeric address or prefix (\"10.0.0.0/8\", "
                "\"::1\")",
                v);
    }
    return 0;
}

/* A list of addresses or prefixes (what: the setting, for the error). */
static int
load_cidrs(struct xe_conf_ctx *c, const config_setting_t *s, const char *what,
           struct xe_cidr **out, size_t *n_out)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return xe_conf_fail(c, s, what, "must be a list of addresses or prefixes");
    if (config_setting_length(s) < 1)
        return xe_conf_fail(c, s, what, "must not be empty");
    *n_out = (size_t)config_setting_length(s);
    *out = xe_calloc(*n_out, sizeof(**out));
    for (size_t i = 0; i < *n_out; i++) {
        const char *v =
            config_setting_get_string(config_setting_get_elem(s, (unsigned)i));
        if (v == NULL)
            return xe_conf_fail(c, s, what, "must be a list of strings");
        if (xe_cidr_parse(v, &(*out)[i]) < 0)
            return xe_conf_fail(
                c, s, what,
                "'%s' is not a numeric address or prefix (\"10.0.0.0/8\", \"::1\")", v);
    }
    return 0;
}

/* No quote, '<', '&', '\', space or control: the value goes into HTTP
 * headers, XML attributes and JSON strings as it is. */
static bool
ws_plain(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == 0x7f || strchr("'\"<>&\\", *p))
            return false;
    return true;
}

/* The settings of a kind = "websocket" listener (struct xe_ws_listener_conf). */
static int
load_ws_listener(struct xe_conf_ctx *c, const config_setting_t *g,
                 struct xe_ws_listener_conf *w)
{
    const config_setting_t *tp = config_setting_get_member(g, "trusted_proxies");
    const config_setting_t *o = config_setting_get_member(g, "origins");
    struct xe_listener_conf px = {0};
    int r;

    if (xe_conf_get_bool(c, g, "tls", true, &w->tls) < 0 ||
        xe_conf_get_bool(c, g, "encrypted", false, &w->encrypted) < 0)
        return -1;
    if (w->tls && w->encrypted)
        return xe_conf_fail(c, g, "encrypted",
                            "only with tls = false (TLS is xedge's own here)");
    if (!w->tls && tp == NULL)
        return xe_conf_fail(
            c, g, "trusted_proxies",
            "missing required setting with tls = false (plain ws is taken only from "
            "the reverse proxies listed here)");
    if (w->tls && tp != NULL)
        return xe_conf_fail(c, tp, "trusted_proxies", "only with tls = false");
    if (tp && load_cidrs(c, tp, "trusted_proxies", &w->trusted_proxies,
                         &w->n_trusted_proxies) < 0)
        return -1;
    r = load_listener_proxy(c, g, &px);
    w->proxy_protocol = px.proxy_protocol;
    w->proxy_from = px.proxy_from;
    w->n_proxy_from = px.n_proxy_from;
    if (r < 0)
        return -1;

    if (xe_conf_get_string(c, g, "path", false, XE_WS_DEFAULT_PATH, &w->path) < 0)
        return -1;
    if (w->path[0] != '/' || !ws_plain(w->path) || strpbrk(w->path, "?#") ||
        strlen(w->path) > XE_WS_MAX_HTTP_VALUE ||
        strncmp(w->path, "/.well-known/", 13) == 0)
        return xe_conf_fail(
            c, config_setting_get_member(g, "path"), "path",
            "'%s' is not a path (\"/xmpp-websocket\": a '/' first, no query, no "
            "spaces or quotes, not under /.well-known/)",
            w->path);

    if (o != NULL) {
        if (config_setting_type(o) != CONFIG_TYPE_ARRAY || config_setting_length(o) < 1)
            return xe_conf_fail(c, o, "origins", "must be a non-empty array of strings");
        w->n_origins = (size_t)config_setting_length(o);
        w->origins = xe_calloc(w->n_origins, sizeof(char *));
        for (size_t i = 0; i < w->n_origins; i++) {
            const char *v = config_setting_get_string_elem(o, (int)i);
            const char *host;
            if (v == NULL)
                return xe_conf_fail(c, o, "origins", "must be an array of strings");
            w->origins[i] = xe_strdup(v);
            host = strncmp(v, "https://", 8) == 0  ? v + 8
                   : strncmp(v, "http://", 7) == 0 ? v + 7
                                                   : NULL;
            if (!host || !*host || strchr(host, '/') || !ws_plain(v) || strlen(v) > 256)
                return xe_conf_fail(
                    c, o, "origins",
                    "'%s' is not an origin (\"https://chat.example.org\": a scheme "
                    "and a host, an optional port, no path)",
                    v);
        }
    }

    if (xe_conf_get_string(c, g, "host_meta_url", false, NULL, &w->host_meta_url) < 0)
        return -1;
    if (w->host_meta_url &&
        ((strncmp(w->host_meta_url, "wss://", 6) != 0 &&
          strncmp(w->host_meta_url, "ws://", 5) != 0) ||
         !ws_plain(w->host_meta_url) || strlen(w->host_meta_url) > 512))
        return xe_conf_fail(
            c, config_setting_get_member(g, "host_meta_url"), "host_meta_url",
            "'%s' is not a WebSocket URL (\"wss://xmpp.example.org/xmpp-websocket\", "
            "no spaces or quotes, at most 512 bytes)",
            w->host_meta_url);
    return 0;
}

/* settings a listener of another kind must not have */
static const char *const ws_only[] = {"tls",  "encrypted", "trusted_proxies",
                                      "path", "origins",   "host_meta_url"};

int
xe_conf_load_listeners(struct xe_conf_ctx *c, struct xe_conf *conf,
                       const config_setting_t *root)
{
    const config_setting_t *list = config_setting_get_member(root, "listeners");
    unsigned long long v;
    size_t n, nl = 0;

    if (list == NULL)
        return xe_conf_fail(c, root, "listeners", "missing required setting");
    if (!config_setting_is_list(list) || config_setting_length(list) < 1)
        return xe_conf_fail(c, list, "listeners", "must be a non-empty list of groups");
    n = (size_t)config_setting_length(list);
    conf->n_listeners = n; /* until the end: every entry freed on an error */
    conf->listeners = xe_calloc(n, sizeof(*conf->listeners));
    conf->websockets = xe_calloc(n, sizeof(*conf->websockets));
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct xe_listener_conf *l = &conf->listeners[nl];
        char *kind = NULL;

        if (!config_setting_is_group(g))
            return xe_conf_fail(c, g, "listeners",
                                "each listener must be a group { ... }");
        if (xe_conf_get_string(c, g, "kind", true, NULL, &kind) < 0)
            return -1;
        if (strcmp(kind, "websocket") == 0) {
            struct xe_ws_listener_conf *w = &conf->websockets[conf->n_websockets++];
            free(kind);
            if (xe_conf_get_string(c, g, "address", true, NULL, &w->address) < 0 ||
                xe_conf_check_address(c, config_setting_get_member(g, "address"),
                                      w->address) < 0 ||
                xe_conf_get_uint(c, g, "port", 1, 65535, 0, &v) < 0)
                return -1;
            if (v == 0)
                return xe_conf_fail(c, g, "port", "missing required setting");
            w->port = (int)v;
            if (load_ws_listener(c, g, w) < 0)
                return -1;
            /* its place among the listeners (the glue listens on it) */
            nl++;
            l->kind = XE_LISTEN_WEBSOCKET;
            l->ws = w;
            l->address = xe_strdup(w->address);
            l->port = w->port;
            l->proxy_protocol = w->proxy_protocol;
            if (w->n_proxy_from) {
                l->proxy_from = xe_calloc(w->n_proxy_from, sizeof(*l->proxy_from));
                memcpy(l->proxy_from, w->proxy_from,
                       w->n_proxy_from * sizeof(*l->proxy_from));
                l->n_proxy_from = w->n_proxy_from;
            }
            continue;
        }
        if (strcmp(kind, "starttls") == 0)
            l->kind = XE_LISTEN_STARTTLS;
        else if (strcmp(kind, "direct_tls") == 0)
            l->kind = XE_LISTEN_DIRECT_TLS;
        else if (strcmp(kind, "s2s") == 0)
            l->kind = XE_LISTEN_S2S;
        else if (strcmp(kind, "s2s_direct_tls") == 0)
            l->kind = XE_LISTEN_S2S_DIRECT_TLS;
        else if (strcmp(kind, "s2s_backend") == 0)
            l->kind = XE_LISTEN_S2S_BACKEND;
        else {
            xe_conf_fail(
                c, config_setting_get_member(g, "kind"), "kind",
                "'%s' is not one of \"starttls\", \"direct_tls\", \"websocket\", "
                "\"s2s\", "
                "\"s2s_direct_tls\", \"s2s_backend\"",
                kind);
            free(kind);
            return -1;
        }
        free(kind);
        for (size_t k = 0; k < sizeof(ws_only) / sizeof(ws_only[0]); k++)
            if (config_setting_get_member(g, ws_only[k]))
                return xe_conf_fail(c, config_setting_get_member(g, ws_only[k]),
                                    ws_only[k], "only for kind = \"websocket\"");
        nl++;
        if (xe_conf_get_string(c, g, "address", true, NULL, &l->address) < 0 ||
            xe_conf_check_address(c, config_setting_get_member(g, "address"),
                                  l->address) < 0 ||
            xe_conf_get_uint(c, g, "port", 1, 65535, 0, &v) < 0)
            return -1;
        if (v == 0)
            return xe_conf_fail(c, g, "metrics.port", "missing required setting");
        l->port = (int)v;
        if (load_listener_proxy(c, g, l) < 0)
            return -1;
    }
    conf->n_listeners = nl;
    return 0;
}

/* routing = { address = "127.0.0.1"; port = 5290; }: the listener of the
 * backends' routing links (route_io.h); required by a pool with route */
int
xe_conf_load_routing(struct xe_conf_ctx *c, struct xe_conf *conf,
                     const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "routing");
    unsigned long long v;
    unsigned char addr[16];
    bool any = false;

    for (size_t i = 0; i < conf->n_pools; i++) {
        const char *first = NULL;
        any = any || conf->pools[i].route;
        /* a backend's glue keeps one link per host, and xedge one per
         * server of the pool: a second domain's link of the same server
         * would replace the first (conflict), again and again, and
         * stanzas for one domain would go to the other's host */
        for (size_t d = 0; conf->pools[i].route && d < conf->n_domains; d++) {
            if (conf->domains[d].pool != &conf->pools[i])
                continue;
            if (first != NULL)
                return xe_conf_fail(
                    c, root, "domains",
                    "pool '%s' has route = true and serves two domains, '%s' "
                    "and '%s': a routed pool serves one domain (give each "
                    "domain its own pool)",
                    conf->pools[i].name, first, conf->domains[d].name);
            first = conf->domains[d].name;
        }
    }
    if (g == NULL) {
        if (any)
            return xe_conf_fail(c, root, "routing",
                                "a pool has route = true: the routing listener is needed "
                                "(routing = { address = ...; port = ...; })");
        return 0;
    }
    if (!config_setting_is_group(g))
        return xe_conf_fail(c, g, "routing",
                            "must be a group { address = ...; port = ...; }");
    if (xe_conf_get_string(c, g, "address", true, NULL, &conf->route_address) < 0 ||
        xe_conf_get_uint(c, g, "port", 1, 65535, 0, &v) < 0)
        return -1;
    if (config_setting_get_member(g, "port") == NULL)
        return xe_conf_fail(c, g, "routing.port", "missing required setting");
    if (inet_pton(AF_INET, conf->route_address, addr) != 1 &&
        inet_pton(AF_INET6, conf->route_address, addr) != 1)
        return xe_conf_fail(c, config_setting_get_member(g, "address"), "routing.address",
                            "'%s' is not a numeric IPv4 or IPv6 address",
                            conf->route_address);
    conf->route_port = (int)v;
    return 0;
}

/* metrics = { address = "127.0.0.1"; port = 9105; } (optional) */
int
xe_conf_load_metrics(struct xe_conf_ctx *c, struct xe_conf *conf,
                     const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "metrics");
    unsigned long long v;
    unsigned char addr[16];

    if (g == NULL)
        return 0;
    if (!config_setting_is_group(g))
        return xe_conf_fail(c, g, "metrics",
                            "must be a group { address = ...; port = ...; }");
    if (xe_conf_get_string(c, g, "address", true, NULL, &conf->metrics_address) < 0 ||
        xe_conf_get_uint(c, g, "port", 1, 65535, 0, &v) < 0)
        return -1;
    if (config_setting_get_member(g, "port") == NULL)
        return xe_conf_fail(c, g, "metrics.port", "missing required setting");
    if (inet_pton(AF_INET, conf->metrics_address, addr) != 1 &&
        inet_pton(AF_INET6, conf->metrics_address, addr) != 1)
        return xe_conf_fail(c, config_setting_get_member(g, "address"), "metrics.address",
                            "'%s' is not a numeric IPv4 or IPv6 address",
                            conf->metrics_address);
    conf->metrics_port = (int)v;
    return 0;
}

int
xe_conf_prep_domain(struct xe_conf_ctx *c, const config_setting_t *s, const char *what,
                    char **name)
{
    char out[XE_JIDPREP_PART_MAX + 1];
    const char *why = NULL;

    if (xe_jidprep_domain_ace(*name, strlen(*name), out, sizeof(out), &why) != 0)
        return xe_conf_fail(c, s, what,
                            "'%s' is not a domain name a JID can have (nameprep: %s)",
                            *name, why ? why : "refused");
    if (strpbrk(out, " @/\"'<>&") != NULL)
        return xe_conf_fail(c, s, what,
                            "'%s' is not a domain name a JID can have (a space, '@', "
                            "'/', a quote, '<', '>' or '&')",
                            *name);
    free(*name);
    *name = xe_strdup(out);
    return 0;
}

/* A peer's pre-shared secret for server-to-server SASL (secret_file) and its
 * mechanisms (default: SCRAM-SHA-256). policy "secret" needs it; a refused
 * peer has no use for it. */
static int
load_peer_secret(struct xe_conf_ctx *c, const config_setting_t *pg,
                 struct xe_s2s_peer_conf *p)
{
    const config_setting_t *m = config_setting_get_member(pg, "mechanisms");

    if (xe_conf_get_string(c, pg, "secret_file", false, NULL, &p->secret_file) < 0)
        return -1;
    if (p->secret_file == NULL) {
        if (p->policy == XE_S2S_POL_SECRET)
            return xe_conf_fail(c, config_setting_get_member(pg, "policy"), "policy",
                                "policy \"secret\" needs the peer's secret_file");
        if (m)
            return xe_conf_fail(c, m, "mechanisms",
                                "mechanisms are for the peer's secret_file");
        return 0;
    }
    if (p->policy == XE_S2S_POL_REFUSE)
        return xe_conf_fail(c, config_setting_get_member(pg, "secret_file"),
                            "secret_file", "a refused peer has no secret");
    if (xe_conf_read_secret_file(c, config_setting_get_member(pg, "secret_file"),
                                 "secret_file", p->secret_file, &p->secret,
                                 &p->secret_len) < 0)
        return -1;
    if (m == NULL) {
        p->mechanisms = xe_calloc(2, sizeof(char *));
        p->mechanisms[0] = xe_strdup(XE_DEF_S2S_SECRET_MECH);
        p->n_mechanisms = 1;
        return 0;
    }
    if (xe_conf_load_mech_list(c, m, "s2s.peers.mechanisms", &p->mechanisms,
                               &p->n_mechanisms) < 0)
        return -1;
    for (size_t i = 0; i < p->n_mechanisms; i++) {
        if (!(xe_mech_find(p->mechanisms[i])->flags & XE_MECH_PEER)) {
            char known[128];
            xe_mech_list(XE_MECH_PEER, known, sizeof(known));
            return xe_conf_fail(c, m, "s2s.peers.mechanisms",
                                "'%s' is not for a peer's secret (supported: %s)",
                                p->mechanisms[i], known);
        }
    }
    return 0;
}

int
xe_conf_load_s2s(struct xe_conf_ctx *c, struct xe_conf *conf,
                 const config_setting_t *root)
{
    static const char *const policies[] = {"dialback", "external", "refuse", "secret",
                                           NULL};
    static const int policy_of[] = {XE_S2S_POL_DIALBACK, XE_S2S_POL_EXTERNAL,
                                    XE_S2S_POL_REFUSE, XE_S2S_POL_SECRET};
    const config_setting_t *g = config_setting_get_member(root, "s2s"), *list;
    bool wants = false;
    unsigned long long v;
    int k;

    for (size_t i = 0; i < conf->n_listeners; i++)
        wants = wants || XE_LISTEN_IS_S2S(conf->listeners[i].kind);
    if (g == NULL) {
        if (wants)
            return xe_conf_fail(c, root, "s2s",
                                "an s2s listener needs the s2s group "
                                "(dialback_secret_file at least)");
        return 0;
    }
    if (!config_setting_is_group(g))
        return xe_conf_fail(c, g, "s2s", "must be a group { ... }");
    if (xe_conf_get_string(c, g, "dialback_secret_file", true, NULL,
                           &conf->s2s.dialback_secret_file) < 0 ||
        xe_conf_read_secret_file(c, config_setting_get_member(g, "dialback_secret_file"),
                                 "dialback_secret_file", conf->s2s.dialback_secret_file,
                                 &conf->s2s.dialback_secret,
                                 &conf->s2s.dialback_secret_len) < 0 ||
        xe_conf_get_string(c, g, "trust_anchors", false, NULL, &conf->s2s.trust_anchors) <
            0 ||
        xe_conf_get_string(c, g, "dns_servers", false, "", &conf->s2s.dns_servers) < 0 ||
        xe_conf_get_bool(c, g, "require_encryption", true,
                         &conf->s2s.require_encryption) < 0 ||
        xe_conf_get_enum(c, g, "default_policy", policies, &k) < 0)
        return -1;
    if (policy_of[k] == XE_S2S_POL_SECRET)
        return xe_conf_fail(c, config_setting_get_member(g, "default_policy"),
                            "default_policy",
                            "\"secret\" is a policy for a listed peer (s2s.peers) only");
    conf->s2s.default_policy = policy_of[k];
    if (conf->s2s.trust_anchors && access(conf->s2s.trust_anchors, R_OK) != 0)
        return xe_conf_fail(c, config_setting_get_member(g, "trust_anchors"),
                            "trust_anchors", "cannot read '%s': %s",
                            conf->s2s.trust_anchors, strerror(errno));
    list = config_setting_get_member(g, "peers");
    if (list == NULL)
        return 0;
    if (!config_setting_is_list(list))
        return xe_conf_fail(c, list, "peers", "must be a list of groups");
    conf->s2s.n_peers = (size_t)config_setting_length(list);
    conf->s2s.peers = xe_calloc(conf->s2s.n_peers + 1, sizeof(*conf->s2s.peers));
    for (size_t i = 0; i < conf->s2s.n_peers; i++) {
        const config_setting_t *pg = config_setting_get_elem(list, (unsigned)i);
        struct xe_s2s_peer_conf *p = &conf->s2s.peers[i];

        p->policy = -1;
        if (!config_setting_is_group(pg))
            return xe_conf_fail(c, pg, "peers", "each peer must be a group { ... }");
        if (xe_conf_get_string(c, pg, "domain", true, NULL, &p->domain) < 0 ||
            xe_conf_prep_domain(c, config_setting_get_member(pg, "domain"), "domain",
                                &p->domain) < 0)
            return -1;
        if (config_setting_get_member(pg, "policy")) {
            if (xe_conf_get_enum(c, pg, "policy", policies, &k) < 0)
                return -1;
            p->policy = policy_of[k];
        }
        if (xe_conf_get_string(c, pg, "address", false, NULL, &p->address) < 0)
            return -1;
        if (p->address &&
            (xe_conf_check_address(c, config_setting_get_member(pg, "address"),
                                   p->address) < 0 ||
             xe_conf_get_uint(c, pg, "port", 1, 65535, 5269, &v) < 0))
            return -1;
        p->port = p->address ? (int)v : 0;
        if (load_peer_secret(c, pg, p) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(conf->s2s.peers[j].domain, p->domain) == 0)
                return xe_conf_fail(c, pg, "domain", "peer '%s' is listed twice",
                                    p->domain);
    }
    return 0;
}

const struct xe_s2s_peer_conf *
xe_conf_s2s_peer(const struct xe_conf *conf, const char *domain)
{
    char buf[XE_JIDPREP_PART_MAX + 1];

    domain = xe_conf_fold(domain, buf, sizeof(buf));
    for (size_t i = 0; i < conf->s2s.n_peers; i++)
        if (strcasecmp(conf->s2s.peers[i].domain, domain) == 0)
            return &conf->s2s.peers[i];
    return NULL;
}
