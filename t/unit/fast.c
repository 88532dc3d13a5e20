/* Unit tests of FAST (src/core/tokens.h, src/core/fast.h): HT-SHA-256 against
 * vectors computed independently, the token records, the token store in a
 * real LMDB user store (issue, rotation, count, expiry, revocation by
 * password change, disable, revoke), and whole HT-* logins through SASL2
 * elements parsed by the real XML stream parser. TAP output. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fast.h"
#include "sasl2.h"
#include "tokens.h"
#include "userstore.h"
#include "xmlstream.h"
#include "tap.h"

#define HDR                                                                              \
    "<stream:stream xmlns='jabber:client' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>"

static struct xe_userstore *store;
static struct xe_tokens *tokens;
static const int64_t T0 = 1800000000; /* 2027-01-15 */

static void
hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* ---- HT-SHA-256 vectors ---------------------------------------------------------
 * computed with Python's hmac module:
 *   python3 -c "import hmac,hashlib; t=b'secret-token:fast-Iu7Hs2yTxk4-LkeO';
 *     cb=bytes(range(1,33)); [print(hmac.new(t,l+c,hashlib.sha256).hexdigest())
 *     for l in (b'Initiator',b'Responder') for c in (b'',cb)]" */
static void
test_vectors(void)
{
    static const char *want[4] = {
        "d7692e76b4000dcb805ee9b33276a17ce94b8df597b9cc4b93674ebe788ecb2a",
        "05006ff9830330239464236948b0772e125e4b013cbdbe0b8dafc346d3c69c1f",
        "4edc64c807f0ccfb7e90ace44ea53d69914b1a5347ca7207d44774e036c143e7",
        "0f1a1f1ef1f5b17bd48a5c2fe19f24a36a2797440c64122e909e3570189317df",
    };
    const char *tok = "secret-token:fast-Iu7Hs2yTxk4-LkeO";
    unsigned char cb[32], out[32];
    char h[65];

    for (int i = 0; i < 32; i++)
        cb[i] = (unsigned char)(i + 1);
    for (int i = 0; i < 4; i++) {
        const char *label = i < 2 ? "Initiator" : "Responder";
        ok(xe_ht_sha256(tok, strlen(tok), label, i % 2 ? cb : NULL, i % 2 ? 32 : 0,
                        out) == 0,
           "HT-SHA-256 %s %s", label, i % 2 ? "with cb-data" : "without");
        hex(out, 32, h);
        is_str(h, want[i], "... matches the independent vector");
    }
}

/* ---- records ---------------------------------------------------------------------- */

static void
test_records(void)
{
    struct xe_token_rec rec, back;
    char *buf = NULL;
    size_t len = 0;
    static const char *bad[] = {
        "",
        "xt1\n",
        "xt2\nfp " /* wrong version */
        "0000000000000000000000000000000000000000000000000000000000000000\n",
        "xt1\nfp 00\n",
        "xt1\nfp 000000000000000000000000000000000000000000000000000000000000000g\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "cur HT-SHA-256-NONE 1 2 - tok\ncur HT-SHA-256-NONE 1 2 - tok\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "cur ht-sha-256-none 1 2 - tok\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "cur HT-SHA-256-NONE 1 2 x tok\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "cur HT-SHA-256-NONE 1 2 - tok extra\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "cur HT-SHA-256-NONE -1 2 - tok\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "old HT-SHA-256-NONE 1 2 - tok\n",
        "xt1\nfp 0000000000000000000000000000000000000000000000000000000000000000\n"
        "cur HT-SHA-256-NONE 1 2 - tok",
    };

    memset(&rec, 0, sizeof(rec));
    for (int i = 0; i < XE_TOKEN_FP_LEN; i++)
        rec.fp[i] = (unsigned char)(i * 7);
    rec.cur.present = true;
    strcpy(rec.cur.mech, "HT-SHA-256-EXPR");
    rec.cur.issued = T0;
    rec.cur.expiry = T0 + 86400;
    rec.cur.has_count = true;
    rec.cur.count = 18446744073709551615ULL;
    strcpy(rec.cur.token, "xe1-AbC_d-e");
    rec.next.present = true;
    strcpy(rec.next.mech, "HT-SHA-256-NONE");
    rec.next.issued = T0 + 1;
    rec.next.expiry = T0 + 2;
    strcpy(rec.next.token, "xe1-next");
    ok(xe_token_encode(&rec, &buf, &len) == 0, "a record encodes");
    ok(xe_token_decode(buf, len, &back) == 0, "and decodes");
    ok(memcmp(back.fp, rec.fp, XE_TOKEN_FP_LEN) == 0 && back.cur.present &&
           back.cur.has_count && back.cur.count == rec.cur.count &&
           strcmp(back.cur.token, "xe1-AbC_d-e") == 0 &&
           strcmp(back.cur.mech, "HT-SHA-256-EXPR") == 0 &&
           back.cur.expiry == T0 + 86400 && back.next.present && !back.next.has_count &&
           strcmp(back.next.token, "xe1-next") == 0 && back.next.issued == T0 + 1,
       "the same record back (both slots, a count of 2^64-1 and none)");
    free(buf);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(xe_token_decode(bad[i], strlen(bad[i]), &back) < 0,
           "a bad record is refused (%zu)", i);
    ok(xe_token_decode("xt1\0", 4, &back) < 0, "a NUL in a record is refused");
}

/* ---- the store --------------------------------------------------------------------- */

static void
add_user(const char *jid, const char *pw)
{
    struct xe_user u;
    char *err = NULL;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "%s", jid);
    ok(xe_user_set_password(&u, pw, strlen(pw), 4096) == XE_US_OK &&
           xe_userstore_put(store, &u, false, &err) == XE_US_OK,
       "store %s", jid);
    free(err);
}

static void
set_disabled(const char *jid, bool d)
{
    struct xe_user u;
    char *err = NULL;

    xe_userstore_get(store, jid, &u, &err);
    u.disabled = d;
    xe_userstore_put(store, &u, false, &err);
    free(err);
}

static void
proof_of(const char *tok, const unsigned char *cb, size_t cbl, unsigned char out[32],
         const char *label)
{
    unsigned char msg[128];
    unsigned n = 0;
    size_t ll = strlen(label);

    memcpy(msg, label, ll);
    if (cbl)
        memcpy(msg + ll, cb, cbl);
    HMAC(EVP_sha256(), tok, (int)strlen(tok), msg, ll + cbl, out, &n);
}

static int
verify(const char *jid, const char *ua, const char *mech, const char *tok, bool has_count,
       unsigned long long count, int64_t now, enum xe_sasl_cond *cond,
       const char **detail)
{
    unsigned char p[32], resp[32], want[32];
    int r;

    proof_of(tok, NULL, 0, p, "Initiator");
    r = xe_tokens_verify(tokens, jid, ua, mech, NULL, 0, p, 32, has_count, count, now,
                         resp, cond, detail);
    if (r == XE_SASL_OK) {
        proof_of(tok, NULL, 0, want, "Responder");
        if (memcmp(resp, want, 32) != 0)
            return -42;
    }
    return r;
}

/* The same on the loop's read-only path: XE_TOKENS_WRITE_NEEDED when a
 * write is due, else the same verdict as verify(). */
static int
verify_read(const char *jid, const char *ua, const char *tok, bool has_count, int64_t now,
            enum xe_sasl_cond *cond, const char **detail)
{
    unsigned char p[32], resp[32], want[32];
    int r;

    proof_of(tok, NULL, 0, p, "Initiator");
    r = xe_tokens_verify_read(tokens, jid, ua, "HT-SHA-256-NONE", NULL, 0, p, 32,
                              has_count, now, resp, cond, detail);
    if (r == XE_SASL_OK) {
        proof_of(tok, NULL, 0, want, "Responder");
        if (memcmp(resp, want, 32) != 0)
            return -42;
    }
    return r;
}

struct listed {
    int n;
    char ua[8][80];
    bool blanked;
};

static int
list_cb(const char *ua, const struct xe_token_rec *rec, void *ctx)
{
    struct listed *l = ctx;

    if (l->n < 8)
        snprintf(l->ua[l->n], sizeof(l->ua[0]), "%s", ua);
    l->n++;
    if (rec->cur.token[0] || rec->next.token[0])
        l->blanked = false;
    return 0;
}

static void
test_store(void)
{
    char t1[XE_TOKEN_MAX + 1], t2[XE_TOKEN_MAX + 1], tb[XE_TOKEN_MAX + 1], *err = NULL;
    int64_t exp = 0;
    enum xe_sasl_cond cond;
    const char *detail = NULL;
    struct listed l;
    size_t n = 0;

    ok(xe_tokens_issue(tokens, "alice@example.test", "ua-1", "HT-SHA-256-NONE", T0, 3600,
                       t1, &exp, &err) == XE_US_OK,
       "a token issued %s", err ? err : "");
    ok(exp == T0 + 3600 && strncmp(t1, "xe1-", 4) == 0 && strlen(t1) == 47,
       "its expiry, its shape (%s...)", "xe1-");
    is_int(xe_tokens_issue(tokens, "nobody@example.test", "ua-1", "HT-SHA-256-NONE", T0,
                           3600, tb, &exp, &err),
           XE_US_NOTFOUND, "none for an unknown user");
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, false, 0, T0 + 1,
                  &cond, &detail),
           XE_SASL_OK, "the token verifies; the responder hash is right");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", "xe1-wrong", false, 0,
              T0 + 1, &cond, &detail) == XE_SASL_FAIL &&
           cond == XE_SASL_NOT_AUTHORIZED,
       "a wrong token: not-authorized (%s)", detail);
    ok(verify("alice@example.test", "ua-2", "HT-SHA-256-NONE", t1, false, 0, T0 + 1,
              &cond, &detail) == XE_SASL_FAIL &&
           cond == XE_SASL_NOT_AUTHORIZED,
       "the token with another user agent id: not-authorized (%s)", detail);
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-EXPR", t1, false, 0, T0 + 1,
              &cond, &detail) == XE_SASL_FAIL,
       "the token with another mechanism fails (%s)", detail);
    xe_tokens_issue(tokens, "bob@example.test", "ua-1", "HT-SHA-256-NONE", T0, 3600, tb,
                    &exp, &err);
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", tb, false, 0, T0 + 1,
              &cond, &detail) == XE_SASL_FAIL,
       "bob's token for alice fails (%s)", detail);
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, false, 0, T0 + 3600,
              &cond, &detail) == XE_SASL_FAIL &&
           cond == XE_SASL_CREDENTIALS_EXPIRED,
       "at its expiry: credentials-expired");
    is_int(verify_read("alice@example.test", "ua-1", t1, false, T0 + 1, &cond, &detail),
           XE_SASL_OK, "read-only: the token verifies, the responder hash is right");
    ok(verify_read("alice@example.test", "ua-1", "xe1-wrong", false, T0 + 1, &cond,
                   &detail) == XE_SASL_FAIL &&
           cond == XE_SASL_NOT_AUTHORIZED,
       "read-only: a wrong token, not-authorized (%s)", detail);
    is_int(verify_read("alice@example.test", "ua-1", t1, true, T0 + 1, &cond, &detail),
           XE_TOKENS_WRITE_NEEDED, "read-only: a count needs a write");

    /* the count rule */
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, true, 5, T0 + 2,
                  &cond, &detail),
           XE_SASL_OK, "count 5 accepted");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, true, 5, T0 + 3, &cond,
              &detail) == XE_SASL_FAIL &&
           strcmp(detail, "replayed count") == 0,
       "count 5 again: replayed");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, true, 4, T0 + 3, &cond,
              &detail) == XE_SASL_FAIL,
       "count 4: replayed");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, false, 0, T0 + 3,
              &cond, &detail) == XE_SASL_FAIL,
       "no count after one was used: refused");
    {
        unsigned char p[32], resp[32];
        memset(p, 0, sizeof(p));
        xe_tokens_verify(tokens, "alice@example.test", "ua-1", "HT-SHA-256-NONE", NULL, 0,
                         p, 32, true, 1000, T0 + 3, resp, &cond, &detail);
    }
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, true, 6, T0 + 3,
                  &cond, &detail),
           XE_SASL_OK, "count 6 accepted: a wrong proof with count 1000 did not move it");

    /* rotation */
    ok(xe_tokens_issue(tokens, "alice@example.test", "ua-1", "HT-SHA-256-NONE", T0 + 10,
                       3600, t2, &exp, &err) == XE_US_OK &&
           strcmp(t1, t2) != 0,
       "a second token (the next slot)");
    is_int(verify_read("alice@example.test", "ua-1", t2, false, T0 + 11, &cond, &detail),
           XE_TOKENS_WRITE_NEEDED,
           "read-only: the next token's first use (a rotation) "
           "needs a write");
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, true, 7, T0 + 11,
                  &cond, &detail),
           XE_SASL_OK, "the current one still works");
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t2, false, 0, T0 + 12,
                  &cond, &detail),
           XE_SASL_OK, "the next one works");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, true, 8, T0 + 13,
              &cond, &detail) == XE_SASL_FAIL,
       "after the next one was used, the old one is gone");
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t2, false, 0, T0 + 14,
                  &cond, &detail),
           XE_SASL_OK, "the promoted one still works");
    is_int(verify_read("alice@example.test", "ua-1", t2, false, T0 + 14, &cond, &detail),
           XE_SASL_OK, "read-only: the promoted one, without a write");

    /* revocation by credentials, disable, revoke */
    set_disabled("alice@example.test", true);
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t2, false, 0, T0 + 15,
              &cond, &detail) == XE_SASL_FAIL &&
           cond == XE_SASL_ACCOUNT_DISABLED,
       "a disabled user: account-disabled");
    set_disabled("alice@example.test", false);
    add_user("alice@example.test", "new-password");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t2, false, 0, T0 + 16,
              &cond, &detail) == XE_SASL_FAIL,
       "after a password change the token fails (%s)", detail);
    xe_tokens_issue(tokens, "alice@example.test", "ua-1", "HT-SHA-256-NONE", T0 + 20,
                    3600, t1, &exp, &err);
    xe_tokens_issue(tokens, "alice@example.test", "ua-2", "HT-SHA-256-NONE", T0 + 20,
                    3600, t2, &exp, &err);
    is_int(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, false, 0, T0 + 21,
                  &cond, &detail),
           XE_SASL_OK, "a token issued after the change works");
    memset(&l, 0, sizeof(l));
    l.blanked = true;
    ok(xe_tokens_list(tokens, "alice@example.test", list_cb, &l, &err) == XE_US_OK &&
           l.n == 2 && strcmp(l.ua[0], "ua-1") == 0 && strcmp(l.ua[1], "ua-2") == 0 &&
           l.blanked,
       "list: alice's two user agents, tokens blanked");
    is_int(xe_tokens_revoke(tokens, "alice@example.test", "ua-2", &err), XE_US_OK,
           "revoke one");
    ok(verify("alice@example.test", "ua-2", "HT-SHA-256-NONE", t2, false, 0, T0 + 22,
              &cond, &detail) == XE_SASL_FAIL,
       "the revoked one fails");
    is_int(xe_tokens_revoke(tokens, "alice@example.test", "ua-2", &err), XE_US_NOTFOUND,
           "revoking it again: not found");
    xe_tokens_issue(tokens, "alice@example.test", "ua-3", "HT-SHA-256-NONE", T0 + 20,
                    3600, t2, &exp, &err);
    ok(xe_tokens_revoke_user(tokens, "alice@example.test", &n, &err) == XE_US_OK &&
           n == 2,
       "revoke all of alice's (%zu)", n);
    memset(&l, 0, sizeof(l));
    xe_tokens_list(tokens, "alice@example.test", list_cb, &l, &err);
    is_int(l.n, 0, "none left");
    ok(verify("alice@example.test", "ua-1", "HT-SHA-256-NONE", t1, false, 0, T0 + 23,
              &cond, &detail) == XE_SASL_FAIL,
       "the token fails");
    memset(&l, 0, sizeof(l));
    xe_tokens_list(tokens, "bob@example.test", list_cb, &l, &err);
    is_int(l.n, 1, "bob's token untouched");
    free(err);
}

/* ---- whole logins through SASL2 ------------------------------------------------------
 */

struct ctx {
    struct xe_sasl2 *s2;
    struct xe_buf out;
    int r;
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

    c->r = xe_sasl2_element(c->s2, e, &c->out, &c->cond, &c->detail);
    return XE_XS_CONTINUE;
}

static int
on_end(void *c)
{
    return XE_XS_CONTINUE;
}

static int
feed(struct ctx *c, const char *xml, bool bytes)
{
    static const struct xe_xmlstream_cb cbs = {on_start, on_elem, on_end};
    static const struct xe_xmlstream_limits lim = {
        XE_DEF_MAX_STANZA_PREAUTH, XE_DEF_MAX_XML_DEPTH, XE_DEF_MAX_ATTRS};
    struct xe_xmlstream *xs = xe_xmlstream_new(&lim, &cbs, c);
    size_t consumed;

    c->r = -99;
    xe_buf_free(&c->out);
    xe_buf_init(&c->out, 0);
    xe_xmlstream_feed(xs, HDR, strlen(HDR), &consumed);
    if (bytes)
        for (size_t i = 0; xml[i]; i++)
            xe_xmlstream_feed(xs, xml + i, 1, &consumed);
    else
        xe_xmlstream_feed(xs, xml, strlen(xml), &consumed);
    xe_xmlstream_free(&xs);
    return c->r;
}

static char *
auth_doc(const char *mech, const char *authcid, const char *tok, const unsigned char *cb,
         size_t cbl, const char *ua, const char *fast_attrs)
{
    static char doc[4096];
    unsigned char p[32];
    char ir[512], b64[1024];
    size_t al = strlen(authcid), bl = 0;

    proof_of(tok, cb, cbl, p, "Initiator");
    memcpy(ir, authcid, al);
    ir[al] = '\0';
    memcpy(ir + al + 1, p, 32);
    xe_sasl_b64_encode(ir, al + 33, b64, sizeof(b64), &bl);
    b64[bl] = '\0';
    snprintf(doc, sizeof(doc),
             "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='%s'><initial-response>%s"
             "</initial-response><user-agent id='%s'><software>t</software></user-agent>"
             "<fast xmlns='urn:xmpp:fast:0'%s/></authenticate>",
             mech, b64, ua, fast_attrs);
    return doc;
}

static void
test_sasl2(void)
{
    struct xe_cbind cbs[2];
    struct xe_fast f, fnone;
    struct xe_sasl2_mech m;
    struct ctx c;
    const char *mechs[4];
    char t1[XE_TOKEN_MAX + 1], t2[XE_TOKEN_MAX + 1], *err = NULL, addl[64];
    int64_t exp = 0;
    size_t n, al = 0;
    unsigned char want[32];

    memset(cbs, 0, sizeof(cbs));
    cbs[0].type = "tls-exporter";
    for (int i = 0; i < 32; i++)
        cbs[0].data[i] = (unsigned char)(0xa0 + i);
    cbs[0].len = 32;
    cbs[1].type = "tls-server-end-point";
    memset(cbs[1].data, 0x11, 32);
    cbs[1].len = 32;
    xe_fast_init(&f, tokens, "example.test", cbs, 2);
    xe_fast_init(&fnone, tokens, "example.test", NULL, 0);
    n = xe_fast_mechanisms(&f, mechs, 4);
    ok(n == 3 && strcmp(mechs[0], "HT-SHA-256-EXPR") == 0 &&
           strcmp(mechs[1], "HT-SHA-256-ENDP") == 0 &&
           strcmp(mechs[2], "HT-SHA-256-NONE") == 0,
       "TLS 1.3 with an end-point binding: EXPR, ENDP, NONE (no UNIQ)");
    n = xe_fast_mechanisms(&fnone, mechs, 4);
    ok(n == 1 && strcmp(mechs[0], "HT-SHA-256-NONE") == 0, "no binding: NONE only");

    add_user("carol@example.test", "carol-pw");
    xe_tokens_issue(tokens, "carol@example.test", "d4565fa7-4d72", "HT-SHA-256-EXPR", T0,
                    3600, t1, &exp, &err);
    xe_tokens_issue(tokens, "carol@example.test", "phone-2", "HT-SHA-256-NONE", T0, 3600,
                    t2, &exp, &err);
    free(err);
    m = xe_fast_mech(&f);
    memset(&c, 0, sizeof(c));
    xe_buf_init(&c.out, 0);
    c.s2 = xe_sasl2_new(NULL, &m, XE_DEF_MAX_SASL_BYTES);
    f.now = T0 + 5;
    ok(feed(&c,
            auth_doc("HT-SHA-256-EXPR", "carol", t1, cbs[0].data, 32, "d4565fa7-4d72",
                     " count='1'"),
            true) == XE_SASL2_SUCCESS,
       "HT-SHA-256-EXPR through SASL2, byte by byte: success (%s)",
       c.detail ? c.detail : "");
    is_str(xe_sasl2_jid(c.s2), "carol@example.test", "the JID from the localpart");
    xe_buf_free(&c.out);
    xe_buf_init(&c.out, 0);
    xe_sasl2_build_success(c.s2, &c.out, "carol@example.test/t.1", NULL, 0);
    xe_buf_append(&c.out, "", 1);
    proof_of(t1, cbs[0].data, 32, want, "Responder");
    {
        const char *a = strstr((char *)c.out.data, "<additional-data>");
        const char *b = a ? strstr(a, "</additional-data>") : NULL;
        ok(a && b &&
               xe_sasl_b64_decode(a + 17, (size_t)(b - a - 17), addl, sizeof(addl),
                                  &al) == 0 &&
               al == 32 && memcmp(addl, want, 32) == 0,
           "<additional-data> is the responder hash over the exporter");
    }
    ok(feed(&c,
            auth_doc("HT-SHA-256-EXPR", "carol", t1, NULL, 0, "d4565fa7-4d72",
                     " count='2'"),
            false) == XE_SASL2_UNEXPECTED,
       "after success the exchange is over");
    xe_sasl2_free(&c.s2);

    c.s2 = xe_sasl2_new(NULL, &m, XE_DEF_MAX_SASL_BYTES);
    ok(feed(&c,
            auth_doc("HT-SHA-256-EXPR", "carol", t1, cbs[1].data, 32, "d4565fa7-4d72",
                     " count='2'"),
            false) == XE_SASL2_FAILURE &&
           c.cond == XE_SASL_NOT_AUTHORIZED,
       "the proof over another binding fails (%s)", c.detail ? c.detail : "");
    ok(feed(&c,
            auth_doc("HT-SHA-256-EXPR", "carol", t1, cbs[0].data, 32, "d4565fa7-4d72",
                     " count='1'"),
            false) == XE_SASL2_FAILURE,
       "the first login replayed (count 1 again) fails on the same stream (%s)",
       c.detail ? c.detail : "");
    ok(feed(&c,
            auth_doc("HT-SHA-256-NONE", "carol@example.test", t2, NULL, 0, "phone-2", ""),
            false) == XE_SASL2_SUCCESS,
       "then HT-SHA-256-NONE with a bare JID succeeds on the same stream");
    xe_sasl2_free(&c.s2);

    c.s2 = xe_sasl2_new(NULL, &m, XE_DEF_MAX_SASL_BYTES);
    ok(feed(&c,
            auth_doc("HT-SHA-256-NONE", "carol@other.test", t2, NULL, 0, "phone-2", ""),
            false) == XE_SASL2_FAILURE,
       "a user of another domain fails");
    ok(feed(&c, auth_doc("HT-SHA-256-UNIQ", "carol", t2, NULL, 0, "phone-2", ""),
            false) == XE_SASL2_FAILURE,
       "-UNIQ on a stream without tls-unique: not ours, Cyrus has none: failure");
    ok(feed(&c,
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'>"
            "<user-agent id='phone-2'/></authenticate>",
            false) == XE_SASL2_FAILURE &&
           c.cond == XE_SASL_MALFORMED_REQUEST,
       "no initial response: malformed-request");
    ok(feed(&c,
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'>"
            "<initial-response>Y2Fyb2w=</initial-response></authenticate>",
            false) == XE_SASL2_FAILURE &&
           c.cond == XE_SASL_MALFORMED_REQUEST,
       "no NUL in the initial response: malformed-request");
    xe_sasl2_free(&c.s2);
    xe_buf_free(&c.out);

    {
        struct xe_buf b;
        xe_buf_init(&b, 0);
        xe_fast_token_xml(&b, "xe1-a'b", T0);
        xe_buf_append(&b, "", 1);
        is_str((char *)b.data,
               "<token xmlns='urn:xmpp:fast:0' expiry='2027-01-15T08:00:00Z' "
               "token='xe1-a&apos;b'/>",
               "the <token/> element");
        xe_buf_free(&b);
    }
}

/* the replica's side (several nodes): a record as the database keeps it,
 * written back as it is, deleted; every key listed */
static int
key_cb(const char *jid, const char *ua, void *ctx)
{
    char *acc = ctx;
    size_t l = strlen(acc);
    snprintf(acc + l, 512 - l, "%s/%s ", jid, ua);
    return 0;
}

static void
test_raw(void)
{
    char tok[XE_TOKEN_MAX + 1], *buf = NULL, *err = NULL, keys[512] = "";
    struct xe_token_rec rec;
    int64_t exp;
    size_t len = 0;

    ok(xe_tokens_issue(tokens, "bob@example.test", "r-1", "HT-SHA-256-NONE", T0, 3600,
                       tok, &exp, &err) == XE_US_OK,
       "raw: a token issued");
    ok(xe_tokens_raw_get(tokens, "bob@example.test", "r-1", &buf, &len, &err) ==
               XE_US_OK &&
           len > 0 && memmem(buf, len, tok, strlen(tok)) != NULL,
       "raw_get: the encoded record, with the token");
    ok(xe_tokens_raw_del(tokens, "bob@example.test", "r-1", &err) == XE_US_OK &&
           xe_tokens_get(tokens, "bob@example.test", "r-1", &rec, &err) == XE_US_NOTFOUND,
       "raw_del: gone");
    ok(xe_tokens_raw_del(tokens, "bob@example.test", "r-1", &err) == XE_US_OK,
       "raw_del of none: ok (a replica applies a deletion twice)");
    ok(xe_tokens_raw_put(tokens, "bob@example.test", "r-2", buf, len, &err) == XE_US_OK &&
           xe_tokens_get(tokens, "bob@example.test", "r-2", &rec, &err) == XE_US_OK &&
           strcmp(rec.cur.token, tok) == 0 && rec.cur.expiry == exp,
       "raw_put: the record as it was, under another key");
    ok(xe_tokens_raw_put(tokens, "bob@example.test", "r-3", "xt1\nbroken", 10, &err) ==
           XE_US_CORRUPT,
       "raw_put of a bad record: refused");
    free(err);
    err = NULL;
    ok(xe_tokens_keys(tokens, key_cb, keys, &err) == XE_US_OK &&
           strstr(keys, "bob@example.test/r-2 ") != NULL &&
           strstr(keys, "bob@example.test/r-3") == NULL,
       "keys: every record's (%s)", keys);
    free(buf);
    free(err);
}

int
main(void)
{
    char *dir = tap_mkdtemp("fast-test"), *err = NULL;
    int r;

    test_vectors();
    test_records();
    r = xe_userstore_open(dir, false, 16, &store, &err);
    ok(r == XE_US_OK, "userstore open %s", err ? err : "");
    free(err);
    err = NULL;
    r = xe_tokens_open(store, &tokens, &err);
    ok(r == XE_US_OK, "token store open %s", err ? err : "");
    free(err);
    if (r == XE_US_OK) {
        add_user("alice@example.test", "alice-pw");
        add_user("bob@example.test", "bob-pw");
        test_store();
        test_sasl2();
        test_raw();
    }
    xe_tokens_close(&tokens);
    xe_userstore_close(&store);
    rm_rf(dir);
    return tap_done();
}
