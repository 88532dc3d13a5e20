#define _GNU_SOURCE
/* Unit tests of the s2s core (src/core/s2s.h): two cores talk to each other in
 * memory (OUT -> IN, VERIFY -> IN), TLS being simulated by tls_up on both
 * sides; canned Prosody-like bytes drive BACKEND and LINK; stanzas are
 * checked against the authenticated pairs; everything also byte by byte.
 * TAP output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialback.h"
#include "metrics.h"
#include "s2s.h"
#include "sasl.h"
#include "userstore.h"
#include "tap.h"

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef-a";
static const unsigned char SECRET_B[] = "0123456789abcdef0123456789abcdef-b";

static bool
local_a(void *ctx, const char *d)
{
    (void)ctx;
    return strcmp(d, "a.test") == 0 || strcmp(d, "a2.test") == 0;
}

static bool
local_b(void *ctx, const char *d)
{
    (void)ctx;
    return strcmp(d, "b.test") == 0;
}

static int secret_policy; /* a.test and b.test: policy "secret" */

static enum xe_s2s_policy
pol(void *ctx, const char *d)
{
    (void)ctx;
    if (secret_policy && (strcmp(d, "a.test") == 0 || strcmp(d, "b.test") == 0))
        return XE_S2S_POLICY_SECRET;
    if (strcmp(d, "evil.test") == 0)
        return XE_S2S_POLICY_REFUSE;
    if (strcmp(d, "strict.test") == 0)
        return XE_S2S_POLICY_EXTERNAL;
    return XE_S2S_POLICY_DIALBACK;
}

static struct xe_s2s_params
params(enum xe_s2s_kind kind)
{
    struct xe_s2s_params p;

    memset(&p, 0, sizeof(p));
    p.kind = kind;
    p.peer = "test";
    p.require_tls = true;
    p.tls_possible = true;
    p.policy = pol;
    p.max_stanza_preauth = 16384;
    p.max_stanza = 65536;
    p.max_depth_preauth = 8;
    p.max_attrs_preauth = 16;
    return p;
}

static int bytewise;

/* Feed all of buf's output of one core into another; collect actions. */
static enum xe_s2s_action
pass(struct xe_s2s *from, struct xe_s2s *to, struct xe_buf *rest)
{
    struct xe_buf *o = xe_s2s_output(from);
    enum xe_s2s_action a = XE_S2S_CONTINUE;
    size_t used, off = 0;

    xe_buf_append(rest, o->data, o->len);
    xe_buf_consume(o, o->len);
    while (off < rest->len) {
        size_t n = bytewise ? 1 : rest->len - off;
        a = xe_s2s_feed(to, rest->data + off, n, &used);
        off += used;
        if (a != XE_S2S_CONTINUE)
            break;
    }
    xe_buf_consume(rest, off);
    return a;
}

/* A new stream of p's kind fed one stream header with these attributes
 * (from, to); returns the action, the stream in *sp. */
static enum xe_s2s_action
header_only(const struct xe_s2s_params *p, const char *attrs, struct xe_s2s **sp)
{
    struct xe_buf h;
    size_t used;
    enum xe_s2s_action a;

    xe_buf_init(&h, 0);
    xe_buf_appendf(&h,
                   "<stream:stream xmlns='jabber:server' "
                   "xmlns:stream='http://etherx.jabber.org/streams' %s version='1.0'>",
                   attrs);
    *sp = xe_s2s_new(p);
    a = xe_s2s_feed(*sp, h.data, h.len, &used);
    xe_buf_free(&h);
    return a;
}

static void
run(void)
{
    struct xe_s2s_params pi = params(XE_S2S_IN), po = params(XE_S2S_OUT);
    struct xe_s2s *in, *out, *ver, *in2;
    struct xe_buf r1, r2;
    enum xe_s2s_action a;
    const struct xe_s2s_event *req;
    struct xe_s2s_event ev;
    const char *cond, *sf, *st;
    const unsigned char *raw;
    size_t len;
    char key[XE_DIALBACK_KEY_LEN + 1];
    struct xe_buf *o;

    printf("# %s\n", bytewise ? "byte by byte" : "whole");
    xe_buf_init(&r1, 0);
    xe_buf_init(&r2, 0);
    /* b.test's inbound side; a.test's outbound side */
    pi.is_local = local_b;
    pi.secret = SECRET_B;
    pi.secret_len = sizeof(SECRET_B) - 1;
    po.is_local = local_a;
    po.secret = SECRET;
    po.secret_len = sizeof(SECRET) - 1;
    po.from = "a.test";
    po.to = "b.test";
    in = xe_s2s_new(&pi);
    out = xe_s2s_new(&po);
    ok(in && out, "cores made");
    is_int(pass(out, in, &r1), XE_S2S_CONTINUE, "IN reads OUT's header");
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "<required/>", 11) != NULL &&
           memmem(o->data, o->len, "features:dialback", 17) == NULL,
       "before TLS: STARTTLS required, no dialback offered");
    is_int(pass(in, out, &r2), XE_S2S_CONTINUE, "OUT reads the features, asks STARTTLS");
    is_int(pass(out, in, &r1), XE_S2S_STARTTLS, "IN: STARTTLS");
    is_int(pass(in, out, &r2), XE_S2S_STARTTLS, "OUT: proceed");
    xe_buf_consume(&r1, r1.len);
    xe_buf_consume(&r2, r2.len);
    xe_s2s_tls_up(in, NULL, 0);
    xe_s2s_tls_up(out, NULL, 0);
    is_int(pass(out, in, &r1), XE_S2S_CONTINUE, "IN reads the new header");
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "urn:xmpp:features:dialback", 26) != NULL &&
           memmem(o->data, o->len, "EXTERNAL", 8) == NULL,
       "after TLS: dialback offered, no EXTERNAL without a certificate");
    is_int(pass(in, out, &r2), XE_S2S_CONTINUE, "OUT sends db:result");
    is_int(pass(out, in, &r1), XE_S2S_CONTINUE, "IN reads db:result");
    ok(xe_s2s_next_event(in, &ev) && ev.type == XE_S2S_EV_DIALBACK,
       "IN: a dialback request");
    req = &ev;
    is_str(req->from, "a.test", "request from");
    is_str(req->to, "b.test", "request to");
    is_str(req->stream_id, xe_s2s_id(in), "request's stream id is IN's");
    xe_dialback_key(SECRET, sizeof(SECRET) - 1, "b.test", "a.test", xe_s2s_id(in), key);
    is_str(req->key, key, "the key is the XEP-0185 key of a.test's secret");

    /* b.test verifies with a.test's authoritative server (another IN core) */
    {
        struct xe_s2s_params pv = params(XE_S2S_VERIFY), pa = params(XE_S2S_IN);
        struct xe_buf r3, r4;
        xe_buf_init(&r3, 0);
        xe_buf_init(&r4, 0);
        pv.from = "b.test";
        pv.to = "a.test";
        pv.key = req->key;
        pv.stream_id = req->stream_id;
        pv.tls_possible = false; /* plain: db:verify is answered before TLS too */
        pa.is_local = local_a;
        pa.secret = SECRET;
        pa.secret_len = sizeof(SECRET) - 1;
        ver = xe_s2s_new(&pv);
        in2 = xe_s2s_new(&pa);
        is_int(pass(ver, in2, &r3), XE_S2S_CONTINUE, "authoritative: header");
        is_int(pass(in2, ver, &r4), XE_S2S_CONTINUE, "VERIFY: features, sends db:verify");
        is_int(pass(ver, in2, &r3), XE_S2S_CONTINUE, "authoritative answers");
        is_int(pass(in2, ver, &r4), XE_S2S_VERDICT, "VERIFY: verdict");
        is_int(xe_s2s_verdict(ver, &cond), XE_S2S_VALID, "the key is valid");
        xe_s2s_free(&ver);
        xe_s2s_free(&in2);
        /* a forged key */
        pv.key = "00112233";
        ver = xe_s2s_new(&pv);
        in2 = xe_s2s_new(&pa);
        pass(ver, in2, &r3);
        pass(in2, ver, &r4);
        pass(ver, in2, &r3);
        is_int(pass(in2, ver, &r4), XE_S2S_VERDICT, "forged: verdict");
        is_int(xe_s2s_verdict(ver, &cond), XE_S2S_INVALID, "a forged key is invalid");
        xe_s2s_free(&ver);
        xe_s2s_free(&in2);
        xe_buf_free(&r3);
        xe_buf_free(&r4);
    }

    ok(!xe_s2s_next_event(in, &ev), "one request only");
    xe_s2s_dialback_verdict(in, "a.test", "b.test", XE_S2S_VALID, NULL);
    is_int(pass(in, out, &r2), XE_S2S_VERDICT, "OUT: the verdict");
    is_int(xe_s2s_verdict(out, &cond), XE_S2S_VALID, "OUT: valid");
    ok(xe_s2s_pair_ok(in, "a.test", "b.test"), "IN: pair authenticated");

    /* stanzas */
    xe_buf_append_str(xe_s2s_output(out),
                      "<message from='alice@a.test/r' to='bob@b.test' "
                      "type='chat'><body>hi &amp; bye</body></message>");
    a = pass(out, in, &r1);
    ok(a == XE_S2S_CONTINUE && xe_s2s_next_event(in, &ev) && ev.type == XE_S2S_EV_STANZA,
       "IN: a stanza");
    raw = ev.raw;
    len = ev.len;
    sf = ev.from;
    st = ev.to;
    ok(len > 20 && memcmp(raw, "<message from='alice@a.test/r'", 30) == 0 &&
           raw[len - 1] == '>',
       "the stanza's bytes as they came");
    is_str(sf, "a.test", "stanza from domain");
    is_str(st, "b.test", "stanza to domain");
    xe_buf_append_str(xe_s2s_output(out),
                      "<message from='mallory@c.test' to='bob@b.test'/>");
    is_int(pass(out, in, &r1), XE_S2S_CLOSE, "a forged from closes the stream");
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "<invalid-from", 13) != NULL, "with <invalid-from/>");
    xe_s2s_free(&in);
    xe_s2s_free(&out);
    xe_buf_consume(&r1, r1.len);
    xe_buf_consume(&r2, r2.len);

    /* host-unknown, refused, unknown-domain db:result, invalid verdict */
    pi.tls = true;
    in = xe_s2s_new(&pi);
    xe_buf_append_str(&r1,
                      "<stream:stream xmlns='jabber:server' "
                      "xmlns:stream='http://etherx.jabber.org/streams' "
                      "xmlns:db='jabber:server:dialback' from='a.test' to='b.test' "
                      "version='1.0'><db:result from='a.test' to='x.test'>k</db:result>"
                      "<db:result from='a.test' to='b.test'>k</db:result>");
    {
        struct xe_buf tmp;
        xe_buf_init(&tmp, 0);
        is_int(pass(in, in, &tmp), XE_S2S_CONTINUE, "(nothing)");
        xe_buf_free(&tmp);
    }
    a = XE_S2S_CONTINUE;
    {
        size_t used, off = 0;
        while (off < r1.len) {
            a = xe_s2s_feed(in, r1.data + off, bytewise ? 1 : r1.len - off, &used);
            off += used;
            if (a != XE_S2S_CONTINUE)
                break;
        }
        xe_buf_consume(&r1, off);
    }
    ok(a == XE_S2S_CONTINUE && xe_s2s_next_event(in, &ev) &&
           ev.type == XE_S2S_EV_DIALBACK && strcmp(ev.to, "b.test") == 0,
       "db:result to a domain we serve: a request");
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "<item-not-found", 15) != NULL,
       "db:result to a domain we do not serve: item-not-found");
    xe_buf_append_str(&r1, "<message from='alice@a.test' to='bob@b.test'/>");
    {
        size_t used, off = 0;
        while (off < r1.len) {
            a = xe_s2s_feed(in, r1.data + off, bytewise ? 1 : r1.len - off, &used);
            off += used;
            if (a != XE_S2S_CONTINUE)
                break;
        }
        xe_buf_consume(&r1, off);
    }
    is_int(a, XE_S2S_CLOSE, "a stanza before authentication closes");
    xe_s2s_free(&in);
    in = xe_s2s_new(&pi);
    xe_buf_append_str(&r1,
                      "<stream:stream xmlns='jabber:server' "
                      "xmlns:stream='http://etherx.jabber.org/streams' "
                      "xmlns:db='jabber:server:dialback' from='a.test' to='b.test' "
                      "version='1.0'><db:result from='a.test' to='b.test'>k</db:result>");
    {
        size_t used, off = 0;
        while (off < r1.len) {
            a = xe_s2s_feed(in, r1.data + off, bytewise ? 1 : r1.len - off, &used);
            off += used;
            if (a != XE_S2S_CONTINUE)
                break;
        }
        xe_buf_consume(&r1, off);
    }
    ok(a == XE_S2S_CONTINUE && xe_s2s_next_event(in, &ev), "request");
    xe_s2s_dialback_verdict(in, "a.test", "b.test", XE_S2S_INVALID, NULL);
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "type='invalid'", 14) != NULL &&
           memmem(o->data, o->len, "<not-authorized", 15) != NULL && xe_s2s_closed(in),
       "invalid: db:result invalid, then not-authorized");
    xe_s2s_free(&in);
    a = header_only(&pi, "from='evil.test' to='b.test'", &in);
    o = xe_s2s_output(in);
    ok(a == XE_S2S_CLOSE && memmem(o->data, o->len, "<policy-violation", 17) != NULL,
       "a refused domain: policy-violation");
    xe_s2s_free(&in);
    a = header_only(&pi, "from='a.test' to='nothere.test'", &in);
    o = xe_s2s_output(in);
    ok(a == XE_S2S_CLOSE && memmem(o->data, o->len, "<host-unknown", 13) != NULL,
       "a stream to a domain we do not serve: host-unknown");
    /* ... with the peer's domain echoed as to, but only a well-formed one */
    ok(memmem(o->data, o->len, "to='a.test'", 11) != NULL,
       "host-unknown: the response header is addressed to the peer's domain");
    xe_s2s_free(&in);
    a = header_only(&pi, "from='a.&amp;&quot;&gt;' to='nothere.test'", &in);
    o = xe_s2s_output(in);
    ok(a == XE_S2S_CLOSE && memmem(o->data, o->len, "<host-unknown", 13) != NULL &&
           memmem(o->data, o->len, " to=", 4) == NULL &&
           memmem(o->data, o->len, "&quot;", 6) == NULL,
       "host-unknown with a malformed from: the response header has no to");
    xe_s2s_free(&in);

    /* SASL EXTERNAL on IN with a certificate valid for a.test */
    in = xe_s2s_new(&pi);
    {
        const char *names[] = {"A.test"};
        size_t used;
        xe_s2s_tls_up(in, names, 1);
        xe_buf_append_str(&r1, "<stream:stream xmlns='jabber:server' "
                               "xmlns:stream='http://etherx.jabber.org/streams' "
                               "xmlns:db='jabber:server:dialback' from='a.test' "
                               "to='b.test' version='1.0'>");
        a = xe_s2s_feed(in, r1.data, r1.len, &used);
        xe_buf_consume(&r1, r1.len);
        o = xe_s2s_output(in);
        ok(memmem(o->data, o->len, "EXTERNAL", 8) != NULL, "EXTERNAL offered");
        xe_buf_append_str(&r1, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                               "mechanism='EXTERNAL'>YS50ZXN0</auth>");
        a = xe_s2s_feed(in, r1.data, r1.len, &used);
        xe_buf_consume(&r1, r1.len);
        is_int(a, XE_S2S_PAIR_UP, "EXTERNAL: the pair is up");
        is_str(xe_s2s_request(in)->from, "a.test", "pair from");
        ok(xe_s2s_pair_ok(in, "a.test", "b.test"), "authenticated");
    }
    xe_s2s_free(&in);

    /* wildcard DNS names (RFC 6125 6.4.3): the left-most label only, one label */
    {
        static const struct {
            const char *name, *from;
            bool external;
        } w[] = {
            {"*.a.test", "x.a.test", true},      {"*.A.test", "X.a.test", true},
            {"*.a.test", "a.test", false},       {"*.a.test", "y.x.a.test", false},
            {"*.test", "a.test", false},         {"x*.a.test", "xy.a.test", false},
            {"*.*.a.test", "x.y.a.test", false}, {"*.a.test", "*.a.test", false},
        };
        for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
            const char *names[] = {w[i].name};
            char hdr[300];
            size_t used;
            in = xe_s2s_new(&pi);
            xe_s2s_tls_up(in, names, 1);
            snprintf(hdr, sizeof(hdr),
                     "<stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams' from='%s' "
                     "to='b.test' version='1.0'>",
                     w[i].from);
            a = xe_s2s_feed(in, hdr, strlen(hdr), &used);
            o = xe_s2s_output(in);
            ok((memmem(o->data, o->len, "EXTERNAL", 8) != NULL) == w[i].external,
               "a certificate for %s %s EXTERNAL to %s", w[i].name,
               w[i].external ? "offers" : "does not offer", w[i].from);
            xe_s2s_free(&in);
        }
    }

    /* BACKEND: Prosody's outgoing stream */
    {
        struct xe_s2s_params pb = params(XE_S2S_BACKEND);
        size_t used;
        pb.is_local = local_a;
        in = xe_s2s_new(&pb);
        xe_buf_append_str(&r1,
                          "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams' "
                          "xmlns:db='jabber:server:dialback' from='a.test' "
                          "to='b.test' version='1.0'>"
                          "<db:result from='a.test' to='b.test'>abc</db:result>"
                          "<message from='alice@a.test' to='bob@b.test'/>");
        a = xe_s2s_feed(in, r1.data, r1.len, &used);
        ok(a == XE_S2S_OPEN && used < r1.len, "BACKEND: open, the stanza waits");
        is_str(xe_s2s_request(in)->to, "b.test", "the remote");
        xe_s2s_backend_verdict(in, XE_S2S_VALID, NULL);
        o = xe_s2s_output(in);
        ok(memmem(o->data, o->len, "<db:result from='b.test' to='a.test' type='valid'/>",
                  51) != NULL,
           "the backend gets valid");
        xe_buf_consume(&r1, r1.len);
        xe_s2s_free(&in);
    }
    /* LINK: to Prosody's s2s port */
    {
        struct xe_s2s_params pl = params(XE_S2S_LINK);
        size_t used;
        pl.from = "a.test";
        pl.to = "b.test";
        pl.assertion = "xe1:token";
        pl.tls_possible = false;
        out = xe_s2s_new(&pl);
        xe_buf_append_str(&r1,
                          "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams' "
                          "xmlns:db='jabber:server:dialback' id='x1' from='b.test' "
                          "to='a.test' version='1.0'><stream:features><starttls "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><dialback "
                          "xmlns='urn:xmpp:features:dialback'/></stream:features>");
        a = xe_s2s_feed(out, r1.data, r1.len, &used);
        xe_buf_consume(&r1, r1.len);
        o = xe_s2s_output(out);
        ok(a == XE_S2S_CONTINUE &&
               memmem(o->data, o->len, ">xe1:token</db:result>", 22) != NULL,
           "LINK: the assertion in db:result");
        xe_buf_append_str(&r1, "<db:result from='b.test' to='a.test' type='valid'/>");
        a = xe_s2s_feed(out, r1.data, r1.len, &used);
        xe_buf_consume(&r1, r1.len);
        ok(a == XE_S2S_VERDICT && xe_s2s_verdict(out, NULL) == XE_S2S_VALID,
           "LINK: valid");
        xe_s2s_free(&out);
    }
    /* OUT to a peer whose policy is "external", without a usable
     * certificate: no dialback, the verdict is policy-violation */
    {
        struct xe_s2s_params ps = params(XE_S2S_OUT);
        size_t used;
        ps.from = "a.test";
        ps.to = "strict.test";
        ps.secret = SECRET;
        ps.secret_len = sizeof(SECRET) - 1;
        ps.tls = true;
        out = xe_s2s_new(&ps);
        xe_buf_append_str(&r1,
                          "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams' "
                          "xmlns:db='jabber:server:dialback' id='x2' "
                          "from='strict.test' version='1.0'><stream:features><dialback "
                          "xmlns='urn:xmpp:features:dialback'/></stream:features>");
        a = xe_s2s_feed(out, r1.data, r1.len, &used);
        xe_buf_consume(&r1, r1.len);
        o = xe_s2s_output(out);
        ok(a == XE_S2S_VERDICT && xe_s2s_verdict(out, &cond) == XE_S2S_ERROR &&
               strcmp(cond, "policy-violation") == 0 &&
               memmem(o->data, o->len, "<db:result", 10) == NULL,
           "OUT, policy external, no certificate: policy-violation, no db:result");
        xe_s2s_free(&out);
    }
    xe_buf_free(&r1);
    xe_buf_free(&r2);
}

/* ---- SASL with a pre-shared secret ---- */

static const unsigned char PEER_SECRET[] = "peer-secret-0123456789abcdef0123456789";
static const unsigned char WRONG_SECRET[] = "wrong-secret-0123456789abcdef012345678";
static char *scram[] = {"SCRAM-SHA-256"};
static char *scram_digest[] = {"DIGEST-MD5", "SCRAM-SHA-256"};
static const unsigned char *a_secret = PEER_SECRET; /* what a.test's OUT holds */
static char **a_mechs = scram;
static size_t a_n_mechs = 1;

/* b.test's IN knows a.test's secret; a.test's OUT knows b.test's */
static bool
secret_of(void *ctx, const char *d, struct xe_s2s_secret *out)
{
    (void)ctx;
    if (strcmp(d, "a.test") == 0) {
        out->secret = PEER_SECRET;
        out->len = sizeof(PEER_SECRET) - 1;
        out->mechs = scram_digest;
        out->n_mechs = 2;
        return true;
    }
    if (strcmp(d, "b.test") == 0) {
        out->secret = a_secret;
        out->len = strlen((const char *)a_secret);
        out->mechs = a_mechs;
        out->n_mechs = a_n_mechs;
        return true;
    }
    return false;
}

/* the TLS session's channel bindings as each side sees them (none: NULL) */
static const struct xe_cbind *in_cb, *out_cb;
static size_t in_n_cb, out_n_cb;
static char in_features[4096];

/* OUT (a.test) -> IN (b.test) through STARTTLS to the SASL features; then
 * both sides until OUT's verdict. *pair_up_r: IN said XE_S2S_PAIR_UP. */
static enum xe_s2s_result
secret_exchange(struct xe_s2s *out, struct xe_s2s *in, bool *pair_up_r,
                const char **cond_r, bool *offered_r)
{
    struct xe_buf r1, r2;
    struct xe_buf *o;
    enum xe_s2s_result res = XE_S2S_ERROR;

    *pair_up_r = false;
    xe_buf_init(&r1, 0);
    xe_buf_init(&r2, 0);
    pass(out, in, &r1);
    pass(in, out, &r2);
    pass(out, in, &r1); /* starttls */
    pass(in, out, &r2); /* proceed */
    xe_buf_consume(&r1, r1.len);
    xe_buf_consume(&r2, r2.len);
    xe_s2s_set_channel_bindings(in, in_cb, in_n_cb);
    xe_s2s_set_channel_bindings(out, out_cb, out_n_cb);
    xe_s2s_tls_up(in, NULL, 0);
    xe_s2s_tls_up(out, NULL, 0);
    pass(out, in, &r1);
    o = xe_s2s_output(in);
    snprintf(in_features, sizeof(in_features), "%.*s", (int)o->len,
             (const char *)o->data);
    *offered_r =
        memmem(o->data, o->len, "<mechanism>DIGEST-MD5</mechanism>", 33) != NULL &&
        memmem(o->data, o->len, "<mechanism>SCRAM-SHA-256</mechanism>", 36) != NULL &&
        memmem(o->data, o->len, "EXTERNAL", 8) == NULL;
    for (int i = 0; i < 40; i++) {
        enum xe_s2s_action a = pass(in, out, &r2);
        if (a == XE_S2S_VERDICT) {
            res = xe_s2s_verdict(out, cond_r);
            break;
        }
        if (a == XE_S2S_CLOSE)
            break;
        if (pass(out, in, &r1) == XE_S2S_PAIR_UP)
            *pair_up_r = true;
    }
    xe_buf_free(&r1);
    xe_buf_free(&r2);
    return res;
}

static void
run_secret(void)
{
    struct xe_s2s_params pi = params(XE_S2S_IN), po = params(XE_S2S_OUT);
    struct xe_s2s *in, *out;
    const char *cond = NULL;
    bool up = false, offered = false;
    struct xe_buf *o;

    pi.is_local = local_b;
    pi.peer_secret = secret_of;
    pi.secret = SECRET_B;
    pi.secret_len = sizeof(SECRET_B) - 1;
    po.is_local = local_a;
    po.peer_secret = secret_of;
    po.secret = SECRET;
    po.secret_len = sizeof(SECRET) - 1;
    po.from = "a.test";
    po.to = "b.test";

    /* the right secret */
    a_secret = PEER_SECRET;
    xe_metrics_reset();
    in = xe_s2s_new(&pi);
    out = xe_s2s_new(&po);
    is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_VALID,
           "secret: OUT authenticated");
    ok(offered, "secret: IN offers the peer's mechanisms after TLS, no EXTERNAL");
    ok(up, "secret: IN brings the pair up");
    is_str(xe_s2s_mech(out), "SCRAM-SHA-256", "secret: OUT by SCRAM-SHA-256");
    is_str(xe_s2s_mech(in), "SCRAM-SHA-256", "secret: IN by SCRAM-SHA-256");
    ok(xe_s2s_pair_ok(in, "a.test", "b.test"), "secret: (a.test, b.test) on IN");
    ok(!xe_s2s_pair_ok(in, "a.test", "a2.test"), "secret: the stream's to only");
    {
        struct xe_buf m;
        xe_buf_init(&m, 0);
        xe_metrics_render(&m);
        xe_buf_append(&m, "", 1);
        ok(strstr((char *)m.data, "xedge_s2s_auth_in_total{mechanism=\"SCRAM-SHA-256\","
                                  "result=\"success\"} 1") &&
               strstr((char *)m.data,
                      "xedge_s2s_auth_out_total{mechanism=\"SCRAM-SHA-256\","
                      "result=\"success\"} 1"),
           "secret: counted once each way by mechanism and result");
        xe_buf_free(&m);
    }
    xe_s2s_free(&in);
    xe_s2s_free(&out);

    /* DIGEST-MD5, as in the seed, when a.test prefers it */
    a_mechs = scram_digest;
    a_n_mechs = 2;
    in = xe_s2s_new(&pi);
    out = xe_s2s_new(&po);
    is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_VALID,
           "secret: DIGEST-MD5 authenticates");
    is_str(xe_s2s_mech(out), "DIGEST-MD5", "secret: OUT by DIGEST-MD5");
    ok(up && xe_s2s_pair_ok(in, "a.test", "b.test"), "secret: DIGEST-MD5 pair up");
    xe_s2s_free(&in);
    xe_s2s_free(&out);
    a_mechs = scram;
    a_n_mechs = 1;

    /* a wrong secret, policy "secret": not-authorized, no dialback */
    secret_policy = 1;
    a_secret = WRONG_SECRET;
    pi.max_auth_attempts = 1;
    in = xe_s2s_new(&pi);
    out = xe_s2s_new(&po);
    is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_ERROR,
           "wrong secret: OUT fails");
    is_str(cond, "not-authorized", "wrong secret: not-authorized");
    ok(!up && !xe_s2s_pair_ok(in, "a.test", "b.test"), "wrong secret: no pair on IN");
    ok(xe_s2s_closed(in), "wrong secret: max_attempts 1 ends IN's stream");
    o = xe_s2s_output(out);
    ok(memmem(o->data, o->len, "<db:result", 10) == NULL,
       "wrong secret, policy secret: no dialback");
    xe_s2s_free(&in);
    xe_s2s_free(&out);
    secret_policy = 0;

    /* a wrong secret, policy "dialback": OUT falls back to dialback */
    pi.max_auth_attempts = 3;
    in = xe_s2s_new(&pi);
    out = xe_s2s_new(&po);
    {
        struct xe_s2s_event ev;
        bool got = false;
        (void)secret_exchange(out, in, &up, &cond, &offered);
        while (xe_s2s_next_event(in, &ev))
            got = got || ev.type == XE_S2S_EV_DIALBACK;
        ok(got && !up && !xe_s2s_closed(in),
           "wrong secret, policy dialback: OUT sends db:result");
    }
    xe_s2s_free(&in);
    xe_s2s_free(&out);
    a_secret = PEER_SECRET;

    /* channel binding: the SCRAM -PLUS variants with the TLS session's
     * bindings (here given as data: t/unit/tls.c derives them) */
    {
        struct xe_cbind ib[2], ob[2];
        memset(ib, 0, sizeof(ib));
        ib[0].type = "tls-exporter";
        ib[1].type = "tls-server-end-point";
        for (size_t k = 0; k < 2; k++) {
            ib[k].len = 32;
            ib[k].advertise = true;
            memset(ib[k].data, 0x40 + (int)k, 32);
        }
        memcpy(ob, ib, sizeof(ob));
        in_cb = ib, in_n_cb = 2, out_cb = ob, out_n_cb = 2;
        in = xe_s2s_new(&pi);
        out = xe_s2s_new(&po);
        is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_VALID,
               "binding: OUT authenticated");
        ok(strstr(in_features, "<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>"
                               "SCRAM-SHA-256</mechanism>") &&
               strstr(in_features, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
                                   "<channel-binding type='tls-exporter'/><channel-"
                                   "binding type='tls-server-end-point'/>"),
           "binding: IN offers SCRAM-SHA-256-PLUS first and advertises its types");
        is_str(xe_s2s_mech(out), "SCRAM-SHA-256-PLUS",
               "binding: OUT by SCRAM-SHA-256-PLUS");
        is_str(xe_s2s_mech(in), "SCRAM-SHA-256-PLUS",
               "binding: IN by SCRAM-SHA-256-PLUS");
        ok(up, "binding: IN brings the pair up");
        xe_s2s_free(&in);
        xe_s2s_free(&out);

        /* only tls-server-end-point on OUT's side: that one */
        out_cb = &ob[1], out_n_cb = 1;
        in = xe_s2s_new(&pi);
        out = xe_s2s_new(&po);
        is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_VALID,
               "binding: tls-server-end-point authenticates");
        is_str(xe_s2s_mech(in), "SCRAM-SHA-256-PLUS", "  ... by SCRAM-SHA-256-PLUS");
        xe_s2s_free(&in);
        xe_s2s_free(&out);

        /* a binding that differs (a man in the middle): refused */
        ob[1].data[5] ^= 1;
        secret_policy = 1;
        in = xe_s2s_new(&pi);
        out = xe_s2s_new(&po);
        is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_ERROR,
               "binding: a tls-server-end-point that differs fails");
        is_str(cond, "not-authorized", "  ... not-authorized");
        ok(!up, "  ... no pair");
        xe_s2s_free(&in);
        xe_s2s_free(&out);
        secret_policy = 0;
        ob[1].data[5] ^= 1;

        /* a remote without bindings (an older xedge): SCRAM-SHA-256, with
         * OUT saying it could bind ("y"), which that remote accepts */
        out_cb = ob, out_n_cb = 2, in_cb = NULL, in_n_cb = 0;
        in = xe_s2s_new(&pi);
        out = xe_s2s_new(&po);
        is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_VALID,
               "binding: towards a remote that offers no -PLUS: authenticated");
        is_str(xe_s2s_mech(out), "SCRAM-SHA-256", "  ... by SCRAM-SHA-256");
        ok(strstr(in_features, "PLUS") == NULL &&
               strstr(in_features, "sasl-channel") == NULL,
           "  ... (no -PLUS, no binding types offered without bindings)");
        xe_s2s_free(&in);
        xe_s2s_free(&out);

        /* a client without bindings (an older xedge): SCRAM-SHA-256 ("n") */
        in_cb = ib, in_n_cb = 2, out_cb = NULL, out_n_cb = 0;
        in = xe_s2s_new(&pi);
        out = xe_s2s_new(&po);
        is_int(secret_exchange(out, in, &up, &cond, &offered), XE_S2S_VALID,
               "binding: a client that cannot bind still authenticates");
        is_str(xe_s2s_mech(in), "SCRAM-SHA-256", "  ... by SCRAM-SHA-256");
        xe_s2s_free(&in);
        xe_s2s_free(&out);
        in_cb = out_cb = NULL;
        in_n_cb = out_n_cb = 0;
    }
}

/* The adapter alone: a user of the store never authenticates as a domain,
 * a domain's secret never as a user. */
static struct xe_userstore *store;

static int
drive(struct xe_sasl *srv, const char *authname, const unsigned char *pw,
      const char *mech)
{
    struct xe_sasl_client *c =
        xe_sasl_client_new(authname, "b.test", pw, strlen((const char *)pw), NULL);
    const char *out = NULL, *sout = NULL;
    size_t outlen = 0, soutlen = 0;
    enum xe_sasl_cond cond;
    int r, sr = XE_SASL_FAIL;

    if (c == NULL)
        return -99;
    r = xe_sasl_client_start(c, mech, &out, &outlen);
    if (r != XE_SASL_FAIL)
        sr = xe_sasl_start(srv, mech, out, outlen, &sout, &soutlen, &cond);
    while (sr == XE_SASL_CONTINUE) {
        r = xe_sasl_client_step(c, sout, soutlen, &out, &outlen);
        if (r == XE_SASL_FAIL)
            break;
        sr = xe_sasl_step(srv, out, outlen, &sout, &soutlen, &cond);
    }
    xe_sasl_client_free(&c);
    return sr;
}

/* Feed a string to a core (byte by byte when bytewise); the last action. */
static enum xe_s2s_action
feed_str(struct xe_s2s *s, const char *str)
{
    size_t len = strlen(str), off = 0, used;
    enum xe_s2s_action a = XE_S2S_CONTINUE;

    while (off < len) {
        a = xe_s2s_feed(s, str + off, bytewise ? 1 : len - off, &used);
        off += used;
        if (a != XE_S2S_CONTINUE)
            break;
    }
    return a;
}

/* Piggybacking (XEP-0220 2.5, RFC 6120 multiplexing): several domain pairs on
 * one inbound stream, each asked for by its own db:result and verified on its
 * own; stanzas only for the pairs verified. a.test's side serves a.test and
 * a2.test; b.test's server sends for b.test and its MUC muc.b.test. */
static void
run_piggyback(void)
{
    struct xe_s2s_params pi = params(XE_S2S_IN);
    struct xe_s2s *in;
    struct xe_s2s_event ev;
    struct xe_buf *o;
    enum xe_s2s_action a;
    bool b_a2 = false, muc_a = false;

    printf("# piggybacking, %s\n", bytewise ? "byte by byte" : "whole");
    pi.is_local = local_a;
    pi.secret = SECRET;
    pi.secret_len = sizeof(SECRET) - 1;
    pi.tls = true; /* Direct TLS */
    in = xe_s2s_new(&pi);
    xe_s2s_tls_up(in, NULL, 0);
    a = feed_str(in, "<stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams' "
                     "xmlns:db='jabber:server:dialback' from='b.test' to='a.test' "
                     "version='1.0'><db:result from='b.test' to='a.test'>k1</db:result>");
    ok(a == XE_S2S_CONTINUE && xe_s2s_next_event(in, &ev) &&
           ev.type == XE_S2S_EV_DIALBACK && strcmp(ev.from, "b.test") == 0 &&
           strcmp(ev.to, "a.test") == 0,
       "piggyback: the first db:result (b.test, a.test): a verification");
    xe_s2s_dialback_verdict(in, "b.test", "a.test", XE_S2S_VALID, NULL);
    ok(xe_s2s_pair_ok(in, "b.test", "a.test"),
       "piggyback: (b.test, a.test) authenticated");
    xe_buf_consume(xe_s2s_output(in), xe_s2s_output(in)->len);

    /* two more pairs on the same stream: another local domain, a MUC */
    a = feed_str(in, "<db:result from='b.test' to='a2.test'>k2</db:result>"
                     "<db:result from='muc.b.test' to='a.test'>k3</db:result>");
    is_int(a, XE_S2S_CONTINUE, "piggyback: two more db:result on the stream");
    while (xe_s2s_next_event(in, &ev)) {
        if (ev.type != XE_S2S_EV_DIALBACK)
            continue;
        if (strcmp(ev.from, "b.test") == 0 && strcmp(ev.to, "a2.test") == 0 &&
            strcmp(ev.key, "k2") == 0)
            b_a2 = true;
        if (strcmp(ev.from, "muc.b.test") == 0 && strcmp(ev.to, "a.test") == 0 &&
            strcmp(ev.key, "k3") == 0)
            muc_a = true;
    }
    ok(b_a2 && muc_a, "piggyback: the core asks for both verifications");
    ok(!xe_s2s_pair_ok(in, "b.test", "a2.test") &&
           !xe_s2s_pair_ok(in, "muc.b.test", "a.test"),
       "piggyback: neither authenticated before its verdict");
    /* verdicts in the other order */
    xe_s2s_dialback_verdict(in, "muc.b.test", "a.test", XE_S2S_VALID, NULL);
    xe_s2s_dialback_verdict(in, "b.test", "a2.test", XE_S2S_VALID, NULL);
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "<db:result from='a.test' to='muc.b.test' type='valid'/>",
              55) != NULL &&
           memmem(o->data, o->len, "<db:result from='a2.test' to='b.test' type='valid'/>",
                  52) != NULL,
       "piggyback: both answered valid");
    ok(xe_s2s_pair_ok(in, "b.test", "a2.test") &&
           xe_s2s_pair_ok(in, "muc.b.test", "a.test") &&
           xe_s2s_pair_ok(in, "b.test", "a.test"),
       "piggyback: three pairs authenticated on one stream");
    xe_buf_consume(o, o->len);

    /* a fourth pair whose verification fails: refused, the others stay */
    a = feed_str(in, "<db:result from='x.b.test' to='a.test'>k4</db:result>");
    ok(a == XE_S2S_CONTINUE && xe_s2s_next_event(in, &ev) &&
           ev.type == XE_S2S_EV_DIALBACK && strcmp(ev.from, "x.b.test") == 0,
       "piggyback: a fourth db:result: a verification");
    xe_s2s_dialback_verdict(in, "x.b.test", "a.test", XE_S2S_INVALID, NULL);
    o = xe_s2s_output(in);
    ok(memmem(o->data, o->len, "<db:result from='a.test' to='x.b.test' type='invalid'/>",
              55) != NULL &&
           memmem(o->data, o->len, "not-authorized", 14) == NULL && !xe_s2s_closed(in),
       "piggyback: the failed pair is answered invalid, the stream stays (XEP-0220: it "
       "carries other pairs)");
    ok(!xe_s2s_pair_ok(in, "x.b.test", "a.test") &&
           xe_s2s_pair_ok(in, "b.test", "a.test"),
       "piggyback: the failed pair is not authenticated, the first one still is");
    xe_buf_consume(o, o->len);

    /* stanzas of each authenticated pair are forwarded */
    a = feed_str(in,
                 "<message from='bob@b.test/r' to='alice@a.test'><body>1</body></message>"
                 "<message from='bob@b.test/r' to='carl@a2.test'><body>2</body></message>"
                 "<presence from='room@muc.b.test/nick' to='alice@a.test/r'/>");
    is_int(a, XE_S2S_CONTINUE, "piggyback: stanzas of three pairs");
    ok(xe_s2s_next_event(in, &ev) && ev.type == XE_S2S_EV_STANZA &&
           strcmp(ev.from, "b.test") == 0 && strcmp(ev.to, "a.test") == 0,
       "piggyback: (b.test, a.test) forwarded");
    ok(xe_s2s_next_event(in, &ev) && ev.type == XE_S2S_EV_STANZA &&
           strcmp(ev.from, "b.test") == 0 && strcmp(ev.to, "a2.test") == 0,
       "piggyback: (b.test, a2.test) forwarded");
    ok(xe_s2s_next_event(in, &ev) && ev.type == XE_S2S_EV_STANZA &&
           strcmp(ev.from, "muc.b.test") == 0 && strcmp(ev.to, "a.test") == 0 &&
           ev.len > 9 && memcmp(ev.raw, "<presence", 9) == 0,
       "piggyback: (muc.b.test, a.test) forwarded, as it came");
    ok(!xe_s2s_next_event(in, &ev), "piggyback: nothing else");

    /* the refused pair, then a domain never asked for: invalid-from */
    a = feed_str(in, "<message from='eve@c.test' to='alice@a.test'/>");
    o = xe_s2s_output(in);
    ok(a == XE_S2S_CLOSE && memmem(o->data, o->len, "<invalid-from", 13) != NULL &&
           !xe_s2s_next_event(in, &ev),
       "piggyback: a stanza from a third domain: <invalid-from/>, not forwarded");
    xe_s2s_free(&in);

    /* the refused pair's stanzas are refused the same way */
    in = xe_s2s_new(&pi);
    xe_s2s_tls_up(in, NULL, 0);
    feed_str(in, "<stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' "
                 "xmlns:db='jabber:server:dialback' from='b.test' to='a.test' "
                 "version='1.0'><db:result from='b.test' to='a.test'>k1</db:result>"
                 "<db:result from='x.b.test' to='a.test'>k4</db:result>");
    xe_s2s_dialback_verdict(in, "b.test", "a.test", XE_S2S_VALID, NULL);
    xe_s2s_dialback_verdict(in, "x.b.test", "a.test", XE_S2S_INVALID, NULL);
    while (xe_s2s_next_event(in, &ev))
        ;
    a = feed_str(in, "<message from='eve@x.b.test' to='alice@a.test'/>");
    o = xe_s2s_output(in);
    ok(a == XE_S2S_CLOSE && memmem(o->data, o->len, "<invalid-from", 13) != NULL,
       "piggyback: a stanza of the refused pair: <invalid-from/>");
    xe_s2s_free(&in);

    /* a stream that keeps sending bad keys ends after XE_S2S_MAX_REFUSED */
    in = xe_s2s_new(&pi);
    xe_s2s_tls_up(in, NULL, 0);
    feed_str(in, "<stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' "
                 "xmlns:db='jabber:server:dialback' from='b.test' to='a.test' "
                 "version='1.0'><db:result from='b.test' to='a.test'>k1</db:result>");
    xe_s2s_dialback_verdict(in, "b.test", "a.test", XE_S2S_VALID, NULL);
    for (int i = 1; i < XE_S2S_MAX_REFUSED; i++) {
        feed_str(in, "<db:result from='x.b.test' to='a.test'>k4</db:result>");
        xe_s2s_dialback_verdict(in, "x.b.test", "a.test", XE_S2S_INVALID, NULL);
    }
    ok(!xe_s2s_closed(in), "piggyback: %d refused keys, the stream stays",
       XE_S2S_MAX_REFUSED - 1);
    feed_str(in, "<db:result from='x.b.test' to='a.test'>k4</db:result>");
    xe_s2s_dialback_verdict(in, "x.b.test", "a.test", XE_S2S_INVALID, NULL);
    o = xe_s2s_output(in);
    ok(xe_s2s_closed(in) && memmem(o->data, o->len, "<not-authorized", 15) != NULL,
       "piggyback: the %dth ends it with <not-authorized/>", XE_S2S_MAX_REFUSED);
    xe_s2s_free(&in);
}

static void
run_identities(void)
{
    char *mechs[] = {"SCRAM-SHA-256"};
    struct xe_sasl *srv;
    char *err = NULL;
    struct xe_user u;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "a.test@b.test");
    xe_user_set_password(&u, "user-pw", 7, 4096);
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "store user a.test@b.test");
    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "alice@b.test");
    xe_user_set_password(&u, "alice-pw", 8, 4096);
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "store user alice@b.test");

    srv = xe_sasl_new_peer("b.test", "a.test", PEER_SECRET, sizeof(PEER_SECRET) - 1,
                           mechs, 1, &err);
    ok(srv != NULL, "peer session");
    is_int(drive(srv, "a.test", PEER_SECRET, "SCRAM-SHA-256"), XE_SASL_OK,
           "peer: the domain with its secret");
    is_str(xe_sasl_jid(srv), "a.test", "peer: the identity is the domain");
    is_int(drive(srv, "a.test", (const unsigned char *)"user-pw", "SCRAM-SHA-256"),
           XE_SASL_FAIL, "peer: the password of user a.test@b.test does not count");
    is_int(drive(srv, "alice", (const unsigned char *)"alice-pw", "SCRAM-SHA-256"),
           XE_SASL_FAIL, "peer: a user of the store cannot authenticate as a domain");
    is_int(drive(srv, "alice@b.test", (const unsigned char *)"alice-pw", "SCRAM-SHA-256"),
           XE_SASL_FAIL, "peer: nor with her bare JID");
    is_int(drive(srv, "a.test", PEER_SECRET, "PLAIN"), XE_SASL_FAIL,
           "peer: PLAIN is never offered");
    xe_sasl_free(&srv);

    srv = xe_sasl_new("b.test", mechs, 1, true, &err);
    is_int(drive(srv, "a.test", PEER_SECRET, "SCRAM-SHA-256"), XE_SASL_FAIL,
           "c2s: a domain's secret is no user's password");
    is_int(drive(srv, "a.test", (const unsigned char *)"user-pw", "SCRAM-SHA-256"),
           XE_SASL_OK, "c2s: the user a.test@b.test still logs in");
    xe_sasl_free(&srv);
}

/* A peer's <stream:error/> on every kind of stream ends it: our stream is
 * closed, nothing is answered, the condition and text are kept. */
static void
run_peer_errors(void)
{
    static const char err[] =
        "<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>going \"down\"\xc3\xa9</text>"
        "</stream:error>";
    static const enum xe_s2s_kind kinds[] = {XE_S2S_IN, XE_S2S_OUT, XE_S2S_VERIFY,
                                             XE_S2S_BACKEND, XE_S2S_LINK};
    static const char *const names[] = {"in", "out", "verify", "backend", "link"};

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        struct xe_s2s_params p = params(kinds[k]);
        struct xe_s2s *s;
        struct xe_buf *o;
        enum xe_s2s_action a = XE_S2S_CONTINUE;
        const char *text = NULL, *cond;
        size_t used, off = 0, n = strlen(err);

        p.is_local = kinds[k] == XE_S2S_IN ? local_b : local_a;
        p.from = kinds[k] == XE_S2S_LINK ? "b.test" : "a.test";
        p.to = kinds[k] == XE_S2S_LINK ? "a.test" : "b.test";
        p.key = "00112233";
        p.stream_id = "sid";
        p.assertion = "xe1:token";
        p.require_tls = false;
        a = header_only(&p,
                        kinds[k] == XE_S2S_IN        ? "from='a.test' to='b.test'"
                        : kinds[k] == XE_S2S_BACKEND ? "from='a.test' to='b.test'"
                                                     : "id='peer-id' from='b.test'",
                        &s);
        ok(s != NULL && a == XE_S2S_CONTINUE, "%s: the peer's header is taken", names[k]);
        if (s == NULL)
            continue;
        o = xe_s2s_output(s);
        xe_buf_consume(o, o->len);
        while (off < n) {
            a = xe_s2s_feed(s, err + off, bytewise ? 1 : n - off, &used);
            off += used;
            if (a != XE_S2S_CONTINUE)
                break;
        }
        is_int(a, XE_S2S_CLOSE, "%s: a peer's stream error closes the stream", names[k]);
        ok(xe_s2s_closed(s), "%s: our stream is ended", names[k]);
        o = xe_s2s_output(s);
        ok(memmem(o->data, o->len, "<stream:error", 13) == NULL &&
               memmem(o->data, o->len, "unsupported-stanza-type", 23) == NULL,
           "%s: nothing is answered (no stream error of ours)", names[k]);
        ok(o->len >= 16 && memcmp(o->data + o->len - 16, "</stream:stream>", 16) == 0,
           "%s: our stream's end is sent", names[k]);
        cond = xe_s2s_peer_error(s, &text);
        is_str(cond ? cond : "(none)", "system-shutdown",
               "%s: the peer's condition is kept", names[k]);
        is_str(text, "going ?down???", "%s: its text, made safe for a log line",
               names[k]);
        if (kinds[k] == XE_S2S_OUT || kinds[k] == XE_S2S_VERIFY ||
            kinds[k] == XE_S2S_LINK)
            is_int(xe_s2s_verdict(s, NULL), XE_S2S_ERROR, "%s: the verdict is an error",
                   names[k]);
        xe_s2s_free(&s);
    }
}

static bool
has(struct xe_s2s *s, const char *needle)
{
    struct xe_buf *o = xe_s2s_output(s);
    return memmem(o->data, o->len, needle, strlen(needle)) != NULL;
}

/* Pre-XMPP-1.0 streams (no version; jabberd2 without a certificate):
 * dialback only where encryption is not required, refused where it is. */
static void
run_legacy(void)
{
    static const char hdr[] = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                              "xmlns:stream='http://etherx.jabber.org/streams' "
                              "xmlns:db='jabber:server:dialback'>";
    struct xe_s2s_params p = params(XE_S2S_IN);
    struct xe_s2s *s;
    struct xe_s2s_event ev;
    struct xe_buf msg;
    char key[XE_DIALBACK_KEY_LEN + 1];

    /* IN, require_encryption = false */
    p.is_local = local_b;
    p.require_tls = false;
    s = xe_s2s_new(&p);
    is_int(feed_str(s, hdr), XE_S2S_CONTINUE,
           "legacy IN: a header without version, to, from");
    ok(has(s, "<stream:stream") && !has(s, "version='1.0'>") &&
           !has(s, "<stream:features"),
       "legacy IN: answered with a header without version and no features");
    xe_buf_consume(xe_s2s_output(s), xe_s2s_output(s)->len);
    xe_dialback_key(SECRET, sizeof(SECRET) - 1, "b.test", "a.test", xe_s2s_id(s), key);
    xe_buf_init(&msg, 0);
    xe_buf_appendf(&msg, "<db:result from='a.test' to='b.test'>%s</db:result>", key);
    msg.data[msg.len] = 0;
    is_int(feed_str(s, (const char *)msg.data), XE_S2S_CONTINUE, "legacy IN: db:result");
    ok(xe_s2s_next_event(s, &ev) && ev.type == XE_S2S_EV_DIALBACK &&
           strcmp(ev.from, "a.test") == 0 && strcmp(ev.to, "b.test") == 0,
       "legacy IN: the domains come from the db:result: a verification of a.test");
    xe_s2s_dialback_verdict(s, "a.test", "b.test", XE_S2S_VALID, NULL);
    ok(has(s, "type='valid'"), "legacy IN: answered valid");
    is_int(
        feed_str(
            s, "<message from='alice@a.test' to='bob@b.test'><body>hi</body></message>"),
        XE_S2S_CONTINUE, "legacy IN: a stanza of the pair");
    ok(xe_s2s_next_event(s, &ev) && ev.type == XE_S2S_EV_STANZA, "legacy IN: forwarded");
    is_int(feed_str(s, "<db:result from='a.test' to='c.test'>00</db:result>"),
           XE_S2S_CONTINUE, "legacy IN: db:result to a domain not served here");
    ok(has(s, "item-not-found") && !xe_s2s_next_event(s, &ev),
       "legacy IN: ... item-not-found, no verification");
    is_int(feed_str(s, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
           XE_S2S_CLOSE, "legacy IN: no STARTTLS on a pre-1.0 stream");
    xe_s2s_free(&s);
    xe_buf_free(&msg);

    /* IN, require_encryption = true (the default): refused */
    p.require_tls = true;
    s = xe_s2s_new(&p);
    is_int(feed_str(s, hdr), XE_S2S_CLOSE, "legacy IN, encryption required: refused");
    ok(has(s, "policy-violation") && has(s, "encryption is required"),
       "legacy IN, encryption required: <policy-violation/> saying why");
    xe_s2s_free(&s);

    /* OUT: the remote answers without version */
    {
        struct xe_s2s_params po = params(XE_S2S_OUT);
        static const char ans[] = "<stream:stream xmlns='jabber:server' "
                                  "xmlns:stream='http://etherx.jabber.org/streams' "
                                  "xmlns:db='jabber:server:dialback' id='legacy-id'>";
        po.is_local = local_a;
        po.secret = SECRET;
        po.secret_len = sizeof(SECRET) - 1;
        po.from = "a.test";
        po.to = "b.test";
        po.require_tls = false;
        s = xe_s2s_new(&po);
        xe_buf_consume(xe_s2s_output(s), xe_s2s_output(s)->len);
        is_int(feed_str(s, ans), XE_S2S_CONTINUE,
               "legacy OUT: the answer without version");
        xe_dialback_key(SECRET, sizeof(SECRET) - 1, "b.test", "a.test", "legacy-id", key);
        ok(has(s, "<db:result from='a.test' to='b.test'>") && has(s, key),
           "legacy OUT: db:result at once, without waiting for features");
        xe_s2s_free(&s);
        po.require_tls = true;
        s = xe_s2s_new(&po);
        is_int(feed_str(s, ans), XE_S2S_CLOSE, "legacy OUT, encryption required: closed");
        ok(!has(s, "<db:result") && xe_s2s_verdict(s, NULL) == XE_S2S_ERROR &&
               xe_s2s_failure(s) && strstr(xe_s2s_failure(s), "pre-XMPP-1.0"),
           "legacy OUT, encryption required: no dialback, the failure says why");
        xe_s2s_free(&s);
    }
}

/* The remote drops the stream during our SASL EXTERNAL (ejabberd 23.01 with
 * an xmppAddr certificate): the core says so; a retry without EXTERNAL
 * goes to dialback. */
static void
run_external_drop(void)
{
    static const char hdr[] =
        "<stream:stream xmlns='jabber:server' "
        "xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' id='ext-id' from='b.test' version='1.0'>"
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        "<mechanism>EXTERNAL</mechanism></mechanisms>"
        "<dialback xmlns='urn:xmpp:features:dialback'/></stream:features>";
    const char *names[] = {"b.test"};
    struct xe_s2s_params p = params(XE_S2S_OUT);
    struct xe_s2s *s;

    p.is_local = local_a;
    p.secret = SECRET;
    p.secret_len = sizeof(SECRET) - 1;
    p.from = "a.test";
    p.to = "b.test";
    for (int retry = 0; retry < 2; retry++) {
        p.no_external = retry;
        s = xe_s2s_new(&p);
        xe_s2s_tls_up(s, names, 1);
        xe_buf_consume(xe_s2s_output(s), xe_s2s_output(s)->len);
        is_int(feed_str(s, hdr), XE_S2S_CONTINUE, "external drop%s: the features",
               retry ? " (retry)" : "");
        if (!retry) {
            ok(has(s, "mechanism='EXTERNAL'") && !has(s, "<db:result"),
               "external drop: EXTERNAL is tried");
            ok(xe_s2s_external_dropped(s),
               "external drop: unanswered EXTERNAL counts as such");
            is_int(feed_str(s, "</stream:stream>"), XE_S2S_CLOSE,
                   "external drop: the remote ends the stream");
            ok(xe_s2s_external_dropped(s),
               "external drop: the core says it was during EXTERNAL");
        } else {
            ok(!has(s, "mechanism='EXTERNAL'") &&
                   has(s, "<db:result from='a.test' to='b.test'>"),
               "external drop, retry without EXTERNAL: dialback at once");
            ok(!xe_s2s_external_dropped(s), "external drop, retry: no EXTERNAL to drop");
        }
        xe_s2s_free(&s);
    }
    /* a <failure/> is not a drop: dialback on the same stream */
    p.no_external = false;
    s = xe_s2s_new(&p);
    xe_s2s_tls_up(s, names, 1);
    feed_str(s, hdr);
    xe_buf_consume(xe_s2s_output(s), xe_s2s_output(s)->len);
    is_int(feed_str(
               s, "<failure "
                  "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"),
           XE_S2S_CONTINUE, "EXTERNAL refused with <failure/>");
    ok(has(s, "<db:result") && !xe_s2s_external_dropped(s),
       "... dialback on the same stream, not a drop");
    xe_s2s_free(&s);
}

int
main(void)
{
    char d[64];
    char *dir = tap_mkdtemp("s2s-test"), *err = NULL;

    is_int(xe_jid_domain("Alice@A.Test/res@x", d, sizeof(d)), 0, "jid domain");
    is_str(d, "a.test", "domain of a full JID, lower-cased");
    is_int(xe_jid_domain("a.test/x", d, sizeof(d)), 0, "domain/resource");
    is_str(d, "a.test", "domain of domain/resource");
    is_int(xe_jid_domain("alice@", d, sizeof(d)), -1, "empty domain refused");
    ok(dir != NULL && xe_userstore_open(dir, false, 16, &store, &err) == XE_US_OK,
       "user store %s", err ? err : "");
    ok(xe_sasl_global_init(store, "SCRAM-SHA-256 DIGEST-MD5", 4096, &err) == 0, "SASL %s",
       err ? err : "");
    bytewise = 0;
    run();
    run_secret();
    run_piggyback();
    run_peer_errors();
    run_legacy();
    run_external_drop();
    bytewise = 1;
    run();
    run_secret();
    run_piggyback();
    run_peer_errors();
    run_legacy();
    run_external_drop();
    run_identities();
    xe_sasl_global_done();
    xe_userstore_close(&store);
    if (dir)
        rm_rf(dir);
    return tap_done();
}
