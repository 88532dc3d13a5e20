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

int
main(void)
{
    test_outcomes();
    test_timer();
    test_starttls();
    return tap_done();
}
