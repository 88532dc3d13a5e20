/* Fuzz target: SASL2, Bind2 and FAST parsing (src/core/sasl2.h, bind2.h,
 * fast.h) and the FAST token records (tokens.h), against the test user store
 * of fuzz.h (Cyrus over it; a token store in its environment, with a token
 * issued to alice for each HT-* mechanism).
 *
 * Input: one flags byte, the chunk sizes (fuzz.h), then the bytes.
 * flags bits 0-1: what the bytes are
 *   0: a client's stream after its header (<authenticate>, <response>,
 *      <abort>...), parsed by the XML stream parser into xe_sasl2_element,
 *      with Cyrus (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN) and FAST's HT-* behind
 *      it; a tls-exporter binding when bit 2 is set
 *   1: a token record for xe_token_decode
 *   2: a backend's stream after its header: its <stream:features>, then its
 *      answers, into the Bind2 backend script (a request for everything:
 *      carbons, CSI, SM with resume; the pool able to when bit 3 is set)
 *   3: as 0, but the elements only parsed (xe_sasl2_parse_authenticate, and
 *      xe_bind2_parse on any <bind/>), no exchange
 *
 * Checked: everything SASL2 answers, and everything the script sends and
 * folds, parses as XML; success only for alice and never for a HT-*
 * mechanism (the fuzzer cannot know the tokens); a decoded record
 * re-encodes to a record that decodes to the same fields and encodes to the
 * same bytes; the held bytes stay under their cap. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind2.h"
#include "fast.h"
#include "fuzz.h"
#include "sasl2.h"
#include "tokens.h"
#include "xmlstream.h"

#define HDR                                                                              \
    "<stream:stream xmlns='jabber:client' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

static struct xe_tokens *tokens;
static const struct xe_xmlstream_limits lim = {XE_DEF_MAX_STANZA_PREAUTH,
                                               XE_DEF_MAX_XML_DEPTH, XE_DEF_MAX_ATTRS};
static const struct xe_xmlstream_limits blim = {
    XE_DEF_MAX_STANZA_POSTAUTH, XE_POSTAUTH_MAX_XML_DEPTH, XE_POSTAUTH_MAX_ATTRS};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const mechs[] = {"HT-SHA-256-NONE", "HT-SHA-256-EXPR",
                                        "HT-SHA-256-ENDP", "HT-SHA-256-UNIQ"};
    static const char *const uas[] = {"fuzz-ua-0", "fuzz-ua-1", "fuzz-ua-2", "fuzz-ua-3"};
    char *err = NULL, tok[XE_TOKEN_MAX + 1];
    int64_t exp;

    (void)argc;
    (void)argv;
    fuzz_logs();
    fuzz_sasl_setup();
    if (xe_tokens_open(fuzz_store, &tokens, &err) != XE_US_OK) {
        fprintf(stderr, "fuzz: xe_tokens_open: %s\n", err ? err : "?");
        abort();
    }
    for (size_t i = 0; i < 4; i++)
        if (xe_tokens_issue(tokens, FUZZ_USER, uas[i], mechs[i], 1700000000, 4000000000LL,
                            tok, &exp, &err) != XE_US_OK)
            abort();
    return 0;
}

/* ---- "everything we send parses as XML" -------------------------------------------- */

static int
chk_start(void *ctx, const struct xe_xml_elem *h, const char *ns)
{
    return XE_XS_CONTINUE;
}

static int
chk_elem(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    return XE_XS_CONTINUE;
}

static int
chk_end(void *ctx)
{
    return XE_XS_CONTINUE;
}

static void
check_xml(const unsigned char *p, size_t len)
{
    static const struct xe_xmlstream_cb cb = {chk_start, chk_elem, chk_end};
    static const struct xe_xmlstream_limits big = {1 << 20, 64, 64};
    struct xe_xmlstream *xs = xe_xmlstream_new(&big, &cb, NULL);
    size_t c;

    FUZZ_CHECK(xe_xmlstream_feed(xs, HDR, strlen(HDR), &c) == XE_XS_OK);
    if (len)
        FUZZ_CHECK(xe_xmlstream_feed(xs, p, len, &c) == XE_XS_OK);
    xe_xmlstream_free(&xs);
}

/* ---- mode 0 and 3: a client's elements ----------------------------------------------
 */

struct client {
    bool parse_only;
    struct xe_sasl2 *s2;
    struct xe_buf out;
    bool over;
};

static int
c_elem(void *vc, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct client *c = vc;
    enum xe_sasl_cond cond;
    const char *detail = NULL;
    int r;

    if (c->parse_only) {
        struct xe_sasl2_auth a;
        struct xe_bind2_req b;
        if (xe_sasl2_parse_authenticate(e, XE_DEF_MAX_SASL_BYTES, &a, &cond, &detail) ==
            0) {
            FUZZ_CHECK(strlen(a.mech) <= XE_SASL2_MAX_MECH);
            FUZZ_CHECK(strlen(a.ua_id) <= XE_SASL2_MAX_UA_ID);
            FUZZ_CHECK(a.ir != NULL || a.ir_len == 0);
            xe_sasl2_auth_clear(&a);
        } else {
            FUZZ_CHECK(detail != NULL);
        }
        if (xe_xml_is(e, XE_NS_BIND2, "bind") && xe_bind2_parse(e, &b, &detail) == 0)
            FUZZ_CHECK(strlen(b.tag) <= XE_BIND2_MAX_TAG);
        return XE_XS_CONTINUE;
    }
    if (c->over)
        return XE_XS_CONTINUE;
    r = xe_sasl2_element(c->s2, e, &c->out, &cond, &detail);
    if (r == XE_SASL2_SUCCESS) {
        FUZZ_CHECK(strcmp(xe_sasl2_jid(c->s2), FUZZ_USER) == 0);
        FUZZ_CHECK(strncmp(xe_sasl2_mech(c->s2), "HT-", 3) != 0);
        FUZZ_CHECK(xe_sasl2_build_success(c->s2, &c->out, NULL, NULL, 0) == 0);
        c->over = true;
    } else if (r == XE_SASL2_UNEXPECTED) {
        c->over = true; /* a stream error: the stream ends */
    }
    return XE_XS_CONTINUE;
}

static void
run_client(const uint8_t *data, size_t size, struct fuzz_chunker *ch, unsigned flags)
{
    static const struct xe_xmlstream_cb cb = {chk_start, c_elem, chk_end};
    static char *mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"};
    struct client c;
    struct xe_sasl *sasl = NULL;
    struct xe_cbind cbd;
    struct xe_fast f;
    struct xe_sasl2_mech m;
    struct xe_xmlstream *xs;
    char *err = NULL;
    size_t pos = 0, consumed;

    memset(&c, 0, sizeof(c));
    c.parse_only = (flags & 3) == 3;
    xe_buf_init(&c.out, 256 * 1024);
    memset(&cbd, 0, sizeof(cbd));
    cbd.type = "tls-exporter";
    memset(cbd.data, 0x42, 32);
    cbd.len = 32;
    xe_fast_init(&f, tokens, "example.test", &cbd, flags & 4 ? 1 : 0);
    f.now = 1700000100;
    m = xe_fast_mech(&f);
    if (!c.parse_only) {
        sasl = xe_sasl_new("example.test", mechs, 3, true, &err);
        FUZZ_CHECK(sasl != NULL);
        c.s2 = xe_sasl2_new(sasl, &m, XE_DEF_MAX_SASL_BYTES);
    }
    xs = xe_xmlstream_new(&lim, &cb, &c);
    if (xe_xmlstream_feed(xs, HDR, strlen(HDR), &consumed) == XE_XS_OK) {
        while (pos < size) {
            size_t n = fuzz_chunk_len(ch, size - pos);
            if (xe_xmlstream_feed(xs, data + pos, n, &consumed) != XE_XS_OK)
                break;
            pos += n;
        }
    }
    check_xml(c.out.data, c.out.len);
    xe_xmlstream_free(&xs);
    xe_sasl2_free(&c.s2);
    xe_sasl_free(&sasl);
    xe_buf_free(&c.out);
    free(err);
}

/* ---- mode 1: records -----------------------------------------------------------------
 */

static void
run_record(const uint8_t *data, size_t size)
{
    struct xe_token_rec a, b;
    char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;

    if (xe_token_decode((const char *)data, size, &a) < 0)
        return;
    FUZZ_CHECK(xe_token_encode(&a, &buf, &len) == 0);
    FUZZ_CHECK(xe_token_decode(buf, len, &b) == 0);
    FUZZ_CHECK(memcmp(a.fp, b.fp, sizeof(a.fp)) == 0);
    FUZZ_CHECK(a.cur.present == b.cur.present && a.next.present == b.next.present);
    FUZZ_CHECK(a.cur.expiry == b.cur.expiry && a.cur.count == b.cur.count &&
               a.cur.has_count == b.cur.has_count);
    FUZZ_CHECK(strcmp(a.cur.token, b.cur.token) == 0 &&
               strcmp(a.next.token, b.next.token) == 0 &&
               strcmp(a.cur.mech, b.cur.mech) == 0);
    FUZZ_CHECK(xe_token_encode(&b, &buf2, &len2) == 0);
    FUZZ_CHECK(len == len2 && memcmp(buf, buf2, len) == 0);
    free(buf);
    free(buf2);
}

/* ---- mode 2: a backend's answers to the Bind2 script ----------------------------------
 */

struct backend {
    struct xe_bind2_req req;
    struct xe_bind2_caps caps;
    struct xe_bind2_script *s;
    bool failed, done;
};

static int
b_elem(void *vb, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct backend *b = vb;
    char *err = NULL;
    int r;

    if (b->failed)
        return XE_XS_CONTINUE;
    if (b->s == NULL) {
        b->s = xe_bind2_script_new(&b->req, &b->caps, e, "fuzz.0011aa", &err);
        if (b->s == NULL) {
            FUZZ_CHECK(err != NULL);
            b->failed = true;
        } else {
            size_t n;
            const unsigned char *p = xe_bind2_script_requests(b->s, &n);
            check_xml(p, n);
        }
        free(err);
        return XE_XS_CONTINUE;
    }
    r = xe_bind2_script_answer(b->s, e, raw, len);
    if (r == XE_BIND2_FAIL) {
        FUZZ_CHECK(xe_bind2_script_error(b->s) != NULL);
        b->failed = true;
    } else if (r == XE_BIND2_DONE && !b->done) {
        struct xe_buf out;
        b->done = true;
        FUZZ_CHECK(strchr(xe_bind2_script_jid(b->s), '/') != NULL);
        xe_buf_init(&out, 0);
        FUZZ_CHECK(xe_bind2_script_bound(b->s, &out) == 0);
        check_xml(out.data, out.len);
        xe_buf_free(&out);
    }
    return XE_XS_CONTINUE;
}

static void
run_backend(const uint8_t *data, size_t size, struct fuzz_chunker *ch, unsigned flags)
{
    static const struct xe_xmlstream_cb cb = {chk_start, b_elem, chk_end};
    struct backend b;
    struct xe_xmlstream *xs;
    size_t pos = 0, consumed, held = 0;

    memset(&b, 0, sizeof(b));
    b.req.present = true;
    strcpy(b.req.tag, "fuzz");
    b.req.carbons = b.req.sm = b.req.sm_resume = true;
    b.req.csi = XE_CSI_INACTIVE;
    b.caps.carbons = b.caps.csi = b.caps.sm = (flags & 8) != 0;
    xs = xe_xmlstream_new(&blim, &cb, &b);
    if (xe_xmlstream_feed(xs, HDR, strlen(HDR), &consumed) == XE_XS_OK) {
        while (pos < size) {
            size_t n = fuzz_chunk_len(ch, size - pos);
            if (xe_xmlstream_feed(xs, data + pos, n, &consumed) != XE_XS_OK)
                break;
            pos += n;
        }
    }
    if (b.s) {
        xe_bind2_script_held(b.s, &held);
        FUZZ_CHECK(held <= XE_BIND2_MAX_HELD);
    }
    xe_bind2_script_free(&b.s);
    xe_xmlstream_free(&xs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_chunker ch;
    unsigned flags;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    if ((flags & 3) == 1) {
        run_record(data, size);
        return 0;
    }
    fuzz_chunker_init(&ch, &data, &size);
    if ((flags & 3) == 2)
        run_backend(data, size, &ch, flags);
    else
        run_client(data, size, &ch, flags);
    return 0;
}
