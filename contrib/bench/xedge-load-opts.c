/* xedge-load's options and --help (see xedge-load.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xedge-load.h"

void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: xedge-load [OPTIONS]\n"
        "\n"
        "Opens --sessions XMPP client sessions to --host:--port (TLS, SASL, resource\n"
        "binding), holds them, optionally sends messages between them, and reports.\n"
        "Users are --user-format with %%u replaced by the session index plus\n"
        "--user-offset (bench0, bench1, ...); they must exist on the server.\n"
        "\n"
        "Target:\n"
        "  --host ADDR          IPv4 address of the server          (default 127.0.0.1)\n"
        "  --port N             its port                            (default 5222)\n"
        "  --tls MODE           starttls, direct (Direct TLS, ALPN xmpp-client) or\n"
        "                       none (plaintext, e.g. a backend)    (default starttls)\n"
        "  --domain D           the stream's to= and the TLS SNI    (default "
        "example.test)\n"
        "  --cafile FILE        verify the server's certificate against FILE for\n"
        "                       --domain (default: no verification)\n"
        "Login:\n"
        "  --mech M             SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN (Cyrus SASL's\n"
        "                       client; must be offered)            (default "
        "SCRAM-SHA-1)\n"
        "  --user-format FMT    user name, %%u = index              (default bench%%u)\n"
        "  --user-offset N      added to the index                  (default 0)\n"
        "  --password FMT       password, %%u = index (or one for all) (default\n"
        "                       bench-password)\n"
        "  --assertion-secret FILE  with --mech PLAIN: the password of each login is\n"
        "                       a fresh xedge identity assertion for user@domain\n"
        "                       signed with the secret in FILE (doc/assertion.md):\n"
        "                       log in directly to a backend behind xedge\n"
        "  --presence           send initial presence after binding\n"
        "  --sasl2              log in with SASL2 (XEP-0388), without a stream\n"
        "                       restart; no resource binding unless --bind2\n"
        "  --bind2              with --sasl2: an inline Bind2 request (XEP-0386)\n"
        "  --close-after-login  each session, once logged in, sends </stream:stream>\n"
        "                       and closes after the server's (at most %.0f s)\n"
        "Re-logins (FAST, XEP-0484, on a resumed TLS 1.3 session):\n"
        "  --fast MECH          HT-SHA-256-NONE or HT-SHA-256-EXPR; implies --sasl2:\n"
        "                       each first login (--mech SCRAM-*) requests a token\n"
        "                       for MECH, with a user agent id of its own; the token\n"
        "                       and the TLS session of the newest ticket are kept\n"
        "  --relogin WHEN       after the first logins (and --hold): on SIGUSR1\n"
        "                       (WHEN = signal) or WHEN seconds later, every session\n"
        "                       with a token logs in again: held ones are closed\n"
        "                       first, ones the server closed meanwhile (a restart)\n"
        "                       are not failures; a TLS resumption with the kept\n"
        "                       session and MECH with the token (the server's HMAC\n"
        "                       checked). The first logins' figures are printed as\n"
        "                       FIRST_*, then the report's figures are the re-logins'\n"
        "  --relogin-concurrency K  re-logins in flight at most (default --concurrency)\n"
        "                       (held sessions: --hold again after the re-logins)\n"
        "  --fail-list N        print at most N RELOGIN_FAIL lines (default 100)\n"
        "Load:\n"
        "  --sessions N         sessions to open (at most %d)     (default 100)\n"
        "  --rate R             new sessions per second, 0 = as fast as\n"
        "                       --concurrency allows                (default 0)\n"
        "  --concurrency C      logins in flight at most            (default 50)\n"
        "  --pause-at N         once N logins are done (none in flight), print\n"
        "                       PAUSE_LOGINS_OK= and PHASE=paused, wait --pause\n"
        "                       seconds, print PHASE=resumed and go on (a checkpoint\n"
        "                       for measuring the server; not counted in logins/s)\n"
        "  --pause S            the pause's length                  (default 0)\n"
        "  --hold S             seconds to hold the sessions idle after the logins,\n"
        "                       before the messages                 (default 0)\n"
        "  --msg-at T           and start the messages at unix time T (seconds, with\n"
        "                       a fraction) at the earliest: two runs side by side\n"
        "                       send at the same time (default: right after --hold)\n"
        "  --msg-rate R         messages per second in total, 0 = none (default 0)\n"
        "  --msg-duration S     seconds of messages                 (default 5)\n"
        "  --msg-pairs          session 2k sends to 2k+1 and back; default: each\n"
        "                       session sends to its own full JID\n"
        "Sources:\n"
        "  --source ADDR        first local IPv4 address to bind (default: 127.0.0.1\n"
        "                       if --host is in 127.0.0.0/8, else none: the kernel's)\n"
        "  --sources N          use N consecutive addresses from --source, bound\n"
        "                       before connect with IP_BIND_ADDRESS_NO_PORT, so more\n"
        "                       sessions than one address has ports (default: one per\n"
        "                       20000 sessions; at most %d)\n"
        "Bounds:\n"
        "  --login-timeout S    a login not done in S seconds fails (default 30)\n"
        "  --msg-timeout S      wait at most S seconds for the last messages (default "
        "10)\n"
        "  --duration S         the whole run stops after S seconds, whatever is left\n"
        "                       (default 120, at most %.0f)\n"
        "Output:\n"
        "  --graceful-close     at the end, send </stream:stream> and close normally;\n"
        "                       default: close with a reset (SO_LINGER 0), so that\n"
        "                       no TIME_WAIT is left on the machine's ports\n"
        "  --quiet              no progress or summary on stderr\n"
        "  -h, --help           this help\n"
        "\n"
        "Stdout: PHASE=paused and PHASE=resumed (with --pause-at), PHASE=logged_in\n"
        "(all logins settled), PHASE=hold_done,\n"
        "PHASE=messages_done as they happen, then KEY=value lines: SESSIONS_TARGET,\n"
        "SESSIONS_STARTED, LOGINS_OK, LOGINS_FAILED, SESSIONS_HELD, LOGIN_SECONDS,\n"
        "LOGINS_PER_S, LOGIN_P50_MS, LOGIN_P99_MS, LOGIN_MAX_MS, MSG_SENT, "
        "MSG_RECEIVED,\n"
        "MSG_PER_S, MSG_RTT_P50_US, MSG_RTT_P99_US, MSG_RTT_P999_US, MSG_RTT_MAX_US, "
        "ERRORS_<KIND> for\n"
        "each kind (CONNECT, TLS, STREAM_ERROR, NO_STARTTLS, MECH_NOT_OFFERED,\n"
        "SASL_CLIENT, AUTH_FAILED, BIND, PARSE, CLOSED, LOGIN_TIMEOUT, WRITE,\n"
        "MSG_ERROR, MSG_LOST) and, for each kind that happened, WHY_<KIND> (the first\n"
        "such failure's detail, e.g. the stream error's condition), ERRORS,\n"
        "ELAPSED_S, INTERRUPTED. With --relogin: PHASE=relogin and PHASE=relogged_in,\n"
        "FIRST_LOGINS_OK, FIRST_LOGINS_FAILED, FIRST_LOGIN_SECONDS, "
        "FIRST_ERRORS_<KIND>,\n"
        "FIRST_WHY_<KIND>, FIRST_ERRORS (the first logins), RELOGIN_FAIL=session N:\n"
        "kind: why (each failed re-login, as it happens), then the report with\n"
        "RELOGINS_STARTED, RELOGINS_RESUMED (TLS handshakes resumed),\n"
        "RELOGINS_SKIPPED (no token), SESSIONS_LOST (held sessions the server\n"
        "closed before the re-logins). Stderr: progress every\n"
        "5 s and a human summary. SIGINT stops the run and reports.\n"
        "Exit status: 0 if every session logged in and every message came back,\n"
        "1 otherwise, 2 on a usage error.\n",
        XL_CLOSE_WAIT_S, XL_MAX_SESSIONS, XL_MAX_SOURCES, XL_MAX_DURATION);
}

static double
num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi || d != d) {
        fprintf(stderr, "xedge-load: bad %s '%s' (%g..%g)\n", opt, v, lo, hi);
        exit(2);
    }
    return d;
}

void
parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name)                                                                        \
    (!strcmp(a, name) &&                                                                 \
     (v || (fprintf(stderr, "xedge-load: %s needs a value\n", a), exit(2), 0)) && ++i)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--presence"))
            o.presence = 1;
        else if (!strcmp(a, "--msg-pairs"))
            o.msg_pairs = 1;
        else if (!strcmp(a, "--quiet"))
            o.quiet = 1;
        else if (!strcmp(a, "--graceful-close"))
            o.graceful = 1;
        else if (!strcmp(a, "--sasl2"))
            o.sasl2 = 1;
        else if (!strcmp(a, "--bind2"))
            o.bind2 = 1;
        else if (!strcmp(a, "--close-after-login"))
            o.close_after = 1;
        else if (ARG("--fast")) {
            if (strcmp(v, "HT-SHA-256-NONE") && strcmp(v, "HT-SHA-256-EXPR")) {
                fprintf(stderr,
                        "xedge-load: --fast: HT-SHA-256-NONE or HT-SHA-256-EXPR\n");
                exit(2);
            }
            o.fast = v;
            o.sasl2 = 1;
        } else if (ARG("--relogin")) {
            o.relogin = !strcmp(v, "signal") ? 1 : 2;
            if (o.relogin == 2)
                o.relogin_after = num(a, v, 0, XL_MAX_DURATION);
        } else if (ARG("--relogin-concurrency"))
            o.relogin_conc = (unsigned)num(a, v, 1, XL_MAX_SESSIONS);
        else if (ARG("--fail-list"))
            o.fail_list = (unsigned)num(a, v, 0, XL_MAX_SESSIONS);
        else if (ARG("--host"))
            o.host = v;
        else if (ARG("--port"))
            o.port = (int)num(a, v, 1, 65535);
        else if (ARG("--tls")) {
            if (!strcmp(v, "starttls"))
                o.mode = M_STARTTLS;
            else if (!strcmp(v, "direct"))
                o.mode = M_DIRECT;
            else if (!strcmp(v, "none"))
                o.mode = M_PLAIN;
            else {
                fprintf(stderr, "xedge-load: --tls: starttls, direct or none\n");
                exit(2);
            }
        } else if (ARG("--domain"))
            o.domain = v;
        else if (ARG("--cafile"))
            o.cafile = v;
        else if (ARG("--mech")) {
            if (strcmp(v, "SCRAM-SHA-1") && strcmp(v, "SCRAM-SHA-256") &&
                strcmp(v, "PLAIN")) {
                fprintf(stderr,
                        "xedge-load: --mech: SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN\n");
                exit(2);
            }
            o.mech = v;
        } else if (ARG("--user-format"))
            o.user_fmt = v;
        else if (ARG("--user-offset"))
            o.user_offset = (unsigned)num(a, v, 0, 1e9);
        else if (ARG("--assertion-secret"))
            o.assertion_secret = v;
        else if (ARG("--password"))
            o.pass_fmt = v;
        else if (ARG("--sessions"))
            o.sessions = (unsigned)num(a, v, 1, XL_MAX_SESSIONS);
        else if (ARG("--rate"))
            o.rate = num(a, v, 0, 1e6);
        else if (ARG("--concurrency"))
            o.concurrency = (unsigned)num(a, v, 1, XL_MAX_SESSIONS);
        else if (ARG("--pause-at"))
            o.pause_at = (unsigned)num(a, v, 0, XL_MAX_SESSIONS);
        else if (ARG("--pause"))
            o.pause = num(a, v, 0, XL_MAX_DURATION);
        else if (ARG("--msg-at"))
            o.msg_at = num(a, v, 0, 1e11);
        else if (ARG("--hold"))
            o.hold = num(a, v, 0, XL_MAX_DURATION);
        else if (ARG("--msg-rate"))
            o.msg_rate = num(a, v, 0, 1e7);
        else if (ARG("--msg-duration"))
            o.msg_duration = num(a, v, 0, XL_MAX_DURATION);
        else if (ARG("--source"))
            o.source = v;
        else if (ARG("--sources"))
            o.sources = (unsigned)num(a, v, 1, XL_MAX_SOURCES);
        else if (ARG("--login-timeout"))
            o.login_timeout = num(a, v, 0.1, XL_MAX_DURATION);
        else if (ARG("--msg-timeout"))
            o.msg_timeout = num(a, v, 0.1, XL_MAX_DURATION);
        else if (ARG("--duration"))
            o.duration = num(a, v, 0.1, XL_MAX_DURATION);
        else {
            fprintf(stderr, "xedge-load: unknown argument '%s' (see --help)\n", a);
            exit(2);
        }
#undef ARG
    }
    if (o.bind2 && !o.sasl2) {
        fprintf(stderr, "xedge-load: --bind2 needs --sasl2\n");
        exit(2);
    }
    if (o.fast && (o.mode == M_PLAIN || strncmp(o.mech, "SCRAM-", 6))) {
        fprintf(stderr, "xedge-load: --fast needs TLS and --mech SCRAM-*\n");
        exit(2);
    }
    if (o.relogin && !o.fast) {
        fprintf(stderr, "xedge-load: --relogin needs --fast\n");
        exit(2);
    }
    if (strlen(o.domain) > 200 || strchr(o.domain, '\'') || strchr(o.domain, '<')) {
        fprintf(stderr, "xedge-load: bad --domain\n");
        exit(2);
    }
}
