/* xedge: configuration, the backend pools: each pool's servers (address or
 * unix socket, kind, weight), its secret, policy, retries, admission
 * control, health checks, routing (route = true, components) and the check
 * that a pool does not split one user's sessions over independent servers.
 * Split from conf.c (issue 14: no source file over ~1,500 lines); the shared
 * helpers are in conf_impl.h. */
#include "config.h"
#include "conf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "xelimits.h"
#include "util.h"
#include "conf_impl.h"

static int
read_secret(struct xe_conf_ctx *c, const config_setting_t *s, struct xe_pool_conf *p)
{
    return xe_conf_read_secret_file(c, s, "secret_file", p->secret_file, &p->secret,
                                    &p->secret_len);
}

/* A pool's health group: active checks every interval seconds (0: none). */
static int
load_health(struct xe_conf_ctx *c, const config_setting_t *h, struct xe_pool_conf *p)
{
    unsigned long long v[5] = {XE_DEF_HEALTH_INTERVAL_S, XE_DEF_HEALTH_TIMEOUT_S,
                               XE_DEF_HEALTH_FALL, XE_DEF_HEALTH_RISE,
                               XE_DEF_HEALTH_SLOW_START_S};

    if (h != NULL && !config_setting_is_group(h))
        return xe_conf_fail(c, h, "health", "must be a group { ... }");
    if (h != NULL &&
        (xe_conf_get_uint(c, h, "interval", 0, 3600, XE_DEF_HEALTH_INTERVAL_S, &v[0]) <
             0 ||
         xe_conf_get_uint(c, h, "timeout", 1, 600, XE_DEF_HEALTH_TIMEOUT_S, &v[1]) < 0 ||
         xe_conf_get_uint(c, h, "fall", 1, 100, XE_DEF_HEALTH_FALL, &v[2]) < 0 ||
         xe_conf_get_uint(c, h, "rise", 1, 100, XE_DEF_HEALTH_RISE, &v[3]) < 0 ||
         xe_conf_get_uint(c, h, "slow_start", 0, 3600, XE_DEF_HEALTH_SLOW_START_S,
                          &v[4]) < 0))
        return -1;
    p->health.interval_ms = (unsigned)v[0] * 1000;
    p->health.timeout_ms = (unsigned)v[1] * 1000;
    p->health.fall = (unsigned)v[2];
    p->health.rise = (unsigned)v[3];
    p->health.slow_start_ms = (unsigned)v[4] * 1000;
    return 0;
}

/* route = true (doc/pool-routing.md): each user has one home, the sticky
 * choice; a user's stanzas go there. least-conn and round-robin put a
 * user's sessions anywhere, and on_down = "next" would let a stand-in keep
 * offline messages and roster changes apart from the home. */
/* least-conn and round-robin put each session of a user on any server:
 * right for servers that share sessions (an ejabberd cluster; jabberd2 c2s
 * processes of one router, whose session managers bind the domain with
 * multi="to": jabberd2_router, doc/pool-routing.md), wrong for independent
 * ones (Prosody, jabberd2), where a user's sessions would not see each
 * other's messages or presence. Refused there unless the pool says
 * allow_split = true (tests, stateless uses). */
static int
check_split(struct xe_conf_ctx *c, const config_setting_t *g, struct xe_pool_conf *p)
{
    const char *router = NULL, *router_of = NULL;
    bool allow = false;

    if (xe_conf_get_bool(c, g, "allow_split", false, &allow) < 0)
        return -1;
    if (p->policy == XE_POLICY_STICKY || allow)
        return 0;
    for (size_t j = 0; j < p->n_servers; j++) {
        const struct xe_server_conf *sv = &p->servers[j];
        const char *why;
        bool other;

        if (sv->kind != XE_KIND_PROSODY && sv->kind != XE_KIND_JABBERD2)
            continue;
        if (sv->kind == XE_KIND_JABBERD2 && sv->jabberd2_router && router == NULL) {
            router = sv->jabberd2_router;
            router_of = sv->name;
        }
        if (sv->kind == XE_KIND_JABBERD2 && sv->jabberd2_router &&
            strcmp(sv->jabberd2_router, router) == 0)
            continue;
        if (sv->kind == XE_KIND_PROSODY)
            why = "a Prosody server";
        else if (sv->jabberd2_router == NULL)
            why = "a jabberd2 server without jabberd2_router";
        else
            why = "a jabberd2 server of another router than";
        other = sv->kind == XE_KIND_JABBERD2 && sv->jabberd2_router;
        return xe_conf_fail(
            c, config_setting_get_member(g, "policy"), "policy",
            "pool '%s': %s would split one user's sessions over independent "
            "servers: server '%s' is %s%s%s%s, which shares no sessions with the "
            "others (a user's sessions would not see each other's messages or "
            "presence). Use policy \"sticky\" (with route = true for one domain "
            "over several servers; jabberd2_router on each server for the c2s "
            "processes of one jabberd2 router), or allow_split = true to accept "
            "the split",
            p->name, p->policy == XE_POLICY_LEAST_CONN ? "least-conn" : "round-robin",
            sv->name, why, other ? " '" : "", other ? router_of : "", other ? "'" : "");
    }
    return 0;
}

static int
load_pool_route(struct xe_conf_ctx *c, const config_setting_t *g, struct xe_pool_conf *p)
{
    const config_setting_t *comps = config_setting_get_member(g, "components");

    if (xe_conf_get_bool(c, g, "route", false, &p->route) < 0)
        return -1;
    if (comps && !p->route)
        return xe_conf_fail(c, comps, "components",
                            "pool '%s': components need route = true", p->name);
    if (!p->route)
        return 0;
    if (comps && (!config_setting_is_list(comps) || config_setting_length(comps) < 1))
        return xe_conf_fail(
            c, comps, "components",
            "must be a non-empty list of { domain = ...; server = ...; }");
    p->n_components = comps ? (size_t)config_setting_length(comps) : 0;
    p->components =
        xe_calloc(p->n_components ? p->n_components : 1, sizeof(*p->components));
    for (size_t k = 0; k < p->n_components; k++) {
        const config_setting_t *cg = config_setting_get_elem(comps, (unsigned)k);
        struct xe_pool_component *pc = &p->components[k];
        char *server = NULL;
        size_t j;

        if (!config_setting_is_group(cg))
            return xe_conf_fail(c, cg, "components",
                                "each component must be a group { ... }");
        if (xe_conf_get_string(c, cg, "domain", true, NULL, &pc->domain) < 0 ||
            xe_conf_prep_domain(c, config_setting_get_member(cg, "domain"), "domain",
                                &pc->domain) < 0 ||
            xe_conf_get_string(c, cg, "server", true, NULL, &server) < 0)
            return -1;
        for (j = 0; j < p->n_servers && strcmp(p->servers[j].name, server) != 0; j++)
            ;
        if (j == p->n_servers) {
            xe_conf_fail(c, config_setting_get_member(cg, "server"), "server",
                         "pool '%s' has no server named '%s'", p->name, server);
            free(server);
            return -1;
        }
        free(server);
        pc->server = j;
        for (size_t m = 0; m < k; m++)
            if (strcmp(p->components[m].domain, pc->domain) == 0)
                return xe_conf_fail(c, cg, "domain", "component '%s' is listed twice",
                                    pc->domain);
    }
    if (p->policy != XE_POLICY_STICKY)
        return xe_conf_fail(
            c, config_setting_get_member(g, "route"), "route",
            "pool '%s': route = true needs policy \"sticky\" (a user's home is "
            "the sticky choice; %s would spread one user's sessions)",
            p->name, p->policy == XE_POLICY_LEAST_CONN ? "least-conn" : "round-robin");
    if (p->on_down == XE_ON_DOWN_NEXT)
        return xe_conf_fail(
            c, config_setting_get_member(g, "on_down"), "on_down",
            "pool '%s': route = true needs on_down = \"error\": with \"next\" a "
            "stand-in server would keep the user's offline messages and roster "
            "changes apart from the home (doc/pool-routing.md)",
            p->name);
    /* The routing glue is Prosody's (mod_xedge_pool); the other kinds make
     * one domain their own way and would never open a routing link. */
    for (size_t k = 0; k < p->n_servers; k++) {
        const struct xe_server_conf *sv = &p->servers[k];

        if (sv->kind == XE_KIND_EJABBERD || sv->kind == XE_KIND_JABBERD2)
            return xe_conf_fail(
                c, config_setting_get_member(g, "route"), "route",
                "pool '%s': route = true needs Prosody's routing glue "
                "(mod_xedge_pool), and server '%s' is %s",
                p->name, sv->name,
                sv->kind == XE_KIND_EJABBERD
                    ? "an ejabberd server: ejabberd servers make one domain as one "
                      "cluster "
                      "(policy \"least-conn\", doc/pool-routing.md)"
                    : "a jabberd2 server: jabberd2 makes one domain with one router and "
                      "several "
                      "session managers (jabberd2_router, doc/pool-routing.md)");
    }
    return 0;
}

int
xe_conf_load_pools(struct xe_conf_ctx *c, struct xe_conf *conf,
                   const config_setting_t *root)
{
    static const char *const kinds[] = {"generic", "prosody", "ejabberd", "jabberd2",
                                        NULL};
    static const char *const policies[] = {"sticky", "least-conn", "round-robin", NULL};
    static const char *const on_down[] = {"error", "next", NULL};
    const config_setting_t *list = config_setting_get_member(root, "pools");
    unsigned long long v;
    int kind;

    if (list == NULL)
        return xe_conf_fail(c, root, "pools",
                            "missing required setting (at least one backend pool)");
    if (!config_setting_is_list(list) || config_setting_length(list) < 1)
        return xe_conf_fail(c, list, "pools", "must be a non-empty list of groups");
    conf->n_pools = (size_t)config_setting_length(list);
    conf->pools = xe_calloc(conf->n_pools, sizeof(*conf->pools));
    for (size_t i = 0; i < conf->n_pools; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i), *servers;
        struct xe_pool_conf *p = &conf->pools[i];

        if (!config_setting_is_group(g))
            return xe_conf_fail(c, g, "pools", "each pool must be a group { ... }");
        if (xe_conf_get_string(c, g, "name", true, NULL, &p->name) < 0 ||
            xe_conf_get_string(c, g, "secret_file", true, NULL, &p->secret_file) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(conf->pools[j].name, p->name) == 0)
                return xe_conf_fail(c, g, "name", "pool '%s' is defined twice", p->name);
        if (read_secret(c, config_setting_get_member(g, "secret_file"), p) < 0)
            return -1;
        servers = config_setting_get_member(g, "servers");
        if (servers == NULL || !config_setting_is_list(servers) ||
            config_setting_length(servers) < 1)
            return xe_conf_fail(c, servers ? servers : g, "servers",
                                "pool '%s' needs a non-empty list of servers", p->name);
        p->n_servers = (size_t)config_setting_length(servers);
        p->servers = xe_calloc(p->n_servers, sizeof(*p->servers));
        for (size_t j = 0; j < p->n_servers; j++) {
            const config_setting_t *sg = config_setting_get_elem(servers, (unsigned)j);
            struct xe_server_conf *sv = &p->servers[j];

            if (!config_setting_is_group(sg))
                return xe_conf_fail(c, sg, "servers",
                                    "each server must be a group { ... }");
            if (xe_conf_get_string(c, sg, "name", true, NULL, &sv->name) < 0 ||
                xe_conf_get_string(c, sg, "address", true, NULL, &sv->host) < 0)
                return -1;
            sv->unix_socket = sv->host[0] == '/';
            if (sv->unix_socket) {
                /* a unix socket: its path, no port */
                if (strlen(sv->host) >= XE_MAX_UNIX_PATH)
                    return xe_conf_fail(c, config_setting_get_member(sg, "address"),
                                        "address",
                                        "the unix socket path is longer than %d bytes",
                                        XE_MAX_UNIX_PATH - 1);
                if (config_setting_get_member(sg, "port") != NULL)
                    return xe_conf_fail(c, config_setting_get_member(sg, "port"), "port",
                                        "a unix socket (address \"/...\") has no port");
                v = 0;
            } else if (xe_conf_check_address(c, config_setting_get_member(sg, "address"),
                                             sv->host) < 0 ||
                       xe_conf_get_uint(c, sg, "port", 1, 65535, 5222, &v) < 0) {
                return -1;
            }
            sv->port = (int)v;
            if (xe_conf_get_uint(c, sg, "s2s_port", 0, 65535, 0, &v) < 0)
                return -1;
            if (v && sv->unix_socket)
                return xe_conf_fail(c, config_setting_get_member(sg, "s2s_port"),
                                    "s2s_port", "a unix socket server has no s2s port");
            sv->s2s_port = (int)v;
            if (xe_conf_get_uint(c, sg, "weight", 1, 1000, 1, &v) < 0)
                return -1;
            sv->weight = (unsigned)v;
            if (xe_conf_get_enum(c, sg, "kind", kinds, &kind) < 0)
                return -1;
            sv->kind = (enum xe_server_kind)kind;
            if (xe_conf_get_string(c, sg, "jabberd2_router", false, NULL,
                                   &sv->jabberd2_router) < 0)
                return -1;
            if (sv->jabberd2_router && sv->kind != XE_KIND_JABBERD2)
                return xe_conf_fail(
                    c, config_setting_get_member(sg, "jabberd2_router"),
                    "jabberd2_router",
                    "server '%s': jabberd2_router is for kind \"jabberd2\"", sv->name);
            for (size_t k = 0; k < j; k++)
                if (strcmp(p->servers[k].name, sv->name) == 0)
                    return xe_conf_fail(c, sg, "name",
                                        "server '%s' is listed twice in pool '%s'",
                                        sv->name, p->name);
        }
        if (xe_conf_get_bool(c, g, "proxy_protocol", false, &p->proxy_protocol) < 0 ||
            xe_conf_get_enum(c, g, "policy", policies, &kind) < 0)
            return -1;
        p->policy = (enum xe_pool_policy)kind;
        if (xe_conf_get_enum(c, g, "on_down", on_down, &kind) < 0)
            return -1;
        p->on_down = (enum xe_on_down)kind;
        if (xe_conf_get_uint(c, g, "retries", 0, XE_MAX_BACKEND_RETRIES,
                             XE_DEF_BACKEND_RETRIES, &v) < 0)
            return -1;
        p->retries = (unsigned)v;
        /* admission control (admit.h): logins in progress per server, and
         * how many wait for one to end */
        if (xe_conf_get_uint(c, g, "max_pending_logins", 0, XE_MAX_PENDING_LOGINS,
                             XE_DEF_PENDING_LOGINS, &v) < 0)
            return -1;
        p->max_pending_logins = (unsigned)v;
        if (xe_conf_get_uint(c, g, "max_queued_logins", 0, XE_MAX_QUEUED_LOGINS,
                             XE_DEF_QUEUED_LOGINS, &v) < 0)
            return -1;
        p->max_queued_logins = (unsigned)v;
        if (load_health(c, config_setting_get_member(g, "health"), p) < 0)
            return -1;
        if (load_pool_route(c, g, p) < 0 || check_split(c, g, p) < 0)
            return -1;
    }
    return 0;
}
