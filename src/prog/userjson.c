/* xedge: users as JSON lines. See userjson.h. */
#include "userjson.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util.h"

#define LINE_MAX_BYTES (64 * 1024) /* one user: a few hundred bytes in practice */

/* ---- export ------------------------------------------------------------- */

static json_t *
b64_json(const unsigned char *data, size_t len)
{
    char buf[4 * ((1024 + 2) / 3) + 1];
    json_t *s;

    if (len > 1024)
        return NULL;
    EVP_EncodeBlock((unsigned char *)buf, data, (int)len);
    s = json_string(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    return s;
}

struct export_ctx {
    FILE *out;
    bool legacy;
    int failed;
};

static int
export_cb(const struct xe_user *u, void *ctxp)
{
    struct export_ctx *ctx = ctxp;
    json_t *o = json_object(), *scram = json_object();
    char *line = NULL;

    json_object_set_new(o, "jid", json_string(u->jid));
    json_object_set_new(o, "created", json_integer(u->created));
    json_object_set_new(o, "modified", json_integer(u->modified));
    json_object_set_new(o, "disabled", json_boolean(u->disabled));
    if (u->pin[0])
        json_object_set_new(o, "pin", json_string(u->pin));
    if (u->expires > 0)
        json_object_set_new(o, "expires", json_integer(u->expires));
    for (int h = 0; h < XE_SCRAM_N; h++) {
        const struct xe_scram_secret *s = &u->scram[h];
        json_t *e;
        if (!s->present)
            continue;
        e = json_object();
        json_object_set_new(e, "iterations", json_integer(s->iterations));
        json_object_set_new(e, "salt", b64_json(s->salt, s->salt_len));
        json_object_set_new(e, "stored_key", b64_json(s->stored_key, s->key_len));
        json_object_set_new(e, "server_key", b64_json(s->server_key, s->key_len));
        json_object_set_new(scram, xe_scram_hash_name((enum xe_scram_hash)h), e);
    }
    json_object_set_new(o, "scram", scram);
    if (ctx->legacy && u->legacy)
        json_object_set_new(
            o, "legacy_password",
            b64_json((const unsigned char *)u->legacy_password, u->legacy_len));
    line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (line == NULL || fprintf(ctx->out, "%s\n", line) < 0)
        ctx->failed = 1;
    if (line) {
        OPENSSL_cleanse(line, strlen(line));
        free(line);
    }
    json_decref(o);
    return ctx->failed;
}

int
xe_userjson_export(struct xe_userstore *store, const char *domain, bool legacy, FILE *out,
                   char **error_r)
{
    struct export_ctx ctx = {.out = out, .legacy = legacy};
    int r = xe_userstore_foreach(store, domain, export_cb, &ctx, error_r);

    if (r == XE_US_OK && (ctx.failed || fflush(out) != 0)) {
        *error_r = xe_strdup("cannot write the users");
        return XE_US_IO;
    }
    return r;
}

/* ---- import ------------------------------------------------------------- */

/* A string that may go into a record line as it is: base64 only. */
static bool
b64_chars(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9') || *s == '+' || *s == '/' || *s == '='))
            return false;
    return true;
}

static const char *
str_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The record text of one JSON user (the store's own codec validates it). */
static const char *
record_text(json_t *o, struct xe_buf *rec, json_int_t now)
{
    static const char *const known[] = {
        "jid",     "created", "modified",        "disabled", "pin",
        "expires", "scram",   "legacy_password", "password", "legacy"};
    const char *key, *pin = str_field(o, "pin"),
                     *legacy = str_field(o, "legacy_password");
    json_t *v, *scram = json_object_get(o, "scram");
    json_int_t t[3] = {now, now, 0};
    const char *tname[3] = {"created", "modified", "expires"};

    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok)
            return "unknown key";
    }
    for (int i = 0; i < 3; i++) {
        v = json_object_get(o, tname[i]);
        if (v == NULL)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return "created, modified and expires must be non-negative integers";
        t[i] = json_integer_value(v);
    }
    v = json_object_get(o, "disabled");
    if (v != NULL && !json_is_boolean(v))
        return "disabled must be true or false";
    if ((json_object_get(o, "pin") != NULL && pin == NULL) ||
        (pin && strpbrk(pin, "\r\n") != NULL))
        return "pin must be a string on one line";
    xe_buf_appendf(rec,
                   "v=1\ncreated=%" JSON_INTEGER_FORMAT "\nmodified=%" JSON_INTEGER_FORMAT
                   "\ndisabled=%d\npin=%s\n",
                   t[0], t[1], json_is_true(v) ? 1 : 0, pin ? pin : "");
    if (t[2] > 0)
        xe_buf_appendf(rec, "expires=%" JSON_INTEGER_FORMAT "\n", t[2]);
    if (scram != NULL) {
        json_t *e;
        if (!json_is_object(scram))
            return "scram must be an object";
        json_object_foreach(scram, key, e)
        {
            const char *salt = str_field(e, "salt"), *sk = str_field(e, "stored_key"),
                       *svk = str_field(e, "server_key");
            json_t *it = json_object_get(e, "iterations");
            bool known_hash = false;
            for (int h = 0; h < XE_SCRAM_N; h++)
                known_hash = known_hash || strcmp(key, xe_scram_hash_name(h)) == 0;
            if (!known_hash)
                return "scram: unknown hash (SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512)";
            if (!json_is_integer(it) || json_integer_value(it) < 1 || !salt || !sk ||
                !svk || !b64_chars(salt) || !b64_chars(sk) || !b64_chars(svk) ||
                json_object_size(e) != 4)
                return "scram: each hash needs iterations, and salt, stored_key and "
                       "server_key in base64, and nothing else";
            xe_buf_appendf(rec, "%s=%" JSON_INTEGER_FORMAT ":%s:%s:%s\n", key,
                           json_integer_value(it), salt, sk, svk);
        }
    }
    if (legacy != NULL) {
        if (!b64_chars(legacy))
            return "legacy_password must be base64";
        xe_buf_appendf(rec, "legacy-password=%s\n", legacy);
    }
    return NULL;
}

/* One line: 0 handed to the sink (added, replaced, kept or refused there),
 * 1 refused here (*why says why), or a store error code (negative). */
static int
import_line(struct xe_import_sink *sink, const char *line, const char *where,
            const char **why)
{
    const struct xe_import_opts *opts = xe_import_opts(sink);
    json_error_t jerr;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    struct xe_user *u = xe_calloc(1, sizeof(*u));
    char jid[sizeof(u->jid)];
    struct xe_buf rec;
    const char *password;
    int r = 1;

    xe_buf_init(&rec, LINE_MAX_BYTES);
    *why = NULL;
    if (o == NULL || !json_is_object(o)) {
        *why = o == NULL ? "not JSON" : "not a JSON object";
        goto out;
    }
    password = str_field(o, "password");
    if (str_field(o, "jid") == NULL || strlen(str_field(o, "jid")) >= sizeof(jid)) {
        *why = "no jid, or too long";
        goto out;
    }
    snprintf(jid, sizeof(jid), "%s", str_field(o, "jid"));
    if (xe_jid_normalize(jid, sizeof(jid), NULL) != XE_US_OK) {
        *why =
            "invalid JID (a bare JID localpart@domain is required, its localpart valid "
            "under nodeprep)";
        goto out;
    }
    if ((*why = record_text(o, &rec, (json_int_t)time(NULL))) != NULL)
        goto out;
    if (xe_user_decode(jid, (const char *)rec.data, rec.len, u) != XE_US_OK) {
        *why = "invalid values (iterations, salt or key lengths, base64, pin)";
        goto out;
    }
    snprintf(u->jid, sizeof(u->jid), "%s", jid);
    if (password != NULL) {
        json_t *lg = json_object_get(o, "legacy");
        if (json_object_get(o, "scram") || json_object_get(o, "legacy_password")) {
            *why = "give either password or scram/legacy_password";
            goto out;
        }
        if (xe_user_set_password(u, password, strlen(password), opts->iterations) !=
                XE_US_OK ||
            ((json_is_true(lg) || opts->legacy) &&
             xe_user_set_legacy(u, password, strlen(password)) != XE_US_OK)) {
            *why = "cannot derive the secrets (an empty password?)";
            goto out;
        }
    } else if (json_object_get(o, "legacy") != NULL) {
        *why = "legacy goes with password";
        goto out;
    }
    {
        bool any = false;
        for (int h = 0; h < XE_SCRAM_N; h++)
            any = any || u->scram[h].present;
        if (!any) {
            *why = "no password and no SCRAM secret";
            goto out;
        }
    }
    r = xe_import_put(sink, u, where);
out:
    if (o)
        json_decref(o);
    if (rec.data)
        OPENSSL_cleanse(rec.data, rec.cap);
    xe_buf_free(&rec);
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    return r;
}

int
xe_userjson_import(struct xe_import_sink *sink, FILE *in, const char *name)
{
    char *line = xe_malloc(LINE_MAX_BYTES + 2);
    char where[4096];
    unsigned long n = 0;
    int ret = 0;

    while (fgets(line, LINE_MAX_BYTES + 2, in) != NULL) {
        size_t len = strlen(line);
        const char *why = NULL;
        int r;

        n++;
        snprintf(where, sizeof(where), "%s:%lu", name, n);
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        } else if (!feof(in)) { /* longer than a line may be: skip the rest */
            int c;
            while ((c = fgetc(in)) != EOF && c != '\n')
                ;
            xe_import_refuse(sink, where, "line longer than %d bytes", LINE_MAX_BYTES);
            continue;
        }
        if (strspn(line, " \t\r") == len)
            continue; /* blank */
        r = import_line(sink, line, where, &why);
        if (r == 1) {
            xe_import_refuse(sink, where, "%s", why ? why : "cannot import");
        } else if (r != 0) {
            ret = r;
            break;
        }
    }
    if (ret == 0 && ferror(in)) {
        xe_import_note(sink, "%s: read error", name);
        ret = 1;
    }
    OPENSSL_cleanse(line, LINE_MAX_BYTES + 2);
    free(line);
    return ret;
}
