/* xedgectl: the client side of the control socket. See ctlclient.h. */
#include "ctlclient.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "xelimits.h"

/* the exit statuses of xedgectl.c */
#define CTL_OK 0
#define CTL_FAILED 1
#define CTL_USAGE 2
#define CTL_CONFIG 3

/* the daemon's own timeout, and a margin */
#define CLIENT_TIMEOUT_MS (XE_CONTROL_TIMEOUT_MS + 1000)

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for events, until deadline. 0, or -1 (timeout or
 * error, errno set). */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = deadline - mono_ms();
        int r;
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

int
xe_ctlclient_request(const char *path, const char *request, struct xe_buf *out,
                     char **error_r)
{
    struct sockaddr_un sa;
    int64_t deadline = mono_ms() + CLIENT_TIMEOUT_MS;
    size_t len = strlen(request), off = 0;
    int fd = -1, r = -1;
    char buf[65536];

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *error_r = xe_asprintf("control socket path too long: %s", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        *error_r = xe_asprintf("cannot connect to %s: %s (is xedge running?)", path,
                               strerror(errno));
        goto out;
    }
    while (off < len + 1) {
        ssize_t n;
        if (wait_fd(fd, POLLOUT, deadline) < 0)
            goto io_error;
        n = off < len ? send(fd, request + off, len - off, MSG_NOSIGNAL)
                      : send(fd, "\n", 1, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto io_error;
        off += (size_t)n;
    }
    for (;;) {
        ssize_t n;
        if (wait_fd(fd, POLLIN, deadline) < 0)
            goto io_error;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto io_error;
        if (n == 0)
            break;
        if (xe_buf_append(out, buf, (size_t)n) < 0) {
            *error_r = xe_asprintf("the answer from %s is too large", path);
            goto out;
        }
    }
    r = 0;
    goto out;
io_error:
    *error_r = xe_asprintf("%s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    return r;
}

void
xe_ctlclient_lockout_usage(FILE *f)
{
    fprintf(f, "usage: xedgectl [-c FILE] lockout list [--json]\n"
               "       xedgectl [-c FILE] lockout clear KEY|--all\n"
               "\n"
               "Talks to the running xedge on its control socket (the `control`\n"
               "group of the configuration).\n"
               "\n"
               "commands:\n"
               "  list [--json]  the addresses and accounts with failed logins, and\n"
               "                 whether each is locked out (remaining_ms), then the\n"
               "                 totals; --json: one JSON object\n"
               "  clear KEY      forget an address (192.0.2.1, 2001:db8:1:2::/64) or an\n"
               "                 account (alice@example.org) as list shows it\n"
               "  clear --all    forget every entry\n"
               "\n"
               "exit status: 0 ok, 1 the operation failed (no such entry), 2 usage\n"
               "error, 3 configuration error (no control socket configured),\n"
               "4 xedge cannot be reached on its control socket.\n");
}

static void
json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* "word k=v k=v" -> {"k":v,...}: numbers and yes/no are typed. */
static void
json_fields(const char *line, size_t len)
{
    const char *p = memchr(line, ' ', len), *end = line + len;
    bool first = true;

    putchar('{');
    while (p && p < end) {
        const char *f = p + 1, *fe = memchr(f, ' ', (size_t)(end - f)), *eq;
        if (fe == NULL)
            fe = end;
        eq = memchr(f, '=', (size_t)(fe - f));
        if (eq) {
            const char *v = eq + 1;
            size_t vl = (size_t)(fe - v), i;
            printf("%s", first ? "" : ",");
            json_string(f, (size_t)(eq - f));
            putchar(':');
            for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
                ;
            if (vl > 0 && i == vl && (v[0] != '0' || vl == 1))
                printf("%.*s", (int)vl, v);
            else if (vl == 3 && memcmp(v, "yes", 3) == 0)
                printf("true");
            else if (vl == 2 && memcmp(v, "no", 2) == 0)
                printf("false");
            else
                json_string(v, vl);
            first = false;
        }
        p = fe < end ? fe : NULL;
    }
    putchar('}');
}

static void
print_json(const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    bool first = true;

    printf("{\"entries\":[");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l > 6 && memcmp(p, "entry ", 6) == 0) {
            printf("%s", first ? "" : ",");
            json_fields(p, l);
            first = false;
        }
        p += l + 1;
    }
    printf("],\"stats\":");
    p = body;
    first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l > 6 && memcmp(p, "stats ", 6) == 0) {
            json_fields(p, l);
            first = false;
        }
        p += l + 1;
    }
    if (first)
        printf("{}");
    printf("}\n");
}

/* --help or -h among the command's words */
static bool
wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* Send REQUEST to the control socket named by the configuration CONFIG.
 * CTL_OK with *body (after the "ok" line) in RESP, or an exit status (the
 * error printed). */
static int
call(const char *config, const char *request, struct xe_buf *resp, const char **body_r,
     size_t *body_len_r)
{
    struct xe_conf *conf = NULL;
    char *err = NULL;
    const char *body;
    size_t first_len;
    int ret = CTL_CONFIG;

    if (xe_conf_load(config, &conf, &err) != 0) {
        fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot load the configuration");
        goto out;
    }
    if (conf->control.socket == NULL) {
        fprintf(stderr,
                "xedgectl: %s: no control socket configured (control = { socket = "
                "\"...\"; };)\n",
                config);
        goto out;
    }
    ret = CTL_UNREACHABLE;
    if (xe_ctlclient_request(conf->control.socket, request, resp, &err) < 0) {
        fprintf(stderr, "xedgectl: %s\n", err);
        goto out;
    }
    body = memchr(resp->data, '\n', resp->len);
    if (resp->len == 0 || body == NULL) {
        fprintf(stderr, "xedgectl: no answer from xedge\n");
        goto out;
    }
    first_len = (size_t)(body - (const char *)resp->data);
    if (!(first_len == 2 && memcmp(resp->data, "ok", 2) == 0)) {
        fprintf(stderr, "xedgectl: xedge: %.*s\n", (int)first_len,
                (const char *)resp->data);
        ret = CTL_FAILED;
        goto out;
    }
    *body_r = body + 1;
    *body_len_r = resp->len - first_len - 1;
    ret = CTL_OK;
out:
    xe_conf_free(&conf);
    free(err);
    return ret;
}

/* The lines of BODY that start with "WORD " as a JSON array. */
static void
json_lines(const char *body, size_t len, const char *word)
{
    const char *p = body, *end = body + len;
    size_t wl = strlen(word);
    bool first = true;

    putchar('[');
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l > wl && memcmp(p, word, wl) == 0 && p[wl] == ' ') {
            printf("%s", first ? "" : ",");
            json_fields(p, l);
            first = false;
        }
        p += l + 1;
    }
    putchar(']');
}

void
xe_ctlclient_session_usage(FILE *f)
{
    fprintf(f, "usage: xedgectl [-c FILE] session list [--json]\n"
               "       xedgectl [-c FILE] session kick JID|ID\n"
               "       xedgectl [-c FILE] stats [--json]\n"
               "\n"
               "Talk to the running xedge on its control socket (the `control`\n"
               "group of the configuration).\n"
               "\n"
               "commands:\n"
               "  session list   one line per connection: id, jid, peer, listener,\n"
               "                 transport (tcp, websocket), state (negotiating,\n"
               "                 backend, spliced, closing), tls,\n"
               "                 mech, backend, since (unix time), age_s, bytes_up,\n"
               "                 bytes_down (and worker, with workers > 1); --json: a\n"
               "                 JSON array\n"
               "  session kick JID|ID\n"
               "                 end every session of the bare JID, or the one with\n"
               "                 that id, with <policy-violation/> (between two\n"
               "                 stanzas); prints kicked=N\n"
               "  stats          connections by state, connections accepted, and the\n"
               "                 lockout table's figures\n"
               "\n"
               "exit status: 0 ok, 1 the operation failed (kick: no such session),\n"
               "2 usage error, 3 configuration error (no control socket configured),\n"
               "4 xedge cannot be reached on its control socket.\n");
}

int
xe_ctlclient_session(const char *config, int argc, char **argv)
{
    struct xe_buf resp;
    char *request = NULL;
    const char *body = NULL;
    size_t body_len = 0;
    bool json = false, stats = strcmp(argv[0], "stats") == 0;
    int ret = CTL_USAGE;

    xe_buf_init(&resp, XE_CONTROL_MAX_RESPONSE);
    if (wants_help(argc, argv)) {
        xe_ctlclient_session_usage(stdout);
        return CTL_OK;
    }
    if (stats && (argc == 1 || (argc == 2 && strcmp(argv[1], "--json") == 0))) {
        json = argc == 2;
        request = xe_strdup("stats");
    } else if (!stats && argc >= 2 && strcmp(argv[1], "list") == 0 &&
               (argc == 2 || (argc == 3 && strcmp(argv[2], "--json") == 0))) {
        json = argc == 3;
        request = xe_strdup("session list");
    } else if (!stats && argc == 3 && strcmp(argv[1], "kick") == 0) {
        if (argv[2][0] == '\0' || strlen(argv[2]) > XE_CONTROL_MAX_REQUEST - 16 ||
            strpbrk(argv[2], " \t\r\n") != NULL) {
            fprintf(stderr, "xedgectl: session kick: invalid JID or id '%s'\n", argv[2]);
            goto out;
        }
        request = xe_asprintf("session kick %s", argv[2]);
    } else {
        fprintf(stderr, "xedgectl: %s: bad arguments (try 'xedgectl %s --help')\n",
                argv[0], argv[0]);
        goto out;
    }
    if ((ret = call(config, request, &resp, &body, &body_len)) != CTL_OK)
        goto out;
    if (json && stats) {
        printf("{\"stats\":");
        json_lines(body, body_len, "stats");
        printf(",\"lockout\":");
        json_lines(body, body_len, "lockout");
        printf("}\n");
    } else if (json) {
        json_lines(body, body_len, "session");
        putchar('\n');
    } else {
        fwrite(body, 1, body_len, stdout);
    }
    if (!stats && strncmp(request, "session kick", 12) == 0 && body_len >= 9 &&
        memcmp(body, "kicked=0\n", 9) == 0) {
        fprintf(stderr, "xedgectl: no session of '%s'\n", argv[2]);
        ret = CTL_FAILED;
    }
    if (fflush(stdout) != 0)
        ret = CTL_FAILED;
out:
    xe_buf_free(&resp);
    free(request);
    return ret;
}

void
xe_ctlclient_s2s_usage(FILE *f)
{
    fprintf(f, "usage: xedgectl [-c FILE] s2s list [--json]\n"
               "\n"
               "The server-to-server streams of the running xedge (on its control\n"
               "socket).\n"
               "\n"
               "commands:\n"
               "  s2s list       one line per stream: id, direction (in: a peer's\n"
               "                 stream and its links to the backends; out: ours, the\n"
               "                 verifications, the backends' outgoing streams), kind\n"
               "                 (in, out, verify, backend, link), local, remote, peer\n"
               "                 (the address), state (negotiating, ready, closing),\n"
               "                 mech (how an in or out stream was authenticated:\n"
               "                 external, dialback, SCRAM-SHA-256, ...), since (unix\n"
               "                 time), age_s, bytes (of stanzas relayed); --json: a\n"
               "                 JSON array\n"
               "\n"
               "exit status: 0 ok, 1 the operation failed, 2 usage error,\n"
               "3 configuration error (no control socket configured), 4 xedge cannot\n"
               "be reached on its control socket.\n");
}

int
xe_ctlclient_s2s(const char *config, int argc, char **argv)
{
    struct xe_buf resp;
    const char *body = NULL;
    size_t body_len = 0;
    int ret;

    if (wants_help(argc, argv)) {
        xe_ctlclient_s2s_usage(stdout);
        return CTL_OK;
    }
    if (argc < 2 || strcmp(argv[1], "list") != 0 ||
        (argc == 3 && strcmp(argv[2], "--json") != 0) || argc > 3) {
        fprintf(stderr, "xedgectl: s2s: bad arguments (try 'xedgectl s2s --help')\n");
        return CTL_USAGE;
    }
    xe_buf_init(&resp, XE_CONTROL_MAX_RESPONSE);
    ret = call(config, "s2s list", &resp, &body, &body_len);
    if (ret == CTL_OK) {
        if (argc == 3) {
            json_lines(body, body_len, "s2s");
            putchar('\n');
        } else
            fwrite(body, 1, body_len, stdout);
        if (fflush(stdout) != 0)
            ret = CTL_FAILED;
    }
    xe_buf_free(&resp);
    return ret;
}

void
xe_ctlclient_backend_usage(FILE *f)
{
    fprintf(f, "usage: xedgectl [-c FILE] backend list [--json]\n"
               "       xedgectl [-c FILE] backend drain|undrain NAME\n"
               "\n"
               "The backend servers of the running xedge (on its control socket).\n"
               "\n"
               "commands:\n"
               "  backend list   one line per configured server: name, pool, kind,\n"
               "                 address, port, weight, state (up, down or draining),\n"
               "                 health (up or down, by the health checks) and\n"
               "                 sessions (being set up or spliced); --json: a JSON\n"
               "                 array\n"
               "  backend drain NAME\n"
               "                 the server NAME (in every pool that has one) gets no\n"
               "                 new sessions (the pool's policy and on_down decide\n"
               "                 where they go) and keeps its open ones; until undrain\n"
               "                 or a restart of xedge (a reload keeps it)\n"
               "  backend undrain NAME\n"
               "                 it gets new sessions again\n"
               "\n"
               "exit status: 0 ok, 1 the operation failed (no server of that name),\n"
               "2 usage error, 3 configuration error (no control socket configured),\n"
               "4 xedge cannot be reached on its control socket.\n");
}

int
xe_ctlclient_backend(const char *config, int argc, char **argv)
{
    struct xe_buf resp;
    char *request = NULL;
    const char *body = NULL;
    size_t body_len = 0;
    bool json = false;
    int ret = CTL_USAGE;

    xe_buf_init(&resp, XE_CONTROL_MAX_RESPONSE);
    if (wants_help(argc, argv)) {
        xe_ctlclient_backend_usage(stdout);
        return CTL_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "list") == 0 &&
        (argc == 2 || (argc == 3 && strcmp(argv[2], "--json") == 0))) {
        json = argc == 3;
        request = xe_strdup("backend list");
    } else if (argc == 3 &&
               (strcmp(argv[1], "drain") == 0 || strcmp(argv[1], "undrain") == 0)) {
        if (argv[2][0] == '\0' || strlen(argv[2]) > XE_CONTROL_MAX_REQUEST - 16 ||
            strpbrk(argv[2], " \t\r\n") != NULL) {
            fprintf(stderr, "xedgectl: backend %s: invalid server name '%s'\n", argv[1],
                    argv[2]);
            goto out;
        }
        request = xe_asprintf("backend %s %s", argv[1], argv[2]);
    } else {
        fprintf(stderr,
                "xedgectl: backend: bad arguments (try 'xedgectl backend --help')\n");
        goto out;
    }
    if ((ret = call(config, request, &resp, &body, &body_len)) != CTL_OK)
        goto out;
    if (json) {
        json_lines(body, body_len, "backend");
        putchar('\n');
    } else {
        fwrite(body, 1, body_len, stdout);
    }
    if (fflush(stdout) != 0)
        ret = CTL_FAILED;
out:
    xe_buf_free(&resp);
    free(request);
    return ret;
}

void
xe_ctlclient_reload_usage(FILE *f)
{
    fprintf(f, "usage: xedgectl [-c FILE] reload\n"
               "\n"
               "Make the running xedge reload its configuration file (as SIGHUP\n"
               "does): certificates, domains, pools, limits, timeouts and mechanisms\n"
               "change for new connections; established sessions go on. A\n"
               "configuration that does not load, a certificate or key that does not,\n"
               "or a change of what needs a restart (listeners, user_store, control,\n"
               "metrics, user, group, log_to) is refused and the running one stays.\n"
               "Prints 'reload result=ok generation=N'.\n"
               "\n"
               "exit status: 0 reloaded, 1 refused (the error is printed; xedge keeps\n"
               "its configuration), 2 usage error, 3 no control socket configured,\n"
               "4 xedge cannot be reached on its control socket.\n");
}

int
xe_ctlclient_reload(const char *config, int argc, char **argv)
{
    struct xe_conf *conf = NULL;
    struct xe_buf resp;
    const char *body = NULL;
    size_t body_len = 0;
    char *err = NULL;
    int ret;

    (void)argv;
    if (wants_help(argc, argv)) {
        xe_ctlclient_reload_usage(stdout);
        return CTL_OK;
    }
    if (argc != 1) {
        fprintf(stderr,
                "xedgectl: reload: bad arguments (try 'xedgectl reload --help')\n");
        return CTL_USAGE;
    }
    /* the file names the control socket: one that does not load cannot be
     * sent, and xedge would refuse it the same way */
    if (xe_conf_load(config, &conf, &err) != 0) {
        fprintf(stderr, "xedgectl: reload refused, xedge keeps its configuration: %s\n",
                err ? err : "cannot load the configuration");
        free(err);
        return CTL_FAILED;
    }
    xe_conf_free(&conf);
    xe_buf_init(&resp, XE_CONTROL_MAX_RESPONSE);
    ret = call(config, "reload", &resp, &body, &body_len);
    if (ret == CTL_OK) {
        fwrite(body, 1, body_len, stdout);
        if (fflush(stdout) != 0)
            ret = CTL_FAILED;
    }
    xe_buf_free(&resp);
    return ret;
}

int
xe_ctlclient_lockout(const char *config, int argc, char **argv)
{
    struct xe_buf resp;
    char *request = NULL;
    const char *body = NULL;
    bool json = false, list = false;
    size_t body_len = 0;
    int ret = CTL_USAGE;

    xe_buf_init(&resp, XE_CONTROL_MAX_RESPONSE);
    if (wants_help(argc, argv)) {
        xe_ctlclient_lockout_usage(stdout);
        return CTL_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "list") == 0 &&
        (argc == 2 || (argc == 3 && strcmp(argv[2], "--json") == 0))) {
        list = true;
        json = argc == 3;
        request = xe_strdup("lockout list");
    } else if (argc == 3 && strcmp(argv[1], "clear") == 0) {
        if (argv[2][0] == '\0' || strlen(argv[2]) > XE_CONTROL_MAX_REQUEST - 16 ||
            strpbrk(argv[2], " \t\r\n") != NULL) {
            fprintf(stderr, "xedgectl: lockout clear: invalid key '%s'\n", argv[2]);
            goto out;
        }
        request = xe_asprintf("lockout clear %s", argv[2]);
    } else {
        if (argc >= 2)
            fprintf(stderr, "xedgectl: lockout: bad arguments (try 'xedgectl lockout "
                            "--help')\n");
        else
            xe_ctlclient_lockout_usage(stderr);
        goto out;
    }
    if ((ret = call(config, request, &resp, &body, &body_len)) != CTL_OK)
        goto out;
    if (list && json) {
        print_json(body, body_len);
    } else if (list) {
        fwrite(body, 1, body_len, stdout);
    } else {
        fwrite(body, 1, body_len, stdout);
        if (body_len >= 10 && memcmp(body, "cleared=0\n", 10) == 0) {
            fprintf(stderr, "xedgectl: no entry for '%s'\n", argv[2]);
            ret = strcmp(argv[2], "--all") == 0 ? CTL_OK : CTL_FAILED;
        }
    }
    if (fflush(stdout) != 0)
        ret = CTL_FAILED;
out:
    xe_buf_free(&resp);
    free(request);
    return ret;
}
