/* xedge: the SASL adapter (sans-IO) over Cyrus SASL. The user store is read
 * by Cyrus through the "xedge" auxprop plugin registered in-process, so every
 * Cyrus mechanism works against it; PLAIN is verified against the stored SCRAM
 * secrets by a userdb checkpass callback (no password is stored). */
#ifndef XE_SASL_H
#define XE_SASL_H

#include <stddef.h>
#include <stdbool.h>

#include "cbind.h"
#include "userstore.h"

/* RFC 6120 section 6.5 failure conditions */
enum xe_sasl_cond {
    XE_SASL_ABORTED,
    XE_SASL_ACCOUNT_DISABLED,
    XE_SASL_CREDENTIALS_EXPIRED,
    XE_SASL_ENCRYPTION_REQUIRED,
    XE_SASL_INCORRECT_ENCODING,
    XE_SASL_INVALID_AUTHZID,
    XE_SASL_INVALID_MECHANISM,
    XE_SASL_MALFORMED_REQUEST,
    XE_SASL_MECHANISM_TOO_WEAK,
    XE_SASL_NOT_AUTHORIZED,
    XE_SASL_TEMPORARY_AUTH_FAILURE,
};
const char *xe_sasl_cond_name(enum xe_sasl_cond c);

/* step results */
#define XE_SASL_CONTINUE 1 /* send *out as a <challenge/> */
#define XE_SASL_OK 0       /* send <success/> (with *out as additional data) */
#define XE_SASL_FAIL (-1)  /* send <failure/> with *cond_r */

/* Once per process, before any session. The store must outlive SASL use.
 * mech_list: the mechanisms Cyrus may load, space-separated. iterations: the
 * PBKDF2 rounds announced for unknown users, so that they look like known
 * ones. Called again (a reload), it replaces mech_list and iterations for
 * the sessions that start after: Cyrus is initialised once, so a mechanism
 * whose plugin it did not load at start stays unavailable
 * (xe_sasl_mech_loaded). */
int xe_sasl_global_init(struct xe_userstore *store, const char *mech_list,
                        unsigned iterations, char **error_r);
void xe_sasl_global_done(void);
/* Whether Cyrus loaded the mechanism NAME (a -PLUS name: its base). */
bool xe_sasl_mech_loaded(const char *name);

struct xe_sasl;

/* mechs: the configured mechanisms, in order of preference. tls: the session
 * is under TLS (PLAIN is offered only then). */
struct xe_sasl *xe_sasl_new(const char *domain, char *const *mechs, size_t n_mechs,
                            bool tls, char **error_r);
/* The same, with what the TLS session offers. cb: its channel bindings
 * (cbind.h): the -PLUS mechanisms are offered when configured, the client
 * picks the type in its GS2 header, and a client that says it supports
 * binding but thinks the server does not ("y") is refused (RFC 5802
 * downgrade protection). ext: the bare JIDs a verified client certificate
 * vouches for, the first the default: EXTERNAL is offered when configured,
 * and the client may act as any of them. */
struct xe_sasl *xe_sasl_new_tls(const char *domain, char *const *mechs, size_t n_mechs,
                                bool tls, const struct xe_cbind *cb, size_t n_cb,
                                const char (*ext)[3072], size_t n_ext, char **error_r);
/* Server-to-server with a pre-shared secret (doc/federation.md): PEER, a
 * domain, authenticates to LOCAL with SECRET by one of MECHS (SCRAM-* and
 * DIGEST-MD5 only; the order is the offer's). The peer's domain is the only
 * authentication (and authorization) identity, the secret the only
 * password; the user store is never read, so no user can authenticate as a
 * domain (nor a domain as a user: user sessions never see a secret). After
 * XE_SASL_OK, xe_sasl_jid() is the peer's domain. */
struct xe_sasl *xe_sasl_new_peer(const char *local, const char *peer,
                                 const unsigned char *secret, size_t secret_len,
                                 char *const *mechs, size_t n_mechs, char **error_r);
/* The same under TLS with the session's channel bindings CB: each SCRAM
 * mechanism is offered with its -PLUS variant first, and a peer that says
 * it could bind but thinks we cannot ("y") is refused. */
struct xe_sasl *xe_sasl_new_peer_tls(const char *local, const char *peer,
                                     const unsigned char *secret, size_t secret_len,
                                     char *const *mechs, size_t n_mechs,
                                     const struct xe_cbind *cb, size_t n_cb,
                                     char **error_r);
void xe_sasl_free(struct xe_sasl **s);

/* The initiating side of server-to-server SASL: LOCAL (our domain, the
 * authentication identity, no authorization identity) to REMOTE with
 * SECRET. start: the initial response (XE_SASL_CONTINUE; XE_SASL_OK when the
 * exchange needs no more from the client); step: the answer to a challenge,
 * or, with the data of <success/>, XE_SASL_OK once the server is verified
 * (SCRAM's server signature). *out (length *outlen) is valid until the next
 * call. */
struct xe_sasl_client;
struct xe_sasl_client *xe_sasl_client_new(const char *local, const char *remote,
                                          const unsigned char *secret, size_t secret_len,
                                          char **error_r);
int xe_sasl_client_start(struct xe_sasl_client *c, const char *mech, const char **out,
                         size_t *outlen);
/* Before start: bind to the TLS session with CB (copied; a lazy one is
 * derived now). With a -PLUS mechanism the binding is used; without, the
 * client says it could bind ("y"). 0, or -1 when the data cannot be had. */
int xe_sasl_client_set_cb(struct xe_sasl_client *c, const struct xe_cbind *cb);
int xe_sasl_client_step(struct xe_sasl_client *c, const char *in, size_t inlen,
                        const char **out, size_t *outlen);
/* Cyrus' detail for a failure, for the log (never a secret). */
const char *xe_sasl_client_detail(const struct xe_sasl_client *c);
void xe_sasl_client_free(struct xe_sasl_client **c);
/* The channel binding types to advertise (XEP-0440). */
size_t xe_sasl_cb_types(const struct xe_sasl *s, const char **out, size_t max);

/* The mechanisms to offer, in order. */
size_t xe_sasl_mechanisms(const struct xe_sasl *s, const char **out, size_t max);

/* Start MECH; in: decoded initial response (NULL: none was sent). */
int xe_sasl_start(struct xe_sasl *s, const char *mech, const char *in, size_t inlen,
                  const char **out, size_t *outlen, enum xe_sasl_cond *cond_r);
int xe_sasl_step(struct xe_sasl *s, const char *in, size_t inlen, const char **out,
                 size_t *outlen, enum xe_sasl_cond *cond_r);

/* After XE_SASL_OK: the authenticated bare JID. After a failure: the identity
 * the client claimed, when Cyrus got that far (for the log only). */
const char *xe_sasl_jid(const struct xe_sasl *s);
const char *xe_sasl_mech(const struct xe_sasl *s);
/* After XE_SASL_OK with ANONYMOUS: the JID is a random temporary one. */
bool xe_sasl_anonymous(const struct xe_sasl *s);
/* Cyrus' detail for the last failure, for the log (never a secret). */
const char *xe_sasl_detail(const struct xe_sasl *s);

/* Non-SASL authentication (XEP-0078) against the same store, after
 * xe_sasl_global_init. USER: a localpart (or a bare JID) of DOMAIN; JID_R
 * gets its canonical bare JID (for the log too, after a failure; "" when the
 * name is not one of DOMAIN's). XE_SASL_OK, or XE_SASL_FAIL with *cond_r and
 * a DETAIL for the log (never a secret).
 * check_plain verifies PASS exactly as PLAIN does (the SCRAM secrets; the
 * same work for an unknown user; account-disabled only with the right
 * password). check_digest verifies DIGEST, hex(SHA1(STREAM_ID || password)),
 * against the plaintext-equivalent, which only a user with the legacy
 * mechanisms has: for anyone else it fails as a wrong digest does. */
int xe_sasl_check_plain(const char *domain, const char *user, const char *pass,
                        size_t passlen, char *jid_r, size_t jidmax,
                        enum xe_sasl_cond *cond_r, char *detail, size_t dmax);
int xe_sasl_check_digest(const char *domain, const char *user, const char *stream_id,
                         const char *digest, char *jid_r, size_t jidmax,
                         enum xe_sasl_cond *cond_r, char *detail, size_t dmax);

/* base64 (through Cyrus' codec); decode is strict. -1 on bad input. */
int xe_sasl_b64_decode(const char *in, size_t inlen, char *out, size_t outmax,
                       size_t *outlen);
int xe_sasl_b64_encode(const char *in, size_t inlen, char *out, size_t outmax,
                       size_t *outlen);

#endif
