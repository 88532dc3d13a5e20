/* strophe_client: a real client for the tests, on libstrophe (the C library
 * most C XMPP clients use), built by `make check` when configure finds it.
 * It connects (STARTTLS, or Direct TLS with --direct), verifies the server
 * certificate against --cafile, authenticates with whatever mechanism
 * libstrophe picks from those offered (it has no way to choose one: the tests
 * make xedge offer only the one they want), binds, pings the server
 * (XEP-0199) and sends a message to --to (default: its own full JID, which
 * must then come back through xedge and the backend).
 *
 *   strophe_client --jid JID --server HOST:PORT --cafile FILE [options]
 *     --password PW       the password (not needed with --cert or --anonymous)
 *     --cert FILE --key FILE  a client certificate (for SASL EXTERNAL)
 *     --anonymous         SASL ANONYMOUS: only the domain of --jid is used
 *     --resource R        the resource to ask for
 *     --to JID            where the message goes (no echo is then expected)
 *     --direct            Direct TLS instead of STARTTLS
 *     --timeout SECONDS   give up after this long (default 10)
 *     --debug             libstrophe's debug log on stderr (holds SASL data)
 *
 * Prints KEY=value lines: MECH= (the mechanism of the <auth/> it sent),
 * CONDITION= (of a SASL <failure/>), JID= (bound), SECURED=0|1, PING=ok,
 * MESSAGE=ok (echo received, or sent with --to), then RESULT=ok|failure|error
 * and RC=; exit 0 on success, 1 on a SASL failure, 2 on any other error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strophe.h>

#define PING_ID "strophe-ping-1"

static struct {
    const char *jid, *password, *server, *cafile, *cert, *key, *resource, *to;
    int anonymous, direct, debug;
    long timeout;
} opt = {.timeout = 10};

static struct {
    char mech[64], condition[64], jid[1024], token[64];
    int connected, secured, ping_ok, message_ok, failed, done;
} st;

/* copy_word: the run of [A-Za-z0-9_-] at p into dst (bounded) */
static void
copy_word(char *dst, size_t size, const char *p)
{
    size_t n = 0;

    while (n + 1 < size && p[n] &&
           (strchr("-_", p[n]) || (p[n] >= 'A' && p[n] <= 'Z') ||
            (p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9'))) {
        dst[n] = p[n];
        n++;
    }
    dst[n] = '\0';
}

/* libstrophe gives user handlers nothing before the session is up: read the
 * mechanism it chose, and a SASL failure, from its own debug log. */
static void
on_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
    const char *p;

    if (opt.debug)
        fprintf(stderr, "%s %s\n", area, msg);
    if (strncmp(msg, "SENT: <auth ", 12) == 0 && (p = strstr(msg, "mechanism=\"")))
        copy_word(st.mech, sizeof(st.mech), p + 11);
    if (strncmp(msg, "RECV: <failure", 14) == 0 &&
        strstr(msg, "urn:ietf:params:xml:ns:xmpp-sasl") && (p = strchr(msg + 14, '>')) &&
        p[-1] != '/' && p[1] == '<') {
        copy_word(st.condition, sizeof(st.condition), p + 2);
        st.failed = 1;
    }
}

static void
maybe_done(xmpp_conn_t *conn)
{
    if (st.ping_ok && st.message_ok && !st.done) {
        st.done = 1;
        xmpp_disconnect(conn);
    }
}

static int
on_ping(xmpp_conn_t *conn, xmpp_stanza_t *stanza, void *ud)
{
    const char *type = xmpp_stanza_get_type(stanza);

    if (type && strcmp(type, "result") == 0)
        st.ping_ok = 1;
    else
        fprintf(stderr, "ping answered with type=%s\n", type ? type : "(none)");
    maybe_done(conn);
    return 0;
}

static int
on_message(xmpp_conn_t *conn, xmpp_stanza_t *stanza, void *ud)
{
    xmpp_ctx_t *ctx = ud;
    char *body = xmpp_message_get_body(stanza);

    if (body && strcmp(body, st.token) == 0) {
        st.message_ok = 1;
        maybe_done(conn);
    }
    if (body)
        xmpp_free(ctx, body);
    return 1;
}

static void
on_conn(xmpp_conn_t *conn, xmpp_conn_event_t event, int error,
        xmpp_stream_error_t *stream_error, void *ud)
{
    xmpp_ctx_t *ctx = ud;
    xmpp_stanza_t *s, *ping;
    const char *jid;
    char *domain;

    if (event != XMPP_CONN_CONNECT) {
        if (error)
            fprintf(stderr, "disconnected: error %d\n", error);
        if (stream_error)
            fprintf(stderr, "stream error %d: %s\n", (int)stream_error->type,
                    stream_error->text ? stream_error->text : "");
        st.done = 1;
        xmpp_stop(ctx);
        return;
    }
    st.connected = 1;
    st.secured = xmpp_conn_is_secured(conn);
    jid = xmpp_conn_get_bound_jid(conn);
    snprintf(st.jid, sizeof(st.jid), "%s", jid ? jid : "");

    s = xmpp_presence_new(ctx);
    xmpp_send(conn, s);
    xmpp_stanza_release(s);

    xmpp_id_handler_add(conn, on_ping, PING_ID, ctx);
    s = xmpp_iq_new(ctx, "get", PING_ID);
    domain = xmpp_jid_domain(ctx, st.jid);
    if (domain) {
        xmpp_stanza_set_to(s, domain);
        xmpp_free(ctx, domain);
    }
    ping = xmpp_stanza_new(ctx);
    xmpp_stanza_set_name(ping, "ping");
    xmpp_stanza_set_ns(ping, "urn:xmpp:ping");
    xmpp_stanza_add_child(s, ping);
    xmpp_stanza_release(ping);
    xmpp_send(conn, s);
    xmpp_stanza_release(s);

    if (!opt.to)
        xmpp_handler_add(conn, on_message, NULL, "message", NULL, ctx);
    s = xmpp_message_new(ctx, "chat", opt.to ? opt.to : st.jid, NULL);
    xmpp_message_set_body(s, st.token);
    xmpp_send(conn, s);
    xmpp_stanza_release(s);
    if (opt.to)
        st.message_ok = 1; /* sent; the test checks that it arrived */
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: strophe_client --jid JID --server HOST:PORT --cafile FILE\n"
            "       [--password PW] [--cert FILE --key FILE] [--anonymous]\n"
            "       [--resource R] [--to JID] [--direct] [--timeout S] [--debug]\n");
    exit(2);
}

static long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
main(int argc, char **argv)
{
    xmpp_log_t log = {on_log, NULL};
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    char jid[1024], host[256];
    const char *colon, *result;
    long port, deadline, flags;
    int i, rc;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = NULL;

        if (!strcmp(a, "--anonymous"))
            opt.anonymous = 1;
        else if (!strcmp(a, "--direct"))
            opt.direct = 1;
        else if (!strcmp(a, "--debug"))
            opt.debug = 1;
        else if (!strcmp(a, "--jid"))
            dst = &opt.jid;
        else if (!strcmp(a, "--password"))
            dst = &opt.password;
        else if (!strcmp(a, "--server"))
            dst = &opt.server;
        else if (!strcmp(a, "--cafile"))
            dst = &opt.cafile;
        else if (!strcmp(a, "--cert"))
            dst = &opt.cert;
        else if (!strcmp(a, "--key"))
            dst = &opt.key;
        else if (!strcmp(a, "--resource"))
            dst = &opt.resource;
        else if (!strcmp(a, "--to"))
            dst = &opt.to;
        else if (!strcmp(a, "--timeout") && v)
            opt.timeout = (i++, strtol(v, NULL, 10));
        else
            usage();
        if (dst) {
            if (!v)
                usage();
            *dst = v;
            i++;
        }
    }
    if (!opt.jid || !opt.server || !opt.cafile || opt.timeout <= 0 ||
        !(colon = strrchr(opt.server, ':')) ||
        (size_t)(colon - opt.server) >= sizeof(host))
        usage();
    memcpy(host, opt.server, (size_t)(colon - opt.server));
    host[colon - opt.server] = '\0';
    port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535)
        usage();
    /* ANONYMOUS: libstrophe takes a JID without a node as the wish for it */
    const char *bare =
        opt.anonymous && strchr(opt.jid, '@') ? strchr(opt.jid, '@') + 1 : opt.jid;
    snprintf(jid, sizeof(jid), "%s%s%s", bare, opt.resource ? "/" : "",
             opt.resource ? opt.resource : "");
    snprintf(st.token, sizeof(st.token), "strophe-%ld-%ld", (long)time(NULL), now_ms());

    xmpp_initialize();
    ctx = xmpp_ctx_new(NULL, &log);
    conn = xmpp_conn_new(ctx);
    flags = XMPP_CONN_FLAG_DISABLE_SM |
            (opt.direct ? XMPP_CONN_FLAG_LEGACY_SSL : XMPP_CONN_FLAG_MANDATORY_TLS);
    xmpp_conn_set_flags(conn, flags);
    xmpp_conn_set_cafile(conn, opt.cafile);
    if (opt.cert || opt.key)
        xmpp_conn_set_client_cert(conn, opt.cert, opt.key);
    xmpp_conn_set_jid(conn, jid);
    if (opt.password)
        xmpp_conn_set_pass(conn, opt.password);

    rc = 2;
    if (xmpp_connect_client(conn, host, (unsigned short)port, on_conn, ctx) != XMPP_EOK) {
        fprintf(stderr, "cannot connect to %s\n", opt.server);
    } else {
        deadline = now_ms() + opt.timeout * 1000;
        while (!st.done && now_ms() < deadline)
            xmpp_run_once(ctx, 100);
        if (!st.done) {
            fprintf(stderr, "timeout after %ld s\n", opt.timeout);
            xmpp_disconnect(conn);
            /* let it close the stream and the socket */
            for (i = 0; i < 20 && !xmpp_conn_is_disconnected(conn); i++)
                xmpp_run_once(ctx, 50);
        } else if (!xmpp_conn_is_disconnected(conn)) {
            for (i = 0; i < 40 && !xmpp_conn_is_disconnected(conn); i++)
                xmpp_run_once(ctx, 50);
        }
        if (st.connected && st.ping_ok && st.message_ok)
            rc = 0;
        else if (st.failed)
            rc = 1;
    }

    if (st.mech[0])
        printf("MECH=%s\n", st.mech);
    if (st.condition[0])
        printf("CONDITION=%s\n", st.condition);
    if (st.connected) {
        printf("JID=%s\n", st.jid);
        printf("SECURED=%d\n", st.secured);
    }
    if (st.ping_ok)
        printf("PING=ok\n");
    if (st.message_ok)
        printf("MESSAGE=ok\n");
    result = rc == 0 ? "ok" : rc == 1 ? "failure" : "error";
    printf("RESULT=%s\nRC=%d\n", result, rc);

    xmpp_conn_release(conn);
    xmpp_ctx_free(ctx);
    xmpp_shutdown();
    return rc;
}
