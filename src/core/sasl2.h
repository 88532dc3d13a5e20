/* xedge: SASL2 (XEP-0388, the Extensible SASL Profile) on the client side
 * of the stream, sans-IO.
 *
 * The <authentication xmlns='urn:xmpp:sasl:2'> stream feature (mechanisms,
 * <inline>: Bind2, stream management resumption, FAST); the client's
 * <authenticate>, <response> and <abort>, taken as element trees from the
 * XML stream parser (xmlstream.h) and checked against the named limits; our
 * <challenge>, <success> and <failure>. xe_sasl2_element drives one SASL
 * exchange through the Cyrus adapter (sasl.h), or through a caller's
 * mechanism (FAST's HT-*, fast.h) for the names it claims; the login state
 * machine builds <success> once the backend has bound (bind2.h). */
#ifndef XE_SASL2_H
#define XE_SASL2_H

#include <stdbool.h>
#include <stddef.h>

#include "bind2.h"
#include "sasl.h"
#include "util.h"
#include "xelimits.h"
#include "xmlstream.h"

#define XE_NS_SASL2 "urn:xmpp:sasl:2"
#define XE_NS_FAST "urn:xmpp:fast:0"
#define XE_NS_SASL_CB "urn:xmpp:sasl-cb:0"

/* What this stream can do inline (what every server of the pool can). */
struct xe_sasl2_inline {
    bool bind2;
    struct xe_bind2_caps bind2_caps;
    bool sm_resume;          /* <resume/> inside <authenticate> */
    char *const *fast_mechs; /* HT-* names offered for FAST; n 0: no FAST */
    size_t n_fast_mechs;
};

/* Append the <authentication/> feature: MECHS, then <inline>. CB_TYPES (n
 * 0: none) adds XEP-0440's <sasl-channel-binding/> after it; pass none when
 * the stream's features already carry that element for <mechanisms/> (it is
 * shared by both profiles). -1: no memory. */
int xe_sasl2_features(struct xe_buf *out, const char *const *mechs, size_t n_mechs,
                      const char *const *cb_types, size_t n_cb,
                      const struct xe_sasl2_inline *inl);

/* A parsed <authenticate>. Strings are copies; IR is decoded (malloc'd). */
struct xe_sasl2_auth {
    char mech[XE_SASL2_MAX_MECH + 1];
    char *ir; /* NULL: no <initial-response>; else IR_LEN bytes (may be 0) */
    size_t ir_len;
    bool has_ua;
    char ua_id[XE_SASL2_MAX_UA_ID + 1]; /* "" when the user agent has none */
    char software[XE_SASL2_MAX_UA_TEXT + 1];
    char device[XE_SASL2_MAX_UA_TEXT + 1];
    struct xe_bind2_req bind; /* .present: a Bind2 request */
    bool request_token;       /* <request-token xmlns='urn:xmpp:fast:0'/> */
    char token_mech[XE_SASL2_MAX_MECH + 1];
    bool fast;            /* <fast xmlns='urn:xmpp:fast:0'/> (a token login) */
    bool fast_invalidate; /* its invalidate='true' */
    bool has_count;
    unsigned long long fast_count; /* its count= */
    bool resume;                   /* <resume xmlns='urn:xmpp:sm:3'/> */
    char resume_prev[256];         /* its previd */
    unsigned long long resume_h;   /* its h */
};

/* Parse AUTHENTICATE. max_sasl: the largest base64 message (limits.
 * max_sasl_bytes). 0; or -1 with *cond_r and *why_r (a static text). */
int xe_sasl2_parse_authenticate(const struct xe_xml_elem *e, size_t max_sasl,
                                struct xe_sasl2_auth *a, enum xe_sasl_cond *cond_r,
                                const char **why_r);
void xe_sasl2_auth_clear(struct xe_sasl2_auth *a);

/* Decode the base64 text of E (<response>, <initial-response>,
 * <additional-data>): "" and "=" are empty. 0, or -1 (bad or too large). */
int xe_sasl2_decode(const struct xe_xml_elem *e, size_t max_sasl, char **buf_r,
                    size_t *len_r);

/* Builders. DATA (LEN bytes) is base64-encoded; NULL: no data element. */
int xe_sasl2_challenge(struct xe_buf *out, const char *data, size_t len);
/* <success>: ADDITIONAL (SCRAM's server signature; NULL: none), AUTHZID
 * (the full JID once bound, else the bare JID), EXTRA (raw XML: <bound/>,
 * <token/>, <resumed/>; NULL: none). */
int xe_sasl2_success(struct xe_buf *out, const char *additional, size_t add_len,
                     const char *authzid, const char *extra, size_t extra_len);
/* <failure> with the RFC 6120 condition and an optional TEXT. */
int xe_sasl2_failure(struct xe_buf *out, enum xe_sasl_cond cond, const char *text);
/* <continue>: ADDITIONAL data and the TASKS the client must run. */
int xe_sasl2_continue(struct xe_buf *out, const char *additional, size_t add_len,
                      const char *const *tasks, size_t n_tasks, const char *text);

/* A mechanism of xedge's own (FAST's HT-*), claimed by name. step: the
 * client's message (first: the initial response); returns XE_SASL_OK (with
 * *out: the success's additional data), XE_SASL_CONTINUE (*out: a
 * challenge) or XE_SASL_FAIL (*cond_r). JID_R: the authenticated bare JID
 * (after a failure: the claimed one, for the log; "" when unknown). */
struct xe_sasl2_mech {
    bool (*claims)(void *ctx, const char *mech);
    int (*step)(void *ctx, const struct xe_sasl2_auth *a, const char *in, size_t inlen,
                const char **out, size_t *outlen, char *jid_r, size_t jidmax,
                enum xe_sasl_cond *cond_r, const char **detail_r);
    void *ctx;
};

/* xe_sasl2_element results */
#define XE_SASL2_CHALLENGE 1     /* a <challenge/> was appended */
#define XE_SASL2_SUCCESS 0       /* authenticated: bind, then xe_sasl2_build_success */
#define XE_SASL2_FAILURE (-1)    /* a <failure/> was appended; another attempt may come */
#define XE_SASL2_UNEXPECTED (-2) /* not SASL2, or out of order: a stream error */

struct xe_sasl2;

/* SASL: the stream's Cyrus adapter (used for every attempt, not owned). OWN:
 * the caller's mechanisms (NULL: none). */
struct xe_sasl2 *xe_sasl2_new(struct xe_sasl *sasl, const struct xe_sasl2_mech *own,
                              size_t max_sasl);
void xe_sasl2_free(struct xe_sasl2 **s2);
/* One element of the client's, while authenticating. Appends our answer to
 * OUT; *cond_r tells a failure's condition, *detail_r a text for the log. */
int xe_sasl2_element(struct xe_sasl2 *s2, const struct xe_xml_elem *e, struct xe_buf *out,
                     enum xe_sasl_cond *cond_r, const char **detail_r);
/* The <authenticate> of the current (or last) attempt. */
const struct xe_sasl2_auth *xe_sasl2_request(const struct xe_sasl2 *s2);
/* After XE_SASL2_SUCCESS: the authenticated bare JID and the mechanism. */
const char *xe_sasl2_jid(const struct xe_sasl2 *s2);
const char *xe_sasl2_mech(const struct xe_sasl2 *s2);
/* After XE_SASL2_SUCCESS: the <success> (the additional data kept from the
 * exchange), AUTHZID and EXTRA as for xe_sasl2_success. */
int xe_sasl2_build_success(struct xe_sasl2 *s2, struct xe_buf *out, const char *authzid,
                           const char *extra, size_t extra_len);

#endif
