/* xedge: Bind2 (XEP-0386) at the edge, sans-IO.
 *
 * The client's <bind xmlns='urn:xmpp:bind:0'> (inside a SASL2 <authenticate>)
 * is parsed here, and translated into a "backend script": the stanzas xedge
 * sends, on the client's behalf, to a legacy backend after its own login
 * (resource bind, session if required, carbons, CSI, stream management), and
 * the folding of the backend's answers into the <bound/> of SASL2's
 * <success>. The answers are swallowed; every other element the backend sends
 * meanwhile is held, raw and in order, for delivery after <success>. The
 * stream management <enable/> goes last, so that no answer we swallow is one
 * the backend counts (XEP-0198 counts from <enabled/> on). No I/O: the
 * glue sends xe_bind2_script_requests() and feeds the backend's elements. */
#ifndef XE_BIND2_H
#define XE_BIND2_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"
#include "xelimits.h"
#include "xmlstream.h"

#define XE_NS_BIND2 "urn:xmpp:bind:0"
#define XE_NS_CARBONS2 "urn:xmpp:carbons:2"
#define XE_NS_CSI "urn:xmpp:csi:0"
#define XE_NS_SM3 "urn:xmpp:sm:3"
#define XE_NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"

enum xe_csi_state { XE_CSI_NONE, XE_CSI_ACTIVE, XE_CSI_INACTIVE };

/* A client's Bind2 request. */
struct xe_bind2_req {
    bool present;                   /* a <bind/> was in <authenticate> */
    char tag[XE_BIND2_MAX_TAG + 1]; /* "" when none */
    bool carbons;                   /* <enable xmlns='urn:xmpp:carbons:2'/> */
    enum xe_csi_state csi;          /* <active/> or <inactive/> (CSI) */
    bool sm, sm_resume;             /* <enable xmlns='urn:xmpp:sm:3' resume=/> */
    unsigned sm_max;                /* its max= (0: none) */
};

/* What every server of the domain's pool can do inline (what the pool can
 * do, not what one server can: jabberd2 has neither carbons nor sm:3). */
struct xe_bind2_caps {
    bool carbons, csi, sm;
};
/* The AND over the servers of POOL by their configured kind: Prosody and
 * ejabberd carbons, CSI and SM; jabberd2 and a generic server none (what is
 * not known is not offered). */
struct xe_pool_conf;
void xe_bind2_pool_caps(const struct xe_pool_conf *pool, struct xe_bind2_caps *caps);

/* Parse BIND (a <bind xmlns='urn:xmpp:bind:0'>). 0, or -1 with *why_r (a
 * static text for a malformed-request failure). Unknown children are
 * ignored (an inline feature we do not offer is not an error, XEP-0386). */
int xe_bind2_parse(const struct xe_xml_elem *bind, struct xe_bind2_req *req,
                   const char **why_r);

/* The <bind/> element of SASL2's <inline>, listing CAPS. -1: no memory. */
int xe_bind2_offer(struct xe_buf *out, const struct xe_bind2_caps *caps);

/* The resource for TAG: "TAG.SUFFIX" (or "SUFFIX" without a tag), SUFFIX
 * being 12 hex digits of HMAC-SHA-256(SECRET, "xedge-bind2" 0x00 BAREJID
 * 0x00 UA_ID): stable for one client (user agent) of one user, unlinkable
 * across users, and not guessable without the server's secret. Without a
 * user agent id (NULL or ""), a random suffix. 0, or -1 when OUT is small or
 * the MAC fails. */
int xe_bind2_resource(const char *tag, const char *barejid, const char *ua_id,
                      const unsigned char *secret, size_t secret_len, char *out,
                      size_t outmax);

/* answer results */
#define XE_BIND2_MORE 0  /* more answers expected */
#define XE_BIND2_DONE 1  /* every answer is in: build <bound/> */
#define XE_BIND2_FAIL -1 /* bind (or a required session) refused; see _error */

struct xe_bind2_script;

/* REQ (NULL: a plain bind, e.g. a SASL2 login without Bind2), CAPS, the
 * backend's post-login <stream:features> (FEATURES: what this server offers
 * now: a required session, sm:3, csi) and RESOURCE (xe_bind2_resource).
 * Carbons, CSI and SM are asked for only when the client asked, the pool can
 * and, for CSI and SM, the backend's features offer them. NULL on error. */
struct xe_bind2_script *xe_bind2_script_new(const struct xe_bind2_req *req,
                                            const struct xe_bind2_caps *caps,
                                            const struct xe_xml_elem *features,
                                            const char *resource, char **error_r);
void xe_bind2_script_free(struct xe_bind2_script **s);
/* The bytes to send to the backend, all at once (pipelined). */
const unsigned char *xe_bind2_script_requests(const struct xe_bind2_script *s,
                                              size_t *len_r);
/* An element from the backend (E, its RAW bytes). Answers are swallowed, the
 * rest held (a hard cap: XE_BIND2_MAX_HELD, beyond it XE_BIND2_FAIL). */
int xe_bind2_script_answer(struct xe_bind2_script *s, const struct xe_xml_elem *e,
                           const unsigned char *raw, size_t raw_len);
/* After XE_BIND2_DONE: the full JID the backend bound. */
const char *xe_bind2_script_jid(const struct xe_bind2_script *s);
/* After XE_BIND2_DONE: append <bound xmlns='urn:xmpp:bind:0'>, with the
 * stream management outcome (<enabled/> without the backend's location, or
 * <failed/>). */
int xe_bind2_script_bound(const struct xe_bind2_script *s, struct xe_buf *out);
/* The held elements, raw, in order: sent to the client after <success>. */
const unsigned char *xe_bind2_script_held(const struct xe_bind2_script *s, size_t *len_r);
/* How many held elements arrived before <enabled/> while SM was asked: the
 * backend did not count them, the client will (0 in practice: the backend
 * routes nothing to a resource before its first presence). */
unsigned xe_bind2_script_unsynced(const struct xe_bind2_script *s);
/* What was enabled (for the log and metrics). */
bool xe_bind2_script_carbons(const struct xe_bind2_script *s);
bool xe_bind2_script_sm(const struct xe_bind2_script *s);
const char *xe_bind2_script_error(const struct xe_bind2_script *s);

#endif
