/* xedge: brute-force protection glue (lockout.h): the guard the login
 * asks (the held answer of a failed login is the login machine's, session.h).
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- brute-force protection (lockout.h) ---------------------------------- */

const char *
xe_srv_addr_key(const struct conn *c)
{
    return c->addr_key[0] ? c->addr_key : NULL;
}

static bool
guard_refuse(void *ctx, const char *account)
{
    struct conn *c = ctx;
    uint64_t left = 0;
    bool r = xe_lockout_check(c->srv->lockout, xe_srv_addr_key(c), account,
                              uv_now(c->w->loop), &left);

    if (r)
        xe_debug("event=lockout-refused peer=%s account=%s remaining_ms=%llu", c->peer,
                 *account ? account : "-", (unsigned long long)left);
    return r;
}

/* A failed attempt: the delay its answer owes (the login machine holds it,
 * session.h rule R2; attempts pipelined in one read add up there). */
static uint64_t
guard_failed(void *ctx, const char *account, bool counted, uint64_t now)
{
    struct conn *c = ctx;

    return counted ? xe_lockout_failure(c->srv->lockout, xe_srv_addr_key(c), account, now)
                   : xe_lockout_delay(c->srv->lockout, xe_srv_addr_key(c), account, now);
}

static void
guard_succeeded(void *ctx, const char *account, uint64_t now)
{
    struct conn *c = ctx;

    xe_lockout_success(c->srv->lockout, account, now);
}

const struct xe_sess_guard xe_srv_lockout_guard = {
    .refuse = guard_refuse,
    .failed = guard_failed,
    .succeeded = guard_succeeded,
};
