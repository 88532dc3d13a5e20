/* xedge: the c2s login's decisions, sans-IO (the first part of the login
 * state machine of issue 14: its typed failures and the timer's decision;
 * the rest of the login is still in the glue, src/io/conn*.c).
 *
 * Every way a login (or a spliced session) can fail that the client sees is
 * one value of enum xe_sess_fail, and xe_sess_outcome() is the one place that
 * says what the client gets (the stream error's condition and text), the
 * event name of the log line and whether the failure is counted as a lost
 * backend. The glue no longer writes conditions and texts at call sites. */
#ifndef XE_SESSION_H
#define XE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define XE_TEXT_UNAVAILABLE "the service is temporarily unavailable, try again later"
#define XE_TEXT_USER_SERVER                                                              \
    "the server that holds this account is unavailable, try again later"

enum xe_sess_fail {
    XE_SF_NONE = 0,
    /* no backend can take the session (down, refused, handshake failed,
     * retries used up): <remote-connection-failed/> */
    XE_SF_BACKEND_UNAVAILABLE,
    /* the same, under a sticky pool without on_down = next: the user's own
     * server is down */
    XE_SF_USER_SERVER_DOWN,
    /* the backend of a spliced session went away without closing its stream */
    XE_SF_BACKEND_LOST,
    /* the backend was ready, the client did not restart its stream in time */
    XE_SF_RESTART_TIMEOUT,
    /* the client's authentication passed its deadline */
    XE_SF_AUTH_TIMEOUT,
    /* the client was idle before authenticating */
    XE_SF_IDLE_TIMEOUT,
    /* the client sent more than the bound while the backend was set up */
    XE_SF_PENDING_OVERFLOW,
    /* the client sent more than the bound while an answer was held */
    XE_SF_HELD_OVERFLOW,
    /* a spliced client stanza over max_stanza_postauth */
    XE_SF_STANZA_TOO_LARGE,
    /* registration after authentication could not start */
    XE_SF_REGISTER_INTERNAL,
    /* the client's compressed data does not inflate (before the compressed
     * stream was answered: a stream error with a header) */
    XE_SF_COMPRESS_CORRUPT,
    /* xedge is shutting down */
    XE_SF_SHUTDOWN,
    XE_SF_COUNT
};

struct xe_sess_outcome {
    const char *condition; /* the stream error's condition (RFC 6120 4.9.3) */
    const char *text;      /* its text, or NULL */
    const char *event;     /* the name of the failure in log lines */
    bool backend_lost;     /* also counted in xedge_backend_lost_total */
};

/* The outcome of F (XE_SF_NONE and out of range: XE_SF_BACKEND_UNAVAILABLE's,
 * so that a failure nobody typed still ends as a defined XMPP outcome). */
const struct xe_sess_outcome *xe_sess_outcome(enum xe_sess_fail f);

/* ---- the login timer ------------------------------------------------------
 * One timer per connection; what its expiry means depends on where the login
 * is. The glue fills in where it is, and does what comes back. */

enum xe_sess_phase {
    XE_SP_NEGOTIATING, /* the client negotiates with us (TLS, SASL, ...) */
    XE_SP_BACKEND,     /* authenticated: the backend is being set up */
    XE_SP_SPLICED,     /* the session runs */
    XE_SP_CLOSING      /* the close grace */
};

struct xe_sess_timer_in {
    enum xe_sess_phase phase;
    bool held;            /* an answer is held (failed-authentication delay) */
    bool tls_handshaking; /* the client's TLS handshake is under way */
    bool backend_failed;  /* the backend failed; the error waits for the restart */
    bool backend_ready;   /* the backend's handshake is done */
    bool end_pending;     /* spliced: our stream error waits for a stanza boundary */
    uint64_t now, auth_deadline;
};

enum xe_sess_timer_do {
    XE_ST_NOTHING,
    XE_ST_FINISH_CLOSE,    /* close now (the grace is over) */
    XE_ST_FAIL,            /* the stream error of *fail, then close */
    XE_ST_BACKEND_TIMEOUT, /* the backend did not answer: fail it (retry or not) */
    XE_ST_RELEASE_HELD,    /* send the held answer, resume reading */
    XE_ST_TLS_TIMEOUT,     /* the TLS handshake took too long: close, no error */
    XE_ST_BOUNDARY_TIMEOUT /* the backend's stanza did not end: close */
};

/* What the expiry of the login timer means. *FAIL is set with XE_ST_FAIL
 * (BACKEND_FAIL: the failure the backend's error recorded, e.g.
 * XE_SF_USER_SERVER_DOWN; XE_SF_NONE for the usual one). */
enum xe_sess_timer_do xe_sess_timer(const struct xe_sess_timer_in *in,
                                    enum xe_sess_fail backend_fail,
                                    enum xe_sess_fail *fail);

/* Ordering rule 1: whatever a client pipelined after <starttls/> is dropped
 * (command injection, CVE-2011-0411 style). True when the N bytes at DATA are
 * more than white space, i.e. the drop is worth a log line. */
bool xe_sess_starttls_injection(const char *data, size_t n);

/* ---- the backend side ------------------------------------------------------ */

/* May this login go to another server of its pool after its server failed?
 * IN_HANDSHAKE: the backend connection is set up and its handshake neither
 * done nor failed (once the backend took the session, it stays). SERVER: the
 * failed server's index in POOL (XE_SESS_NO_SERVER: none was chosen).
 * RETRIED: the retries so far. Not for a sticky user whose server holds its
 * data (on_down = error), nor past pools[].retries, nor with one server. */
#define XE_SESS_NO_SERVER ((size_t)-1)
bool xe_sess_may_retry(const struct xe_pool_conf *pool, size_t server, unsigned retried,
                       bool in_handshake);

/* The backend failed for good: when does the client hear it? Between
 * <success/> and its new stream header the error must answer that header
 * (on the stream the client reads), so it waits for the restart, bounded by
 * the timer; else it goes now. */
enum xe_sess_fail_when { XE_SW_NOW, XE_SW_AT_RESTART };
enum xe_sess_fail_when xe_sess_fail_when(bool negotiated_by_us, bool client_restarted,
                                         bool already_failed);

/* Where the two sides meet (ordering rules 3 and 4): the backend's features
 * (or its bind result, for iq-auth) and the client's restart (or its iq). The
 * client is answered only once both are in: its restart with the backend's
 * features, its iq-auth with the result of the bind the backend did. */
enum xe_sess_join {
    XE_SJ_WAIT,           /* one side is not there yet */
    XE_SJ_IQ_AUTH_SPLICE, /* answer the client's iq-auth, then splice */
    XE_SJ_RESTART         /* answer the restart with the features; then, if
                             that answer offered compression, the client's next
                             element decides (rule 6), else splice */
};
enum xe_sess_join xe_sess_join(bool in_backend_phase, bool backend_ready,
                               bool client_restarted, bool iq_auth);

#endif
