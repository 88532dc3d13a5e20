/* Unit tests for federation's pair routing (src/core/s2s_pairs.c): streams
 * by id, OUT and LINK streams by pair, BACKENDs on an OUT; a closing stream
 * hidden; many streams (the tables grow) found the same. */
#include <stdio.h>

#include "s2s_pairs.h"
#include "tap.h"

/* stand-ins for the glue's streams */
static int s[10];

static void
count(void *v, void *ctx)
{
    (void)v;
    (*(int *)ctx)++;
}

static void
test_ids(void)
{
    struct xe_s2s_pairs *p = xe_s2s_pairs_new();

    is_int(xe_s2s_pairs_add(p, 1, XE_S2S_IN, &s[1]), 0, "a stream is added");
    is_int(xe_s2s_pairs_add(p, 1, XE_S2S_IN, &s[2]), -1, "its id is not taken twice");
    is_int(xe_s2s_pairs_add(p, 0, XE_S2S_IN, &s[2]), -1, "id 0 is refused");
    is_int(xe_s2s_pairs_add(p, 2, XE_S2S_IN, NULL), -1, "no pointer is refused");
    ok(xe_s2s_pairs_get(p, 1) == &s[1], "found by id");
    ok(xe_s2s_pairs_get(p, 7) == NULL, "an unknown id: nothing");
    xe_s2s_pairs_hide(p, 1);
    ok(xe_s2s_pairs_get(p, 1) == NULL, "a hidden (closing) stream is not found by id");
    is_int(xe_s2s_pairs_count(p), 1, "but still counted until removed");
    xe_s2s_pairs_remove(p, 1);
    is_int(xe_s2s_pairs_count(p), 0, "removed");
    xe_s2s_pairs_remove(p, 1); /* twice: nothing */
    is_int(xe_s2s_pairs_add(p, 1, XE_S2S_VERIFY, &s[3]), 0, "the id can come back");
    xe_s2s_pairs_free(&p);
    ok(p == NULL, "freed");
}

static void
test_pairs(void)
{
    struct xe_s2s_pairs *p = xe_s2s_pairs_new();

    xe_s2s_pairs_add(p, 1, XE_S2S_OUT, &s[1]);
    xe_s2s_pairs_add(p, 2, XE_S2S_LINK, &s[2]);
    xe_s2s_pairs_add(p, 3, XE_S2S_OUT, &s[3]);
    xe_s2s_pairs_add(p, 4, XE_S2S_IN, &s[4]);
    is_int(xe_s2s_pairs_bind(p, 1, "b.test", "a.test"), 0, "an OUT is bound to its pair");
    is_int(xe_s2s_pairs_bind(p, 2, "b.test", "a.test"), 0,
           "a LINK of the same pair too (another kind)");
    is_int(xe_s2s_pairs_bind(p, 3, "b.test", "a.test"), -1,
           "a second OUT for the same pair is refused");
    is_int(xe_s2s_pairs_bind(p, 4, "b.test", "a.test"), -1, "an IN has no pair");
    is_int(xe_s2s_pairs_bind(p, 1, "b.test", "c.test"), -1, "a stream has one pair");
    ok(xe_s2s_pairs_find(p, XE_S2S_OUT, "b.test", "a.test") == &s[1], "OUT by pair");
    ok(xe_s2s_pairs_find(p, XE_S2S_LINK, "b.test", "a.test") == &s[2], "LINK by pair");
    ok(xe_s2s_pairs_find(p, XE_S2S_OUT, "a.test", "b.test") == NULL,
       "the pair has a direction");
    ok(xe_s2s_pairs_find(p, XE_S2S_OUT, "b.tes", "ta.test") == NULL,
       "local and remote are not run together");
    xe_s2s_pairs_hide(p, 1);
    ok(xe_s2s_pairs_find(p, XE_S2S_OUT, "b.test", "a.test") == NULL,
       "a closing OUT is not found by its pair");
    is_int(xe_s2s_pairs_bind(p, 3, "b.test", "a.test"), 0, "and a new one takes it");
    ok(xe_s2s_pairs_find(p, XE_S2S_OUT, "b.test", "a.test") == &s[3], "the new one");
    xe_s2s_pairs_remove(p, 1);
    ok(xe_s2s_pairs_find(p, XE_S2S_OUT, "b.test", "a.test") == &s[3],
       "removing the old one leaves the new one");
    is_int(xe_s2s_pairs_bind(p, 1, "x", "y"), -1, "a removed stream binds nothing");
    xe_s2s_pairs_free(&p);
}

static void
test_backends(void)
{
    struct xe_s2s_pairs *p = xe_s2s_pairs_new();
    int n = 0;

    xe_s2s_pairs_add(p, 1, XE_S2S_OUT, &s[1]);
    xe_s2s_pairs_add(p, 2, XE_S2S_BACKEND, &s[2]);
    xe_s2s_pairs_add(p, 3, XE_S2S_BACKEND, &s[3]);
    xe_s2s_pairs_add(p, 4, XE_S2S_BACKEND, &s[4]);
    xe_s2s_pairs_add(p, 5, XE_S2S_OUT, &s[5]);
    xe_s2s_pairs_add(p, 6, XE_S2S_IN, &s[6]);
    is_int(xe_s2s_pairs_attach(p, 2, 1), 0, "a BACKEND waits on an OUT");
    is_int(xe_s2s_pairs_attach(p, 3, 1), 0, "a second one on the same OUT");
    is_int(xe_s2s_pairs_attach(p, 6, 1), -1, "an IN is not a BACKEND");
    is_int(xe_s2s_pairs_attach(p, 4, 6), -1, "an IN is not an OUT");
    ok(xe_s2s_pairs_out(p, 2) == &s[1], "the BACKEND's OUT");
    ok(xe_s2s_pairs_out(p, 4) == NULL, "a BACKEND without an OUT");
    is_int(xe_s2s_pairs_n_backends(p, 1), 2, "the OUT has two");
    ok(xe_s2s_pairs_backend(p, 1, 0) == &s[2] && xe_s2s_pairs_backend(p, 1, 1) == &s[3] &&
           xe_s2s_pairs_backend(p, 1, 2) == NULL,
       "in the order they came");
    xe_s2s_pairs_hide(p, 1);
    is_int(xe_s2s_pairs_n_backends(p, 1), 2, "a closing OUT keeps its BACKENDs");
    ok(xe_s2s_pairs_out(p, 2) == &s[1], "which still know it");
    is_int(xe_s2s_pairs_move(p, 1, 5), 0, "a new OUT takes them over");
    is_int(xe_s2s_pairs_n_backends(p, 1), 0, "the old one has none");
    ok(xe_s2s_pairs_out(p, 3) == &s[5] && xe_s2s_pairs_backend(p, 5, 0) == &s[2],
       "the new one has them, in order");
    is_int(xe_s2s_pairs_attach(p, 2, 0), 0, "a BACKEND leaves its OUT");
    ok(xe_s2s_pairs_out(p, 2) == NULL && xe_s2s_pairs_n_backends(p, 5) == 1, "it left");
    xe_s2s_pairs_attach(p, 4, 5);
    ok(xe_s2s_pairs_detach_first(p, 5) == &s[3], "the first one detached");
    ok(xe_s2s_pairs_detach_first(p, 5) == &s[4], "then the next");
    ok(xe_s2s_pairs_detach_first(p, 5) == NULL, "then none");
    xe_s2s_pairs_attach(p, 2, 5);
    xe_s2s_pairs_attach(p, 3, 5);
    xe_s2s_pairs_remove(p, 2);
    is_int(xe_s2s_pairs_n_backends(p, 5), 1, "a removed BACKEND leaves its OUT");
    xe_s2s_pairs_remove(p, 5);
    ok(xe_s2s_pairs_out(p, 3) == NULL, "a removed OUT leaves its BACKENDs without one");
    xe_s2s_pairs_each(p, XE_S2S_BACKEND, count, &n);
    is_int(n, 2, "every BACKEND left, by kind");
    n = 0;
    xe_s2s_pairs_each(p, XE_S2S_OUT, count, &n);
    is_int(n, 1, "the hidden OUT is listed until it is removed");
    xe_s2s_pairs_free(&p);
}

/* Many streams: the tables grow and every lookup still finds its stream. */
static void
test_many(void)
{
    enum { N = 5000 };
    static int v[N + 1];
    struct xe_s2s_pairs *p = xe_s2s_pairs_new();
    char l[32], r[32];
    int bad = 0, n = 0;

    for (uint64_t i = 1; i <= N; i++) {
        snprintf(l, sizeof(l), "l%llu.test", (unsigned long long)(i % 7));
        snprintf(r, sizeof(r), "r%llu.test", (unsigned long long)i);
        bad += xe_s2s_pairs_add(p, i * 1000003, i % 2 ? XE_S2S_OUT : XE_S2S_LINK,
                                &v[i]) != 0;
        bad += xe_s2s_pairs_bind(p, i * 1000003, l, r) != 0;
    }
    is_int(bad, 0, "%d streams added and bound", N);
    for (uint64_t i = 1; i <= N; i++) {
        snprintf(l, sizeof(l), "l%llu.test", (unsigned long long)(i % 7));
        snprintf(r, sizeof(r), "r%llu.test", (unsigned long long)i);
        bad += xe_s2s_pairs_get(p, i * 1000003) != &v[i];
        bad += xe_s2s_pairs_find(p, i % 2 ? XE_S2S_OUT : XE_S2S_LINK, l, r) != &v[i];
        bad += xe_s2s_pairs_find(p, i % 2 ? XE_S2S_LINK : XE_S2S_OUT, l, r) != NULL;
    }
    is_int(bad, 0, "each found by id and by pair, and not under the other kind");
    for (uint64_t i = 1; i <= N; i += 2)
        xe_s2s_pairs_remove(p, i * 1000003);
    is_int(xe_s2s_pairs_count(p), N / 2, "half removed");
    xe_s2s_pairs_each(p, XE_S2S_LINK, count, &n);
    is_int(n, N / 2, "the others listed by kind");
    for (uint64_t i = 1; i <= N; i++)
        bad += (xe_s2s_pairs_get(p, i * 1000003) != NULL) != (i % 2 == 0);
    is_int(bad, 0, "the removed ones are gone, the others found");
    xe_s2s_pairs_free(&p);
}

int
main(void)
{
    test_ids();
    test_pairs();
    test_backends();
    test_many();
    return tap_done();
}
