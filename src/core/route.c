/* xedge: one domain over several servers, sans-IO. See route.h and
 * doc/pool-routing.md. */
#include "route.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "assertion.h"
#include "pool.h"
#include "userstore.h"
#include "xelimits.h"
#include "xmlstream.h"

/* ---- the map ----------------------------------------------------------- */

struct pin {
    char *jid;
    size_t server;
};

struct xe_route_map {
    struct xe_pool_conf pool; /* names, weights, components: for xe_pool_pick */
    struct pin *pins;
    size_t n_pins, cap_pins;
    uint64_t gen;  /* its generation, as the glue knows it */
    unsigned refs; /* xe_route_map_ref; freed at 0 */
};

struct xe_route_map *
xe_route_map_new(const struct xe_pool_conf *pool)
{
    struct xe_route_map *m = xe_calloc(1, sizeof(*m));

    m->refs = 1;
    m->pool.name = xe_strdup(pool->name);
    m->pool.n_servers = pool->n_servers;
    m->pool.servers =
        xe_calloc(pool->n_servers ? pool->n_servers : 1, sizeof(*m->pool.servers));
    for (size_t i = 0; i < pool->n_servers; i++) {
        m->pool.servers[i].name = xe_strdup(pool->servers[i].name);
        m->pool.servers[i].weight = pool->servers[i].weight;
    }
    m->pool.n_components = pool->n_components;
    m->pool.components = xe_calloc(pool->n_components ? pool->n_components : 1,
                                   sizeof(*m->pool.components));
    for (size_t i = 0; i < pool->n_components; i++) {
        m->pool.components[i].domain = xe_strdup(pool->components[i].domain);
        m->pool.components[i].server = pool->components[i].server;
    }
    return m;
}

void
xe_route_map_free(struct xe_route_map **mp)
{
    struct xe_route_map *m = *mp;

    if (m == NULL)
        return;
    *mp = NULL;
    if (--m->refs > 0)
        return;
    for (size_t i = 0; i < m->pool.n_servers; i++)
        free(m->pool.servers[i].name);
    free(m->pool.servers);
    for (size_t i = 0; i < m->pool.n_components; i++)
        free(m->pool.components[i].domain);
    free(m->pool.components);
    free(m->pool.name);
    for (size_t i = 0; i < m->n_pins; i++)
        free(m->pins[i].jid);
    free(m->pins);
    free(m);
}

struct xe_route_map *
xe_route_map_ref(struct xe_route_map *m)
{
    m->refs++;
    return m;
}

void
xe_route_map_set_gen(struct xe_route_map *m, uint64_t gen)
{
    m->gen = gen;
}

uint64_t
xe_route_map_gen(const struct xe_route_map *m)
{
    return m->gen;
}

size_t
xe_route_map_n_servers(const struct xe_route_map *m)
{
    return m->pool.n_servers;
}

const char *
xe_route_map_server_name(const struct xe_route_map *m, size_t i)
{
    return i < m->pool.n_servers ? m->pool.servers[i].name : NULL;
}

size_t
xe_route_map_find(const struct xe_route_map *m, const char *name)
{
    for (size_t i = 0; name && i < m->pool.n_servers; i++)
        if (strcmp(m->pool.servers[i].name, name) == 0)
            return i;
    return XE_POOL_NONE;
}

int
xe_route_map_add_pin(struct xe_route_map *m, const char *jid, const char *server,
                     const char **why_r)
{
    size_t i = xe_route_map_find(m, server);

    if (i == XE_POOL_NONE) {
        *why_r = "the pin names a server that is not in the pool";
        return -1;
    }
    if (m->n_pins == m->cap_pins) {
        m->cap_pins = m->cap_pins ? 2 * m->cap_pins : 16;
        m->pins = realloc(m->pins, m->cap_pins * sizeof(*m->pins));
        if (m->pins == NULL)
            abort();
    }
    m->pins[m->n_pins].jid = xe_strdup(jid);
    m->pins[m->n_pins].server = i;
    m->n_pins++;
    return 0;
}

static int
pin_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pin *)a)->jid, ((const struct pin *)b)->jid);
}

void
xe_route_map_seal(struct xe_route_map *m)
{
    if (m->n_pins > 1)
        qsort(m->pins, m->n_pins, sizeof(*m->pins), pin_cmp);
}

size_t
xe_route_component(const struct xe_route_map *m, const char *domain)
{
    for (size_t i = 0; domain && i < m->pool.n_components; i++)
        if (strcasecmp(m->pool.components[i].domain, domain) == 0)
            return m->pool.components[i].server;
    return XE_POOL_NONE;
}

size_t
xe_route_home(const struct xe_route_map *m, const char *bare, bool *pinned_r)
{
    struct pin key = {(char *)bare, 0};
    const struct pin *p = NULL;

    if (m->n_pins)
        p = bsearch(&key, m->pins, m->n_pins, sizeof(*m->pins), pin_cmp);
    if (pinned_r)
        *pinned_r = p != NULL;
    if (p)
        return p->server;
    return m->pool.n_servers ? xe_pool_pick(&m->pool, bare) : XE_POOL_NONE;
}

int
xe_route_map_render(const struct xe_route_map *m, const char *self, struct xe_buf *out)
{
    int r = 0;

    r |= xe_buf_append_str(out, "<pool xmlns='" XE_NS_ROUTE "' self='");
    r |= xe_buf_append_escaped(out, self);
    r |= xe_buf_append_str(out, "'>");
    for (size_t i = 0; i < m->pool.n_servers; i++) {
        r |= xe_buf_append_str(out, "<server name='");
        r |= xe_buf_append_escaped(out, m->pool.servers[i].name);
        r |= xe_buf_appendf(out, "' weight='%u'/>", m->pool.servers[i].weight);
    }
    for (size_t i = 0; i < m->pool.n_components; i++) {
        r |= xe_buf_append_str(out, "<component domain='");
        r |= xe_buf_append_escaped(out, m->pool.components[i].domain);
        r |= xe_buf_append_str(out, "' server='");
        r |= xe_buf_append_escaped(out,
                                   m->pool.servers[m->pool.components[i].server].name);
        r |= xe_buf_append_str(out, "'/>");
    }
    for (size_t i = 0; i < m->n_pins; i++) {
        r |= xe_buf_append_str(out, "<pin jid='");
        r |= xe_buf_append_escaped(out, m->pins[i].jid);
        r |= xe_buf_append_str(out, "' server='");
        r |= xe_buf_append_escaped(out, m->pool.servers[m->pins[i].server].name);
        r |= xe_buf_append_str(out, "'/>");
    }
    r |= xe_buf_append_str(out, "</pool>");
    return r ? -1 : 0;
}

int
xe_route_map_render_part(const struct xe_route_map *m, const char *self, size_t *pos,
                         size_t max, struct xe_buf *out)
{
    size_t start = out->len, i = *pos;
    int r = 0;

    if (i > m->n_pins)
        return -1;
    if (i == 0) {
        r |= xe_buf_append_str(out, "<pool xmlns='" XE_NS_ROUTE "' self='");
        r |= xe_buf_append_escaped(out, self);
        r |= xe_buf_appendf(out, "' gen='%llu' pins='%zu'>", (unsigned long long)m->gen,
                            m->n_pins);
        for (size_t k = 0; k < m->pool.n_servers; k++) {
            r |= xe_buf_append_str(out, "<server name='");
            r |= xe_buf_append_escaped(out, m->pool.servers[k].name);
            r |= xe_buf_appendf(out, "' weight='%u'/>", m->pool.servers[k].weight);
        }
        for (size_t k = 0; k < m->pool.n_components; k++) {
            r |= xe_buf_append_str(out, "<component domain='");
            r |= xe_buf_append_escaped(out, m->pool.components[k].domain);
            r |= xe_buf_append_str(out, "' server='");
            r |= xe_buf_append_escaped(
                out, m->pool.servers[m->pool.components[k].server].name);
            r |= xe_buf_append_str(out, "'/>");
        }
    } else {
        r |= xe_buf_append_str(out, "<pins xmlns='" XE_NS_ROUTE "'>");
    }
    /* at least one pin a part, then up to MAX bytes */
    for (; i < m->n_pins && (i == *pos || out->len - start < max); i++) {
        r |= xe_buf_append_str(out, "<pin jid='");
        r |= xe_buf_append_escaped(out, m->pins[i].jid);
        r |= xe_buf_append_str(out, "' server='");
        r |= xe_buf_append_escaped(out, m->pool.servers[m->pins[i].server].name);
        r |= xe_buf_append_str(out, "'/>");
    }
    r |= xe_buf_append_str(out, *pos == 0 ? "</pool>" : "</pins>");
    *pos = i;
    if (r)
        return -1;
    return i < m->n_pins ? 1 : 0;
}

/* Whether A and B have the same servers, weights and components. */
static bool
same_pool(const struct xe_route_map *a, const struct xe_route_map *b)
{
    if (a->pool.n_servers != b->pool.n_servers ||
        a->pool.n_components != b->pool.n_components)
        return false;
    for (size_t i = 0; i < a->pool.n_components; i++)
        if (strcmp(a->pool.components[i].domain, b->pool.components[i].domain) != 0 ||
            a->pool.components[i].server != b->pool.components[i].server)
            return false;
    for (size_t i = 0; i < a->pool.n_servers; i++)
        if (strcmp(a->pool.servers[i].name, b->pool.servers[i].name) != 0 ||
            a->pool.servers[i].weight != b->pool.servers[i].weight)
            return false;
    return true;
}

static int
append_pin(struct xe_buf *out, const struct xe_route_map *m, const struct pin *p)
{
    int r = 0;

    r |= xe_buf_append_str(out, "<pin jid='");
    r |= xe_buf_append_escaped(out, p->jid);
    r |= xe_buf_append_str(out, "' server='");
    r |= xe_buf_append_escaped(out, m->pool.servers[p->server].name);
    r |= xe_buf_append_str(out, "'/>");
    return r;
}

int
xe_route_map_delta(const struct xe_route_map *old, const struct xe_route_map *new,
                   size_t max, struct xe_buf *out)
{
    size_t start = out->len, i = 0, j = 0;
    int r = 0;

    if (!same_pool(old, new))
        return 1;
    r |= xe_buf_appendf(out, "<delta xmlns='" XE_NS_ROUTE "' gen='%llu' pins='%zu'>",
                        (unsigned long long)new->gen, new->n_pins);
    /* both sorted (xe_route_map_seal): one merge walk */
    while ((i < old->n_pins || j < new->n_pins) && r == 0) {
        int c = i == old->n_pins   ? 1
                : j == new->n_pins ? -1
                                   : strcmp(old->pins[i].jid, new->pins[j].jid);
        if (c < 0) { /* gone: unpinned, or the user deleted */
            r |= xe_buf_append_str(out, "<unpin jid='");
            r |= xe_buf_append_escaped(out, old->pins[i].jid);
            r |= xe_buf_append_str(out, "'/>");
            i++;
        } else if (c > 0) { /* new */
            r |= append_pin(out, new, &new->pins[j]);
            j++;
        } else { /* moved, or the same */
            if (old->pins[i].server != new->pins[j].server)
                r |= append_pin(out, new, &new->pins[j]);
            i++;
            j++;
        }
        if (out->len - start > max) {
            out->len = start; /* a full map costs less to reason about */
            return 1;
        }
    }
    r |= xe_buf_append_str(out, "</delta>");
    if (r) {
        out->len = start;
        return -1;
    }
    return 0;
}

bool
xe_route_map_same(const struct xe_route_map *a, const struct xe_route_map *b)
{
    if (a->n_pins != b->n_pins || !same_pool(a, b))
        return false;
    for (size_t i = 0; i < a->n_pins; i++)
        if (strcmp(a->pins[i].jid, b->pins[i].jid) != 0 ||
            a->pins[i].server != b->pins[i].server)
            return false;
    return true;
}

/* ---- a link ------------------------------------------------------------ */

enum link_state { L_HEADER, L_AUTH, L_READY, L_CLOSED };

struct xe_route_link {
    const struct xe_route_link_cb *cb;
    void *ctx;
    int64_t max_lifetime, now;
    struct xe_xmlstream *xs;
    enum link_state state;
    struct xe_buf *out; /* during a feed */
    char *domain, *server;
    const struct xe_route_map *map;
    size_t self;
    bool just_ready;
    int ping_s;      /* the interval the glue's pings announce (0: none yet) */
    bool unroutable; /* the glue takes <unroutable/> back (tries another node) */
    const char *why; /* why it closes */
};

const char *
xe_route_outcome_name(enum xe_route_outcome o)
{
    switch (o) {
    case XE_ROUTE_FORWARDED:
        return "forwarded";
    case XE_ROUTE_LOOP:
        return "loop";
    case XE_ROUTE_HOME_DOWN:
        return "home-down";
    case XE_ROUTE_FULL:
        return "queue-full";
    case XE_ROUTE_FORGED:
        return "forged-from";
    case XE_ROUTE_BAD:
        break;
    }
    return "bad-address";
}

static void
stream_error(struct xe_route_link *l, const char *condition, const char *text)
{
    xe_buf_appendf(l->out,
                   "<stream:error><%s xmlns='" XE_NS_STREAM_ERRORS
                   "'/><text xmlns='" XE_NS_STREAM_ERRORS "'>",
                   condition);
    xe_buf_append_escaped(l->out, text);
    xe_buf_append_str(l->out, "</text></stream:error></stream:stream>");
    l->state = L_CLOSED;
    l->why = text;
}

/* Whether the raw header declares a namespace prefix other than stream
 * (xmlns:x='...'), or is not written <stream:stream>: stanzas are
 * forwarded as raw bytes into the home's stream, which declares only
 * the default namespace and stream:, so a stanza using such a prefix
 * (<x:message>, a child <x:body/>) would be unbound XML there and break
 * the home's link. */
static bool
header_prefixes_ok(const struct xe_route_link *l)
{
    size_t len = 0;
    const unsigned char *raw = xe_xmlstream_header(l->xs, &len);
    static const char tag[] = "<stream:stream", decl[] = "xmlns:", ok[] = "xmlns:stream";

    if (raw == NULL || len < sizeof(tag) - 1 || memcmp(raw, tag, sizeof(tag) - 1) != 0)
        return false;
    for (size_t i = 0; i + sizeof(decl) - 1 <= len; i++) {
        if (memcmp(raw + i, decl, sizeof(decl) - 1) != 0)
            continue;
        if (i + sizeof(ok) - 1 > len || memcmp(raw + i, ok, sizeof(ok) - 1) != 0)
            return false;
        {
            unsigned char c = i + sizeof(ok) - 1 < len ? raw[i + sizeof(ok) - 1] : '\0';
            if (c != '=' && c != ' ' && c != '\t' && c != '\r' && c != '\n')
                return false; /* xmlns:streamx */
        }
    }
    return true;
}

static int
on_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    struct xe_route_link *l = ctx;
    const char *to = xe_xml_attr(h, "to");
    char id[33];

    xe_random_id(id);
    xe_buf_append_str(l->out, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                              "xmlns:stream='" XE_NS_STREAMS "' version='1.0' id='");
    xe_buf_append_str(l->out, id);
    xe_buf_append_str(l->out, "' from='");
    xe_buf_append_escaped(l->out, to ? to : "");
    xe_buf_append_str(l->out, "'>");
    if (l->state != L_HEADER) {
        stream_error(l, "not-authorized", "a second stream header");
        return XE_XS_STOP;
    }
    if (!xe_xml_is(h, XE_NS_STREAMS, "stream") || default_ns == NULL ||
        strcmp(default_ns, "jabber:server") != 0) {
        stream_error(l, "invalid-namespace", "a routing link's stream is jabber:server");
        return XE_XS_STOP;
    }
    if (!header_prefixes_ok(l)) {
        stream_error(l, "invalid-namespace",
                     "a routing link's header declares no prefix but stream: (its "
                     "stanzas go as they are into another server's stream)");
        return XE_XS_STOP;
    }
    if (to == NULL || to[0] == '\0' || strlen(to) > XE_S2S_MAX_DOMAIN) {
        stream_error(l, "host-unknown", "the stream header names no domain (to)");
        return XE_XS_STOP;
    }
    l->domain = xe_strdup(to);
    xe_tolower_ascii(l->domain);
    l->state = L_AUTH;
    return XE_XS_CONTINUE;
}

static int
on_auth(struct xe_route_link *l, const struct xe_xml_elem *e)
{
    const char *server = xe_xml_attr(e, "server"), *token = xe_xml_text(e), *why = NULL;
    const unsigned char *secret = NULL;
    size_t secret_len = 0;
    const struct xe_route_map *m;
    char *identity;
    int r;

    if (!xe_xml_is(e, XE_NS_ROUTE, "auth") || server == NULL || server[0] == '\0' ||
        token == NULL) {
        xe_buf_append_str(l->out, "<failure xmlns='" XE_NS_ROUTE
                                  "'><malformed-request/></failure>");
        stream_error(l, "not-authorized", "the first element must be <auth server=''/>");
        return XE_XS_STOP;
    }
    m = l->cb->find(l->ctx, l->domain, server, &secret, &secret_len, &why);
    if (m == NULL) {
        xe_buf_append_str(l->out,
                          "<failure xmlns='" XE_NS_ROUTE "'><not-authorized/></failure>");
        stream_error(l, "not-authorized", why ? why : "no routed pool has this server");
        return XE_XS_STOP;
    }
    identity = xe_asprintf("%s %s", l->domain, server);
    r = xe_assertion_verify(secret, secret_len, "route", identity, token, l->now,
                            l->max_lifetime);
    free(identity);
    if (r != XE_ASSERT_OK) {
        xe_buf_append_str(l->out,
                          "<failure xmlns='" XE_NS_ROUTE "'><not-authorized/></failure>");
        stream_error(l, "not-authorized", xe_assertion_result_name(r));
        return XE_XS_STOP;
    }
    l->server = xe_strdup(server);
    {
        const char *u = xe_xml_attr(e, "unroutable");
        l->unroutable = u != NULL && strcmp(u, "yes") == 0;
    }
    l->map = m;
    l->self = xe_route_map_find(m, server);
    l->state = L_READY;
    l->just_ready = true;
    xe_buf_append_str(l->out, "<success xmlns='" XE_NS_ROUTE "'/>");
    return XE_XS_CONTINUE;
}

int
xe_route_error_for(const struct xe_xml_elem *e, bool component, const char *type,
                   const char *condition, const char *text, struct xe_buf *out)
{
    const char *from = xe_xml_attr(e, "from"), *to = xe_xml_attr(e, "to"),
               *id = xe_xml_attr(e, "id"), *t = xe_xml_attr(e, "type");

    if (from == NULL || (t && (strcmp(t, "error") == 0 || strcmp(t, "result") == 0)))
        return 0;
    if (strcmp(e->name, "message") != 0 && strcmp(e->name, "presence") != 0 &&
        strcmp(e->name, "iq") != 0)
        return 0;
    if (strcmp(e->name, "presence") == 0 &&
        ((t == NULL && !component) ||
         (t && (strcmp(t, "unavailable") == 0 || strcmp(t, "probe") == 0))))
        return 0; /* broadcast presence and probes: no error (RFC 6121 4.3, 4.5) */
    xe_buf_appendf(out, "<%s type='error' to='", e->name);
    xe_buf_append_escaped(out, from);
    if (to) {
        xe_buf_append_str(out, "' from='");
        xe_buf_append_escaped(out, to);
    }
    if (id) {
        xe_buf_append_str(out, "' id='");
        xe_buf_append_escaped(out, id);
    }
    xe_buf_appendf(out,
                   "'><error type='%s'><%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                   "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>",
                   type, condition);
    xe_buf_append_escaped(out, text);
    xe_buf_appendf(out, "</text></error></%s>", e->name);
    return 1;
}

struct bounce_ctx {
    const char *type, *condition, *text;
    struct xe_buf *out;
    int r;
};

static int
bounce_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    (void)ctx;
    (void)h;
    (void)default_ns;
    return XE_XS_CONTINUE;
}

static int
bounce_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
               size_t raw_len)
{
    struct bounce_ctx *b = ctx;

    (void)raw;
    (void)raw_len;
    if (strcmp(e->ns, "jabber:server") == 0)
        b->r = xe_route_error_for(e, true, b->type, b->condition, b->text, b->out);
    return XE_XS_STOP;
}

static int
bounce_end(void *ctx)
{
    (void)ctx;
    return XE_XS_STOP;
}

int
xe_route_component_error(const unsigned char *raw, size_t len, const char *type,
                         const char *condition, const char *text, struct xe_buf *out)
{
    static const struct xe_xmlstream_cb xcb = {bounce_start, bounce_element, bounce_end};
    static const struct xe_xmlstream_limits lim = {
        XE_ROUTE_MAX_STANZA, XE_ROUTE_MAX_DEPTH, XE_ROUTE_MAX_ATTRS};
    static const char hdr[] = "<stream:stream xmlns='jabber:server' "
                              "xmlns:stream='" XE_NS_STREAMS "'>";
    struct bounce_ctx b = {type, condition, text, out, -1};
    struct xe_xmlstream *xs = xe_xmlstream_new(&lim, &xcb, &b);
    size_t used = 0;

    if (xe_xmlstream_feed(xs, hdr, sizeof(hdr) - 1, &used) != XE_XS_ERROR)
        xe_xmlstream_feed(xs, raw, len, &used);
    xe_xmlstream_free(&xs);
    return b.r;
}

/* An error reply to E (RFC 6120 8.3) on the link: to its sender, from its
 * recipient (xe_route_error_for). */
static void
error_reply(struct xe_route_link *l, const struct xe_xml_elem *e, const char *type,
            const char *condition, const char *text)
{
    xe_route_error_for(e, false, type, condition, text, l->out);
}

static void
component_error(struct xe_route_link *l, const struct xe_xml_elem *e, const char *type,
                const char *condition, const char *text)
{
    xe_route_error_for(e, true, type, condition, text, l->out);
}

/* The bare JID of TO, normalized as the user store keeps it, if it is a
 * user of DOMAIN: 0, else -1. */
static int
bare_of(const char *to, const char *domain, char *bare, size_t size)
{
    const char *at, *slash, *host;
    size_t hlen, n;

    if (to == NULL)
        return -1;
    slash = strchr(to, '/');
    n = slash ? (size_t)(slash - to) : strlen(to);
    at = memchr(to, '@', n);
    if (at == NULL || at == to || n >= size)
        return -1;
    host = at + 1;
    hlen = n - (size_t)(host - to);
    if (hlen != strlen(domain) || strncasecmp(host, domain, hlen) != 0)
        return -1;
    memcpy(bare, to, n);
    bare[n] = '\0';
    return xe_jid_normalize(bare, size, NULL) != 0 ? -1 : 0;
}

/* The server of the component domain TO is addressed to (its domain
 * copied into DOMAIN), or XE_POOL_NONE. */
static size_t
component_of(const struct xe_route_map *m, const char *to, char *domain, size_t size)
{
    const char *at, *slash;
    size_t n;

    if (to == NULL || m->pool.n_components == 0)
        return XE_POOL_NONE;
    slash = strchr(to, '/');
    n = slash ? (size_t)(slash - to) : strlen(to);
    at = memchr(to, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - to);
        to = at + 1;
    }
    if (n == 0 || n >= size)
        return XE_POOL_NONE;
    memcpy(domain, to, n);
    domain[n] = '\0';
    return xe_route_component(m, domain);
}

size_t
xe_route_target(const struct xe_route_map *m, const char *domain, const char *to,
                char *bare, size_t size, bool *component_r)
{
    size_t home;

    *component_r = false;
    if (m == NULL || to == NULL || size == 0)
        return XE_POOL_NONE;
    if ((home = component_of(m, to, bare, size)) != XE_POOL_NONE) {
        *component_r = true;
        return home;
    }
    if (domain != NULL && bare_of(to, domain, bare, size) == 0)
        return xe_route_home(m, bare, NULL);
    bare[0] = '\0';
    return XE_POOL_NONE;
}

/* Whether FROM may come from the link's server: a user of the link's
 * domain homed there, the domain itself, a component domain it hosts, or a
 * domain xedge does not serve (federation that reached this server). A
 * user of the domain homed on another server, a component elsewhere, or
 * another domain xedge serves would be forged: the receiving glue trusts
 * what comes from xedge as if it came from its own host. No from: the
 * receiving glue takes the domain itself. */
static bool
from_ok(struct xe_route_link *l, const char *from)
{
    char bare[XE_ROUTE_MAX_JID + 1], host[XE_ROUTE_MAX_JID + 1];
    const char *slash, *at, *h;
    size_t n, hlen;

    if (from == NULL)
        return true;
    slash = strchr(from, '/');
    n = slash ? (size_t)(slash - from) : strlen(from);
    at = memchr(from, '@', n);
    h = at ? at + 1 : from;
    hlen = n - (size_t)(h - from);
    if (hlen > 0 && h[hlen - 1] == '.')
        hlen--; /* "example.test." is example.test */
    if (hlen == 0 || hlen >= sizeof(host) || (at && at == from))
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    xe_tolower_ascii(host);
    if (strcmp(host, l->domain) == 0) {
        if (at == NULL)
            return true; /* the domain: every server of the pool serves it */
        if ((size_t)(at - from) + 1 + hlen >= sizeof(bare))
            return false;
        memcpy(bare, from, (size_t)(at - from) + 1);
        memcpy(bare + (at - from) + 1, host, hlen + 1);
        return xe_jid_normalize(bare, sizeof(bare), NULL) == 0 &&
               xe_route_home(l->map, bare, NULL) == l->self;
    }
    if (xe_route_component(l->map, host) != XE_POOL_NONE)
        return xe_route_component(l->map, host) == l->self;
    return l->cb->served == NULL || !l->cb->served(l->ctx, host);
}

static int
on_stanza(struct xe_route_link *l, const struct xe_xml_elem *e, const unsigned char *raw,
          size_t raw_len)
{
    char bare[XE_ROUTE_MAX_JID + 1];
    enum xe_route_outcome o;
    size_t home = XE_POOL_NONE;

    if (strcmp(e->ns, "jabber:server") != 0 ||
        (strcmp(e->name, "message") != 0 && strcmp(e->name, "presence") != 0 &&
         strcmp(e->name, "iq") != 0)) {
        stream_error(l, "unsupported-stanza-type",
                     "only message, presence and iq are routed");
        return XE_XS_STOP;
    }
    if (!from_ok(l, xe_xml_attr(e, "from"))) {
        /* no error reply: it would go to the forged sender */
        if (bare_of(xe_xml_attr(e, "to"), l->domain, bare, sizeof(bare)) < 0)
            bare[0] = '\0';
        l->cb->outcome(l->ctx, XE_ROUTE_FORGED, XE_POOL_NONE, bare);
        return XE_XS_CONTINUE;
    }
    if ((home = component_of(l->map, xe_xml_attr(e, "to"), bare, sizeof(bare))) !=
        XE_POOL_NONE) {
        /* a component domain: its server, whatever the node */
        if (home == l->self) {
            o = XE_ROUTE_LOOP;
            error_reply(l, e, "cancel", "service-unavailable",
                        "routing loop refused: the component is on the sending server");
        } else if (!l->cb->up(l->ctx, home)) {
            o = XE_ROUTE_HOME_DOWN;
            component_error(l, e, "wait", "remote-server-timeout",
                            XE_ROUTE_COMPONENT_DOWN_TEXT);
        } else if (l->cb->forward(l->ctx, home, raw, raw_len) < 0) {
            o = XE_ROUTE_FULL;
            component_error(l, e, "wait", "resource-constraint",
                            "the component's server is not keeping up");
        } else {
            o = XE_ROUTE_FORWARDED;
        }
    } else if (bare_of(xe_xml_attr(e, "to"), l->domain, bare, sizeof(bare)) < 0) {
        bare[0] = '\0';
        o = XE_ROUTE_BAD;
        error_reply(l, e, "modify", "jid-malformed",
                    "xedge routes stanzas for users of the link's domain only");
    } else if ((home = xe_route_home(l->map, bare, NULL)) == l->self) {
        /* the sender is the home: it must have delivered it itself. A
         * stanza xedge forwarded never comes back this way, so nothing
         * loops (doc/pool-routing.md, "Why nothing loops") */
        o = XE_ROUTE_LOOP;
        error_reply(l, e, "cancel", "service-unavailable",
                    "routing loop refused: the recipient's home is the sending server");
    } else if (!l->cb->up(l->ctx, home)) {
        o = XE_ROUTE_HOME_DOWN;
        if (l->unroutable) {
            /* the glue has links to other nodes, which may have a link
             * to the home: the stanza goes back whole for it to try the
             * next one (it answers the sender when none could) */
            /* (a prefix: the stanza inside keeps the stream's default
             * namespace, jabber:server, as it was sent) */
            xe_buf_append_str(l->out, "<xr:unroutable xmlns:xr='" XE_NS_ROUTE
                                      "' reason='home-down'>");
            xe_buf_append(l->out, raw, raw_len);
            xe_buf_append_str(l->out, "</xr:unroutable>");
        } else {
            error_reply(l, e, "wait", "recipient-unavailable",
                        "the recipient's server is unavailable");
        }
    } else if (l->cb->forward(l->ctx, home, raw, raw_len) < 0) {
        o = XE_ROUTE_FULL;
        error_reply(l, e, "wait", "resource-constraint",
                    "the recipient's server is not keeping up");
    } else {
        o = XE_ROUTE_FORWARDED;
    }
    l->cb->outcome(l->ctx, o, home, bare);
    return XE_XS_CONTINUE;
}

static int
on_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
           size_t raw_len)
{
    struct xe_route_link *l = ctx;

    if (xe_xml_is(e, XE_NS_STREAMS, "error")) {
        l->state = L_CLOSED;
        l->why = "the glue sent a stream error";
        xe_buf_append_str(l->out, "</stream:stream>");
        return XE_XS_STOP;
    }
    if (l->state == L_AUTH)
        return on_auth(l, e);
    if (xe_xml_is(e, XE_NS_ROUTE, "ping")) {
        /* the glue's liveness check: a pong with its id; its interval
         * tells the io layer when a silent glue is dead */
        const char *id = xe_xml_attr(e, "id"), *iv = xe_xml_attr(e, "interval");
        if (iv != NULL) {
            char *end;
            long v = strtol(iv, &end, 10);
            if (*end == '\0' && v >= 1 && v <= XE_ROUTE_MAX_PING_S)
                l->ping_s = (int)v;
        }
        xe_buf_append_str(l->out, "<pong xmlns='" XE_NS_ROUTE "'");
        if (id != NULL && strlen(id) <= 64) {
            xe_buf_append_str(l->out, " id='");
            xe_buf_append_escaped(l->out, id);
            xe_buf_append_str(l->out, "'");
        }
        xe_buf_append_str(l->out, "/>");
        return XE_XS_CONTINUE;
    }
    if (xe_xml_is(e, XE_NS_ROUTE, "resync")) {
        /* the glue missed a delta (a generation it did not expect): the
         * whole map again */
        if (l->cb->resync)
            l->cb->resync(l->ctx);
        return XE_XS_CONTINUE;
    }
    return on_stanza(l, e, raw, raw_len);
}

static int
on_end(void *ctx)
{
    struct xe_route_link *l = ctx;

    xe_buf_append_str(l->out, "</stream:stream>");
    l->state = L_CLOSED;
    l->why = "the glue closed the stream";
    return XE_XS_STOP;
}

struct xe_route_link *
xe_route_link_new(const struct xe_route_link_cb *cb, void *ctx, int64_t max_lifetime)
{
    static const struct xe_xmlstream_cb xcb = {on_start, on_element, on_end};
    static const struct xe_xmlstream_limits lim = {
        XE_ROUTE_MAX_STANZA, XE_ROUTE_MAX_DEPTH, XE_ROUTE_MAX_ATTRS};
    struct xe_route_link *l = xe_calloc(1, sizeof(*l));

    l->cb = cb;
    l->ctx = ctx;
    l->max_lifetime = max_lifetime;
    l->self = XE_POOL_NONE;
    l->xs = xe_xmlstream_new(&lim, &xcb, l);
    return l;
}

void
xe_route_link_free(struct xe_route_link **lp)
{
    struct xe_route_link *l = *lp;

    if (l == NULL)
        return;
    xe_xmlstream_free(&l->xs);
    free(l->domain);
    free(l->server);
    free(l);
    *lp = NULL;
}

int
xe_route_link_feed(struct xe_route_link *l, const void *data, size_t n, int64_t now,
                   struct xe_buf *out, const char **why_r)
{
    const unsigned char *p = data;
    size_t used = 0;
    int r;

    *why_r = NULL;
    if (l->state == L_CLOSED) {
        *why_r = l->why ? l->why : "closed";
        return XE_ROUTE_CLOSE;
    }
    l->out = out;
    l->now = now;
    l->just_ready = false;
    while (n > 0 && l->state != L_CLOSED) {
        r = xe_xmlstream_feed(l->xs, p, n, &used);
        if (r == XE_XS_ERROR) {
            stream_error(l, xe_xmlstream_condition(l->xs),
                         xe_xmlstream_error_text(l->xs));
            break;
        }
        if (r == XE_XS_OK)
            break;
        p += used;
        n -= used;
    }
    l->out = NULL;
    if (l->state == L_CLOSED) {
        *why_r = l->why;
        return XE_ROUTE_CLOSE;
    }
    return l->just_ready ? XE_ROUTE_READY : XE_ROUTE_MORE;
}

int
xe_route_link_set_map(struct xe_route_link *l, const struct xe_route_map *m,
                      struct xe_buf *out)
{
    size_t self;

    if (l->state != L_READY)
        return 0;
    self = xe_route_map_find(m, l->server);
    l->out = out;
    if (self == XE_POOL_NONE) {
        stream_error(l, "not-authorized", "the server is no longer in the routed pool");
        l->out = NULL;
        return -1;
    }
    l->out = NULL;
    l->map = m;
    l->self = self;
    return 0;
}

const char *
xe_route_link_domain(const struct xe_route_link *l)
{
    return l->domain;
}

const char *
xe_route_link_server(const struct xe_route_link *l)
{
    return l->server;
}

int
xe_route_link_ping_interval(const struct xe_route_link *l)
{
    return l->ping_s;
}

size_t
xe_route_link_self(const struct xe_route_link *l)
{
    return l->self;
}
