/* xedge: what session.c and session_bind2.c share, private to them (the
 * split keeps each file under issue 14's size bound): the login machine's
 * state, struct xe_sess, and the steps one file takes in the other. Not for
 * other files: the public interface is session.h. */
#ifndef XE_SESSION_IMPL_H
#define XE_SESSION_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "backend.h"
#include "bind2.h"
#include "fast.h"
#include "sasl2.h"
#include "util.h"
#include "xmlstream.h"

struct xe_sess {
    const struct xe_conf *conf;
    const struct xe_sess_guard *guard;
    void *guard_ctx;
    enum xe_sess_state st;
    struct xe_c2s *c2s;
    struct xe_backend_hs *bhs;
    struct xe_buf to_client, to_backend;
    struct xe_buf client_pending;  /* backend bytes after its features (R7) */
    struct xe_buf backend_pending; /* client bytes after its restart (R7) */
    bool client_restarted, backend_ready, backend_failed, iq_auth, connected;
    bool sasl2; /* a SASL2 login: answered with <success> (sess_answer) */
    /* Bind2: the backend script (bind2.h) over a parser of the backend's
     * stream, between the backend's login and the answer */
    struct xe_xmlstream *b2_xs;
    struct xe_bind2_script *b2_script;
    bool b2_running;
    int b2_result;
    /* inline resumption (XEP-0198 in SASL2): the backend's answer */
    bool rs_tried, rs_wait;
    int rs_result;        /* 1 <resumed/>, -1 <failed/> */
    struct xe_buf rs_xml; /* for <success>: <resumed/> rebuilt, or <failed/> */
    /* FAST (fast.h): the HT-* plug, verified asynchronously by the glue */
    struct xe_fast *fast;
    struct xe_sasl2_mech fast_plug;
    const char *fast_mechs[4];
    bool fast_wait; /* the glue verifies s->freq; the client is not read */
    bool reg_wait;  /* the glue runs a registration's job; the client is not read */
    struct xe_fast_req freq;
    /* a token for the client (<request-token/>), issued by the glue */
    bool token_wanted, token_pending, revoke_wanted;
    struct xe_buf token_xml;
    enum xe_sess_fail fail;
    /* R2: the held answer */
    bool held;
    enum xe_c2s_action held_action;
    struct xe_buf held_in;
    struct xe_buf zrest; /* R6: compressed bytes re-parsed behind <compress/> */
    uint64_t hold_ms, auth_deadline;
    /* the backend's server and the retries */
    const struct xe_pool_conf *pool;
    size_t server;
    unsigned retried;
    uint64_t tried;
    bool no_ahead; /* a login sent ahead was refused: wait for the features */
    enum xe_bhs_login ahead_hint; /* xe_sess_set_login_ahead */
    enum xe_bhs_login offered;    /* xe_sess_login_offered, untold */
    bool offered_told;            /* (for the current server) */
    const char *backend_error;
    bool backend_error_counts;
    const char *bind_refused; /* R4: the condition */
    char backend_why[160];
    /* the timer wanted */
    int timer_op;
    uint64_t timer_ms;
};

/* session.c: the login machine */
/* The c2s core's output to the client's bytes (not while an answer is held). */
void xe_sess_take_c2s(struct xe_sess *s);
/* The timer wanted: in MS, or none. */
void xe_sess_arm(struct xe_sess *s, uint64_t ms);
void xe_sess_stop_timer(struct xe_sess *s);
/* The stream error of F to the client, then close. */
enum xe_sess_do xe_sess_fail_now(struct xe_sess *s, enum xe_sess_fail f);
/* The join (R3, R4): both sides are in; answer the client. */
enum xe_sess_do xe_sess_answer(struct xe_sess *s);
/* The backend's connection or handshake failed (WHY): retry or fail. */
enum xe_sess_do xe_sess_backend_failed(struct xe_sess *s, const char *why);

/* session_bind2.c: SASL2's Bind2 and inline resumption at the backend, and
 * the SASL2 answer */
/* Does this login bind (or resume) inline? */
bool xe_sess_b2_wanted(struct xe_sess *s);
/* The backend is logged in: start the script; REST: what the backend sent
 * after its features. */
enum xe_sess_do xe_sess_b2_begin(struct xe_sess *s, const char *rest, size_t n);
/* The backend's bytes while the script runs. */
enum xe_sess_do xe_sess_b2_feed(struct xe_sess *s, const char *data, size_t n);
/* The SASL2 answer: <success>, the backend's FEATURES less what was done
 * inline, what the backend sent meanwhile; then the splice. */
enum xe_sess_do xe_sess_sasl2_answer(struct xe_sess *s, const unsigned char *features,
                                     size_t flen);

#endif
