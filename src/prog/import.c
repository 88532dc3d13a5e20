/* xedge: `xedgectl user import`, the sink and the command. See import.h. */
#include "import.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "import_jabberd2.h"
#include "import_xep227.h"
#include "userjson.h"
#include "util.h"

#define SEEN_MIN_BUCKETS 1024
#define WHERE_MAX 512
#define BAR_WIDTH 30
#define BAR_INTERVAL_MS 100

struct seen {
    struct seen *next;
    char *where;
    char jid[]; /* flexible: the normalised bare JID */
};

struct xe_import_sink {
    struct xe_userstore *store;
    struct xe_import_opts opts;
    struct xe_import_stats st;
    struct seen **buckets; /* the JIDs of this run, for duplicates */
    size_t n_buckets, n_seen;
    bool bar_shown;
    int64_t last_bar_ms;
    unsigned long last_line; /* records counted at the last plain line */
    uint64_t done, total;
    struct xe_user *old; /* scratch for the lookup */
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

struct xe_import_sink *
xe_import_sink_new(struct xe_userstore *store, const struct xe_import_opts *opts)
{
    struct xe_import_sink *s = xe_calloc(1, sizeof(*s));

    s->store = store;
    s->opts = *opts;
    s->n_buckets = SEEN_MIN_BUCKETS;
    s->buckets = xe_calloc(s->n_buckets, sizeof(*s->buckets));
    s->old = xe_calloc(1, sizeof(*s->old));
    return s;
}

void
xe_import_sink_free(struct xe_import_sink **sinkp)
{
    struct xe_import_sink *s = *sinkp;

    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_buckets; i++) {
        struct seen *e = s->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e->where);
            free(e);
        }
    }
    free(s->buckets);
    OPENSSL_cleanse(s->old, sizeof(*s->old));
    free(s->old);
    free(s);
    *sinkp = NULL;
}

const struct xe_import_opts *
xe_import_opts(const struct xe_import_sink *sink)
{
    return &sink->opts;
}

void
xe_import_stats(const struct xe_import_sink *sink, struct xe_import_stats *st_r)
{
    *st_r = sink->st;
}

static unsigned long
records(const struct xe_import_sink *s)
{
    return s->st.added + s->st.replaced + s->st.skipped + s->st.failed;
}

/* Before a message: take the progress bar off the terminal line. */
static void
clear_bar(struct xe_import_sink *s)
{
    if (s->bar_shown) {
        fputs("\r\033[K", s->opts.err);
        s->bar_shown = false;
    }
}

static void
draw_bar(struct xe_import_sink *s)
{
    FILE *f = s->opts.err;

    if (s->total > 0) {
        uint64_t done = s->done > s->total ? s->total : s->done;
        int pct = (int)(done * 100 / s->total), fill = (int)(done * BAR_WIDTH / s->total);
        fprintf(f, "\r[%.*s%*s] %3d%% %lu records", fill,
                "##############################", BAR_WIDTH - fill, "", pct, records(s));
    } else {
        fprintf(f, "\r%lu records", records(s));
    }
    fprintf(f, " (%lu failed)", s->st.failed);
    fflush(f);
    s->bar_shown = true;
    s->last_bar_ms = now_ms();
}

static void
tick(struct xe_import_sink *s)
{
    if (s->opts.progress_tty) {
        if (now_ms() - s->last_bar_ms >= BAR_INTERVAL_MS)
            draw_bar(s);
    } else if (records(s) >= s->last_line + XE_IMPORT_PROGRESS_EVERY) {
        s->last_line = records(s) - records(s) % XE_IMPORT_PROGRESS_EVERY;
        fprintf(s->opts.err,
                "import: %lu records so far (%lu added, %lu replaced, %lu kept, %lu "
                "failed)\n",
                records(s), s->st.added, s->st.replaced, s->st.skipped, s->st.failed);
        fflush(s->opts.err);
    }
}

void
xe_import_progress(struct xe_import_sink *s, uint64_t done, uint64_t total)
{
    s->done = done;
    s->total = total;
    tick(s);
}

/* Write S to F with control characters as \xNN: the messages quote strings
 * read from the imported databases (user names, realms, file names), which
 * must not move the cursor or rewrite an operator's terminal. */
static void
put_escaped(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
}

static void
vreport(struct xe_import_sink *s, const char *where, const char *fmt, va_list ap)
{
    char msg[2048];

    clear_bar(s);
    if (where != NULL) {
        put_escaped(s->opts.err, where);
        fputs(": ", s->opts.err);
    }
    /* A longer message is cut: each names one record, and a database string
     * longer than this is itself the thing to report. */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    put_escaped(s->opts.err, msg);
    fputc('\n', s->opts.err);
}

void
xe_import_refuse(struct xe_import_sink *s, const char *where, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(s, where, fmt, ap);
    va_end(ap);
    s->st.failed++;
    tick(s);
}

void
xe_import_note(struct xe_import_sink *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(s, NULL, fmt, ap);
    va_end(ap);
}

/* The record for JID seen earlier in this run, or NULL (and JID is now
 * remembered with WHERE). */
static const struct seen *
seen_before(struct xe_import_sink *s, const char *jid, const char *where)
{
    size_t len = strlen(jid), i = (size_t)(fnv1a(jid) % s->n_buckets);
    struct seen *e;

    for (e = s->buckets[i]; e != NULL; e = e->next)
        if (strcmp(e->jid, jid) == 0)
            return e;
    if (s->n_seen >= 2 * s->n_buckets) { /* grow: chains stay short */
        size_t n = s->n_buckets * 2;
        struct seen **b = xe_calloc(n, sizeof(*b));
        for (size_t k = 0; k < s->n_buckets; k++) {
            struct seen *next;
            for (e = s->buckets[k]; e != NULL; e = next) {
                size_t j = (size_t)(fnv1a(e->jid) % n);
                next = e->next;
                e->next = b[j];
                b[j] = e;
            }
        }
        free(s->buckets);
        s->buckets = b;
        s->n_buckets = n;
        i = (size_t)(fnv1a(jid) % n);
    }
    e = xe_malloc(sizeof(*e) + len + 1);
    memcpy(e->jid, jid, len + 1);
    e->where = xe_strndup(where, WHERE_MAX);
    e->next = s->buckets[i];
    s->buckets[i] = e;
    s->n_seen++;
    return NULL;
}

int
xe_import_put(struct xe_import_sink *s, const struct xe_user *user, const char *where)
{
    const struct seen *dup;
    char *err = NULL;
    int g, r = 0;

    if ((dup = seen_before(s, user->jid, where)) != NULL) {
        xe_import_refuse(s, where,
                         "user %s: a second record for the same user (the first, "
                         "at %s, is the one imported)",
                         user->jid, dup->where);
        return 0;
    }
    g = xe_userstore_get(s->store, user->jid, s->old, &err);
    if (g != XE_US_OK && g != XE_US_NOTFOUND) {
        clear_bar(s);
        fprintf(s->opts.err, "%s: user %s: the user store failed: %s\n", where, user->jid,
                err != NULL ? err : "cannot read");
        r = g;
        goto out;
    }
    if (g == XE_US_OK && !s->opts.replace) {
        s->st.skipped++;
        goto done;
    }
    if (!s->opts.dry_run) {
        free(err);
        err = NULL;
        r = xe_userstore_put(s->store, user, false, &err);
        if (r == XE_US_INVALID) {
            xe_import_refuse(s, where, "user %s: the store refused the record: %s",
                             user->jid, err != NULL ? err : "invalid");
            r = 0;
            goto out;
        }
        if (r == XE_US_TOMBSTONE) {
            xe_import_refuse(s, where,
                             "user %s: the user was deleted and the purge of its data at "
                             "the backend is not confirmed yet (xedgectl user list "
                             "--pending)",
                             user->jid);
            r = 0;
            goto out;
        }
        if (r != XE_US_OK) {
            clear_bar(s);
            fprintf(s->opts.err, "%s: user %s: the user store failed: %s\n", where,
                    user->jid, err != NULL ? err : "cannot write");
            goto out;
        }
    }
    if (g == XE_US_OK)
        s->st.replaced++;
    else
        s->st.added++;
done:
    tick(s);
out:
    OPENSSL_cleanse(s->old, sizeof(*s->old));
    free(err);
    return r;
}

void
xe_import_summary(struct xe_import_sink *s, const char *progname)
{
    if (s->opts.progress_tty && records(s) > 0)
        draw_bar(s);
    if (s->bar_shown) {
        fputc('\n', s->opts.err);
        s->bar_shown = false;
    }
    fprintf(s->opts.err,
            "%s: import%s: %lu %sadded, %lu %sreplaced, %lu kept (already there), "
            "%lu failed\n",
            progname, s->opts.dry_run ? " (dry run: nothing written)" : "", s->st.added,
            s->opts.dry_run ? "would be " : "", s->st.replaced,
            s->opts.dry_run ? "would be " : "", s->st.skipped, s->st.failed);
    fflush(s->opts.err);
}

int
xe_import_set_password(struct xe_import_sink *s, struct xe_user *user,
                       const char *password, size_t len)
{
    if (len == 0 || len >= sizeof(user->legacy_password))
        return -1;
    if (xe_user_set_password(user, password, len, s->opts.iterations) != XE_US_OK)
        return -1;
    if (s->opts.legacy && xe_user_set_legacy(user, password, len) != XE_US_OK)
        return -1;
    return 0;
}

static bool
b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int
xe_import_b64(const char *in, size_t len, unsigned char *out, size_t out_max,
              size_t *len_r)
{
    unsigned char *tmp = NULL;
    size_t pad = 0, i, n;
    int dec, r = -1;

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > out_max + 2)
        return -1;
    if (in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    for (i = 0; i < len - pad; i++)
        if (!b64_char(in[i]))
            return -1;
    tmp = xe_malloc(len / 4 * 3);
    dec = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    if (dec < 0 || (size_t)dec != len / 4 * 3)
        goto out;
    n = (size_t)dec - pad;
    if (n == 0 || n > out_max)
        goto out;
    memcpy(out, tmp, n);
    *len_r = n;
    r = 0;
out:
    OPENSSL_cleanse(tmp, len / 4 * 3);
    free(tmp);
    return r;
}

/* ---- the command -------------------------------------------------------- */

enum format { FMT_AUTO, FMT_JSON, FMT_XEP227, FMT_JABBERD2 };

struct args {
    enum format format;
    struct xe_import_opts opts;
    const char *domain;
    char **files;
    int n_files;
};

static int
parse_args(int argc, char **argv, struct args *a, const char *progname)
{
    memset(a, 0, sizeof(*a));
    a->files = argv;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--replace") == 0) {
            a->opts.replace = true;
        } else if (strcmp(s, "--dry-run") == 0 || strcmp(s, "-n") == 0) {
            a->opts.dry_run = true;
        } else if (strcmp(s, "--legacy-mechs") == 0) {
            a->opts.legacy = true;
        } else if (strcmp(s, "--format") == 0 || strncmp(s, "--format=", 9) == 0 ||
                   strcmp(s, "--domain") == 0 || strncmp(s, "--domain=", 9) == 0) {
            bool fmt = s[2] == 'f';
            const char *v = strchr(s, '=');
            if (v != NULL) {
                v++;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                fprintf(stderr, "%s: user import: %s needs a value\n", progname, s);
                return 2;
            }
            if (!fmt) {
                a->domain = v;
            } else if (strcmp(v, "json") == 0) {
                a->format = FMT_JSON;
            } else if (strcmp(v, "xep227") == 0 || strcmp(v, "xep-0227") == 0) {
                a->format = FMT_XEP227;
            } else if (strcmp(v, "jabberd2") == 0) {
                a->format = FMT_JABBERD2;
            } else {
                fprintf(stderr,
                        "%s: user import: unknown format '%s' (json, xep227, jabberd2)\n",
                        progname, v);
                return 2;
            }
        } else if (s[0] == '-' && s[1] != '\0') {
            fprintf(stderr,
                    "%s: user import: unknown option '%s' (try 'xedgectl user --help')\n",
                    progname, s);
            return 2;
        } else {
            a->files[a->n_files++] = argv[i];
        }
    }
    if (a->format == FMT_JABBERD2 && a->n_files == 0) {
        fprintf(stderr, "%s: user import: jabberd2's database must be given as a file\n",
                progname);
        return 2;
    }
    return 0;
}

int
xe_import_check_args(int argc, char **argv, const char *progname)
{
    struct args a;
    char **copy = xe_calloc((size_t)argc + 1, sizeof(*copy));
    int r;

    memcpy(copy, argv, (size_t)argc * sizeof(*copy));
    r = parse_args(argc, copy, &a, progname);
    free(copy);
    return r;
}

/* The format of IN from its first bytes (put back). */
static enum format
sniff(FILE *in)
{
    static const char sqlite_magic[] = "SQLite format 3";
    unsigned char head[16];
    size_t n = fread(head, 1, sizeof(head), in);
    enum format f = FMT_JSON;

    if (n == sizeof(head) && memcmp(head, sqlite_magic, sizeof(sqlite_magic)) == 0) {
        f = FMT_JABBERD2;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')
                continue;
            /* a byte order mark, then markup */
            if (head[i] == '<' || head[i] == 0xEF)
                f = FMT_XEP227;
            break;
        }
    }
    rewind(in);
    return f;
}

static int
import_one(struct xe_import_sink *sink, const struct args *a, const char *path)
{
    FILE *in = stdin;
    const char *name = path != NULL ? path : "stdin";
    enum format f = a->format;
    int r;

    if (path != NULL && strcmp(path, "-") != 0) {
        if ((in = fopen(path, "rb")) == NULL) {
            xe_import_note(sink, "%s: %s", path, strerror(errno));
            return 1;
        }
        if (f == FMT_AUTO)
            f = sniff(in);
    } else {
        path = NULL;
        name = "stdin";
        if (f == FMT_AUTO) { /* one byte of look-ahead: markup or JSON */
            int c;
            while ((c = getc(in)) == ' ' || c == '\t' || c == '\r' || c == '\n')
                ;
            f = c == '<' || c == 0xEF ? FMT_XEP227 : FMT_JSON;
            if (c != EOF)
                ungetc(c, in);
        }
    }
    switch (f) {
    case FMT_JABBERD2:
        if (in != stdin)
            fclose(in);
        in = NULL;
        if (path == NULL) {
            xe_import_note(sink, "stdin: jabberd2's database must be given as a file");
            return 1;
        }
        r = xe_import_jabberd2(sink, path, a->domain);
        break;
    case FMT_XEP227:
        r = xe_import_xep227(sink, in, path, name);
        break;
    default:
        r = xe_userjson_import(sink, in, name);
        break;
    }
    if (in != NULL && in != stdin)
        fclose(in);
    return r;
}

int
xe_import_cmd(struct xe_userstore *store, unsigned iterations, int argc, char **argv,
              const char *progname, struct xe_import_stats *st_r)
{
    struct xe_import_sink *sink = NULL;
    struct xe_import_stats st;
    struct args a;
    bool file_failed = false;
    char *err = NULL;
    int r = 0, ret;

    if ((ret = parse_args(argc, argv, &a, progname)) != 0)
        return ret;
    a.opts.iterations = iterations;
    a.opts.err = stderr;
    a.opts.progress_tty = isatty(STDERR_FILENO) == 1;
    sink = xe_import_sink_new(store, &a.opts);
    /* one flush to disk at the end, not one per user (100,000 users: 20 s
     * of fsyncs); a crash meanwhile loses the last users, never the store's
     * consistency, and the import can be run again (what is there is kept) */
    if (!a.opts.dry_run && store != NULL &&
        xe_userstore_set_nosync(store, true, &err) != 0) {
        free(err);
        err = NULL;
    }
    for (int i = 0; i == 0 || i < a.n_files; i++) {
        r = import_one(sink, &a, a.n_files > 0 ? a.files[i] : NULL);
        if (r < 0)
            break; /* the store failed: nothing more can be written */
        if (r > 0)
            file_failed = true;
    }
    if (!a.opts.dry_run && store != NULL) {
        if (xe_userstore_sync(store, &err) != 0) {
            fprintf(stderr, "%s: import: %s\n", progname,
                    err ? err : "cannot flush the store");
            r = -1;
        }
        free(err);
        err = NULL;
        xe_userstore_set_nosync(store, false, &err);
        free(err);
    }
    xe_import_summary(sink, progname);
    xe_import_stats(sink, &st);
    if (st_r != NULL)
        *st_r = a.opts.dry_run ? (struct xe_import_stats){0} : st;
    if (r < 0)
        ret = 3;
    else
        ret = st.failed > 0 || file_failed ? 1 : 0;
    xe_import_sink_free(&sink);
    return ret;
}
