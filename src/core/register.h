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
 * point between two of the backend's stanzas (boundary.h).
 *
 * Off the loop: creating an account, changing a password and removing an
 * account derive SCRAM secrets (PBKDF2, thousands of iterations) or write
 * the store (an LMDB write transaction, flushed to disk). Those requests
 * become a job (struct xe_reg_job): the machine stops at the request, the
 * glue runs xe_reg_job_run() in the thread pool (register_io.h) while the
 * client is not read, and hands the job back (xe_c2s_reg_done,
 * xe_regsplice_job_done), which answers it and goes on with what the
 * client sent after it, in order. The job holds copies of everything it
 * needs: a connection that closes meanwhile frees it unanswered. */
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

/* ---- the jobs ------------------------------------------------------------ */

enum xe_reg_op {
    XE_REG_CREATE,   /* before authentication: a new account */
    XE_REG_PASSWORD, /* after: the user's own password change */
    XE_REG_REMOVE,   /* after: the user's own account removal */
};

struct xe_reg_job;

enum xe_reg_op xe_reg_job_op(const struct xe_reg_job *j);
/* "register", "password", "remove" (metrics, logs). */
const char *xe_reg_job_op_name(const struct xe_reg_job *j);
/* The work: the store read, the secrets, the write, the tokens revoked.
 * Any thread; nothing logged (the answer logs). */
void xe_reg_job_run(struct xe_reg_job *j);
/* Not run: too many jobs under way. The answer is a <resource-constraint/>
 * (wait) and nothing is written. */
void xe_reg_job_busy(struct xe_reg_job *j);
/* After run or busy: "ok", "refused" (conflict, no such account),
 * "database-down", "busy", "failed" (metrics). */
const char *xe_reg_job_result(const struct xe_reg_job *j);
/* The password is wiped. */
void xe_reg_job_free(struct xe_reg_job **j);

/* Before authentication: answer the request IQ (xe_register_is_query) into
 * OUT: the form, or a stanza error; or, for a request that passed the checks
 * and the rate limit, return the job that creates the account (then answer
 * with xe_register_preauth_done). PEER is the client's "address:port"
 * (rate limit, log). */
struct xe_reg_job *xe_register_preauth(const struct xe_conf *conf, const char *domain,
                                       const char *peer, const struct xe_xml_elem *iq,
                                       struct xe_buf *out);
/* The job of xe_register_preauth done (run or busy): its answer into OUT,
 * logged. */
void xe_register_preauth_done(const struct xe_reg_job *j, struct xe_buf *out);

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
    XE_RS_JOB,   /* a request waits for its job (xe_regsplice_take_job):
                  * stop reading the client; what it sent after the request is
                  * kept and parsed by xe_regsplice_job_done */
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
/* After XE_RS_JOB: the job, now the caller's (NULL if none waits). */
struct xe_reg_job *xe_regsplice_take_job(struct xe_regsplice *rs);
/* The job taken is done (run or busy): its answer queued, then the client's
 * bytes kept since parsed as by xe_regsplice_client (which this returns as).
 * Frees the job. */
enum xe_rs_result xe_regsplice_job_done(struct xe_regsplice *rs, struct xe_reg_job *job,
                                        struct xe_buf *to_backend);
/* Queued answers that may go now (the backend is between stanzas, or FORCE:
 * the stream is closing) appended to TO_CLIENT. */
void xe_regsplice_flush(struct xe_regsplice *rs, struct xe_buf *to_client, bool force);
/* Idle: give the parser back (about 10 KiB of expat's and ours per
 * session) if the client's stream is between two stanzas with nothing
 * pending; the next bytes other than white space make a new one, primed
 * with the stream header. True when resting (now or already). */
bool xe_regsplice_rest(struct xe_regsplice *rs);
bool xe_regsplice_resting(const struct xe_regsplice *rs);
/* The client removed its account on this stream (as `xedgectl user del`:
 * the user replaced by a tombstone, whose purge the daemon runs): its
 * other sessions are to end. */
bool xe_regsplice_removed(const struct xe_regsplice *rs);

#endif
