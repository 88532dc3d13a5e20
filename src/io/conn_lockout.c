/* xedge: brute-force protection glue (lockout.h): the guard the c2s
 * core asks, and the held answer of a failed login.
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

static void
guard_failed(void *ctx, const char *account, bool counted)
{
    struct conn *c = ctx;
    uint64_t now = uv_now(c->w->loop);

    /* attempts pipelined in one read add up */
    c->hold_ms +=
        counted ? xe_lockout_failure(c->srv->lockout, xe_srv_addr_key(c), account, now)
                : xe_lockout_delay(c->srv->lockout, xe_srv_addr_key(c), account, now);
}

static void
guard_succeeded(void *ctx, const char *account)
{
    struct conn *c = ctx;

    xe_lockout_success(c->srv->lockout, account, uv_now(c->w->loop));
}

const struct xe_c2s_guard xe_srv_lockout_guard = {
    .refuse = guard_refuse,
    .failed = guard_failed,
    .succeeded = guard_succeeded,
};

/* A failed attempt's answer (in the c2s output) waits hold_ms: nothing is
 * read from the client meanwhile, so its next attempt waits too, while every
 * other connection goes on. The timer is the connection's own; the auth
 * deadline still bounds the whole. */
void
xe_srv_hold_answer(struct conn *c, enum xe_c2s_action then, const char *rest, size_t n)
{
    uint64_t now = uv_now(c->w->loop), ms = c->hold_ms;

    c->hold_ms = 0;
    if (c->auth_deadline && now + ms > c->auth_deadline)
        ms = c->auth_deadline > now ? c->auth_deadline - now : 0;
    if (then != XE_C2S_CLOSE && xe_buf_append(&c->held_in, rest, n) < 0) {
        xe_srv_fail(c, XE_SF_HELD_OVERFLOW);
        return;
    }
    c->held = true;
    c->held_action = then;
    xe_srv_pause_reading(c, true);
    uv_timer_start(&c->timer, xe_srv_on_timer, ms, 0);
    xe_debug("event=auth-delay peer=%s delay_ms=%llu", c->peer, (unsigned long long)ms);
}

void
xe_srv_release_answer(struct conn *c)
{
    struct xe_buf rest = c->held_in;

    xe_buf_init(&c->held_in, 2 * XE_READ_CHUNK);
    c->held = false;
    xe_srv_flush_c2s(c);
    switch (c->held_action) {
    case XE_C2S_CLOSE:
        xe_srv_close_conn(c);
        goto out;
    case XE_C2S_AUTHENTICATED:
        uv_timer_stop(&c->timer);
        xe_srv_start_backend(c);
        break;
    default:
        xe_srv_arm_preauth_timer(c);
        break;
    }
    if (rest.len > 0)
        xe_srv_client_plain(c, (const char *)rest.data, rest.len);
    if (c->tls && !c->held)
        xe_srv_read_tls_plain(c);
    if (!c->held && !c->closed)
        xe_srv_resume_reading(c, true);
out:
    xe_buf_free(&rest);
}
