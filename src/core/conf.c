#define _GNU_SOURCE 1 /* sched_getaffinity, CPU_COUNT */
/* xedge: configuration, parsed by libconfig and validated here. Every error
 * names the file, the line and the setting. */
#include "config.h"
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <strings.h>
#include <sched.h>
#include <syslog.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>

#include "jidprep.h"
#include "mech.h"
#include "tls.h"
#include "xelimits.h"
#include "log.h"
#include "util.h"
#include "conf_impl.h"

int
xe_conf_fail(struct xe_conf_ctx *c, const config_setting_t *s, const char *what,
             const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->error == NULL) {
        int line = s ? (int)config_setting_source_line(s) : 0;
        if (line > 0)
            c->error = xe_asprintf("%s:%d: %s: %s", c->path, line, what, msg);
        else
            c->error = xe_asprintf("%s: %s: %s", c->path, what, msg);
    }
    return -1;
}

/* Look up NAME in GROUP; optional settings may be absent. */
int
xe_conf_get_string(struct xe_conf_ctx *c, const config_setting_t *group, const char *name,
                   bool required, const char *dflt, char **out)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    const char *v;

    if (s == NULL) {
        if (required)
            return xe_conf_fail(c, group, name, "missing required setting");
        *out = dflt ? xe_strdup(dflt) : NULL;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return xe_conf_fail(c, s, name, "must be a string");
    v = config_setting_get_string(s);
    if (v == NULL || *v == '\0')
        return xe_conf_fail(c, s, name, "must not be empty");
    *out = xe_strdup(v);
    return 0;
}

int
xe_conf_get_uint(struct xe_conf_ctx *c, const config_setting_t *group, const char *name,
                 unsigned long long min, unsigned long long max, unsigned long long dflt,
                 unsigned long long *out)
{
    const config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;
    long long v;

    if (s == NULL) {
        *out = dflt;
        return 0;
    }
    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(s);
    else
        return xe_conf_fail(c, s, name, "must be an integer");
    if (v < 0 || (unsigned long long)v < min || (unsigned long long)v > max)
        return xe_conf_fail(c, s, name, "must be between %llu and %llu", min, max);
    *out = (unsigned long long)v;
    return 0;
}

int
xe_conf_get_bool(struct xe_conf_ctx *c, const config_setting_t *group, const char *name,
                 bool dflt, bool *out)
{
    const config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;

    if (s == NULL) {
        *out = dflt;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return xe_conf_fail(c, s, name, "must be true or false");
    *out = config_setting_get_bool(s) != 0;
    return 0;
}

int
xe_conf_check_address(struct xe_conf_ctx *c, const config_setting_t *s, const char *addr)
{
    unsigned char tmp[16];

    if (inet_pton(AF_INET, addr, tmp) == 1 || inet_pton(AF_INET6, addr, tmp) == 1)
        return 0;
    return xe_conf_fail(c, s, "address", "'%s' is not a numeric IPv4 or IPv6 address",
                        addr);
}

int
xe_conf_read_secret_file(struct xe_conf_ctx *c, const config_setting_t *s,
                         const char *what, const char *path, unsigned char **secret_r,
                         size_t *len_r)
{
    FILE *f = fopen(path, "rb");
    unsigned char buf[4097];
    size_t n;
    int r = -1;

    if (f == NULL)
        return xe_conf_fail(c, s, what, "cannot open '%s': %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        xe_conf_fail(c, s, what, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    if (n == sizeof(buf)) {
        xe_conf_fail(c, s, what, "'%s' is larger than 4096 bytes", path);
        goto out;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    if (n < XE_MIN_SECRET_BYTES) {
        xe_conf_fail(c, s, what, "'%s' holds %zu bytes; at least %d are required", path,
                     n, XE_MIN_SECRET_BYTES);
        goto out;
    }
    *secret_r = xe_malloc(n);
    memcpy(*secret_r, buf, n);
    *len_r = n;
    r = 0;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    fclose(f);
    return r;
}

/* A string setting that must be one of NAMES (NULL-terminated; the first
 * is the default): its index in *v. */
int
xe_conf_get_enum(struct xe_conf_ctx *c, const config_setting_t *g, const char *name,
                 const char *const *names, int *v)
{
    char *s = NULL;

    *v = 0;
    if (xe_conf_get_string(c, g, name, false, NULL, &s) < 0)
        return -1;
    if (s == NULL)
        return 0;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) {
            *v = i;
            free(s);
            return 0;
        }
    free(s);
    {
        char list[256] = "";
        for (int i = 0; names[i]; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"",
                     i ? ", " : "", names[i]);
        return xe_conf_fail(c, config_setting_get_member(g, name), name,
                            "must be one of %s", list);
    }
}

/* client_identities: which names of a client certificate count, from
 * "xmppaddr", "email", "cn"; default xmppaddr only. */
static int
load_identity_rules(struct xe_conf_ctx *c, const config_setting_t *m, unsigned *out)
{
    *out = XE_ID_XMPPADDR;
    if (m == NULL)
        return 0;
    if (config_setting_type(m) != CONFIG_TYPE_ARRAY || config_setting_length(m) < 1)
        return xe_conf_fail(c, m, "client_identities",
                            "must be a non-empty array of strings");
    *out = 0;
    for (int i = 0; i < config_setting_length(m); i++) {
        const char *v = config_setting_get_string_elem(m, i);
        if (v && strcmp(v, "xmppaddr") == 0)
            *out |= XE_ID_XMPPADDR;
        else if (v && strcmp(v, "email") == 0)
            *out |= XE_ID_EMAIL;
        else if (v && strcmp(v, "cn") == 0)
            *out |= XE_ID_CN;
        else
            return xe_conf_fail(c, m, "client_identities",
                                "'%s' is not one of \"xmppaddr\", \"email\", \"cn\"",
                                v ? v : "?");
    }
    return 0;
}

static int
load_domains(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *list = config_setting_get_member(root, "domains");

    if (list == NULL)
        return xe_conf_fail(c, root, "domains",
                            "missing required setting (at least one domain)");
    if (!config_setting_is_list(list) || config_setting_length(list) < 1)
        return xe_conf_fail(c, list, "domains", "must be a non-empty list of groups");
    conf->n_domains = (size_t)config_setting_length(list);
    conf->domains = xe_calloc(conf->n_domains, sizeof(*conf->domains));
    for (size_t i = 0; i < conf->n_domains; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct xe_domain_conf *d = &conf->domains[i];
        char *pool = NULL;

        if (!config_setting_is_group(g))
            return xe_conf_fail(c, g, "domains", "each domain must be a group { ... }");
        if (config_setting_get_member(g, "mechanisms") != NULL &&
            xe_conf_load_mech_list(c, config_setting_get_member(g, "mechanisms"),
                                   "domains.mechanisms", &d->mechanisms,
                                   &d->n_mechanisms) < 0)
            return -1;
        if (xe_conf_get_bool(c, g, "iq_auth", false, &d->iq_auth) < 0 ||
            xe_conf_get_bool(c, g, "register", false, &d->register_) < 0)
            return -1;
        if (xe_conf_get_string(c, g, "client_ca", false, NULL, &d->client_ca) < 0 ||
            load_identity_rules(c, config_setting_get_member(g, "client_identities"),
                                &d->client_identities) < 0)
            return -1;
        if (xe_conf_get_bool(c, g, "compression", false, &d->compression) < 0 ||
            xe_conf_get_bool(c, g, "sasl2", conf->sasl2.enabled, &d->sasl2) < 0)
            return -1;
        if (d->compression && d->register_)
            return xe_conf_fail(
                c, config_setting_get_member(g, "compression"), "compression",
                "cannot be on with register on the same domain (the "
                "post-authentication filter of register reads uncompressed "
                "streams only)");
        if (xe_conf_get_bool(c, g, "account_management", !d->compression,
                             &d->account_management) < 0)
            return -1;
        if (d->compression && d->account_management)
            return xe_conf_fail(
                c, config_setting_get_member(g, "account_management"),
                "account_management",
                "cannot be on with compression on the same domain (its "
                "post-authentication filter reads uncompressed streams only)");
        if (xe_conf_get_string(c, g, "name", true, NULL, &d->name) < 0 ||
            xe_conf_get_string(c, g, "certificate", true, NULL, &d->certificate) < 0 ||
            xe_conf_get_string(c, g, "key", true, NULL, &d->key) < 0 ||
            xe_conf_get_string(c, g, "pool", conf->n_pools != 1, NULL, &pool) < 0 ||
            xe_conf_prep_domain(c, config_setting_get_member(g, "name"), "name",
                                &d->name) < 0) {
            free(pool);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(conf->domains[j].name, d->name) == 0) {
                free(pool);
                return xe_conf_fail(c, g, "name", "domain '%s' is defined twice",
                                    d->name);
            }
        if (pool == NULL) {
            d->pool = &conf->pools[0];
        } else {
            for (size_t j = 0; j < conf->n_pools; j++)
                if (strcmp(conf->pools[j].name, pool) == 0)
                    d->pool = &conf->pools[j];
            if (d->pool == NULL) {
                xe_conf_fail(c, config_setting_get_member(g, "pool"), "pool",
                             "no pool named '%s'", pool);
                free(pool);
                return -1;
            }
            free(pool);
        }
    }
    return 0;
}

/* An array of mechanism names, upper-cased and checked against the table
 * of those xedge knows (mech.h): each once, so that every list fits the
 * offer (XE_MECH_COUNT). what: the setting, for the error. */
int
xe_conf_load_mech_list(struct xe_conf_ctx *c, const config_setting_t *m, const char *what,
                       char ***out, size_t *n_out)
{
    char known[256];
    size_t n;
    char **list;

    if (config_setting_type(m) != CONFIG_TYPE_ARRAY || config_setting_length(m) < 1)
        return xe_conf_fail(c, m, what, "must be a non-empty array of strings");
    n = (size_t)config_setting_length(m);
    list = xe_calloc(n + 1, sizeof(char *));
    *out = list;
    *n_out = n;
    for (size_t i = 0; i < n; i++) {
        const char *s = config_setting_get_string_elem(m, (int)i);

        if (s == NULL)
            return xe_conf_fail(c, m, what, "must be an array of strings");
        list[i] = xe_strdup(s);
        for (char *p = list[i]; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        if (xe_mech_find(list[i]) == NULL) {
            xe_mech_list(0, known, sizeof(known));
            return xe_conf_fail(c, m, what, "'%s' is not supported (supported: %s)", s,
                                known);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(list[k], list[i]) == 0)
                return xe_conf_fail(c, m, what, "'%s' is listed twice", s);
    }
    /* distinct known names cannot be more than the table; kept as the
     * guarantee the offer relies on */
    if (n > XE_MECH_COUNT)
        return xe_conf_fail(c, m, what, "%zu mechanisms: xedge offers %d at most", n,
                            XE_MECH_COUNT);
    return 0;
}

static int
load_sasl(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "sasl"), *m;
    unsigned long long v;

    m = g ? config_setting_get_member(g, "mechanisms") : NULL;
    if (m == NULL) { /* the table's defaults, in its order */
        conf->mechanisms = xe_calloc(XE_MECH_COUNT + 1, sizeof(char *));
        for (size_t i = 0; i < XE_MECH_COUNT; i++)
            if (xe_mechs[i].flags & XE_MECH_DEFAULT)
                conf->mechanisms[conf->n_mechanisms++] = xe_strdup(xe_mechs[i].name);
    } else if (xe_conf_load_mech_list(c, m, "sasl.mechanisms", &conf->mechanisms,
                                      &conf->n_mechanisms) < 0) {
        return -1;
    }
    if (xe_conf_get_uint(c, g, "max_attempts", 1, 100, XE_DEF_MAX_AUTH_ATTEMPTS, &v) < 0)
        return -1;
    conf->max_auth_attempts = (unsigned)v;
    if (xe_conf_get_uint(c, g, "scram_iterations", 4096, XE_MAX_SCRAM_ITERATIONS,
                         XE_DEF_SCRAM_ITERATIONS, &v) < 0)
        return -1;
    conf->scram_iterations = (unsigned)v;
    if (xe_conf_get_bool(c, g, "tls13_tls_unique", true, &conf->tls13_tls_unique) < 0)
        return -1;
    return 0;
}

/* In-band registration (XEP-0077) and the post-authentication parser it
 * needs. */
static int
load_register_limits(struct xe_conf_ctx *c, struct xe_conf *conf,
                     const config_setting_t *g)
{
    unsigned long long per, post;

    if (xe_conf_get_uint(c, g, "registrations_per_address", 0, 1000000,
                         XE_DEF_REGISTRATIONS_PER_ADDRESS, &per) < 0 ||
        xe_conf_get_uint(c, g, "max_stanza_postauth", 1024, 64 << 20,
                         XE_DEF_MAX_STANZA_POSTAUTH, &post) < 0)
        return -1;
    conf->registrations_per_address = (unsigned)per;
    conf->max_stanza_postauth = (size_t)post;
    return 0;
}

static int
load_limits(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "limits");
    const config_setting_t *t = config_setting_get_member(root, "timeouts");
    unsigned long long v[17];

    if (xe_conf_get_uint(c, g, "max_connections", 1, 10000000, XE_DEF_MAX_CONNECTIONS,
                         &v[0]) < 0 ||
        xe_conf_get_uint(c, g, "max_stanza_preauth", 1024, 1 << 20,
                         XE_DEF_MAX_STANZA_PREAUTH, &v[1]) < 0 ||
        xe_conf_get_uint(c, g, "max_xml_depth", 2, 64, XE_DEF_MAX_XML_DEPTH, &v[2]) < 0 ||
        xe_conf_get_uint(c, g, "max_attributes", 4, 256, XE_DEF_MAX_ATTRS, &v[3]) < 0 ||
        xe_conf_get_uint(c, g, "max_sasl_bytes", 512, 1 << 20, XE_DEF_MAX_SASL_BYTES,
                         &v[4]) < 0 ||
        xe_conf_get_uint(c, g, "pump_high_water", 4096, 1 << 30, XE_DEF_PUMP_HIGH_WATER,
                         &v[5]) < 0 ||
        xe_conf_get_uint(c, g, "pump_low_water", 0, 1 << 30, XE_DEF_PUMP_LOW_WATER,
                         &v[6]) < 0 ||
        xe_conf_get_uint(c, g, "pump_hard_cap", 4096, 1ULL << 32, XE_DEF_PUMP_HARD_CAP,
                         &v[7]) < 0)
        return -1;
    if (xe_conf_get_uint(c, g, "max_connections_per_address", 0, 10000000,
                         XE_DEF_MAX_CONNS_PER_ADDRESS, &v[13]) < 0 ||
        xe_conf_get_uint(c, g, "connection_rate_per_address", 0, 1000000,
                         XE_DEF_CONN_RATE_PER_ADDRESS, &v[14]) < 0 ||
        xe_conf_get_uint(c, g, "connection_burst_per_address", 1, 1000000,
                         XE_DEF_CONN_BURST_PER_ADDRESS, &v[15]) < 0)
        return -1;
    if (xe_conf_get_uint(c, g, "max_proxy_header", XE_PROXY_V2_MIN + 36, 16 + 65535,
                         XE_DEF_MAX_PROXY_HEADER, &v[16]) < 0)
        return -1;
    if (xe_conf_get_uint(c, g, "max_preauth_connections", 1, 10000000, 0, &v[8]) < 0)
        return -1;
    if (v[8] > v[0])
        return xe_conf_fail(c, config_setting_get_member(g, "max_preauth_connections"),
                            "limits.max_preauth_connections",
                            "must not be above max_connections (%llu)", v[0]);
    conf->max_preauth_connections = (unsigned)v[8];
    conf->max_proxy_header = (size_t)v[16];
    conf->max_conns_per_address = (unsigned)v[13];
    conf->conn_rate_per_address = (unsigned)v[14];
    conf->conn_burst_per_address = (unsigned)v[15];
    if (load_register_limits(c, conf, g) < 0)
        return -1;
    if (v[6] >= v[5])
        return xe_conf_fail(c, g, "pump_low_water", "must be below pump_high_water");
    /* reading stops above the high water mark, but one read (and its TLS
     * framing) can still arrive on top of it: a cap below that would close
     * healthy sessions */
    if (v[7] < v[5] + 2 * XE_READ_CHUNK)
        return xe_conf_fail(
            c, g, "pump_hard_cap",
            "must be at least pump_high_water + %d (two reads of %d bytes)",
            2 * XE_READ_CHUNK, XE_READ_CHUNK);
    conf->max_connections = (unsigned)v[0];
    conf->max_stanza_preauth = (size_t)v[1];
    conf->max_xml_depth = (unsigned)v[2];
    conf->max_attrs = (unsigned)v[3];
    conf->max_sasl_bytes = (size_t)v[4];
    conf->pump_high_water = (size_t)v[5];
    conf->pump_low_water = (size_t)v[6];
    conf->pump_hard_cap = (size_t)v[7];

    if (xe_conf_get_uint(c, t, "tls_handshake", 1, 3600, XE_DEF_TLS_TIMEOUT_MS / 1000,
                         &v[8]) < 0 ||
        xe_conf_get_uint(c, t, "auth", 1, 3600, XE_DEF_AUTH_TIMEOUT_MS / 1000, &v[9]) <
            0 ||
        xe_conf_get_uint(c, t, "backend_connect", 1, 600,
                         XE_DEF_BACKEND_CONNECT_MS / 1000, &v[10]) < 0 ||
        xe_conf_get_uint(c, t, "backend_handshake", 1, 600,
                         XE_DEF_BACKEND_HANDSHAKE_MS / 1000, &v[11]) < 0 ||
        xe_conf_get_uint(c, t, "assertion_lifetime", 5, 3600, XE_DEF_ASSERTION_LIFETIME,
                         &v[12]) < 0 ||
        xe_conf_get_uint(c, t, "preauth_idle", 1, 3600, XE_DEF_PREAUTH_IDLE_MS / 1000,
                         &v[16]) < 0)
        return -1;
    conf->preauth_idle_ms = (unsigned)v[16] * 1000;
    conf->tls_timeout_ms = (unsigned)v[8] * 1000;
    conf->auth_timeout_ms = (unsigned)v[9] * 1000;
    conf->backend_connect_ms = (unsigned)v[10] * 1000;
    conf->backend_handshake_ms = (unsigned)v[11] * 1000;
    conf->assertion_lifetime_s = (unsigned)v[12];
    if (xe_conf_get_uint(c, t, "shutdown_grace", 0, 3600, 0, &v[13]) < 0)
        return -1;
    conf->shutdown_grace_ms = (unsigned)v[13] * 1000;
    if (xe_conf_get_uint(c, t, "s2s_connect", 1, 600, XE_DEF_S2S_CONNECT_MS / 1000,
                         &v[0]) < 0 ||
        xe_conf_get_uint(c, t, "s2s_handshake", 1, 3600, XE_DEF_S2S_HANDSHAKE_MS / 1000,
                         &v[1]) < 0 ||
        xe_conf_get_uint(c, t, "dns", 1, 600, XE_DEF_DNS_MS / 1000, &v[2]) < 0 ||
        xe_conf_get_uint(c, t, "s2s_idle", 1, 86400, XE_DEF_S2S_IDLE_MS / 1000, &v[3]) <
            0 ||
        xe_conf_get_uint(c, g, "max_stanza_s2s", 1024, 1 << 24, XE_DEF_MAX_S2S_STANZA,
                         &v[4]) < 0)
        return -1;
    conf->s2s_connect_ms = (unsigned)v[0] * 1000;
    conf->s2s_handshake_ms = (unsigned)v[1] * 1000;
    conf->dns_ms = (unsigned)v[2] * 1000;
    conf->s2s_idle_ms = (unsigned)v[3] * 1000;
    conf->s2s.max_stanza = (size_t)v[4];
    return 0;
}

static int
load_lockout(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "lockout");
    unsigned long long v[8];

    if (xe_conf_get_uint(c, g, "free_failures", 0, 1000, XE_DEF_LOCKOUT_FREE_FAILURES,
                         &v[0]) < 0 ||
        xe_conf_get_uint(c, g, "delay_ms", 0, 60000, XE_DEF_LOCKOUT_DELAY_MS, &v[1]) <
            0 ||
        xe_conf_get_uint(c, g, "max_delay_ms", 0, 60000, XE_DEF_LOCKOUT_MAX_DELAY_MS,
                         &v[2]) < 0 ||
        xe_conf_get_uint(c, g, "address_threshold", 0, 1000000,
                         XE_DEF_LOCKOUT_ADDRESS_THRESHOLD, &v[3]) < 0 ||
        xe_conf_get_uint(c, g, "account_threshold", 0, 1000000,
                         XE_DEF_LOCKOUT_ACCOUNT_THRESHOLD, &v[4]) < 0 ||
        xe_conf_get_uint(c, g, "lockout_time", 1, 86400 * 7, XE_DEF_LOCKOUT_TIME_S,
                         &v[5]) < 0 ||
        xe_conf_get_uint(c, g, "window", 1, 86400 * 7, XE_DEF_LOCKOUT_WINDOW_S, &v[6]) <
            0 ||
        xe_conf_get_uint(c, g, "max_entries", 16, 1 << 24, XE_DEF_LOCKOUT_MAX_ENTRIES,
                         &v[7]) < 0)
        return -1;
    if (v[2] < v[1])
        return xe_conf_fail(c, g, "max_delay_ms", "must be at least delay_ms");
    conf->lockout.free_failures = (unsigned)v[0];
    conf->lockout.delay_ms = (unsigned)v[1];
    conf->lockout.max_delay_ms = (unsigned)v[2];
    conf->lockout.address_threshold = (unsigned)v[3];
    conf->lockout.account_threshold = (unsigned)v[4];
    conf->lockout.time_s = (unsigned)v[5];
    conf->lockout.window_s = (unsigned)v[6];
    conf->lockout.max_entries = (unsigned)v[7];
    return 0;
}

/* sasl2 = { enabled }; fast = { token_lifetime; rotate_after; } (seconds) */
static int
load_sasl2(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "sasl2");
    const config_setting_t *f = config_setting_get_member(root, "fast");
    unsigned long long life, rot;

    if (xe_conf_get_bool(c, g, "enabled", false, &conf->sasl2.enabled) < 0 ||
        xe_conf_get_uint(c, f, "token_lifetime", 1, 86400ULL * 365,
                         XE_DEF_FAST_LIFETIME_S, &life) < 0 ||
        xe_conf_get_uint(c, f, "rotate_after", 1, 86400ULL * 365, XE_DEF_FAST_ROTATE_S,
                         &rot) < 0)
        return -1;
    if (rot >= life && f && config_setting_get_member(f, "rotate_after"))
        return xe_conf_fail(c, config_setting_get_member(f, "rotate_after"),
                            "rotate_after", "must be less than token_lifetime (%llu)",
                            life);
    if (rot >= life)
        rot = life / 2 ? life / 2 : 1;
    conf->fast.token_lifetime_s = (unsigned)life;
    conf->fast.rotate_after_s = (unsigned)rot;
    return 0;
}

static int
load_control(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *g = config_setting_get_member(root, "control");
    char *mode = NULL, *end = NULL;
    long m;
    int r = -1;

    if (g == NULL)
        return 0;
    if (!config_setting_is_group(g))
        return xe_conf_fail(c, g, "control", "must be a group { socket = ...; }");
    if (xe_conf_get_string(c, g, "socket", true, NULL, &conf->control.socket) < 0 ||
        xe_conf_get_string(c, g, "mode", false, "0600", &mode) < 0)
        goto out;
    /* sun_path holds 108 bytes with the NUL */
    if (strlen(conf->control.socket) > 107) {
        xe_conf_fail(c, config_setting_get_member(g, "socket"), "socket",
                     "'%s' is longer than 107 bytes", conf->control.socket);
        goto out;
    }
    m = strtol(mode, &end, 8);
    if (*mode == '\0' || *end != '\0' || m < 0 || m > 0777 || (m & 0600) != 0600) {
        xe_conf_fail(c, config_setting_get_member(g, "mode"), "mode",
                     "'%s' is not an octal mode string such as \"0600\" or \"0660\" (the "
                     "owner must read and write)",
                     mode);
        goto out;
    }
    conf->control.mode = (unsigned)m;
    r = 0;
out:
    free(mode);
    return r;
}

/* A misspelt setting would silently get its default: every name in the file
 * must be one xedge knows. */
static int
check_group(struct xe_conf_ctx *c, const config_setting_t *g, const char *const *names)
{
    if (g == NULL || !config_setting_is_group(g))
        return 0;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        bool known = false;

        for (size_t k = 0; names[k] && !known; k++)
            known = strcmp(names[k], name) == 0;
        if (!known)
            return xe_conf_fail(c, m, name,
                                "unknown setting (misspelt? see xedge.conf(5))");
    }
    return 0;
}

static int
check_list(struct xe_conf_ctx *c, const config_setting_t *list, const char *const *names)
{
    if (list == NULL || !config_setting_is_list(list))
        return 0;
    for (int i = 0; i < config_setting_length(list); i++)
        if (check_group(c, config_setting_get_elem(list, (unsigned)i), names) < 0)
            return -1;
    return 0;
}

static int
check_names(struct xe_conf_ctx *c, const config_setting_t *root)
{
    static const char *const top[] = {
        "log_level",  "log_to",    "syslog_facility", "user",    "group",
        "user_store", "listeners", "domains",         "pools",   "sasl",
        "limits",     "timeouts",  "lockout",         "control", "metrics",
        "s2s",        "workers",   "routing",         "tls",     "sasl2",
        "fast",       NULL};
    static const char *const s2s[] = {
        "dialback_secret_file", "trust_anchors", "dns_servers", "default_policy",
        "require_encryption",   "peers",         NULL};
    static const char *const s2s_peer[] = {"domain",      "policy",     "address", "port",
                                           "secret_file", "mechanisms", NULL};
    static const char *const metrics[] = {"address", "port", NULL};
    static const char *const user_store[] = {
        "path", "map_size_mb",       "database", "database_password_file",
        "node", "changes_retention", NULL};
    static const char *const listener[] = {
        "kind",      "address",         "port", "proxy_protocol", "proxy_from",    "tls",
        "encrypted", "trusted_proxies", "path", "origins",        "host_meta_url", NULL};
    static const char *const domain[] = {
        "name",      "certificate",        "key",     "pool",     "mechanisms",
        "client_ca", "client_identities",  "iq_auth", "register", "compression",
        "tls",       "account_management", "sasl2",   NULL};
    static const char *const pool[] = {"name",
                                       "secret_file",
                                       "servers",
                                       "proxy_protocol",
                                       "policy",
                                       "on_down",
                                       "health",
                                       "retries",
                                       "route",
                                       "allow_split",
                                       "components",
                                       "max_pending_logins",
                                       "max_queued_logins",
                                       NULL};
    static const char *const component[] = {"domain", "server", NULL};
    static const char *const health[] = {"interval", "timeout",    "fall",
                                         "rise",     "slow_start", NULL};
    static const char *const server[] = {
        "name", "address", "port", "weight", "kind", "s2s_port", "jabberd2_router", NULL};
    static const char *const sasl[] = {"mechanisms", "max_attempts", "scram_iterations",
                                       "tls13_tls_unique", NULL};
    static const char *const limits[] = {"max_connections",
                                         "max_preauth_connections",
                                         "max_connections_per_address",
                                         "connection_rate_per_address",
                                         "connection_burst_per_address",
                                         "max_stanza_preauth",
                                         "max_stanza_postauth",
                                         "registrations_per_address",
                                         "max_xml_depth",
                                         "max_attributes",
                                         "max_sasl_bytes",
                                         "pump_high_water",
                                         "pump_low_water",
                                         "pump_hard_cap",
                                         "max_proxy_header",
                                         "max_stanza_s2s",
                                         NULL};
    static const char *const timeouts[] = {"tls_handshake",
                                           "preauth_idle",
                                           "auth",
                                           "backend_connect",
                                           "backend_handshake",
                                           "assertion_lifetime",
                                           "shutdown_grace",
                                           "s2s_connect",
                                           "s2s_handshake",
                                           "dns",
                                           "s2s_idle",
                                           NULL};
    static const char *const lockout[] = {"free_failures",
                                          "delay_ms",
                                          "max_delay_ms",
                                          "address_threshold",
                                          "account_threshold",
                                          "lockout_time",
                                          "window",
                                          "max_entries",
                                          NULL};
    static const char *const control[] = {"socket", "mode", NULL};
    static const char *const sasl2[] = {"enabled", NULL};
    static const char *const fast[] = {"token_lifetime", "rotate_after", NULL};
    const config_setting_t *pools = config_setting_get_member(root, "pools");

    if (check_group(c, config_setting_get_member(root, "lockout"), lockout) < 0 ||
        check_group(c, config_setting_get_member(root, "sasl2"), sasl2) < 0 ||
        check_group(c, config_setting_get_member(root, "fast"), fast) < 0 ||
        check_group(c, config_setting_get_member(root, "control"), control) < 0)
        return -1;
    if (check_group(c, root, top) < 0 ||
        check_group(c, config_setting_get_member(root, "user_store"), user_store) < 0 ||
        check_list(c, config_setting_get_member(root, "listeners"), listener) < 0 ||
        check_list(c, config_setting_get_member(root, "domains"), domain) < 0 ||
        check_list(c, pools, pool) < 0 ||
        check_group(c, config_setting_get_member(root, "sasl"), sasl) < 0 ||
        check_group(c, config_setting_get_member(root, "limits"), limits) < 0 ||
        check_group(c, config_setting_get_member(root, "timeouts"), timeouts) < 0 ||
        check_group(c, config_setting_get_member(root, "metrics"), metrics) < 0 ||
        check_group(c, config_setting_get_member(root, "routing"), metrics) < 0 ||
        check_group(c, config_setting_get_member(root, "s2s"), s2s) < 0 ||
        (config_setting_get_member(root, "s2s") &&
         check_list(
             c,
             config_setting_get_member(config_setting_get_member(root, "s2s"), "peers"),
             s2s_peer) < 0))
        return -1;
    for (int i = 0;
         pools && config_setting_is_list(pools) && i < config_setting_length(pools);
         i++) {
        const config_setting_t *g = config_setting_get_elem(pools, (unsigned)i);
        if (check_list(c, config_setting_get_member(g, "servers"), server) < 0 ||
            check_list(c, config_setting_get_member(g, "components"), component) < 0 ||
            check_group(c, config_setting_get_member(g, "health"), health) < 0)
            return -1;
    }
    return 0;
}

/* ---- tls: TLS parameters (tls.h), a top group and each domain's own -------- */

static void
tls_settings_free(struct xe_tls_settings *t)
{
    free(t->ciphers);
    free(t->ciphersuites);
    free(t->groups);
    memset(t, 0, sizeof(*t));
}

/* A tls group G over the settings in *T (the defaults it refines), checked
 * by OpenSSL; WHERE names the group in errors ("tls", "domain a.example: tls"). */
static int
load_tls_group(struct xe_conf_ctx *c, const config_setting_t *g, const char *where,
               struct xe_tls_settings *t, bool top)
{
    static const char *const names[] = {"ciphers", "ciphersuites", "groups",
                                        "min_version", NULL};
    static const char *const top_names[] = {"ciphers",     "ciphersuites",    "groups",
                                            "min_version", "ticket_key_file", NULL};
    static const char *const keys[] = {"ciphers", "ciphersuites", "groups"};
    char **fields[] = {&t->ciphers, &t->ciphersuites, &t->groups};
    const config_setting_t *mv;
    const char *setting = NULL;
    char *err = NULL, what[1200];

    if (g != NULL) {
        if (!config_setting_is_group(g))
            return xe_conf_fail(c, g, where, "must be a group { ... }");
        if (check_group(c, g, top ? top_names : names) < 0)
            return -1;
        for (size_t i = 0; i < 3; i++) {
            char *v = NULL;
            if (xe_conf_get_string(c, g, keys[i], false, NULL, &v) < 0)
                return -1;
            if (v) {
                free(*fields[i]);
                *fields[i] = v;
            }
        }
        if ((mv = config_setting_get_member(g, "min_version")) != NULL) {
            const char *v = config_setting_type(mv) == CONFIG_TYPE_STRING
                                ? config_setting_get_string(mv)
                                : NULL;
            if (v && strcmp(v, "TLSv1.2") == 0)
                t->min_version = XE_TLS_1_2;
            else if (v && strcmp(v, "TLSv1.3") == 0)
                t->min_version = XE_TLS_1_3;
            else
                return xe_conf_fail(c, mv, "min_version",
                                    "must be \"TLSv1.2\" or \"TLSv1.3\"");
        }
    }
    if (xe_tls_settings_check(t, &setting, &err) < 0) {
        const config_setting_t *at = g ? config_setting_get_member(g, setting) : NULL;
        snprintf(what, sizeof(what), "%s.%s", where, setting);
        xe_conf_fail(c, at ? at : g, what, "%s", err);
        free(err);
        return -1;
    }
    return 0;
}

/* The top tls group, then each domain's (over a copy of the top's). */
static int
load_tls(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *list = config_setting_get_member(root, "domains");

    const config_setting_t *top = config_setting_get_member(root, "tls");

    if (load_tls_group(c, top, "tls", &conf->tls, true) < 0)
        return -1;
    if (top != NULL && config_setting_is_group(top)) {
        const config_setting_t *kf = config_setting_get_member(top, "ticket_key_file");
        char *err = NULL;
        if (xe_conf_get_string(c, top, "ticket_key_file", false, NULL,
                               &conf->ticket_key_file) < 0)
            return -1;
        if (conf->ticket_key_file &&
            xe_tls_ticket_keys_read(conf->ticket_key_file, &conf->ticket_keys,
                                    &conf->ticket_keys_len, &err) < 0) {
            xe_conf_fail(c, kf, "tls.ticket_key_file", "%s", err);
            free(err);
            return -1;
        }
    }
    for (size_t i = 0; i < conf->n_domains; i++) {
        struct xe_tls_settings *t = &conf->domains[i].tls;
        const config_setting_t *g =
            config_setting_get_member(config_setting_get_elem(list, (unsigned)i), "tls");
        char where[1100];

        t->ciphers = conf->tls.ciphers ? xe_strdup(conf->tls.ciphers) : NULL;
        t->ciphersuites =
            conf->tls.ciphersuites ? xe_strdup(conf->tls.ciphersuites) : NULL;
        t->groups = conf->tls.groups ? xe_strdup(conf->tls.groups) : NULL;
        t->min_version = conf->tls.min_version;
        snprintf(where, sizeof(where), "domain %s: tls", conf->domains[i].name);
        if (g != NULL && load_tls_group(c, g, where, t, false) < 0)
            return -1;
    }
    return 0;
}

/* workers = N | "auto": auto is the number of CPUs the process may run on
 * (its affinity mask, so taskset and systemd's CPUAffinity= count). */
static int
load_workers(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    const config_setting_t *s = config_setting_get_member(root, "workers");
    unsigned long long v;

    if (s && config_setting_type(s) == CONFIG_TYPE_STRING) {
        cpu_set_t set;
        int n = 1;

        if (strcmp(config_setting_get_string(s), "auto") != 0)
            return xe_conf_fail(c, s, "workers", "must be a number (1 to %d) or \"auto\"",
                                XE_MAX_WORKERS);
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            n = CPU_COUNT(&set);
        conf->workers = n < 1 ? 1 : n > XE_MAX_WORKERS ? XE_MAX_WORKERS : (unsigned)n;
        conf->workers_auto = true;
        return 0;
    }
    if (xe_conf_get_uint(c, root, "workers", 1, XE_MAX_WORKERS, 1, &v) < 0)
        return -1;
    conf->workers = (unsigned)v;
    return 0;
}

/* log_to, syslog_facility, user, group, workers */
static int
load_service(struct xe_conf_ctx *c, struct xe_conf *conf, const config_setting_t *root)
{
    static const struct {
        const char *name;
        int value;
    } facilities[] = {
        {"daemon", LOG_DAEMON}, {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV},
        {"user", LOG_USER},     {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
        {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };
    char *to = NULL, *fac = NULL;
    int r = -1;

    if (xe_conf_get_string(c, root, "log_to", false, "stderr", &to) < 0 ||
        xe_conf_get_string(c, root, "syslog_facility", false, "daemon", &fac) < 0 ||
        xe_conf_get_string(c, root, "user", false, NULL, &conf->run_user) < 0 ||
        xe_conf_get_string(c, root, "group", false, NULL, &conf->run_group) < 0)
        goto out;
    conf->log_to = xe_log_to_parse(to);
    if (conf->log_to < 0) {
        xe_conf_fail(c, config_setting_get_member(root, "log_to"), "log_to",
                     "'%s' is not one of stderr, syslog, journal", to);
        goto out;
    }
#ifndef HAVE_LIBSYSTEMD
    if (conf->log_to == XE_LOG_TO_JOURNAL) {
        xe_conf_fail(c, config_setting_get_member(root, "log_to"), "log_to",
                     "this xedge was built without libsystemd: use syslog");
        goto out;
    }
#endif
    conf->syslog_facility = -1;
    for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
        if (strcmp(fac, facilities[i].name) == 0)
            conf->syslog_facility = facilities[i].value;
    if (conf->syslog_facility < 0) {
        xe_conf_fail(
            c, config_setting_get_member(root, "syslog_facility"), "syslog_facility",
            "'%s' is not one of daemon, auth, authpriv, user, local0 ... local7", fac);
        goto out;
    }
    if (load_workers(c, conf, root) < 0)
        goto out;
    if (conf->run_group && !conf->run_user) {
        xe_conf_fail(c, config_setting_get_member(root, "group"), "group",
                     "group needs user (the user to run as)");
        goto out;
    }
    r = 0;
out:
    free(to);
    free(fac);
    return r;
}

int
xe_conf_load(const char *path, struct xe_conf **conf_r, char **error_r)
{
    struct xe_conf_ctx c = {.path = path, .error = NULL};
    struct xe_conf *conf = xe_calloc(1, sizeof(*conf));
    config_t cfg;
    const config_setting_t *root, *us;
    char *level = NULL;
    unsigned long long v;
    int r = -1;

    config_init(&cfg);
    conf->path = xe_strdup(path);
    if (config_read_file(&cfg, path) != CONFIG_TRUE) {
        if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
            c.error = xe_asprintf("%s: cannot read the file: %s", path, strerror(errno));
        else
            c.error =
                xe_asprintf("%s:%d: syntax error: %s",
                            config_error_file(&cfg) ? config_error_file(&cfg) : path,
                            config_error_line(&cfg), config_error_text(&cfg));
        goto out;
    }
    root = config_root_setting(&cfg);
    if (xe_conf_get_string(&c, root, "log_level", false, "info", &level) < 0)
        goto out;
    conf->log_level = xe_log_level_parse(level);
    if (conf->log_level < 0) {
        xe_conf_fail(&c, config_setting_get_member(root, "log_level"), "log_level",
                     "'%s' is not one of error, warn, info, debug", level);
        goto out;
    }
    if (load_service(&c, conf, root) < 0)
        goto out;
    us = config_setting_get_member(root, "user_store");
    if (us == NULL || !config_setting_is_group(us)) {
        xe_conf_fail(&c, us ? us : root, "user_store",
                     "missing required group { path = ...; }");
        goto out;
    }
    if (xe_conf_get_string(&c, us, "path", true, NULL, &conf->user_store) < 0 ||
        xe_conf_get_uint(&c, us, "map_size_mb", 1, 1 << 20, 1024, &v) < 0)
        goto out;
    conf->user_store_map_mb = (size_t)v;
    /* several nodes (pgstore.h): path is then the replica */
    if (xe_conf_get_string(&c, us, "database", false, NULL, &conf->user_store_database) <
            0 ||
        xe_conf_get_string(&c, us, "database_password_file", false, NULL,
                           &conf->user_store_database_password_file) < 0 ||
        xe_conf_get_string(&c, us, "node", false, NULL, &conf->node_name) < 0 ||
        xe_conf_get_uint(&c, us, "changes_retention", 60, 365u * 86400u,
                         XE_DEF_CHANGES_RETENTION_S, &v) < 0)
        goto out;
    conf->changes_retention_s = v;

    if (load_sasl2(&c, conf, root) < 0 || xe_conf_load_pools(&c, conf, root) < 0 ||
        load_domains(&c, conf, root) < 0 || xe_conf_load_listeners(&c, conf, root) < 0 ||
        load_sasl(&c, conf, root) < 0 || load_limits(&c, conf, root) < 0 ||
        load_lockout(&c, conf, root) < 0 || load_control(&c, conf, root) < 0 ||
        xe_conf_load_metrics(&c, conf, root) < 0 ||
        xe_conf_load_routing(&c, conf, root) < 0 ||
        xe_conf_load_s2s(&c, conf, root) < 0 || load_tls(&c, conf, root) < 0 ||
        check_names(&c, root) < 0)
        goto out;
    r = 0;
out:
    free(level);
    config_destroy(&cfg);
    if (r < 0) {
        xe_conf_free(&conf);
        *error_r = c.error;
    } else {
        *conf_r = conf;
    }
    return r;
}

const char *
xe_conf_fold(const char *name, char *buf, size_t size)
{
    size_t n = name ? strlen(name) : 0;
    bool fold = false;

    for (size_t i = 0; i < n && !fold; i++)
        fold = (unsigned char)name[i] >= 0x80 ||
               ((i == 0 || name[i - 1] == '.') && strncasecmp(name + i, "xn--", 4) == 0);
    if (fold)
        return xe_jidprep_domain_ace(name, n, buf, size, NULL) == 0 ? buf : name;
    return name;
}

const struct xe_domain_conf *
xe_conf_domain(const struct xe_conf *conf, const char *name)
{
    char buf[XE_JIDPREP_PART_MAX + 1];

    name = xe_conf_fold(name, buf, sizeof(buf));
    for (size_t i = 0; name != NULL && i < conf->n_domains; i++)
        if (strcasecmp(conf->domains[i].name, name) == 0)
            return &conf->domains[i];
    return NULL;
}

const struct xe_domain_conf *
xe_conf_component(const struct xe_conf *conf, const char *name)
{
    char buf[XE_JIDPREP_PART_MAX + 1];

    name = xe_conf_fold(name, buf, sizeof(buf));
    for (size_t i = 0; name != NULL && i < conf->n_domains; i++) {
        const struct xe_pool_conf *p = conf->domains[i].pool;
        for (size_t j = 0; p != NULL && p->route && j < p->n_components; j++)
            if (strcasecmp(p->components[j].domain, name) == 0)
                return &conf->domains[i];
    }
    return NULL;
}

char *const *
xe_conf_mechanisms(const struct xe_conf *conf, const struct xe_domain_conf *d,
                   size_t *n_r)
{
    if (d && d->mechanisms) {
        *n_r = d->n_mechanisms;
        return d->mechanisms;
    }
    *n_r = conf->n_mechanisms;
    return conf->mechanisms;
}

static bool
str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

char *
xe_conf_fixed_changes(const struct xe_conf *old, const struct xe_conf *new)
{
    char buf[512] = "";
    size_t o = 0;
    bool listeners = old->n_listeners != new->n_listeners;

    for (size_t i = 0; !listeners && i < old->n_listeners; i++)
        listeners = old->listeners[i].kind != new->listeners[i].kind ||
                    old->listeners[i].port != new->listeners[i].port ||
                    strcmp(old->listeners[i].address, new->listeners[i].address) != 0;
#define CHANGED(cond, name)                                                              \
    do {                                                                                 \
        if ((cond) && o < sizeof(buf))                                                   \
            o +=                                                                         \
                (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", o ? ", " : "", name); \
    } while (0)
    CHANGED(listeners, "listeners");
    CHANGED(str_differs(old->user_store, new->user_store), "user_store.path");
    CHANGED(old->user_store_map_mb != new->user_store_map_mb, "user_store.map_size_mb");
    CHANGED(str_differs(old->user_store_database, new->user_store_database),
            "user_store.database");
    CHANGED(str_differs(old->user_store_database_password_file,
                        new->user_store_database_password_file),
            "user_store.database_password_file");
    CHANGED(str_differs(old->node_name, new->node_name), "user_store.node");
    CHANGED(str_differs(old->control.socket, new->control.socket), "control.socket");
    CHANGED(old->control.mode != new->control.mode, "control.mode");
    CHANGED(str_differs(old->metrics_address, new->metrics_address) ||
                old->metrics_port != new->metrics_port,
            "metrics");
    CHANGED(str_differs(old->route_address, new->route_address) ||
                old->route_port != new->route_port,
            "routing");
    CHANGED(str_differs(old->run_user, new->run_user), "user");
    CHANGED(old->workers != new->workers, "workers");
    CHANGED(str_differs(old->run_group, new->run_group), "group");
    CHANGED(old->log_to != new->log_to || old->syslog_facility != new->syslog_facility,
            "log_to/syslog_facility");
#undef CHANGED
    if (o == 0)
        return NULL;
    return xe_asprintf("%s changed: a reload cannot change %s (restart xedge for that)",
                       buf, strchr(buf, ',') ? "them" : "it");
}

void
xe_conf_free(struct xe_conf **confp)
{
    struct xe_conf *conf = *confp;

    if (conf == NULL)
        return;
    for (size_t i = 0; i < conf->n_listeners; i++) {
        free(conf->listeners[i].address);
        free(conf->listeners[i].proxy_from);
    }
    free(conf->listeners);
    for (size_t i = 0; i < conf->n_websockets; i++) {
        struct xe_ws_listener_conf *w = &conf->websockets[i];
        free(w->address);
        free(w->trusted_proxies);
        free(w->proxy_from);
        free(w->path);
        for (size_t k = 0; k < w->n_origins; k++)
            free(w->origins[k]);
        free(w->origins);
        free(w->host_meta_url);
    }
    free(conf->websockets);
    for (size_t i = 0; i < conf->n_domains; i++) {
        free(conf->domains[i].name);
        free(conf->domains[i].certificate);
        free(conf->domains[i].key);
        free(conf->domains[i].client_ca);
        tls_settings_free(&conf->domains[i].tls);
        for (size_t j = 0; j < conf->domains[i].n_mechanisms; j++)
            free(conf->domains[i].mechanisms[j]);
        free(conf->domains[i].mechanisms);
    }
    free(conf->domains);
    tls_settings_free(&conf->tls);
    if (conf->ticket_keys)
        OPENSSL_cleanse(conf->ticket_keys, conf->ticket_keys_len);
    free(conf->ticket_keys);
    free(conf->ticket_key_file);
    for (size_t i = 0; i < conf->n_pools; i++) {
        struct xe_pool_conf *p = &conf->pools[i];
        free(p->name);
        free(p->secret_file);
        if (p->secret)
            OPENSSL_cleanse(p->secret, p->secret_len);
        free(p->secret);
        for (size_t j = 0; j < p->n_servers; j++) {
            free(p->servers[j].name);
            free(p->servers[j].host);
            free(p->servers[j].jabberd2_router);
        }
        free(p->servers);
        for (size_t j = 0; j < p->n_components; j++)
            free(p->components[j].domain);
        free(p->components);
    }
    free(conf->pools);
    for (size_t i = 0; i < conf->n_mechanisms; i++)
        free(conf->mechanisms[i]);
    free(conf->mechanisms);
    free(conf->user_store);
    free(conf->user_store_database);
    free(conf->user_store_database_password_file);
    free(conf->node_name);
    free(conf->run_user);
    free(conf->run_group);
    free(conf->metrics_address);
    free(conf->route_address);
    free(conf->control.socket);
    if (conf->s2s.dialback_secret)
        OPENSSL_cleanse(conf->s2s.dialback_secret, conf->s2s.dialback_secret_len);
    free(conf->s2s.dialback_secret);
    free(conf->s2s.dialback_secret_file);
    free(conf->s2s.trust_anchors);
    free(conf->s2s.dns_servers);
    for (size_t i = 0; i < conf->s2s.n_peers; i++) {
        free(conf->s2s.peers[i].domain);
        free(conf->s2s.peers[i].address);
        free(conf->s2s.peers[i].secret_file);
        if (conf->s2s.peers[i].secret)
            OPENSSL_cleanse(conf->s2s.peers[i].secret, conf->s2s.peers[i].secret_len);
        free(conf->s2s.peers[i].secret);
        for (size_t k = 0; k < conf->s2s.peers[i].n_mechanisms; k++)
            free(conf->s2s.peers[i].mechanisms[k]);
        free(conf->s2s.peers[i].mechanisms);
    }
    free(conf->s2s.peers);
    free(conf->path);
    free(conf);
    *confp = NULL;
}
