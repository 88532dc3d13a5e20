/* xedgectl: the admin CLI of xedge. Manages the users in the LMDB store.
 *
 *   xedgectl [-c FILE] user add|passwd|del|list|show|disable|enable|expire ...
 *   xedgectl [-c FILE] user export|import ...
 *   xedgectl [-c FILE] lockout list [--json] | clear KEY|--all   (ctlclient.c)
 *   xedgectl [-c FILE] session list [--json] | kick JID|ID; stats (ctlclient.c)
 *   xedgectl [-c FILE] backend list [--json] | drain NAME | undrain NAME
 *
 * Passwords are read from the terminal without echo (asked twice), or as one
 * line from standard input when it is not a terminal; never from argv.
 * Exit codes: 0 ok, 1 the operation failed, 2 usage, 3 configuration or store. */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "import.h"
#include "userjson.h"
#include "ctlclient.h"
#include "ctlroute.h"
#include "ctltokens.h"
#include "userstore.h"
#include "xelimits.h"
#include "tokens.h"
#include "xedgectl_pg.h"

#ifndef XE_SYSCONFDIR
#define XE_SYSCONFDIR "/etc/xedge"
#endif

#define CTL_OK 0
#define CTL_FAILED 1
#define CTL_USAGE 2
#define CTL_CONFIG 3

#define CTL_PASSWORD_MAX 1024

static const char *progname = "xedgectl";

static void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
ctl_err(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: xedgectl [-c FILE] user COMMAND [ARG]\n"
               "       xedgectl [-c FILE] lockout list [--json] | clear KEY|--all\n"
               "       xedgectl [-c FILE] session list [--json] | kick JID|ID\n"
               "       xedgectl [-c FILE] stats [--json]\n"
               "       xedgectl [-c FILE] backend list [--json] | drain|undrain NAME\n"
               "       xedgectl [-c FILE] s2s list [--json]\n"
               "       xedgectl [-c FILE] reload\n"
               "       xedgectl --help | xedgectl user|lockout|session|backend|reload "
               "--help\n"
               "\n"
               "options:\n"
               "  -c, --config FILE  configuration file (default " XE_SYSCONFDIR
               "/xedge.conf)\n"
               "  -h, --help         this help\n"
               "\n"
               "Run 'xedgectl user --help' for the user commands, 'xedgectl lockout\n"
               "--help' for the brute-force lockouts of the running xedge, 'xedgectl\n"
               "session --help' for its sessions and statistics, 'xedgectl backend\n"
               "--help' for its backend servers (list, drain), 'xedgectl reload\n"
               "--help' for reloading its configuration, 'xedgectl s2s --help' for\n"
               "its server-to-server streams.\n");
}

static void
user_usage(FILE *f)
{
    fprintf(f,
            "usage: xedgectl [-c FILE] user COMMAND [ARG]\n"
            "\n"
            "commands:\n"
            "  add [--legacy-mechs] JID\n"
            "                 create a user; asks for the password\n"
            "  passwd [--legacy-mechs|--no-legacy-mechs] [--kick] JID\n"
            "                 set a new password (--kick: and end the user's live\n"
            "                 sessions)\n"
            "  del [--keep-data] JID\n"
            "                 delete a user, end its live sessions, and have the\n"
            "                 running xedge purge its data at its home server\n"
            "                 (roster, vCard, offline messages...); the name stays\n"
            "                 taken until the backend confirms (list --pending).\n"
            "                 --keep-data: no purge; on a pending name: give the\n"
            "                 purge up and free the name\n"
            "  list [--disabled] [--expired] [--pending] [DOMAIN]\n"
            "                 list the users (of one domain; only the disabled\n"
            "                 ones, only those whose password has expired;\n"
            "                 --pending: the deleted users whose purge at the\n"
            "                 backend is not confirmed yet, with its attempts)\n"
            "  show JID       show a user's record (never the keys)\n"
            "  disable JID    refuse the user's logins, end its live sessions\n"
            "  enable JID     allow them again\n"
            "  expire JID WHEN\n"
            "                 the password expires at WHEN: now, never, +DAYS,\n"
            "                 YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC); from then\n"
            "                 on the right password gets <credentials-expired/>\n"
            "                 until a new one is set (passwd clears the expiry)\n"
            "  pin JID SERVER|--none\n"
            "                 send the user's sessions to SERVER (a server of the\n"
            "                 pool of its domain) rather than to its hash choice;\n"
            "                 --none removes the pin\n"
            "  where JID      the user's home server in its pool, its pin, and why\n"
            "                 (doc/pool-routing.md)\n"
            "  tokens list JID\n"
            "                 the user's FAST tokens (in the shared database if\n"
            "                 there is one): one record per client (user agent\n"
            "                 id), never the tokens themselves\n"
            "  tokens revoke JID [USER-AGENT-ID]\n"
            "                 delete them (of one client); passwd, disable and del\n"
            "                 revoke them too\n"
            "  export [--legacy] [DOMAIN]\n"
            "                 print the users (of one domain) as JSON lines: the\n"
            "                 SCRAM secrets, never a password (--legacy: also the\n"
            "                 plaintext-equivalent of legacy-mechs users)\n"
            "  import [--replace] [--dry-run] [--legacy-mechs] [--format F]\n"
            "         [--domain D] [FILE...]\n"
            "                 add the users of each FILE (default: standard input):\n"
            "                 JSON lines as export writes them (or {\"jid\":..,\n"
            "                 \"password\":..}; contrib/prosody/prosody-export-users),\n"
            "                 XEP-0227 files (ejabberdctl export_piefxis, Prosody's\n"
            "                 prosody-migrator with the xep0227 store) or jabberd2's\n"
            "                 SQLite authreg database; F (json, xep227, jabberd2)\n"
            "                 is found from the file's first bytes unless given.\n"
            "                 SCRAM credentials are kept, plaintext passwords become\n"
            "                 SCRAM secrets (--legacy-mechs: kept for DIGEST-MD5 and\n"
            "                 CRAM-MD5 too). Existing users are kept (--replace:\n"
            "                 replaced); --dry-run checks everything, writes nothing;\n"
            "                 --domain D: for jabberd2 rows with an empty realm.\n"
            "                 A bad record is reported with its line or row and\n"
            "                 skipped; a summary ends the run (exit 1 if any failed)\n"
            "\n"
            "The password is read from the terminal without echo, twice, or as one\n"
            "line from standard input when that is not a terminal.\n"
            "--legacy-mechs keeps the password itself too, for DIGEST-MD5 and\n"
            "CRAM-MD5 (which need a plaintext-equivalent); passwd keeps the user's\n"
            "setting unless told otherwise.\n"
            "\n"
            "The running xedge is told of every change on its control socket: it\n"
            "ends the sessions (disable, del, passwd --kick) and logs the change\n"
            "(event=admin). If it cannot be told, the change is made all the same.\n"
            "\n"
            "exit status: 0 ok, 1 the operation failed (no such user, user exists),\n"
            "2 usage error, 3 configuration or user store error.\n");
}

/* ---- passwords ---------------------------------------------------------- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_changed;

static void
restore_tty_on_signal(int sig)
{
    if (tio_changed)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from FD into BUF (NUL-terminated, newline stripped). -1 with a
 * message on error. */
static int
read_line(int fd, char *buf, size_t size, size_t *len_r)
{
    size_t len = 0;
    ssize_t n;
    char c;
    int r = -1;

    for (;;) {
        n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ctl_err("cannot read the password: %s", strerror(errno));
            goto out;
        }
        if (n == 0 || c == '\n')
            break;
        if (c == '\0') {
            ctl_err("the password contains a NUL byte");
            goto out;
        }
        if (len + 1 >= size) {
            ctl_err("the password is longer than %d bytes", CTL_PASSWORD_MAX - 1);
            goto out;
        }
        buf[len++] = c;
    }
    if (len > 0 && buf[len - 1] == '\r') /* a line from a CRLF file or terminal */
        len--;
    if (n == 0 && len == 0) {
        ctl_err("no password given (end of input)");
        goto out;
    }
    buf[len] = '\0';
    *len_r = len;
    r = 0;
out:
    OPENSSL_cleanse(&c, sizeof(c));
    if (r != 0)
        OPENSSL_cleanse(buf, size);
    return r;
}

static int
prompt_no_echo(const char *prompt, char *buf, size_t size, size_t *len_r)
{
    struct termios tio;
    struct sigaction sa, old[4];
    static const int sigs[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    int r = -1, i;

    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0) {
        ctl_err("cannot read the terminal settings: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_tty_on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < 4; i++)
        sigaction(sigs[i], &sa, &old[i]);
    tio = saved_tio;
    tio.c_lflag &= ~(tcflag_t)ECHO;
    tio.c_lflag |= ECHONL;
    fputs(prompt, stderr);
    fflush(stderr);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) != 0) {
        ctl_err("cannot turn the terminal echo off: %s", strerror(errno));
        goto out;
    }
    tio_changed = 1;
    r = read_line(STDIN_FILENO, buf, size, len_r);
out:
    if (tio_changed) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        tio_changed = 0;
    }
    for (i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    return r;
}

/* The new password into BUF (CTL_PASSWORD_MAX bytes). */
static int
get_password(char *buf, size_t *len_r)
{
    char again[CTL_PASSWORD_MAX];
    size_t len = 0, len2 = 0;
    int r = -1;

    if (isatty(STDIN_FILENO)) {
        if (prompt_no_echo("New password: ", buf, CTL_PASSWORD_MAX, &len) != 0)
            goto out;
        if (prompt_no_echo("Retype new password: ", again, sizeof(again), &len2) != 0)
            goto out;
        if (len != len2 || CRYPTO_memcmp(buf, again, len) != 0) {
            ctl_err("the passwords do not match");
            goto out;
        }
    } else if (read_line(STDIN_FILENO, buf, CTL_PASSWORD_MAX, &len) != 0) {
        goto out;
    }
    if (len == 0) {
        ctl_err("an empty password is refused");
        goto out;
    }
    *len_r = len;
    r = 0;
out:
    OPENSSL_cleanse(again, sizeof(again));
    if (r != 0)
        OPENSSL_cleanse(buf, CTL_PASSWORD_MAX);
    return r;
}

/* ---- commands ----------------------------------------------------------- */

struct ctl {
    struct xe_conf *conf;
    struct xe_userstore *store;
    char jid[sizeof(((struct xe_user *)0)->jid)];
    int legacy; /* --legacy-mechs 1, --no-legacy-mechs 0, neither -1 */
    bool only_disabled, only_expired; /* list filters */
    bool pending;                     /* list --pending: the tombstones */
    bool with_legacy;                 /* export --legacy */
    int64_t expires;                  /* expire: the new time (0: never) */
    const char *pin;                  /* pin: the server ("": none) */
    bool kick;                        /* passwd --kick */
    bool keep_data;                   /* del --keep-data */
};

/* Tell the running xedge, on its control socket, of a change made here in
 * the user store (which xedgectl writes itself): it logs it (the audit
 * trail: event=admin action=ACTION jid=JID uid=...) and, with END (a
 * reason: disabled, removed, password), ends the account's live sessions.
 * The change is made whatever happens here; what could not be done is
 * said on stderr. Returns CTL_OK, or CTL_FAILED when xedge refused. */
static int
notify(const struct ctl *ctl, const char *action, const char *jid, const char *end,
       const char *detail)
{
    struct xe_buf resp;
    char *request, *err = NULL;
    const char *sock = ctl->conf->control.socket;
    int ret = CTL_OK;

    if (sock == NULL) {
        if (end != NULL)
            ctl_err("note: no control socket configured: a running xedge was not told, "
                    "and %s's live sessions go on",
                    jid);
        return CTL_OK;
    }
    xe_buf_init(&resp, 64 * 1024);
    request = xe_asprintf("admin %s %s%s%s%s", action, jid, end ? " end=" : "",
                          end ? end : "", detail ? detail : "");
    if (xe_ctlclient_request(sock, request, &resp, &err) < 0) {
        ctl_err(
            "note: the change is made in the user store, but xedge was not told (%s)%s",
            err, end ? ": if it runs, the user's live sessions go on" : "");
    } else if (resp.len >= 3 && memcmp(resp.data, "ok\n", 3) == 0) {
        if (end != NULL)
            printf("%.*s", (int)(resp.len - 3), (const char *)resp.data + 3);
    } else {
        ctl_err("the change is made in the user store, but xedge answered: %.*s",
                (int)(resp.len > 0 && resp.data[resp.len - 1] == '\n' ? resp.len - 1
                                                                      : resp.len),
                (const char *)resp.data);
        ret = CTL_FAILED;
    }
    free(err);
    free(request);
    xe_buf_free(&resp);
    return ret;
}

/* The account's FAST tokens revoked; with the database, also the kick of
 * its live sessions on every node (KICK: passwd --kick; disable and del
 * reach every node through the user's row). */
static int
account_ended(struct ctl *ctl, struct xe_ctlpg *pg, bool kick)
{
    struct xe_tokens *tokens = NULL;
    char *err = NULL;
    size_t n = 0;
    int r;

    if (pg != NULL) {
        if (xe_ctlpg_account_ended(pg, ctl->jid, kick, &n, &err) < 0) {
            ctl_err("%s", err ? err : "the user database failed");
            free(err);
            return CTL_CONFIG;
        }
    } else {
        r = xe_tokens_open(ctl->store, &tokens, &err);
        if (r == XE_US_OK)
            r = xe_tokens_revoke_user(tokens, ctl->jid, &n, &err);
        xe_tokens_close(&tokens);
        if (r != XE_US_OK) {
            ctl_err("the FAST tokens of %s could not be revoked: %s (they fail anyway: "
                    "they are bound to the old credentials)",
                    ctl->jid, err ? err : "?");
            free(err);
            return CTL_CONFIG;
        }
    }
    if (n > 0)
        fprintf(stderr, "%s: revoked the FAST tokens of %s: %zu client%s\n", progname,
                ctl->jid, n, n == 1 ? "" : "s");
    return CTL_OK;
}

/* Map a store code to an exit code, printing the message. */
static int
store_failed(int r, char **err, const char *fallback)
{
    ctl_err("%s", *err != NULL ? *err : fallback);
    free(*err);
    *err = NULL;
    switch (r) {
    case XE_US_NOTFOUND:
    case XE_US_EXISTS:
    case XE_US_TOMBSTONE:
        return CTL_FAILED;
    case XE_US_INVALID:
        return CTL_USAGE;
    default:
        return CTL_CONFIG;
    }
}

static int
get_user(struct ctl *ctl, struct xe_user *user)
{
    char *err = NULL;
    int r;

    r = xe_userstore_get(ctl->store, ctl->jid, user, &err);
    if (r == XE_US_NOTFOUND) {
        ctl_err("no such user: %s", ctl->jid);
        free(err);
        return CTL_FAILED;
    }
    if (r != XE_US_OK)
        return store_failed(r, &err, "cannot read the user");
    return CTL_OK;
}

static unsigned
iterations(const struct ctl *ctl)
{
    unsigned it = ctl->conf->scram_iterations;

    return it == 0 ? XE_DEF_SCRAM_ITERATIONS : it;
}

static int
cmd_add_passwd(struct ctl *ctl, bool add)
{
    struct xe_user *user = NULL;
    char password[CTL_PASSWORD_MAX], *err = NULL;
    const char *domain = strchr(ctl->jid, '@') + 1;
    size_t len = 0;
    int r, ret = CTL_CONFIG;

    if ((user = calloc(1, sizeof(*user))) == NULL) {
        ctl_err("out of memory");
        goto out;
    }
    if (add) {
        r = xe_userstore_get(ctl->store, ctl->jid, user, &err);
        if (r == XE_US_OK) {
            ctl_err("user %s already exists", ctl->jid);
            ret = CTL_FAILED;
            goto out;
        }
        if (r != XE_US_NOTFOUND) {
            ret = store_failed(r, &err, "cannot read the user");
            goto out;
        }
        {
            struct xe_tombstone t;
            if (xe_userstore_tomb_get(ctl->store, ctl->jid, &t, NULL) == XE_US_OK) {
                ctl_err(
                    "user %s was deleted and its data at the backend is not purged yet "
                    "(attempts: %u%s%s): the running xedge retries the purge, after "
                    "which the name is free (xedgectl user list --pending); to give "
                    "the purge up and free the name now: xedgectl user del --keep-data "
                    "%s",
                    ctl->jid, t.attempts, t.error[0] ? ", last error: " : "", t.error,
                    ctl->jid);
                ret = CTL_FAILED;
                goto out;
            }
        }
        if (xe_conf_domain(ctl->conf, domain) == NULL)
            ctl_err("warning: the domain %s is not served by this configuration", domain);
        memset(user, 0, sizeof(*user));
        snprintf(user->jid, sizeof(user->jid), "%s", ctl->jid);
        user->created = (int64_t)time(NULL);
    } else if ((ret = get_user(ctl, user)) != CTL_OK) {
        goto out;
    }
    ret = CTL_FAILED;
    if (get_password(password, &len) != 0)
        goto out;
    r = xe_user_set_password(user, password, len, iterations(ctl));
    /* the plaintext-equivalent of the legacy mechanisms: only when asked for
     * (or kept enabled by an earlier --legacy-mechs) */
    if (r == XE_US_OK && (ctl->legacy == 1 || (ctl->legacy == -1 && user->legacy)))
        r = xe_user_set_legacy(user, password, len);
    else if (r == XE_US_OK)
        r = xe_user_set_legacy(user, NULL, 0);
    OPENSSL_cleanse(password, sizeof(password));
    if (r != XE_US_OK) {
        ctl_err("cannot derive the SCRAM secrets");
        ret = CTL_CONFIG;
        goto out;
    }
    user->modified = (int64_t)time(NULL);
    user->expires = 0; /* a new password: whatever expired did with the old one */
    r = xe_userstore_put(ctl->store, user, add, &err);
    if (r != XE_US_OK) {
        ret = store_failed(r, &err, "cannot write the user");
        goto out;
    }
    ret = notify(ctl, add ? "user-add" : "user-passwd", ctl->jid,
                 !add && ctl->kick ? "password" : NULL,
                 user->legacy ? " legacy_mechs=yes" : " legacy_mechs=no");
out:
    OPENSSL_cleanse(password, sizeof(password));
    if (user != NULL) {
        OPENSSL_cleanse(user, sizeof(*user));
        free(user);
    }
    free(err);
    return ret;
}

static void
iso8601(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

/* del: the user goes, and a tombstone stays until the running xedge has
 * purged the user's data at its home server (the daemon does the purge: it
 * is told here, and retries; see purge.h). --keep-data: the old deletion,
 * no purge; on a name that has only a tombstone, it gives the purge up. */
static int
cmd_del(struct ctl *ctl)
{
    struct xe_tombstone *t = NULL;
    struct xe_user *user = NULL;
    char *err = NULL;
    int r, ret = CTL_CONFIG;

    if ((t = calloc(1, sizeof(*t))) == NULL || (user = malloc(sizeof(*user))) == NULL) {
        ctl_err("out of memory");
        goto out;
    }
    r = xe_userstore_get(ctl->store, ctl->jid, user, &err);
    if (r == XE_US_NOTFOUND && ctl->keep_data) {
        free(err);
        err = NULL;
        r = xe_userstore_tomb_del(ctl->store, ctl->jid, &err);
        if (r == XE_US_OK) {
            fprintf(stderr,
                    "%s: the purge of %s is given up: its data at the backend stays, and "
                    "the name is free\n",
                    progname, ctl->jid);
            ret =
                notify(ctl, "user-del", ctl->jid, NULL, " keep_data=yes purge=given-up");
            goto out;
        }
    }
    if (r == XE_US_NOTFOUND) {
        if (xe_userstore_tomb_get(ctl->store, ctl->jid, t, NULL) == XE_US_OK)
            ctl_err("user %s is deleted already; the purge of its data at the backend is "
                    "pending (xedgectl user list --pending)",
                    ctl->jid);
        else
            ctl_err("no such user: %s", ctl->jid);
        ret = CTL_FAILED;
        goto out;
    }
    if (r != XE_US_OK) {
        ret = store_failed(r, &err, "cannot read the user");
        goto out;
    }
    if (ctl->keep_data) {
        r = xe_userstore_del(ctl->store, ctl->jid, &err);
    } else {
        snprintf(t->jid, sizeof(t->jid), "%s", ctl->jid);
        snprintf(t->pin, sizeof(t->pin), "%s", user->pin);
        t->deleted = t->next = (int64_t)time(NULL);
        r = xe_userstore_bury(ctl->store, t, &err);
    }
    if (r == XE_US_NOTFOUND) {
        ctl_err("no such user: %s", ctl->jid);
        ret = CTL_FAILED;
    } else if (r != XE_US_OK) {
        ret = store_failed(r, &err, "cannot delete the user");
    } else {
        ret = notify(ctl, "user-del", ctl->jid, "removed",
                     ctl->keep_data ? " keep_data=yes" : " purge=pending");
    }
out:
    if (user != NULL) {
        OPENSSL_cleanse(user, sizeof(*user));
        free(user);
    }
    free(t);
    free(err);
    return ret;
}

static int
pending_cb(const struct xe_tombstone *t, void *ctx)
{
    char deleted[64], next[64];

    (void)ctx;
    iso8601(t->deleted, deleted, sizeof(deleted));
    iso8601(t->next, next, sizeof(next));
    printf("%s deleted=%s pin=%s attempts=%u next=%s error=\"%s\"\n", t->jid, deleted,
           t->pin[0] ? t->pin : "-", t->attempts, t->attempts ? next : "-", t->error);
    return 0;
}

static bool
expired(const struct xe_user *user)
{
    return user->expires > 0 && (int64_t)time(NULL) >= user->expires;
}

/* WHEN of 'user expire': now, never, +DAYS, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ */
static int
parse_when(const char *when, int64_t *t_r)
{
    struct tm tm;
    const char *end;
    char *e;

    if (strcmp(when, "now") == 0) {
        *t_r = (int64_t)time(NULL);
        return 0;
    }
    if (strcmp(when, "never") == 0) {
        *t_r = 0;
        return 0;
    }
    if (when[0] == '+') {
        unsigned long days;
        errno = 0;
        days = strtoul(when + 1, &e, 10);
        if (errno != 0 || e == when + 1 || *e != '\0' || days > 100000)
            return -1;
        *t_r = (int64_t)time(NULL) + (int64_t)days * 86400;
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    end = strptime(when, "%Y-%m-%d", &tm);
    if (end != NULL && *end == 'T')
        end = strptime(end, "T%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0' || tm.tm_year < 70)
        return -1;
    *t_r = (int64_t)timegm(&tm);
    return *t_r > 0 ? 0 : -1;
}

/* The server name of a pin: one of the servers of the pool of the JID's
 * domain (a pin to anything else would never be honoured). */
static int
check_pin(const struct ctl *ctl)
{
    const char *domain = strchr(ctl->jid, '@') + 1;
    const struct xe_domain_conf *d = xe_conf_domain(ctl->conf, domain);

    if (ctl->pin[0] == '\0')
        return CTL_OK;
    if (d == NULL) {
        ctl_err("user pin: the domain %s is not served by this configuration", domain);
        return CTL_FAILED;
    }
    for (size_t i = 0; i < d->pool->n_servers; i++)
        if (strcmp(d->pool->servers[i].name, ctl->pin) == 0)
            return CTL_OK;
    ctl_err("user pin: pool %s of %s has no server named '%s'", d->pool->name, domain,
            ctl->pin);
    return CTL_FAILED;
}

enum change { CH_DISABLE, CH_ENABLE, CH_EXPIRE, CH_PIN };

/* disable, enable, expire and pin: change one field of a user's record */
static int
cmd_change(struct ctl *ctl, enum change what)
{
    static const char *const actions[] = {"user-disable", "user-enable", "user-expire",
                                          "user-pin"};
    struct xe_user *user = NULL;
    char *err = NULL, detail[96] = "";
    int r, ret = CTL_CONFIG;

    if ((user = malloc(sizeof(*user))) == NULL) {
        ctl_err("out of memory");
        goto out;
    }
    if ((ret = get_user(ctl, user)) != CTL_OK ||
        (what == CH_PIN && (ret = check_pin(ctl)) != CTL_OK))
        goto out;
    if (what == CH_EXPIRE)
        snprintf(detail, sizeof(detail), " expires=%lld", (long long)ctl->expires);
    else if (what == CH_PIN)
        snprintf(detail, sizeof(detail), " pin=%s", ctl->pin[0] ? ctl->pin : "-");
    switch (what) {
    case CH_DISABLE:
    case CH_ENABLE:
        if (user->disabled == (what == CH_DISABLE)) {
            /* nothing to change in the store; a disabled user's sessions
             * (say, from before xedge was restarted) end all the same */
            ret = notify(ctl, actions[what], ctl->jid,
                         what == CH_DISABLE ? "disabled" : NULL, " unchanged=yes");
            goto out;
        }
        user->disabled = what == CH_DISABLE;
        break;
    case CH_EXPIRE:
        user->expires = ctl->expires;
        break;
    case CH_PIN:
        snprintf(user->pin, sizeof(user->pin), "%s", ctl->pin);
        break;
    }
    user->modified = (int64_t)time(NULL);
    r = xe_userstore_put(ctl->store, user, false, &err);
    if (r != XE_US_OK)
        ret = store_failed(r, &err, "cannot write the user");
    else
        ret = notify(ctl, actions[what], ctl->jid, what == CH_DISABLE ? "disabled" : NULL,
                     detail);
out:
    if (user != NULL) {
        OPENSSL_cleanse(user, sizeof(*user));
        free(user);
    }
    free(err);
    return ret;
}

static int
cmd_show(struct ctl *ctl)
{
    struct xe_user *user = NULL;
    char created[64], modified[64], expires[64];
    int ret = CTL_CONFIG, h;
    bool any = false;

    if ((user = malloc(sizeof(*user))) == NULL) {
        ctl_err("out of memory");
        goto out;
    }
    if ((ret = get_user(ctl, user)) != CTL_OK)
        goto out;
    iso8601(user->created, created, sizeof(created));
    iso8601(user->modified, modified, sizeof(modified));
    printf("jid: %s\ncreated: %s\nmodified: %s\ndisabled: %s\npin: %s\n", user->jid,
           created, modified, user->disabled ? "yes" : "no",
           user->pin[0] != '\0' ? user->pin : "(none)");
    if (user->expires > 0)
        iso8601(user->expires, expires, sizeof(expires));
    printf("password expires: %s%s\n", user->expires > 0 ? expires : "never",
           expired(user) ? " (expired)" : "");
    for (h = 0; h < XE_SCRAM_N; h++) {
        if (!user->scram[h].present)
            continue;
        printf("%s: %u iterations\n", xe_scram_hash_name((enum xe_scram_hash)h),
               user->scram[h].iterations);
        any = true;
    }
    if (!any)
        printf("password: not set\n");
    printf("legacy mechanisms: %s\n",
           user->legacy ? "yes (DIGEST-MD5, CRAM-MD5: the password is kept)" : "no");
out:
    if (user != NULL) {
        OPENSSL_cleanse(user, sizeof(*user));
        free(user);
    }
    return ret;
}

static int
list_cb(const struct xe_user *user, void *ctx)
{
    const struct ctl *ctl = ctx;

    if ((ctl->only_disabled && !user->disabled) || (ctl->only_expired && !expired(user)))
        return 0;
    printf("%s%s%s\n", user->jid, user->disabled ? " (disabled)" : "",
           expired(user) ? " (expired)" : "");
    return 0;
}

static int
cmd_list(struct ctl *ctl, const char *domain)
{
    char *err = NULL;
    int r;

    if (ctl->pending)
        r = xe_userstore_tomb_foreach(ctl->store, domain, pending_cb, ctl, &err);
    else
        r = xe_userstore_foreach(ctl->store, domain, list_cb, ctl, &err);
    if (r != XE_US_OK)
        return store_failed(r, &err, "cannot list the users");
    if (fflush(stdout) != 0) {
        ctl_err("cannot write the list: %s", strerror(errno));
        return CTL_FAILED;
    }
    return CTL_OK;
}

static int
cmd_export(struct ctl *ctl, const char *domain)
{
    char *err = NULL;
    int r = xe_userjson_export(ctl->store, domain, ctl->with_legacy, stdout, &err);

    if (r != XE_US_OK)
        return store_failed(r, &err, "cannot export the users");
    return CTL_OK;
}

/* ---- main --------------------------------------------------------------- */

enum cmd {
    CMD_ADD,
    CMD_PASSWD,
    CMD_DEL,
    CMD_LIST,
    CMD_SHOW,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_EXPIRE,
    CMD_PIN,
    CMD_EXPORT,
    CMD_IMPORT
};

static const char *const cmd_names[] = {"add",  "passwd",  "del",    "list",
                                        "show", "disable", "enable", "expire",
                                        "pin",  "export",  "import"};

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = XE_SYSCONFDIR "/xedge.conf";
    const char *arg = NULL;
    char domain[sizeof(((struct xe_user *)0)->jid) + 2];
    struct ctl ctl;
    char *err = NULL;
    int opt, i, ret = CTL_USAGE, r;
    enum cmd cmd = CMD_ADD;
    bool found = false;
    int import_argc = 0;
    char **import_argv = NULL;
    struct xe_ctlpg *pg = NULL;

    memset(&ctl, 0, sizeof(ctl));
    umask(077);
    while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            ret = CTL_OK;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc && strcmp(argv[optind], "lockout") == 0) {
        ret = xe_ctlclient_lockout(config, argc - optind, argv + optind);
        goto out;
    }
    if (optind < argc &&
        (strcmp(argv[optind], "db") == 0 || strcmp(argv[optind], "cluster") == 0)) {
        ret = xe_ctlpg_main(config, argc - optind, argv + optind); /* xedgectl_pg.c */
        goto out;
    }
    if (optind < argc && strcmp(argv[optind], "backend") == 0) {
        ret = xe_ctlclient_backend(config, argc - optind, argv + optind);
        goto out;
    }
    if (optind < argc && strcmp(argv[optind], "s2s") == 0) {
        ret = xe_ctlclient_s2s(config, argc - optind, argv + optind);
        goto out;
    }
    if (optind < argc && strcmp(argv[optind], "reload") == 0) {
        ret = xe_ctlclient_reload(config, argc - optind, argv + optind);
        goto out;
    }
    if (optind < argc &&
        (strcmp(argv[optind], "session") == 0 || strcmp(argv[optind], "stats") == 0)) {
        ret = xe_ctlclient_session(config, argc - optind, argv + optind);
        goto out;
    }
    if (optind + 1 < argc && strcmp(argv[optind], "user") == 0 &&
        strcmp(argv[optind + 1], "tokens") == 0) {
        ret = xe_ctltokens_main(config, argc - optind - 2, argv + optind + 2);
        goto out;
    }
    if (optind + 1 < argc && strcmp(argv[optind], "user") == 0 &&
        strcmp(argv[optind + 1], "where") == 0) {
        ret = xe_ctlroute_where(config, argc - optind - 2, argv + optind + 2);
        goto out;
    }
    if (optind >= argc || strcmp(argv[optind], "user") != 0) {
        if (optind < argc)
            ctl_err("unknown command '%s' (try 'xedgectl --help')", argv[optind]);
        else
            usage(stderr);
        goto out;
    }
    optind++;
    for (i = optind; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            user_usage(stdout);
            ret = CTL_OK;
            goto out;
        }
    }
    if (optind >= argc) {
        user_usage(stderr);
        goto out;
    }
    for (i = 0; i < (int)(sizeof(cmd_names) / sizeof(cmd_names[0])); i++) {
        if (strcmp(argv[optind], cmd_names[i]) == 0) {
            cmd = (enum cmd)i;
            found = true;
        }
    }
    if (!found) {
        ctl_err("unknown user command '%s' (try 'xedgectl user --help')", argv[optind]);
        goto out;
    }
    optind++;
    ctl.legacy = -1;
    if (cmd == CMD_ADD || cmd == CMD_PASSWD) {
        /* --legacy-mechs / --no-legacy-mechs, anywhere after the command */
        int j = optind;
        for (i = optind; i < argc; i++) {
            if (strcmp(argv[i], "--legacy-mechs") == 0)
                ctl.legacy = 1;
            else if (strcmp(argv[i], "--no-legacy-mechs") == 0)
                ctl.legacy = 0;
            else if (cmd == CMD_PASSWD && strcmp(argv[i], "--kick") == 0)
                ctl.kick = true;
            else
                argv[j++] = argv[i];
        }
        argc = j;
    }
    if (cmd == CMD_DEL) {
        int j = optind;
        for (i = optind; i < argc; i++) {
            if (strcmp(argv[i], "--keep-data") == 0)
                ctl.keep_data = true;
            else
                argv[j++] = argv[i];
        }
        argc = j;
    }
    if (cmd == CMD_IMPORT) { /* import.c parses its own arguments */
        import_argc = argc - optind;
        import_argv = argv + optind;
        if ((ret = xe_import_check_args(import_argc, import_argv, progname)) != CTL_OK)
            goto out;
        ret = CTL_USAGE;
        argc = optind;
    }
    if (cmd == CMD_LIST || cmd == CMD_EXPORT) {
        /* their flags, anywhere after the command */
        int j = optind;
        for (i = optind; i < argc; i++) {
            if (cmd == CMD_LIST && strcmp(argv[i], "--disabled") == 0)
                ctl.only_disabled = true;
            else if (cmd == CMD_LIST && strcmp(argv[i], "--expired") == 0)
                ctl.only_expired = true;
            else if (cmd == CMD_LIST && strcmp(argv[i], "--pending") == 0)
                ctl.pending = true;
            else if (cmd == CMD_EXPORT && strcmp(argv[i], "--legacy") == 0)
                ctl.with_legacy = true;
            else
                argv[j++] = argv[i];
        }
        argc = j;
    }
    if (cmd == CMD_EXPIRE) {
        if (argc - optind != 2) {
            ctl_err(
                "user expire: a JID and WHEN are required (try 'xedgectl user --help')");
            goto out;
        }
        if (parse_when(argv[argc - 1], &ctl.expires) != 0) {
            ctl_err("user expire: bad WHEN '%s' (now, never, +DAYS, YYYY-MM-DD or "
                    "YYYY-MM-DDTHH:MM:SSZ)",
                    argv[argc - 1]);
            goto out;
        }
        argc--;
    }
    if (cmd == CMD_PIN) {
        if (argc - optind != 2) {
            ctl_err(
                "user pin: a JID and a SERVER (or --none) are required (try 'xedgectl "
                "user --help')");
            goto out;
        }
        ctl.pin = strcmp(argv[argc - 1], "--none") == 0 ? "" : argv[argc - 1];
        if (strlen(ctl.pin) >= sizeof(((struct xe_user *)0)->pin) ||
            strpbrk(ctl.pin, " \t\r\n") != NULL) {
            ctl_err("user pin: bad server name '%s'", ctl.pin);
            goto out;
        }
        argc--;
    }
    bool optional_arg = cmd == CMD_LIST || cmd == CMD_EXPORT || cmd == CMD_IMPORT;
    if (argc - optind > 1 || (!optional_arg && argc - optind != 1)) {
        ctl_err("user %s: %s (try 'xedgectl user --help')", cmd_names[cmd],
                argc - optind > 1 ? "too many arguments"
                                  : "a JID (localpart@domain) is required");
        goto out;
    }
    arg = optind < argc ? argv[optind] : NULL;
    const char *why = "";
    if (cmd == CMD_IMPORT) {
        /* a file name, not a JID */
    } else if ((cmd == CMD_LIST || cmd == CMD_EXPORT) && arg != NULL) {
        /* Check the domain as the domain part of a JID. */
        if (strlen(arg) + 3 > sizeof(domain)) {
            ctl_err("invalid domain '%s'", arg);
            goto out;
        }
        snprintf(domain, sizeof(domain), "x@%s", arg);
        if (xe_jid_normalize(domain, sizeof(domain), &why) != 0) {
            ctl_err("invalid domain '%s': %s", arg, why);
            goto out;
        }
    } else if (arg != NULL) {
        if (strlen(arg) >= sizeof(ctl.jid)) {
            ctl_err("invalid JID: too long");
            goto out;
        }
        snprintf(ctl.jid, sizeof(ctl.jid), "%s", arg);
        if (xe_jid_normalize(ctl.jid, sizeof(ctl.jid), &why) != 0) {
            ctl_err("invalid JID '%s': %s (a bare JID localpart@domain is required, "
                    "its localpart valid under nodeprep, RFC 6122)",
                    arg, why);
            goto out;
        }
    }

    ret = CTL_CONFIG;
    if (xe_conf_load(config, &ctl.conf, &err) != 0) {
        ctl_err("%s", err != NULL ? err : "cannot load the configuration");
        goto out;
    }
    if (ctl.conf->user_store == NULL) {
        ctl_err("%s: no user_store path", config);
        goto out;
    }
    if (ctl.conf->user_store_database != NULL) /* several nodes: xedgectl_pg.h */
        r = xe_ctlpg_begin(ctl.conf, ctl.jid[0] ? ctl.jid : NULL, &ctl.store, &pg,
                           &err) == 0
                ? XE_US_OK
                : XE_US_IO;
    else
        r = xe_userstore_open(ctl.conf->user_store, false, ctl.conf->user_store_map_mb,
                              &ctl.store, &err);
    if (r != XE_US_OK) {
        ctl_err("%s", err != NULL ? err : "cannot open the user store");
        goto out;
    }

    switch (cmd) {
    case CMD_ADD:
        ret = cmd_add_passwd(&ctl, true);
        break;
    case CMD_PASSWD:
        ret = cmd_add_passwd(&ctl, false);
        break;
    case CMD_DEL:
        ret = cmd_del(&ctl);
        break;
    case CMD_LIST:
        ret = cmd_list(&ctl, arg != NULL ? domain + 2 : NULL);
        break;
    case CMD_SHOW:
        ret = cmd_show(&ctl);
        break;
    case CMD_DISABLE:
        ret = cmd_change(&ctl, CH_DISABLE);
        break;
    case CMD_ENABLE:
        ret = cmd_change(&ctl, CH_ENABLE);
        break;
    case CMD_EXPIRE:
        ret = cmd_change(&ctl, CH_EXPIRE);
        break;
    case CMD_PIN:
        ret = cmd_change(&ctl, CH_PIN);
        break;
    case CMD_EXPORT:
        ret = cmd_export(&ctl, arg != NULL ? domain + 2 : NULL);
        break;
    case CMD_IMPORT: {
        struct xe_import_stats st = {0};
        char detail[160];

        ret = xe_import_cmd(ctl.store, iterations(&ctl), import_argc, import_argv,
                            progname, &st);
        snprintf(detail, sizeof(detail), " added=%lu replaced=%lu kept=%lu failed=%lu",
                 st.added, st.replaced, st.skipped, st.failed);
        if (st.added + st.replaced > 0)
            (void)notify(&ctl, "user-import", "-", NULL, detail);
        break;
    }
    default:
        break;
    }
    /* a new password, a disabled or deleted account: its FAST tokens go
     * (the credentials' fingerprint already makes them fail; a disabled
     * user enabled again must not find them working) */
    if (ret == CTL_OK && (cmd == CMD_PASSWD || cmd == CMD_DEL || cmd == CMD_DISABLE))
        ret = account_ended(&ctl, pg, cmd == CMD_PASSWD && ctl.kick);
out:
    if (pg != NULL && xe_ctlpg_end(&pg, &ctl.store, ret == CTL_OK, &err) < 0) {
        ctl_err("%s (nothing was changed in the user database)", err);
        ret = CTL_FAILED;
    }
    xe_userstore_close(&ctl.store);
    if (ctl.conf != NULL)
        xe_conf_free(&ctl.conf);
    free(err);
    return ret;
}
