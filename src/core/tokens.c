/* xedge: FAST tokens in the user store's environment; see tokens.h. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "mech.h"
#include "tokens.h"
#include "util.h"

#define TOK_DB_NAME "fast_tokens"
#define TOK_RANDOM 32 /* bytes of randomness in a token */

struct xe_tokens {
    struct xe_userstore *store;
    MDB_env *env;
    MDB_dbi dbi;
    bool readonly;
};

static void
tok_error(char **error_r, const char *fmt, ...)
{
    va_list ap;
    char buf[512];

    if (error_r == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(*error_r);
    *error_r = xe_strdup(buf);
}

/* The one place where LMDB codes are mapped. */
static int
tok_mdb_error(int rc, const char *what, char **error_r)
{
    tok_error(error_r, "token store: %s failed: %s", what, mdb_strerror(rc));
    return XE_US_IO;
}

/* ---- records ---------------------------------------------------------------------- */

/* A token string: printable ASCII without spaces, bounded. */
static bool
token_ok(const char *s)
{
    size_t l = strlen(s);

    if (l == 0 || l > XE_TOKEN_MAX)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~')
            return false;
    return true;
}

static int
slot_encode(struct xe_buf *b, const char *name, const struct xe_token_slot *s)
{
    if (!s->present)
        return 0;
    if (s->has_count)
        return xe_buf_appendf(b, "%s %s %" PRId64 " %" PRId64 " %llu %s\n", name, s->mech,
                              s->issued, s->expiry, s->count, s->token);
    return xe_buf_appendf(b, "%s %s %" PRId64 " %" PRId64 " - %s\n", name, s->mech,
                          s->issued, s->expiry, s->token);
}

int
xe_token_encode(const struct xe_token_rec *rec, char **buf_r, size_t *len_r)
{
    struct xe_buf b;
    int r = 0;

    xe_buf_init(&b, 0);
    r |= xe_buf_append_str(&b, "xt1\nfp ");
    for (size_t i = 0; i < XE_TOKEN_FP_LEN; i++)
        r |= xe_buf_appendf(&b, "%02x", rec->fp[i]);
    r |= xe_buf_append_str(&b, "\n");
    r |= slot_encode(&b, "cur", &rec->cur);
    r |= slot_encode(&b, "next", &rec->next);
    if (r < 0) {
        OPENSSL_cleanse(b.data, b.len);
        xe_buf_free(&b);
        return -1;
    }
    *buf_r = (char *)b.data;
    *len_r = b.len;
    return 0;
}

static bool
parse_i64(const char *s, int64_t *v)
{
    char *end = NULL;
    long long x;

    if (*s < '0' || *s > '9' || strlen(s) > 18)
        return false;
    x = strtoll(s, &end, 10);
    if (*end)
        return false;
    *v = x;
    return true;
}

/* "MECH ISSUED EXPIRY COUNT|- TOKEN" */
static int
slot_decode(char *line, struct xe_token_slot *s)
{
    char *f[5], *save = NULL, *p = line;
    int n = 0;

    if (s->present)
        return -1; /* twice */
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (n == 5)
            return -1;
        f[n++] = tok;
    }
    if (n != 5 || !xe_mech_name_ok(f[0]) || !token_ok(f[4]))
        return -1;
    if (!parse_i64(f[1], &s->issued) || !parse_i64(f[2], &s->expiry))
        return -1;
    if (strcmp(f[3], "-") == 0) {
        s->has_count = false;
    } else {
        char *end = NULL;
        if (*f[3] < '0' || *f[3] > '9' || strlen(f[3]) > 20)
            return -1;
        s->count = strtoull(f[3], &end, 10);
        if (*end)
            return -1;
        s->has_count = true;
    }
    memcpy(s->mech, f[0], strlen(f[0]) + 1);
    memcpy(s->token, f[4], strlen(f[4]) + 1);
    s->present = true;
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int
xe_token_decode(const char *buf, size_t len, struct xe_token_rec *rec)
{
    char *copy, *line, *save = NULL;
    int r = -1, lineno = 0;

    memset(rec, 0, sizeof(*rec));
    if (len > 4096 || memchr(buf, '\0', len) != NULL)
        return -1;
    copy = xe_strndup(buf, len);
    if (len == 0 || copy[len - 1] != '\n')
        goto out;
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (lineno == 1) {
            if (strcmp(line, "xt1") != 0)
                goto out;
        } else if (lineno == 2) {
            if (strncmp(line, "fp ", 3) != 0 || strlen(line) != 3 + 2 * XE_TOKEN_FP_LEN)
                goto out;
            for (size_t i = 0; i < XE_TOKEN_FP_LEN; i++) {
                int h = hexval(line[3 + 2 * i]), l = hexval(line[4 + 2 * i]);
                if (h < 0 || l < 0)
                    goto out;
                rec->fp[i] = (unsigned char)(h << 4 | l);
            }
        } else if (strncmp(line, "cur ", 4) == 0) {
            if (slot_decode(line + 4, &rec->cur) < 0)
                goto out;
        } else if (strncmp(line, "next ", 5) == 0) {
            if (slot_decode(line + 5, &rec->next) < 0)
                goto out;
        } else {
            goto out;
        }
    }
    if (lineno < 2)
        goto out;
    r = 0;
out:
    OPENSSL_cleanse(copy, len);
    free(copy);
    if (r < 0)
        OPENSSL_cleanse(rec, sizeof(*rec));
    return r;
}

void
xe_token_fingerprint(const struct xe_user *user, unsigned char fp[XE_TOKEN_FP_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned n = 0;

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, "xedge-token-fp1", 15);
    for (int h = 0; h < XE_SCRAM_N; h++) {
        const struct xe_scram_secret *s = &user->scram[h];
        unsigned char hdr[8];
        if (!s->present)
            continue;
        hdr[0] = (unsigned char)h;
        hdr[1] = (unsigned char)(s->iterations >> 24);
        hdr[2] = (unsigned char)(s->iterations >> 16);
        hdr[3] = (unsigned char)(s->iterations >> 8);
        hdr[4] = (unsigned char)s->iterations;
        hdr[5] = (unsigned char)s->salt_len;
        hdr[6] = (unsigned char)s->key_len;
        hdr[7] = 0;
        EVP_DigestUpdate(md, hdr, sizeof(hdr));
        EVP_DigestUpdate(md, s->salt, s->salt_len);
        EVP_DigestUpdate(md, s->stored_key, s->key_len);
        EVP_DigestUpdate(md, s->server_key, s->key_len);
    }
    if (user->legacy) {
        EVP_DigestUpdate(md, "L", 1);
        EVP_DigestUpdate(md, user->legacy_password, user->legacy_len);
    }
    EVP_DigestFinal_ex(md, fp, &n);
    EVP_MD_CTX_free(md);
}

int
xe_ht_sha256(const char *token, size_t token_len, const char *label,
             const unsigned char *cb, size_t cb_len, unsigned char out[32])
{
    unsigned char msg[16 + XE_CB_DATA_MAX];
    size_t ll = strlen(label);
    unsigned n = 0;

    if (ll > 16 || cb_len > XE_CB_DATA_MAX)
        return -1;
    memcpy(msg, label, ll);
    if (cb_len)
        memcpy(msg + ll, cb, cb_len);
    if (HMAC(EVP_sha256(), token, (int)token_len, msg, ll + cb_len, out, &n) == NULL ||
        n != 32)
        return -1;
    return 0;
}

/* ---- the database -------------------------------------------------------------------
 */

int
xe_tokens_open(struct xe_userstore *store, struct xe_tokens **t_r, char **error_r)
{
    struct xe_tokens *t = xe_calloc(1, sizeof(*t));
    MDB_txn *txn = NULL;
    int r = XE_US_IO, rc;

    *t_r = NULL;
    t->store = store;
    t->env = xe_userstore_env(store);
    t->readonly = xe_userstore_readonly(store);
    if ((rc = mdb_txn_begin(t->env, NULL, t->readonly ? MDB_RDONLY : 0, &txn)) != 0) {
        r = tok_mdb_error(rc, "mdb_txn_begin", error_r);
        goto out;
    }
    rc = mdb_dbi_open(txn, TOK_DB_NAME, t->readonly ? 0 : MDB_CREATE, &t->dbi);
    if (rc == MDB_NOTFOUND) {
        r = XE_US_NOTFOUND; /* read-only, and no token was ever issued */
        tok_error(error_r, "token store: no token was ever issued");
        goto out;
    }
    if (rc != 0) {
        r = tok_mdb_error(rc, "opening the database \"" TOK_DB_NAME "\"", error_r);
        goto out;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        r = tok_mdb_error(rc, "opening the database \"" TOK_DB_NAME "\"", error_r);
        goto out;
    }
    *t_r = t;
    t = NULL;
    r = XE_US_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    free(t);
    return r;
}

void
xe_tokens_close(struct xe_tokens **t)
{
    free(*t);
    *t = NULL;
}

/* a write's hook (several nodes): 'k' with "JID/UA_ID" */
static void
after_key(struct xe_tokens *t, char kind, const char *jid, const char *ua_id)
{
    char k[600];

    if (snprintf(k, sizeof(k), "%s/%s", jid, ua_id ? ua_id : "") < (int)sizeof(k))
        xe_userstore_hook_after(t->store, kind, k);
}

/* "JID\0UA_ID"; the user agent id may be "" (a client without one). */
static int
make_key(const char *jid, const char *ua_id, char *buf, size_t max, MDB_val *key)
{
    size_t jl = strlen(jid), ul = ua_id ? strlen(ua_id) : 0;

    if (jl == 0 || jl + 1 + ul > max || jl + 1 + ul > 511)
        return -1;
    memcpy(buf, jid, jl);
    buf[jl] = '\0';
    if (ul)
        memcpy(buf + jl + 1, ua_id, ul);
    key->mv_data = buf;
    key->mv_size = jl + 1 + ul;
    return 0;
}

static int
get_rec(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, struct xe_token_rec *rec, char **error_r)
{
    MDB_val data;
    int rc = mdb_get(txn, dbi, key, &data);

    if (rc == MDB_NOTFOUND)
        return XE_US_NOTFOUND;
    if (rc != 0)
        return tok_mdb_error(rc, "reading a token record", error_r);
    if (xe_token_decode(data.mv_data, data.mv_size, rec) < 0) {
        tok_error(error_r, "token store: a corrupt record");
        return XE_US_CORRUPT;
    }
    return XE_US_OK;
}

static int
put_rec(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, const struct xe_token_rec *rec,
        char **error_r)
{
    MDB_val data;
    char *buf = NULL;
    size_t len = 0;
    int rc, r = XE_US_OK;

    if (xe_token_encode(rec, &buf, &len) < 0) {
        tok_error(error_r, "token store: out of memory");
        return XE_US_IO;
    }
    data.mv_data = buf;
    data.mv_size = len;
    if ((rc = mdb_put(txn, dbi, key, &data, 0)) != 0)
        r = tok_mdb_error(rc, "writing a token record", error_r);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return r;
}

static void
new_token(char *out)
{
    unsigned char rnd[TOK_RANDOM];
    char b64[64];
    int n;

    RAND_bytes(rnd, sizeof(rnd));
    n = EVP_EncodeBlock((unsigned char *)b64, rnd, sizeof(rnd));
    /* base64url, unpadded: the token travels in an XML attribute */
    while (n > 0 && b64[n - 1] == '=')
        n--;
    b64[n] = '\0';
    for (char *p = b64; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    snprintf(out, XE_TOKEN_MAX + 1, "xe1-%s", b64);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_cleanse(b64, sizeof(b64));
}

int
xe_tokens_issue(struct xe_tokens *t, const char *jid, const char *ua_id, const char *mech,
                int64_t now, int64_t lifetime, char *token_r, int64_t *expiry_r,
                char **error_r)
{
    struct xe_user user;
    struct xe_token_rec rec;
    struct xe_token_slot *slot;
    MDB_txn *txn = NULL;
    MDB_val key;
    char kbuf[512];
    unsigned char fp[XE_TOKEN_FP_LEN];
    int r, rc;

    memset(&rec, 0, sizeof(rec));
    if (!xe_mech_name_ok(mech) || make_key(jid, ua_id, kbuf, sizeof(kbuf), &key) < 0) {
        tok_error(error_r, "token store: bad user, user agent or mechanism");
        r = XE_US_INVALID;
        goto out;
    }
    if ((r = xe_userstore_hook_before(t->store, jid, error_r)) != XE_US_OK ||
        (r = xe_userstore_get(t->store, jid, &user, error_r)) != XE_US_OK)
        goto out;
    xe_token_fingerprint(&user, fp);
    OPENSSL_cleanse(&user, sizeof(user));
    if ((rc = mdb_txn_begin(t->env, NULL, 0, &txn)) != 0) {
        r = tok_mdb_error(rc, "mdb_txn_begin", error_r);
        goto out;
    }
    r = get_rec(txn, t->dbi, &key, &rec, error_r);
    if (r == XE_US_CORRUPT || r == XE_US_NOTFOUND ||
        memcmp(rec.fp, fp, sizeof(fp)) != 0) {
        /* a new record; a corrupt one, or one of older credentials, replaced */
        memset(&rec, 0, sizeof(rec));
        r = XE_US_OK;
    }
    if (r != XE_US_OK)
        goto out;
    memcpy(rec.fp, fp, sizeof(fp));
    if (rec.cur.present && rec.cur.expiry > now)
        slot = &rec.next;
    else
        slot = &rec.cur, memset(&rec.next, 0, sizeof(rec.next));
    memset(slot, 0, sizeof(*slot));
    slot->present = true;
    memcpy(slot->mech, mech, strlen(mech) + 1);
    slot->issued = now;
    slot->expiry = now + lifetime;
    new_token(slot->token);
    if ((r = put_rec(txn, t->dbi, &key, &rec, error_r)) != XE_US_OK)
        goto out;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        r = tok_mdb_error(rc, "committing a token", error_r);
        goto out;
    }
    after_key(t, 'k', jid, ua_id);
    memcpy(token_r, slot->token, strlen(slot->token) + 1);
    *expiry_r = slot->expiry;
out:
    if (txn)
        mdb_txn_abort(txn);
    OPENSSL_cleanse(&rec, sizeof(rec));
    return r;
}

/* Whether PROOF matches SLOT (computed whatever the slot's state, so that the
 * time taken does not tell which check failed). */
static bool
slot_matches(const struct xe_token_slot *s, const char *mech, const unsigned char *cb,
             size_t cb_len, const unsigned char *proof, size_t proof_len)
{
    unsigned char want[32];
    const char *tok = s->present ? s->token : "xedge-no-token";
    bool ok;

    if (xe_ht_sha256(tok, strlen(tok), "Initiator", cb, cb_len, want) < 0)
        return false;
    ok = proof_len == 32 && CRYPTO_memcmp(want, proof, 32) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    return ok && s->present && strcmp(s->mech, mech) == 0;
}

static int
verify(struct xe_tokens *t, const char *jid, const char *ua_id, const char *mech,
       const unsigned char *cb, size_t cb_len, const unsigned char *proof,
       size_t proof_len, bool has_count, unsigned long long count, int64_t now,
       bool read_only, unsigned char responder[32], enum xe_sasl_cond *cond_r,
       const char **detail_r)
{
    struct xe_user user;
    struct xe_token_rec rec;
    struct xe_token_slot *slot = NULL;
    MDB_txn *txn = NULL;
    MDB_val key;
    char kbuf[512], *err = NULL;
    unsigned char fp[XE_TOKEN_FP_LEN];
    bool m_cur, m_next, have_user;
    int r = XE_SASL_FAIL, rc, g;

    *cond_r = XE_SASL_NOT_AUTHORIZED;
    memset(&rec, 0, sizeof(rec));
    memset(&user, 0, sizeof(user));
    if (make_key(jid, ua_id, kbuf, sizeof(kbuf), &key) < 0) {
        *detail_r = "no such token";
        goto out;
    }
    g = xe_userstore_get(t->store, jid, &user, &err);
    if (g != XE_US_OK && g != XE_US_NOTFOUND) {
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        *detail_r = "the user store cannot be read";
        goto out;
    }
    have_user = g == XE_US_OK;
    if ((rc = mdb_txn_begin(t->env, NULL, read_only ? MDB_RDONLY : 0, &txn)) != 0) {
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        *detail_r = "the token store cannot be read";
        goto out;
    }
    g = get_rec(txn, t->dbi, &key, &rec, &err);
    if (g != XE_US_OK && g != XE_US_NOTFOUND && g != XE_US_CORRUPT) {
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        *detail_r = "the token store cannot be read";
        goto out;
    }
    /* both slots always computed (a record or not): constant work */
    m_cur = slot_matches(&rec.cur, mech, cb, cb_len, proof, proof_len);
    m_next = slot_matches(&rec.next, mech, cb, cb_len, proof, proof_len);
    if (g != XE_US_OK || !have_user) {
        *detail_r = have_user ? "no such token" : "no such user";
        goto out;
    }
    if (!m_cur && !m_next) {
        *detail_r = "wrong token";
        goto out;
    }
    slot = m_next ? &rec.next : &rec.cur;
    xe_token_fingerprint(&user, fp);
    if (CRYPTO_memcmp(fp, rec.fp, sizeof(fp)) != 0) {
        *detail_r = "token of older credentials (revoked)";
        goto out;
    }
    if (now >= slot->expiry) {
        *cond_r = XE_SASL_CREDENTIALS_EXPIRED;
        *detail_r = "expired token";
        goto out;
    }
    if (slot->has_count && (!has_count || count <= slot->count)) {
        *detail_r = "replayed count";
        goto out;
    }
    if (user.disabled) {
        *cond_r = XE_SASL_ACCOUNT_DISABLED;
        *detail_r = "account disabled";
        goto out;
    }
    if (read_only && (has_count || m_next)) {
        r = XE_TOKENS_WRITE_NEEDED;
        goto out;
    }
    if (has_count) {
        slot->has_count = true;
        slot->count = count;
    }
    if (m_next) { /* rotation: the next token is now the current one */
        rec.cur = rec.next;
        memset(&rec.next, 0, sizeof(rec.next));
        slot = &rec.cur;
    }
    if (!has_count && !m_next) {
        /* nothing changed (no count, no rotation): no write, no disk flush,
         * nothing for the other nodes */
        mdb_txn_abort(txn);
        txn = NULL;
    } else {
        if (put_rec(txn, t->dbi, &key, &rec, &err) != XE_US_OK ||
            (rc = mdb_txn_commit(txn)) != 0) {
            *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
            *detail_r = "the token store cannot be written";
            goto out;
        }
        txn = NULL;
        after_key(t, 'k', jid, ua_id);
    }
    if (xe_ht_sha256(slot->token, strlen(slot->token), "Responder", cb, cb_len,
                     responder) < 0) {
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        *detail_r = "HMAC failed";
        goto out;
    }
    r = XE_SASL_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    free(err);
    OPENSSL_cleanse(&rec, sizeof(rec));
    OPENSSL_cleanse(&user, sizeof(user));
    return r;
}

int
xe_tokens_verify(struct xe_tokens *t, const char *jid, const char *ua_id,
                 const char *mech, const unsigned char *cb, size_t cb_len,
                 const unsigned char *proof, size_t proof_len, bool has_count,
                 unsigned long long count, int64_t now, unsigned char responder[32],
                 enum xe_sasl_cond *cond_r, const char **detail_r)
{
    return verify(t, jid, ua_id, mech, cb, cb_len, proof, proof_len, has_count, count,
                  now, false, responder, cond_r, detail_r);
}

int
xe_tokens_verify_read(struct xe_tokens *t, const char *jid, const char *ua_id,
                      const char *mech, const unsigned char *cb, size_t cb_len,
                      const unsigned char *proof, size_t proof_len, bool has_count,
                      int64_t now, unsigned char responder[32], enum xe_sasl_cond *cond_r,
                      const char **detail_r)
{
    if (has_count) /* a count is always written */
        return XE_TOKENS_WRITE_NEEDED;
    return verify(t, jid, ua_id, mech, cb, cb_len, proof, proof_len, false, 0, now, true,
                  responder, cond_r, detail_r);
}

int
xe_tokens_revoke(struct xe_tokens *t, const char *jid, const char *ua_id, char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key;
    char kbuf[512];
    int r = XE_US_OK, rc;

    if (make_key(jid, ua_id, kbuf, sizeof(kbuf), &key) < 0)
        return XE_US_NOTFOUND;
    if ((r = xe_userstore_hook_before(t->store, jid, error_r)) != XE_US_OK)
        return r;
    if ((rc = mdb_txn_begin(t->env, NULL, 0, &txn)) != 0)
        return tok_mdb_error(rc, "mdb_txn_begin", error_r);
    rc = mdb_del(txn, t->dbi, &key, NULL);
    if (rc == MDB_NOTFOUND) {
        r = XE_US_NOTFOUND;
        goto out;
    }
    if (rc != 0) {
        r = tok_mdb_error(rc, "deleting a token record", error_r);
        goto out;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        r = tok_mdb_error(rc, "committing a revocation", error_r);
    else
        after_key(t, 'k', jid, ua_id);
out:
    if (txn)
        mdb_txn_abort(txn);
    return r;
}

/* Walk JID's records: each one to CB (LIST) or deleted (!LIST). */
static int
walk(struct xe_tokens *t, const char *jid, bool list,
     int (*cb)(const char *ua_id, const struct xe_token_rec *rec, void *ctx), void *ctx,
     size_t *n_r, char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val key, data;
    char kbuf[512];
    size_t jl = strlen(jid), n = 0;
    int r = XE_US_OK, rc;

    if (make_key(jid, "", kbuf, sizeof(kbuf), &key) < 0)
        goto out;
    if (!list && (r = xe_userstore_hook_before(t->store, jid, error_r)) != XE_US_OK)
        goto out;
    if ((rc = mdb_txn_begin(t->env, NULL, list ? MDB_RDONLY : 0, &txn)) != 0 ||
        (rc = mdb_cursor_open(txn, t->dbi, &cur)) != 0) {
        r = tok_mdb_error(rc, "opening a cursor", error_r);
        goto out;
    }
    for (rc = mdb_cursor_get(cur, &key, &data, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT)) {
        char ua[XE_SASL2_MAX_UA_ID + 1];
        struct xe_token_rec rec;
        size_t ul;
        if (key.mv_size <= jl || memcmp(key.mv_data, jid, jl) != 0 ||
            ((const char *)key.mv_data)[jl] != '\0')
            break;
        n++;
        if (!list) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0) {
                r = tok_mdb_error(rc, "deleting a token record", error_r);
                goto out;
            }
            continue;
        }
        ul = key.mv_size - jl - 1;
        if (ul > XE_SASL2_MAX_UA_ID)
            continue;
        memcpy(ua, (const char *)key.mv_data + jl + 1, ul);
        ua[ul] = '\0';
        if (xe_token_decode(data.mv_data, data.mv_size, &rec) < 0)
            memset(&rec, 0, sizeof(rec)); /* listed, empty: revoke it */
        OPENSSL_cleanse(rec.cur.token, sizeof(rec.cur.token));
        OPENSSL_cleanse(rec.next.token, sizeof(rec.next.token));
        if (cb(ua, &rec, ctx) != 0)
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = tok_mdb_error(rc, "reading the token records", error_r);
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (!list && (rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        r = tok_mdb_error(rc, "committing a revocation", error_r);
        goto out;
    }
    if (!list) {
        txn = NULL;
        /* the database deletes every token of the user, also those this
         * node has not seen yet */
        xe_userstore_hook_after(t->store, 'K', jid);
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (n_r)
        *n_r = n;
    return r;
}

int
xe_tokens_revoke_user(struct xe_tokens *t, const char *jid, size_t *n_r, char **error_r)
{
    return walk(t, jid, false, NULL, NULL, n_r, error_r);
}

int
xe_tokens_list(struct xe_tokens *t, const char *jid,
               int (*cb)(const char *ua_id, const struct xe_token_rec *rec, void *ctx),
               void *ctx, char **error_r)
{
    return walk(t, jid, true, cb, ctx, NULL, error_r);
}

int
xe_tokens_get(struct xe_tokens *t, const char *jid, const char *ua_id,
              struct xe_token_rec *rec, char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key;
    char kbuf[512];
    int r, rc;

    memset(rec, 0, sizeof(*rec));
    if (make_key(jid, ua_id, kbuf, sizeof(kbuf), &key) < 0)
        return XE_US_NOTFOUND;
    if ((rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn)) != 0)
        return tok_mdb_error(rc, "mdb_txn_begin", error_r);
    r = get_rec(txn, t->dbi, &key, rec, error_r);
    mdb_txn_abort(txn);
    if (r != XE_US_OK)
        OPENSSL_cleanse(rec, sizeof(*rec));
    return r;
}

int
xe_tokens_raw_get(struct xe_tokens *t, const char *jid, const char *ua_id, char **buf_r,
                  size_t *len_r, char **error_r)
{
    struct xe_token_rec rec;
    int r = xe_tokens_get(t, jid, ua_id, &rec, error_r);

    *buf_r = NULL;
    *len_r = 0;
    if (r == XE_US_OK && xe_token_encode(&rec, buf_r, len_r) < 0) {
        tok_error(error_r, "token store: out of memory");
        r = XE_US_IO;
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    return r;
}

int
xe_tokens_raw_put(struct xe_tokens *t, const char *jid, const char *ua_id,
                  const char *buf, size_t len, char **error_r)
{
    struct xe_token_rec rec;
    MDB_txn *txn = NULL;
    MDB_val key;
    char kbuf[512];
    int r, rc;

    if (make_key(jid, ua_id, kbuf, sizeof(kbuf), &key) < 0 ||
        xe_token_decode(buf, len, &rec) < 0) {
        tok_error(error_r, "token store: a bad token record for %s", jid);
        return XE_US_CORRUPT;
    }
    if ((rc = mdb_txn_begin(t->env, NULL, 0, &txn)) != 0) {
        OPENSSL_cleanse(&rec, sizeof(rec));
        return tok_mdb_error(rc, "mdb_txn_begin", error_r);
    }
    r = put_rec(txn, t->dbi, &key, &rec, error_r);
    OPENSSL_cleanse(&rec, sizeof(rec));
    if (r != XE_US_OK) {
        mdb_txn_abort(txn);
        return r;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return tok_mdb_error(rc, "committing a token", error_r);
    return XE_US_OK;
}

int
xe_tokens_raw_del(struct xe_tokens *t, const char *jid, const char *ua_id, char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key;
    char kbuf[512];
    int rc;

    if (make_key(jid, ua_id, kbuf, sizeof(kbuf), &key) < 0)
        return XE_US_NOTFOUND;
    if ((rc = mdb_txn_begin(t->env, NULL, 0, &txn)) != 0)
        return tok_mdb_error(rc, "mdb_txn_begin", error_r);
    rc = mdb_del(txn, t->dbi, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return tok_mdb_error(rc, "deleting a token record", error_r);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return tok_mdb_error(rc, "committing a revocation", error_r);
    return XE_US_OK;
}

int
xe_tokens_keys(struct xe_tokens *t,
               int (*cb)(const char *jid, const char *ua_id, void *ctx), void *ctx,
               char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val key, data;
    int r = XE_US_OK, rc;

    if ((rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_cursor_open(txn, t->dbi, &cur)) != 0) {
        if (txn)
            mdb_txn_abort(txn);
        return tok_mdb_error(rc, "opening a cursor", error_r);
    }
    for (rc = mdb_cursor_get(cur, &key, &data, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT)) {
        char k[512];
        const char *nul;
        if (key.mv_size >= sizeof(k) ||
            (nul = memchr(key.mv_data, '\0', key.mv_size)) == NULL)
            continue;
        memcpy(k, key.mv_data, key.mv_size);
        k[key.mv_size] = '\0';
        if (cb(k, k + (nul - (const char *)key.mv_data) + 1, ctx) != 0)
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        r = tok_mdb_error(rc, "reading the token records", error_r);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return r;
}
