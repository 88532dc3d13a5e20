/* xedge: the state of a server-to-server stream and the functions the
 * files of the s2s core call in each other; not for other modules (s2s.h
 * is the interface). s2s.c: what every kind shares, the parser's
 * callbacks, the interface; s2s_in.c: IN; s2s_out.c: OUT, VERIFY, LINK
 * and BACKEND. */
#ifndef XE_S2S_IMPL_H
#define XE_S2S_IMPL_H

#include "s2s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dialback.h"
#include "log.h"
#include "metrics.h"
#include "sasl.h"
#include "xmlstream.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XE_NS_SASL_CB "urn:xmpp:sasl-cb:0" /* XEP-0440 */

enum state {
    ST_HEADER,    /* waiting for the peer's stream header */
    ST_NEGOTIATE, /* IN/BACKEND: header answered; OUT/VERIFY/LINK: features next */
    ST_PROCEED,   /* OUT/VERIFY: <starttls/> sent */
    ST_SASL,      /* OUT: <auth mechanism='EXTERNAL'/> sent */
    ST_SECRET,    /* OUT: SASL with the peer's secret under way */
    ST_RESULT,    /* OUT/VERIFY/LINK: db:result or db:verify sent */
    ST_WAIT,      /* BACKEND: waiting for the outbound verdict */
    ST_DONE,      /* OUT/LINK: authenticated; BACKEND: pumped */
    ST_CLOSED,    /* an error or the end was sent */
};

struct pair {
    char *from, *to;
};

struct ev {
    struct ev *next;
    enum xe_s2s_event_type type;
    char *from, *to, *key, *id;
    char *to_jid; /* STANZA: its "to" */
    unsigned char *raw;
    size_t len;
};

struct xe_s2s {
    struct xe_s2s_params p;
    char *from, *to; /* OUT/VERIFY/LINK: ours, as given */
    char *key, *stream_id, *assertion;
    struct xe_xmlstream *xs;
    struct xe_buf out;
    enum state st;
    enum xe_s2s_action action; /* set by a callback that stops the parser */
    bool tls, header_sent, restarted;
    bool in_logged;             /* event=s2s-in was logged */
    bool reset_pending;         /* restart the parser once the callback returned */
    bool resuming;              /* BACKEND: backend_resume's header is parsed */
    bool ext_dropped;           /* OUT: the peer ended the stream during EXTERNAL */
    bool legacy;                /* IN/OUT/VERIFY: the peer's stream has no version
                                   (pre-XMPP-1.0, RFC 6120 4.7.5): dialback only */
    char id[XE_S2S_MAX_ID_BUF]; /* IN/BACKEND: ours; OUT/VERIFY/LINK: theirs */
    char *local, *remote;       /* IN/BACKEND: from the peer's header */
    char **names;               /* what the peer's certificate is valid for */
    size_t n_names;
    struct pair pairs[XE_S2S_MAX_PAIRS];
    size_t n_pairs;
    unsigned n_refused; /* dialback keys refused on this stream */
    unsigned pending;   /* IN: db:result requests not answered yet */
    struct xe_s2s_request req;
    enum xe_s2s_result verdict;
    const char *verdict_cond;
    bool external;
    bool verdict_new;
    /* SASL with the peer's pre-shared secret */
    struct xe_sasl *sasl;               /* IN: the server side, once offered */
    struct xe_sasl_client *sclient;     /* OUT: the client side */
    bool sasl_busy;                     /* IN: an exchange is under way */
    bool sasl_ok;                       /* OUT: it succeeded (restart next) */
    bool client_done;                   /* OUT: the client has nothing more to say */
    bool secret_failed;                 /* OUT: the remote refused our secret */
    unsigned failures;                  /* IN: failed attempts */
    char mech[32];                      /* the SASL mechanism of the secret */
    struct ev *evs, *evs_tail, *ev_cur; /* IN: events for the glue */
    char st_from[XE_S2S_MAX_DOMAIN_BUF], st_to[XE_S2S_MAX_DOMAIN_BUF];

    /* the TLS session's channel bindings (SASL with the secret: -PLUS) */
    struct xe_cbind cb[XE_CB_MAX];
    size_t n_cb;
    char peer_cond[48];                       /* the peer's stream error, if any */
    char peer_text[XE_S2S_MAX_LOG_TEXT + 1];  /* and its text (sanitized) */
    char fail_text[XE_S2S_MAX_LOG_TEXT + 64]; /* OUT/VERIFY: why it failed */
};

/* s2s.c */
int xe_s2s_add_pair(struct xe_s2s *s, const char *from, const char *to);
int xe_s2s_b64_out(const char *data, size_t len, char *out, size_t outmax);
bool xe_s2s_cert_valid_for(const struct xe_s2s *s, const char *d);
void xe_s2s_count_auth(const struct xe_s2s *s, bool in, const char *mech,
                       const char *result);
int xe_s2s_error_stop(struct xe_s2s *s, const char *condition, const char *text);
void xe_s2s_ev_free(struct ev *e);
bool xe_s2s_is_local(const struct xe_s2s *s, const char *d);
const char *xe_s2s_our_domain(const struct xe_s2s *s);
bool xe_s2s_peer_secret(const struct xe_s2s *s, const char *d, struct xe_s2s_secret *sec);
enum xe_s2s_policy xe_s2s_policy_of(const struct xe_s2s *s, const char *d);
void xe_s2s_send_header(struct xe_s2s *s, const char *from, const char *to, bool with_id);
void xe_s2s_set_fail(struct xe_s2s *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int xe_s2s_stop_with(struct xe_s2s *s, enum xe_s2s_action a);
bool xe_s2s_to_known(const struct xe_s2s *s, const char *to);
extern const char *const xe_s2s_kind_names[];

/* s2s_in.c */
int xe_s2s_copy_domain(const char *in, char *out);
int xe_s2s_in_element(struct xe_s2s *s, const struct xe_xml_elem *e,
                      const unsigned char *raw, size_t len);
int xe_s2s_in_header(struct xe_s2s *s, const struct xe_xml_elem *h,
                     const char *default_ns);
int xe_s2s_peer_stream_error(struct xe_s2s *s, const struct xe_xml_elem *e);
void xe_s2s_result_error(struct xe_s2s *s, const char *from, const char *to,
                         const char *type, const char *cond);
void xe_s2s_result_error_text(struct xe_s2s *s, const char *from, const char *to,
                              const char *type, const char *cond, const char *text);
bool xe_s2s_version_1(const struct xe_xml_elem *h);

/* s2s_out.c */
int xe_s2s_backend_element(struct xe_s2s *s, const struct xe_xml_elem *e);
int xe_s2s_backend_header(struct xe_s2s *s, const struct xe_xml_elem *h,
                          const char *default_ns);
int xe_s2s_out_element(struct xe_s2s *s, const struct xe_xml_elem *e);
int xe_s2s_out_header(struct xe_s2s *s, const struct xe_xml_elem *h,
                      const char *default_ns);

#endif
