/* Unit tests of Bind2 (src/core/bind2.h): the request parsed from a real
 * XML stream, the resource suffix (HMAC-SHA-256, checked against an
 * independent computation), and the backend script fed the canned bytes of
 * Prosody (smacks, carbons, csi_simple), ejabberd and jabberd2 (no carbons,
 * no sm:3) after their login, whole and byte by byte. TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bind2.h"
#include "xmlstream.h"
#include "tap.h"

#define BHDR                                                                             \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' id='b1' from='example.test' "       \
    "version='1.0'>"

static const struct xe_xmlstream_limits lim = {
    XE_DEF_MAX_STANZA_POSTAUTH, XE_POSTAUTH_MAX_XML_DEPTH, XE_POSTAUTH_MAX_ATTRS};

/* ---- the request ---------------------------------------------------------------- */

struct preq {
    struct xe_bind2_req req;
    int r;
    const char *why;
};

static int
p_start(void *c, const struct xe_xml_elem *h, const char *ns)
{
    return XE_XS_CONTINUE;
}

static int
p_elem(void *vc, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct preq *p = vc;

    p->r = xe_bind2_parse(e, &p->req, &p->why);
    return XE_XS_CONTINUE;
}

static int
p_end(void *c)
{
    return XE_XS_CONTINUE;
}

static int
parse(const char *xml, struct preq *p)
{
    static const struct xe_xmlstream_cb cb = {p_start, p_elem, p_end};
    struct xe_xmlstream *xs = xe_xmlstream_new(&lim, &cb, p);
    size_t c;

    memset(p, 0, sizeof(*p));
    p->r = -99;
    xe_xmlstream_feed(xs, BHDR, strlen(BHDR), &c);
    xe_xmlstream_feed(xs, xml, strlen(xml), &c);
    xe_xmlstream_free(&xs);
    return p->r;
}

static void
test_request(void)
{
    struct preq p;

    is_int(parse("<bind xmlns='urn:xmpp:bind:0'><tag>Conversations</tag>"
                 "<enable xmlns='urn:xmpp:carbons:2'/><active xmlns='urn:xmpp:csi:0'/>"
                 "<enable xmlns='urn:xmpp:sm:3' resume='true' max='300'/>"
                 "<enable xmlns='urn:example:unknown'/></bind>",
                 &p),
           0, "a full request parses");
    ok(p.req.present && strcmp(p.req.tag, "Conversations") == 0 && p.req.carbons &&
           p.req.csi == XE_CSI_ACTIVE && p.req.sm && p.req.sm_resume &&
           p.req.sm_max == 300,
       "tag, carbons, active, sm resume max=300");
    is_int(parse("<bind xmlns='urn:xmpp:bind:0'/>", &p), 0, "an empty request");
    ok(p.req.present && p.req.tag[0] == '\0' && !p.req.carbons && !p.req.sm &&
           p.req.csi == XE_CSI_NONE,
       "nothing asked");
    ok(parse("<bind xmlns='urn:xmpp:bind:0'><tag></tag></bind>", &p) < 0, "an empty tag");
    ok(parse("<bind xmlns='urn:xmpp:bind:0'><tag>"
             "0123456789012345678901234567890123456789012345678901234567890123456789"
             "</tag></bind>",
             &p) < 0,
       "a tag over %d bytes", XE_BIND2_MAX_TAG);
    ok(parse(
           "<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' max='x'/></bind>",
           &p) < 0 &&
           p.why != NULL,
       "a bad max (%s)", p.why ? p.why : "");
}

static void
test_resource(void)
{
    unsigned char secret[32], mac[32];
    unsigned mlen = 0;
    char res[128], res2[128], want[128];
    const char msg[] =
        "xedge-bind2\0alice@example.test\0d4565fa7-4d72-4749-b3d3-740edbf87770";

    memset(secret, 0x5a, sizeof(secret));
    HMAC(EVP_sha256(), secret, 32, (const unsigned char *)msg, sizeof(msg) - 1, mac,
         &mlen);
    snprintf(want, sizeof(want), "Gajim.%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
    ok(xe_bind2_resource("Gajim", "alice@example.test",
                         "d4565fa7-4d72-4749-b3d3-740edbf87770", secret, 32, res,
                         sizeof(res)) == 0,
       "resource built");
    is_str(res, want,
           "TAG.hex(HMAC-SHA-256(secret, \"xedge-bind2\\0\" jid \"\\0\" id)[0..6])");
    xe_bind2_resource("Gajim", "bob@example.test", "d4565fa7-4d72-4749-b3d3-740edbf87770",
                      secret, 32, res2, sizeof(res2));
    ok(strcmp(res, res2) != 0, "another user, the same id: another suffix");
    xe_bind2_resource("Gajim", "alice@example.test",
                      "d4565fa7-4d72-4749-b3d3-740edbf87770", secret, 32, res2,
                      sizeof(res2));
    is_str(res2, res, "stable for the same user and id");
    xe_bind2_resource(NULL, "alice@example.test", NULL, secret, 32, res, sizeof(res));
    xe_bind2_resource(NULL, "alice@example.test", NULL, secret, 32, res2, sizeof(res2));
    ok(strlen(res) == 12 && strcmp(res, res2) != 0, "no tag, no id: a random suffix (%s)",
       res);
    ok(xe_bind2_resource("Gajim", "a@b", "x", secret, 32, res, 10) < 0,
       "too small a buffer: an error");
}

/* ---- the backend script ------------------------------------------------------------ */

struct run {
    const struct xe_bind2_req *req;
    const struct xe_bind2_caps *caps;
    struct xe_bind2_script *s;
    int last;
    int n_after_done;
    char *err;
};

static int
r_elem(void *vc, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct run *r = vc;

    if (r->s == NULL) {
        r->s = xe_bind2_script_new(r->req, r->caps, e, "Tag.0011aa", &r->err);
        r->last = r->s ? XE_BIND2_MORE : XE_BIND2_FAIL;
        return XE_XS_CONTINUE;
    }
    if (r->last == XE_BIND2_DONE)
        r->n_after_done++;
    r->last = xe_bind2_script_answer(r->s, e, raw, len);
    return XE_XS_CONTINUE;
}

/* Feed the backend's FEATURES, then ANSWERS (whole or byte by byte). */
static struct run
run(const struct xe_bind2_req *req, const struct xe_bind2_caps *caps,
    const char *features, const char *answers, bool bytes)
{
    static const struct xe_xmlstream_cb cb = {p_start, r_elem, p_end};
    struct run r;
    struct xe_xmlstream *xs;
    size_t c;
    struct xe_buf doc;

    memset(&r, 0, sizeof(r));
    r.req = req;
    r.caps = caps;
    xs = xe_xmlstream_new(&lim, &cb, &r);
    xe_buf_init(&doc, 0);
    xe_buf_append_str(&doc, BHDR);
    xe_buf_append_str(&doc, features);
    xe_buf_append_str(&doc, answers);
    if (bytes)
        for (size_t i = 0; i < doc.len; i++)
            xe_xmlstream_feed(xs, doc.data + i, 1, &c);
    else
        xe_xmlstream_feed(xs, doc.data, doc.len, &c);
    xe_buf_free(&doc);
    xe_xmlstream_free(&xs);
    return r;
}

static char *
str_of(const unsigned char *p, size_t n)
{
    static char b[8][4096];
    static int i;
    char *o = b[i++ % 8];

    snprintf(o, 4096, "%.*s", (int)n, (const char *)p);
    return o;
}

static const char *
requests(const struct run *r)
{
    size_t n = 0;
    const unsigned char *p = r->s ? xe_bind2_script_requests(r->s, &n) : NULL;
    return p ? str_of(p, n) : "";
}

static const char *
bound(const struct run *r)
{
    struct xe_buf b;
    static char o[4096];

    xe_buf_init(&b, 0);
    xe_bind2_script_bound(r->s, &b);
    snprintf(o, sizeof(o), "%.*s", (int)b.len, (const char *)b.data);
    xe_buf_free(&b);
    return o;
}

static const char *
held(const struct run *r)
{
    size_t n = 0;
    const unsigned char *p = xe_bind2_script_held(r->s, &n);
    return str_of(p, n);
}

/* Prosody 0.12 with mod_smacks, mod_carbons, mod_csi_simple */
#define PROSODY_FEATURES                                                                 \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>" \
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"         \
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://prosody.im' "  \
    "ver='abc='/><sm xmlns='urn:xmpp:sm:2'><optional/></sm><sm xmlns='urn:xmpp:sm:3'>"   \
    "<optional/></sm><csi xmlns='urn:xmpp:csi:0'/></stream:features>"
/* ejabberd 23.01 */
#define EJABBERD_FEATURES                                                                \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"                  \
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"         \
    "<sm xmlns='urn:xmpp:sm:2'/><sm xmlns='urn:xmpp:sm:3'/><csi "                        \
    "xmlns='urn:xmpp:csi:0'/>"                                                           \
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "                           \
    "node='http://www.process-one.net/en/ejabberd/' ver='x='/>"                          \
    "<register xmlns='http://jabber.org/features/iq-register'/></stream:features>"
/* jabberd2 2.7 */
#define JABBERD2_FEATURES                                                                \
    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"                  \
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"                                   \
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"

static void
test_prosody(void)
{
    struct xe_bind2_req req = {true, "Tag", true, XE_CSI_INACTIVE, true, true, 0};
    struct xe_bind2_caps caps = {true, true, true};

    for (int bytes = 0; bytes < 2; bytes++) {
        struct run r =
            run(&req, &caps, PROSODY_FEATURES,
                "<iq type='result' id='xe-b2-bind'><bind "
                "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/"
                "Tag.0011aa</jid></bind></iq>"
                "<iq type='result' id='xe-b2-carb' to='alice@example.test/"
                "Tag.0011aa'/>"
                "<enabled xmlns='urn:xmpp:sm:3' id='e3f1c2' resume='true' "
                "max='600' location='10.0.0.5:5222'/>"
                "<message from='bob@example.test/x' to='alice@example.test/"
                "Tag.0011aa'><body>hi</body></message>"
                "<r xmlns='urn:xmpp:sm:3'/>",
                bytes);
        ok(r.s != NULL, "Prosody: script (%s)", bytes ? "byte by byte" : "whole");
        is_str(requests(&r),
               "<iq type='set' id='xe-b2-bind'><bind "
               "xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>Tag.0011aa</resource></bind></iq>"
               "<iq type='set' id='xe-b2-carb'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
               "<inactive xmlns='urn:xmpp:csi:0'/>"
               "<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
               "Prosody: bind, carbons, CSI, SM last; no session (optional)");
        is_int(r.last, XE_BIND2_DONE, "Prosody: done");
        is_int(r.n_after_done, 2, "two elements after <enabled/> (held)");
        is_str(xe_bind2_script_jid(r.s), "alice@example.test/Tag.0011aa",
               "the bound JID");
        is_str(
            bound(&r),
            "<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='e3f1c2' "
            "resume='true' max='600'/></bound>",
            "<bound/> with <enabled/>, the backend's location dropped");
        is_str(held(&r),
               "<message from='bob@example.test/x' to='alice@example.test/Tag.0011aa'>"
               "<body>hi</body></message><r xmlns='urn:xmpp:sm:3'/>",
               "what followed <enabled/> held raw, in order; the answers swallowed");
        ok(xe_bind2_script_carbons(r.s) && xe_bind2_script_sm(r.s) &&
               xe_bind2_script_unsynced(r.s) == 0,
           "carbons and SM on, nothing unsynced");
        xe_bind2_script_free(&r.s);
    }
}

static void
test_ejabberd(void)
{
    struct xe_bind2_req req = {true, "Tag", true, XE_CSI_ACTIVE, true, false, 0};
    struct xe_bind2_caps caps = {true, true, true};
    struct run r =
        run(&req, &caps, EJABBERD_FEATURES,
            "<iq xmlns='jabber:client' type='result' id='xe-b2-bind'><bind "
            "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/"
            "Tag.0011aa</jid></bind></iq>"
            "<presence from='carol@example.test/y' to='alice@example.test/"
            "Tag.0011aa' type='unavailable'/>"
            "<iq xmlns='jabber:client' type='error' id='xe-b2-carb'><enable "
            "xmlns='urn:xmpp:carbons:2'/><error type='cancel'><feature-not-"
            "implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            "<failed xmlns='urn:xmpp:sm:3'><unexpected-request "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
            false);

    ok(r.s != NULL, "ejabberd: script");
    ok(strstr(requests(&r),
              "<active xmlns='urn:xmpp:csi:0'/><enable xmlns='urn:xmpp:sm:3'/>") != NULL,
       "ejabberd: active, then SM without resume");
    is_int(r.last, XE_BIND2_DONE,
           "ejabberd: done after an error for carbons and SM failed");
    ok(!xe_bind2_script_carbons(r.s) && !xe_bind2_script_sm(r.s),
       "neither carbons nor SM on");
    ok(strstr(bound(&r), "<failed xmlns='urn:xmpp:sm:3'>") != NULL,
       "<bound/> says SM failed");
    ok(strncmp(held(&r), "<presence from='carol@example.test/y'", 37) == 0,
       "the presence before the answers is held, not lost");
    is_int(xe_bind2_script_unsynced(r.s), 1, "and counted as arrived before <enabled/>");
    xe_bind2_script_free(&r.s);
}

static void
test_jabberd2(void)
{
    struct xe_bind2_req req = {true, "", true, XE_CSI_INACTIVE, true, true, 0};
    struct xe_bind2_caps caps = {false, false, false}; /* what the pool can do */

    for (int bytes = 0; bytes < 2; bytes++) {
        struct run r =
            run(&req, &caps, JABBERD2_FEATURES,
                "<iq type='result' id='xe-b2-bind'><bind "
                "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/"
                "Tag.0011aa</jid></bind></iq>"
                "<iq type='result' id='xe-b2-sess'/>",
                bytes);
        ok(r.s != NULL, "jabberd2: script");
        is_str(requests(&r),
               "<iq type='set' id='xe-b2-bind'><bind "
               "xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>Tag.0011aa</resource></bind></iq>"
               "<iq type='set' id='xe-b2-sess'><session "
               "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
               "jabberd2: bind and the required session only (%s)",
               bytes ? "byte by byte" : "whole");
        is_int(r.last, XE_BIND2_DONE, "jabberd2: done after the session");
        is_str(
            bound(&r),
            "<bound xmlns='urn:xmpp:bind:0'><failed xmlns='urn:xmpp:sm:3'>"
            "<unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
            "</bound>",
            "SM asked but the pool cannot: <failed/> in <bound/>");
        xe_bind2_script_free(&r.s);
    }
    /* without the session's answer: not done yet */
    struct run r = run(&req, &caps, JABBERD2_FEATURES,
                       "<iq type='result' id='xe-b2-bind'><bind "
                       "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/"
                       "Tag.0011aa</jid></bind></iq>",
                       false);
    is_int(r.last, XE_BIND2_MORE, "jabberd2: the session's answer still awaited");
    xe_bind2_script_free(&r.s);
}

static void
test_failures(void)
{
    struct xe_bind2_caps caps = {true, true, true};
    struct run r;

    r = run(NULL, &caps, PROSODY_FEATURES,
            "<iq type='error' id='xe-b2-bind'><error type='cancel'><conflict "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            false);
    ok(r.last == XE_BIND2_FAIL && xe_bind2_script_error(r.s) != NULL,
       "a refused bind fails (%s)", r.s ? xe_bind2_script_error(r.s) : "");
    xe_bind2_script_free(&r.s);
    r = run(NULL, &caps, PROSODY_FEATURES,
            "<iq type='result' id='xe-b2-bind'><bind "
            "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
            false);
    is_int(r.last, XE_BIND2_FAIL, "a bind result without a JID fails");
    xe_bind2_script_free(&r.s);
    r = run(
        NULL, &caps, JABBERD2_FEATURES,
        "<iq type='result' id='xe-b2-bind'><bind "
        "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>a@example.test/r</jid></bind></iq>"
        "<iq type='error' id='xe-b2-sess'/>",
        false);
    is_int(r.last, XE_BIND2_FAIL, "a refused required session fails");
    xe_bind2_script_free(&r.s);
    r = run(NULL, &caps,
            "<stream:features><mechanisms "
            "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>",
            "", false);
    ok(r.s == NULL && r.err != NULL, "features without bind: no script (%s)",
       r.err ? r.err : "");
    free(r.err);
    /* the held bytes are bounded */
    {
        struct xe_bind2_req req = {true, "", false, XE_CSI_NONE, true, false, 0};
        struct xe_buf big;
        xe_buf_init(&big, 0);
        xe_buf_append_str(&big,
                          "<iq type='result' id='xe-b2-bind'><bind "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>a@example.test/"
                          "r</jid></bind></iq>");
        for (int i = 0; i < 40; i++) {
            xe_buf_append_str(&big, "<message><body>");
            for (int j = 0; j < 8000; j++)
                xe_buf_append_str(&big, "x");
            xe_buf_append_str(&big, "</body></message>");
        }
        xe_buf_append(&big, "", 1);
        r = run(&req, &caps, PROSODY_FEATURES, (char *)big.data, false);
        ok(r.last == XE_BIND2_FAIL, "more than %d bytes held: a failure, not a growth",
           XE_BIND2_MAX_HELD);
        xe_bind2_script_free(&r.s);
        xe_buf_free(&big);
    }
}

int
main(void)
{
    test_request();
    test_resource();
    test_prosody();
    test_ejabberd();
    test_jabberd2();
    test_failures();
    return tap_done();
}
