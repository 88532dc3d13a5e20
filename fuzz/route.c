/* Fuzz target: a routing link (src/route.h), the protocol a backend's glue
 * speaks to xedge's routing listener: the stream header, <auth/> with an
 * identity assertion of purpose "route", then stanzas routed to their home.
 *
 * Input: one flags byte, chunk sizes (fuzz.h), then the link's bytes.
 * flags bits 0-1: the server the link authenticates as (p0, p1, p2; 3: p0)
 *       bit 2: the target writes a valid header and <auth/> first (so that
 *              the stanza paths are reached); else the input is all of it
 *       bit 3: p2 is down (no link)
 *       bit 4: forwarding fails (the home's queue is full)
 *       bit 5: the map has a component (conf.example.test on p2) and pins
 *       bit 6: the map changes between chunks (xe_route_link_set_map)
 *
 * Checked: nothing is forwarded before the link authenticated or after it
 * closed; a forwarded stanza is whole (starts with '<', ends with '>') and
 * within XE_ROUTE_MAX_STANZA; it never goes to the sending server; every
 * stanza has one outcome; a closed link stays closed; what goes back to
 * the glue is bounded by what it sent (no amplification). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "fuzz.h"
#include "pool.h"
#include "route.h"
#include "userstore.h"
#include "xelimits.h"

#define NOW 1700000000
static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
static struct xe_server_conf servers[3] = {{.name = "p0", .weight = 1},
                                           {.name = "p1", .weight = 2},
                                           {.name = "p2", .weight = 1}};
static struct xe_pool_component comps[] = {{.domain = "conf.example.test", .server = 2}};

static struct xe_route_map *maps[2];
static const struct xe_route_map *cur;
static bool p2_down, full, authed;
static size_t self = (size_t)-1;
static unsigned long n_forwarded, n_outcomes[8];

static const struct xe_route_map *
t_find(void *ctx, const char *domain, const char *server, const unsigned char **s,
       size_t *sl, const char **why)
{
    (void)ctx;
    if (strcmp(domain, "example.test") != 0 ||
        xe_route_map_find(cur, server) == XE_POOL_NONE) {
        *why = "unknown";
        return NULL;
    }
    *s = secret;
    *sl = 32;
    return cur;
}

static bool
t_up(void *ctx, size_t i)
{
    (void)ctx;
    FUZZ_CHECK(i < 3);
    return !(i == 2 && p2_down);
}

static int
t_forward(void *ctx, size_t i, const unsigned char *raw, size_t len)
{
    (void)ctx;
    FUZZ_CHECK(authed);
    FUZZ_CHECK(i < 3 && i != self);
    FUZZ_CHECK(!(i == 2 && p2_down));
    FUZZ_CHECK(len >= 2 && len <= XE_ROUTE_MAX_STANZA);
    FUZZ_CHECK(raw[0] == '<' && raw[len - 1] == '>');
    if (full)
        return -1;
    n_forwarded++;
    return 0;
}

static void
t_outcome(void *ctx, enum xe_route_outcome o, size_t home, const char *to)
{
    (void)ctx;
    FUZZ_CHECK((unsigned)o < 8 && to != NULL);
    FUZZ_CHECK(xe_route_outcome_name(o) != NULL);
    if (o == XE_ROUTE_FORWARDED)
        FUZZ_CHECK(home != self && home < 3);
    if (o == XE_ROUTE_LOOP)
        FUZZ_CHECK(home == self);
    n_outcomes[o]++;
}

static bool
t_served(void *ctx, const char *domain)
{
    (void)ctx;
    return strcmp(domain, "other.test") == 0;
}

static const struct xe_route_link_cb cb = {t_find, t_up, t_forward, t_outcome, t_served};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct xe_pool_conf pool = {.name = "main", .servers = servers, .n_servers = 3};
    const char *why;

    (void)argc, (void)argv;
    fuzz_logs();
    maps[0] = xe_route_map_new(&pool);
    xe_route_map_seal(maps[0]);
    pool.components = comps;
    pool.n_components = 1;
    maps[1] = xe_route_map_new(&pool);
    FUZZ_CHECK(xe_route_map_add_pin(maps[1], "alice@example.test", "p2", &why) == 0);
    FUZZ_CHECK(xe_route_map_add_pin(maps[1], "bob@example.test", "p1", &why) == 0);
    xe_route_map_seal(maps[1]);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_chunker ch;
    struct xe_route_link *l;
    struct xe_buf out;
    unsigned flags;
    const char *server, *why;
    size_t fed = 0;
    int r = XE_ROUTE_MORE;
    bool closed = false;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    {
        /* the input as a stanza's "to" from a remote domain: where it goes
         * (xe_route_target), and as a JID through nodeprep */
        char to[XE_ROUTE_MAX_JID + 1], bare[XE_ROUTE_MAX_JID + 1],
            jid[XE_ROUTE_MAX_JID + 1];
        size_t n = size < XE_ROUTE_MAX_JID ? size : XE_ROUTE_MAX_JID, home;
        bool comp;
        memcpy(to, data, n);
        to[n] = '\0';
        home = xe_route_target(maps[(flags >> 5) & 1], "example.test", to, bare,
                               sizeof(bare), &comp);
        FUZZ_CHECK(home == XE_POOL_NONE || home < 3);
        FUZZ_CHECK(home == XE_POOL_NONE || strlen(bare) < sizeof(bare));
        memcpy(jid, to, n + 1);
        if (xe_jid_normalize(jid, sizeof(jid), &why) == 0)
            FUZZ_CHECK(strlen(jid) < sizeof(jid) && strchr(jid, '@') != NULL);
    }
    fuzz_chunker_init(&ch, &data, &size);
    server = servers[(flags & 3) == 3 ? 0 : flags & 3].name;
    p2_down = flags & 8;
    full = flags & 16;
    cur = maps[(flags >> 5) & 1];
    authed = false;
    self = (size_t)-1;
    n_forwarded = 0;
    memset(n_outcomes, 0, sizeof(n_outcomes));
    xe_buf_init(&out, 0);
    l = xe_route_link_new(&cb, NULL, 60);
    if (flags & 4) {
        char token[XE_ASSERTION_MAX], identity[64], msg[1024];
        snprintf(identity, sizeof(identity), "example.test %s", server);
        FUZZ_CHECK(xe_assertion_make(secret, 32, "route", identity, NOW + 30, NULL, token,
                                     sizeof(token)) > 0);
        snprintf(msg, sizeof(msg),
                 "<stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='example.test'>"
                 "<auth xmlns='urn:xedge:route:0' server='%s'>%s</auth>",
                 server, token);
        r = xe_route_link_feed(l, msg, strlen(msg), NOW, &out, &why);
        FUZZ_CHECK(r == XE_ROUTE_READY);
        authed = true;
        self = xe_route_link_self(l);
        FUZZ_CHECK(self < 3);
        out.len = 0;
    }
    while (size > 0) {
        size_t n = fuzz_chunk_len(&ch, size);
        r = xe_route_link_feed(l, data, n, NOW, &out, &why);
        fed += n;
        data += n;
        size -= n;
        if (r == XE_ROUTE_READY) {
            FUZZ_CHECK(!authed);
            authed = true;
            self = xe_route_link_self(l);
            FUZZ_CHECK(self < 3 && xe_route_link_server(l) != NULL);
        }
        if (r == XE_ROUTE_CLOSE) {
            FUZZ_CHECK(why != NULL);
            closed = true;
            break;
        }
        if ((flags & 64) && authed) {
            struct xe_buf o2;
            cur = maps[!((flags >> 5) & 1)];
            xe_buf_init(&o2, 0);
            FUZZ_CHECK(xe_route_link_set_map(l, cur, &o2) == 0);
            FUZZ_CHECK(xe_route_link_self(l) == self);
            xe_buf_free(&o2);
        }
    }
    if (closed) {
        unsigned long before = n_forwarded;
        FUZZ_CHECK(xe_route_link_feed(l, "<message/>", 10, NOW, &out, &why) ==
                   XE_ROUTE_CLOSE);
        FUZZ_CHECK(n_forwarded == before);
    }
    /* replies: at most one error per stanza, its from, to and id escaped
     * (up to 6 bytes for one) plus a fixed text; one stream header and
     * error: bounded by what the glue sent */
    FUZZ_CHECK(out.len <= 32 * fed + 4096);
    FUZZ_CHECK(n_forwarded == n_outcomes[XE_ROUTE_FORWARDED]);
    xe_route_link_free(&l);
    xe_buf_free(&out);
    return 0;
}
