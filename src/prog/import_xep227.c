/* xedge: users from XEP-0227 files, with expat. See import_xep227.h. */
#include "import_xep227.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <expat.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util.h"
#include "xelimits.h"

#define NS_SEP '\x01'
#define NS_PIE "urn:xmpp:pie:0"
#define NS_SCRAM "urn:xmpp:pie:0#scram"
#define NS_XI "http://www.w3.org/2001/XInclude"
#define READ_CHUNK (64 * 1024)
#define FIELD_MAX                                                                        \
    1024 /* the text of <salt>, <stored-key>, ...: base64 of 64 bytes twice */
#define WHY_MAX 256
#define MAX_INCLUDES 4096 /* hosts of one ejabberd export */

size_t xe_import_xep227_chunk = READ_CHUNK;

enum field { F_ITER, F_SALT, F_SERVER_KEY, F_STORED_KEY, F_N };
static const char *const field_names[F_N] = {"iter-count", "salt", "server-key",
                                             "stored-key"};

struct scram_in {
    char mechanism[32];
    char *text[F_N];
    unsigned long line;
};

struct x227 {
    XML_Parser p;
    struct xe_import_sink *sink;
    const char *name;
    bool included; /* a file named by an <xi:include> */
    int depth;
    int skip_depth; /* > 0: inside content that is skipped, to this depth */
    char *host;     /* the current <host jid> */
    int root_kind;  /* 1 server-data, 2 host */
    char *fatal;    /* the file stops: why */
    int store_err;  /* < 0: the store failed */
    /* the <user> being read */
    bool in_user;
    unsigned long user_line;
    char *user_name, *password;
    char why[WHY_MAX]; /* the first fault of the record, "" if none */
    struct scram_in scram[XE_SCRAM_N + 1];
    int n_scram;
    bool in_scram;
    int field; /* -1 or the field whose text is being read */
    struct xe_buf text;
    /* includes of the main file */
    char **includes;
    unsigned long *include_lines;
    size_t n_includes;
    bool noted_extra;
};

/* "NS\x01local" == ns, local */
static bool
is(const char *name, const char *ns, const char *local)
{
    size_t n = strlen(ns);

    return strncmp(name, ns, n) == 0 && name[n] == NS_SEP &&
           strcmp(name + n + 1, local) == 0;
}

static bool
in_ns(const char *name, const char *ns)
{
    size_t n = strlen(ns);

    return strncmp(name, ns, n) == 0 && name[n] == NS_SEP;
}

/* The element's name for messages: its local part. */
static const char *
local(const char *name)
{
    const char *s = strchr(name, NS_SEP);

    return s != NULL ? s + 1 : name;
}

static const char *
attr(const XML_Char **attrs, const char *key)
{
    for (int i = 0; attrs[i] != NULL; i += 2)
        if (strcmp(attrs[i], key) == 0)
            return attrs[i + 1];
    return NULL;
}

static unsigned long
line(struct x227 *x)
{
    return (unsigned long)XML_GetCurrentLineNumber(x->p);
}

static void
stop(struct x227 *x, const char *why)
{
    if (x->fatal == NULL)
        x->fatal = xe_asprintf("%s:%lu: %s", x->name, line(x), why);
    XML_StopParser(x->p, XML_FALSE);
}

static void bad(struct x227 *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bad(struct x227 *x, const char *fmt, ...)
{
    va_list ap;

    if (x->why[0] != '\0')
        return; /* the first fault is the one reported */
    va_start(ap, fmt);
    vsnprintf(x->why, sizeof(x->why), fmt, ap);
    va_end(ap);
}

/* "LOCAL@DOMAIN" into JID (SIZE bytes): 0, or -1 when too long. */
static int
join_jid(char *jid, size_t size, const char *local_part, const char *domain)
{
    size_t a = strlen(local_part), b = strlen(domain);

    if (a + b + 2 > size)
        return -1;
    memcpy(jid, local_part, a);
    jid[a] = '@';
    memcpy(jid + a + 1, domain, b + 1);
    return 0;
}

static void
free_secret(char **s)
{
    if (*s != NULL) {
        OPENSSL_cleanse(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static void
reset_user(struct x227 *x)
{
    free_secret(&x->user_name);
    free_secret(&x->password);
    for (int i = 0; i < x->n_scram; i++)
        for (int f = 0; f < F_N; f++)
            free_secret(&x->scram[i].text[f]);
    memset(x->scram, 0, sizeof(x->scram));
    x->n_scram = 0;
    x->in_user = false;
    x->in_scram = false;
    x->field = -1;
    x->why[0] = '\0';
}

/* The text of a field without the whitespace around it (pretty-printed
 * files). */
static const char *
trim(char *s, size_t *len_r)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    s[n] = '\0';
    *len_r = n;
    return s;
}

/* One base64 field into OUT: once, or twice (ejabberd). *twice: in, the
 * record's keys were encoded twice (the salt then is too); out for keys.
 * want: the exact length (keys), 0 for any. NULL or why it is refused. */
static const char *
decode(char *text, unsigned char *out, size_t out_max, size_t want, bool key, bool *twice,
       size_t *len_r)
{
    unsigned char *once = xe_malloc(FIELD_MAX), *twice_buf = xe_malloc(FIELD_MAX);
    size_t n1 = 0, n2 = 0, len;
    const char *s = trim(text, &len), *why = NULL;

    if (xe_import_b64(s, len, once, FIELD_MAX, &n1) != 0) {
        why = "not base64";
        goto out;
    }
    if (key && n1 == want) {
        *twice = false;
    } else if ((key || *twice) &&
               xe_import_b64((const char *)once, n1, twice_buf, FIELD_MAX, &n2) == 0 &&
               (want == 0 || n2 == want)) {
        /* base64 of base64: ejabberd's export */
        memcpy(once, twice_buf, n2);
        n1 = n2;
        if (key)
            *twice = true;
    } else if (key) {
        why = "of the wrong length for its hash";
        goto out;
    } else if (*twice) {
        why = "not base64 twice, as the keys of the record are";
        goto out;
    }
    if (n1 == 0 || n1 > out_max) {
        why = "of the wrong length";
        goto out;
    }
    memcpy(out, once, n1);
    *len_r = n1;
out:
    OPENSSL_cleanse(once, FIELD_MAX);
    OPENSSL_cleanse(twice_buf, FIELD_MAX);
    free(once);
    free(twice_buf);
    return why;
}

static int
hash_of(const char *mech)
{
    for (int h = 0; h < XE_SCRAM_N; h++)
        if (strcmp(mech, xe_scram_hash_name((enum xe_scram_hash)h)) == 0)
            return h;
    return -1;
}

static size_t
key_len(int h)
{
    return h == XE_SCRAM_SHA1 ? 20 : h == XE_SCRAM_SHA256 ? 32 : 64;
}

/* The <user> is complete: check it whole, then store it. */
static void
finish_user(struct x227 *x)
{
    struct xe_user *u = xe_calloc(1, sizeof(*u));
    char where[PATH_MAX + 32], why[WHY_MAX + 64] = "";
    const char *who = x->user_name != NULL ? x->user_name : "(no name)", *bad = "";
    bool any = false;
    int r;

    snprintf(where, sizeof(where), "%s:%lu", x->name, x->user_line);
    if (x->user_name == NULL || x->user_name[0] == '\0' || x->host == NULL) {
        snprintf(why, sizeof(why), "a <user> needs a name, inside a <host jid=...>");
        goto refuse;
    }
    if (join_jid(u->jid, sizeof(u->jid), x->user_name, x->host) != 0) {
        snprintf(why, sizeof(why), "the JID is too long");
        goto refuse;
    }
    if (xe_jid_normalize(u->jid, sizeof(u->jid), &bad) != XE_US_OK) {
        snprintf(why, sizeof(why), "%s@%s is not a valid JID (%s)", x->user_name, x->host,
                 bad);
        goto refuse;
    }
    who = u->jid;
    if (x->why[0] != '\0') {
        snprintf(why, sizeof(why), "%s", x->why);
        goto refuse;
    }
    for (int i = 0; i < x->n_scram; i++) {
        struct scram_in *sc = &x->scram[i];
        int h = hash_of(sc->mechanism);
        struct xe_scram_secret *s;
        bool twice = false;
        size_t n = 0;
        char *end;
        unsigned long it;
        const char *w;

        if (h < 0) {
            snprintf(
                why, sizeof(why),
                "line %lu: SCRAM mechanism '%.40s' is not one xedge keeps (SCRAM-SHA-1, "
                "-256, -512)",
                sc->line, sc->mechanism);
            goto refuse;
        }
        s = &u->scram[h];
        if (s->present) {
            snprintf(why, sizeof(why), "line %lu: a second %s", sc->line, sc->mechanism);
            goto refuse;
        }
        for (int f = 0; f < F_N; f++) {
            if (sc->text[f] == NULL) {
                snprintf(why, sizeof(why), "line %lu: %s without <%s>", sc->line,
                         sc->mechanism, field_names[f]);
                goto refuse;
            }
        }
        errno = 0;
        it = strtoul(trim(sc->text[F_ITER], &n), &end, 10);
        if (errno != 0 || end == sc->text[F_ITER] || *end != '\0' || it < 1 ||
            it > XE_MAX_SCRAM_ITERATIONS ||
            !isdigit((unsigned char)sc->text[F_ITER][0])) {
            snprintf(why, sizeof(why), "line %lu: <iter-count> must be 1 to %d", sc->line,
                     XE_MAX_SCRAM_ITERATIONS);
            goto refuse;
        }
        s->iterations = (unsigned)it;
        s->key_len = key_len(h);
        if ((w = decode(sc->text[F_STORED_KEY], s->stored_key, sizeof(s->stored_key),
                        s->key_len, true, &twice, &n)) != NULL) {
            snprintf(why, sizeof(why), "line %lu: <stored-key> is %s", sc->line, w);
            goto refuse;
        }
        {
            bool twice2 = false;
            if ((w = decode(sc->text[F_SERVER_KEY], s->server_key, sizeof(s->server_key),
                            s->key_len, true, &twice2, &n)) != NULL ||
                twice2 != twice) {
                snprintf(why, sizeof(why), "line %lu: <server-key> is %s", sc->line,
                         w != NULL ? w : "encoded unlike <stored-key>");
                goto refuse;
            }
        }
        if ((w = decode(sc->text[F_SALT], s->salt, sizeof(s->salt), 0, false, &twice,
                        &s->salt_len)) != NULL) {
            snprintf(why, sizeof(why), "line %lu: <salt> is %s", sc->line, w);
            goto refuse;
        }
        s->present = true;
        any = true;
    }
    if (x->password != NULL) {
        size_t len = strlen(x->password);
        if (any && !xe_user_check_password(u, x->password, len)) {
            snprintf(why, sizeof(why),
                     "its password and its SCRAM credentials do not match");
            goto refuse;
        }
        if (xe_import_set_password(x->sink, u, x->password, len) != 0) {
            snprintf(why, sizeof(why), "its password is empty or longer than %zu bytes",
                     sizeof(u->legacy_password) - 1);
            goto refuse;
        }
        any = true;
    }
    if (!any) {
        snprintf(why, sizeof(why), "no password and no SCRAM credentials");
        goto refuse;
    }
    u->created = u->modified = xe_now_seconds();
    r = xe_import_put(x->sink, u, where);
    if (r < 0) {
        x->store_err = r;
        XML_StopParser(x->p, XML_FALSE);
    }
    goto out;
refuse:
    xe_import_refuse(x->sink, where, "user %s: %s; not imported", who, why);
out:
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    reset_user(x);
}

/* the depth of <host>: under <server-data>, or the root */
static int
host_depth(const struct x227 *x)
{
    return x->root_kind == 1 ? 2 : 1;
}

static void
skip(struct x227 *x)
{
    x->skip_depth = x->depth;
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct x227 *x = ud;

    x->depth++;
    if (x->skip_depth > 0)
        return;
    if (x->depth == 1) {
        if (!x->included && is(name, NS_PIE, "server-data")) {
            x->root_kind = 1;
        } else if (is(name, NS_PIE, "host")) {
            x->root_kind = 2;
            free(x->host);
            x->host = attr(attrs, "jid") ? xe_strdup(attr(attrs, "jid")) : NULL;
        } else {
            stop(x, x->included ? "not a XEP-0227 host file (the root must be <host "
                                  "xmlns='urn:xmpp:pie:0'>)"
                                : "not a XEP-0227 file (the root must be <server-data "
                                  "xmlns='urn:xmpp:pie:0'>)");
        }
        return;
    }
    if (x->depth == 2 && x->root_kind == 1) {
        if (is(name, NS_PIE, "host")) {
            free(x->host);
            x->host = attr(attrs, "jid") ? xe_strdup(attr(attrs, "jid")) : NULL;
            if (x->host == NULL)
                xe_import_note(x->sink,
                               "%s:%lu: a <host> without jid: its users are refused",
                               x->name, line(x));
        } else if (is(name, NS_XI, "include")) {
            const char *href = attr(attrs, "href");
            if (x->n_includes >= MAX_INCLUDES) {
                stop(x, "too many <xi:include>");
                return;
            }
            x->includes = realloc(x->includes, (x->n_includes + 1) * sizeof(char *));
            x->include_lines =
                realloc(x->include_lines, (x->n_includes + 1) * sizeof(unsigned long));
            if (x->includes == NULL || x->include_lines == NULL)
                abort();
            x->includes[x->n_includes] = xe_strdup(href != NULL ? href : "");
            x->include_lines[x->n_includes++] = line(x);
            skip(x);
        } else {
            char where[PATH_MAX + 32];
            snprintf(where, sizeof(where), "%s:%lu", x->name, line(x));
            xe_import_refuse(
                x->sink, where,
                "unknown element <%s> in <server-data>: skipped with what is in it",
                local(name));
            skip(x);
        }
        return;
    }
    if (x->depth == host_depth(x) + 1) { /* in <host> */
        if (is(name, NS_PIE, "user")) {
            const char *n = attr(attrs, "name"), *pw = attr(attrs, "password");
            reset_user(x);
            x->in_user = true;
            x->user_line = line(x);
            x->user_name = n != NULL ? xe_strdup(n) : NULL;
            x->password = pw != NULL ? xe_strdup(pw) : NULL;
            if (x->host == NULL)
                bad(x, "%s", "its <host> has no jid");
        } else {
            char where[PATH_MAX + 32];
            snprintf(where, sizeof(where), "%s:%lu", x->name, line(x));
            xe_import_refuse(x->sink, where,
                             "unknown element <%s> in <host>: skipped with what is in it",
                             local(name));
            skip(x);
        }
        return;
    }
    if (!x->in_user)
        return;
    if (x->depth == host_depth(x) + 2) { /* in <user> */
        if (is(name, NS_SCRAM, "scram-credentials")) {
            const char *m = attr(attrs, "mechanism");
            if (x->n_scram >= XE_SCRAM_N + 1) {
                bad(x, "%s", "more <scram-credentials> than there are hashes");
                skip(x);
                return;
            }
            x->in_scram = true;
            x->scram[x->n_scram].line = line(x);
            snprintf(x->scram[x->n_scram].mechanism, sizeof(x->scram[0].mechanism), "%s",
                     m != NULL ? m : "(none)");
            x->n_scram++;
        } else if (in_ns(name, NS_PIE) || in_ns(name, NS_SCRAM)) {
            bad(x, "unknown element <%s> in <user>", local(name));
            skip(x);
        } else {
            /* roster, vCard, offline messages...: they stay with the
             * legacy server */
            if (!x->noted_extra) {
                xe_import_note(
                    x->sink,
                    "%s:%lu: note: only credentials are imported; rosters, "
                    "vCards and other user data (<%s> here) stay with the legacy "
                    "server",
                    x->name, line(x), local(name));
                x->noted_extra = true;
            }
            skip(x);
        }
        return;
    }
    if (x->depth == host_depth(x) + 3 && x->in_scram) { /* in <scram-credentials> */
        int f = -1;
        for (int i = 0; i < F_N; i++)
            if (is(name, NS_SCRAM, field_names[i]))
                f = i;
        if (f < 0) {
            bad(x, "unknown element <%s> in <scram-credentials>", local(name));
            skip(x);
        } else if (x->scram[x->n_scram - 1].text[f] != NULL) {
            bad(x, "a second <%s> in <scram-credentials>", field_names[f]);
            skip(x);
        } else {
            x->field = f;
            x->text.len = 0;
        }
        return;
    }
    bad(x, "unexpected element <%s>", local(name));
    skip(x);
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
    struct x227 *x = ud;

    (void)name;
    if (x->skip_depth > 0) {
        if (x->depth == x->skip_depth)
            x->skip_depth = 0;
        x->depth--;
        return;
    }
    if (x->in_user) {
        if (x->field >= 0 && x->depth == host_depth(x) + 3) {
            char *t = xe_malloc(x->text.len + 1);
            if (x->text.len > 0) /* an empty field: no text, data may be NULL */
                memcpy(t, x->text.data, x->text.len);
            t[x->text.len] = '\0';
            x->scram[x->n_scram - 1].text[x->field] = t;
            if (x->text.len > 0)
                OPENSSL_cleanse(x->text.data, x->text.len);
            x->text.len = 0;
            x->field = -1;
        } else if (x->in_scram && x->depth == host_depth(x) + 2) {
            x->in_scram = false;
        } else if (x->depth == host_depth(x) + 1) {
            finish_user(x);
        }
    }
    x->depth--;
}

static void XMLCALL
on_chars(void *ud, const XML_Char *s, int len)
{
    struct x227 *x = ud;

    if (x->skip_depth > 0 || !x->in_user || x->field < 0)
        return;
    if (xe_buf_append(&x->text, s, (size_t)len) != 0) {
        bad(x, "<%s> is too long", field_names[x->field]);
        x->field = -1;
    }
}

static void XMLCALL
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    stop(ud, "a DOCTYPE is refused (its entities could expand without bound); nothing "
             "after it is read");
}

static void XMLCALL
on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *value, int vlen,
          const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
          const XML_Char *notation)
{
    (void)name, (void)pe, (void)value, (void)vlen, (void)base, (void)sysid, (void)pubid,
        (void)notation;
    stop(ud, "an entity declaration is refused");
}

static int parse_file(struct xe_import_sink *sink, FILE *in, const char *name,
                      bool included, struct x227 **x_r);
static void x227_free(struct x227 *x);

/* The file an <xi:include href> names, next to the main file. */
static int
do_include(struct x227 *main, const char *path, size_t i)
{
    const char *href = main->includes[i], *slash = strrchr(path, '/');
    char *file = NULL;
    struct x227 *x = NULL;
    FILE *in = NULL;
    int r = 1;

    if (href[0] == '\0' || href[0] == '.' || strchr(href, '/') != NULL) {
        xe_import_note(
            main->sink,
            "%s:%lu: <xi:include href='%.200s'> refused: only a file name in the "
            "same directory is read",
            main->name, main->include_lines[i], href);
        return 1;
    }
    file = slash != NULL ? xe_asprintf("%.*s/%s", (int)(slash - path), path, href)
                         : xe_strdup(href);
    if ((in = fopen(file, "rb")) == NULL) {
        xe_import_note(main->sink, "%s:%lu: %s: %s", main->name, main->include_lines[i],
                       file, strerror(errno));
        goto out;
    }
    r = parse_file(main->sink, in, file, true, &x);
    x227_free(x);
out:
    if (in != NULL)
        fclose(in);
    free(file);
    return r;
}

static void
x227_free(struct x227 *x)
{
    if (x == NULL)
        return;
    reset_user(x);
    if (x->p != NULL)
        XML_ParserFree(x->p);
    if (x->text.data != NULL)
        OPENSSL_cleanse(x->text.data, x->text.cap);
    xe_buf_free(&x->text);
    for (size_t i = 0; i < x->n_includes; i++)
        free(x->includes[i]);
    free(x->includes);
    free(x->include_lines);
    free(x->host);
    free(x->fatal);
    free(x);
}

/* Parse one file. 0, 1 (broken: reported), or a store error (negative).
 * The caller frees *x_r (kept for the includes of the main file). */
static int
parse_file(struct xe_import_sink *sink, FILE *in, const char *name, bool included,
           struct x227 **x_r)
{
    struct x227 *x = xe_calloc(1, sizeof(*x));
    char *buf = xe_malloc(READ_CHUNK);
    struct stat sb;
    uint64_t total = 0, done = 0;
    unsigned long salt;
    int r = 1;

    *x_r = x;
    x->sink = sink;
    x->name = name;
    x->included = included;
    x->field = -1;
    xe_buf_init(&x->text, FIELD_MAX);
    if (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode))
        total = (uint64_t)sb.st_size;
    if ((x->p = XML_ParserCreateNS(NULL, NS_SEP)) == NULL)
        abort();
    if (RAND_bytes((unsigned char *)&salt, sizeof(salt)) != 1)
        abort();
    XML_SetHashSalt(x->p, salt);
    XML_SetUserData(x->p, x);
    XML_SetElementHandler(x->p, on_start, on_end);
    XML_SetCharacterDataHandler(x->p, on_chars);
    XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
    XML_SetEntityDeclHandler(x->p, on_entity);
    XML_SetParamEntityParsing(x->p, XML_PARAM_ENTITY_PARSING_NEVER);
    for (;;) {
        size_t want = xe_import_xep227_chunk > 0 && xe_import_xep227_chunk < READ_CHUNK
                          ? xe_import_xep227_chunk
                          : READ_CHUNK;
        size_t n = fread(buf, 1, want, in);
        bool final = n < want;
        if (n < want && ferror(in)) {
            xe_import_note(sink, "%s: read error: %s", name, strerror(errno));
            goto out;
        }
        if (XML_Parse(x->p, buf, (int)n, final) != XML_STATUS_OK) {
            if (x->store_err < 0) {
                r = x->store_err;
                goto out;
            }
            if (x->fatal == NULL)
                x->fatal = xe_asprintf("%s:%lu: XML error: %s", name, line(x),
                                       XML_ErrorString(XML_GetErrorCode(x->p)));
            break;
        }
        done += n;
        xe_import_progress(sink, done, total);
        if (final)
            break;
    }
    if (x->fatal != NULL) {
        if (x->in_user) {
            char where[PATH_MAX + 32];
            snprintf(where, sizeof(where), "%s:%lu", name, x->user_line);
            xe_import_refuse(sink, where,
                             "user %s: the file breaks off inside it; not imported",
                             x->user_name != NULL ? x->user_name : "(no name)");
        }
        xe_import_note(sink, "%s; the rest of the file is not read", x->fatal);
        goto out;
    }
    r = 0;
out:
    OPENSSL_cleanse(buf, READ_CHUNK);
    free(buf);
    return r;
}

int
xe_import_xep227(struct xe_import_sink *sink, FILE *in, const char *path,
                 const char *name)
{
    struct x227 *x = NULL;
    int r = parse_file(sink, in, name, false, &x), ri;

    for (size_t i = 0; r >= 0 && x != NULL && i < x->n_includes; i++) {
        if (path == NULL) {
            xe_import_note(sink,
                           "%s:%lu: <xi:include> in standard input: give the file's path",
                           name, x->include_lines[i]);
            r = r == 0 ? 1 : r;
            continue;
        }
        ri = do_include(x, path, i);
        if (ri < 0)
            r = ri;
        else if (ri > 0 && r == 0)
            r = 1;
    }
    x227_free(x);
    return r;
}
