/* xedge: in-band registration, XEP-0077 (sans-IO apart from the user store).
 *
 * Off by default; on per domain (`register = true;`). Before authentication,
 * under TLS, a client may create an account (`iq set` of jabber:iq:register
 * with a username and a password): the user is written to the LMDB store with
 * SCRAM secrets, as xedgectl would, and the client then logs in with SASL on
 * the same stream. Registrations are rate limited per source address (IPv4
 * address, IPv6 /64).
 *
 * After authentication the client's stream normally goes to the backend
 * unparsed. On a domain with registration, xe_regsplice reads the client's
 * bytes element by element instead: a jabber:iq:register request addressed
 * to the server (no 'to', the domain, or the user's bare JID) is answered
 * here (password change, account removal), every other element goes on to
 * the backend as the very bytes the client sent. Our answers wait for a
 * point between two of the backend's stanzas (boundary.h). */
#ifndef XE_REGISTER_H
#define XE_REGISTER_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "util.h"
#include "xmlstream.h"

#define XE_NS_IQ_REGISTER "jabber:iq:register"
#define XE_NS_IQ_REGISTER_FEATURE "http://jabber.org/features/iq-register"
#define XE_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

struct xe_userstore;

/* Once per process, before any session: the store written to and the rate
 * limiter's configuration. The store must outlive every session. */
void xe_register_global_init(struct xe_userstore *store, const struct xe_conf *conf);
/* A reload: the registration rate of CONF, keeping what was counted. */
void xe_register_global_reconfigure(const struct xe_conf *conf);
void xe_register_global_free(void);

/* Registration is on for DOMAIN (NULL: false). */
bool xe_register_enabled(const struct xe_conf *conf, const char *domain);
/* The FAST token store (tokens.h): a user's own password change and
 * account removal revoke the user's tokens. NULL: none. */
struct xe_tokens;
void xe_register_set_tokens(struct xe_tokens *tokens);

/* After authentication, xedge answers a user's own password change and
 * account removal on DOMAIN: `register` or `account_management` (default
 * on) is on. */
bool xe_register_postauth(const struct xe_conf *conf, const char *domain);
/* E is an iq get or set carrying a jabber:iq:register query. */
bool xe_register_is_query(const struct xe_xml_elem *e);

/* Before authentication: answer the request IQ (xe_register_is_query) into
 * OUT: the form, or the account created, or a stanza error. PEER is the
 * client's "address:port" (rate limit, log). */
void xe_register_preauth(const struct xe_conf *conf, const char *domain, const char *peer,
                         const struct xe_xml_elem *iq, struct xe_buf *out);

/* ---- after authentication ---------------------------------------------- */

struct xe_regsplice_params {
    const struct xe_conf *conf;
    const char *domain;
    const char *jid; /* the authenticated bare JID */
    const char *peer;
    bool anonymous;              /* a temporary JID with no account */
    const unsigned char *header; /* the client's authenticated stream start tag */
    size_t header_len;
};

enum xe_rs_result {
    XE_RS_OK,
    XE_RS_CLOSE, /* a stream error, or the end after an account removal, is
                  * queued for the client: deliver it (force) and close */
};

struct xe_regsplice;

struct xe_regsplice *xe_regsplice_new(const struct xe_regsplice_params *p);
void xe_regsplice_free(struct xe_regsplice **rs);
/* The client's bytes: what belongs to the backend is appended to
 * TO_BACKEND, our answers are queued (xe_regsplice_flush). */
enum xe_rs_result xe_regsplice_client(struct xe_regsplice *rs, const void *data,
                                      size_t len, struct xe_buf *to_backend);
/* The backend's bytes, appended to TO_CLIENT with the queued answers put in
 * between two stanzas. -1: TO_CLIENT is full. */
int xe_regsplice_backend(struct xe_regsplice *rs, const void *data, size_t len,
                         struct xe_buf *to_client);
/* Queued answers that may go now (the backend is between stanzas, or FORCE:
 * the stream is closing) appended to TO_CLIENT. */
void xe_regsplice_flush(struct xe_regsplice *rs, struct xe_buf *to_client, bool force);
/* The client removed its account on this stream (as `xedgectl user del`:
 * the user replaced by a tombstone, whose purge the daemon runs): its
 * other sessions are to end. */
bool xe_regsplice_removed(const struct xe_regsplice *rs);

#endif
