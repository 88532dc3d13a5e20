/* Unit tests of the sans-IO backend handshake (src/core/backend.c): a canned
 * transcript of what a Prosody backend sends, fed whole, byte by byte and in
 * random splits; what xedge sends back and when; where the handshake stops
 * in the input; and the failure cases. TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "backend.h"
#include "util.h"
#include "tap.h"

#define DOMAIN "example.test"
#define LOCAL "alice"
#define TOKEN "v1.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl-_x"
#define MAXF 4096

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

#define HEADER1                                                                          \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' id='5d7e1b8c-0a11' "                \
    "from='example.test' version='1.0' xml:lang='en'>"
#define FEATURES1                                                                        \
    "<stream:features><mechanisms xmlns='" NS_SASL                                       \
    "'><mechanism>SCRAM-SHA-1</mechanism>"                                               \
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
#define SUCCESS "<success xmlns='" NS_SASL "'/>"
#define HEADER2                                                                          \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' id='9f00c2aa-77' "                  \
    "from='example.test' version='1.0' xml:lang='en'>"
#define FEATURES2                                                                        \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>" \
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"         \
    "</stream:features>"
#define EXTRA                                                                            \
    "<iq type='result' id='pipelined' xmlns='jabber:client'/><message to='a@b'>"         \
    "<body>partial"

#define OUR_HEADER                                                                       \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>"

static const char transcript[] = HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2 EXTRA;
static size_t end_f1, end_success, end_f2; /* offsets in transcript */

/* ---- helpers ------------------------------------------------------------ */

static size_t
b64dec(const char *in, size_t len, unsigned char *out)
{
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);

    if (n < 0)
        return (size_t)-1;
    while (len > 0 && in[len - 1] == '=') {
        len--;
        n--;
    }
    return (size_t)n;
}

static int
count(const char *hay, const char *needle)
{
    int c = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        c++;
    return c;
}

/* The output queued so far, as a NUL-terminated copy appended to OUT (the
 * buffer is consumed, as the I/O layer would). */
static void
take_output(struct xe_backend_hs *b, char *out, size_t size)
{
    struct xe_buf *o = xe_backend_hs_output(b);
    size_t have = strlen(out);

    if (have + o->len < size) {
        memcpy(out + have, o->data, o->len);
        out[have + o->len] = '\0';
    }
    xe_buf_consume(o, o->len);
}

/* What we must have sent once the backend's bytes up to offset E were fed. */
static void
expected_output(size_t e, const char *auth, char *out, size_t size)
{
    snprintf(out, size, "%s%s%s", OUR_HEADER, e >= end_f1 ? auth : "",
             e >= end_success ? OUR_HEADER : "");
}

/* ---- the good handshake, in any split ----------------------------------- */

struct run {
    enum xe_bhs_result result;
    bool order_ok;   /* the output after each chunk was what was due by then */
    bool consume_ok; /* CONTINUE consumed whole chunks; nothing fed after READY */
    size_t ready_at; /* absolute offset where READY said the handshake ended */
    char out[4096];
    char features[MAXF + 1];
    size_t features_len;
    char forwarded[512]; /* the bytes left over for the client */
    char diag[512];
};

/* Feed the transcript in the chunks whose lengths are given by SPLIT (0
 * ends; the last chunk takes the rest). */
static void
run_split(const size_t *split, const char *auth, struct run *r)
{
    size_t total = strlen(transcript), off = 0, i = 0;
    struct xe_backend_hs *b = xe_backend_hs_new(DOMAIN, LOCAL, TOKEN, MAXF);
    char want[4096];

    memset(r, 0, sizeof(*r));
    r->order_ok = r->consume_ok = true;
    r->result = XE_BHS_CONTINUE;
    if (b == NULL) {
        r->result = XE_BHS_FAIL;
        return;
    }
    take_output(b, r->out, sizeof(r->out));
    while (off < total) {
        size_t len = split[i] != 0 ? split[i++] : total - off, used = 12345;
        enum xe_bhs_result res;

        if (len > total - off)
            len = total - off;
        res = xe_backend_hs_feed(b, transcript + off, len, &used);
        take_output(b, r->out, sizeof(r->out));
        r->result = res;
        if (res == XE_BHS_FAIL) {
            snprintf(r->diag, sizeof(r->diag), "FAIL at %zu: %s", off,
                     xe_backend_hs_error(b));
            break;
        }
        if (res == XE_BHS_READY) {
            const unsigned char *f;
            if (used > len) {
                r->consume_ok = false;
                break;
            }
            r->ready_at = off + used;
            expected_output(r->ready_at, auth, want, sizeof(want));
            if (strcmp(r->out, want) != 0)
                r->order_ok = false;
            f = xe_backend_hs_features(b, &r->features_len);
            if (r->features_len <= MAXF && f != NULL) {
                memcpy(r->features, f, r->features_len);
                r->features[r->features_len] = '\0';
            }
            snprintf(r->forwarded, sizeof(r->forwarded), "%.*s",
                     (int)(total - r->ready_at), transcript + r->ready_at);
            break;
        }
        if (used != len) {
            r->consume_ok = false;
            snprintf(r->diag, sizeof(r->diag), "CONTINUE at %zu consumed %zu of %zu", off,
                     used, len);
        }
        off += len;
        expected_output(off, auth, want, sizeof(want));
        if (strcmp(r->out, want) != 0 && r->order_ok) {
            r->order_ok = false;
            snprintf(r->diag, sizeof(r->diag), "after %zu bytes, sent '%.400s'", off,
                     r->out);
        }
    }
    xe_backend_hs_free(&b);
}

static bool
run_good(const char *what, const size_t *split, const char *auth)
{
    struct run r;
    bool good;

    run_split(split, auth, &r);
    good = r.result == XE_BHS_READY && r.order_ok && r.consume_ok &&
           r.ready_at == end_f2 && strcmp(r.forwarded, EXTRA) == 0 &&
           r.features_len == strlen(FEATURES2) && strcmp(r.features, FEATURES2) == 0;
    ok(good, "%s: READY, output in order, rest = the pipelined bytes, features raw",
       what);
    if (!good) {
        printf("#   result %d order_ok %d consume_ok %d ready_at %zu (want %zu)\n",
               (int)r.result, r.order_ok, r.consume_ok, r.ready_at, end_f2);
        printf("#   %s\n#   out: %s\n#   forwarded: '%s'\n#   features: '%s'\n", r.diag,
               r.out, r.forwarded, r.features);
    }
    return good;
}

static void
test_good(void)
{
    struct xe_backend_hs *b;
    struct xe_buf *o;
    size_t used = 0, alen, plen, i;
    char out[4096] = "", auth[1024], want[4096];
    const char *a, *gt, *end;
    unsigned char plain[512];
    static const char want_plain[] = "\0" LOCAL "\0" TOKEN;
    enum xe_bhs_result res;

    end_f1 = strlen(HEADER1 FEATURES1);
    end_success = end_f1 + strlen(SUCCESS);
    end_f2 = end_success + strlen(HEADER2 FEATURES2);

    /* Step by step, checking each output. */
    b = xe_backend_hs_new(DOMAIN, LOCAL, TOKEN, MAXF);
    ok(b != NULL, "xe_backend_hs_new");
    if (b == NULL)
        return;
    o = xe_backend_hs_output(b);
    ok(o != NULL && o->len > 0, "the first output is queued at once");
    take_output(b, out, sizeof(out));
    is_str(out, OUR_HEADER, "the first output is our stream header, to='example.test'");

    res = xe_backend_hs_feed(b, HEADER1, strlen(HEADER1), &used);
    is_int(res, XE_BHS_CONTINUE, "backend header: CONTINUE");
    is_int(used, strlen(HEADER1), "... all consumed");
    out[0] = '\0';
    take_output(b, out, sizeof(out));
    is_str(out, "", "... nothing sent before the features");

    res = xe_backend_hs_feed(b, FEATURES1, strlen(FEATURES1), &used);
    is_int(res, XE_BHS_CONTINUE, "features with PLAIN: CONTINUE");
    out[0] = '\0';
    take_output(b, out, sizeof(out));
    is_int(count(out, "<auth"), 1, "exactly one <auth/> sent: %s", out);
    a = strstr(out, "<auth");
    gt = a ? strchr(a, '>') : NULL;
    end = gt ? strstr(gt, "</auth>") : NULL;
    ok(a == out && end != NULL && strcmp(end, "</auth>") == 0,
       "the output is the <auth/> element and nothing else");
    ok(gt != NULL && (size_t)(gt - a) < 200 && strstr(a, "mechanism='PLAIN'") != NULL &&
           strstr(a, "mechanism='PLAIN'") < gt &&
           strstr(a, "xmlns='" NS_SASL "'") != NULL &&
           strstr(a, "xmlns='" NS_SASL "'") < gt,
       "<auth xmlns='%s' mechanism='PLAIN'>", NS_SASL);
    plen = (size_t)-1;
    if (gt != NULL && end != NULL && (size_t)(end - gt - 1) < 600)
        plen = b64dec(gt + 1, (size_t)(end - gt - 1), plain);
    ok(plen == sizeof(want_plain) - 1 && memcmp(plain, want_plain, plen) == 0,
       "its base64 decodes to \\0alice\\0 + the token");
    alen = (size_t)snprintf(auth, sizeof(auth), "%s", out);
    ok(alen > 0 && alen < sizeof(auth), "(auth kept for the split runs)");

    res = xe_backend_hs_feed(b, SUCCESS, strlen(SUCCESS), &used);
    is_int(res, XE_BHS_CONTINUE, "<success/>: CONTINUE");
    is_int(used, strlen(SUCCESS), "... all consumed");
    out[0] = '\0';
    take_output(b, out, sizeof(out));
    is_str(out, OUR_HEADER, "after <success/>, our second stream header is sent");

    res = xe_backend_hs_feed(b, HEADER2 FEATURES2 EXTRA, strlen(HEADER2 FEATURES2 EXTRA),
                             &used);
    is_int(res, XE_BHS_READY, "second header + features + pipelined bytes: READY");
    is_int(used, strlen(HEADER2 FEATURES2), "*consumed_r points at the pipelined bytes");
    {
        size_t flen = 0;
        const unsigned char *f = xe_backend_hs_features(b, &flen);
        ok(f != NULL && flen == strlen(FEATURES2) && memcmp(f, FEATURES2, flen) == 0,
           "xe_backend_hs_features: the raw second features (%zu bytes)", flen);
    }
    out[0] = '\0';
    take_output(b, out, sizeof(out));
    is_str(out, "", "nothing more sent after READY");
    xe_backend_hs_free(&b);
    ok(b == NULL, "xe_backend_hs_free clears the pointer");
    xe_backend_hs_free(&b); /* NULL is fine */

    /* The same transcript, fed in different ways. */
    {
        size_t whole[] = {0};
        size_t bytes[sizeof(transcript) + 1];
        size_t one_tail[] = {end_f1, 0};
        size_t parts[] = {strlen(HEADER1), strlen(FEATURES1), strlen(SUCCESS),
                          strlen(HEADER2), strlen(FEATURES2), 0};
        size_t tail_split[] = {end_success, 0};
        size_t split[sizeof(transcript) + 1];
        int bad = 0, n;

        run_good("fed whole", whole, auth);
        for (i = 0; i < sizeof(transcript) - 1; i++)
            bytes[i] = 1;
        bytes[i] = 0;
        run_good("fed byte by byte", bytes, auth);
        run_good("success + header2 + features2 + extra in one chunk", one_tail, auth);
        run_good("header2 + features2 + extra in one chunk", tail_split, auth);
        run_good("one chunk per backend element", parts, auth);

        /* random splits, reproducible */
        srand(20240611);
        for (n = 0; n < 300; n++) {
            size_t off = 0, k = 0, total = sizeof(transcript) - 1;
            int maxc = n % 3 == 0 ? 8 : n % 3 == 1 ? 64 : 400;
            while (off < total && k < sizeof(split) / sizeof(split[0]) - 1) {
                size_t c = 1 + (size_t)(rand() % maxc);
                split[k++] = c;
                off += c;
            }
            split[k] = 0;
            {
                struct run r;
                run_split(split, auth, &r);
                if (!(r.result == XE_BHS_READY && r.order_ok && r.consume_ok &&
                      r.ready_at == end_f2 && strcmp(r.forwarded, EXTRA) == 0 &&
                      strcmp(r.features, FEATURES2) == 0)) {
                    if (bad++ < 3)
                        printf("#   random split %d: result %d ready_at %zu %s\n", n,
                               (int)r.result, r.ready_at, r.diag);
                }
            }
        }
        is_int(bad, 0, "300 random splits: all READY at the right byte, same output");
    }

    /* all the splits into two chunks and three chunks around the boundaries */
    {
        size_t total = sizeof(transcript) - 1, cut, split[3];
        const size_t marks[] = {end_f1, end_success, end_f2};
        int bad = 0, m;
        for (cut = 1; cut < total; cut++) {
            struct run r;
            split[0] = cut;
            split[1] = 0;
            run_split(split, auth, &r);
            if (!(r.result == XE_BHS_READY && r.order_ok && r.consume_ok &&
                  r.ready_at == end_f2 && strcmp(r.forwarded, EXTRA) == 0 &&
                  strcmp(r.features, FEATURES2) == 0) &&
                bad++ < 3)
                printf("#   split at %zu: result %d %s\n", cut, (int)r.result, r.diag);
        }
        for (m = 0; m < 3; m++) {
            for (cut = marks[m] > 3 ? marks[m] - 3 : 1;
                 cut <= marks[m] + 3 && cut < total; cut++) {
                struct run r;
                split[0] = cut;
                split[1] = 1;
                split[2] = 0;
                run_split(split, auth, &r);
                if (!(r.result == XE_BHS_READY && r.order_ok && r.consume_ok &&
                      r.ready_at == end_f2 && strcmp(r.forwarded, EXTRA) == 0) &&
                    bad++ < 3)
                    printf("#   split at %zu+1: result %d %s\n", cut, (int)r.result,
                           r.diag);
            }
        }
        is_int(bad, 0, "every two-chunk split, and one-byte chunks at the boundaries");
    }
    (void)want;
}

/* ---- failures ----------------------------------------------------------- */

/* Feed TEXT whole and then byte by byte; both must fail with an error that
 * matches every needle (case-sensitive substrings). */
static void
expect_fail(const char *what, const char *text, size_t max_features, const char *needle1,
            const char *needle2)
{
    int mode;

    for (mode = 0; mode < 2; mode++) {
        struct xe_backend_hs *b = xe_backend_hs_new(DOMAIN, LOCAL, TOKEN, max_features);
        size_t len = strlen(text), off = 0, used = 0;
        enum xe_bhs_result res = XE_BHS_CONTINUE;
        const char *err;

        if (b == NULL) {
            ok(0, "%s: xe_backend_hs_new", what);
            continue;
        }
        if (mode == 0) {
            res = xe_backend_hs_feed(b, text, len, &used);
        } else {
            for (off = 0; off < len && res == XE_BHS_CONTINUE; off++)
                res = xe_backend_hs_feed(b, text + off, 1, &used);
        }
        err = xe_backend_hs_error(b);
        ok(res == XE_BHS_FAIL && err != NULL && strstr(err, needle1) != NULL &&
               (needle2 == NULL || strstr(err, needle2) != NULL),
           "%s (%s): XE_BHS_FAIL, '%s'", what, mode == 0 ? "whole" : "byte by byte",
           err ? err : "(null)");
        if (res != XE_BHS_FAIL || err == NULL || strstr(err, needle1) == NULL ||
            (needle2 != NULL && strstr(err, needle2) == NULL))
            printf("#   result %d, want /%s/%s%s/\n", (int)res, needle1,
                   needle2 ? " and /" : "", needle2 ? needle2 : "");
        if (mode == 0 && res == XE_BHS_FAIL) {
            /* once failed, it stays failed */
            res = xe_backend_hs_feed(b, "<a/>", 4, &used);
            is_int(res, XE_BHS_FAIL, "%s: feeding after the failure: still FAIL", what);
        }
        xe_backend_hs_free(&b);
    }
}

static void
test_failures(void)
{
    char big[8192];
    size_t n;

    expect_fail("<failure><not-authorized/></failure>",
                HEADER1 FEATURES1 "<failure xmlns='" NS_SASL
                                  "'><not-authorized/><text>bad token</text></failure>",
                MAXF, "not-authorized", "refused");
    expect_fail("features without PLAIN",
                HEADER1 "<stream:features><mechanisms xmlns='" NS_SASL
                        "'><mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</"
                        "mechanism></mechanisms></stream:features>",
                MAXF, "PLAIN", NULL);
    expect_fail("features without any mechanisms",
                HEADER1 "<stream:features><starttls "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
                MAXF, "PLAIN", NULL);
    expect_fail("PLAIN outside the SASL namespace",
                HEADER1 "<stream:features><mechanisms "
                        "xmlns='urn:example:other'><mechanism>PLAIN</mechanism></"
                        "mechanisms></stream:features>",
                MAXF, "PLAIN", NULL);
    expect_fail("<stream:error> instead of features",
                HEADER1 "<stream:error><host-unknown "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                MAXF, "stream error", "host-unknown");
    expect_fail("<stream:error> after <auth/>",
                HEADER1 FEATURES1 "<stream:error><policy-violation "
                                  "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></"
                                  "stream:error>",
                MAXF, "stream error", "policy-violation");
    expect_fail("<stream:error> instead of the second features",
                HEADER1 FEATURES1 SUCCESS HEADER2
                "<stream:error><internal-server-error "
                "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                MAXF, "stream error", "internal-server-error");
    expect_fail("stream header with the prefix 's'",
                "<?xml version='1.0'?><s:stream xmlns='jabber:client' "
                "xmlns:s='http://etherx.jabber.org/streams' from='example.test' "
                "version='1.0'>",
                MAXF, "prefix", "'s'");
    expect_fail("content namespace jabber:server",
                "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                "xmlns:stream='http://etherx.jabber.org/streams' from='example.test' "
                "version='1.0'>",
                MAXF, "stream header", NULL);
    expect_fail("second header in jabber:server",
                HEADER1 FEATURES1 SUCCESS
                "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
                MAXF, "stream header", NULL);
    expect_fail("not a stream element",
                "<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'>", MAXF,
                "stream header", NULL);
    expect_fail("backend closes its stream before the features",
                HEADER1 "</stream:stream>", MAXF, "closed", NULL);
    expect_fail("backend closes its stream after <auth/>",
                HEADER1 FEATURES1 "</stream:stream>", MAXF, "closed", NULL);
    expect_fail("not-well-formed XML",
                HEADER1 "<stream:features><a></b></stream:features>", MAXF, "bad XML",
                NULL);
    expect_fail("not-well-formed header", "<?xml version='1.0'?><stream:stream xmlns=>",
                MAXF, "bad XML", NULL);
    expect_fail("unbound prefix", HEADER1 "<foo:features/>", MAXF, "bad XML", NULL);
    expect_fail("something else than features first", HEADER1 "<iq type='get' id='x'/>",
                MAXF, "instead of its features", NULL);
    expect_fail("a challenge to PLAIN",
                HEADER1 FEATURES1 "<challenge xmlns='" NS_SASL "'>=</challenge>", MAXF,
                "challenge", NULL);
    expect_fail("something else than features after success",
                HEADER1 FEATURES1 SUCCESS HEADER2 "<iq type='get' id='y'/>", MAXF,
                "instead of its features", NULL);

    /* second features larger than max_features */
    n = (size_t)snprintf(big, sizeof(big), "%s%s%s%s<stream:features>", HEADER1,
                         FEATURES1, SUCCESS, HEADER2);
    while (n < 6000)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "<x xmlns='urn:x:%zu'/>", n);
    snprintf(big + n, sizeof(big) - n, "</stream:features>");
    expect_fail("second features larger than max_features (2048)", big, 2048, "backend",
                "too large");
    /* and the first ones */
    n = (size_t)snprintf(big, sizeof(big), "%s<stream:features>", HEADER1);
    while (n < 3000)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "<x xmlns='urn:x:%zu'/>", n);
    snprintf(big + n, sizeof(big) - n, "%s</stream:features>",
             "<mechanisms xmlns='" NS_SASL "'><mechanism>PLAIN</mechanism></mechanisms>");
    expect_fail("first features larger than max_features (1024)", big, 1024, "backend",
                "too large");
}

/* max_features is the exact bound: second features of exactly that size are
 * accepted and kept whole, one byte more is refused. */
static void
test_features_bound(void)
{
    static const char f2[] =
        "<stream:features><bind "
        "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>"
        "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
        "<sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/>"
        "<ver xmlns='urn:xmpp:features:rosterver'/></stream:features>";
    static const char text[] = HEADER1 FEATURES1 SUCCESS HEADER2;
    char buf[2048];
    size_t max, used = 0, flen = 0;
    int k;

    snprintf(buf, sizeof(buf), "%s%s<iq/>", text, f2);
    for (k = 0; k < 2; k++) {
        struct xe_backend_hs *b;
        enum xe_bhs_result res;
        const unsigned char *f;

        max = strlen(f2) - (size_t)k;
        b = xe_backend_hs_new(DOMAIN, LOCAL, TOKEN, max);
        if (b == NULL) {
            ok(0, "xe_backend_hs_new");
            continue;
        }
        res = xe_backend_hs_feed(b, buf, strlen(buf), &used);
        if (k == 0) {
            f = xe_backend_hs_features(b, &flen);
            ok(res == XE_BHS_READY && used == strlen(text) + strlen(f2) &&
                   flen == strlen(f2) && memcmp(f, f2, flen) == 0,
               "second features of exactly max_features (%zu) bytes: READY, kept whole",
               max);
            if (res != XE_BHS_READY)
                printf("#   result %d: %s\n", (int)res, xe_backend_hs_error(b));
        } else {
            ok(res == XE_BHS_FAIL && strstr(xe_backend_hs_error(b), "too large") != NULL,
               "second features one byte over max_features (%zu): FAIL, '%s'", max,
               xe_backend_hs_error(b));
        }
        xe_backend_hs_free(&b);
    }
}

/* The token is escaped nowhere (base64), and a localpart/domain that need XML
 * escaping are escaped in our header. */
static void
test_escaping(void)
{
    struct xe_backend_hs *b = xe_backend_hs_new("a'b<c.test", LOCAL, TOKEN, MAXF);
    char out[1024] = "";

    ok(b != NULL, "xe_backend_hs_new with an odd domain");
    if (b == NULL)
        return;
    take_output(b, out, sizeof(out));
    ok(strstr(out, "to='a&apos;b&lt;c.test'") != NULL, "the domain is escaped in to=: %s",
       out);
    xe_backend_hs_free(&b);
}

/* ---- iq-auth: the resource bound for the client (XEP-0078) --------------- */

#define BIND_IQ                                                                          \
    "<iq type='set' id='xe-bind-1'><bind "                                               \
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r&amp;1</resource></bind></iq>"
#define SESSION_IQ                                                                       \
    "<iq type='set' id='xe-session-1'><session "                                         \
    "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
#define BIND_RESULT                                                                      \
    "<iq type='result' id='xe-bind-1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"   \
    "<jid>alice@example.test/r&amp;1</jid></bind></iq>"
#define FEATURES2_SESSION                                                                \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"                  \
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
#define SESSION_RESULT "<iq type='result' id='xe-session-1'/>"

/* Feed TEXT (whole, or byte by byte); returns the result and what was sent
 * after the SASL part (our second header is dropped), and where it stopped. */
static enum xe_bhs_result
bind_run(const char *text, bool bytewise, char *sent, size_t size, size_t *stop_r,
         struct xe_backend_hs **b_r)
{
    struct xe_backend_hs *b = xe_backend_hs_new(DOMAIN, LOCAL, TOKEN, MAXF);
    enum xe_bhs_result res = XE_BHS_CONTINUE;
    size_t len = strlen(text), off = 0, used = 0;
    char all[8192] = "";
    const char *p;

    xe_backend_hs_bind(b, "r&1");
    take_output(b, all, sizeof(all));
    if (!bytewise) {
        res = xe_backend_hs_feed(b, text, len, &used);
        off = used;
    } else {
        for (off = 0; off < len && res == XE_BHS_CONTINUE; off++) {
            res = xe_backend_hs_feed(b, text + off, 1, &used);
            take_output(b, all, sizeof(all));
        }
    }
    take_output(b, all, sizeof(all));
    *stop_r = off;
    /* what came after our second header */
    p = strstr(all, "</auth>");
    p = p ? strstr(p, OUR_HEADER) : NULL;
    snprintf(sent, size, "%s", p ? p + strlen(OUR_HEADER) : "");
    *b_r = b;
    return res;
}

static void
test_bind(void)
{
    for (int mode = 0; mode < 2; mode++) {
        const char *how = mode ? "byte by byte" : "whole";
        struct xe_backend_hs *b;
        char sent[4096];
        size_t stop;
        enum xe_bhs_result res;

        /* optional session: bind only */
        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2 BIND_RESULT EXTRA,
                       mode, sent, sizeof(sent), &stop, &b);
        is_int(res, XE_BHS_READY, "bind (%s): READY after the bind result", how);
        is_str(sent, BIND_IQ, "bind (%s): the bind iq, resource escaped, nothing else",
               how);
        is_int(stop, strlen(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2 BIND_RESULT),
               "bind (%s): the bytes after the bind result are the client's", how);
        is_str(xe_backend_hs_bound_jid(b), "alice@example.test/r&1",
               "bind (%s): the bound JID", how);
        xe_backend_hs_free(&b);

        /* not READY before the result */
        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2, mode, sent,
                       sizeof(sent), &stop, &b);
        is_int(res, XE_BHS_CONTINUE, "bind (%s): the features alone are not READY", how);
        xe_backend_hs_free(&b);

        /* a required session (no <optional/>): bind, then session */
        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2_SESSION BIND_RESULT
                           SESSION_RESULT EXTRA,
                       mode, sent, sizeof(sent), &stop, &b);
        is_int(res, XE_BHS_READY, "bind + required session (%s): READY", how);
        is_str(sent, BIND_IQ SESSION_IQ,
               "bind + required session (%s): the bind iq, then the session iq", how);
        is_int(stop,
               strlen(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2_SESSION BIND_RESULT
                          SESSION_RESULT),
               "bind + required session (%s): READY right after the session result", how);
        xe_backend_hs_free(&b);

        /* the backend refuses: the condition is kept for the client */
        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2
                       "<iq type='error' id='xe-bind-1'><error type='cancel'><conflict "
                       "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                       mode, sent, sizeof(sent), &stop, &b);
        ok(res == XE_BHS_FAIL && xe_backend_hs_bind_error(b) != NULL &&
               strcmp(xe_backend_hs_bind_error(b), "conflict") == 0,
           "bind refused with <conflict/> (%s): FAIL, bind error 'conflict' (%s)", how,
           xe_backend_hs_error(b));
        xe_backend_hs_free(&b);

        res = bind_run(
            HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2_SESSION BIND_RESULT
            "<iq type='error' id='xe-session-1'><error type='wait'>"
            "<internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "</error></iq>",
            mode, sent, sizeof(sent), &stop, &b);
        ok(res == XE_BHS_FAIL && xe_backend_hs_bind_error(b) != NULL &&
               strcmp(xe_backend_hs_bind_error(b), "internal-server-error") == 0,
           "session refused (%s): FAIL, its condition kept", how);
        xe_backend_hs_free(&b);

        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2
                       "<iq type='result' id='xe-bind-1'><bind "
                       "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/"
                       "Xq7random</jid></bind></iq>",
                       mode, sent, sizeof(sent), &stop, &b);
        ok(res == XE_BHS_FAIL && xe_backend_hs_bind_error(b) != NULL &&
               strcmp(xe_backend_hs_bind_error(b), "not-acceptable") == 0,
           "another resource bound than asked (%s): FAIL, not-acceptable", how);
        xe_backend_hs_free(&b);

        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2
                       "<stream:features><ver xmlns='urn:xmpp:features:rosterver'/>"
                       "</stream:features>",
                       mode, sent, sizeof(sent), &stop, &b);
        ok(res == XE_BHS_FAIL && xe_backend_hs_bind_error(b) == NULL &&
               strstr(xe_backend_hs_error(b), "binding") != NULL,
           "no bind feature (%s): FAIL as a backend failure ('%s')", how,
           xe_backend_hs_error(b));
        xe_backend_hs_free(&b);

        res = bind_run(HEADER1 FEATURES1 SUCCESS HEADER2 FEATURES2
                       "<message from='x@y'><body>hi</body></message>",
                       mode, sent, sizeof(sent), &stop, &b);
        ok(res == XE_BHS_FAIL && xe_backend_hs_bind_error(b) == NULL,
           "a stanza instead of the bind result (%s): FAIL ('%s')", how,
           xe_backend_hs_error(b));
        xe_backend_hs_free(&b);
    }
}

/* jabberd2 declares xmlns:ack on its stream header and sends <ack:ack/> in its
 * features: the kept features declare the prefix themselves (xedge sends its
 * own header to the client), once, and nothing else changes. */
static void
test_prefix_from_header(void)
{
    static const char header2[] =
        "<?xml version='1.0'?><stream:stream "
        "xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns='jabber:client' from='example.test' version='1.0' id='j2' "
        "xmlns:ack='http://www.xmpp.org/extensions/xep-0198.html#ns'>";
    static const char features2[] =
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><ack:ack/>"
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><ack:ack/>"
        "</stream:features>";
    static const char want[] =
        "<stream:features xmlns:ack='http://www.xmpp.org/extensions/xep-0198.html#ns' "
        "xmlns:stream='http://etherx.jabber.org/streams'><ack:ack/>"
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><ack:ack/>"
        "</stream:features>";
    struct xe_backend_hs *b = xe_backend_hs_new(DOMAIN, LOCAL, TOKEN, MAXF);
    size_t used = 0, flen = 0;
    const unsigned char *f;
    char got[1024] = "";

    if (b == NULL) {
        ok(0, "xe_backend_hs_new");
        return;
    }
    xe_backend_hs_feed(b, HEADER1 FEATURES1 SUCCESS, strlen(HEADER1 FEATURES1 SUCCESS),
                       &used);
    is_int(xe_backend_hs_feed(b, header2, strlen(header2), &used), XE_BHS_CONTINUE,
           "jabberd2-like second header: CONTINUE");
    is_int(xe_backend_hs_feed(b, features2, strlen(features2), &used), XE_BHS_READY,
           "features with <ack:ack/>: READY");
    f = xe_backend_hs_features(b, &flen);
    if (f != NULL && flen < sizeof(got))
        memcpy(got, f, flen);
    is_str(got, want, "the features declare xmlns:ack themselves, once");
    xe_backend_hs_free(&b);
}

/* ---- the direct login (urn:xedge:auth:0): no SASL, no restart ----------- */

#define NS_DIRECT "urn:xedge:auth:0"
#define FEATURES1_DIRECT                                                                 \
    "<stream:features><mechanisms xmlns='" NS_SASL "'><mechanism>PLAIN</mechanism>"      \
    "</mechanisms><auth xmlns='" NS_DIRECT "'/></stream:features>"
#define SUCCESS_DIRECT "<success xmlns='" NS_DIRECT "'/>"

/* Feeds t in chunks of `step` bytes (0: whole); returns the result, the
 * output, the features and where the handshake ended. */
static enum xe_bhs_result
run_direct(const char *t, const char *local, size_t step, char *out, size_t outsz,
           char *err, size_t errsz, size_t *end_r, char *features, size_t fsz)
{
    struct xe_backend_hs *b = xe_backend_hs_new(DOMAIN, local, TOKEN, MAXF);
    size_t total = strlen(t), off = 0, used = 0;
    enum xe_bhs_result res = XE_BHS_CONTINUE;

    out[0] = err[0] = features[0] = '\0';
    *end_r = 0;
    take_output(b, out, outsz);
    while (off < total && res == XE_BHS_CONTINUE) {
        size_t len = step && step < total - off ? step : total - off;
        res = xe_backend_hs_feed(b, t + off, len, &used);
        take_output(b, out, outsz);
        off += res == XE_BHS_CONTINUE ? len : used;
    }
    *end_r = off;
    if (res == XE_BHS_FAIL)
        snprintf(err, errsz, "%s", xe_backend_hs_error(b));
    if (res == XE_BHS_READY) {
        size_t fl;
        const unsigned char *f = xe_backend_hs_features(b, &fl);
        snprintf(features, fsz, "%.*s", (int)fl, (const char *)f);
    }
    xe_backend_hs_free(&b);
    return res;
}

static void
test_direct(void)
{
    static const char good[] = HEADER1 FEATURES1_DIRECT SUCCESS_DIRECT FEATURES2 EXTRA;
    static const char want_out[] =
        OUR_HEADER "<auth xmlns='" NS_DIRECT "' user='" LOCAL "'>" TOKEN "</auth>";
    static const char refused[] = HEADER1 FEATURES1_DIRECT
        "<failure xmlns='" NS_DIRECT "'><not-authorized/></failure>";
    char out[4096], err[512], features[MAXF + 1];
    size_t end;

    for (size_t step = 0; step <= 1; step++) {
        enum xe_bhs_result r = run_direct(good, LOCAL, step, out, sizeof(out), err,
                                          sizeof(err), &end, features, sizeof(features));
        ok(r == XE_BHS_READY, "direct (%s): READY", step ? "byte by byte" : "whole");
        ok(strcmp(out, want_out) == 0,
           "direct (%s): one header and the assertion in <auth xmlns='" NS_DIRECT
           "'/>, no SASL, no second header",
           step ? "byte by byte" : "whole");
        if (strcmp(out, want_out) != 0)
            printf("#   out: %s\n", out);
        ok(end == strlen(good) - strlen(EXTRA) && strcmp(features, FEATURES2) == 0,
           "direct (%s): the features after the success are the session's, the rest "
           "pipelined",
           step ? "byte by byte" : "whole");
    }
    ok(run_direct(refused, LOCAL, 0, out, sizeof(out), err, sizeof(err), &end, features,
                  sizeof(features)) == XE_BHS_FAIL &&
           strstr(err, "refused the identity assertion: not-authorized") != NULL,
       "direct: a <failure/> fails the handshake with its condition (%s)", err);
    {
        static const char odd[] =
            HEADER1 FEATURES1_DIRECT "<challenge xmlns='" NS_SASL "'/>";
        ok(run_direct(odd, LOCAL, 0, out, sizeof(out), err, sizeof(err), &end, features,
                      sizeof(features)) == XE_BHS_FAIL,
           "direct: anything but success or failure fails (%s)", err);
    }
    run_direct(good, "o'brien&co", 0, out, sizeof(out), err, sizeof(err), &end, features,
               sizeof(features));
    ok(strstr(out, "user='o&apos;brien&amp;co'") != NULL,
       "direct: the localpart is escaped in the user attribute");
    /* without the offer: SASL PLAIN, as before (test_good) */
    run_direct(transcript, LOCAL, 0, out, sizeof(out), err, sizeof(err), &end, features,
               sizeof(features));
    ok(strstr(out, "mechanism='PLAIN'") != NULL && strstr(out, NS_DIRECT) == NULL,
       "no direct login offered: SASL PLAIN");
}

int
main(void)
{
    test_good();
    test_failures();
    test_features_bound();
    test_escaping();
    test_bind();
    test_prefix_from_header();
    test_direct();
    return tap_done();
}
