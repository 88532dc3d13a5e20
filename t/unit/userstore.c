#define _GNU_SOURCE /* memmem */
/* Unit tests of the user store: JID syntax, the record codec, SCRAM secrets
 * (RFC 5802 and RFC 7677 examples) and the LMDB store in a temporary
 * directory. TAP output. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "userstore.h"
#include "tap.h"

/* ---- helpers ------------------------------------------------------------ */

static size_t
b64dec(const char *in, unsigned char *out)
{
    size_t len = strlen(in);
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);

    while (len > 0 && in[len - 1] == '=') {
        len--;
        n--;
    }
    return (size_t)n;
}

static const char *
b64enc(const unsigned char *in, size_t len)
{
    static char out[4][256];
    static int i;

    i = (i + 1) % 4;
    EVP_EncodeBlock((unsigned char *)out[i], in, (int)len);
    return out[i];
}

/* SCRAM key derivation written independently of src/core/userstore.c. */
static void
derive(const EVP_MD *md, const char *pw, const unsigned char *salt, size_t salt_len,
       unsigned iter, unsigned char *client_key, unsigned char *stored_key,
       unsigned char *server_key)
{
    unsigned char sp[64];
    unsigned n = (unsigned)EVP_MD_size(md), l;

    PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)salt_len, (int)iter, md, (int)n,
                      sp);
    HMAC(md, sp, (int)n, (const unsigned char *)"Client Key", 10, client_key, &l);
    EVP_Digest(client_key, n, stored_key, &l, md, NULL);
    HMAC(md, sp, (int)n, (const unsigned char *)"Server Key", 10, server_key, &l);
}

static void
make_user(struct xe_user *u, const char *jid)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->jid, sizeof(u->jid), "%s", jid);
    u->created = 1700000000;
    u->modified = 1700000001;
}

/* ---- JIDs --------------------------------------------------------------- */

static void
test_jid(void)
{
    static const char *const bad[] = {
        "example.org",
        "@example.org",
        "alice@",
        "alice@example.org/res",
        "al ice@example.org",
        "a\"b@example.org",
        "a&b@x",
        "a'b@x",
        "a/b@x",
        "a:b@x",
        "a<b@x",
        "a>b@x",
        "a@b@x",
        "a\001b@x",
        "a\x7f@x",
        "a@ex ample.org",
        "\xc3\x28@x",
        "\xe0\x80\xaf@x",
        "\xc0\xaf@x",
        "\xed\xa0\x80@x",
        "\xf4\x90\x80\x80@x",
        "a\xc2\x85@x",
        "",
    };
    char buf[4096];
    size_t i;

    snprintf(buf, sizeof(buf), "Alice@Example.ORG");
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), 0, "jid: mixed case accepted");
    is_str(buf, "alice@example.org", "jid: lower-cased");
    snprintf(buf, sizeof(buf), "J\xc3\xbcRGEN@b\xc3\xbc\x63her.example");
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), 0, "jid: UTF-8 accepted");
    is_str(buf, "j\xc3\xbcrgen@b\xc3\xbc\x63her.example",
           "jid: lower-cased by nodeprep and nameprep");
    snprintf(buf, sizeof(buf), "a@b");
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), 0, "jid: shortest accepted");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        is_int(xe_jid_normalize(buf, sizeof(buf), NULL), XE_US_INVALID,
               "jid: bad #%zu refused", i);
    }
    snprintf(buf, sizeof(buf), "Al ice@EXAMPLE.org");
    xe_jid_normalize(buf, sizeof(buf), NULL);
    is_str(buf, "Al ice@EXAMPLE.org", "jid: a refused JID is left as it was");

    memset(buf, 'a', 1023);
    snprintf(buf + 1023, sizeof(buf) - 1023, "@example.org");
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), 0,
           "jid: 1023-byte localpart accepted");
    memset(buf, 'a', 1024);
    snprintf(buf + 1024, sizeof(buf) - 1024, "@example.org");
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), XE_US_INVALID,
           "jid: 1024-byte localpart refused");
    snprintf(buf, sizeof(buf), "a@");
    memset(buf + 2, 'd', 1023);
    buf[1025] = '\0';
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), 0, "jid: 1023-byte domain accepted");
    snprintf(buf, sizeof(buf), "a@");
    memset(buf + 2, 'd', 1024);
    buf[1026] = '\0';
    is_int(xe_jid_normalize(buf, sizeof(buf), NULL), XE_US_INVALID,
           "jid: 1024-byte domain refused");
    ok(xe_jid_normalize(NULL, 0, NULL) == XE_US_INVALID, "jid: NULL refused");
}

/* ---- codec -------------------------------------------------------------- */

#define REC_HEAD "v=1\ncreated=1700000000\nmodified=1700000001\ndisabled=0\npin=\n"
#define S1_SALT "QSXCR+Q6sek8bf92"
#define S1_SK "6dlGYMOdZcOPutkcNY8U2g7vK9Y="
#define S1_SVK "D+CSWLOshSulAsxiupA+qs2/fTE="
#define S256_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define S256_SK "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define S256_SVK "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define S1_LINE "SCRAM-SHA-1=4096:" S1_SALT ":" S1_SK ":" S1_SVK "\n"
#define S256_LINE "SCRAM-SHA-256=4096:" S256_SALT ":" S256_SK ":" S256_SVK "\n"

static int
decode_str(const char *rec, struct xe_user *u)
{
    return xe_user_decode("user@example.org", rec, strlen(rec), u);
}

static void
test_codec(void)
{
    static const char *const corrupt[] = {
        "",
        "created=1\nmodified=1\ndisabled=0\npin=\n", /* no version */
        "v=2\ncreated=1\nmodified=1\ndisabled=0\npin=\n",
        "v=1 \ncreated=1\nmodified=1\ndisabled=0\npin=\n",
        "created=1\nv=1\nmodified=1\ndisabled=0\npin=\n", /* version not first */
        "v=1\nv=1\ncreated=1\nmodified=1\ndisabled=0\npin=\n",
        "v=1\nmodified=1\ndisabled=0\npin=\n", /* no created */
        "v=1\ncreated=1\ncreated=2\nmodified=1\ndisabled=0\npin=\n",
        "v=1\ncreated=-1\nmodified=1\ndisabled=0\npin=\n",
        "v=1\ncreated=01\nmodified=1\ndisabled=0\npin=\n",
        "v=1\ncreated=99999999999999999999\nmodified=1\ndisabled=0\npin=\n",
        "v=1\ncreated=1\nmodified=1\ndisabled=2\npin=\n",
        "v=1\ncreated=1\nmodified=1\ndisabled=0\npin=\n\n", /* empty line */
        "v=1\ncreated=1\nmodified=1\ndisabled=0\npin=\ngarbage\n",
        "v=1\ncreated=1\nmodified=1\ndisabled=0\npin=a\rb\n",
        REC_HEAD "SCRAM-SHA-256=0:" S256_SALT ":" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=x:" S256_SALT ":" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=:" S256_SALT ":" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=-5:" S256_SALT ":" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4294967297:" S256_SALT ":" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=10000000:" S256_SALT ":" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:" S256_SALT ":" S256_SK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:" S256_SALT ":" S256_SK ":" S256_SVK ":x\n",
        REC_HEAD "SCRAM-SHA-256=4096:!!!!:" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096::" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:QR==:" S256_SK ":" S256_SVK "\n", /* not canonical */
        /* not canonical in the last group, after whole ones; a padding inside */
        REC_HEAD "SCRAM-SHA-256=4096:QUJDQUJ=:" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:QUJDQUJDQR==:" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:QR==QUJD:" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:W22ZaJ0SNY7soEsUEjb6gQ=:" S256_SK ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:" S256_SALT
                 ":=WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY"
                 ":" S256_SVK "\n",
        REC_HEAD "SCRAM-SHA-256=4096:" S256_SALT ":" S1_SK ":" S256_SVK
                 "\n",                                                    /* 20 bytes */
        REC_HEAD "SCRAM-SHA-1=4096:" S1_SALT ":" S256_SK ":" S1_SVK "\n", /* 32 bytes */
        REC_HEAD S256_LINE S256_LINE,
    };
    struct xe_user u, u2;
    unsigned char b[64];
    char *buf = NULL;
    size_t len = 0, i;
    int r;

    r = decode_str(REC_HEAD S1_LINE S256_LINE, &u);
    is_int(r, XE_US_OK, "codec: a full record decodes");
    is_str(u.jid, "user@example.org", "codec: jid from the key");
    is_int(u.created, 1700000000, "codec: created");
    is_int(u.modified, 1700000001, "codec: modified");
    ok(!u.disabled, "codec: not disabled");
    is_str(u.pin, "", "codec: no pin");
    ok(u.scram[XE_SCRAM_SHA1].present && u.scram[XE_SCRAM_SHA256].present,
       "codec: both hashes present");
    is_int(u.scram[XE_SCRAM_SHA256].iterations, 4096, "codec: iterations");
    is_int(u.scram[XE_SCRAM_SHA256].salt_len, 16, "codec: salt length");
    is_int(u.scram[XE_SCRAM_SHA256].key_len, 32, "codec: SHA-256 key length");
    is_int(u.scram[XE_SCRAM_SHA1].key_len, 20, "codec: SHA-1 key length");
    is_int(u.scram[XE_SCRAM_SHA1].salt_len, 12, "codec: SHA-1 salt length");
    ok(b64dec(S256_SK, b) == 32 &&
           memcmp(b, u.scram[XE_SCRAM_SHA256].stored_key, 32) == 0,
       "codec: StoredKey bytes");

    r = xe_user_encode(&u, &buf, &len);
    is_int(r, XE_US_OK, "codec: encode");
    ok(buf != NULL && len == strlen(REC_HEAD S1_LINE S256_LINE) &&
           memcmp(buf, REC_HEAD S1_LINE S256_LINE, len) == 0,
       "codec: encode gives the canonical text back");
    free(buf);
    buf = NULL;

    make_user(&u, "bob@example.org");
    u.disabled = true;
    u.expires = 1800000000;
    snprintf(u.pin, sizeof(u.pin), "backend-2");
    ok(xe_user_set_password(&u, "s3cret", 6, 4096) == XE_US_OK, "codec: set_password");
    r = xe_user_encode(&u, &buf, &len);
    is_int(r, XE_US_OK, "codec: encode a user with a pin");
    r = xe_user_decode("bob@example.org", buf, len, &u2);
    is_int(r, XE_US_OK, "codec: decode what encode wrote");
    ok(memcmp(&u, &u2, sizeof(u)) == 0, "codec: roundtrip gives the same user");
    ok(memmem(buf, len, "\nexpires=1800000000\n", 20) != NULL && u2.expires == 1800000000,
       "codec: the expiry is kept");
    free(buf);
    buf = NULL;
    r = decode_str(REC_HEAD S256_LINE, &u);
    ok(r == XE_US_OK && u.expires == 0, "codec: no expires line: never expires");
    r = decode_str(REC_HEAD "expires=12\n" S256_LINE, &u);
    ok(r == XE_US_OK && u.expires == 12, "codec: expires decoded");
    ok(xe_user_encode(&u, &buf, &len) == XE_US_OK &&
           memcmp(buf, REC_HEAD "expires=12\n" S256_LINE, len) == 0,
       "codec: expires encoded after the pin, canonically");
    free(buf);
    buf = NULL;
    is_int(decode_str(REC_HEAD "expires=-1\n", &u), XE_US_CORRUPT,
           "codec: a negative expiry is corrupt");
    is_int(decode_str(REC_HEAD "expires=1\nexpires=2\n", &u), XE_US_CORRUPT,
           "codec: two expires lines are corrupt");

    r = decode_str(REC_HEAD "future-name=anything: at all\n" S256_LINE, &u);
    is_int(r, XE_US_OK, "codec: an unknown name is not an error");
    ok(!u.scram[XE_SCRAM_SHA1].present && u.scram[XE_SCRAM_SHA256].present,
       "codec: only SHA-256 present");
    r = decode_str("v=1\ncreated=5\nmodified=6\ndisabled=1", &u);
    is_int(r, XE_US_OK, "codec: no pin and no final newline");
    ok(u.disabled && u.created == 5 && u.modified == 6, "codec: its fields");

    for (i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++)
        is_int(decode_str(corrupt[i], &u), XE_US_CORRUPT, "codec: corrupt #%zu refused",
               i);
    is_int(xe_user_decode("a@b", "v=1\ncreated=1\0\nmodified=1\ndisabled=0\n", 36, &u),
           XE_US_CORRUPT, "codec: NUL byte refused");

    make_user(&u, "a@b");
    snprintf(u.pin, sizeof(u.pin), "evil\nSCRAM-SHA-1=1:AA==:AA==:AA==");
    ok(xe_user_encode(&u, &buf, &len) == XE_US_INVALID && buf == NULL,
       "codec: a pin with a newline is not encoded");
    make_user(&u, "a@b");
    u.scram[XE_SCRAM_SHA256].present = true;
    u.scram[XE_SCRAM_SHA256].iterations = 4096;
    u.scram[XE_SCRAM_SHA256].salt_len = 16;
    u.scram[XE_SCRAM_SHA256].key_len = 20;
    ok(xe_user_encode(&u, &buf, &len) == XE_US_INVALID,
       "codec: a bad secret is not encoded");
}

/* ---- SCRAM -------------------------------------------------------------- */

struct vector {
    const char *name;
    const EVP_MD *(*md)(void);
    const char *salt, *stored_key, *server_key;
    const char *auth_message, *proof, *signature;
};

static void
test_scram(void)
{
    /* RFC 5802 section 5 and RFC 7677 section 3: user "user", password
     * "pencil". The proof and the server signature are the RFCs' own values;
     * StoredKey/ServerKey were computed with python3 hashlib. */
    static const struct vector v[] = {
        {"SCRAM-SHA-1", EVP_sha1, S1_SALT, S1_SK, S1_SVK,
         "n=user,r=fyko+d2lbbFgONRv9qkxdawL,"
         "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,"
         "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
         "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ="},
        {"SCRAM-SHA-256", EVP_sha256, S256_SALT, S256_SK, S256_SVK,
         "n=user,r=rOprNGfwEbeRWgbNEkqO,"
         "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ=="
         ","
         "i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
         "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
    };
    unsigned char salt[64], ck[64], sk[64], svk[64], sig[64], proof[64];
    struct xe_user u, rfc;
    unsigned n, l, i;
    size_t salt_len;
    int h;

    for (h = 0; h < 2; h++) {
        const EVP_MD *md = v[h].md();
        n = (unsigned)EVP_MD_size(md);
        salt_len = b64dec(v[h].salt, salt);
        derive(md, "pencil", salt, salt_len, 4096, ck, sk, svk);
        is_str(b64enc(sk, n), v[h].stored_key, "%s: StoredKey of the RFC example",
               v[h].name);
        is_str(b64enc(svk, n), v[h].server_key, "%s: ServerKey of the RFC example",
               v[h].name);
        /* Tie them to the RFC text: ClientProof = ClientKey XOR HMAC(StoredKey,
         * AuthMessage), ServerSignature = HMAC(ServerKey, AuthMessage). */
        HMAC(md, sk, (int)n, (const unsigned char *)v[h].auth_message,
             strlen(v[h].auth_message), sig, &l);
        for (i = 0; i < n; i++)
            proof[i] = ck[i] ^ sig[i];
        is_str(b64enc(proof, n), v[h].proof, "%s: ClientProof of the RFC", v[h].name);
        HMAC(md, svk, (int)n, (const unsigned char *)v[h].auth_message,
             strlen(v[h].auth_message), sig, &l);
        is_str(b64enc(sig, n), v[h].signature, "%s: ServerSignature of the RFC",
               v[h].name);
    }

    /* check_password against the RFC secrets, as stored. */
    is_int(decode_str(REC_HEAD S1_LINE S256_LINE, &rfc), XE_US_OK, "scram: RFC record");
    ok(xe_user_check_password(&rfc, "pencil", 6), "scram: RFC password accepted");
    ok(!xe_user_check_password(&rfc, "pencil2", 7), "scram: longer password refused");
    ok(!xe_user_check_password(&rfc, "penci", 5), "scram: prefix refused");
    ok(!xe_user_check_password(&rfc, "Pencil", 6), "scram: other case refused");
    ok(!xe_user_check_password(&rfc, "", 0), "scram: empty password refused");
    ok(!xe_user_check_password(&rfc, "pencil", 5), "scram: length is honoured");
    rfc.scram[XE_SCRAM_SHA256].stored_key[31] ^= 1;
    ok(!xe_user_check_password(&rfc, "pencil", 6), "scram: SHA-256 is the one checked");
    rfc.scram[XE_SCRAM_SHA256].present = false;
    ok(xe_user_check_password(&rfc, "pencil", 6), "scram: SHA-1 when no SHA-256");
    ok(!xe_user_check_password(&rfc, "pencil!", 7),
       "scram: SHA-1 wrong password refused");
    rfc.scram[XE_SCRAM_SHA1].present = false;
    ok(!xe_user_check_password(&rfc, "pencil", 6), "scram: no secret, no match");

    /* set_password: fresh salts, keys as the independent derivation gives. */
    make_user(&u, "user@example.org");
    is_int(xe_user_set_password(&u, "pencil", 6, 4096), XE_US_OK, "scram: set_password");
    for (h = 0; h < 2; h++) {
        const struct xe_scram_secret *s = &u.scram[h];
        n = (unsigned)EVP_MD_size(v[h].md());
        ok(s->present && s->iterations == 4096 && s->salt_len == 16 && s->key_len == n,
           "%s: set_password fields", v[h].name);
        derive(v[h].md(), "pencil", s->salt, s->salt_len, 4096, ck, sk, svk);
        ok(memcmp(sk, s->stored_key, n) == 0, "%s: set_password StoredKey", v[h].name);
        ok(memcmp(svk, s->server_key, n) == 0, "%s: set_password ServerKey", v[h].name);
    }
    ok(memcmp(u.scram[0].salt, u.scram[1].salt, 16) != 0, "scram: one salt per hash");
    ok(xe_user_check_password(&u, "pencil", 6), "scram: the set password matches");
    ok(!xe_user_check_password(&u, "wrong", 5), "scram: a wrong password does not");
    ok(!xe_user_check_password(&u, "", 0), "scram: the empty password does not");
    ok(!xe_user_check_password(&u, "penci", 5), "scram: a prefix does not");
    is_int(xe_user_set_password(&u, "x", 0, 4096), XE_US_INVALID,
           "scram: empty password refused");
    is_int(xe_user_set_password(&u, "x", 1, 0), XE_US_INVALID,
           "scram: 0 iterations refused");
    ok(xe_user_check_password(&u, "pencil", 6), "scram: a refused set changes nothing");
    memcpy(&rfc, &u, sizeof(u));
    xe_user_set_password(&u, "pencil", 6, 4096);
    ok(memcmp(rfc.scram[1].salt, u.scram[1].salt, 16) != 0,
       "scram: a new salt every time");
}

/* ---- the store ---------------------------------------------------------- */

struct collect {
    char names[16][64];
    bool disabled[16];
    int n, stop_after;
};

static int
collect_cb(const struct xe_user *u, void *ctx)
{
    struct collect *c = ctx;

    if (c->n < 16) {
        snprintf(c->names[c->n], sizeof(c->names[0]), "%.63s", u->jid);
        c->disabled[c->n] = u->disabled;
    }
    c->n++;
    return c->stop_after > 0 && c->n >= c->stop_after;
}

/* Write RECORD for KEY with LMDB directly (the store must be closed). */
static int
raw_put(const char *path, const char *key, const char *record)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val k = {strlen(key), (void *)key}, d = {strlen(record), (void *)record};
    int rc;

    if ((rc = mdb_env_create(&env)) == 0 && (rc = mdb_env_set_maxdbs(env, 2)) == 0 &&
        (rc = mdb_env_open(env, path, 0, 0600)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) == 0 &&
        (rc = mdb_dbi_open(txn, "users", 0, &dbi)) == 0 &&
        (rc = mdb_put(txn, dbi, &k, &d, 0)) == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

static int
raw_get(const char *path, const char *key, char *out, size_t out_size)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc;

    if ((rc = mdb_env_create(&env)) == 0 && (rc = mdb_env_set_maxdbs(env, 2)) == 0 &&
        (rc = mdb_env_open(env, path, MDB_RDONLY, 0600)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0 &&
        (rc = mdb_dbi_open(txn, "users", 0, &dbi)) == 0 &&
        (rc = mdb_get(txn, dbi, &k, &d)) == 0)
        snprintf(out, out_size, "%.*s", (int)d.mv_size, (const char *)d.mv_data);
    if (txn != NULL)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

/* A reader in another process (as the daemon is to xedgectl), opened before
 * the write, must see it without reopening. Returns the child's verdict. */
static void
test_reader_process(const char *path)
{
    int to_child[2], to_parent[2], status = -1, r;
    char c = 0, *err = NULL;
    struct xe_userstore *w = NULL;
    struct xe_user u;
    pid_t pid;

    if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
        ok(0, "reader: pipes");
        return;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        /* Child: bit 0 open failed, 1 saw the user too early, 2 missed it, 4
         * lookup failed after the write. */
        struct xe_userstore *ro = NULL;
        int verdict = 0;
        if (xe_userstore_open(path, true, 0, &ro, NULL) != XE_US_OK)
            verdict |= 1;
        else if (xe_userstore_get(ro, "late@example.net", &u, NULL) != XE_US_NOTFOUND)
            verdict |= 2;
        if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1)
            verdict |= 16;
        if (ro != NULL) {
            r = xe_userstore_get(ro, "late@example.net", &u, NULL);
            if (r == XE_US_NOTFOUND)
                verdict |= 4;
            else if (r != XE_US_OK || strcmp(u.pin, "seen") != 0)
                verdict |= 8;
        }
        xe_userstore_close(&ro);
        _exit(verdict);
    }
    ok(pid > 0, "reader: fork");
    if (pid < 0)
        return;
    ok(read(to_parent[0], &c, 1) == 1, "reader: the reader is ready");
    r = xe_userstore_open(path, false, 0, &w, &err);
    is_int(r, XE_US_OK, "reader: writer opened (%s)", err ? err : "");
    make_user(&u, "late@example.net");
    snprintf(u.pin, sizeof(u.pin), "seen");
    is_int(xe_userstore_put(w, &u, true, &err), XE_US_OK,
           "reader: the writer adds a user");
    xe_userstore_close(&w);
    ok(write(to_child[1], "w", 1) == 1, "reader: told the reader");
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status), "reader: exited");
    is_int(WEXITSTATUS(status), 0,
           "reader: the read-only handle saw the write without reopening");
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    free(err);
}

static void
test_store(const char *tmp)
{
    char path[512], missing[512], rec[1024], *err = NULL, longjid[700];
    struct xe_userstore *s = NULL, *ro = NULL;
    struct xe_user u, got;
    struct collect c;
    int r;

    snprintf(path, sizeof(path), "%s/var/lib/users", tmp);
    snprintf(missing, sizeof(missing), "%s/nowhere", tmp);

    r = xe_userstore_open(missing, true, 0, &ro, &err);
    is_int(r, XE_US_IO, "store: read-only open of a missing store fails");
    ok(err != NULL && strstr(err, missing) != NULL,
       "store: the error names the path (%s)", err ? err : "");
    ok(ro == NULL, "store: no handle on failure");
    free(err);
    err = NULL;

    /* An environment without the "users" database, opened read-only. */
    {
        MDB_env *env = NULL;
        mkdir(missing, 0700);
        ok(mdb_env_create(&env) == 0 && mdb_env_open(env, missing, 0, 0600) == 0,
           "store: an empty environment");
        mdb_env_close(env);
        r = xe_userstore_open(missing, true, 0, &ro, &err);
        is_int(r, XE_US_OK, "store: read-only open of a store without users");
        if (ro != NULL) {
            is_int(xe_userstore_get(ro, "a@b", &got, &err), XE_US_NOTFOUND,
                   "store: ... get: NOTFOUND");
            memset(&c, 0, sizeof(c));
            is_int(xe_userstore_foreach(ro, NULL, collect_cb, &c, &err), XE_US_OK,
                   "store: ... foreach: OK");
            is_int(c.n, 0, "store: ... and empty");
        }
        xe_userstore_close(&ro);
        free(err);
        err = NULL;
    }

    r = xe_userstore_open(path, false, 16, &s, &err);
    is_int(r, XE_US_OK, "store: open creates the directories (%s)", err ? err : "");
    if (s == NULL)
        return;
    {
        struct stat st;
        ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700,
           "store: directory mode 0700");
    }

    make_user(&u, "alice@example.org");
    snprintf(u.pin, sizeof(u.pin), "be1");
    xe_user_set_password(&u, "secret-a", 8, 4096);
    is_int(xe_userstore_put(s, &u, true, &err), XE_US_OK, "store: add alice");
    memset(&got, 0, sizeof(got));
    is_int(xe_userstore_get(s, "alice@example.org", &got, &err), XE_US_OK,
           "store: get alice");
    ok(memcmp(&u, &got, sizeof(u)) == 0, "store: put/get roundtrip");
    ok(xe_user_check_password(&got, "secret-a", 8), "store: her password checks");
    ok(!xe_user_check_password(&got, "secret-b", 8), "store: another does not");

    r = xe_userstore_put(s, &u, true, &err);
    is_int(r, XE_US_EXISTS, "store: adding her again: EXISTS");
    ok(err != NULL && strstr(err, "alice@example.org") != NULL, "store: message (%s)",
       err ? err : "");
    free(err);
    err = NULL;
    u.disabled = true;
    is_int(xe_userstore_put(s, &u, false, &err), XE_US_OK, "store: replace alice");
    xe_userstore_get(s, "alice@example.org", &got, &err);
    ok(got.disabled, "store: the replacement is read back");
    /* the state without the secrets (sasl.c's check after a login) */
    u.expires = 4102444800;
    is_int(xe_userstore_put(s, &u, false, &err), XE_US_OK, "store: alice expires");
    memset(&got, 0xa5, sizeof(got));
    is_int(xe_userstore_get_state(s, "alice@example.org", &got, &err), XE_US_OK,
           "store: get_state alice");
    ok(got.disabled && got.expires == 4102444800 && strcmp(got.pin, "be1") == 0 &&
           strcmp(got.jid, "alice@example.org") == 0,
       "store: get_state reads the state (disabled, expires, pin)");
    ok(!got.scram[XE_SCRAM_SHA1].present && !got.scram[XE_SCRAM_SHA256].present &&
           !got.legacy,
       "store: get_state leaves the secrets out");
    is_int(xe_userstore_get_state(s, "nobody@example.org", &got, &err), XE_US_NOTFOUND,
           "store: get_state of an unknown user: NOTFOUND");
    u.expires = 0;
    is_int(xe_userstore_put(s, &u, false, &err), XE_US_OK,
           "store: alice expires no more");

    is_int(xe_userstore_get(s, "nobody@example.org", &got, &err), XE_US_NOTFOUND,
           "store: unknown user: NOTFOUND");
    is_int(xe_userstore_get(s, "", &got, &err), XE_US_NOTFOUND,
           "store: empty JID: NOTFOUND");

    make_user(&u, "Upper@example.org");
    is_int(xe_userstore_put(s, &u, true, &err), XE_US_INVALID,
           "store: a JID that is not normalised is refused");
    free(err);
    err = NULL;
    memset(longjid, 'x', 600);
    snprintf(longjid + 600, sizeof(longjid) - 600, "@example.org");
    make_user(&u, longjid);
    is_int(xe_userstore_put(s, &u, true, &err), XE_US_INVALID,
           "store: a JID longer than an LMDB key is refused (%s)", err ? err : "");
    free(err);
    err = NULL;
    is_int(xe_userstore_get(s, longjid, &got, &err), XE_US_NOTFOUND,
           "store: ... and is not found");

    make_user(&u, "bob@example.org");
    xe_userstore_put(s, &u, true, &err);
    make_user(&u, "carol@example.net");
    xe_userstore_put(s, &u, true, &err);
    make_user(&u, "dave@sub.example.org");
    xe_userstore_put(s, &u, true, &err);

    memset(&c, 0, sizeof(c));
    is_int(xe_userstore_foreach(s, NULL, collect_cb, &c, &err), XE_US_OK,
           "store: foreach");
    is_int(c.n, 4, "store: foreach sees all four");
    is_str(c.names[0], "alice@example.org", "store: key order 1");
    is_str(c.names[3], "dave@sub.example.org", "store: key order 4");
    ok(c.disabled[0] && !c.disabled[1], "store: foreach passes the flags");
    memset(&c, 0, sizeof(c));
    xe_userstore_foreach(s, "example.org", collect_cb, &c, &err);
    is_int(c.n, 2, "store: foreach example.org: two (not sub.example.org)");
    is_str(c.names[0], "alice@example.org", "store: domain filter 1");
    is_str(c.names[1], "bob@example.org", "store: domain filter 2");
    memset(&c, 0, sizeof(c));
    xe_userstore_foreach(s, "EXAMPLE.NET", collect_cb, &c, &err);
    ok(c.n == 1 && strcmp(c.names[0], "carol@example.net") == 0,
       "store: domain filter ignores case");
    memset(&c, 0, sizeof(c));
    xe_userstore_foreach(s, "nothing.test", collect_cb, &c, &err);
    is_int(c.n, 0, "store: foreach of an unknown domain: none");
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    is_int(xe_userstore_foreach(s, NULL, collect_cb, &c, &err), XE_US_OK,
           "store: foreach stopped by the callback");
    is_int(c.n, 2, "store: ... after two");

    is_int(xe_userstore_del(s, "bob@example.org", &err), XE_US_OK, "store: del bob");
    is_int(xe_userstore_get(s, "bob@example.org", &got, &err), XE_US_NOTFOUND,
           "store: bob is gone");
    is_int(xe_userstore_del(s, "bob@example.org", &err), XE_US_NOTFOUND,
           "store: del again: NOTFOUND");
    xe_userstore_close(&s);
    ok(s == NULL, "store: close clears the pointer");

    /* Records written by someone else: corrupt ones, and unknown names. */
    is_int(raw_put(path, "eve@example.org", "created=1\nmodified=1\ndisabled=0\n"), 0,
           "store: raw write of a record without version");
    is_int(raw_put(path, "frank@example.org", REC_HEAD "x-future=42\n" S256_LINE), 0,
           "store: raw write of a record with an unknown name");
    xe_userstore_open(path, false, 16, &s, &err);
    r = xe_userstore_get(s, "eve@example.org", &got, &err);
    is_int(r, XE_US_CORRUPT, "store: a corrupt record: CORRUPT");
    ok(err != NULL && strstr(err, "eve@example.org") != NULL, "store: message (%s)",
       err ? err : "");
    free(err);
    err = NULL;
    memset(&c, 0, sizeof(c));
    is_int(xe_userstore_foreach(s, NULL, collect_cb, &c, &err), XE_US_CORRUPT,
           "store: foreach reports the corrupt record");
    free(err);
    err = NULL;
    is_int(xe_userstore_get(s, "frank@example.org", &got, &err), XE_US_OK,
           "store: a record with an unknown name is read");
    ok(xe_user_check_password(&got, "pencil", 6), "store: frank's password");
    got.disabled = true;
    is_int(xe_userstore_put(s, &got, false, &err), XE_US_OK, "store: frank rewritten");
    xe_userstore_del(s, "eve@example.org", &err);
    xe_userstore_close(&s);
    rec[0] = '\0';
    raw_get(path, "frank@example.org", rec, sizeof(rec));
    ok(strstr(rec, "\nx-future=42\n") != NULL && strstr(rec, "\ndisabled=1\n") != NULL,
       "store: the rewrite kept the unknown name");

    test_reader_process(path);

    r = xe_userstore_open(path, true, 0, &ro, &err);
    is_int(r, XE_US_OK, "store: read-only open");
    make_user(&u, "zed@example.org");
    ok(xe_userstore_put(ro, &u, true, &err) != XE_US_OK,
       "store: no write when read-only");
    free(err);
    err = NULL;
    is_int(xe_userstore_get(ro, "late@example.net", &got, &err), XE_US_OK,
           "store: read-only get");
    xe_userstore_close(&ro);
    free(err);
}

/* The legacy mechanisms' plaintext-equivalent: kept and read back only when
 * set, and gone when cleared. */
static void
test_legacy(void)
{
    struct xe_user u, d;
    char *buf = NULL;
    size_t len = 0;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "bob@example.org");
    ok(xe_user_set_password(&u, "pass word", 9, 4096) == XE_US_OK,
       "legacy: set_password");
    ok(xe_user_encode(&u, &buf, &len) == XE_US_OK && !memmem(buf, len, "legacy", 6),
       "legacy: none kept unless asked for");
    free(buf);
    ok(xe_user_set_legacy(&u, "pass word", 9) == XE_US_OK, "legacy: set");
    ok(xe_user_encode(&u, &buf, &len) == XE_US_OK &&
           memmem(buf, len, "legacy-password=cGFzcyB3b3Jk\n", 29) != NULL,
       "legacy: encoded as base64 of the password");
    ok(xe_user_decode("bob@example.org", buf, len, &d) == XE_US_OK && d.legacy &&
           d.legacy_len == 9 && memcmp(d.legacy_password, "pass word", 9) == 0,
       "legacy: decoded back");
    free(buf);
    ok(xe_user_set_legacy(&u, NULL, 0) == XE_US_OK && !u.legacy && u.legacy_len == 0,
       "legacy: cleared");
    ok(xe_user_encode(&u, &buf, &len) == XE_US_OK && !memmem(buf, len, "legacy", 6),
       "legacy: gone from the record once cleared");
    free(buf);
    ok(xe_user_set_legacy(&u, "", 0) == XE_US_INVALID,
       "legacy: an empty password refused");
    {
        const char *bad =
            "v=1\ncreated=1\nmodified=1\ndisabled=0\nlegacy-password=!!!!\n";
        ok(xe_user_decode("bob@example.org", bad, strlen(bad), &d) == XE_US_CORRUPT,
           "legacy: bad base64 is a corrupt record");
    }
}

static int
tomb_count_cb(const struct xe_tombstone *t, void *ctx)
{
    (void)t;
    (*(int *)ctx)++;
    return 0;
}

/* Tombstones: the record codec, burying a user (one transaction), the
 * refusal to create the name again, update, listing and removal. */
static void
test_tombstones(const char *tmp)
{
    struct xe_tombstone t, d;
    struct xe_user u, got;
    struct xe_userstore *s = NULL, *ro = NULL;
    char path[512], *buf = NULL, *err = NULL;
    size_t len = 0;
    int n;

    memset(&t, 0, sizeof(t));
    snprintf(t.jid, sizeof(t.jid), "gone@example.org");
    t.deleted = 1700000000;
    snprintf(t.pin, sizeof(t.pin), "prosody-1");
    t.attempts = 3;
    t.next = 1700000060;
    snprintf(t.error, sizeof(t.error), "connection refused");
    ok(xe_tombstone_encode(&t, &buf, &len) == XE_US_OK, "tomb: encode");
    is_str(buf,
           "v=1\ndeleted=1700000000\npin=prosody-1\nattempts=3\nnext=1700000060\n"
           "error=connection refused\n",
           "tomb: the record's lines");
    ok(xe_tombstone_decode("gone@example.org", buf, len, &d) == XE_US_OK &&
           strcmp(d.jid, "gone@example.org") == 0 && d.deleted == t.deleted &&
           strcmp(d.pin, "prosody-1") == 0 && d.attempts == 3 && d.next == t.next &&
           strcmp(d.error, "connection refused") == 0,
       "tomb: decoded back");
    free(buf);
    {
        const char *fut = "v=1\ndeleted=5\nlater=x\n";
        ok(xe_tombstone_decode("a@b", fut, strlen(fut), &d) == XE_US_OK &&
               d.deleted == 5 && d.attempts == 0 && d.pin[0] == '\0',
           "tomb: unknown names ignored, missing ones zero");
        const char *bad[] = {"v=2\ndeleted=5\n",
                             "deleted=5\n",
                             "v=1\n",
                             "v=1\ndeleted=-1\n",
                             "v=1\ndeleted=5",
                             "v=1\ndeleted=5\npin=a\tb\n",
                             "v=1\ndeleted=5\nattempts=x\n"};
        bool all = true;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            if (xe_tombstone_decode("a@b", bad[i], strlen(bad[i]), &d) != XE_US_CORRUPT) {
                printf("# accepted: %s\n", bad[i]);
                all = false;
            }
        ok(all, "tomb: bad version, no deleted=, negative, no newline, bad pin, "
                "bad number: corrupt");
    }
    snprintf(t.error, sizeof(t.error), "two\nlines");
    ok(xe_tombstone_encode(&t, &buf, &len) == XE_US_INVALID,
       "tomb: a multi-line error refused");
    snprintf(t.error, sizeof(t.error), "refused");

    snprintf(path, sizeof(path), "%s/tombs", tmp);
    if (xe_userstore_open(path, false, 16, &s, &err) != XE_US_OK) {
        ok(0, "tomb: open (%s)", err ? err : "");
        free(err);
        return;
    }
    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "gone@example.org");
    ok(xe_user_set_password(&u, "pw", 2, 4096) == XE_US_OK &&
           xe_userstore_put(s, &u, true, &err) == XE_US_OK,
       "tomb: a user");
    is_int(xe_userstore_tomb_get(s, "gone@example.org", &d, &err), XE_US_NOTFOUND,
           "tomb: no tombstone before");
    is_int(xe_userstore_bury(s, &t, &err), XE_US_OK, "tomb: bury");
    is_int(xe_userstore_get(s, "gone@example.org", &got, &err), XE_US_NOTFOUND,
           "tomb: ... the user is gone");
    ok(xe_userstore_tomb_get(s, "gone@example.org", &d, &err) == XE_US_OK &&
           d.attempts == 3 && strcmp(d.pin, "prosody-1") == 0,
       "tomb: ... and its tombstone is there");
    is_int(xe_userstore_bury(s, &t, &err), XE_US_NOTFOUND,
           "tomb: burying a user that is not there: NOTFOUND");
    free(err);
    err = NULL;
    is_int(xe_userstore_put(s, &u, true, &err), XE_US_TOMBSTONE,
           "tomb: the name cannot be created again");
    ok(err != NULL && strstr(err, "not purged yet") && strstr(err, "--keep-data"),
       "tomb: ... the error says why and how (%s)", err ? err : "");
    free(err);
    err = NULL;
    is_int(xe_userstore_put(s, &u, false, &err), XE_US_TOMBSTONE,
           "tomb: ... nor replaced in (import --replace)");
    free(err);
    err = NULL;
    t.attempts = 4;
    snprintf(t.error, sizeof(t.error), "timeout");
    ok(xe_userstore_tomb_update(s, &t, &err) == XE_US_OK &&
           xe_userstore_tomb_get(s, "gone@example.org", &d, &err) == XE_US_OK &&
           d.attempts == 4 && strcmp(d.error, "timeout") == 0,
       "tomb: update");
    n = 0;
    ok(xe_userstore_tomb_foreach(s, "example.org", tomb_count_cb, &n, &err) == XE_US_OK &&
           n == 1,
       "tomb: foreach of the domain: one");
    n = 0;
    ok(xe_userstore_tomb_foreach(s, "example.net", tomb_count_cb, &n, &err) == XE_US_OK &&
           n == 0,
       "tomb: foreach of another domain: none");
    /* a second handle, read-only, as the daemon's readers */
    ok(xe_userstore_open(path, true, 16, &ro, &err) == XE_US_OK &&
           xe_userstore_tomb_get(ro, "gone@example.org", &d, &err) == XE_US_OK,
       "tomb: seen through a read-only handle");
    xe_userstore_close(&ro);
    is_int(xe_userstore_tomb_del(s, "gone@example.org", &err), XE_US_OK, "tomb: removed");
    is_int(xe_userstore_tomb_del(s, "gone@example.org", &err), XE_US_NOTFOUND,
           "tomb: ... once");
    is_int(xe_userstore_tomb_update(s, &t, &err), XE_US_NOTFOUND,
           "tomb: an update of a removed tombstone: NOTFOUND (not written back)");
    is_int(xe_userstore_put(s, &u, true, &err), XE_US_OK, "tomb: then the name is free");
    xe_userstore_close(&s);
    free(err);
}

int
main(void)
{
    const char *tmp = tap_mkdtemp("userstore");

    if (tmp == NULL)
        return 1;
    test_jid();
    test_codec();
    test_scram();
    test_legacy();
    test_store(tmp);
    test_tombstones(tmp);
    rm_rf(tmp);
    return tap_done();
}
