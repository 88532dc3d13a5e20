/* xedge: server-to-server streams (sans-IO). doc/federation.md.
 *
 * Plaintext XML in (TLS is removed by the glue), bytes out, and one action
 * per call telling the glue what to do next. Five kinds of stream:
 *
 *   XE_S2S_IN       a remote server's stream to our "s2s" listener: STARTTLS,
 *                   SASL EXTERNAL or dialback per (peer, local) pair, db:verify
 *                   answered from our XEP-0185 keys, then every stanza checked
 *                   against the authenticated pairs and handed out as it came;
 *   XE_S2S_OUT      our stream to a remote server for (local, remote): STARTTLS,
 *                   EXTERNAL when offered and allowed, else db:result, verdict;
 *   XE_S2S_VERIFY   a verification stream to a domain's authoritative server:
 *                   STARTTLS when offered, db:verify, verdict;
 *   XE_S2S_BACKEND  a backend's outgoing stream to our "s2s_backend" listener:
 *                   we offer dialback, its db:result asks for an outbound
 *                   stream, we answer with the verdict, then its bytes are
 *                   pumped;
 *   XE_S2S_LINK     our link to a backend's s2s port for one (peer, local)
 *                   pair: db:result carrying the identity assertion, verdict,
 *                   then the pair's stanzas are written to it. */
#ifndef XE_S2S_H
#define XE_S2S_H

#include <stddef.h>
#include <stdbool.h>

#include "cbind.h"
#include "util.h"
#include "xelimits.h"

#define XE_NS_SERVER "jabber:server"
#define XE_NS_DIALBACK "jabber:server:dialback"
#define XE_NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"

enum xe_s2s_kind { XE_S2S_IN, XE_S2S_OUT, XE_S2S_VERIFY, XE_S2S_BACKEND, XE_S2S_LINK };

enum xe_s2s_action {
    XE_S2S_CONTINUE, /* all input consumed; send the output */
    XE_S2S_STARTTLS, /* IN: <proceed/> queued: send it, then TLS (server side);
                        OUT/VERIFY: <proceed/> received: TLS (client side).
                        The rest of the input is dropped */
    XE_S2S_PAIR_UP,  /* IN: a pair authenticated by SASL (EXTERNAL or the
                        peer's secret; xe_s2s_request names it, xe_s2s_mech
                        says how): open its backend link */
    XE_S2S_OPEN,     /* BACKEND: its db:result (xe_s2s_request: from = local,
                        to = remote): open or reuse the outbound stream, then
                        xe_s2s_backend_verdict(); the rest of the input waits */
    XE_S2S_VERDICT,  /* OUT/VERIFY/LINK: the answer arrived (xe_s2s_verdict) */
    XE_S2S_CLOSE,    /* an error or the end was queued: send the output and close */
};

enum xe_s2s_policy {
    XE_S2S_POLICY_EXTERNAL,
    XE_S2S_POLICY_DIALBACK,
    XE_S2S_POLICY_REFUSE,
    XE_S2S_POLICY_SECRET /* SASL with the peer's pre-shared secret only */
};

/* A listed peer's pre-shared secret for server-to-server SASL and the
 * mechanisms for it, in order of preference (valid while the stream is). */
struct xe_s2s_secret {
    const unsigned char *secret;
    size_t len;
    char *const *mechs;
    size_t n_mechs;
};

/* The verdict of an authentication: valid, invalid, or error with a
 * condition (remote-server-not-found, remote-server-timeout, item-not-found,
 * ...). */
enum xe_s2s_result { XE_S2S_VALID, XE_S2S_INVALID, XE_S2S_ERROR };

struct xe_s2s_params {
    enum xe_s2s_kind kind;
    const char *peer;  /* the remote address, for the log */
    bool tls;          /* TLS from the start (Direct TLS) */
    bool require_tls;  /* IN: STARTTLS before authentication; OUT: STARTTLS
                          must be offered */
    bool tls_possible; /* OUT/VERIFY: STARTTLS when offered */
    /* IN/BACKEND: is this a local domain? */
    bool (*is_local)(void *ctx, const char *domain);
    /* IN: the policy for a remote domain */
    enum xe_s2s_policy (*policy)(void *ctx, const char *domain);
    /* IN/OUT: the pre-shared secret of a remote domain (true), or false.
     * NULL: no secrets. */
    bool (*peer_secret)(void *ctx, const char *domain, struct xe_s2s_secret *out);
    unsigned max_auth_attempts; /* IN: failed SASL attempts before the stream
                                   ends (0: XE_DEF_MAX_AUTH_ATTEMPTS) */
    void *ctx;
    const unsigned char *secret; /* the dialback secret (IN, OUT) */
    size_t secret_len;
    size_t max_stanza_preauth, max_stanza; /* bytes of one element */
    unsigned max_depth_preauth, max_attrs_preauth;
    /* OUT/VERIFY/LINK: the stream's domains: from = ours (LINK: the peer's),
     * to = theirs (LINK: the local domain) */
    const char *from, *to;
    /* VERIFY: what to verify: the key and the id of the stream it came on */
    const char *key, *stream_id;
    /* LINK: the identity assertion to send as the db:result text */
    const char *assertion;
    /* OUT: no SASL EXTERNAL, dialback (or the secret) only: a retry after
     * the remote dropped the stream during EXTERNAL */
    bool no_external;
};

/* What a db:result asked for, or which pair came up (IN, BACKEND). */
struct xe_s2s_request {
    char from[XE_S2S_MAX_DOMAIN_BUF];
    char to[XE_S2S_MAX_DOMAIN_BUF];
    char key[XE_S2S_MAX_KEY_BUF];
    char stream_id[XE_S2S_MAX_ID_BUF]; /* IN: the id of our stream the key came on */
};

struct xe_s2s;

struct xe_s2s *xe_s2s_new(const struct xe_s2s_params *p);
void xe_s2s_free(struct xe_s2s **s);

/* Feed plaintext. *consumed_r: bytes of data used; the glue calls again with
 * the rest after acting on the returned action. */
enum xe_s2s_action xe_s2s_feed(struct xe_s2s *s, const void *data, size_t len,
                               size_t *consumed_r);
/* Bytes to send; the glue empties it. OUT/VERIFY/LINK queue their header at
 * creation. */
struct xe_buf *xe_s2s_output(struct xe_s2s *s);

/* TLS is up (after STARTTLS or Direct TLS). IN: names: the domains the
 * peer's certificate is valid for (verified against the trust anchors), for
 * SASL EXTERNAL; OUT: names: the remote's (EXTERNAL towards it is used when
 * its certificate is valid for `to`; we present ours). */
void xe_s2s_tls_up(struct xe_s2s *s, const char *const *names, size_t n);
/* Before xe_s2s_tls_up: the TLS session's channel bindings (cbind.h; the
 * session must outlive the core's use of them). SASL with a peer's secret
 * then offers, and uses towards the remote, the SCRAM -PLUS variants
 * (XEP-0440 types advertised inbound). */
void xe_s2s_set_channel_bindings(struct xe_s2s *s, const struct xe_cbind *cb, size_t n);

/* IN, after every feed: what the input asked for, in order, until false.
 * The pointers stay valid until the next call. */
enum xe_s2s_event_type {
    XE_S2S_EV_DIALBACK, /* a db:result to check: ask the authoritative server of
                           `from` (stream_id: ours), then xe_s2s_dialback_verdict() */
    XE_S2S_EV_STANZA,   /* an authenticated stanza (raw, len: as it came): forward it */
};
struct xe_s2s_event {
    enum xe_s2s_event_type type;
    const char *from, *to; /* domains */
    const char *to_jid;    /* STANZA: the stanza's "to" as it came (NULL: none) */
    const char *key, *stream_id;
    const unsigned char *raw;
    size_t len;
};
bool xe_s2s_next_event(struct xe_s2s *s, struct xe_s2s_event *ev);

/* After XE_S2S_PAIR_UP, XE_S2S_OPEN. */
const struct xe_s2s_request *xe_s2s_request(const struct xe_s2s *s);
/* IN: answer a db:result (from = the remote, to = ours). Invalid: also
 * <not-authorized/> (the stream closes: see xe_s2s_closed()). */
void xe_s2s_dialback_verdict(struct xe_s2s *s, const char *from, const char *to,
                             enum xe_s2s_result r, const char *condition);
/* BACKEND: the outbound stream's verdict for the pending request; valid:
 * from now on the backend's bytes are pumped (xe_s2s_feed is not called). */
void xe_s2s_backend_verdict(struct xe_s2s *s, enum xe_s2s_result r,
                            const char *condition);
/* BACKEND: the outbound stream failed: <db:result type='error'/> with the
 * stanza error the backend's bounces should carry (condition, type "cancel"
 * or "wait", and a text saying what happened). */
void xe_s2s_backend_failure(struct xe_s2s *s, const char *condition, const char *type,
                            const char *text);
/* OUT: the remote ended the stream (or the connection, when the glue asks
 * then) while our SASL EXTERNAL was unanswered: not a <failure/>, a peer
 * that cannot take it (ejabberd 23.01 with an xmppAddr certificate). */
bool xe_s2s_external_dropped(const struct xe_s2s *s);
/* OUT/VERIFY/LINK: what made the stream fail, as a sentence, or NULL. */
const char *xe_s2s_failure(const struct xe_s2s *s);
/* After XE_S2S_VERDICT (also after XE_S2S_CLOSE: error until decided). */
enum xe_s2s_result xe_s2s_verdict(const struct xe_s2s *s, const char **condition_r);
/* OUT: EXTERNAL (true) or dialback (false) authenticated the stream. */
bool xe_s2s_used_external(const struct xe_s2s *s);
/* OUT: how the stream was authenticated: "EXTERNAL", the SASL mechanism of
 * the peer's secret ("SCRAM-SHA-256", ...) or "dialback"; IN: the SASL
 * mechanism of the last XE_S2S_PAIR_UP. */
const char *xe_s2s_mech(const struct xe_s2s *s);
/* IN: is (from, to) authenticated on this stream? */
bool xe_s2s_pair_ok(const struct xe_s2s *s, const char *from, const char *to);
/* Queue a stream error (a header first if none was sent) and the end. */
void xe_s2s_stream_error(struct xe_s2s *s, const char *condition, const char *text);
/* Queue the end of our stream. */
void xe_s2s_end(struct xe_s2s *s);
bool xe_s2s_closed(const struct xe_s2s *s);
/* The condition of the peer's <stream:error/> (its text, sanitized for a
 * log line, in *text_r), or NULL if it sent none. */
const char *xe_s2s_peer_error(const struct xe_s2s *s, const char **text_r);
/* Our stream's id (IN: the one keys are made for), the remote's (OUT). */
const char *xe_s2s_id(const struct xe_s2s *s);
/* The stream's remote domain (the header's from on IN/BACKEND) or NULL. */
const char *xe_s2s_remote(const struct xe_s2s *s);
const char *xe_s2s_local(const struct xe_s2s *s);

/* The domain of a JID (lower-cased into out), -1 if malformed. */
int xe_jid_domain(const char *jid, char *out, size_t outlen);

#endif
