/* xedge: Bind2 (XEP-0386) at the edge; see bind2.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "bind2.h"
#include "conf.h"

#define ID_BIND "xe-b2-bind"
#define ID_SESSION "xe-b2-sess"
#define ID_CARBONS "xe-b2-carb"

struct xe_bind2_script {
    struct xe_buf req;  /* to the backend */
    struct xe_buf held; /* from the backend, for the client */
    bool want_session, want_carbons, want_sm, asked_sm;
    bool got_bind, got_session, got_carbons, got_sm;
    bool carbons_on, sm_on;
    unsigned unsynced;
    char jid[XE_BIND2_MAX_JID + 1];
    char sm_id[256];
    bool sm_resume;
    unsigned sm_max;
    const char *error;
};

void
xe_bind2_pool_caps(const struct xe_pool_conf *pool, struct xe_bind2_caps *caps)
{
    caps->carbons = caps->csi = caps->sm = pool != NULL && pool->n_servers > 0;
    for (size_t i = 0; pool && i < pool->n_servers; i++) {
        enum xe_server_kind k = pool->servers[i].kind;
        if (k != XE_KIND_PROSODY && k != XE_KIND_EJABBERD)
            caps->carbons = caps->csi = caps->sm = false;
    }
}

static bool
text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int
xe_bind2_parse(const struct xe_xml_elem *bind, struct xe_bind2_req *req,
               const char **why_r)
{
    const struct xe_xml_elem *c;

    memset(req, 0, sizeof(*req));
    req->present = true;
    for (c = bind->first_child; c; c = c->next) {
        if (strcmp(c->ns, XE_NS_BIND2) == 0 && strcmp(c->name, "tag") == 0) {
            const char *t = xe_xml_text(c);
            size_t l = strlen(t);
            if (l == 0 || l > XE_BIND2_MAX_TAG || !text_ok(t) || strchr(t, '/')) {
                *why_r = "bad Bind2 tag";
                return -1;
            }
            memcpy(req->tag, t, l + 1);
        } else if (xe_xml_is(c, XE_NS_CARBONS2, "enable")) {
            req->carbons = true;
        } else if (xe_xml_is(c, XE_NS_CSI, "active")) {
            req->csi = XE_CSI_ACTIVE;
        } else if (xe_xml_is(c, XE_NS_CSI, "inactive")) {
            req->csi = XE_CSI_INACTIVE;
        } else if (xe_xml_is(c, XE_NS_SM3, "enable")) {
            const char *r = xe_xml_attr(c, "resume"), *m = xe_xml_attr(c, "max");
            req->sm = true;
            req->sm_resume = r && (strcmp(r, "true") == 0 || strcmp(r, "1") == 0);
            if (m) {
                char *end = NULL;
                unsigned long v = strtoul(m, &end, 10);
                if (*m < '0' || *m > '9' || *end || v > 0xffffffUL) {
                    *why_r = "bad stream management max";
                    return -1;
                }
                req->sm_max = (unsigned)v;
            }
        }
    }
    return 0;
}

int
xe_bind2_offer(struct xe_buf *out, const struct xe_bind2_caps *caps)
{
    int r = xe_buf_append_str(out, "<bind xmlns='" XE_NS_BIND2 "'>");
    if (r == 0 && (caps->carbons || caps->csi || caps->sm)) {
        r |= xe_buf_append_str(out, "<inline>");
        if (caps->carbons)
            r |= xe_buf_append_str(out, "<feature var='" XE_NS_CARBONS2 "'/>");
        if (caps->csi)
            r |= xe_buf_append_str(out, "<feature var='" XE_NS_CSI "'/>");
        if (caps->sm)
            r |= xe_buf_append_str(out, "<feature var='" XE_NS_SM3 "'/>");
        r |= xe_buf_append_str(out, "</inline>");
    }
    r |= xe_buf_append_str(out, "</bind>");
    return r < 0 ? -1 : 0;
}

int
xe_bind2_resource(const char *tag, const char *barejid, const char *ua_id,
                  const unsigned char *secret, size_t secret_len, char *out,
                  size_t outmax)
{
    unsigned char mac[EVP_MAX_MD_SIZE], rnd[6];
    const unsigned char *src = rnd;
    char suffix[13];
    int r = -1, n;

    if (ua_id && *ua_id) {
        struct xe_buf m;
        unsigned mlen = 0;
        xe_buf_init(&m, 0);
        if (xe_buf_append_str(&m, "xedge-bind2") < 0 || xe_buf_append(&m, "", 1) < 0 ||
            xe_buf_append_str(&m, barejid) < 0 || xe_buf_append(&m, "", 1) < 0 ||
            xe_buf_append_str(&m, ua_id) < 0 ||
            HMAC(EVP_sha256(), secret, (int)secret_len, m.data, m.len, mac, &mlen) ==
                NULL) {
            xe_buf_free(&m);
            goto out;
        }
        xe_buf_free(&m);
        src = mac;
    } else if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        goto out;
    }
    for (int i = 0; i < 6; i++)
        snprintf(suffix + 2 * i, 3, "%02x", src[i]);
    n = tag && *tag ? snprintf(out, outmax, "%s.%s", tag, suffix)
                    : snprintf(out, outmax, "%s", suffix);
    if (n < 0 || (size_t)n >= outmax)
        goto out;
    r = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return r;
}

/* ---- the backend script ---------------------------------------------------------- */

struct xe_bind2_script *
xe_bind2_script_new(const struct xe_bind2_req *req, const struct xe_bind2_caps *caps,
                    const struct xe_xml_elem *features, const char *resource,
                    char **error_r)
{
    struct xe_bind2_script *s = xe_calloc(1, sizeof(*s));
    const struct xe_xml_elem *sess;
    bool sm_offered, csi_offered;
    int r = 0;

    xe_buf_init(&s->req, 0);
    xe_buf_init(&s->held, XE_BIND2_MAX_HELD);
    if (features == NULL || xe_xml_child(features, XE_NS_BIND, "bind") == NULL) {
        *error_r = xe_strdup("the backend offers no resource binding");
        xe_bind2_script_free(&s);
        return NULL;
    }
    sess = xe_xml_child(features, XE_NS_SESSION, "session");
    /* RFC 6121 (the old session): required unless marked <optional/> */
    s->want_session = sess && xe_xml_child(sess, XE_NS_SESSION, "optional") == NULL;
    sm_offered = xe_xml_child(features, XE_NS_SM3, "sm") != NULL;
    csi_offered = xe_xml_child(features, XE_NS_CSI, "csi") != NULL;
    s->want_carbons = req && req->carbons && caps->carbons;
    s->asked_sm = req && req->sm;
    s->want_sm = s->asked_sm && caps->sm && sm_offered;

    r |= xe_buf_append_str(&s->req, "<iq type='set' id='" ID_BIND
                                    "'><bind xmlns='" XE_NS_BIND "'><resource>");
    r |= xe_buf_append_escaped(&s->req, resource);
    r |= xe_buf_append_str(&s->req, "</resource></bind></iq>");
    if (s->want_session)
        r |= xe_buf_append_str(&s->req, "<iq type='set' id='" ID_SESSION
                                        "'><session xmlns='" XE_NS_SESSION "'/></iq>");
    if (s->want_carbons)
        r |= xe_buf_append_str(&s->req, "<iq type='set' id='" ID_CARBONS
                                        "'><enable xmlns='" XE_NS_CARBONS2 "'/></iq>");
    if (req && req->csi != XE_CSI_NONE && caps->csi && csi_offered)
        r |= xe_buf_appendf(&s->req, "<%s xmlns='" XE_NS_CSI "'/>",
                            req->csi == XE_CSI_ACTIVE ? "active" : "inactive");
    if (s->want_sm) {
        /* last: the backend counts from <enabled/> on, so no answer we
         * swallow is counted */
        r |= xe_buf_appendf(&s->req, "<enable xmlns='" XE_NS_SM3 "'%s",
                            req->sm_resume ? " resume='true'" : "");
        if (req->sm_max)
            r |= xe_buf_appendf(&s->req, " max='%u'", req->sm_max);
        r |= xe_buf_append_str(&s->req, "/>");
    }
    if (r < 0) {
        *error_r = xe_strdup("out of memory");
        xe_bind2_script_free(&s);
    }
    return s;
}

void
xe_bind2_script_free(struct xe_bind2_script **sp)
{
    struct xe_bind2_script *s = *sp;

    if (s == NULL)
        return;
    xe_buf_free(&s->req);
    xe_buf_free(&s->held);
    free(s);
    *sp = NULL;
}

const unsigned char *
xe_bind2_script_requests(const struct xe_bind2_script *s, size_t *len_r)
{
    *len_r = s->req.len;
    return s->req.data;
}

static bool
done(const struct xe_bind2_script *s)
{
    return s->got_bind && (!s->want_session || s->got_session) &&
           (!s->want_carbons || s->got_carbons) && (!s->want_sm || s->got_sm);
}

enum which { W_NONE, W_BIND, W_SESSION, W_CARBONS };

/* An iq answer to one of ours: which. */
static enum which
our_iq(const struct xe_xml_elem *e, bool *error_r)
{
    const char *id = xe_xml_attr(e, "id"), *type = xe_xml_attr(e, "type");

    if (!xe_xml_is(e, XE_NS_CLIENT, "iq") || id == NULL || type == NULL)
        return W_NONE;
    if (strcmp(type, "result") != 0 && strcmp(type, "error") != 0)
        return W_NONE;
    *error_r = strcmp(type, "error") == 0;
    if (strcmp(id, ID_BIND) == 0)
        return W_BIND;
    if (strcmp(id, ID_SESSION) == 0)
        return W_SESSION;
    if (strcmp(id, ID_CARBONS) == 0)
        return W_CARBONS;
    return W_NONE;
}

int
xe_bind2_script_answer(struct xe_bind2_script *s, const struct xe_xml_elem *e,
                       const unsigned char *raw, size_t raw_len)
{
    bool err = false;
    enum which which;

    if (s->error)
        return XE_BIND2_FAIL;
    which = our_iq(e, &err);
    if (which == W_BIND && !s->got_bind) {
        const struct xe_xml_elem *b = xe_xml_child(e, XE_NS_BIND, "bind");
        const struct xe_xml_elem *j = b ? xe_xml_child(b, XE_NS_BIND, "jid") : NULL;
        const char *t = j ? xe_xml_text(j) : "";
        s->got_bind = true;
        if (err || strlen(t) == 0 || strlen(t) > XE_BIND2_MAX_JID || !strchr(t, '/')) {
            s->error = err ? "the backend refused the bind" : "the backend bound no JID";
            return XE_BIND2_FAIL;
        }
        memcpy(s->jid, t, strlen(t) + 1);
    } else if (which == W_SESSION && s->want_session && !s->got_session) {
        s->got_session = true;
        if (err) {
            s->error = "the backend refused the session";
            return XE_BIND2_FAIL;
        }
    } else if (which == W_CARBONS && s->want_carbons && !s->got_carbons) {
        s->got_carbons = true;
        s->carbons_on = !err; /* not fatal: the client sees no carbons */
    } else if (s->want_sm && !s->got_sm && xe_xml_is(e, XE_NS_SM3, "enabled")) {
        const char *id = xe_xml_attr(e, "id"), *res = xe_xml_attr(e, "resume"),
                   *max = xe_xml_attr(e, "max");
        s->got_sm = s->sm_on = true;
        snprintf(s->sm_id, sizeof(s->sm_id), "%s", id ? id : "");
        s->sm_resume = res && (strcmp(res, "true") == 0 || strcmp(res, "1") == 0);
        s->sm_max = max ? (unsigned)strtoul(max, NULL, 10) : 0;
    } else if (s->want_sm && !s->got_sm && xe_xml_is(e, XE_NS_SM3, "failed")) {
        s->got_sm = true;
    } else {
        /* not an answer: held, in order, for after <success> */
        if (s->want_sm && !s->got_sm)
            s->unsynced++;
        if (xe_buf_append(&s->held, raw, raw_len) < 0) {
            s->error = "too much held from the backend before <success>";
            return XE_BIND2_FAIL;
        }
    }
    return done(s) ? XE_BIND2_DONE : XE_BIND2_MORE;
}

const char *
xe_bind2_script_jid(const struct xe_bind2_script *s)
{
    return s->jid;
}

int
xe_bind2_script_bound(const struct xe_bind2_script *s, struct xe_buf *out)
{
    int r = 0;

    if (!s->asked_sm)
        return xe_buf_append_str(out, "<bound xmlns='" XE_NS_BIND2 "'/>");
    r |= xe_buf_append_str(out, "<bound xmlns='" XE_NS_BIND2 "'>");
    if (s->sm_on) {
        /* rebuilt: the backend's location= names a server behind us */
        r |= xe_buf_append_str(out, "<enabled xmlns='" XE_NS_SM3 "'");
        if (s->sm_id[0]) {
            r |= xe_buf_append_str(out, " id='");
            r |= xe_buf_append_escaped(out, s->sm_id);
            r |= xe_buf_append_str(out, "'");
        }
        if (s->sm_resume)
            r |= xe_buf_append_str(out, " resume='true'");
        if (s->sm_max)
            r |= xe_buf_appendf(out, " max='%u'", s->sm_max);
        r |= xe_buf_append_str(out, "/>");
    } else {
        r |= xe_buf_append_str(
            out, "<failed xmlns='" XE_NS_SM3
                 "'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                 "</failed>");
    }
    r |= xe_buf_append_str(out, "</bound>");
    return r < 0 ? -1 : 0;
}

const unsigned char *
xe_bind2_script_held(const struct xe_bind2_script *s, size_t *len_r)
{
    *len_r = s->held.len;
    return s->held.data;
}

unsigned
xe_bind2_script_unsynced(const struct xe_bind2_script *s)
{
    return s->unsynced;
}

bool
xe_bind2_script_carbons(const struct xe_bind2_script *s)
{
    return s->carbons_on;
}

bool
xe_bind2_script_sm(const struct xe_bind2_script *s)
{
    return s->sm_on;
}

const char *
xe_bind2_script_error(const struct xe_bind2_script *s)
{
    return s->error;
}
