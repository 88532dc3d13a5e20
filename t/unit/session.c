/* Unit tests: the c2s login's typed failures and their one mapping to what
 * the client sees, the login timer's decision, and ordering rule 1 (bytes
 * after <starttls/>) (src/core/session.h). No sockets. */
#include <string.h>

#include "session.h"
#include "tap.h"

static void
test_outcomes(void)
{
    const struct xe_sess_outcome *o;

    /* every failure is a defined XMPP outcome with a log event */
    for (int f = 0; f < XE_SF_COUNT; f++) {
        o = xe_sess_outcome((enum xe_sess_fail)f);
        ok(o && o->condition && o->event, "failure %d has a condition and an event", f);
    }
    o = xe_sess_outcome(XE_SF_BACKEND_UNAVAILABLE);
    is_str(o->condition, "remote-connection-failed", "unavailable: condition");
    is_str(o->text, "the service is temporarily unavailable, try again later",
           "unavailable: text");
    ok(!o->backend_lost, "unavailable: not a lost backend");
    o = xe_sess_outcome(XE_SF_USER_SERVER_DOWN);
    is_str(o->condition, "remote-connection-failed", "user's server: condition");
    is_str(o->text, "the server that holds this account is unavailable, try again later",
           "user's server: text");
    o = xe_sess_outcome(XE_SF_BACKEND_LOST);
    is_str(o->condition, "remote-connection-failed", "lost: condition");
    is_str(o->text, "the connection to the service was lost", "lost: text");
    is_str(o->event, "backend-lost", "lost: event");
    ok(o->backend_lost, "lost: counted as a lost backend");
    is_str(xe_sess_outcome(XE_SF_RESTART_TIMEOUT)->condition, "connection-timeout",
           "restart timeout: condition");
    is_str(xe_sess_outcome(XE_SF_RESTART_TIMEOUT)->text,
           "the stream was not restarted in time", "restart timeout: text");
    is_str(xe_sess_outcome(XE_SF_AUTH_TIMEOUT)->text, "authentication took too long",
           "auth timeout: text");
    is_str(xe_sess_outcome(XE_SF_IDLE_TIMEOUT)->text, "idle before authentication",
           "idle timeout: text");
    is_str(xe_sess_outcome(XE_SF_PENDING_OVERFLOW)->condition, "policy-violation",
           "pending overflow: condition");
    is_str(xe_sess_outcome(XE_SF_PENDING_OVERFLOW)->text,
           "too much data before the session started", "pending overflow: text");
    is_str(xe_sess_outcome(XE_SF_HELD_OVERFLOW)->text,
           "too much data during authentication", "held overflow: text");
    is_str(xe_sess_outcome(XE_SF_STANZA_TOO_LARGE)->text, "stanza too large",
           "stanza too large: text");
    is_str(xe_sess_outcome(XE_SF_REGISTER_INTERNAL)->condition, "internal-server-error",
           "register: condition");
    ok(xe_sess_outcome(XE_SF_REGISTER_INTERNAL)->text == NULL, "register: no text");
    is_str(xe_sess_outcome(XE_SF_COMPRESS_CORRUPT)->condition, "undefined-condition",
           "compression: condition");
    is_str(xe_sess_outcome(XE_SF_SHUTDOWN)->condition, "system-shutdown",
           "shutdown: condition");
    is_str(xe_sess_outcome(XE_SF_SHUTDOWN)->text, "the server is shutting down",
           "shutdown: text");
    /* an untyped or out-of-range value still ends as the usual failure */
    ok(xe_sess_outcome(XE_SF_NONE)->text ==
           xe_sess_outcome(XE_SF_BACKEND_UNAVAILABLE)->text,
       "none: the usual failure");
    ok(xe_sess_outcome((enum xe_sess_fail)999) ==
           xe_sess_outcome(XE_SF_BACKEND_UNAVAILABLE),
       "out of range: the usual failure");
}

static enum xe_sess_timer_do
timer(struct xe_sess_timer_in in, enum xe_sess_fail backend_fail, enum xe_sess_fail *fail)
{
    *fail = (enum xe_sess_fail)77;
    return xe_sess_timer(&in, backend_fail, fail);
}

static void
test_timer(void)
{
    enum xe_sess_fail f;

    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_CLOSING}, XE_SF_NONE, &f),
           XE_ST_FINISH_CLOSE, "closing: the grace is over");
    is_int(f, XE_SF_NONE, "closing: no failure");

    /* the backend is being set up */
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND}, XE_SF_NONE, &f),
           XE_ST_BACKEND_TIMEOUT, "backend: no answer in time (the retry decides)");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND, .backend_ready = true},
                 XE_SF_NONE, &f),
           XE_ST_FAIL, "backend ready, no restart: fail");
    is_int(f, XE_SF_RESTART_TIMEOUT, "backend ready, no restart: restart timeout");
    is_int(
        timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND, .backend_failed = true},
              XE_SF_NONE, &f),
        XE_ST_FAIL, "backend failed, no restart: fail");
    is_int(f, XE_SF_BACKEND_UNAVAILABLE, "backend failed: unavailable");
    timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND,
                                    .backend_failed = true,
                                    .backend_ready = true},
          XE_SF_USER_SERVER_DOWN, &f);
    is_int(f, XE_SF_USER_SERVER_DOWN, "backend failed: the recorded failure wins");

    /* negotiating */
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                           .held = true,
                                           .tls_handshaking = true},
                 XE_SF_NONE, &f),
           XE_ST_RELEASE_HELD, "held: the answer goes out (rule: a held answer resumes)");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                           .tls_handshaking = true,
                                           .now = 5,
                                           .auth_deadline = 1},
                 XE_SF_NONE, &f),
           XE_ST_TLS_TIMEOUT, "TLS handshake: closed without a stream error");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                           .now = 10,
                                           .auth_deadline = 10},
                 XE_SF_NONE, &f),
           XE_ST_FAIL, "deadline reached: fail");
    is_int(f, XE_SF_AUTH_TIMEOUT, "deadline reached: authentication took too long");
    timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                    .now = 9,
                                    .auth_deadline = 10},
          XE_SF_NONE, &f);
    is_int(f, XE_SF_IDLE_TIMEOUT, "before the deadline: idle");

    /* spliced */
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_SPLICED}, XE_SF_NONE, &f),
           XE_ST_NOTHING, "spliced: nothing");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_SPLICED, .end_pending = true},
                 XE_SF_NONE, &f),
           XE_ST_BOUNDARY_TIMEOUT, "spliced, error waiting: close");
}

static void
test_starttls(void)
{
    ok(!xe_sess_starttls_injection("", 0), "nothing after <starttls/>");
    ok(!xe_sess_starttls_injection(" \r\n\t", 4), "white space only");
    ok(xe_sess_starttls_injection("\n<auth/>", 8), "an element after <starttls/>");
    ok(xe_sess_starttls_injection("x", 1), "one byte");
    /* byte by byte: each byte is judged alone */
    {
        const char *s = "  <iq type='get'/>";
        bool any = false;
        for (size_t i = 0; i < strlen(s); i++)
            any |= xe_sess_starttls_injection(s + i, 1);
        ok(any, "byte by byte: the injection is seen");
    }
}

static void
test_retry(void)
{
    struct xe_server_conf servers[3] = {{.name = "a"}, {.name = "b"}, {.name = "c"}};
    struct xe_pool_conf pool = {.name = "p",
                                .servers = servers,
                                .n_servers = 3,
                                .policy = XE_POLICY_LEAST_CONN,
                                .retries = 2};

    ok(xe_sess_may_retry(&pool, 0, 0, true), "least-conn, first failure: retry");
    ok(xe_sess_may_retry(&pool, 2, 1, true), "second failure: retry");
    ok(!xe_sess_may_retry(&pool, 1, 2, true), "retries used up: no retry");
    ok(!xe_sess_may_retry(&pool, 0, 0, false),
       "past the handshake: the backend keeps it");
    ok(!xe_sess_may_retry(&pool, XE_SESS_NO_SERVER, 0, true),
       "no server chosen: no retry");
    ok(!xe_sess_may_retry(NULL, 0, 0, true), "no pool: no retry");
    ok(!xe_sess_may_retry(&pool, 64, 0, true), "beyond the tried mask: no retry");
    pool.policy = XE_POLICY_STICKY;
    pool.on_down = XE_ON_DOWN_ERROR;
    ok(!xe_sess_may_retry(&pool, 0, 0, true),
       "sticky, on_down error: the user's server only");
    pool.on_down = XE_ON_DOWN_NEXT;
    ok(xe_sess_may_retry(&pool, 0, 0, true), "sticky, on_down next: retry");
    pool.n_servers = 1;
    ok(!xe_sess_may_retry(&pool, 0, 0, true), "one server: no retry");
    pool.n_servers = 3;
    pool.retries = 0;
    ok(!xe_sess_may_retry(&pool, 0, 0, true), "retries = 0: no retry");
}

static void
test_fail_when(void)
{
    /* between <success/> and the client's new header: the error answers the header */
    is_int(xe_sess_fail_when(true, false, false), XE_SW_AT_RESTART,
           "before the restart: at the restart");
    is_int(xe_sess_fail_when(true, true, false), XE_SW_NOW, "after the restart: now");
    is_int(xe_sess_fail_when(true, false, true), XE_SW_NOW, "a second failure: now");
    is_int(xe_sess_fail_when(false, false, false), XE_SW_NOW, "no c2s core: now");
}

/* Rules 3 and 4: the client is answered only once both sides are in, in
 * either order of arrival. */
static void
test_join(void)
{
    /* rule 3: the backend's features arrive before the client's restart is
     * answered: a restart alone waits, whatever the order */
    is_int(xe_sess_join(true, false, true, false), XE_SJ_WAIT,
           "rule 3: restart first, backend not ready: wait");
    is_int(xe_sess_join(true, true, false, false), XE_SJ_WAIT,
           "backend ready first, no restart: wait");
    is_int(xe_sess_join(true, true, true, false), XE_SJ_RESTART,
           "both: the restart is answered with the features");
    /* rule 4: iq-auth binds (backend ready = bound) before the splice */
    is_int(xe_sess_join(true, false, true, true), XE_SJ_WAIT,
           "rule 4: iq-auth, resource not bound yet: wait");
    is_int(xe_sess_join(true, true, true, true), XE_SJ_IQ_AUTH_SPLICE,
           "rule 4: iq-auth, bound: answer the iq, then splice");
    is_int(xe_sess_join(false, true, true, false), XE_SJ_WAIT,
           "no longer setting up the backend: nothing");
}

int
main(void)
{
    test_outcomes();
    test_timer();
    test_starttls();
    test_retry();
    test_fail_when();
    test_join();
    return tap_done();
}
