/* Unit tests: choosing a backend server by policy, and the servers' health
 * (src/core/pool.h). No sockets: the session counts and check results are given. */
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "tap.h"

#define N 3

static struct xe_server_conf servers[N] = {
    {.name = "a", .weight = 1}, {.name = "b", .weight = 1}, {.name = "c", .weight = 1}};
static struct xe_pool_conf pool = {.name = "p", .servers = servers, .n_servers = N};
static struct xe_server_state state[N];
static struct xe_server_state *st[N] = {&state[0], &state[1], &state[2]};

static void
reset(enum xe_pool_policy policy, enum xe_on_down on_down, unsigned wa, unsigned wb,
      unsigned wc)
{
    pool.policy = policy;
    pool.on_down = on_down;
    servers[0].weight = wa;
    servers[1].weight = wb;
    servers[2].weight = wc;
    memset(state, 0, sizeof(state));
    for (int i = 0; i < N; i++)
        state[i].up = true;
}

static void
test_sticky(void)
{
    const char *why;
    size_t h, i, n2;
    char jid[64];
    unsigned moved = 0, other = 0;

    reset(XE_POLICY_STICKY, XE_ON_DOWN_ERROR, 1, 1, 1);
    h = xe_pool_pick(&pool, "u@d");
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), h,
           "sticky: the hash choice");
    ok(why == NULL, "sticky: no reason when a server is chosen");
    is_int(xe_pool_choose(&pool, st, "u@d", (h + 1) % N, &why), (h + 1) % N,
           "sticky: a pin overrides the hash");
    state[h].sessions = 100; /* counts do not matter to sticky */
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), h,
           "sticky: the session counts do not matter");
    state[h].up = false;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), XE_POOL_NONE,
           "sticky, on_down error: the user's server down: none");
    is_str(why, "the user's server is down", "... saying why");
    state[h].up = true;
    state[h].draining = true;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), XE_POOL_NONE,
           "sticky, on_down error: the user's server draining: none");
    is_str(why, "the user's server is draining", "... saying why");
    /* on_down next: the second highest score */
    pool.on_down = XE_ON_DOWN_NEXT;
    i = xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why);
    ok(i != XE_POOL_NONE && i != h, "sticky, on_down next: another server (%zu)", i);
    /* ... which is the hash choice of the pool without h */
    {
        struct xe_server_conf rest[N - 1];
        struct xe_pool_conf p2 = pool;
        size_t k = 0, idx[N - 1];
        for (size_t j = 0; j < N; j++)
            if (j != h) {
                idx[k] = j;
                rest[k++] = servers[j];
            }
        p2.servers = rest;
        p2.n_servers = N - 1;
        is_int(idx[xe_pool_pick(&p2, "u@d")], i,
               "... the next in the user's hash order (the pool without it)");
        state[i].up = false;
        n2 = xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why);
        ok(n2 != XE_POOL_NONE && n2 != h && n2 != i, "... and the third after that");
        state[n2].up = false;
        is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), XE_POOL_NONE,
               "... none when every server is down");
        is_str(why, "no server of the pool is available", "... saying why");
    }
    /* a pinned server down, on_down next: the hash order */
    reset(XE_POLICY_STICKY, XE_ON_DOWN_NEXT, 1, 1, 1);
    state[(h + 1) % N].up = false;
    is_int(xe_pool_choose(&pool, st, "u@d", (h + 1) % N, &why), h,
           "sticky, on_down next: a down pin: the hash choice");
    /* only the users of a down server move, with next */
    reset(XE_POLICY_STICKY, XE_ON_DOWN_NEXT, 1, 1, 1);
    for (int u = 0; u < 300; u++) {
        size_t before, after;
        snprintf(jid, sizeof(jid), "user%d@example.test", u);
        state[1].up = true;
        before = xe_pool_choose(&pool, st, jid, XE_POOL_NONE, &why);
        state[1].up = false;
        after = xe_pool_choose(&pool, st, jid, XE_POOL_NONE, &why);
        if (before == 1)
            moved += after != 1 && after != XE_POOL_NONE;
        else
            other += after != before;
    }
    ok(moved > 50 && other == 0,
       "sticky, next: b's users all move (%u), nobody else does (%u)", moved, other);
}

static void
test_least_conn(void)
{
    const char *why;
    unsigned count[N] = {0};

    reset(XE_POLICY_LEAST_CONN, XE_ON_DOWN_ERROR, 1, 1, 1);
    state[0].sessions = 5;
    state[1].sessions = 2;
    state[2].sessions = 3;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), 1,
           "least-conn: the fewest sessions");
    is_int(xe_pool_choose(&pool, st, "u@d", 0, &why), 1, "least-conn: a pin is ignored");
    state[1].up = false;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), 2,
           "least-conn: a down server is skipped");
    state[2].draining = true;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), 0,
           "least-conn: a draining one too");
    state[0].up = false;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), XE_POOL_NONE,
           "least-conn: none available");
    is_str(why, "no server of the pool is available", "... saying why");
    /* relative to the weight: a (weight 2) with 3 beats b (weight 1) with 2 */
    reset(XE_POLICY_LEAST_CONN, XE_ON_DOWN_ERROR, 2, 1, 1);
    state[0].sessions = 3;
    state[1].sessions = 2;
    state[2].sessions = 2;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), 0,
           "least-conn: sessions per weight");
    /* sessions that come and stay spread by the weights */
    reset(XE_POLICY_LEAST_CONN, XE_ON_DOWN_ERROR, 2, 1, 1);
    for (int k = 0; k < 400; k++) {
        size_t i = xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why);
        state[i].sessions++;
        count[i]++;
    }
    ok(count[0] == 200 && count[1] == 100 && count[2] == 100,
       "least-conn: 400 sessions spread 2:1:1 (%u %u %u)", count[0], count[1], count[2]);
}

static void
test_round_robin(void)
{
    const char *why;
    char seq[16];
    unsigned count[N] = {0};

    reset(XE_POLICY_ROUND_ROBIN, XE_ON_DOWN_ERROR, 1, 1, 1);
    for (int k = 0; k < 6; k++)
        seq[k] = (char)('a' + xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why));
    seq[6] = '\0';
    is_str(seq, "abcabc", "round-robin: in turn");
    reset(XE_POLICY_ROUND_ROBIN, XE_ON_DOWN_ERROR, 1, 1, 1);
    state[1].up = false;
    for (int k = 0; k < 4; k++)
        seq[k] = (char)('a' + xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why));
    seq[4] = '\0';
    is_str(seq, "acac", "round-robin: a down server is skipped");
    /* smooth weighted: 5:1:1 interleaves */
    reset(XE_POLICY_ROUND_ROBIN, XE_ON_DOWN_ERROR, 5, 1, 1);
    for (int k = 0; k < 7; k++)
        seq[k] = (char)('a' + xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why));
    seq[7] = '\0';
    is_str(seq, "aabacaa", "round-robin: weighted 5:1:1, interleaved");
    reset(XE_POLICY_ROUND_ROBIN, XE_ON_DOWN_ERROR, 3, 2, 1);
    for (int k = 0; k < 600; k++)
        count[xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why)]++;
    ok(count[0] == 300 && count[1] == 200 && count[2] == 100,
       "round-robin: 600 sessions spread 3:2:1 (%u %u %u)", count[0], count[1], count[2]);
    for (int i = 0; i < N; i++)
        state[i].draining = true;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), XE_POOL_NONE,
           "round-robin: every server draining: none");
}

static void
test_health(void)
{
    struct xe_server_state s = {.up = true};

    is_int(xe_pool_health(&s, false, false, 3, 2), 0, "health: one failure: still up");
    is_int(xe_pool_health(&s, false, true, 3, 2), 0,
           "health: two (one passive): still up");
    is_int(xe_pool_health(&s, true, true, 3, 2), 0, "health: a passive success resets");
    is_int(xe_pool_health(&s, false, false, 3, 2), 0, "health: failure 1");
    is_int(xe_pool_health(&s, false, false, 3, 2), 0, "health: failure 2");
    is_int(xe_pool_health(&s, false, false, 3, 2), -1, "health: failure 3 (fall): down");
    ok(!s.up, "... down");
    is_int(xe_pool_health(&s, false, false, 3, 2), 0, "health: down stays down");
    is_int(xe_pool_health(&s, true, true, 3, 2), 0,
           "health: a passive success does not bring it back");
    is_int(xe_pool_health(&s, true, false, 3, 2), 0, "health: success 1");
    is_int(xe_pool_health(&s, false, false, 3, 2), 0, "health: a failure between");
    is_int(xe_pool_health(&s, true, false, 3, 2), 0, "health: success 1 again");
    is_int(xe_pool_health(&s, true, false, 3, 2), 1, "health: success 2 (rise): up");
    ok(s.up, "... up");
    is_int(xe_pool_health(&s, false, false, 1, 1), -1, "health: fall 1: down at once");
    is_int(xe_pool_health(&s, true, false, 1, 1), 1, "health: rise 1: up at once");
}

static void
test_names(void)
{
    is_str(xe_pool_policy_name(XE_POLICY_STICKY), "sticky", "names: sticky");
    is_str(xe_pool_policy_name(XE_POLICY_LEAST_CONN), "least-conn", "names: least-conn");
    is_str(xe_pool_policy_name(XE_POLICY_ROUND_ROBIN), "round-robin",
           "names: round-robin");
    is_str(xe_server_kind_name(XE_KIND_EJABBERD), "ejabberd", "names: ejabberd");
    is_str(xe_server_kind_name(XE_KIND_GENERIC), "generic", "names: generic");
}

static void
test_probe(void)
{
    static const char features[] =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' from='d' id='1' "
        "version='1.0'><stream:features><starttls "
        "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>";
    struct xe_health_probe *p = xe_health_probe_new("example.test");
    const char *why, *req;
    size_t len, k;
    int r = 0;

    req = xe_health_probe_request(p, &len);
    ok(len > 0 && strstr(req, "to='example.test'") != NULL,
       "probe: a stream header to the domain");
    for (k = 0; k < sizeof(features) - 1 && r == 0; k++)
        r = xe_health_probe_feed(p, features + k, 1, &why);
    is_int(r, 1, "probe: the features, byte by byte: healthy");
    is_int(k, sizeof(features) - 1, "... at their last byte");
    xe_health_probe_free(&p);
    p = xe_health_probe_new("example.test");
    r = xe_health_probe_feed(p, features,
                             (size_t)(strstr(features, "<stream:f") - features), &why);
    is_int(r, 0, "probe: a header alone: more needed");
    {
        static const char err[] =
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error>";
        r = xe_health_probe_feed(p, err, sizeof(err) - 1, &why);
    }
    is_int(r, -1, "probe: a stream error: not healthy");
    is_str(why, "stream error: host-unknown", "... saying which");
    xe_health_probe_free(&p);
    p = xe_health_probe_new("example.test");
    is_int(xe_health_probe_feed(p, "HTTP/1.1 400 Bad Request\r\n", 26, &why), -1,
           "probe: not XML: not healthy");
    xe_health_probe_free(&p);
    ok(p == NULL, "probe: freed");
}

/* Slow start: a server back up gets a tenth of its weight, growing to all
 * of it over the slow start time (least-conn, round-robin; sticky keeps its
 * hash choice). */
static void
test_slow_start(void)
{
    const char *why;
    unsigned got[N] = {0};

    state[0].up_since_ms = 0;
    xe_pool_slow_start(&state[0], 5000, 10000);
    is_int(state[0].weight_permille, 0, "slow start: a server that never went down: all");
    state[0].up_since_ms = 1000;
    xe_pool_slow_start(&state[0], 1000, 10000);
    is_int(state[0].weight_permille, 100, "slow start: just back up: a tenth");
    xe_pool_slow_start(&state[0], 6000, 10000);
    is_int(state[0].weight_permille, 550, "slow start: half way: 55%%");
    xe_pool_slow_start(&state[0], 11000, 10000);
    is_int(state[0].weight_permille, 0, "slow start: over: all");
    xe_pool_slow_start(&state[0], 2000, 0);
    is_int(state[0].weight_permille, 0, "slow start off (0): all");

    reset(XE_POLICY_ROUND_ROBIN, XE_ON_DOWN_ERROR, 1, 1, 1);
    state[2].up = false;
    state[1].weight_permille = 100;
    for (int k = 0; k < 1100; k++) {
        size_t i = xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why);
        if (i < N)
            got[i]++;
    }
    ok(got[0] == 1000 && got[1] == 100,
       "round-robin: a server at a tenth of its weight gets a tenth as many (%u, %u)",
       got[0], got[1]);

    reset(XE_POLICY_LEAST_CONN, XE_ON_DOWN_ERROR, 1, 1, 1);
    state[2].up = false;
    state[0].sessions = 9;
    state[1].sessions = 1;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), 1,
           "least-conn: 1 session against 9: the emptier server");
    state[1].weight_permille = 100;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why), 0,
           "... but not while it is at a tenth of its weight (1 / 0.1 > 9 / 1)");

    reset(XE_POLICY_STICKY, XE_ON_DOWN_ERROR, 1, 1, 1);
    for (int i = 0; i < N; i++)
        state[i].weight_permille = 100;
    is_int(xe_pool_choose(&pool, st, "u@d", XE_POOL_NONE, &why),
           xe_pool_pick(&pool, "u@d"),
           "sticky: slow start does not move a user off its server");
}

int
main(void)
{
    test_sticky();
    test_least_conn();
    test_round_robin();
    test_health();
    test_slow_start();
    test_names();
    test_probe();
    return tap_done();
}
