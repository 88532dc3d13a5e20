/* xedge: the c2s login's decisions, sans-IO (see session.h). */
#include "session.h"

#include <string.h>

static const struct xe_sess_outcome outcomes[XE_SF_COUNT] = {
    [XE_SF_NONE] = {"remote-connection-failed", XE_TEXT_UNAVAILABLE,
                    "backend-unavailable", false},
    [XE_SF_BACKEND_UNAVAILABLE] = {"remote-connection-failed", XE_TEXT_UNAVAILABLE,
                                   "backend-unavailable", false},
    [XE_SF_USER_SERVER_DOWN] = {"remote-connection-failed", XE_TEXT_USER_SERVER,
                                "backend-unavailable", false},
    [XE_SF_BACKEND_LOST] = {"remote-connection-failed",
                            "the connection to the service was lost", "backend-lost",
                            true},
    [XE_SF_RESTART_TIMEOUT] = {"connection-timeout",
                               "the stream was not restarted in time", "timeout", false},
    [XE_SF_AUTH_TIMEOUT] = {"connection-timeout", "authentication took too long",
                            "timeout", false},
    [XE_SF_IDLE_TIMEOUT] = {"connection-timeout", "idle before authentication", "timeout",
                            false},
    [XE_SF_PENDING_OVERFLOW] = {"policy-violation",
                                "too much data before the session started", "limit",
                                false},
    [XE_SF_HELD_OVERFLOW] = {"policy-violation", "too much data during authentication",
                             "limit", false},
    [XE_SF_STANZA_TOO_LARGE] = {"policy-violation", "stanza too large", "limit", false},
    [XE_SF_REGISTER_INTERNAL] = {"internal-server-error", NULL, "register-error", false},
    [XE_SF_COMPRESS_CORRUPT] = {"undefined-condition", "the compressed data is corrupt",
                                "compression-error", false},
    [XE_SF_SHUTDOWN] = {"system-shutdown", "the server is shutting down", "shutdown",
                        false},
};

const struct xe_sess_outcome *
xe_sess_outcome(enum xe_sess_fail f)
{
    if ((unsigned)f >= XE_SF_COUNT)
        f = XE_SF_BACKEND_UNAVAILABLE;
    return &outcomes[f];
}

enum xe_sess_timer_do
xe_sess_timer(const struct xe_sess_timer_in *in, enum xe_sess_fail backend_fail,
              enum xe_sess_fail *fail)
{
    *fail = XE_SF_NONE;
    switch (in->phase) {
    case XE_SP_CLOSING:
        return XE_ST_FINISH_CLOSE;
    case XE_SP_BACKEND:
        if (in->backend_failed) {
            *fail = backend_fail != XE_SF_NONE ? backend_fail : XE_SF_BACKEND_UNAVAILABLE;
            return XE_ST_FAIL;
        }
        if (in->backend_ready) {
            *fail = XE_SF_RESTART_TIMEOUT;
            return XE_ST_FAIL;
        }
        return XE_ST_BACKEND_TIMEOUT;
    case XE_SP_NEGOTIATING:
        if (in->held)
            return XE_ST_RELEASE_HELD;
        if (in->tls_handshaking)
            return XE_ST_TLS_TIMEOUT;
        *fail = in->now >= in->auth_deadline ? XE_SF_AUTH_TIMEOUT : XE_SF_IDLE_TIMEOUT;
        return XE_ST_FAIL;
    case XE_SP_SPLICED:
        return in->end_pending ? XE_ST_BOUNDARY_TIMEOUT : XE_ST_NOTHING;
    }
    return XE_ST_NOTHING;
}

bool
xe_sess_starttls_injection(const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr(" \t\r\n", data[i]) == NULL) /* (a NUL counts as white space) */
            return true;
    return false;
}

bool
xe_sess_may_retry(const struct xe_pool_conf *pool, size_t server, unsigned retried,
                  bool in_handshake)
{
    if (pool == NULL || server == XE_SESS_NO_SERVER || !in_handshake ||
        retried >= pool->retries || pool->n_servers < 2)
        return false;
    if (pool->policy == XE_POLICY_STICKY && pool->on_down != XE_ON_DOWN_NEXT)
        return false;
    return server < 64; /* (the tried servers are a 64-bit mask) */
}

enum xe_sess_fail_when
xe_sess_fail_when(bool negotiated_by_us, bool client_restarted, bool already_failed)
{
    return negotiated_by_us && !client_restarted && !already_failed ? XE_SW_AT_RESTART
                                                                    : XE_SW_NOW;
}

enum xe_sess_join
xe_sess_join(bool in_backend_phase, bool backend_ready, bool client_restarted,
             bool iq_auth)
{
    if (!backend_ready || !client_restarted || !in_backend_phase)
        return XE_SJ_WAIT;
    return iq_auth ? XE_SJ_IQ_AUTH_SPLICE : XE_SJ_RESTART;
}
