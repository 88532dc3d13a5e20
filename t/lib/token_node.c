/* token_node: a node of several without its listeners, for the tests of
 * the FAST token store (t/e2e-pg-tokens.t): the daemon's own modules (the
 * replica, pgsync_io.h, and the token store, tokens_io.h) on a libuv loop,
 * with a configuration's database and a replica of its own. Until the
 * login's SASL2/FAST glue, this is how a test makes a node issue and check
 * tokens.
 *
 *   token_node CONF REPLICA_DIR issue JID UA_ID
 *       prints "ISSUED token=... expiry=..." once the token is in the
 *       database, or "REFUSED rc=N error=..." (exit 1)
 *   token_node CONF REPLICA_DIR verify JID UA_ID TOKEN [COUNT]
 *       prints "VERIFY ok" or "VERIFY fail detail=..." (exit 1); the
 *       write the verification makes (count, rotation) is sent before it
 *       exits, waiting for the database up to WAIT seconds (env
 *       TOKEN_NODE_WAIT, default 10)
 * Exit 2 on a usage or setup error, 3 on a timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "conf.h"
#include "log.h"
#include "pgsync_io.h"
#include "tokens_io.h"
#include "util.h"

static struct xe_pgsync *ps;
static int done_rc = -1, exit_code = 3;
static uv_timer_t timer;
static uint64_t deadline;

static void
on_result(void *ctx, const struct xe_tokio_result *res)
{
    (void)ctx;
    done_rc = res->rc;
    if (res->op == XE_TOKIO_ISSUE && res->rc == XE_US_OK) {
        printf("ISSUED token=%s expiry=%lld\n", res->token, (long long)res->expiry);
        exit_code = 0;
    } else if (res->op == XE_TOKIO_ISSUE) {
        printf("REFUSED rc=%d error=%s\n", res->rc, res->error ? res->error : "?");
        exit_code = 1;
    } else if (res->rc == XE_SASL_OK) {
        printf("VERIFY ok\n");
        exit_code = 0;
    } else {
        printf("VERIFY fail detail=%s\n", res->detail ? res->detail : "?");
        exit_code = 1;
    }
    fflush(stdout);
}

static void
on_timer(uv_timer_t *t)
{
    if (done_rc != -1 && xe_pgsync_pending(ps) == 0) {
        uv_stop(t->loop);
        return;
    }
    if (uv_now(t->loop) > deadline) {
        fprintf(stderr, "token_node: timeout (pending writes %zu)\n",
                xe_pgsync_pending(ps));
        exit_code = 3;
        uv_stop(t->loop);
    }
}

int
main(int argc, char **argv)
{
    struct xe_conf *conf = NULL;
    struct xe_userstore *store = NULL;
    struct xe_tokio *tio;
    uv_loop_t *loop = uv_default_loop();
    char *err = NULL;
    const char *wait = getenv("TOKEN_NODE_WAIT");
    unsigned char proof[32];

    if (argc < 6 || (strcmp(argv[3], "issue") != 0 && strcmp(argv[3], "verify") != 0) ||
        (strcmp(argv[3], "verify") == 0 && argc < 7)) {
        fprintf(stderr, "usage: token_node CONF REPLICA_DIR issue|verify JID UA [TOKEN "
                        "[COUNT]]\n");
        return 2;
    }
    xe_log_level = XE_LOG_INFO;
    if (xe_conf_load(argv[1], &conf, &err) != 0) {
        fprintf(stderr, "token_node: %s\n", err);
        return 2;
    }
    free(conf->user_store);
    conf->user_store = xe_strdup(argv[2]);
    free(conf->node_name);
    conf->node_name = xe_strdup("token-node");
    if (xe_userstore_open(conf->user_store, false, 64, &store, &err) != XE_US_OK ||
        xe_pgsync_new(loop, conf, store, &ps, &err) < 0 ||
        (tio = xe_tokio_new(loop, store, 0, &err)) == NULL) {
        fprintf(stderr, "token_node: %s\n", err);
        return 2;
    }
    /* the database is asked as the daemon would: once the connection is up
     * (a write is refused while it is down) */
    {
        uint64_t until = uv_now(loop) + 3000; /* the tick wakes the loop every second */
        while (!xe_pgsync_up(ps) && uv_now(loop) < until)
            uv_run(loop, UV_RUN_ONCE);
    }
    if (strcmp(argv[3], "issue") == 0) {
        if (xe_tokio_issue(tio, argv[4], argv[5], "HT-SHA-256-NONE", 3600, on_result,
                           NULL) == NULL)
            return 2;
    } else {
        xe_ht_sha256(argv[6], strlen(argv[6]), "Initiator", NULL, 0, proof);
        if (xe_tokio_verify(tio, argv[4], argv[5], "HT-SHA-256-NONE", NULL, 0, proof, 32,
                            argc > 7, argc > 7 ? strtoull(argv[7], NULL, 10) : 0,
                            on_result, NULL) == NULL)
            return 2;
    }
    deadline = uv_now(loop) + (wait ? strtoull(wait, NULL, 10) : 10) * 1000;
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, on_timer, 20, 20);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&timer, NULL);
    xe_pgsync_stop(ps);
    uv_run(loop, UV_RUN_DEFAULT);
    xe_pgsync_free(&ps);
    xe_tokio_free(&tio);
    xe_userstore_close(&store);
    xe_conf_free(&conf);
    return exit_code;
}
