/* Unit tests of the daemon's FAST token store (src/io/tokens_io.h) on a real
 * libuv loop and a real LMDB user store: an issue in the thread pool and its
 * callback on the loop, the lookup on the loop, a verification (and its
 * rotation of the next token), the bound on the requests under way, a
 * cancelled request, the revocations, the several-node hooks (a write
 * refused while the database is down, a verification still served, each
 * write told to the replica) and the metric. TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "metrics.h"
#include "tokens.h"
#include "tokens_io.h"
#include "userstore.h"
#include "util.h"
#include "tap.h"

static struct xe_userstore *store;
static uv_loop_t loop;

struct got {
    int calls;
    int rc;
    char token[XE_TOKEN_MAX + 1];
    size_t n;
    unsigned char responder[32];
    const char *detail;
};

static void
on_done(void *ctx, const struct xe_tokio_result *res)
{
    struct got *g = ctx;

    g->calls++;
    g->rc = res->rc;
    g->n = res->n;
    g->detail = res->detail;
    if (res->token != NULL)
        snprintf(g->token, sizeof(g->token), "%s", res->token);
    memcpy(g->responder, res->responder, 32);
}

/* the several-node hooks: the database up or down, the writes told */
static bool db_down;
static char told[16][600];
static int n_told;
static unsigned long loop_thread;

static int
before(void *ctx, const char *jid, char **error_r)
{
    (void)ctx;
    if (!db_down)
        return XE_US_OK;
    *error_r = xe_asprintf("the user database is unreachable: %s cannot be changed", jid);
    return XE_US_UNAVAILABLE;
}

static void
after(void *ctx, char kind, const char *key)
{
    (void)ctx;
    if (n_told < 16)
        snprintf(told[n_told++], sizeof(told[0]), "%c %s", kind, key);
}

static const struct xe_userstore_hooks hooks = {before, after};

static void
add_user(const char *jid, const char *pw)
{
    struct xe_user u;
    char *err = NULL;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "%s", jid);
    ok(xe_user_set_password(&u, pw, strlen(pw), 4096) == XE_US_OK &&
           xe_userstore_put(store, &u, false, &err) == XE_US_OK,
       "store %s", jid);
    free(err);
}

static void
proof(const char *tok, unsigned char out[32])
{
    xe_ht_sha256(tok, strlen(tok), "Initiator", NULL, 0, out);
}

int
main(void)
{
    char *dir = tap_mkdtemp("tokio-test"), *err = NULL;
    struct xe_tokio *tio;
    struct xe_token_rec rec;
    struct got g1 = {0}, g2 = {0}, g3 = {0}, g4 = {0};
    unsigned char p[32];
    char first[XE_TOKEN_MAX + 1];
    struct xe_buf b;

    (void)loop_thread;
    uv_loop_init(&loop);
    ok(xe_userstore_open(dir, false, 16, &store, &err) == XE_US_OK, "userstore open");
    add_user("alice@example.test", "alice-pw");
    tio = xe_tokio_new(&loop, store, 2, &err);
    ok(tio != NULL, "token store open %s", err ? err : "");
    if (tio == NULL)
        return tap_done();

    /* issue: done in the pool, the callback on the loop */
    ok(xe_tokio_issue(tio, "alice@example.test", "ua-1", "HT-SHA-256-NONE", 3600, on_done,
                      &g1) != NULL,
       "issue queued");
    is_int(xe_tokio_queued(tio), 1, "one request under way");
    is_int(g1.calls, 0, "no callback before the loop runs");
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.calls == 1 && g1.rc == XE_US_OK && strncmp(g1.token, "xe1-", 4) == 0,
       "issue: the callback once, with a token (rc %d)", g1.rc);
    is_int(xe_tokio_queued(tio), 0, "none under way after");
    snprintf(first, sizeof(first), "%s", g1.token);

    /* the lookup, on the loop */
    ok(xe_tokio_lookup(tio, "alice@example.test", "ua-1", &rec, &err) == XE_US_OK &&
           rec.cur.present && strcmp(rec.cur.token, first) == 0 && !rec.next.present,
       "lookup: the record, the token in the current slot");
    ok(xe_tokio_lookup(tio, "alice@example.test", "ua-2", &rec, &err) == XE_US_NOTFOUND,
       "lookup of another user agent: none");

    /* the bound: two under way at most */
    memset(&g1, 0, sizeof(g1));
    ok(xe_tokio_issue(tio, "alice@example.test", "ua-1", "HT-SHA-256-NONE", 3600, on_done,
                      &g1) != NULL &&
           xe_tokio_issue(tio, "alice@example.test", "ua-3", "HT-SHA-256-NONE", 3600,
                          on_done, &g2) != NULL,
       "two requests queued");
    ok(xe_tokio_issue(tio, "alice@example.test", "ua-4", "HT-SHA-256-NONE", 3600, on_done,
                      &g3) == NULL,
       "a third is refused at once (queue-full)");
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.calls == 1 && g2.calls == 1 && g3.calls == 0, "the two done, the third never");
    ok(xe_tokio_lookup(tio, "alice@example.test", "ua-1", &rec, &err) == XE_US_OK &&
           rec.next.present && strcmp(rec.next.token, g1.token) == 0,
       "a second issue while one is current: the next slot");

    /* verify with the next token: the rotation */
    proof(g1.token, p);
    memset(&g4, 0, sizeof(g4));
    ok(xe_tokio_verify(tio, "alice@example.test", "ua-1", "HT-SHA-256-NONE", NULL, 0, p,
                       32, true, 1, on_done, &g4) != NULL,
       "verify queued");
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g4.calls == 1 && g4.rc == XE_SASL_OK, "verify with the next token: ok (%s)",
       g4.detail ? g4.detail : "");
    ok(xe_tokio_lookup(tio, "alice@example.test", "ua-1", &rec, &err) == XE_US_OK &&
           strcmp(rec.cur.token, g1.token) == 0 && !rec.next.present &&
           rec.cur.has_count && rec.cur.count == 1,
       "rotated: the next token is current, its count kept");
    proof(first, p);
    memset(&g4, 0, sizeof(g4));
    xe_tokio_verify(tio, "alice@example.test", "ua-1", "HT-SHA-256-NONE", NULL, 0, p, 32,
                    true, 2, on_done, &g4);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g4.calls == 1 && g4.rc == XE_SASL_FAIL,
       "the old token after the rotation: refused");

    /* a cancelled request: done, no callback */
    memset(&g3, 0, sizeof(g3));
    xe_tokio_cancel(xe_tokio_issue(tio, "alice@example.test", "ua-5", "HT-SHA-256-NONE",
                                   3600, on_done, &g3));
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g3.calls == 0 &&
           xe_tokio_lookup(tio, "alice@example.test", "ua-5", &rec, &err) == XE_US_OK,
       "cancelled: no callback, the write made");

    /* several nodes: the hooks */
    xe_userstore_set_hooks(store, &hooks, NULL);
    db_down = true;
    memset(&g1, 0, sizeof(g1));
    xe_tokio_issue(tio, "alice@example.test", "ua-6", "HT-SHA-256-NONE", 3600, on_done,
                   &g1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.calls == 1 && g1.rc == XE_US_UNAVAILABLE && g1.token[0] == '\0',
       "database down: issue refused, no token (rc %d)", g1.rc);
    ok(xe_tokio_lookup(tio, "alice@example.test", "ua-6", &rec, &err) == XE_US_NOTFOUND,
       "database down: nothing written");
    memset(&g1, 0, sizeof(g1));
    xe_tokio_revoke(tio, "alice@example.test", NULL, on_done, &g1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.calls == 1 && g1.rc == XE_US_UNAVAILABLE,
       "database down: a revocation refused too (it would not reach the other nodes)");
    proof(g2.token, p);
    memset(&g4, 0, sizeof(g4));
    xe_tokio_verify(tio, "alice@example.test", "ua-3", "HT-SHA-256-NONE", NULL, 0, p, 32,
                    false, 0, on_done, &g4);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g4.calls == 1 && g4.rc == XE_SASL_OK,
       "database down: a token login still served from the replica");
    ok(n_told == 0,
       "a verification without a count or a rotation writes nothing: nothing told");
    memset(&g4, 0, sizeof(g4));
    xe_tokio_verify(tio, "alice@example.test", "ua-3", "HT-SHA-256-NONE", NULL, 0, p, 32,
                    true, 1000000, on_done, &g4);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g4.calls == 1 && g4.rc == XE_SASL_OK, "database down: a login with a count too");
    ok(n_told == 1 && strcmp(told[0], "k alice@example.test/ua-3") == 0,
       "the verification's write (its count) told to the replica (%s)",
       n_told ? told[0] : "none");
    db_down = false;
    n_told = 0;
    memset(&g1, 0, sizeof(g1));
    xe_tokio_issue(tio, "alice@example.test", "ua-7", "HT-SHA-256-NONE", 3600, on_done,
                   &g1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.rc == XE_US_OK && n_told == 1 &&
           strcmp(told[0], "k alice@example.test/ua-7") == 0,
       "database up: an issue, told as 'k JID/UA'");
    memset(&g1, 0, sizeof(g1));
    xe_tokio_revoke(tio, "alice@example.test", "ua-7", on_done, &g1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.rc == XE_US_OK && n_told == 2 &&
           strcmp(told[1], "k alice@example.test/ua-7") == 0,
       "a revocation of one client, told");

    /* every token of the user */
    memset(&g1, 0, sizeof(g1));
    xe_tokio_revoke(tio, "alice@example.test", NULL, on_done, &g1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.calls == 1 && g1.rc == XE_US_OK && g1.n == 3,
       "revoke-user: the three records (%zu)", g1.n);
    ok(n_told == 3 && strcmp(told[2], "K alice@example.test") == 0,
       "told as 'K JID' (every token in the database, also those not here)");
    ok(xe_tokio_lookup(tio, "alice@example.test", "ua-1", &rec, &err) == XE_US_NOTFOUND,
       "none left");
    memset(&g1, 0, sizeof(g1));
    xe_tokio_issue(tio, "nobody@example.test", "ua-1", "HT-SHA-256-NONE", 3600, on_done,
                   &g1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(g1.rc == XE_US_NOTFOUND, "issue for no such user: refused");

    xe_buf_init(&b, 1 << 20);
    xe_metrics_render(&b);
    xe_buf_append(&b, "", 1);
    ok(strstr((char *)b.data,
              "xedge_token_writes_total{op=\"issue\",result=\"queue-full\"} 1") != NULL,
       "metric: the queue-full issue");
    ok(strstr((char *)b.data,
              "xedge_token_writes_total{op=\"issue\",result=\"database-down\"} 1") !=
           NULL,
       "metric: the issue refused while the database was down");
    ok(strstr((char *)b.data,
              "xedge_token_writes_total{op=\"revoke-user\",result=\"ok\"} 1") != NULL,
       "metric: revoke-user ok");
    xe_buf_free(&b);

    xe_userstore_set_hooks(store, NULL, NULL);
    xe_tokio_free(&tio);
    uv_loop_close(&loop);
    xe_userstore_close(&store);
    free(err);
    rm_rf(dir);
    return tap_done();
}
