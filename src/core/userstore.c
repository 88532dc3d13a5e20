/* xedge: the user store, one LMDB environment with one named database
 * ("users"), keyed by the bare JID. Record format: see userstore.h. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <lmdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "xelimits.h"
#include "userstore.h"
#include "jidprep.h"
#include "userstore_impl.h"
#include "util.h"

#define US_DB_NAME "users"
#define US_TOMB_DB_NAME "tombstones"
#define US_DEFAULT_MAP_MB 1024
#define US_SALT_LEN 16
#define US_RECORD_MAX (64 * 1024) /* bytes of one stored record */
#define US_LOCAL_MAX 1023
#define US_DOMAIN_MAX 1023

static const char *const us_hash_names[XE_SCRAM_N] = {"SCRAM-SHA-1", "SCRAM-SHA-256",
                                                      "SCRAM-SHA-512"};

const char *
xe_scram_hash_name(enum xe_scram_hash h)
{
    return (unsigned)h < XE_SCRAM_N ? us_hash_names[h] : "?";
}

/* ---- errors ------------------------------------------------------------ */

void
xe_us_error(char **error_r, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *msg = NULL;

    if (error_r == NULL)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && (msg = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    free(*error_r);
    *error_r = msg;
}

/* The one place where LMDB codes are mapped. */
int
xe_us_mdb_error(const struct xe_userstore *store, const char *path, int rc,
                const char *what, char **error_r)
{
    xe_us_error(error_r, "user store %s: %s failed: %s",
                store != NULL && store->path != NULL ? store->path : path, what,
                mdb_strerror(rc));
    return XE_US_IO;
}

/* ---- base64 ------------------------------------------------------------- */

/* Encode LEN bytes into OUT (room for 4*ceil(LEN/3)+1). Returns the length. */
static size_t
us_b64_encode(const unsigned char *in, size_t len, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static bool
us_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Strict, canonical base64 of 1..OUT_MAX bytes (OUT_MAX <= 1536). Runs
 * three or four times per login (every lookup decodes the SCRAM keys): only
 * the bytes used are wiped, and only the last group, the one place where a
 * non-canonical form can hide (unused bits, padding), is encoded again. */
static int
us_b64_decode(const char *in, size_t len, unsigned char *out, size_t out_max,
              size_t *out_len_r)
{
    unsigned char tmp[3 * 512];
    char check[5];
    size_t pad = 0, i, n, last;
    int r = -1, dec;

    if (len == 0 || len % 4 != 0 || len > 4 * ((out_max + 2) / 3) ||
        len / 4 * 3 > sizeof(tmp))
        return -1;
    if (in[len - 1] == '=') {
        pad++;
        if (in[len - 2] == '=')
            pad++;
    }
    for (i = 0; i < len - pad; i++) {
        if (!us_b64_char(in[i]))
            return -1;
    }
    dec = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    if (dec < 0 || (size_t)dec != len / 4 * 3)
        goto out;
    n = (size_t)dec - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    if (n == 0 || n > out_max)
        goto out;
    /* Canonical form only: the unused bits of the last group must be zero. */
    last = (len / 4 - 1) * 3;
    if (us_b64_encode(tmp + last, n - last, check) != 4 ||
        memcmp(check, in + len - 4, 4) != 0)
        goto out;
    memcpy(out, tmp, n);
    *out_len_r = n;
    r = 0;
out:
    OPENSSL_cleanse(tmp, len / 4 * 3); /* all EVP_DecodeBlock may have written */
    OPENSSL_cleanse(check, sizeof(check));
    return r;
}

/* ---- SCRAM -------------------------------------------------------------- */

static const EVP_MD *
us_md(enum xe_scram_hash h)
{
    return h == XE_SCRAM_SHA1     ? EVP_sha1()
           : h == XE_SCRAM_SHA256 ? EVP_sha256()
                                  : EVP_sha512();
}

static size_t
us_key_len(enum xe_scram_hash h)
{
    return h == XE_SCRAM_SHA1 ? 20 : h == XE_SCRAM_SHA256 ? 32 : 64;
}

/* RFC 5802: SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SP,
 * "Client Key"); StoredKey = H(ClientKey); ServerKey = HMAC(SP, "Server Key").
 * server_key may be NULL. Returns 0 or -1. */
static int
us_scram_derive(enum xe_scram_hash h, const char *password, size_t len,
                const unsigned char *salt, size_t salt_len, unsigned iterations,
                unsigned char *stored_key, unsigned char *server_key)
{
    const EVP_MD *md = us_md(h);
    size_t n = us_key_len(h);
    unsigned char salted[XE_SCRAM_MAX_HASH], client_key[XE_SCRAM_MAX_HASH];
    unsigned int out_len;
    int r = -1;

    if (len > (size_t)INT_MAX || salt_len > (size_t)INT_MAX || iterations == 0 ||
        iterations > (size_t)INT_MAX)
        goto out;
    if (PKCS5_PBKDF2_HMAC(len > 0 ? password : "", (int)len, salt, (int)salt_len,
                          (int)iterations, md, (int)n, salted) != 1)
        goto out;
    if (HMAC(md, salted, (int)n, (const unsigned char *)"Client Key", 10, client_key,
             &out_len) == NULL ||
        out_len != n)
        goto out;
    if (EVP_Digest(client_key, n, stored_key, &out_len, md, NULL) != 1 || out_len != n)
        goto out;
    if (server_key != NULL &&
        (HMAC(md, salted, (int)n, (const unsigned char *)"Server Key", 10, server_key,
              &out_len) == NULL ||
         out_len != n))
        goto out;
    r = 0;
out:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return r;
}

static bool
us_secret_valid(enum xe_scram_hash h, const struct xe_scram_secret *s)
{
    return s->iterations >= 1 && s->iterations <= XE_MAX_SCRAM_ITERATIONS &&
           s->salt_len >= 1 && s->salt_len <= XE_SCRAM_MAX_SALT &&
           s->key_len == us_key_len(h);
}

int
xe_user_set_password(struct xe_user *user, const char *password, size_t len,
                     unsigned iterations)
{
    struct xe_scram_secret s[XE_SCRAM_N];
    int r = XE_US_INVALID;
    int h;

    memset(s, 0, sizeof(s));
    if (user == NULL || password == NULL || len == 0 || iterations == 0 ||
        iterations > XE_MAX_SCRAM_ITERATIONS)
        goto out;
    r = XE_US_IO;
    for (h = 0; h < XE_SCRAM_N; h++) {
        s[h].present = true;
        s[h].iterations = iterations;
        s[h].salt_len = US_SALT_LEN;
        s[h].key_len = us_key_len((enum xe_scram_hash)h);
        if (RAND_bytes(s[h].salt, US_SALT_LEN) != 1)
            goto out;
        if (us_scram_derive((enum xe_scram_hash)h, password, len, s[h].salt,
                            s[h].salt_len, iterations, s[h].stored_key,
                            s[h].server_key) != 0)
            goto out;
    }
    memcpy(user->scram, s, sizeof(s));
    r = XE_US_OK;
out:
    OPENSSL_cleanse(s, sizeof(s));
    return r;
}

int
xe_user_set_legacy(struct xe_user *user, const char *password, size_t len)
{
    if (user == NULL)
        return XE_US_INVALID;
    OPENSSL_cleanse(user->legacy_password, sizeof(user->legacy_password));
    user->legacy = false;
    user->legacy_len = 0;
    if (password == NULL)
        return XE_US_OK;
    if (len == 0 || len >= sizeof(user->legacy_password) || memchr(password, '\0', len))
        return XE_US_INVALID;
    memcpy(user->legacy_password, password, len);
    user->legacy_len = len;
    user->legacy = true;
    return XE_US_OK;
}

bool
xe_user_check_password(const struct xe_user *user, const char *password, size_t len)
{
    unsigned char stored_key[XE_SCRAM_MAX_HASH];
    const struct xe_scram_secret *s;
    enum xe_scram_hash h;
    bool match = false;

    if (user == NULL || password == NULL || len == 0)
        goto out;
    if (user->scram[XE_SCRAM_SHA256].present)
        h = XE_SCRAM_SHA256;
    else if (user->scram[XE_SCRAM_SHA512].present)
        h = XE_SCRAM_SHA512;
    else if (user->scram[XE_SCRAM_SHA1].present)
        h = XE_SCRAM_SHA1;
    else
        goto out;
    s = &user->scram[h];
    if (!us_secret_valid(h, s))
        goto out;
    if (us_scram_derive(h, password, len, s->salt, s->salt_len, s->iterations, stored_key,
                        NULL) != 0)
        goto out;
    match = CRYPTO_memcmp(stored_key, s->stored_key, s->key_len) == 0;
out:
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    return match;
}

/* ---- record codec ------------------------------------------------------- */

bool
xe_us_pin_valid(const char *pin, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pin[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

int
xe_user_encode(const struct xe_user *user, char **buf_r, size_t *len_r)
{
    /* 5 short lines, the pin, three SCRAM lines of < 400 bytes each, and a
     * legacy password of < 1400 bytes */
    size_t cap = 4096, len = 0, pin_len;
    char *buf = NULL;
    char salt[4 * 22 + 1], sk[4 * 22 + 1], svk[4 * 22 + 1];
    int r = XE_US_INVALID, n, h;

    *buf_r = NULL;
    *len_r = 0;
    pin_len = strnlen(user->pin, sizeof(user->pin));
    if (pin_len == sizeof(user->pin) || !xe_us_pin_valid(user->pin, pin_len))
        goto out;
    if (user->created < 0 || user->modified < 0 || user->expires < 0)
        goto out;
    for (h = 0; h < XE_SCRAM_N; h++) {
        if (user->scram[h].present &&
            !us_secret_valid((enum xe_scram_hash)h, &user->scram[h]))
            goto out;
    }
    r = XE_US_IO;
    if ((buf = malloc(cap)) == NULL)
        goto out;
    n = snprintf(buf, cap,
                 "v=1\ncreated=%" PRId64 "\nmodified=%" PRId64 "\ndisabled=%d\npin=%s\n",
                 user->created, user->modified, user->disabled ? 1 : 0, user->pin);
    if (n < 0 || (size_t)n >= cap)
        goto out;
    len = (size_t)n;
    if (user->expires > 0) {
        n = snprintf(buf + len, cap - len, "expires=%" PRId64 "\n", user->expires);
        if (n < 0 || (size_t)n >= cap - len)
            goto out;
        len += (size_t)n;
    }
    for (h = 0; h < XE_SCRAM_N; h++) {
        const struct xe_scram_secret *s = &user->scram[h];
        if (!s->present)
            continue;
        us_b64_encode(s->salt, s->salt_len, salt);
        us_b64_encode(s->stored_key, s->key_len, sk);
        us_b64_encode(s->server_key, s->key_len, svk);
        n = snprintf(buf + len, cap - len, "%s=%u:%s:%s:%s\n", us_hash_names[h],
                     s->iterations, salt, sk, svk);
        if (n < 0 || (size_t)n >= cap - len)
            goto out;
        len += (size_t)n;
    }
    if (user->legacy) {
        char *b64 = malloc(4 * ((user->legacy_len + 2) / 3) + 1);
        if (b64 == NULL || user->legacy_len == 0 ||
            user->legacy_len >= sizeof(user->legacy_password)) {
            free(b64);
            r = XE_US_INVALID;
            goto out;
        }
        us_b64_encode((const unsigned char *)user->legacy_password, user->legacy_len,
                      b64);
        n = snprintf(buf + len, cap - len, "legacy-password=%s\n", b64);
        OPENSSL_cleanse(b64, strlen(b64));
        free(b64);
        if (n < 0 || (size_t)n >= cap - len)
            goto out;
        len += (size_t)n;
    }
    *buf_r = buf;
    *len_r = len;
    buf = NULL;
    r = XE_US_OK;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    OPENSSL_cleanse(sk, sizeof(sk));
    OPENSSL_cleanse(svk, sizeof(svk));
    return r;
}

/* Non-negative decimal without sign or leading zeros, at most MAX. */
int
xe_us_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *v_r)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1;
    for (i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *v_r = v;
    return 0;
}

/* "<iterations>:<salt>:<StoredKey>:<ServerKey>" */
static int
us_parse_scram(enum xe_scram_hash h, const char *v, size_t len, struct xe_scram_secret *s)
{
    const char *field[4], *end = v + len, *p = v;
    size_t flen[4], key_len = us_key_len(h), n;
    uint64_t iter;
    int i;

    for (i = 0; i < 4; i++) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (i < 3 && colon == NULL)
            return -1;
        if (i == 3 && colon != NULL)
            return -1;
        field[i] = p;
        flen[i] = (size_t)((i < 3 ? colon : end) - p);
        p = i < 3 ? colon + 1 : end;
    }
    if (xe_us_parse_uint(field[0], flen[0], XE_MAX_SCRAM_ITERATIONS, &iter) != 0 ||
        iter == 0)
        return -1;
    s->iterations = (unsigned)iter;
    if (us_b64_decode(field[1], flen[1], s->salt, XE_SCRAM_MAX_SALT, &s->salt_len) != 0)
        return -1;
    if (us_b64_decode(field[2], flen[2], s->stored_key, key_len, &n) != 0 || n != key_len)
        return -1;
    if (us_b64_decode(field[3], flen[3], s->server_key, key_len, &n) != 0 || n != key_len)
        return -1;
    s->key_len = key_len;
    s->present = true;
    return 0;
}

static bool
us_name_valid(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > 64)
        return false;
    for (i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool
us_name_is(const char *name, size_t len, const char *known)
{
    return strlen(known) == len && memcmp(name, known, len) == 0;
}

enum {
    US_F_CREATED,
    US_F_MODIFIED,
    US_F_DISABLED,
    US_F_PIN,
    US_F_LEGACY,
    US_F_EXPIRES,
    US_F_SCRAM,
    US_F_N = US_F_SCRAM + XE_SCRAM_N
};

/* Index of a known name (SCRAM hashes at US_F_SCRAM + h), or -1. */
static int
us_known_name(const char *name, size_t len)
{
    static const char *const names[] = {"created", "modified",        "disabled",
                                        "pin",     "legacy-password", "expires"};
    int i;

    for (i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
        if (us_name_is(name, len, names[i]))
            return i;
    }
    for (i = 0; i < XE_SCRAM_N; i++) {
        if (us_name_is(name, len, us_hash_names[i]))
            return US_F_SCRAM + i;
    }
    return -1;
}

/* SECRETS false: the SCRAM secrets and the legacy password are skipped, not
 * decoded (absent in *user): a check of the account's state after a login
 * whose secrets were read and decoded moments before (their base64 decoding
 * was two thirds of a record's decoding). */
static int
us_decode(const char *jid, const char *buf, size_t len, struct xe_user *user,
          bool secrets)
{
    const char *p = buf, *end = buf + len;
    bool seen[US_F_N] = {false};
    uint64_t v;
    bool first = true;
    int r = XE_US_CORRUPT;

    memset(user, 0, sizeof(*user));
    if (jid != NULL) {
        size_t jl = strlen(jid);
        if (jl >= sizeof(user->jid)) {
            r = XE_US_INVALID;
            goto out;
        }
        memcpy(user->jid, jid, jl + 1);
    }
    if (buf == NULL || len == 0 || len > US_RECORD_MAX || memchr(buf, '\0', len) != NULL)
        goto out;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(line_end - p));
        const char *val;
        size_t name_len, val_len;
        int f;

        if (eq == NULL)
            goto out;
        name_len = (size_t)(eq - p);
        val = eq + 1;
        val_len = (size_t)(line_end - val);
        if (!us_name_valid(p, name_len))
            goto out;
        if (first) {
            /* The version comes first: later versions may change anything. */
            if (!us_name_is(p, name_len, "v") || val_len != 1 || val[0] != '1')
                goto out;
            first = false;
        } else if ((f = us_known_name(p, name_len)) >= 0) {
            if (seen[f])
                goto out;
            seen[f] = true;
            switch (f) {
            case US_F_CREATED:
            case US_F_MODIFIED:
            case US_F_EXPIRES:
                if (xe_us_parse_uint(val, val_len, INT64_MAX, &v) != 0)
                    goto out;
                if (f == US_F_CREATED)
                    user->created = (int64_t)v;
                else if (f == US_F_MODIFIED)
                    user->modified = (int64_t)v;
                else
                    user->expires = (int64_t)v;
                break;
            case US_F_DISABLED:
                if (val_len != 1 || (val[0] != '0' && val[0] != '1'))
                    goto out;
                user->disabled = val[0] == '1';
                break;
            case US_F_PIN:
                if (val_len >= sizeof(user->pin) || !xe_us_pin_valid(val, val_len))
                    goto out;
                memcpy(user->pin, val, val_len);
                user->pin[val_len] = '\0';
                break;
            case US_F_LEGACY:
                if (!secrets)
                    break;
                if (us_b64_decode(val, val_len, (unsigned char *)user->legacy_password,
                                  sizeof(user->legacy_password) - 1,
                                  &user->legacy_len) != 0)
                    goto out;
                user->legacy_password[user->legacy_len] = '\0';
                user->legacy = true;
                break;
            default:
                if (secrets && us_parse_scram((enum xe_scram_hash)(f - US_F_SCRAM), val,
                                              val_len, &user->scram[f - US_F_SCRAM]) != 0)
                    goto out;
                break;
            }
        } else if (us_name_is(p, name_len, "v")) {
            goto out; /* a second version line */
        }
        /* else: an unknown name, kept by xe_userstore_put */
        p = nl != NULL ? nl + 1 : end;
    }
    if (first || !seen[US_F_CREATED] || !seen[US_F_MODIFIED] || !seen[US_F_DISABLED])
        goto out;
    r = XE_US_OK;
out:
    if (r != XE_US_OK) {
        char saved[sizeof(user->jid)];
        memcpy(saved, user->jid, sizeof(saved));
        OPENSSL_cleanse(user, sizeof(*user));
        memcpy(user->jid, saved, sizeof(saved));
    }
    return r;
}

int
xe_user_decode(const char *jid, const char *buf, size_t len, struct xe_user *user)
{
    return us_decode(jid, buf, len, user, true);
}

/* Lines of OLD with unknown names, for a rewrite to keep. */
static int
us_unknown_lines(const char *old, size_t old_len, char **buf_r, size_t *len_r)
{
    const char *p = old, *end = old + old_len;
    char *buf = NULL;
    size_t len = 0;
    bool first = true;
    int r = XE_US_IO;

    *buf_r = NULL;
    *len_r = 0;
    if ((buf = malloc(old_len + 1)) == NULL)
        goto out;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(line_end - p));

        if (!first && eq != NULL && us_name_valid(p, (size_t)(eq - p)) &&
            us_known_name(p, (size_t)(eq - p)) < 0 &&
            !us_name_is(p, (size_t)(eq - p), "v")) {
            memcpy(buf + len, p, (size_t)(line_end - p));
            len += (size_t)(line_end - p);
            buf[len++] = '\n';
        }
        first = false;
        p = nl != NULL ? nl + 1 : end;
    }
    *buf_r = buf;
    *len_r = len;
    buf = NULL;
    r = XE_US_OK;
out:
    free(buf);
    return r;
}

/* ---- JIDs --------------------------------------------------------------- */

/* Length of the UTF-8 sequence at S (S..END), 0 if invalid. Refuses overlong
 * forms, surrogates, code points above U+10FFFF and C1 controls. */
static size_t
us_utf8_seq(const unsigned char *s, const unsigned char *end)
{
    size_t n, i;
    unsigned lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] == 0xc2 && end - s >= 2 && s[1] < 0xa0)
        return 0; /* C1 control, U+0080..U+009F */
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        if (s[0] == 0xe0)
            lo = 0xa0;
        else if (s[0] == 0xed)
            hi = 0x9f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        if (s[0] == 0xf0)
            lo = 0x90;
        else if (s[0] == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if ((size_t)(end - s) < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return n;
}

int
xe_jid_normalize(char *jid, size_t size, const char **why_r)
{
    char node[XE_JIDPREP_PART_MAX + 1], host[XE_JIDPREP_PART_MAX + 1];
    const unsigned char *p, *end;
    const char *why = "not a bare JID localpart@domain";
    char *at, *c;
    size_t len, local_len, domain_len, n;
    int r = XE_US_INVALID;

    if (jid == NULL || (len = strnlen(jid, size)) >= size)
        goto out;
    why = "too long";
    if (len > US_LOCAL_MAX + 1 + US_DOMAIN_MAX)
        goto out;
    why = "not valid UTF-8";
    p = (const unsigned char *)jid;
    end = p + len;
    while (p < end) {
        if ((n = us_utf8_seq(p, end)) == 0)
            goto out;
        p += n;
    }
    why = "not a bare JID localpart@domain";
    if ((at = strchr(jid, '@')) == NULL)
        goto out;
    local_len = (size_t)(at - jid);
    domain_len = len - local_len - 1;
    if (local_len < 1 || domain_len < 1)
        goto out;
    why = "too long";
    if (local_len > US_LOCAL_MAX || domain_len > US_DOMAIN_MAX)
        goto out;
    /* the localpart: nodeprep (jidprep.h), as Prosody prepares it */
    if (xe_jidprep_node(jid, local_len, node, sizeof(node), &why) != 0)
        goto out;
    /* the domain: nameprep, then the domain's own syntax on the result */
    why = "a domain with a space, a control character, '@' or '/'";
    for (c = at + 1; *c != '\0'; c++) {
        unsigned char u = (unsigned char)*c;
        if (u <= 0x20 || u == 0x7f || u == '@' || u == '/')
            goto out;
    }
    if (xe_jidprep_domain(at + 1, domain_len, host, sizeof(host), &why) != 0)
        goto out;
    why = "a domain with a space, a control character, '@' or '/'";
    for (c = host; *c != '\0'; c++) {
        unsigned char u = (unsigned char)*c;
        if (u <= 0x20 || u == 0x7f || u == '@' || u == '/')
            goto out;
    }
    why = "too long once prepared";
    if (strlen(node) + 1 + strlen(host) >= size)
        goto out;
    snprintf(jid, size, "%s@%s", node, host);
    r = 0;
out:
    if (r != 0 && why_r != NULL)
        *why_r = why;
    return r;
}

/* ---- the environment ---------------------------------------------------- */

static int
us_mkdir_p(const char *path, char **error_r)
{
    char *copy = NULL, *p, saved;
    struct stat st;
    int r = XE_US_IO;

    if ((copy = strdup(path)) == NULL) {
        xe_us_error(error_r, "user store %s: out of memory", path);
        goto out;
    }
    for (p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        saved = *p;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            xe_us_error(error_r, "user store %s: cannot create directory %s: %s", path,
                        copy, strerror(errno));
            goto out;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        xe_us_error(error_r, "user store %s: not a directory", path);
        goto out;
    }
    r = 0;
out:
    free(copy);
    return r;
}

/* Open the named database NAME into *DBI once (*HAVE). Called before the
 * caller's own transaction: opening a database takes one of its own.
 * XE_US_NOTFOUND when a read-only store has no such database yet. */
static int
us_open_dbi(struct xe_userstore *store, const char *name, MDB_dbi *dbi, bool *have,
            char **error_r)
{
    MDB_txn *txn = NULL;
    int r = 0, rc;

    pthread_mutex_lock(&store->dbi_lock);
    if (*have)
        goto out;
    rc = mdb_txn_begin(store->env, NULL, store->readonly ? MDB_RDONLY : 0, &txn);
    if (rc != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "mdb_txn_begin", error_r);
        goto out;
    }
    rc = mdb_dbi_open(txn, name, store->readonly ? 0 : MDB_CREATE, dbi);
    if (rc == MDB_NOTFOUND) {
        r = XE_US_NOTFOUND;
        goto out;
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc != 0) {
        char what[64];
        snprintf(what, sizeof(what), "opening the database \"%s\"", name);
        r = xe_us_mdb_error(store, NULL, rc, what, error_r);
        goto out;
    }
    *have = true;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&store->dbi_lock);
    return r;
}

/* store->dbi, the users; XE_US_NOTFOUND when a read-only store has none yet */
int
xe_us_dbi(struct xe_userstore *store, char **error_r)
{
    return us_open_dbi(store, US_DB_NAME, &store->dbi, &store->have_dbi, error_r);
}

/* store->tdbi, the tombstones */
int
xe_us_tdbi(struct xe_userstore *store, char **error_r)
{
    return us_open_dbi(store, US_TOMB_DB_NAME, &store->tdbi, &store->have_tdbi, error_r);
}

int
xe_userstore_open(const char *path, bool readonly, size_t map_mb,
                  struct xe_userstore **store_r, char **error_r)
{
    struct xe_userstore *store = NULL;
    int r = XE_US_INVALID, rc, dead;

    *store_r = NULL;
    if (path == NULL || path[0] == '\0') {
        xe_us_error(error_r, "user store: no path given");
        goto out;
    }
    if (map_mb == 0)
        map_mb = US_DEFAULT_MAP_MB;
    if (map_mb > SIZE_MAX / (1024 * 1024)) {
        xe_us_error(error_r, "user store %s: map size of %zu MiB is too large", path,
                    map_mb);
        goto out;
    }
    r = XE_US_IO;
    if (!readonly && (r = us_mkdir_p(path, error_r)) != 0)
        goto out;
    r = XE_US_IO;
    if ((store = calloc(1, sizeof(*store))) == NULL ||
        (store->path = strdup(path)) == NULL) {
        xe_us_error(error_r, "user store %s: out of memory", path);
        goto out;
    }
    store->readonly = readonly;
    if (pthread_mutex_init(&store->dbi_lock, NULL) != 0) {
        xe_us_error(error_r, "user store %s: cannot create a mutex", path);
        goto out;
    }
    store->lock_init = true;
    if ((rc = mdb_env_create(&store->env)) != 0) {
        store->env = NULL;
        r = xe_us_mdb_error(store, path, rc, "mdb_env_create", error_r);
        goto out;
    }
    /* users, tombstones, FAST tokens (tokens.c) */
    if ((rc = mdb_env_set_maxdbs(store->env, 3)) != 0) {
        r = xe_us_mdb_error(store, path, rc, "mdb_env_set_maxdbs", error_r);
        goto out;
    }
    if ((rc = mdb_env_set_mapsize(store->env, map_mb * 1024 * 1024)) != 0) {
        r = xe_us_mdb_error(store, path, rc, "setting the map size", error_r);
        goto out;
    }
    if ((rc = mdb_env_open(store->env, path, readonly ? MDB_RDONLY : 0, 0600)) != 0) {
        r = xe_us_mdb_error(store, path, rc, "opening the environment", error_r);
        goto out;
    }
    /* Free the reader slots of processes that died (a killed xedgectl). */
    (void)mdb_reader_check(store->env, &dead);
    r = xe_us_dbi(store, error_r);
    if (r == XE_US_NOTFOUND && readonly)
        r = XE_US_OK; /* no user yet; opened at the first lookup */
    if (r != XE_US_OK)
        goto out;
    *store_r = store;
    store = NULL;
out:
    xe_userstore_close(&store);
    return r;
}

uint64_t
xe_userstore_generation(struct xe_userstore *store)
{
    MDB_envinfo info;

    if (store == NULL || mdb_env_info(store->env, &info) != 0)
        return 0;
    return (uint64_t)info.me_last_txnid;
}

struct MDB_env *
xe_userstore_env(struct xe_userstore *store)
{
    return store->env;
}

bool
xe_userstore_readonly(const struct xe_userstore *store)
{
    return store->readonly;
}

void
xe_userstore_close(struct xe_userstore **store)
{
    struct xe_userstore *s = *store;

    if (s == NULL)
        return;
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->lock_init)
        pthread_mutex_destroy(&s->dbi_lock);
    free(s->path);
    free(s);
    *store = NULL;
}

/* Key for JID: XE_US_INVALID if it cannot be a key of this store. */
int
xe_us_key(const struct xe_userstore *store, const char *jid, MDB_val *key)
{
    size_t len;

    if (jid == NULL)
        return XE_US_INVALID;
    len = strnlen(jid, sizeof(((struct xe_user *)0)->jid));
    if (len == 0 || len >= sizeof(((struct xe_user *)0)->jid) ||
        len > (size_t)mdb_env_get_maxkeysize(store->env))
        return XE_US_INVALID;
    key->mv_data = (void *)jid;
    key->mv_size = len;
    return 0;
}

static int
us_get(struct xe_userstore *store, const char *jid, struct xe_user *user, bool secrets,
       char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key, data;
    int r, rc;

    /* A JID that cannot be a key cannot be a user either. */
    if ((r = xe_us_key(store, jid, &key)) != 0) {
        r = XE_US_NOTFOUND;
        goto out;
    }
    if ((r = xe_us_dbi(store, error_r)) != 0)
        goto out;
    if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)) != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "mdb_txn_begin", error_r);
        goto out;
    }
    rc = mdb_get(txn, store->dbi, &key, &data);
    if (rc == MDB_NOTFOUND) {
        r = XE_US_NOTFOUND;
        goto out;
    }
    if (rc != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "reading a user", error_r);
        goto out;
    }
    r = us_decode(jid, data.mv_data, data.mv_size, user, secrets);
    if (r != XE_US_OK)
        xe_us_error(error_r, "user store %s: the record of %s is corrupt", store->path,
                    jid);
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return r;
}

int
xe_userstore_get(struct xe_userstore *store, const char *jid, struct xe_user *user,
                 char **error_r)
{
    return us_get(store, jid, user, true, error_r);
}

int
xe_userstore_get_state(struct xe_userstore *store, const char *jid, struct xe_user *user,
                       char **error_r)
{
    return us_get(store, jid, user, false, error_r);
}

int
xe_us_writable(const struct xe_userstore *store, char **error_r)
{
    if (!store->readonly)
        return XE_US_OK;
    xe_us_error(error_r, "user store %s: opened read-only", store->path);
    return XE_US_INVALID;
}

int
xe_us_keyed_write(struct xe_userstore *store, const struct xe_us_keyed *k, char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key = k->key;
    int r, rc;

    if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) != 0)
        return xe_us_mdb_error(store, NULL, rc, "mdb_txn_begin", error_r);
    if (k->apply != NULL)
        r = k->apply(store, txn, k->dbi, &key, k->ctx, error_r);
    else if ((rc = mdb_del(txn, k->dbi, &key, NULL)) == 0)
        r = XE_US_OK;
    else
        r = rc == MDB_NOTFOUND ? XE_US_NOTFOUND
                               : xe_us_mdb_error(store, NULL, rc, k->op, error_r);
    if (r != XE_US_OK) {
        mdb_txn_abort(txn);
        return r;
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? XE_US_OK : xe_us_mdb_error(store, NULL, rc, k->commit, error_r);
}

struct us_put {
    const struct xe_user *user;
    bool must_not_exist;
    const char *rec;
    size_t rec_len;
};

/* In the write transaction: the checks against what is there, then the
 * record (with the names a later version wrote kept). */
static int
us_put_apply(struct xe_userstore *store, MDB_txn *txn, MDB_dbi dbi, MDB_val *key,
             void *ctx, char **error_r)
{
    const struct us_put *p = ctx;
    const struct xe_user *user = p->user;
    MDB_val data, tdata;
    char *extra = NULL, *all = NULL;
    size_t extra_len = 0;
    struct xe_user *old = NULL;
    int r, rc;

    rc = mdb_get(txn, dbi, key, &data);
    if (rc == 0 && p->must_not_exist) {
        xe_us_error(error_r, "user %s already exists", user->jid);
        r = XE_US_EXISTS;
        goto out;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = xe_us_mdb_error(store, NULL, rc, "reading a user", error_r);
        goto out;
    }
    if (rc == MDB_NOTFOUND && mdb_get(txn, store->tdbi, key, &tdata) == 0) {
        /* a new user of a name whose deletion is not finished */
        xe_us_error(
            error_r,
            "user %s was deleted and its data at the backend is not purged yet "
            "(xedgectl user list --pending); the running xedge retries the purge, "
            "after which the name is free; to give up the purge and free it now: "
            "xedgectl user del --keep-data %s",
            user->jid, user->jid);
        r = XE_US_TOMBSTONE;
        goto out;
    }
    if (rc == 0) {
        /* Keep the names a later version wrote, if the old record is sound. */
        r = XE_US_IO;
        if ((old = malloc(sizeof(*old))) == NULL)
            goto out;
        if (xe_user_decode(NULL, data.mv_data, data.mv_size, old) == XE_US_OK &&
            us_unknown_lines(data.mv_data, data.mv_size, &extra, &extra_len) != 0)
            goto out;
    }
    if (extra_len > 0) {
        r = XE_US_INVALID;
        if (p->rec_len + extra_len > US_RECORD_MAX) {
            xe_us_error(error_r, "user store %s: the record of %s is too large",
                        store->path, user->jid);
            goto out;
        }
        r = XE_US_IO;
        if ((all = malloc(p->rec_len + extra_len)) == NULL)
            goto out;
        memcpy(all, p->rec, p->rec_len);
        memcpy(all + p->rec_len, extra, extra_len);
    }
    data.mv_data = all != NULL ? all : (void *)p->rec;
    data.mv_size = p->rec_len + extra_len;
    rc = mdb_put(txn, dbi, key, &data, p->must_not_exist ? MDB_NOOVERWRITE : 0);
    if (rc == MDB_KEYEXIST) {
        xe_us_error(error_r, "user %s already exists", user->jid);
        r = XE_US_EXISTS;
        goto out;
    }
    if (rc != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "writing a user", error_r);
        goto out;
    }
    r = XE_US_OK;
out:
    if (old != NULL) {
        OPENSSL_cleanse(old, sizeof(*old));
        free(old);
    }
    if (all != NULL) {
        OPENSSL_cleanse(all, p->rec_len + extra_len);
        free(all);
    }
    free(extra);
    return r;
}

static int
us_put_impl(struct xe_userstore *store, const struct xe_user *user, bool must_not_exist,
            char **error_r)
{
    struct xe_us_keyed k = {.op = "writing a user", .commit = "committing a user"};
    struct us_put p = {.user = user, .must_not_exist = must_not_exist};
    char *rec = NULL;
    size_t rec_len = 0;
    char norm[sizeof(user->jid)];
    int r;

    if ((r = xe_us_writable(store, error_r)) != XE_US_OK)
        goto out;
    if ((r = xe_us_key(store, user->jid, &k.key)) != 0) {
        xe_us_error(error_r, "user store %s: the JID is empty or longer than %d bytes",
                    store->path, mdb_env_get_maxkeysize(store->env));
        goto out;
    }
    memcpy(norm, user->jid, k.key.mv_size + 1);
    if (xe_jid_normalize(norm, sizeof(norm), NULL) != 0 || strcmp(norm, user->jid) != 0) {
        xe_us_error(error_r, "user store %s: %s is not a normalised bare JID",
                    store->path, user->jid);
        r = XE_US_INVALID;
        goto out;
    }
    if ((r = xe_user_encode(user, &rec, &rec_len)) != 0) {
        xe_us_error(error_r, "user store %s: cannot encode the record of %s", store->path,
                    user->jid);
        goto out;
    }
    /* (both databases opened before the write transaction: opening takes
     * one of its own) */
    if ((r = xe_us_dbi(store, error_r)) != 0 || (r = xe_us_tdbi(store, error_r)) != 0)
        goto out;
    p.rec = rec;
    p.rec_len = rec_len;
    k.dbi = store->dbi;
    k.apply = us_put_apply;
    k.ctx = &p;
    r = xe_us_keyed_write(store, &k, error_r);
out:
    if (r == XE_US_IO && error_r != NULL && *error_r == NULL)
        xe_us_error(error_r, "user store %s: out of memory", store->path);
    if (rec != NULL) {
        OPENSSL_cleanse(rec, rec_len);
        free(rec);
    }
    return r;
}

static int
us_del_impl(struct xe_userstore *store, const char *jid, char **error_r)
{
    struct xe_us_keyed k = {.op = "deleting a user", .commit = "committing a deletion"};
    int r;

    if ((r = xe_us_writable(store, error_r)) != XE_US_OK)
        return r;
    if (xe_us_key(store, jid, &k.key) != 0)
        return XE_US_NOTFOUND;
    if ((r = xe_us_dbi(store, error_r)) != 0)
        return r;
    k.dbi = store->dbi;
    return xe_us_keyed_write(store, &k, error_r);
}

/* One read transaction for the whole walk: CB must not call into the store
 * from the same thread (LMDB allows one transaction per thread). */
/* A walk's KEY as a JID into JID (MAX bytes): 1 when DOMAIN is given and the
 * key is not one of its users (skip it), 0 done, XE_US_CORRUPT (WHAT is not
 * a JID). */
int
xe_us_key_jid(struct xe_userstore *store, const MDB_val *key, const char *domain,
              size_t dlen, char *jid, size_t max, const char *what, char **error_r)
{
    const char *k = key->mv_data;

    if (domain != NULL && (key->mv_size < dlen + 2 || k[key->mv_size - dlen - 1] != '@' ||
                           strncasecmp(k + key->mv_size - dlen, domain, dlen) != 0))
        return 1;
    if (key->mv_size >= max || memchr(k, '\0', key->mv_size) != NULL) {
        xe_us_error(error_r, "user store %s: %s is not a JID", store->path, what);
        return XE_US_CORRUPT;
    }
    memcpy(jid, k, key->mv_size);
    jid[key->mv_size] = '\0';
    return 0;
}

int
xe_userstore_foreach(struct xe_userstore *store, const char *domain,
                     int (*cb)(const struct xe_user *user, void *ctx), void *ctx,
                     char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val key, data;
    struct xe_user *user = NULL;
    size_t dlen = domain != NULL ? strlen(domain) : 0;
    int r, rc;
    MDB_cursor_op op = MDB_FIRST;

    if ((r = xe_us_dbi(store, error_r)) != 0) {
        if (r == XE_US_NOTFOUND)
            r = XE_US_OK; /* read-only and no user ever added */
        goto out;
    }
    if ((user = malloc(sizeof(*user))) == NULL) {
        xe_us_error(error_r, "user store %s: out of memory", store->path);
        r = XE_US_IO;
        goto out;
    }
    if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)) != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "mdb_txn_begin", error_r);
        goto out;
    }
    if ((rc = mdb_cursor_open(txn, store->dbi, &cur)) != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "mdb_cursor_open", error_r);
        goto out;
    }
    for (;; op = MDB_NEXT) {
        char jid[sizeof(user->jid)];

        rc = mdb_cursor_get(cur, &key, &data, op);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc != 0) {
            r = xe_us_mdb_error(store, NULL, rc, "walking the users", error_r);
            goto out;
        }
        if ((r = xe_us_key_jid(store, &key, domain, dlen, jid, sizeof(jid), "a key",
                               error_r)) > 0)
            continue;
        if (r < 0)
            goto out;
        if ((r = xe_user_decode(jid, data.mv_data, data.mv_size, user)) != XE_US_OK) {
            xe_us_error(error_r, "user store %s: the record of %s is corrupt",
                        store->path, jid);
            goto out;
        }
        rc = cb(user, ctx);
        OPENSSL_cleanse(user, sizeof(*user));
        if (rc != 0)
            break;
    }
    r = XE_US_OK;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (user != NULL) {
        OPENSSL_cleanse(user, sizeof(*user));
        free(user);
    }
    return r;
}

/* ---- the write hooks (several nodes) ------------------------------------ */

int
xe_userstore_set_nosync(struct xe_userstore *store, bool on, char **error_r)
{
    int rc = mdb_env_set_flags(store->env, MDB_NOSYNC, on ? 1 : 0);
    return rc == 0 ? XE_US_OK
                   : xe_us_mdb_error(store, NULL, rc, "mdb_env_set_flags", error_r);
}

int
xe_userstore_sync(struct xe_userstore *store, char **error_r)
{
    int rc = mdb_env_sync(store->env, 1);
    return rc == 0 ? XE_US_OK : xe_us_mdb_error(store, NULL, rc, "mdb_env_sync", error_r);
}

void
xe_userstore_set_hooks(struct xe_userstore *store, const struct xe_userstore_hooks *hooks,
                       void *ctx)
{
    store->hooks = hooks;
    store->hooks_ctx = ctx;
}

static int
us_before(struct xe_userstore *store, const char *jid, char **error_r)
{
    if (store->hooks == NULL || store->hooks->before_user_write == NULL)
        return XE_US_OK;
    return store->hooks->before_user_write(store->hooks_ctx, jid, error_r);
}

static void
us_after(struct xe_userstore *store, char kind, const char *jid)
{
    if (store->hooks != NULL && store->hooks->after_write != NULL)
        store->hooks->after_write(store->hooks_ctx, kind, jid);
}

int
xe_userstore_hook_before(struct xe_userstore *store, const char *jid, char **error_r)
{
    return us_before(store, jid, error_r);
}

void
xe_userstore_hook_after(struct xe_userstore *store, char kind, const char *key)
{
    us_after(store, kind, key);
}

int
xe_userstore_put(struct xe_userstore *store, const struct xe_user *user,
                 bool must_not_exist, char **error_r)
{
    int r = us_before(store, user->jid, error_r);
    if (r == XE_US_OK &&
        (r = us_put_impl(store, user, must_not_exist, error_r)) == XE_US_OK)
        us_after(store, 'u', user->jid);
    return r;
}

int
xe_userstore_del(struct xe_userstore *store, const char *jid, char **error_r)
{
    int r = us_before(store, jid, error_r);
    if (r == XE_US_OK && (r = us_del_impl(store, jid, error_r)) == XE_US_OK)
        us_after(store, 'u', jid);
    return r;
}
