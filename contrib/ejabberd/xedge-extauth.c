/* xedge-extauth: the backend glue for ejabberd and jabberd2.
 *
 * xedge logs in to its backend with SASL PLAIN: authcid = the user's
 * localpart, password = a short-lived identity assertion signed with the
 * pool's secret (doc/assertion.md). ejabberd hands such a login to an
 * external authentication program (auth_method: external), jabberd2's c2s to
 * its "pipe" authreg module; this program is both, and verifies the assertion
 * with src/core/assertion.c. One request at a time, on stdin/stdout:
 *
 *   ejabberd (--protocol ejabberd, the default): a request is a 2-byte
 *   big-endian length and "auth:User:Server:Password" or "isuser:User:Server"
 *   or "removeuser:User:Server" (true for a local user: the account lives in
 *   xedge, and ejabberd's removal then purges the user's data, which is how
 *   xedge purges a deleted user: doc/assertion.md); setpass, tryregister
 *   and removeuser3 are answered false; the answer is 00 02 then 00 01
 *   (true) or 00 00 (false).
 *
 *   jabberd2 (--protocol jabberd2): at start we print "OK USER-EXISTS
 *   CHECK-PASSWORD SET-PASSWORD DELETE-USER FREE"; then one command per
 *   line, "USER-EXISTS user realm", "CHECK-PASSWORD user base64(password)
 *   realm" or "DELETE-USER user realm" (OK for a local user, as removeuser
 *   above: jabberd2's c2s then has its sm delete the user's data), answered
 *   "OK" or "NO"; SET-PASSWORD is announced, as c2s requires it for an
 *   account removal, and always answered NO; "FREE" ends the program.
 *
 * Refusals are logged to stderr (both servers keep it in their logs), as
 * key=value lines; the assertion and the secret are never logged. See
 * contrib/ejabberd/README.md and contrib/jabberd2/README.md. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include "assertion.h"
#include "xelimits.h"

#define EXIT_USAGE 2

enum proto { P_EJABBERD, P_JABBERD2 };

static const char *progname = "xedge-extauth";

static struct {
    enum proto proto;
    unsigned char secret[XE_EXTAUTH_MAX_SECRET_FILE + 1];
    size_t secret_len;
    int64_t max_lifetime;
    bool allow_anonymous;
    const char *purpose;
    const char *domains[XE_EXTAUTH_MAX_DOMAINS];
    size_t ndomains;
    int64_t fixed_now; /* testing: a fixed clock; 0 = time() */
    bool verbose;
} opt = {
    .proto = P_EJABBERD,
    .max_lifetime = XE_EXTAUTH_DEF_MAX_LIFETIME,
    .purpose = "c2s",
};

static void logmsg(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
logmsg(const char *level, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s[%ld]: level=%s ", progname, (long)getpid(), level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* A JID-ish string from the server, for a log line: bounded, printable. */
static const char *
printable(const char *s, char *out, size_t outsize)
{
    size_t j = 0;

    for (size_t i = 0; s[i] != '\0' && j + 1 < outsize; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c < 0x20 || c == 0x7f || c == ' ' || c == '"') ? '?' : (char)c;
    }
    out[j] = '\0';
    return out;
}

/* ---------------------------------------------------------------- secret */

static int
load_secret(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        logmsg("error", "event=config error=\"cannot open secret file %s: %s\"", path,
               strerror(errno));
        return -1;
    }
    n = fread(opt.secret, 1, sizeof(opt.secret), f);
    if (ferror(f)) {
        logmsg("error", "event=config error=\"cannot read secret file %s: %s\"", path,
               strerror(errno));
        fclose(f);
        return -1;
    }
    fclose(f);
    if (n > XE_EXTAUTH_MAX_SECRET_FILE) {
        logmsg("error", "event=config error=\"secret file %s is larger than %d bytes\"",
               path, XE_EXTAUTH_MAX_SECRET_FILE);
        return -1;
    }
    /* doc/assertion.md: trailing white space is not part of the secret */
    while (n > 0 && strchr(" \t\r\n", opt.secret[n - 1]) != NULL && opt.secret[n - 1])
        n--;
    if (n < XE_MIN_SECRET_BYTES) {
        logmsg("error",
               "event=config error=\"secret file %s holds %zu bytes; at least %d are "
               "required\"",
               path, n, XE_MIN_SECRET_BYTES);
        return -1;
    }
    opt.secret_len = n;
    return 0;
}

/* ---------------------------------------------------------------- replay cache */

/* The nonces of accepted assertions, until they expire (doc/assertion.md,
 * step 6). Open addressing, grown by doubling up to what max entries need;
 * expired entries are dropped when the table is rebuilt. */
struct rentry {
    int64_t expiry; /* 0: empty slot */
    char nonce[32];
};

static struct {
    struct rentry *t;
    size_t cap, used, max;
} cache = {.max = XE_EXTAUTH_DEF_REPLAY_CACHE};

static size_t
nonce_slot(const char *nonce, size_t cap)
{
    uint64_t h = 0;

    /* nonces are random hex: the first 16 digits are a fine hash */
    for (int i = 0; i < 16; i++)
        h = h << 4 | (uint64_t)(nonce[i] <= '9' ? nonce[i] - '0' : nonce[i] - 'a' + 10);
    return (size_t)(h & (cap - 1));
}

static bool
replay_seen(const char *nonce, int64_t now)
{
    if (cache.t == NULL)
        return false;
    for (size_t i = nonce_slot(nonce, cache.cap); cache.t[i].expiry != 0;
         i = (i + 1) & (cache.cap - 1))
        if (memcmp(cache.t[i].nonce, nonce, 32) == 0)
            return cache.t[i].expiry > now;
    return false;
}

static void
replay_put(struct rentry *t, size_t cap, const char *nonce, int64_t expiry)
{
    size_t i = nonce_slot(nonce, cap);

    while (t[i].expiry != 0)
        i = (i + 1) & (cap - 1);
    t[i].expiry = expiry;
    memcpy(t[i].nonce, nonce, 32);
}

/* 0: remembered; -1: the cache is full of live nonces (or out of memory). */
static int
replay_add(const char *nonce, int64_t expiry, int64_t now)
{
    /* at the bound, or the table half full: drop the expired, maybe grow */
    if (cache.used + 1 > cache.max || (cache.used + 1) * 2 > cache.cap) {
        size_t live = 0, cap = cache.cap ? cache.cap : 1024;
        struct rentry *t;

        for (size_t i = 0; i < cache.cap; i++)
            live += cache.t[i].expiry > now;
        if (live + 1 > cache.max)
            return -1;
        while ((live + 1) * 2 > cap)
            cap *= 2;
        t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return -1;
        for (size_t i = 0; i < cache.cap; i++)
            if (cache.t[i].expiry > now)
                replay_put(t, cap, cache.t[i].nonce, cache.t[i].expiry);
        free(cache.t);
        cache.t = t;
        cache.cap = cap;
        cache.used = live;
    }
    replay_put(cache.t, cache.cap, nonce, expiry);
    cache.used++;
    return 0;
}

/* ---------------------------------------------------------------- checks */

/* A localpart as the server hands it to us: non-empty, bounded, and none of
 * the characters a JID localpart cannot hold (RFC 7622), nor controls. */
static bool
good_user(const char *u)
{
    size_t n = strlen(u);

    if (n == 0 || n > XE_EXTAUTH_MAX_PART)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c == 0x7f || strchr("\"&'/:<>@", c) != NULL)
            return false;
    }
    return true;
}

static bool
good_server(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > XE_EXTAUTH_MAX_PART)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("\"&'/:<>@", c) != NULL)
            return false;
    }
    if (opt.ndomains == 0)
        return true;
    for (size_t i = 0; i < opt.ndomains; i++)
        if (strcasecmp(opt.domains[i], s) == 0)
            return true;
    return false;
}

static int64_t
now_s(void)
{
    return opt.fixed_now ? opt.fixed_now : (int64_t)time(NULL);
}

/* isuser / USER-EXISTS: accounts live in xedge's store, at the edge, and a
 * session here exists only once xedge vouched for it; so any well-formed user
 * of a served domain "exists" (as with contrib/prosody, see the READMEs). */
static bool
is_user(const char *user, const char *server)
{
    char a[128], b[128];
    bool ok = good_user(user) && good_server(server);

    if (!ok)
        logmsg("info", "event=isuser jid=%s@%s result=false",
               printable(user, a, sizeof(a)), printable(server, b, sizeof(b)));
    return ok;
}

/* The backend removes the account (a removal the user asked for after a
 * login through xedge, which is how xedge purges a deleted user): the
 * account itself lives in xedge, so the answer is yes for a local user, and
 * the backend goes on to delete the user's data. */
static bool
remove_user(const char *user, const char *server)
{
    char a[128], b[128];
    bool ok = good_user(user) && good_server(server);

    logmsg("info", "event=removeuser jid=%s@%s result=%s", printable(user, a, sizeof(a)),
           printable(server, b, sizeof(b)), ok ? "true" : "false");
    return ok;
}

static bool
check_login(const char *user, const char *server, const char *token)
{
    char identity[2 * XE_EXTAUTH_MAX_PART + 2], a[128], b[128];
    const char *purpose = opt.purpose, *reason = NULL;
    int64_t now = now_s();
    int r;

    printable(user, a, sizeof(a));
    printable(server, b, sizeof(b));
    /* s2s assertions are about a domain: the identity is the server alone */
    if (user[0] == '\0' && strcmp(opt.purpose, "s2s") == 0) {
        if (!good_server(server)) {
            logmsg("warn", "event=refused jid=%s reason=bad-jid", b);
            return false;
        }
        snprintf(identity, sizeof(identity), "%s", server);
    } else {
        if (!good_user(user) || !good_server(server)) {
            logmsg("warn", "event=refused jid=%s@%s reason=bad-jid", a, b);
            return false;
        }
        snprintf(identity, sizeof(identity), "%s@%s", user, server);
    }
    if (opt.allow_anonymous && strncmp(token, "xe1:c2s-anonymous:", 18) == 0)
        purpose = "c2s-anonymous";
    r = xe_assertion_verify(opt.secret, opt.secret_len, purpose, identity, token, now,
                            opt.max_lifetime);
    if (r == XE_ASSERT_OK) {
        /* well-formed (step 1 passed): "xe1:" purpose ":" expiry ":" nonce ":" mac */
        const char *exp_s = token + 4 + strlen(purpose) + 1;
        const char *nonce = strchr(exp_s, ':') + 1;
        int64_t expiry = strtoll(exp_s, NULL, 10);

        if (replay_seen(nonce, now))
            reason = "replayed";
        else if (replay_add(nonce, expiry, now) < 0)
            reason = "replay-cache-full";
        if (reason == NULL) {
            if (opt.verbose)
                logmsg("info", "event=accepted jid=%s purpose=%s expires_in=%lld",
                       identity, purpose, (long long)(expiry - now));
            return true;
        }
    } else {
        reason = xe_assertion_result_name(r);
    }
    logmsg("warn", "event=refused jid=%s%s%s reason=%s", a, a[0] ? "@" : "", b, reason);
    return false;
}

/* ---------------------------------------------------------------- input */

static struct {
    unsigned char buf[4096];
    size_t start, end;
} in;

/* Wait up to timeout_ms (-1: forever) and read more of stdin.
 * 1: data; 0: end of file; -1: error or timeout (logged). */
static int
fill(int timeout_ms)
{
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    ssize_t n;
    int r;

    in.start = in.end = 0;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        logmsg("error", "event=protocol error=\"request incomplete after %d ms\"",
               timeout_ms);
        return -1;
    }
    do
        n = read(STDIN_FILENO, in.buf, sizeof(in.buf));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        logmsg("error", "event=protocol error=\"read: %s\"", strerror(errno));
        return -1;
    }
    in.end = (size_t)n;
    return n > 0;
}

/* The next byte (0..255); -2 at end of file; -1 on error or timeout. The
 * first byte of a request may take forever; the rest must follow in time. */
static int
next_byte(bool first)
{
    if (in.start == in.end) {
        int r = fill(first ? -1 : XE_EXTAUTH_READ_TIMEOUT_MS);
        if (r <= 0)
            return r == 0 ? -2 : -1;
    }
    return in.buf[in.start++];
}

static int
write_all(const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            logmsg("error", "event=protocol error=\"write: %s\"", strerror(errno));
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---------------------------------------------------------------- ejabberd */

static int
ejabberd_reply(bool yes)
{
    unsigned char r[4] = {0, 2, 0, yes ? 1 : 0};
    return write_all(r, sizeof(r));
}

static bool
ejabberd_request(char *req)
{
    char *op = req, *user, *server, *rest;

    /* auth:User:Server:Password (the password may hold ':'), isuser:User:Server */
    if ((user = strchr(op, ':')) == NULL)
        return false;
    *user++ = '\0';
    if ((server = strchr(user, ':')) == NULL)
        return false;
    *server++ = '\0';
    rest = strchr(server, ':');
    if (rest != NULL)
        *rest++ = '\0';
    if (strcmp(op, "auth") == 0 && rest != NULL)
        return check_login(user, server, rest);
    if (strcmp(op, "isuser") == 0 && rest == NULL)
        return is_user(user, server);
    if (strcmp(op, "removeuser") == 0 && rest == NULL)
        return remove_user(user, server);
    /* setpass, tryregister, removeuser3: accounts live in xedge */
    logmsg("info", "event=unsupported op=%.20s", op);
    return false;
}

static int
run_ejabberd(void)
{
    static char req[XE_EXTAUTH_MAX_REQUEST + 1];

    for (;;) {
        int h = next_byte(true), l;
        size_t n;
        bool ok = false;

        if (h == -2)
            return 0;
        if (h < 0 || (l = next_byte(false)) < 0)
            return 1;
        n = (size_t)h << 8 | (size_t)l;
        if (n > XE_EXTAUTH_MAX_REQUEST) {
            /* read past it: the length keeps us in step */
            for (size_t i = 0; i < n; i++)
                if (next_byte(false) < 0)
                    return 1;
            logmsg("warn", "event=refused reason=request-too-long bytes=%zu", n);
        } else {
            for (size_t i = 0; i < n; i++) {
                int c = next_byte(false);
                if (c < 0)
                    return 1;
                req[i] = (char)c;
            }
            req[n] = '\0';
            if (memchr(req, '\0', n) != NULL)
                logmsg("warn", "event=refused reason=nul-in-request");
            else
                ok = ejabberd_request(req);
            OPENSSL_cleanse(req, n);
        }
        if (ejabberd_reply(ok) < 0)
            return 1;
    }
}

/* ---------------------------------------------------------------- jabberd2 */

static bool
jabberd2_request(char *line)
{
    char *f[5];
    size_t nf = 0;
    char *p = line;

    /* fields separated by single spaces; empty ones kept (an empty password
     * is an empty base64 field) */
    for (;;) {
        char *sp = strchr(p, ' ');
        if (nf == 5)
            return false;
        f[nf++] = p;
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    if (strcmp(f[0], "USER-EXISTS") == 0 && nf == 3)
        return is_user(f[1], f[2]);
    if (strcmp(f[0], "DELETE-USER") == 0 && nf == 3)
        return remove_user(f[1], f[2]);
    if (strcmp(f[0], "CHECK-PASSWORD") == 0 && nf == 4) {
        char token[XE_EXTAUTH_MAX_REQUEST + 1];
        unsigned len = 0;
        size_t blen = strlen(f[2]);

        if (blen > 0 && sasl_decode64(f[2], (unsigned)blen, token, sizeof(token) - 1,
                                      &len) != SASL_OK) {
            char a[128], b[128];
            logmsg("warn", "event=refused jid=%s@%s reason=bad-base64",
                   printable(f[1], a, sizeof(a)), printable(f[3], b, sizeof(b)));
            return false;
        }
        token[len] = '\0';
        if (memchr(token, '\0', len) != NULL) {
            logmsg("warn", "event=refused reason=nul-in-password");
            return false;
        }
        bool ok = check_login(f[1], f[3], token);
        OPENSSL_cleanse(token, sizeof(token));
        return ok;
    }
    logmsg("info", "event=unsupported op=%.20s", f[0]);
    return false;
}

static int
run_jabberd2(void)
{
    static char line[XE_EXTAUTH_MAX_REQUEST + 1];
    static const char hello[] =
        "OK USER-EXISTS CHECK-PASSWORD SET-PASSWORD DELETE-USER FREE\n";

    if (write_all(hello, sizeof(hello) - 1) < 0)
        return 1;
    for (;;) {
        size_t n = 0;
        bool too_long = false, ok = false;
        int c = next_byte(true);

        if (c == -2)
            return 0;
        while (c >= 0 && c != '\n') {
            if (n < XE_EXTAUTH_MAX_REQUEST)
                line[n++] = (char)c;
            else
                too_long = true;
            c = next_byte(false);
        }
        if (c < 0)
            return 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        line[n] = '\0';
        if (too_long)
            logmsg("warn", "event=refused reason=request-too-long");
        else if (memchr(line, '\0', n) != NULL)
            logmsg("warn", "event=refused reason=nul-in-request");
        else if (strcmp(line, "FREE") == 0)
            return 0;
        else
            ok = jabberd2_request(line);
        OPENSSL_cleanse(line, n);
        if (write_all(ok ? "OK\n" : "NO\n", 3) < 0)
            return 1;
    }
}

/* ---------------------------------------------------------------- main */

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: %s --secret-file FILE [--protocol ejabberd|jabberd2]\n"
        "          [--max-lifetime SECONDS] [--domain D]... [--allow-anonymous]\n"
        "          [--replay-cache-size N] [--verbose]\n"
        "\n"
        "Verifies the identity assertions xedge sends as the SASL PLAIN password\n"
        "(doc/assertion.md), for ejabberd (auth_method: external; the default)\n"
        "or jabberd2 (authreg module pipe). Reads requests on stdin, answers on\n"
        "stdout, logs refusals to stderr.\n"
        "\n"
        "  -s, --secret-file FILE   the pool's secret (as xedge's secret_file)\n"
        "  -p, --protocol P         ejabberd (extauth) or jabberd2 (pipe)\n"
        "  -l, --max-lifetime S     longest accepted assertion lifetime (default %d);\n"
        "                           >= xedge's timeouts.assertion_lifetime + skew\n"
        "  -d, --domain D           accept only this server/realm (repeatable;\n"
        "                           default: any the server asks about)\n"
        "  -a, --allow-anonymous    admit xedge's ANONYMOUS sessions (c2s-anonymous)\n"
        "  -r, --replay-cache-size N  nonces remembered at most (default %d)\n"
        "  -v, --verbose            log accepted logins too\n"
        "Testing (the assertion test vectors):\n"
        "      --purpose P          the purpose logins must carry (default c2s)\n"
        "      --now T              a fixed clock (unix time)\n",
        progname, XE_EXTAUTH_DEF_MAX_LIFETIME, XE_EXTAUTH_DEF_REPLAY_CACHE);
}

static bool
parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"secret-file", required_argument, NULL, 's'},
        {"protocol", required_argument, NULL, 'p'},
        {"max-lifetime", required_argument, NULL, 'l'},
        {"domain", required_argument, NULL, 'd'},
        {"allow-anonymous", no_argument, NULL, 'a'},
        {"replay-cache-size", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"purpose", required_argument, NULL, 'P'},
        {"now", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *secret_file = NULL;
    int c, rc;
    int64_t v;

    while ((c = getopt_long(argc, argv, "s:p:l:d:ar:vhV", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            secret_file = optarg;
            break;
        case 'p':
            if (strcmp(optarg, "ejabberd") == 0)
                opt.proto = P_EJABBERD;
            else if (strcmp(optarg, "jabberd2") == 0)
                opt.proto = P_JABBERD2;
            else {
                fprintf(stderr, "%s: --protocol: '%s' is not ejabberd or jabberd2\n",
                        progname, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'l':
            if (!parse_int(optarg, 1, 86400, &opt.max_lifetime)) {
                fprintf(stderr, "%s: --max-lifetime: 1..86400 seconds\n", progname);
                return EXIT_USAGE;
            }
            break;
        case 'd':
            if (opt.ndomains == XE_EXTAUTH_MAX_DOMAINS) {
                fprintf(stderr, "%s: --domain: at most %d\n", progname,
                        XE_EXTAUTH_MAX_DOMAINS);
                return EXIT_USAGE;
            }
            opt.domains[opt.ndomains++] = optarg;
            break;
        case 'a':
            opt.allow_anonymous = true;
            break;
        case 'r':
            if (!parse_int(optarg, 1, 100000000, &v)) {
                fprintf(stderr, "%s: --replay-cache-size: 1..100000000\n", progname);
                return EXIT_USAGE;
            }
            cache.max = (size_t)v;
            break;
        case 'v':
            opt.verbose = true;
            break;
        case 'P':
            if (optarg[0] == '\0' || strlen(optarg) > 31 || strchr(optarg, ':')) {
                fprintf(stderr, "%s: --purpose: a purpose such as c2s\n", progname);
                return EXIT_USAGE;
            }
            opt.purpose = optarg;
            break;
        case 'N':
            if (!parse_int(optarg, 1, INT64_MAX, &opt.fixed_now)) {
                fprintf(stderr, "%s: --now: a unix time\n", progname);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s (xedge) %s\n", progname, PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || secret_file == NULL) {
        if (secret_file == NULL)
            fprintf(stderr, "%s: --secret-file is required\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (load_secret(secret_file) < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    logmsg("info", "event=start protocol=%s max_lifetime=%lld anonymous=%s",
           opt.proto == P_EJABBERD ? "ejabberd" : "jabberd2", (long long)opt.max_lifetime,
           opt.allow_anonymous ? "yes" : "no");
    rc = opt.proto == P_EJABBERD ? run_ejabberd() : run_jabberd2();
    OPENSSL_cleanse(opt.secret, sizeof(opt.secret));
    free(cache.t);
    return rc;
}
