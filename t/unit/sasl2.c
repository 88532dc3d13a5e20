/* Unit tests of SASL2 (src/core/sasl2.h): the client's elements go through
 * the real XML stream parser (whole and byte by byte) into xe_sasl2_element,
 * which drives the real Cyrus SASL server through the adapter against a real
 * LMDB store; SCRAM-SHA-256 is run by Cyrus' own client, whose verdict on
 * the <additional-data> of <success> is checked. TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>

#include "sasl.h"
#include "sasl2.h"
#include "userstore.h"
#include "xmlstream.h"
#include "tap.h"

#define CB(f) ((int (*)(void))(void *)(f))
#define HDR                                                                              \
    "<stream:stream xmlns='jabber:client' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>"
#define NS2 "urn:xmpp:sasl:2"

static struct xe_userstore *store;

/* ---- feeding the client's elements ------------------------------------------- */

struct ctx {
    struct xe_sasl2 *s2;
    struct xe_buf out;
    int r, n;
    enum xe_sasl_cond cond;
    const char *detail;
};

static int
on_start(void *c, const struct xe_xml_elem *h, const char *ns)
{
    return XE_XS_CONTINUE;
}

static int
on_elem(void *vc, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct ctx *c = vc;

    c->n++;
    c->r = xe_sasl2_element(c->s2, e, &c->out, &c->cond, &c->detail);
    return XE_XS_CONTINUE;
}

static int
on_end(void *c)
{
    return XE_XS_CONTINUE;
}

static const struct xe_xmlstream_cb cbs = {on_start, on_elem, on_end};
static const struct xe_xmlstream_limits lim = {XE_DEF_MAX_STANZA_PREAUTH,
                                               XE_DEF_MAX_XML_DEPTH, XE_DEF_MAX_ATTRS};

/* Feed HDR + XML (one element) whole (bytes false) or byte by byte; returns
 * xe_sasl2_element's result, -99 when the parser failed or saw no element. */
static int
feed(struct ctx *c, const char *xml, bool bytes)
{
    struct xe_xmlstream *xs = xe_xmlstream_new(&lim, &cbs, c);
    struct xe_buf doc;
    size_t consumed;
    int st = XE_XS_OK;

    xe_buf_init(&doc, 0);
    xe_buf_append_str(&doc, HDR);
    xe_buf_append_str(&doc, xml);
    c->n = 0;
    c->r = -99;
    xe_buf_free(&c->out);
    xe_buf_init(&c->out, 0);
    if (bytes) {
        for (size_t i = 0; i < doc.len && st == XE_XS_OK; i++)
            st = xe_xmlstream_feed(xs, doc.data + i, 1, &consumed);
    } else {
        st = xe_xmlstream_feed(xs, doc.data, doc.len, &consumed);
    }
    if (st != XE_XS_OK) {
        printf("# parser: %s\n", xe_xmlstream_condition(xs));
        c->r = -99;
    }
    xe_buf_append(&c->out, "", 1);
    xe_buf_free(&doc);
    xe_xmlstream_free(&xs);
    return c->n == 1 ? c->r : -99;
}

static const char *
outs(struct ctx *c)
{
    return (const char *)c->out.data;
}

/* The base64 text between <TAG ...> and </TAG> in our output, decoded. */
static int
extract(const char *s, const char *tag, char *dst, size_t max, size_t *len)
{
    char open[64], close[64];
    const char *a, *b;

    snprintf(open, sizeof(open), "<%s", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    if ((a = strstr(s, open)) == NULL || (a = strchr(a, '>')) == NULL ||
        (b = strstr(a, close)) == NULL)
        return -1;
    a++;
    if (b - a == 1 && *a == '=') {
        *len = 0;
        return 0;
    }
    return xe_sasl_b64_decode(a, (size_t)(b - a), dst, max, len);
}

static char *
b64(const char *in, size_t len)
{
    static char buf[4096];
    size_t ol = 0;

    if (len == 0)
        return strcpy(buf, "=");
    xe_sasl_b64_encode(in, len, buf, sizeof(buf), &ol);
    buf[ol] = '\0';
    return buf;
}

/* ---- fixtures ------------------------------------------------------------------ */

static void
add_user(const char *jid, const char *pw, bool disabled)
{
    struct xe_user u;
    char *err = NULL;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "%s", jid);
    u.disabled = disabled;
    ok(xe_user_set_password(&u, pw, strlen(pw), 4096) == XE_US_OK &&
           xe_userstore_put(store, &u, true, &err) == XE_US_OK,
       "store %s", jid);
    free(err);
}

static char *mechs[] = {"SCRAM-SHA-256", "PLAIN"};

static struct ctx
new_ctx(struct xe_sasl **sp, const struct xe_sasl2_mech *own)
{
    struct ctx c;
    char *err = NULL;

    memset(&c, 0, sizeof(c));
    *sp = xe_sasl_new("example.test", mechs, 2, true, &err);
    free(err);
    c.s2 = xe_sasl2_new(*sp, own, XE_DEF_MAX_SASL_BYTES);
    xe_buf_init(&c.out, 0);
    return c;
}

static void
free_ctx(struct ctx *c, struct xe_sasl **sp)
{
    xe_sasl2_free(&c->s2);
    xe_sasl_free(sp);
    xe_buf_free(&c->out);
}

/* ---- tests --------------------------------------------------------------------- */

static void
test_features(void)
{
    struct xe_buf b;
    const char *m[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"};
    const char *cb[] = {"tls-exporter", "tls-server-end-point"};
    char *fm[] = {"HT-SHA-256-EXPR", "HT-SHA-256-NONE"};
    struct xe_sasl2_inline inl = {true, {true, true, false}, true, fm, 2};

    xe_buf_init(&b, 0);
    ok(xe_sasl2_features(&b, m, 3, cb, 2, &inl) == 0, "features built");
    xe_buf_append(&b, "", 1);
    is_str(
        (char *)b.data,
        "<authentication "
        "xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-256-PLUS</mechanism>"
        "<mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism><inline>"
        "<bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/>"
        "<feature var='urn:xmpp:csi:0'/></inline></bind><sm xmlns='urn:xmpp:sm:3'/>"
        "<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism>"
        "<mechanism>HT-SHA-256-NONE</mechanism></fast></inline></authentication>"
        "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding "
        "type='tls-exporter'/><channel-binding type='tls-server-end-point'/>"
        "</sasl-channel-binding>",
        "the feature: mechanisms, inline Bind2 (what the pool can), SM, FAST, cb types");
    xe_buf_free(&b);
    xe_buf_init(&b, 0);
    ok(xe_sasl2_features(&b, m + 2, 1, NULL, 0, NULL) == 0, "a bare feature");
    xe_buf_append(&b, "", 1);
    is_str((char *)b.data,
           "<authentication xmlns='urn:xmpp:sasl:2'><mechanism>PLAIN</mechanism>"
           "</authentication>",
           "nothing inline: no <inline/>, no channel-binding list");
    xe_buf_free(&b);
}

static void
test_builders(void)
{
    struct xe_buf b;
    const char *tasks[] = {"HOTP-EXAMPLE"};

    xe_buf_init(&b, 0);
    xe_sasl2_success(&b, "v=abc", 5, "alice@example.test/phone.1a2b",
                     "<bound xmlns='urn:xmpp:bind:0'/>", 32);
    xe_sasl2_failure(&b, XE_SASL_NOT_AUTHORIZED, "wrong <password>");
    xe_sasl2_challenge(&b, "", 0);
    xe_sasl2_continue(&b, "x", 1, tasks, 1, NULL);
    xe_buf_append(&b, "", 1);
    is_str((char *)b.data,
           "<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1hYmM=</additional-data>"
           "<authorization-identifier>alice@example.test/phone.1a2b"
           "</authorization-identifier><bound xmlns='urn:xmpp:bind:0'/></success>"
           "<failure xmlns='urn:xmpp:sasl:2'><not-authorized "
           "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text xml:lang='en'>wrong "
           "&lt;password&gt;</text></failure>"
           "<challenge xmlns='urn:xmpp:sasl:2'>=</challenge>"
           "<continue xmlns='urn:xmpp:sasl:2'><additional-data>eA==</additional-data>"
           "<tasks><task>HOTP-EXAMPLE</task></tasks></continue>",
           "success (additional data, authzid, extensions), failure (condition, escaped "
           "text), an empty challenge, continue");
    xe_buf_free(&b);
}

static void
test_parse(void)
{
    struct ctx c;
    struct xe_sasl *s = NULL;
    const struct xe_sasl2_auth *a;
    char doc[8192];

    for (int bytes = 0; bytes < 2; bytes++) {
        c = new_ctx(&s, NULL);
        snprintf(
            doc, sizeof(doc),
            "<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>%s"
            "</initial-response><user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'>"
            "<software>AwesomeXMPP</software><device>Kiva&apos;s Phone</device>"
            "</user-agent><bind xmlns='urn:xmpp:bind:0'><tag>AwesomeXMPP</tag>"
            "<enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/>"
            "<enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>"
            "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>"
            "<future xmlns='urn:example:ext'/></authenticate>",
            b64("\0alice\0alice-pw", 15));
        is_int(feed(&c, doc, bytes), XE_SASL2_SUCCESS, "PLAIN in <initial-response> (%s)",
               bytes ? "byte by byte" : "whole");
        a = xe_sasl2_request(c.s2);
        is_str(a->ua_id, "d4565fa7-4d72-4749-b3d3-740edbf87770", "user-agent id kept");
        is_str(a->software, "AwesomeXMPP", "software");
        is_str(a->device, "Kiva's Phone", "device");
        ok(a->bind.present && strcmp(a->bind.tag, "AwesomeXMPP") == 0 &&
               a->bind.carbons && a->bind.csi == XE_CSI_INACTIVE && a->bind.sm &&
               a->bind.sm_resume,
           "Bind2 request parsed (tag, carbons, inactive, sm resume)");
        ok(a->request_token && strcmp(a->token_mech, "HT-SHA-256-NONE") == 0,
           "request-token parsed");
        is_str(xe_sasl2_jid(c.s2), "alice@example.test", "authenticated JID");
        is_int(c.out.len, 1, "nothing is sent before the bind is done");
        xe_buf_free(&c.out);
        xe_buf_init(&c.out, 0);
        ok(xe_sasl2_build_success(c.s2, &c.out, "alice@example.test/AwesomeXMPP.0011aa",
                                  "<bound xmlns='urn:xmpp:bind:0'/>", 32) == 0,
           "success built");
        xe_buf_append(&c.out, "", 1);
        is_str(outs(&c),
               "<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>"
               "alice@example.test/AwesomeXMPP.0011aa</authorization-identifier>"
               "<bound xmlns='urn:xmpp:bind:0'/></success>",
               "PLAIN's success: no additional data, the full JID");
        ok(xe_sasl2_build_success(c.s2, &c.out, NULL, NULL, 0) < 0, "success only once");
        free_ctx(&c, &s);
    }
}

struct bad {
    const char *xml;
    int cond;
    const char *what;
};

static void
test_malformed(void)
{
    static const struct bad bad[] = {
        {"<authenticate xmlns='" NS2 "'/>", XE_SASL_INVALID_MECHANISM, "no mechanism"},
        {"<authenticate xmlns='" NS2 "' mechanism='plain'/>", XE_SASL_INVALID_MECHANISM,
         "a mechanism name in lower case"},
        {"<authenticate xmlns='" NS2 "' mechanism='SCRAM-SHA-256-PLUS-LONGER-THAN-20'/>",
         XE_SASL_INVALID_MECHANISM, "a mechanism name over 20"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>%%%"
         "</initial-response></authenticate>",
         XE_SASL_INCORRECT_ENCODING, "bad base64"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>AA=="
         "</initial-response><initial-response>AA==</initial-response></authenticate>",
         XE_SASL_MALFORMED_REQUEST, "two initial responses"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><user-agent id='a b'/>"
         "</authenticate>",
         XE_SASL_MALFORMED_REQUEST, "a user-agent id with a space"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><user-agent id='"
         "01234567890123456789012345678901234567890123456789012345678901234'/>"
         "</authenticate>",
         XE_SASL_MALFORMED_REQUEST, "a user-agent id over 64"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><user-agent id='x'>"
         "<software>a&#9;b</software></user-agent></authenticate>",
         XE_SASL_MALFORMED_REQUEST, "software with a control character"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><bind xmlns='urn:xmpp:bind:0'>"
         "<tag>a/b</tag></bind></authenticate>",
         XE_SASL_MALFORMED_REQUEST, "a Bind2 tag with a slash"},
        {"<authenticate xmlns='" NS2 "' mechanism='HT-SHA-256-NONE'><fast "
         "xmlns='urn:xmpp:fast:0' count='-1'/></authenticate>",
         XE_SASL_MALFORMED_REQUEST, "a negative FAST count"},
        {"<authenticate xmlns='" NS2 "' mechanism='PLAIN'><resume xmlns='urn:xmpp:sm:3' "
         "previd='x' h='4294967296'/></authenticate>",
         XE_SASL_MALFORMED_REQUEST, "a resume h over 2^32-1"},
        {"<authenticate xmlns='" NS2 "' mechanism='X-UNKNOWN'/>",
         XE_SASL_INVALID_MECHANISM, "a mechanism Cyrus does not have"},
    };
    struct ctx c;
    struct xe_sasl *s = NULL;
    char sw[300];
    char doc[8192];

    c = new_ctx(&s, NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = feed(&c, bad[i].xml, i % 2 == 1);
        ok(r == XE_SASL2_FAILURE && (int)c.cond == bad[i].cond &&
               strstr(outs(&c), "<failure xmlns='urn:xmpp:sasl:2'>") != NULL,
           "%s: failure <%s/> (%s)", bad[i].what, xe_sasl_cond_name(c.cond),
           c.detail ? c.detail : "");
    }
    memset(sw, 'a', sizeof(sw) - 1);
    sw[XE_SASL2_MAX_UA_TEXT + 1] = '\0';
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='" NS2 "' mechanism='PLAIN'><user-agent id='x'>"
             "<device>%s</device></user-agent></authenticate>",
             sw);
    ok(feed(&c, doc, false) == XE_SASL2_FAILURE && c.cond == XE_SASL_MALFORMED_REQUEST,
       "a device over %d bytes: malformed-request", XE_SASL2_MAX_UA_TEXT);
    sw[XE_SASL2_MAX_UA_TEXT] = '\0';
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>%s"
             "</initial-response><user-agent id='x'><device>%s</device></user-agent>"
             "</authenticate>",
             b64("\0bob\0bob-pw", 11), sw);
    ok(feed(&c, doc, false) == XE_SASL2_SUCCESS, "a device of exactly %d bytes is fine",
       XE_SASL2_MAX_UA_TEXT);
    free_ctx(&c, &s);

    /* out of order */
    c = new_ctx(&s, NULL);
    is_int(feed(&c, "<response xmlns='" NS2 "'>AA==</response>", false),
           XE_SASL2_UNEXPECTED,
           "a response before authenticate: unexpected (a stream error)");
    is_int(feed(&c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>",
                false),
           XE_SASL2_UNEXPECTED, "a SASL1 <auth/> is not SASL2's");
    free_ctx(&c, &s);
}

/* Failure then success on one stream; abort mid-exchange. */
static void
test_retry(void)
{
    struct ctx c;
    struct xe_sasl *s = NULL;
    char doc[8192];

    c = new_ctx(&s, NULL);
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>%s"
             "</initial-response></authenticate>",
             b64("\0alice\0wrong", 12));
    ok(feed(&c, doc, false) == XE_SASL2_FAILURE && c.cond == XE_SASL_NOT_AUTHORIZED,
       "wrong password: not-authorized");
    is_str(outs(&c),
           "<failure xmlns='urn:xmpp:sasl:2'><not-authorized "
           "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>",
           "the failure element");
    is_str(xe_sasl2_jid(c.s2), "alice@example.test",
           "the claimed JID is known for the log");
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>%s"
             "</initial-response></authenticate>",
             b64("\0alice\0alice-pw", 15));
    is_int(feed(&c, doc, true), XE_SASL2_SUCCESS,
           "then the right one on the same stream");
    free_ctx(&c, &s);

    c = new_ctx(&s, NULL);
    is_int(feed(&c, "<authenticate xmlns='" NS2 "' mechanism='PLAIN'/>", false),
           XE_SASL2_CHALLENGE, "PLAIN without an initial response: an empty challenge");
    is_str(outs(&c), "<challenge xmlns='urn:xmpp:sasl:2'>=</challenge>", "the challenge");
    ok(feed(&c, "<abort xmlns='" NS2 "'><text>changed my mind</text></abort>", false) ==
               XE_SASL2_FAILURE &&
           c.cond == XE_SASL_ABORTED,
       "abort: failure <aborted/>");
    is_int(feed(&c, "<response xmlns='" NS2 "'>AA==</response>", false),
           XE_SASL2_UNEXPECTED, "a response after the abort: unexpected");
    snprintf(doc, sizeof(doc), "<response xmlns='" NS2 "'>%s</response>",
             b64("\0carol\0carol-pw", 15));
    is_int(feed(&c, "<authenticate xmlns='" NS2 "' mechanism='PLAIN'/>", false),
           XE_SASL2_CHALLENGE, "a new attempt after the abort");
    ok(feed(&c, doc, true) == XE_SASL2_FAILURE && c.cond == XE_SASL_ACCOUNT_DISABLED,
       "a disabled account: account-disabled");
    free_ctx(&c, &s);
}

/* Cyrus' client through SASL2 elements, SCRAM-SHA-256. */
struct creds {
    const char *user, *pass;
    sasl_secret_t *secret;
};

static int
cb_simple(void *ctx, int id, const char **result, unsigned *len)
{
    struct creds *c = ctx;

    *result = id == SASL_CB_AUTHNAME ? c->user : "";
    if (len)
        *len = (unsigned)strlen(*result);
    return SASL_OK;
}

static int
cb_pass(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
    struct creds *c = ctx;
    size_t l = strlen(c->pass);

    free(c->secret);
    c->secret = calloc(1, sizeof(sasl_secret_t) + l + 1);
    c->secret->len = (unsigned long)l;
    memcpy(c->secret->data, c->pass, l);
    *psecret = c->secret;
    return SASL_OK;
}

static void
scram(const char *pass, bool bytes, bool expect_ok)
{
    struct creds cr = {"alice", pass, NULL};
    sasl_callback_t cbs_[] = {
        {SASL_CB_AUTHNAME, CB(cb_simple), &cr},
        {SASL_CB_USER, CB(cb_simple), &cr},
        {SASL_CB_PASS, CB(cb_pass), &cr},
        {SASL_CB_LIST_END, NULL, NULL},
    };
    sasl_conn_t *cc = NULL;
    const char *cout = NULL, *chosen = NULL;
    unsigned coutlen = 0;
    struct ctx c;
    struct xe_sasl *s = NULL;
    char doc[8192], data[1024];
    size_t dlen = 0;
    int r;

    c = new_ctx(&s, NULL);
    sasl_client_new("xmpp", "example.test", NULL, NULL, cbs_, 0, &cc);
    r = sasl_client_start(cc, "SCRAM-SHA-256", NULL, &cout, &coutlen, &chosen);
    ok(r == SASL_CONTINUE || r == SASL_OK, "Cyrus client starts SCRAM-SHA-256");
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='" NS2
             "' mechanism='SCRAM-SHA-256'><initial-response>%s"
             "</initial-response><user-agent id='ua-1'/></authenticate>",
             b64(cout, coutlen));
    is_int(feed(&c, doc, bytes), XE_SASL2_CHALLENGE, "client-first -> a challenge");
    ok(extract(outs(&c), "challenge", data, sizeof(data), &dlen) == 0 && dlen > 0,
       "server-first in the challenge");
    r = sasl_client_step(cc, data, (unsigned)dlen, NULL, &cout, &coutlen);
    ok(r == SASL_CONTINUE || r == SASL_OK, "client-final computed");
    snprintf(doc, sizeof(doc), "<response xmlns='" NS2 "'>%s</response>",
             b64(cout, coutlen));
    r = feed(&c, doc, bytes);
    if (!expect_ok) {
        ok(r == XE_SASL2_FAILURE && c.cond == XE_SASL_NOT_AUTHORIZED,
           "a wrong SCRAM password: not-authorized");
    } else {
        is_int(r, XE_SASL2_SUCCESS, "client-final -> authenticated (%s)",
               bytes ? "byte by byte" : "whole");
        xe_buf_free(&c.out);
        xe_buf_init(&c.out, 0);
        xe_sasl2_build_success(c.s2, &c.out, "alice@example.test/x", NULL, 0);
        xe_buf_append(&c.out, "", 1);
        ok(extract(outs(&c), "additional-data", data, sizeof(data), &dlen) == 0 &&
               dlen > 2 && data[0] == 'v' && data[1] == '=',
           "the server signature in <additional-data>");
        r = sasl_client_step(cc, data, (unsigned)dlen, NULL, &cout, &coutlen);
        is_int(r, SASL_OK, "Cyrus' client verifies the server signature");
        ok(strstr(outs(&c), "<authorization-identifier>alice@example.test/x<") != NULL,
           "the authorization identifier");
    }
    sasl_dispose(&cc);
    free(cr.secret);
    free_ctx(&c, &s);
}

/* A mechanism of our own claims its names; the rest go to Cyrus. */
static bool
own_claims(void *ctx, const char *m)
{
    return strcmp(m, "HT-SHA-256-NONE") == 0;
}

static int
own_step(void *ctx, const struct xe_sasl2_auth *a, const char *in, size_t inlen,
         const char **out, size_t *outlen, char *jid_r, size_t jidmax,
         enum xe_sasl_cond *cond_r, const char **detail_r)
{
    int *calls = ctx;

    (*calls)++;
    snprintf(jid_r, jidmax, "bob@example.test");
    if (in && inlen == 4 && memcmp(in, "good", 4) == 0 && a->fast) {
        *out = "sig";
        *outlen = 3;
        return XE_SASL_OK;
    }
    *cond_r = XE_SASL_NOT_AUTHORIZED;
    *detail_r = "bad token";
    return XE_SASL_FAIL;
}

static void
test_own(void)
{
    int calls = 0;
    struct xe_sasl2_mech own = {own_claims, own_step, &calls};
    struct ctx c;
    struct xe_sasl *s = NULL;

    c = new_ctx(&s, &own);
    ok(feed(&c,
            "<authenticate xmlns='" NS2 "' mechanism='HT-SHA-256-NONE'><initial-response>"
            "YmFk</initial-response><fast xmlns='urn:xmpp:fast:0' "
            "count='7'/></authenticate>",
            false) == XE_SASL2_FAILURE &&
           calls == 1 && c.cond == XE_SASL_NOT_AUTHORIZED,
       "a claimed mechanism goes to its own code, and fails there");
    ok(xe_sasl2_request(c.s2)->has_count && xe_sasl2_request(c.s2)->fast_count == 7,
       "the FAST count is parsed");
    is_int(
        feed(&c,
             "<authenticate xmlns='" NS2
             "' mechanism='HT-SHA-256-NONE'><initial-response>"
             "Z29vZA==</initial-response><fast xmlns='urn:xmpp:fast:0'/></authenticate>",
             true),
        XE_SASL2_SUCCESS, "and succeeds there");
    is_str(xe_sasl2_jid(c.s2), "bob@example.test", "its JID");
    xe_buf_free(&c.out);
    xe_buf_init(&c.out, 0);
    xe_sasl2_build_success(c.s2, &c.out, NULL, NULL, 0);
    xe_buf_append(&c.out, "", 1);
    is_str(
        outs(&c),
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>c2ln</additional-data>"
        "<authorization-identifier>bob@example.test</authorization-identifier></success>",
        "its additional data; the bare JID when none is given");
    free_ctx(&c, &s);
    c = new_ctx(&s, &own);
    calls = 0;
    char doc[8192];
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='" NS2 "' mechanism='PLAIN'><initial-response>%s"
             "</initial-response></authenticate>",
             b64("\0bob\0bob-pw", 11));
    ok(feed(&c, doc, false) == XE_SASL2_SUCCESS && calls == 0,
       "an unclaimed mechanism goes to Cyrus");
    free_ctx(&c, &s);
}

int
main(void)
{
    char *dir = tap_mkdtemp("sasl2-test"), *err = NULL;
    int r;

    test_features();
    test_builders();
    r = xe_userstore_open(dir, false, 16, &store, &err);
    ok(r == XE_US_OK, "userstore open %s", err ? err : "");
    free(err);
    err = NULL;
    add_user("alice@example.test", "alice-pw", false);
    add_user("bob@example.test", "bob-pw", false);
    add_user("carol@example.test", "carol-pw", true);
    r = xe_sasl_global_init(store, "SCRAM-SHA-256 PLAIN", 4096, &err);
    ok(r == 0, "xe_sasl_global_init %s", err ? err : "");
    free(err);
    {
        sasl_callback_t none[] = {{SASL_CB_LIST_END, NULL, NULL}};
        ok(sasl_client_init(none) == SASL_OK, "sasl_client_init");
    }
    if (r == 0) {
        test_parse();
        test_malformed();
        test_retry();
        scram("alice-pw", false, true);
        scram("alice-pw", true, true);
        scram("wrong", false, false);
        test_own();
    }
    /* this test's sasl_client_init: without its done, Cyrus keeps the client
     * mechanisms (and DIGEST-MD5's cache) while xedge's done unloads the
     * plugins they came from */
    sasl_client_done();
    xe_sasl_global_done();
    xe_userstore_close(&store);
    rm_rf(dir);
    return tap_done();
}
