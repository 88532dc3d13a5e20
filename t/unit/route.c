/* Unit tests: routing between the servers of a pool (src/core/route.h): the map
 * of homes (pins over the rendezvous choice), the link's authentication
 * (an assertion of purpose "route"), and what becomes of each stanza
 * (forwarded to its home, refused as a loop, the home down, bad address),
 * fed whole and byte by byte. No sockets. */
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "pool.h"
#include "route.h"
#include "tap.h"

#define N 3
static struct xe_server_conf servers[N] = {{.name = "p0", .weight = 1},
                                           {.name = "p1", .weight = 1},
                                           {.name = "p2", .weight = 1}};
static struct xe_pool_conf pool = {.name = "main", .servers = servers, .n_servers = N};
static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
#define SECRET_LEN 32
#define NOW 1700000000

static struct xe_route_map *map;
static bool up[N] = {true, true, true};
static int forwarded[N], outcomes[6];
static struct xe_buf fwd;

static const struct xe_route_map *
t_find(void *ctx, const char *domain, const char *server, const unsigned char **s,
       size_t *sl, const char **why)
{
    (void)ctx;
    if (strcmp(domain, "example.test") != 0 ||
        xe_route_map_find(map, server) == XE_POOL_NONE) {
        *why = "unknown";
        return NULL;
    }
    *s = secret;
    *sl = SECRET_LEN;
    return map;
}

static bool
t_up(void *ctx, size_t i)
{
    (void)ctx;
    return up[i];
}

static int
t_forward(void *ctx, size_t i, const unsigned char *raw, size_t len)
{
    (void)ctx;
    forwarded[i]++;
    xe_buf_append(&fwd, raw, len);
    return 0;
}

static void
t_outcome(void *ctx, enum xe_route_outcome o, size_t home, const char *to)
{
    (void)ctx;
    (void)home;
    (void)to;
    outcomes[o]++;
}

static bool
t_served(void *ctx, const char *domain)
{
    (void)ctx;
    return strcmp(domain, "other.test") == 0 || strcmp(domain, "example.test") == 0;
}

static int resyncs;

static void
t_resync(void *ctx)
{
    (void)ctx;
    resyncs++;
}

static const struct xe_route_link_cb cb = {t_find,    t_up,     t_forward,
                                           t_outcome, t_served, t_resync};

static const char *auth_extra = ""; /* more attributes of link_as's <auth/> */

static const char *HDR = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                         "xmlns:stream='http://etherx.jabber.org/streams' "
                         "to='example.test' version='1.0'>";

/* A JID homed on server H (by the hash), written into buf. */
static void
user_on(size_t h, char *buf, size_t size)
{
    for (int i = 0;; i++) {
        snprintf(buf, size, "u%d@example.test", i);
        if (xe_pool_pick(&pool, buf) == h)
            return;
    }
}

static void
reset_counts(void)
{
    memset(forwarded, 0, sizeof(forwarded));
    memset(outcomes, 0, sizeof(outcomes));
    fwd.len = 0;
}

/* A link authenticated as SERVER; OUT gets its replies. */
static struct xe_route_link *
link_as(const char *server, int64_t expiry, const char *purpose, struct xe_buf *out,
        int *r_out, bool bytewise)
{
    struct xe_route_link *l = xe_route_link_new(&cb, NULL, 60);
    char token[XE_ASSERTION_MAX], identity[128], msg[1024];
    const char *why;
    int r = 0;

    snprintf(identity, sizeof(identity), "example.test %s", server);
    xe_assertion_make(secret, SECRET_LEN, purpose, identity, expiry, NULL, token,
                      sizeof(token));
    snprintf(msg, sizeof(msg),
             "%s<auth xmlns='urn:xedge:route:0' server='%s'%s>%s</auth>", HDR, server,
             auth_extra, token);
    if (bytewise) {
        for (size_t i = 0; msg[i] && r == XE_ROUTE_MORE; i++)
            r = xe_route_link_feed(l, msg + i, 1, NOW, out, &why);
    } else {
        r = xe_route_link_feed(l, msg, strlen(msg), NOW, out, &why);
    }
    *r_out = r;
    return l;
}

static int
feed(struct xe_route_link *l, const char *s, struct xe_buf *out)
{
    const char *why;
    return xe_route_link_feed(l, s, strlen(s), NOW, out, &why);
}

static void
test_map(void)
{
    struct xe_route_map *m = xe_route_map_new(&pool), *m2;
    char u[64];
    bool pinned;
    const char *why;
    struct xe_buf b;
    size_t h;

    user_on(1, u, sizeof(u));
    is_int(xe_route_home(m, u, &pinned), 1, "map: the home is the rendezvous choice");
    ok(!pinned, "... not pinned");
    is_int(xe_route_map_add_pin(m, u, "p2", &why), 0, "map: a pin is added");
    ok(xe_route_map_add_pin(m, "x@example.test", "nope", &why) < 0,
       "map: a pin to a server not in the pool is refused");
    xe_route_map_seal(m);
    h = xe_route_home(m, u, &pinned);
    is_int(h, 2, "map: the pin overrides the rendezvous choice");
    ok(pinned, "... and says so");
    m2 = xe_route_map_new(&pool);
    ok(!xe_route_map_same(m, m2), "map: a pin makes a different map");
    xe_route_map_add_pin(m2, u, "p2", &why);
    xe_route_map_seal(m2);
    ok(xe_route_map_same(m, m2), "map: the same pins, the same map");
    xe_buf_init(&b, 0);
    xe_route_map_render(m, "p0", &b);
    xe_buf_append(&b, "", 1);
    ok(strstr((char *)b.data, "self='p0'") &&
           strstr((char *)b.data, "<server name='p2' weight='1'/>") &&
           strstr((char *)b.data, "server='p2'/>"),
       "map: rendered with self, servers and pins (%s)", (char *)b.data);
    xe_buf_free(&b);
    xe_route_map_free(&m);
    xe_route_map_free(&m2);
}

/* A map of 150,000 pins (more than the 100,000 once sent) goes in parts of
 * about 64 KiB here: the first <pool pins='N'> with the servers, then
 * <pins/>; each part a whole element within the bound plus one pin; every
 * pin once, in order. */
static void
test_map_parts(void)
{
    struct xe_route_map *m = xe_route_map_new(&pool);
    const char *why;
    char u[64];
    size_t n = 150000, pos = 0, parts = 0, pins = 0, biggest = 0;
    bool whole = true, ordered = true;
    int r = 1, added = 0;

    for (size_t i = 0; i < n; i++) {
        snprintf(u, sizeof(u), "u%07zu@example.test", i);
        added |= xe_route_map_add_pin(m, u, i % 2 ? "p1" : "p2", &why);
    }
    is_int(added, 0, "parts: %zu pins added (no bound of the map's own)", n);
    xe_route_map_seal(m);
    while (r == 1) {
        struct xe_buf b;
        size_t first = pos;
        xe_buf_init(&b, 0);
        r = xe_route_map_render_part(m, "p0", &pos, 64 * 1024, &b);
        xe_buf_append(&b, "", 1);
        parts++;
        if (b.len - 1 > biggest)
            biggest = b.len - 1;
        if (parts == 1)
            whole &=
                strncmp((char *)b.data,
                        "<pool xmlns='urn:xedge:route:0' self='p0' gen='0' pins='150000'>"
                        "<server name='p0' weight='1'/>",
                        88) == 0 &&
                strstr((char *)b.data, "</pool>") != NULL;
        else
            whole &=
                strncmp((char *)b.data, "<pins xmlns='urn:xedge:route:0'>", 32) == 0 &&
                strcmp((char *)b.data + b.len - 1 - 7, "</pins>") == 0;
        for (const char *p = (char *)b.data; (p = strstr(p, "<pin jid='")) != NULL; p++) {
            snprintf(u, sizeof(u), "<pin jid='u%07zu@", pins);
            ordered &= strncmp(p, u, strlen(u)) == 0;
            pins++;
        }
        ordered &= pins == pos && pos > first;
        xe_buf_free(&b);
    }
    is_int(r, 0, "parts: the last part says so");
    ok(parts > 50, "parts: %zu parts", parts);
    ok(biggest <= 64 * 1024 + 100, "parts: each within the bound plus one pin (%zu)",
       biggest);
    ok(whole, "parts: <pool pins='N'> with the servers first, then <pins/>, each whole");
    ok(ordered && pins == n, "parts: every pin once, in order (%zu)", pins);
    xe_route_map_free(&m);
}

static void
test_link(bool bytewise)
{
    struct xe_buf out;
    struct xe_route_link *l;
    char u0[64], u1[64], u2[64], msg[512];
    int r;
    const char *mode = bytewise ? "bytewise" : "whole";

    user_on(0, u0, sizeof(u0));
    user_on(1, u1, sizeof(u1));
    user_on(2, u2, sizeof(u2));
    xe_buf_init(&out, 0);
    l = link_as("p1", NOW + 30, "route", &out, &r, bytewise);
    is_int(r, XE_ROUTE_READY, "%s: a valid route assertion authenticates the link", mode);
    is_str(xe_route_link_server(l), "p1", "%s: ... as its server", mode);
    is_int(xe_route_link_self(l), 1, "%s: ... with its index", mode);
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "<success xmlns='urn:xedge:route:0'/>") != NULL,
       "%s: ... and is told so", mode);

    /* to a user homed on p0: forwarded there, raw */
    reset_counts();
    out.len = 0;
    snprintf(
        msg, sizeof(msg),
        "<message from='%s/r' to='%s/x' type='chat' id='m1'><body>hi</body></message>",
        u1, u0);
    is_int(feed(l, msg, &out), XE_ROUTE_MORE, "%s: a stanza", mode);
    is_int(forwarded[0], 1, "%s: ... goes to its recipient's home", mode);
    ok(fwd.len == strlen(msg) && memcmp(fwd.data, msg, fwd.len) == 0,
       "%s: ... byte for byte", mode);
    is_int(outcomes[XE_ROUTE_FORWARDED], 1, "%s: ... counted as forwarded", mode);
    is_int(out.len, 0, "%s: ... and nothing goes back", mode);

    /* to a user homed on the sender: a loop, refused with an error */
    reset_counts();
    out.len = 0;
    snprintf(msg, sizeof(msg),
             "<message from='%s/r' to='%s' id='m2'><body>back</body></message>", u1, u1);
    feed(l, msg, &out);
    is_int(forwarded[0] + forwarded[1] + forwarded[2], 0,
           "%s: a stanza for the sender's own user is not forwarded", mode);
    is_int(outcomes[XE_ROUTE_LOOP], 1, "%s: ... it is refused as a loop", mode);
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "type='error'") &&
           strstr((char *)out.data, "service-unavailable") &&
           strstr((char *)out.data, "id='m2'"),
       "%s: ... and the sender gets an error (%s)", mode, (char *)out.data);

    /* the home down: recipient-unavailable at once */
    reset_counts();
    out.len = 0;
    up[2] = false;
    snprintf(
        msg, sizeof(msg),
        "<iq from='%s/r' to='%s' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>", u1,
        u2);
    feed(l, msg, &out);
    up[2] = true;
    is_int(outcomes[XE_ROUTE_HOME_DOWN], 1, "%s: the home down: refused", mode);
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "recipient-unavailable") &&
           strstr((char *)out.data, "type='wait'"),
       "%s: ... with recipient-unavailable (wait)", mode);

    /* a broadcast presence to a down home: dropped without an error */
    reset_counts();
    out.len = 0;
    up[2] = false;
    snprintf(msg, sizeof(msg), "<presence from='%s/r' to='%s'/>", u1, u2);
    feed(l, msg, &out);
    up[2] = true;
    is_int(out.len, 0, "%s: no error for a broadcast presence", mode);

    /* an error stanza is never answered with an error */
    reset_counts();
    out.len = 0;
    snprintf(msg, sizeof(msg), "<message from='%s/r' to='%s' type='error'/>", u1, u1);
    feed(l, msg, &out);
    is_int(outcomes[XE_ROUTE_LOOP], 1, "%s: an error stanza back to the sender: refused",
           mode);
    is_int(out.len, 0, "%s: ... without an error in reply", mode);

    /* another domain, or no node: bad address */
    reset_counts();
    out.len = 0;
    feed(l, "<message from='example.test' to='b@elsewhere.test' id='z'/>", &out);
    feed(l, "<message from='example.test' to='example.test' id='z'/>", &out);
    is_int(outcomes[XE_ROUTE_BAD], 2, "%s: another domain or the domain itself: refused",
           mode);

    /* not a stanza: the stream ends */
    out.len = 0;
    is_int(feed(l, "<foo/>", &out), XE_ROUTE_CLOSE, "%s: not a stanza: the link closes",
           mode);
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "unsupported-stanza-type") != NULL,
       "%s: ... with unsupported-stanza-type", mode);
    xe_route_link_free(&l);
    xe_buf_free(&out);
}

static void
test_auth_failures(void)
{
    struct xe_buf out;
    struct xe_route_link *l;
    int r;

    xe_buf_init(&out, 0);
    l = link_as("p1", NOW + 30, "c2s", &out, &r, false);
    is_int(r, XE_ROUTE_CLOSE, "auth: an assertion of another purpose is refused");
    xe_route_link_free(&l);
    out.len = 0;
    l = link_as("p1", NOW - 1, "route", &out, &r, false);
    is_int(r, XE_ROUTE_CLOSE, "auth: an expired assertion is refused");
    xe_route_link_free(&l);
    out.len = 0;
    l = link_as("p9", NOW + 30, "route", &out, &r, false);
    is_int(r, XE_ROUTE_CLOSE, "auth: a server not in the pool is refused");
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "<not-authorized") != NULL, "auth: ... not-authorized");
    xe_route_link_free(&l);
    /* a stanza before authentication */
    out.len = 0;
    l = xe_route_link_new(&cb, NULL, 60);
    feed(l, HDR, &out);
    is_int(feed(l, "<message to='a@example.test'/>", &out), XE_ROUTE_CLOSE,
           "auth: a stanza before <auth/> closes the link");
    xe_route_link_free(&l);
    xe_buf_free(&out);
}

/* A link speaks only for its own server's users: a from of another
 * server's user, or of another domain xedge serves, is dropped. */
static void
test_forged_from(void)
{
    struct xe_buf out;
    struct xe_route_link *l;
    char u0[64], u1[64], u2[64], up0[64], msg[512];
    const char *suffix[] = {"", "/r", "./r", NULL};
    int r, n = 0;

    user_on(0, u0, sizeof(u0));
    user_on(1, u1, sizeof(u1));
    user_on(2, u2, sizeof(u2));
    snprintf(up0, sizeof(up0), "%s", u0);
    for (char *c = up0; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    xe_buf_init(&out, 0);
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    is_int(r, XE_ROUTE_READY, "forged: the link authenticates as p1");
    reset_counts();
    out.len = 0;
    for (int i = 0; suffix[i]; i++) {
        char from[128];
        snprintf(from, sizeof(from), "%s%s", i == 1 ? up0 : u0, suffix[i]);
        snprintf(
            msg, sizeof(msg),
            "<message from='%s' to='%s' type='chat' id='f%d'><body>x</body></message>",
            from, u2, i);
        feed(l, msg, &out);
        n++;
    }
    feed(l, "<message from='boss@other.test/r' to='u9@example.test' id='o'/>", &out);
    n++;
    feed(l, "<message from='boss@OTHER.test' to='u9@example.test' id='o2'/>", &out);
    n++;
    feed(l, "<message from='@example.test' to='u9@example.test' id='o3'/>", &out);
    n++;
    is_int(
        outcomes[XE_ROUTE_FORGED], n,
        "forged: a from of another server's user or of another served domain: refused");
    is_int(forwarded[0] + forwarded[1] + forwarded[2], 0,
           "forged: ... nothing forwarded");
    is_int(out.len, 0, "forged: ... and no error goes to the forged sender");

    reset_counts();
    snprintf(msg, sizeof(msg), "<message from='%s/r' to='%s' id='g1'/>", u1, u2);
    feed(l, msg, &out);
    snprintf(msg, sizeof(msg), "<message from='carol@remote.test/r' to='%s' id='g2'/>",
             u2);
    feed(l, msg, &out);
    snprintf(msg, sizeof(msg), "<message from='example.test' to='%s' id='g3'/>", u2);
    feed(l, msg, &out);
    snprintf(msg, sizeof(msg), "<message to='%s' id='g4'/>", u2);
    feed(l, msg, &out);
    is_int(forwarded[2], 4,
           "forged: its own user, a remote domain, the domain, no from: forwarded");
    is_int(outcomes[XE_ROUTE_FORGED], 0, "forged: ... none refused");
    xe_route_link_free(&l);
    xe_buf_free(&out);
}

/* Stanzas go raw into the home's stream: a header that declares another
 * prefix than stream: is refused, so no stanza can use one. */
static void
test_prefixes(void)
{
    static const char *const bad[] = {
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
        "xmlns:s='jabber:server' "
        "xmlns:stream='http://etherx.jabber.org/streams' to='example.test'>",
        "<x:stream xmlns='jabber:server' xmlns:x='http://etherx.jabber.org/streams' "
        "to='example.test'>",
        "<stream:stream xmlns='jabber:server' xmlns:streamx='jabber:server' "
        "xmlns:stream='http://etherx.jabber.org/streams' to='example.test'>",
        NULL};
    struct xe_buf out;
    const char *why;

    xe_buf_init(&out, 0);
    for (int i = 0; bad[i]; i++) {
        struct xe_route_link *l = xe_route_link_new(&cb, NULL, 60);
        out.len = 0;
        is_int(xe_route_link_feed(l, bad[i], strlen(bad[i]), NOW, &out, &why),
               XE_ROUTE_CLOSE,
               "prefixes: a header declaring another prefix is refused (%d)", i);
        xe_buf_append(&out, "", 1);
        ok(strstr((char *)out.data, "invalid-namespace") != NULL,
           "... invalid-namespace");
        xe_route_link_free(&l);
    }
    {
        struct xe_route_link *l = xe_route_link_new(&cb, NULL, 60);
        const char *good =
            "<stream:stream xmlns:stream = 'http://etherx.jabber.org/streams' "
            "xmlns='jabber:server' to='example.test'>";
        out.len = 0;
        is_int(xe_route_link_feed(l, good, strlen(good), NOW, &out, &why), XE_ROUTE_MORE,
               "prefixes: stream: only (spaces around =) is taken");
        xe_route_link_free(&l);
    }
    xe_buf_free(&out);
}

static void
test_components(void)
{
    static struct xe_pool_component comps[] = {
        {.domain = "conf.example.test", .server = 2}};
    struct xe_pool_conf cpool = pool;
    struct xe_route_map *saved = map;
    struct xe_route_link *l;
    struct xe_buf out, b;
    int r;

    cpool.components = comps;
    cpool.n_components = 1;
    map = xe_route_map_new(&cpool);
    xe_route_map_seal(map);
    is_int(xe_route_component(map, "CONF.example.test"), 2,
           "components: the hosting server");
    is_int(xe_route_component(map, "example.test"), XE_POOL_NONE,
           "components: not a component");
    xe_buf_init(&b, 0);
    xe_route_map_render(map, "p0", &b);
    xe_buf_append(&b, "", 1);
    ok(strstr((char *)b.data, "<component domain='conf.example.test' server='p2'/>") !=
           NULL,
       "components: in the rendered map");
    xe_buf_free(&b);
    {
        /* federation straight to the home: where a remote domain's stanza goes */
        char bare[3072];
        bool comp = true;
        size_t want = xe_route_home(map, "strasse@example.test", NULL);
        is_int(xe_route_target(map, "example.test",
                               "Stra\xc3\x9f"
                               "e@Example.TEST/phone",
                               bare, sizeof(bare), &comp),
               want, "target: a user's full JID in another case and form: its home");
        ok(!comp && strcmp(bare, "strasse@example.test") == 0,
           "target: ... the bare JID prepared (%s), not a component", bare);
        is_int(xe_route_target(map, "example.test", "room@CONF.example.test/nick", bare,
                               sizeof(bare), &comp),
               2, "target: a room of a component: the component's server");
        ok(comp && strcmp(bare, "CONF.example.test") == 0, "target: ... a component");
        is_int(xe_route_target(map, "example.test", "conf.example.test", bare,
                               sizeof(bare), &comp),
               2, "target: the component domain itself: its server");
        is_int(xe_route_target(map, "example.test", "example.test", bare, sizeof(bare),
                               &comp),
               XE_POOL_NONE, "target: the domain itself: none (the federation link)");
        is_int(xe_route_target(map, "example.test", "u@other.test", bare, sizeof(bare),
                               &comp),
               XE_POOL_NONE, "target: another domain: none");
        is_int(xe_route_target(map, "example.test",
                               "a\xef\xbc\xa0"
                               "b@example.test",
                               bare, sizeof(bare), &comp),
               XE_POOL_NONE, "target: a localpart that fails nodeprep: none");
        is_int(xe_route_target(map, "example.test", NULL, bare, sizeof(bare), &comp),
               XE_POOL_NONE, "target: no to: none");
    }
    xe_buf_init(&out, 0);
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    reset_counts();
    feed(l, "<presence from='u@remote.test/r' to='room@conf.example.test/nick'/>", &out);
    is_int(forwarded[2], 1,
           "components: a stanza for a room goes to the component's server");
    xe_route_link_free(&l);
    l = link_as("p2", NOW + 30, "route", &out, &r, false);
    reset_counts();
    out.len = 0;
    feed(l,
         "<message from='u@remote.test/r' to='room@conf.example.test' type='groupchat' "
         "id='g'/>",
         &out);
    is_int(outcomes[XE_ROUTE_LOOP], 1,
           "components: from the component's own server: a loop");
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "service-unavailable") != NULL,
       "components: ... refused");
    /* a component's from: only its own server sends it */
    reset_counts();
    feed(l, "<message from='room@conf.example.test/n' to='u@remote.test' id='c1'/>",
         &out);
    is_int(outcomes[XE_ROUTE_FORGED], 0,
           "components: from the component's server: routed");
    xe_route_link_free(&l);
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    reset_counts();
    feed(l, "<message from='room@conf.example.test/n' to='u@other.test' id='c2'/>", &out);
    feed(l,
         "<message from='room@conf.example.test/n' to='room@conf.example.test' id='c3'/>",
         &out);
    is_int(outcomes[XE_ROUTE_FORGED], 2,
           "components: a component's from on another server's link: dropped");
    is_int(forwarded[0] + forwarded[1] + forwarded[2], 0,
           "components: ... not forwarded");
    xe_route_link_free(&l);
    xe_buf_free(&out);
    xe_route_map_free(&map);
    map = saved;
}

/* A map of N pins u%07zu (p1 or p2), sealed, of generation GEN. */
static struct xe_route_map *
pinned_map(size_t n, uint64_t gen)
{
    struct xe_route_map *m = xe_route_map_new(&pool);
    const char *why;
    char u[64];

    for (size_t i = 0; i < n; i++) {
        snprintf(u, sizeof(u), "u%07zu@example.test", i);
        xe_route_map_add_pin(m, u, i % 2 ? "p1" : "p2", &why);
    }
    xe_route_map_seal(m);
    xe_route_map_set_gen(m, gen);
    return m;
}

/* Deltas: only the pins that changed, in a small element with the new
 * generation; a large change or a change of servers: the map whole. */
static void
test_delta(void)
{
    struct xe_route_map *a = pinned_map(100000, 7), *b, *c;
    struct xe_server_conf s2[N] = {{.name = "p0", .weight = 1},
                                   {.name = "p1", .weight = 2},
                                   {.name = "p2", .weight = 1}};
    struct xe_pool_conf pool2 = {.name = "main", .servers = s2, .n_servers = N};
    struct xe_buf d;
    const char *why;
    int r;

    xe_buf_init(&d, 0);
    /* one pin moved (u0050000: p2 -> p0), one removed (u0000003), one
     * added (sorting after all) */
    b = xe_route_map_new(&pool);
    for (size_t i = 0; i < 100000; i++) {
        char u[64];
        snprintf(u, sizeof(u), "u%07zu@example.test", i);
        if (i != 3)
            xe_route_map_add_pin(b, u, i == 50000 ? "p0" : i % 2 ? "p1" : "p2", &why);
    }
    xe_route_map_add_pin(b, "zz@example.test", "p1", &why);
    xe_route_map_seal(b);
    xe_route_map_set_gen(b, 8);
    r = xe_route_map_delta(a, b, 64 * 1024, &d);
    xe_buf_append(&d, "", 1);
    is_int(r, 0, "delta: three pins changed of 100,000: a delta");
    is_str((char *)d.data,
           "<delta xmlns='urn:xedge:route:0' gen='8' pins='100000'>"
           "<unpin jid='u0000003@example.test'/>"
           "<pin jid='u0050000@example.test' server='p0'/>"
           "<pin jid='zz@example.test' server='p1'/></delta>",
           "delta: the unpin, the moved pin, the new pin, in key order, gen and count");
    ok(d.len < 300, "delta: %zu bytes (the map: about 5 MB)", d.len - 1);
    d.len = 0;
    r = xe_route_map_delta(a, a, 64 * 1024, &d);
    is_int(r, 0, "delta: no change: an empty delta");
    /* many changes: over the bound, the map whole */
    c = xe_route_map_new(&pool);
    xe_route_map_seal(c);
    d.len = 0;
    r = xe_route_map_delta(a, c, 64 * 1024, &d);
    ok(r == 1 && d.len == 0, "delta: 100,000 pins removed: over 64 KiB: the map whole");
    xe_route_map_free(&c);
    /* a weight changed: the map whole */
    c = xe_route_map_new(&pool2);
    xe_route_map_seal(c);
    r = xe_route_map_delta(c, c, 64 * 1024, &d);
    is_int(r, 0, "delta: the same pool: a delta");
    d.len = 0;
    r = xe_route_map_delta(a, c, 64 * 1024, &d);
    ok(r == 1 && d.len == 0, "delta: a weight changed: the map whole");
    xe_route_map_free(&c);
    /* the generation in the first part */
    {
        size_t pos = 0;
        d.len = 0;
        xe_route_map_render_part(b, "p1", &pos, 1024, &d);
        xe_buf_append(&d, "", 1);
        ok(strstr((char *)d.data, "gen='8' pins='100000'") != NULL,
           "delta: the map's first part says its generation");
    }
    /* held twice: the first free leaves it */
    c = xe_route_map_ref(b);
    xe_route_map_free(&b);
    ok(b == NULL && xe_route_map_gen(c) == 8, "ref: a map held twice outlives one free");
    xe_route_map_free(&c);
    xe_route_map_free(&a);
    xe_buf_free(&d);
}

/* <resync/> from the glue asks for the map whole. */
static void
test_resync(void)
{
    struct xe_buf out;
    int r;
    struct xe_route_link *l;

    xe_buf_init(&out, 0);
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    is_int(r, XE_ROUTE_READY, "resync: the link is up");
    resyncs = 0;
    r = feed(l, "<resync xmlns='urn:xedge:route:0' gen='3'/>", &out);
    ok(r == XE_ROUTE_MORE && resyncs == 1,
       "resync: the glue's <resync/> asks for the map");
    xe_route_link_free(&l);
    xe_buf_free(&out);
}

/* <ping/> from the glue: a <pong/> with its id at once, its interval kept
 * (route_io closes a link silent for XE_ROUTE_SILENT_PINGS of them); an
 * interval out of range or not a number is ignored, an id too long or
 * with markup does not go back raw. */
static void
test_ping(void)
{
    struct xe_buf out;
    int r;
    struct xe_route_link *l;

    xe_buf_init(&out, 0);
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    is_int(r, XE_ROUTE_READY, "ping: the link is up");
    is_int(xe_route_link_ping_interval(l), 0, "ping: no interval before a ping");
    out.len = 0;
    r = feed(l, "<ping xmlns='urn:xedge:route:0' id='7' interval='30'/>", &out);
    xe_buf_append(&out, "", 1);
    ok(r == XE_ROUTE_MORE &&
           strcmp((char *)out.data, "<pong xmlns='urn:xedge:route:0' id='7'/>") == 0,
       "ping: answered by a pong with its id");
    is_int(xe_route_link_ping_interval(l), 30, "ping: its interval is kept");
    out.len = 0;
    r = feed(l,
             "<ping xmlns='urn:xedge:route:0' id='a&lt;b' interval='0'/>"
             "<ping xmlns='urn:xedge:route:0' interval='9x'/>"
             "<ping xmlns='urn:xedge:route:0' interval='99999'/>",
             &out);
    xe_buf_append(&out, "", 1);
    ok(r == XE_ROUTE_MORE &&
           strcmp((char *)out.data, "<pong xmlns='urn:xedge:route:0' id='a&lt;b'/>"
                                    "<pong xmlns='urn:xedge:route:0'/>"
                                    "<pong xmlns='urn:xedge:route:0'/>") == 0,
       "ping: the id escaped; no id, no id back");
    is_int(xe_route_link_ping_interval(l), 30, "ping: 0, 9x, 99999 are not intervals");
    xe_route_link_free(&l);
    xe_buf_free(&out);
}

/* A glue that says unroutable='yes' at auth gets a stanza for a user whose
 * home has no link here back whole in <unroutable reason='home-down'/>
 * (to try its next node), not the error; one that does not: the error. */
static void
test_unroutable(void)
{
    struct xe_buf out, want;
    struct xe_route_link *l;
    char u1[64], u2[64], msg[512];
    int r;

    user_on(1, u1, sizeof(u1));
    user_on(2, u2, sizeof(u2));
    xe_buf_init(&out, 0);
    xe_buf_init(&want, 0);
    auth_extra = " unroutable='yes'";
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    auth_extra = "";
    is_int(r, XE_ROUTE_READY, "unroutable: the link is up");
    snprintf(msg, sizeof(msg),
             "<message from='%s/r' to='%s' type='chat' id='u1'><body>a &amp; b</body>"
             "</message>",
             u1, u2);
    reset_counts();
    out.len = 0;
    up[2] = false;
    feed(l, msg, &out);
    xe_buf_append_str(&want,
                      "<xr:unroutable xmlns:xr='urn:xedge:route:0' reason='home-down'>");
    xe_buf_append_str(&want, msg);
    xe_buf_append_str(&want, "</xr:unroutable>");
    xe_buf_append(&want, "", 1);
    xe_buf_append(&out, "", 1);
    is_str((char *)out.data, (char *)want.data,
           "unroutable: the home down: the stanza back whole, not an error");
    is_int(outcomes[XE_ROUTE_HOME_DOWN], 1, "unroutable: ... counted as home-down");
    /* a result (no error for it): back too, another node may deliver it */
    out.len = 0;
    snprintf(msg, sizeof(msg), "<iq from='%s/r' to='%s/x' type='result' id='i9'/>", u1,
             u2);
    feed(l, msg, &out);
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "<xr:unroutable") && strstr((char *)out.data, "id='i9'"),
       "unroutable: an IQ result back too");
    /* the home up: forwarded, nothing back */
    up[2] = true;
    reset_counts();
    out.len = 0;
    feed(l, msg, &out);
    ok(out.len == 0 && forwarded[2] == 1,
       "unroutable: the home up: forwarded, nothing back");
    xe_route_link_free(&l);
    /* without the attribute: the error as before */
    l = link_as("p1", NOW + 30, "route", &out, &r, false);
    out.len = 0;
    up[2] = false;
    snprintf(msg, sizeof(msg), "<message from='%s/r' to='%s' type='chat' id='u2'/>", u1,
             u2);
    feed(l, msg, &out);
    up[2] = true;
    xe_buf_append(&out, "", 1);
    ok(strstr((char *)out.data, "unroutable") == NULL &&
           strstr((char *)out.data, "recipient-unavailable"),
       "unroutable: a glue that did not ask gets recipient-unavailable");
    xe_route_link_free(&l);
    xe_buf_free(&out);
    xe_buf_free(&want);
}

/* The error xedge answers for a remote domain's stanza to a component
 * whose server is down: to the sender, from the component's JID, with the
 * stanza's id; none for errors, results, unavailable presence, probes. */
static void
test_component_error(void)
{
    struct xe_buf b;
    int r;
    static const char msg[] =
        "<message from='bob@b.test/r' to='room@conf.example.test' id='m1' "
        "type='groupchat'><body>hi</body></message>";

    xe_buf_init(&b, 0);
    r = xe_route_component_error((const unsigned char *)msg, strlen(msg), "wait",
                                 "remote-server-timeout", XE_ROUTE_COMPONENT_DOWN_TEXT,
                                 &b);
    xe_buf_append(&b, "", 1);
    is_int(r, 1, "component error: a message gets one");
    is_str(
        (char *)b.data,
        "<message type='error' to='bob@b.test/r' from='room@conf.example.test' id='m1'>"
        "<error type='wait'><remote-server-timeout "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the component&apos;s server is "
        "unavailable</text></error></message>",
        "component error: to the sender, from the room, its id, wait");
    {
        static const char *const cases[] = {
            "<presence from='bob@b.test/r' to='room@conf.example.test/bob'/>",
            "<iq from='bob@b.test/r' to='conf.example.test' id='i1' type='get'><query "
            "xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            "<presence from='bob@b.test/r' to='room@conf.example.test/bob' "
            "type='unavailable'/>",
            "<iq from='bob@b.test/r' to='conf.example.test' id='i1' type='result'/>",
            "<message from='bob@b.test/r' to='room@conf.example.test' type='error'/>",
            "<presence from='bob@b.test' to='conf.example.test' type='probe'/>",
            "<message to='room@conf.example.test'><body/></message>",
            "<message from='bob@b.test/r' to='room@conf.example.test'><x:body",
        };
        static const int want[] = {1, 1, 0, 0, 0, 0, 0, -1};
        bool all = true;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            b.len = 0;
            r = xe_route_component_error((const unsigned char *)cases[i],
                                         strlen(cases[i]), "wait",
                                         "remote-server-timeout", "t", &b);
            if (r != want[i] || (r <= 0) != (b.len == 0)) {
                all = false;
                printf("# case %zu: %d (want %d)\n", i, r, want[i]);
            }
        }
        ok(all,
           "component error: a room's join and an iq get one; unavailable, a result, "
           "an error, a probe, no from: none; not XML: -1");
    }
    xe_buf_free(&b);
}

int
main(void)
{
    map = xe_route_map_new(&pool);
    xe_route_map_seal(map);
    test_map_parts();
    xe_buf_init(&fwd, 0);
    test_map();
    test_link(false);
    test_link(true);
    test_auth_failures();
    test_forged_from();
    test_prefixes();
    test_components();
    test_delta();
    test_resync();
    test_ping();
    test_unroutable();
    test_component_error();
    xe_route_map_free(&map);
    xe_buf_free(&fwd);
    return tap_done();
}
