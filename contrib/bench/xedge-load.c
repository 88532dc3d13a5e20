/* xedge-load: an XMPP c2s load generator (libuv, OpenSSL, Cyrus SASL, expat).
 *
 * Opens sessions at a target rate up to a target count (STARTTLS, Direct TLS
 * or plaintext; SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN through Cyrus SASL's
 * client; then resource binding), holds them, optionally sends messages
 * between them at a target rate and measures their round trips, and reports
 * KEY=value lines on stdout and a human summary on stderr. Every wait has a
 * timeout and the whole run is bounded by --duration. Run with --help.
 * Options: xedge-load-opts.c; SASL2, FAST and TLS resumption for the
 * re-logins (--fast, --relogin): xedge-load-fast.c. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <expat.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sasl/sasl.h>
#include <sasl/saslutil.h>
#include <uv.h>

#include "xedge-load.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define CB(f) ((int (*)(void))(void *)(f))

static const char *const err_names[E_COUNT] = {
    "connect",       "tls",         "stream_error", "no_starttls", "mech_not_offered",
    "sasl_client",   "auth_failed", "bind",         "parse",       "closed",
    "login_timeout", "write",       "msg_error",    "msg_lost",
};

struct opts o = {
    .host = "127.0.0.1",
    .port = 5222,
    .mode = M_STARTTLS,
    .domain = "example.test",
    .mech = "SCRAM-SHA-1",
    .user_fmt = "bench%u",
    .pass_fmt = "bench-password",
    .sessions = 100,
    .concurrency = 50,
    .msg_duration = 5,
    .login_timeout = 30,
    .msg_timeout = 10,
    .duration = 120,
    .source = NULL,
    .sources = 0,
    .fail_list = 100,
};

static uv_loop_t *loop;
static SSL_CTX *sslctx;
static struct sess *ss;
static struct sockaddr_in target;
static uint32_t source_base; /* host order */
static uint64_t t_begin, t_login_end, t_msg_begin, t_msg_end, t_end_ns;
static unsigned started, settled, logged_in, inflight, alive;
static double *login_ms;
static uint32_t *rtt_us;
static unsigned char
    a_secret[4096]; /* --assertion-secret, trailing white space removed */
static size_t a_secret_len;
static uint64_t rtt_n, msg_sent, msg_recv, msg_err;
static uint64_t errors[E_COUNT];
static char err_detail[E_COUNT][160]; /* the first failure's detail, per kind */
static unsigned rr;                   /* round robin for messages */
static uint64_t paused_t, paused_ns;  /* --pause-at */
static int paused_done;
static int phase; /* 0 login, 1 hold, 2 messages, 3 drain, 4 done */
static uint64_t phase_t;
static uv_timer_t tick;
static uv_signal_t sigint_h;
static int interrupted;
static char readbuf[XL_READ_BUF];
/* the re-login mode (--relogin): the first logins' figures, kept for the report */
static int rl_go, rl_on;
static unsigned rl_resumed, rl_skipped, rl_lost, rl_failed_listed;
static unsigned first_ok, first_failed;
static double first_s;
static uv_signal_t sigusr1_h;

static uint64_t
now_ns(void)
{
    return uv_hrtime();
}

void
say(const char *fmt, ...)
{
    va_list ap;
    if (o.quiet)
        return;
    va_start(ap, fmt);
    fputs("xedge-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Replace the first "%u" of fmt with n (no printf with a user's format). */
static void
fmt_index(char *out, size_t cap, const char *fmt, unsigned n)
{
    const char *p = strstr(fmt, "%u");
    if (!p) {
        snprintf(out, cap, "%s", fmt);
        return;
    }
    snprintf(out, cap, "%.*s%u%s", (int)(p - fmt), fmt, n, p + 2);
}

static void on_close(uv_handle_t *h);

/* ------------------------------------------------------------ writing */
struct wreq {
    uv_write_t req;
    size_t len;
    char data[];
};

static void
on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct sess *s = req->data;
    if (status < 0 && status != UV_ECANCELED && s->state != S_DEAD)
        sess_fail(s, E_WRITE, uv_strerror(status));
    free(w);
}

static int
raw_write(struct sess *s, const void *data, size_t len)
{
    struct wreq *w;
    uv_buf_t b;
    int r;

    if (!s->open || len == 0)
        return 0;
    w = malloc(sizeof(*w) + len);
    if (!w)
        return -1;
    memcpy(w->data, data, len);
    w->len = len;
    w->req.data = s;
    b = uv_buf_init(w->data, (unsigned)len);
    r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (r < 0) {
        free(w);
        return -1;
    }
    return 0;
}

static int
flush_tls(struct sess *s)
{
    char buf[16384];
    int n;
    while (s->wbio && BIO_ctrl_pending(s->wbio) > 0) {
        n = BIO_read(s->wbio, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (raw_write(s, buf, (size_t)n) < 0)
            return -1;
    }
    return 0;
}

static void
send_data(struct sess *s, const char *data, size_t len)
{
    if (s->state == S_DEAD)
        return;
    if (s->tls_up) {
        if (SSL_write(s->ssl, data, (int)len) <= 0) {
            sess_fail(s, E_TLS, "SSL_write");
            return;
        }
        if (flush_tls(s) < 0)
            sess_fail(s, E_WRITE, "write");
    } else if (raw_write(s, data, len) < 0) {
        sess_fail(s, E_WRITE, "write");
    }
}

void
send_str(struct sess *s, const char *str)
{
    send_data(s, str, strlen(str));
}

/* ------------------------------------------------------------ XML */
static void xml_start(void *ud, const XML_Char *name, const XML_Char **atts);
static void xml_end(void *ud, const XML_Char *name);
static void xml_text(void *ud, const XML_Char *t, int len);

static int
parser_reset(struct sess *s)
{
    if (!s->xp)
        s->xp = XML_ParserCreate("UTF-8");
    else
        XML_ParserReset(s->xp, "UTF-8");
    if (!s->xp)
        return -1;
    XML_SetUserData(s->xp, s);
    XML_SetElementHandler(s->xp, xml_start, xml_end);
    XML_SetCharacterDataHandler(s->xp, xml_text);
    s->depth = 0;
    s->restart = 0;
    s->stop = 0;
    s->f_starttls = s->f_mech = s->f_bind = s->f_sasl2 = 0;
    return 0;
}

static void
open_stream(struct sess *s)
{
    char hdr[512];
    if (parser_reset(s) < 0) {
        sess_fail(s, E_PARSE, "no memory");
        return;
    }
    snprintf(hdr, sizeof(hdr),
             "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
             o.domain);
    s->state = S_STREAM;
    send_str(s, hdr);
}

static const char *
local_name(const char *n)
{
    const char *c = strrchr(n, ':');
    return c ? c + 1 : n;
}

static void
xml_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct sess *s = ud;
    const char *ln = local_name(name);
    int d = s->depth++;
    if (d == 0)
        return; /* <stream:stream> */
    if (d == 1) {
        snprintf(s->cur, sizeof(s->cur), "%s", ln);
        s->child[0] = s->type[0] = s->id[0] = 0;
        s->textlen = 0;
        s->in_cap = 0;
        s->in_mechs = 0;
        for (int i = 0; atts[i]; i += 2) {
            if (!strcmp(atts[i], "type"))
                snprintf(s->type, sizeof(s->type), "%s", atts[i + 1]);
            else if (!strcmp(atts[i], "id"))
                snprintf(s->id, sizeof(s->id), "%s", atts[i + 1]);
        }
        /* SASL payloads are the top-level element's text */
        if (!strcmp(ln, "challenge") || !strcmp(ln, "success"))
            s->in_cap = 1;
        if (!strcmp(ln, "features"))
            s->f_starttls = s->f_mech = s->f_bind = s->f_sasl2 = 0;
        return;
    }
    if (d == 2 && !strcmp(s->cur, "success")) { /* SASL2's children */
        s->in_cap = !strcmp(ln, "additional-data");
        if (s->in_cap)
            s->textlen = 0;
        if (!strcmp(ln, "token"))
            for (int i = 0; atts[i]; i += 2)
                if (!strcmp(atts[i], "token") && xl_fast_keep_token(s, atts[i + 1]) < 0)
                    sess_fail(s, E_SASL_CLIENT, "a FAST token too long or empty");
        return;
    }
    if (d == 2 && !s->child[0])
        snprintf(s->child, sizeof(s->child), "%s", ln);
    if (!strcmp(s->cur, "features")) {
        if (d == 2 && !strcmp(ln, "starttls"))
            s->f_starttls = 1;
        else if (d == 2 && !strcmp(ln, "mechanisms"))
            s->in_mechs = 1;
        else if (d == 2 && !strcmp(ln, "authentication")) /* SASL2, FAST inside */
            s->in_mechs = s->f_sasl2 = 1;
        else if (d == 2 && !strcmp(ln, "bind"))
            s->f_bind = 1;
        else if (d >= 3 && s->in_mechs && !strcmp(ln, "mechanism")) {
            s->in_cap = 1;
            s->textlen = 0;
        }
    } else if (!strcmp(s->cur, "iq") && d == 3 && !strcmp(ln, "jid")) {
        s->in_cap = 1;
        s->textlen = 0;
    }
}

static void
xml_text(void *ud, const XML_Char *t, int len)
{
    struct sess *s = ud;
    if (!s->in_cap || len <= 0)
        return;
    if (!s->text && !(s->text = malloc(XL_TEXT_MAX)))
        return;
    if (s->textlen + (size_t)len >= XL_TEXT_MAX)
        len = (int)(XL_TEXT_MAX - 1 - s->textlen);
    memcpy(s->text + s->textlen, t, (size_t)len);
    s->textlen += (size_t)len;
}

static void stanza(struct sess *s);

static void
xml_end(void *ud, const XML_Char *name)
{
    struct sess *s = ud;
    const char *ln = local_name(name);
    int d = --s->depth;
    if (d == 0) {
        sess_fail(s, E_CLOSED, "stream closed by the server");
        return;
    }
    if (d == 1) {
        if (s->text)
            s->text[s->textlen] = 0;
        stanza(s);
        s->in_cap = 0;
        return;
    }
    if (!strcmp(s->cur, "features") && d >= 3 && s->in_mechs &&
        !strcmp(ln, "mechanism")) {
        if (s->text) {
            s->text[s->textlen] = 0;
            if (!strcmp(s->text, s->relogin ? o.fast : o.mech))
                s->f_mech = 1;
        }
        s->in_cap = 0;
    } else if (!strcmp(s->cur, "features") && d == 2 &&
               (!strcmp(ln, "mechanisms") || !strcmp(ln, "authentication"))) {
        s->in_mechs = 0;
    } else if (d == 2 && !strcmp(s->cur, "success")) {
        s->in_cap = 0;
    } else if (!strcmp(s->cur, "iq") && d == 3 && !strcmp(ln, "jid")) {
        if (s->text) {
            s->text[s->textlen] = 0;
            snprintf(s->jid, sizeof(s->jid), "%s", s->text);
        }
        s->in_cap = 0;
    }
}

/* ------------------------------------------------------------ TLS */
static void
tls_pump(struct sess *s)
{
    int r;
    if (!s->tls_up) {
        r = SSL_do_handshake(s->ssl);
        if (flush_tls(s) < 0) {
            sess_fail(s, E_WRITE, "write");
            return;
        }
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            char eb[160];
            ERR_error_string_n(ERR_get_error(), eb, sizeof(eb));
            ERR_clear_error();
            sess_fail(s, E_TLS, eb);
            return;
        }
        s->tls_up = 1;
        if (s->relogin && SSL_session_reused(s->ssl))
            rl_resumed++;
        open_stream(s);
        if (s->state == S_DEAD)
            return;
    }
}

static int
tls_start(struct sess *s)
{
    static const unsigned char alpn[] = "\x0bxmpp-client";
    s->ssl = SSL_new(sslctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        s->rbio = s->wbio = NULL;
        return -1;
    }
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_connect_state(s->ssl);
    if (o.fast)
        xl_fast_ssl(s);
    SSL_set_tlsext_host_name(s->ssl, o.domain);
    if (o.cafile)
        SSL_set1_host(s->ssl, o.domain);
    if (o.mode == M_DIRECT)
        SSL_set_alpn_protos(s->ssl, alpn, sizeof(alpn) - 1);
    s->state = S_HANDSHAKE;
    tls_pump(s);
    return 0;
}

/* ------------------------------------------------------------ SASL */
static int
cb_user(void *ctx, int id, const char **result, unsigned *len)
{
    struct sess *s = ctx;
    if (id == SASL_CB_USER) {
        *result = "";
        if (len)
            *len = 0;
        return SASL_OK;
    }
    if (!s->authname) {
        char name[XL_NAME_MAX];
        fmt_index(name, sizeof(name), o.user_fmt, s->idx + o.user_offset);
        if (!(s->authname = strdup(name)))
            return SASL_NOMEM;
    }
    *result = s->authname;
    if (len)
        *len = (unsigned)strlen(s->authname);
    return SASL_OK;
}

/* With --assertion-secret: what xedge itself sends a backend as the PLAIN
 * password (doc/assertion.md), so that a session can log in to the very
 * Prosody behind xedge directly: "xe1:c2s:expiry:nonce:mac". */
static int
make_assertion(const char *user, char *out, size_t outmax)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16], md[32];
    char nonce[33], exp[24], ident[XL_NAME_MAX * 2], input[XL_NAME_MAX * 3], mac[65];
    unsigned mdlen = 0;
    size_t i;
    int n;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    for (i = 0; i < 16; i++) {
        nonce[2 * i] = hex[rnd[i] >> 4];
        nonce[2 * i + 1] = hex[rnd[i] & 15];
    }
    nonce[32] = 0;
    snprintf(exp, sizeof(exp), "%lld", (long long)time(NULL) + 60);
    n = snprintf(ident, sizeof(ident), "%s@%s", user, o.domain);
    if (n < 0 || (size_t)n >= sizeof(ident))
        return -1;
    for (i = 0; ident[i]; i++)
        if (ident[i] >= 'A' && ident[i] <= 'Z')
            ident[i] = (char)(ident[i] + 32);
    n = snprintf(input, sizeof(input), "xe1\nc2s\n%s\n%s\n%s", ident, exp, nonce);
    if (n < 0 || (size_t)n >= sizeof(input) ||
        !HMAC(EVP_sha256(), a_secret, (int)a_secret_len, (const unsigned char *)input,
              (size_t)n, md, &mdlen) ||
        mdlen != 32)
        return -1;
    for (i = 0; i < 32; i++) {
        mac[2 * i] = hex[md[i] >> 4];
        mac[2 * i + 1] = hex[md[i] & 15];
    }
    mac[64] = 0;
    n = snprintf(out, outmax, "xe1:c2s:%s:%s:%s", exp, nonce, mac);
    return n < 0 || (size_t)n >= outmax ? -1 : 0;
}

static int
cb_pass(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
    struct sess *s = ctx;
    char pw[XL_NAME_MAX];
    size_t l;
    if (a_secret_len) {
        char user[XL_NAME_MAX];
        fmt_index(user, sizeof(user), o.user_fmt, s->idx + o.user_offset);
        if (make_assertion(user, pw, sizeof(pw)) != 0)
            return SASL_FAIL;
    } else {
        fmt_index(pw, sizeof(pw), o.pass_fmt, s->idx + o.user_offset);
    }
    l = strlen(pw);
    free(s->secret);
    s->secret = malloc(sizeof(*s->secret) + l);
    if (!s->secret)
        return SASL_NOMEM;
    s->secret->len = (unsigned long)l;
    memcpy(s->secret->data, pw, l);
    *psecret = s->secret;
    return SASL_OK;
}

static void
sasl_free(struct sess *s)
{
    if (s->sasl)
        sasl_dispose(&s->sasl);
    s->sasl = NULL;
    free(s->authname);
    s->authname = NULL;
    if (s->secret) {
        OPENSSL_cleanse(s->secret->data, s->secret->len);
        free(s->secret);
        s->secret = NULL;
    }
}

static void
send_sasl(struct sess *s, const char *elem, const char *out, unsigned outlen,
          int with_mech)
{
    char b64[4096], *buf;
    unsigned el = 0;
    size_t cap;
    if (outlen && sasl_encode64(out, outlen, b64, sizeof(b64), &el) != SASL_OK) {
        sess_fail(s, E_SASL_CLIENT, "encode64");
        return;
    }
    b64[el] = 0;
    cap = el + 200;
    buf = malloc(cap);
    if (!buf) {
        sess_fail(s, E_SASL_CLIENT, "no memory");
        return;
    }
    snprintf(buf, cap, "<%s xmlns='%s'%s%s%s>%s</%s>", elem,
             o.sasl2 ? "urn:xmpp:sasl:2" : "urn:ietf:params:xml:ns:xmpp-sasl",
             with_mech ? " mechanism='" : "", with_mech ? o.mech : "",
             with_mech ? "'" : "", el ? b64 : (with_mech ? "=" : ""), elem);
    send_str(s, buf);
    free(buf);
}

static void
auth_start(struct sess *s)
{
    const char *out = NULL, *chosen = NULL;
    unsigned outlen = 0;
    int r;
    s->cbs[0] = (sasl_callback_t){SASL_CB_AUTHNAME, CB(cb_user), s};
    s->cbs[1] = (sasl_callback_t){SASL_CB_USER, CB(cb_user), s};
    s->cbs[2] = (sasl_callback_t){SASL_CB_PASS, CB(cb_pass), s};
    s->cbs[3] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    if (sasl_client_new("xmpp", o.domain, NULL, NULL, s->cbs, 0, &s->sasl) != SASL_OK) {
        sess_fail(s, E_SASL_CLIENT, "sasl_client_new");
        return;
    }
    r = sasl_client_start(s->sasl, o.mech, NULL, &out, &outlen, &chosen);
    if (r != SASL_OK && r != SASL_CONTINUE) {
        sess_fail(s, E_SASL_CLIENT, sasl_errdetail(s->sasl));
        return;
    }
    if (!o.sasl2)
        send_sasl(s, "auth", out, outlen, 1);
    else if (xl_sasl2_send(s, o.mech, out, outlen) < 0)
        sess_fail(s, E_SASL_CLIENT, "<authenticate> too long");
}

static int
sasl_step_text(struct sess *s, const char **out, unsigned *outlen)
{
    char dec[4096];
    unsigned dl = 0;
    int r;
    if (!s->sasl)
        return SASL_FAIL;
    if (s->textlen &&
        sasl_decode64(s->text, (unsigned)s->textlen, dec, sizeof(dec), &dl) != SASL_OK)
        return SASL_BADPROT;
    r = sasl_client_step(s->sasl, dec, dl, NULL, out, outlen);
    return r;
}

/* ------------------------------------------------------------ stanzas */
static void
login_done(struct sess *s)
{
    uint64_t t = now_ns();
    s->state = S_READY;
    login_ms[logged_in++] = (double)(t - s->t0) / 1e6;
    settled++;
    inflight--;
    free(s->text); /* keep the idle session small */
    s->text = NULL;
    if (o.close_after) { /* ours, then the server's </stream:stream> */
        s->state = S_CLOSING;
        s->deadline = t + (uint64_t)(XL_CLOSE_WAIT_S * 1e9);
        send_str(s, "</stream:stream>");
        return;
    }
    if (o.presence)
        send_str(s, "<presence/>");
}

static void
on_message(struct sess *s)
{
    uint64_t t, sent;
    char *end;
    if (s->id[0] != 'm')
        return;
    if (!strcmp(s->type, "error")) {
        msg_err++;
        errors[E_MSG_ERROR]++;
        return;
    }
    /* id = m<sender>-<send time ns> */
    const char *dash = strchr(s->id, '-');
    if (!dash)
        return;
    sent = strtoull(dash + 1, &end, 10);
    t = now_ns();
    msg_recv++;
    if (t >= sent && rtt_n < XL_MAX_RTT_SAMPLES) {
        uint64_t us = (t - sent) / 1000;
        rtt_us[rtt_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    }
}

static void
stanza(struct sess *s)
{
    const char *n = s->cur;
    const char *out = NULL;
    unsigned outlen = 0;
    int r;

    if (!strcmp(n, "error")) {
        sess_fail(s, E_STREAM_ERROR, s->child[0] ? s->child : "?");
        return;
    }
    if (s->state == S_READY || s->state == S_CLOSING) {
        if (!strcmp(n, "message"))
            on_message(s);
        return;
    }
    if (!strcmp(n, "features")) {
        if (!s->authed) {
            if (o.mode == M_STARTTLS && !s->tls_up) {
                if (!s->f_starttls) {
                    sess_fail(s, E_NO_STARTTLS, "no <starttls/> offered");
                    return;
                }
                send_str(s, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
                return;
            }
            if (o.sasl2 && !s->f_sasl2) {
                sess_fail(s, E_MECH_NOT_OFFERED, "SASL2 not offered");
                return;
            }
            if (!s->f_mech) {
                sess_fail(s, E_MECH_NOT_OFFERED, s->relogin ? o.fast : o.mech);
                return;
            }
            if (!s->relogin)
                auth_start(s);
            else if (xl_fast_start(s) < 0)
                sess_fail(s, E_SASL_CLIENT, "no token, or the HT proof failed");
            return;
        }
        if (!s->f_bind) {
            sess_fail(s, E_BIND, "no <bind/> offered");
            return;
        }
        char buf[512];
        snprintf(
            buf, sizeof(buf),
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>load%u</resource></bind></iq>",
            s->idx);
        send_str(s, buf);
        return;
    }
    if (!strcmp(n, "proceed")) {
        s->restart = 1; /* TLS bytes follow: stop parsing this stream */
        s->stop = 1;
        XML_StopParser(s->xp, XML_FALSE);
        if (tls_start(s) < 0)
            sess_fail(s, E_TLS, "SSL_new");
        return;
    }
    if (!strcmp(n, "challenge")) {
        r = sasl_step_text(s, &out, &outlen);
        if (r != SASL_OK && r != SASL_CONTINUE) {
            sess_fail(s, E_SASL_CLIENT, s->sasl ? sasl_errdetail(s->sasl) : "step");
            return;
        }
        send_sasl(s, "response", out, outlen, 0);
        return;
    }
    if (!strcmp(n, "success") && s->relogin) {
        if (xl_fast_verify(s, s->text, s->textlen) < 0) {
            sess_fail(s, E_SASL_CLIENT, "FAST: the server's HMAC not verified");
            return;
        }
        s->authed = 1;
        login_done(s);
        return;
    }
    if (!strcmp(n, "success")) {
        if (s->textlen) {
            r = sasl_step_text(s, &out, &outlen);
            if (r != SASL_OK) {
                sess_fail(s, E_SASL_CLIENT, "server signature not verified");
                return;
            }
        } else if (strncmp(o.mech, "SCRAM", 5) == 0) {
            sess_fail(s, E_SASL_CLIENT, "SCRAM success without server signature");
            return;
        }
        sasl_free(s);
        s->authed = 1;
        if (o.sasl2) { /* no stream restart; Bind2 done inline, or no bind */
            if (o.fast && !s->token)
                sess_fail(s, E_SASL_CLIENT, "no FAST token in <success>");
            else
                login_done(s);
            return;
        }
        s->restart = 1;
        XML_StopParser(s->xp, XML_FALSE);
        return;
    }
    if (!strcmp(n, "failure")) {
        sess_fail(s, !strcmp(s->child, "not-authorized") ? E_AUTH_FAILED : E_SASL_CLIENT,
                  s->child[0] ? s->child : "failure");
        return;
    }
    if (!strcmp(n, "iq") && !strcmp(s->id, "bind1")) {
        if (strcmp(s->type, "result") || !s->jid[0]) {
            sess_fail(s, E_BIND, s->child[0] ? s->child : "bind failed");
            return;
        }
        login_done(s);
        return;
    }
}

/* ------------------------------------------------------------ sockets */
static void
feed(struct sess *s, const char *data, size_t len)
{
    if (s->stop || s->state == S_DEAD || !s->xp)
        return;
    if (XML_Parse(s->xp, data, (int)len, 0) == XML_STATUS_ERROR) {
        if (s->restart || s->state == S_DEAD)
            goto out;
        sess_fail(s, E_PARSE, XML_ErrorString(XML_GetErrorCode(s->xp)));
        return;
    }
out:
    if (s->restart && s->state != S_DEAD && s->authed && !s->stop)
        open_stream(s); /* after <success/> */
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    *buf = uv_buf_init(readbuf, sizeof(readbuf));
}

static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct sess *s = st->data;
    char plain[16384];
    if (n == 0)
        return;
    if (n < 0) {
        static const char *const when[] = {[S_IDLE] = "",
                                           [S_CONNECTING] = "",
                                           [S_HANDSHAKE] = " in the TLS handshake",
                                           [S_STREAM] = " before the login was done",
                                           [S_READY] = " after the login"};
        char d[128];
        snprintf(d, sizeof(d), "%s%s%s",
                 n == UV_EOF ? "closed by the server" : uv_strerror((int)n),
                 s->state <= S_READY ? when[s->state] : "",
                 s->state == S_STREAM && !s->tls_up && o.mode != M_PLAIN
                     ? " (before TLS: a per-address limit?)"
                     : "");
        if (s->state != S_DEAD)
            sess_fail(s, E_CLOSED, d);
        return;
    }
    if (s->state == S_DEAD)
        return;
    if (!s->ssl) {
        feed(s, buf->base, (size_t)n);
        return;
    }
    if (BIO_write(s->rbio, buf->base, (int)n) != n) {
        sess_fail(s, E_TLS, "BIO_write");
        return;
    }
    if (!s->tls_up) {
        tls_pump(s);
        if (s->state == S_DEAD || !s->tls_up)
            return;
    }
    for (;;) {
        int r = SSL_read(s->ssl, plain, sizeof(plain));
        if (r <= 0) {
            int e = SSL_get_error(s->ssl, r);
            flush_tls(s);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            if (e == SSL_ERROR_ZERO_RETURN)
                sess_fail(s, E_CLOSED, "TLS close_notify");
            else
                sess_fail(s, E_TLS, "SSL_read");
            ERR_clear_error();
            return;
        }
        feed(s, plain, (size_t)r);
        if (s->state == S_DEAD)
            return;
    }
}

static void
on_connect(uv_connect_t *req, int status)
{
    struct sess *s = req->data;
    if (s->state == S_DEAD)
        return;
    if (status < 0) {
        sess_fail(s, E_CONNECT, uv_strerror(status));
        return;
    }
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (o.mode == M_DIRECT) {
        if (tls_start(s) < 0)
            sess_fail(s, E_TLS, "SSL_new");
    } else {
        open_stream(s);
    }
}

static void
sess_release(struct sess *s)
{
    sasl_free(s);
    /* OpenSSL marks the session of a connection freed without a shutdown as
     * not resumable (TLS 1.2's rule); a TLS 1.3 client keeps its tickets
     * whatever the end of the connection (a reset, a restarted server) */
    if (s->ssl && o.fast)
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    if (s->ssl)
        SSL_free(s->ssl); /* frees the BIOs */
    s->ssl = NULL;
    s->rbio = s->wbio = NULL;
    if (s->xp)
        XML_ParserFree(s->xp);
    s->xp = NULL;
    free(s->text);
    s->text = NULL;
}

static void
on_close(uv_handle_t *h)
{
    struct sess *s = h->data;
    sess_release(s);
    s->closing = 0;
    alive--;
}

static void
sess_close(struct sess *s)
{
    if (s->open) {
        s->open = 0;
        s->closing = 1;
        uv_close((uv_handle_t *)&s->tcp, on_close);
    }
}

void
sess_fail(struct sess *s, enum err e, const char *detail)
{
    enum state was = s->state;
    if (was == S_DEAD)
        return;
    s->state = S_DEAD;
    s->stop = 1;
    if (was == S_CLOSING || (was == S_READY && o.relogin && !rl_on)) {
        /* the end of a closing session, or a held one the server closed
         * (xedge restarted) that will log in again: not a failure */
        if (was == S_READY)
            rl_lost++;
        if (s->xp)
            XML_StopParser(s->xp, XML_FALSE);
        sess_close(s);
        return;
    }
    errors[e]++;
    if (rl_on && rl_failed_listed < o.fail_list) { /* each failed re-login, why */
        rl_failed_listed++;
        printf("RELOGIN_FAIL=session %u: %s: %s\n", s->idx, err_names[e],
               detail ? detail : "");
    }
    if (errors[e] == 1)
        snprintf(err_detail[e], sizeof(err_detail[e]), "%s", detail ? detail : "");
    if (errors[e] <= 3)
        say("session %u: %s: %s", s->idx, err_names[e], detail ? detail : "");
    if (was != S_READY && was != S_IDLE) {
        settled++;
        inflight--;
    }
    if (s->xp)
        XML_StopParser(s->xp, XML_FALSE);
    sess_close(s);
}

static void
sess_start(struct sess *s)
{
    struct sockaddr_in src;
    uv_os_fd_t fd;
    int one = 1, r;

    s->t0 = now_ns();
    s->deadline = s->t0 + (uint64_t)(o.login_timeout * 1e9);
    s->state = S_CONNECTING;
    started++;
    inflight++;
    r = uv_tcp_init_ex(loop, &s->tcp, AF_INET);
    if (r < 0) {
        sess_fail(s, E_CONNECT, uv_strerror(r)); /* nothing to close yet */
        return;
    }
    s->tcp.data = s;
    s->open = 1;
    alive++;
    uv_tcp_nodelay(&s->tcp, 1);
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(source_base + (s->idx % o.sources));
    r = o.source ? uv_tcp_bind(&s->tcp, (const struct sockaddr *)&src, 0) : 0;
    if (r == 0) {
        s->creq.data = s;
        r = uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&target,
                           on_connect);
    }
    if (r < 0)
        sess_fail(s, E_CONNECT, uv_strerror(r));
}

/* ------------------------------------------------------------ pacing */
static void
emit_phase(const char *name)
{
    printf("PHASE=%s\n", name);
    fflush(stdout);
}

static void
send_message(struct sess *s)
{
    char buf[XL_NAME_MAX * 2 + 200];
    const char *to = s->jid;
    if (o.msg_pairs) {
        struct sess *p = &ss[s->idx ^ 1u];
        if ((s->idx ^ 1u) >= o.sessions || p->state != S_READY)
            p = s;
        to = p->jid;
    }
    snprintf(buf, sizeof(buf),
             "<message to='%s' id='m%u-%" PRIu64
             "' type='chat'><body>xedge-load</body></message>",
             to, s->idx, now_ns());
    send_str(s, buf);
    if (s->state != S_DEAD)
        msg_sent++;
}

static double
wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void finish(void);
static void print_errors(const char *prefix);

/* The first logins are done: report them (FIRST_*), and count the re-logins
 * from zero; held sessions are closed (</stream:stream>) before their turn. */
static void
relogin_begin(uint64_t now)
{
    first_ok = logged_in;
    first_failed = settled - logged_in;
    first_s = (double)(t_login_end - t_begin - paused_ns) / 1e9;
    printf("FIRST_LOGINS_OK=%u\nFIRST_LOGINS_FAILED=%u\nFIRST_LOGIN_SECONDS=%.3f\n",
           first_ok, first_failed, first_s);
    print_errors("FIRST_");
    printf("SESSIONS_LOST=%u\n", rl_lost);
    memset(errors, 0, sizeof(errors));
    memset(err_detail, 0, sizeof(err_detail));
    started = settled = logged_in = inflight = 0;
    rl_on = 1;
    t_begin = now;
    paused_ns = 0;
    for (unsigned i = 0; i < o.sessions; i++)
        if (ss[i].state == S_READY) { /* still held: ours, then theirs */
            ss[i].state = S_CLOSING;
            ss[i].deadline = now + (uint64_t)(XL_CLOSE_WAIT_S * 1e9);
            send_str(&ss[i], "</stream:stream>");
        }
    emit_phase("relogin");
    phase = 6;
}

static void
relogin_pace(void)
{
    unsigned conc = o.relogin_conc ? o.relogin_conc : o.concurrency;
    while (started < o.sessions && inflight < conc) {
        struct sess *s = &ss[started];
        if (!s->token) { /* its first login failed: nothing to re-login with */
            rl_skipped++;
            started++;
            continue;
        }
        if (s->open || s->closing)
            break; /* its last connection is not closed yet */
        s->state = S_IDLE;
        s->tls_up = s->authed = s->restart = s->stop = s->in_mechs = s->in_cap = 0;
        s->jid[0] = 0;
        s->relogin = 1;
        sess_start(s);
    }
}

static void
on_tick(uv_timer_t *t)
{
    uint64_t now = now_ns();
    double el;
    static uint64_t last_scan, last_progress;

    if (!last_progress)
        last_progress = now;

    if (interrupted || now >= t_end_ns) {
        if (!interrupted)
            say("--duration reached: stopping");
        finish();
        return;
    }
    if (now - last_scan >= 100000000ull) { /* login timeouts, every 100 ms */
        last_scan = now;
        for (unsigned i = 0; i < o.sessions; i++) {
            struct sess *s = &ss[i];
            if (s->state > S_IDLE && s->state < S_READY && now > s->deadline)
                sess_fail(s, E_LOGIN_TIMEOUT, "no login in --login-timeout");
            else if (s->state == S_CLOSING && now > s->deadline)
                sess_fail(s, E_CLOSED, "no </stream:stream> from the server");
        }
    }
    if (now - last_progress >= 5000000000ull) {
        last_progress = now;
        say("started=%u logged_in=%u failed=%u alive=%u msgs=%" PRIu64 "/%" PRIu64,
            started, logged_in, settled - logged_in, alive, msg_recv, msg_sent);
    }
    switch (phase) {
    case 0: /* logins */
        if (o.pause_at && !paused_done) {
            if (!paused_t && settled >= o.pause_at) {
                printf("PAUSE_LOGINS_OK=%u\n", logged_in);
                emit_phase("paused");
                paused_t = now;
            }
            if (paused_t && (double)(now - paused_t) / 1e9 >= o.pause) {
                paused_done = 1;
                paused_ns = now - paused_t;
                emit_phase("resumed");
            }
        }
        el = (double)(now - t_begin - paused_ns) / 1e9;
        while (started < o.sessions && inflight < o.concurrency &&
               (!o.pause_at || paused_done || started < o.pause_at) &&
               (o.rate <= 0 || started < (unsigned)(o.rate * el) + 1))
            sess_start(&ss[started]);
        if (settled >= o.sessions) {
            t_login_end = now;
            emit_phase("logged_in");
            phase = 1;
            phase_t = now;
        }
        break;
    case 1: /* hold */
        if ((double)(now - phase_t) / 1e9 >= o.hold &&
            (o.msg_at <= 0 || wall_s() >= o.msg_at)) {
            emit_phase("hold_done");
            phase = o.relogin ? 5 : o.msg_rate > 0 && logged_in > 0 ? 2 : 4;
            phase_t = t_msg_begin = now;
        }
        break;
    case 2: /* messages at --msg-rate for --msg-duration */
        el = (double)(now - phase_t) / 1e9;
        if (el >= o.msg_duration) {
            t_msg_end = now;
            phase = 3;
            phase_t = now;
            break;
        }
        {
            uint64_t due = (uint64_t)(o.msg_rate * el) + 1;
            unsigned guard = 0;
            while (msg_sent < due && guard++ < o.sessions) {
                struct sess *s = &ss[rr++ % o.sessions];
                if (s->state == S_READY)
                    send_message(s);
            }
            if (alive == 0) {
                t_msg_end = now;
                phase = 3;
                phase_t = now;
            }
        }
        break;
    case 3: /* drain */
        if (msg_recv + msg_err >= msg_sent ||
            (double)(now - phase_t) / 1e9 >= o.msg_timeout) {
            emit_phase("messages_done");
            phase = 4;
        }
        break;
    case 5: /* the re-logins wait for SIGUSR1 or --relogin-after */
        if (rl_go || (o.relogin == 2 && (double)(now - phase_t) / 1e9 >= o.relogin_after))
            relogin_begin(now);
        break;
    case 6: /* re-logins, --relogin-concurrency in flight */
        relogin_pace();
        if (settled + rl_skipped >= o.sessions) {
            t_login_end = now;
            emit_phase("relogged_in");
            phase = 7;
            phase_t = now;
        }
        break;
    case 7: /* --close-after-login: the closes, at most XL_CLOSE_WAIT_S; else --hold */
        if (o.close_after ? alive == 0 || (double)(now - phase_t) / 1e9 > XL_CLOSE_WAIT_S
                          : (double)(now - phase_t) / 1e9 >= o.hold)
            phase = 4;
        break;
    default:
        finish();
        break;
    }
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double
pct_d(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

static double
pct_u(const uint32_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

static void
close_all(uv_handle_t *h, void *arg)
{
    uv_os_fd_t fd;
    struct linger lg = {1, 0};
    if (uv_is_closing(h))
        return;
    /* an abortive close: no TIME_WAIT left behind on this machine's ports */
    if (h->type == UV_TCP && !o.graceful && uv_fileno(h, &fd) == 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    uv_close(h, h->type == UV_TCP ? on_close : NULL);
}

/* ERRORS_<KIND>, WHY_<KIND> (the first failure's detail) and ERRORS. */
static void
print_errors(const char *prefix)
{
    uint64_t total = 0;
    for (int e = 0; e < E_COUNT; e++) {
        char up[32];
        size_t k;
        for (k = 0; err_names[e][k] && k < sizeof(up) - 1; k++)
            up[k] = (char)(err_names[e][k] >= 'a' && err_names[e][k] <= 'z'
                               ? err_names[e][k] - 32
                               : err_names[e][k]);
        up[k] = 0;
        total += errors[e];
        printf("%sERRORS_%s=%" PRIu64 "\n", prefix, up, errors[e]);
        if (errors[e]) { /* why: the first failure of the kind, on one line */
            for (k = 0; err_detail[e][k]; k++)
                if (err_detail[e][k] == '\n' || err_detail[e][k] == '=')
                    err_detail[e][k] = ' ';
            printf("%sWHY_%s=%s\n", prefix, up, err_detail[e]);
        }
    }
    printf("%sERRORS=%" PRIu64 "\n", prefix, total);
}

static int finished;

static void
finish(void)
{
    uint64_t now = now_ns(), total_err = 0;
    double login_s, el_s;
    unsigned held = 0;

    if (finished)
        return;
    finished = 1;
    if (phase == 0)
        t_login_end = now;
    if (phase == 2)
        t_msg_end = now;
    if (msg_sent > msg_recv + msg_err)
        errors[E_MSG_LOST] = msg_sent - msg_recv - msg_err;
    for (unsigned i = 0; i < started; i++)
        if (ss[i].state == S_READY)
            held++;
    login_s = (double)(t_login_end - t_begin - paused_ns) / 1e9;
    el_s = (double)(now - t_begin) / 1e9;
    qsort(login_ms, logged_in, sizeof(*login_ms), cmp_d);
    qsort(rtt_us, rtt_n, sizeof(*rtt_us), cmp_u32);
    for (int e = 0; e < E_COUNT; e++)
        total_err += errors[e];

    printf("SESSIONS_TARGET=%u\n", o.sessions);
    printf("SESSIONS_STARTED=%u\n", started);
    printf("LOGINS_OK=%u\n", logged_in);
    printf("LOGINS_FAILED=%u\n", settled - logged_in);
    printf("SESSIONS_HELD=%u\n", held);
    printf("LOGIN_SECONDS=%.3f\n", login_s);
    printf("LOGINS_PER_S=%.1f\n", login_s > 0 ? logged_in / login_s : 0);
    printf("LOGIN_P50_MS=%.2f\n", pct_d(login_ms, logged_in, 50));
    printf("LOGIN_P99_MS=%.2f\n", pct_d(login_ms, logged_in, 99));
    printf("LOGIN_MAX_MS=%.2f\n", logged_in ? login_ms[logged_in - 1] : 0);
    printf("MSG_SENT=%" PRIu64 "\n", msg_sent);
    printf("MSG_RECEIVED=%" PRIu64 "\n", msg_recv);
    printf("MSG_PER_S=%.1f\n", t_msg_end > t_msg_begin
                                   ? msg_sent / ((double)(t_msg_end - t_msg_begin) / 1e9)
                                   : 0);
    printf("MSG_RTT_P50_US=%.0f\n", pct_u(rtt_us, rtt_n, 50));
    printf("MSG_RTT_P99_US=%.0f\n", pct_u(rtt_us, rtt_n, 99));
    printf("MSG_RTT_P999_US=%.0f\n", pct_u(rtt_us, rtt_n, 99.9));
    printf("MSG_RTT_MAX_US=%.0f\n", rtt_n ? (double)rtt_us[rtt_n - 1] : 0);
    print_errors("");
    if (o.relogin) {
        printf("FIRST_LOGINS_OK=%u\nFIRST_LOGINS_FAILED=%u\n",
               rl_on ? first_ok : logged_in, rl_on ? first_failed : settled - logged_in);
        printf("RELOGINS_STARTED=%d\nRELOGINS_RESUMED=%u\nRELOGINS_SKIPPED=%u\n", rl_on,
               rl_resumed, rl_skipped);
        printf("SESSIONS_LOST=%u\n", rl_lost);
    }
    printf("ELAPSED_S=%.3f\n", el_s);
    printf("INTERRUPTED=%d\n", interrupted);
    fflush(stdout);

    if (!o.quiet) {
        fprintf(stderr,
                "xedge-load: %u/%u sessions logged in to %s:%d (%s, %s) in %.2f s: "
                "%.1f logins/s, latency p50 %.2f ms p99 %.2f ms\n",
                logged_in, o.sessions, o.host, o.port,
                o.mode == M_STARTTLS ? "STARTTLS"
                : o.mode == M_DIRECT ? "Direct TLS"
                                     : "plaintext",
                o.mech, login_s, login_s > 0 ? logged_in / login_s : 0,
                pct_d(login_ms, logged_in, 50), pct_d(login_ms, logged_in, 99));
        if (msg_sent)
            fprintf(stderr,
                    "xedge-load: messages %" PRIu64 " sent, %" PRIu64
                    " back; round trip p50 %.0f us p99 %.0f us p99.9 %.0f us\n",
                    msg_sent, msg_recv, pct_u(rtt_us, rtt_n, 50),
                    pct_u(rtt_us, rtt_n, 99), pct_u(rtt_us, rtt_n, 99.9));
        fprintf(stderr, "xedge-load: errors %" PRIu64, total_err);
        for (int e = 0; e < E_COUNT; e++)
            if (errors[e])
                fprintf(stderr, " %s=%" PRIu64, err_names[e], errors[e]);
        fputc('\n', stderr);
    }
    uv_timer_stop(&tick);
    if (o.graceful)
        for (unsigned i = 0; i < started; i++)
            if (ss[i].open && ss[i].state == S_READY)
                send_str(&ss[i], "</stream:stream>");
    uv_walk(loop, close_all, NULL);
}

static void
on_sigint(uv_signal_t *h, int sig)
{
    interrupted = 1;
}

static void
on_sigusr1(uv_signal_t *h, int sig)
{
    rl_go = 1;
}

int
main(int argc, char **argv)
{
    struct in_addr a;
    struct rlimit rl;
    int rc;

    parse_args(argc, argv);
    if (!o.sources)
        o.sources = o.sessions / 20000 + 1;
    if (uv_ip4_addr(o.host, o.port, &target) != 0) {
        fprintf(stderr, "xedge-load: --host must be a numeric IPv4 address\n");
        return 2;
    }
    if (!o.source && (ntohl(target.sin_addr.s_addr) >> 24) == 127)
        o.source = "127.0.0.1"; /* loopback: spread over 127.0.0.1, .2, ... */
    if (o.source && inet_pton(AF_INET, o.source, &a) != 1) {
        fprintf(stderr, "xedge-load: --source must be a numeric IPv4 address\n");
        return 2;
    }
    source_base = o.source ? ntohl(a.s_addr) : 0;
    if ((uint64_t)source_base + o.sources - 1 > UINT32_MAX) {
        fprintf(stderr, "xedge-load: --source + --sources overflows\n");
        return 2;
    }
    /* one descriptor per session, plus a margin */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o.sessions + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)o.sessions + 64)
            say("warning: only %lu file descriptors for %u sessions",
                (unsigned long)rl.rlim_cur, o.sessions);
    }
    if (o.assertion_secret) {
        FILE *f = fopen(o.assertion_secret, "rb");
        if (!f) {
            fprintf(stderr, "xedge-load: --assertion-secret %s: %s\n", o.assertion_secret,
                    strerror(errno));
            return 2;
        }
        a_secret_len = fread(a_secret, 1, sizeof(a_secret), f);
        fclose(f);
        while (a_secret_len && strchr("\r\n \t", a_secret[a_secret_len - 1]))
            a_secret_len--;
        if (a_secret_len < 32 || a_secret_len >= sizeof(a_secret) ||
            strcmp(o.mech, "PLAIN") != 0) {
            fprintf(stderr,
                    "xedge-load: --assertion-secret: a secret of 32 bytes or more "
                    "(and below 4096), with --mech PLAIN\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    ss = calloc(o.sessions, sizeof(*ss));
    login_ms = calloc(o.sessions, sizeof(*login_ms));
    rtt_us = calloc(XL_MAX_RTT_SAMPLES, sizeof(*rtt_us));
    if (!ss || !login_ms || !rtt_us) {
        fprintf(stderr, "xedge-load: out of memory\n");
        return 1;
    }
    for (unsigned i = 0; i < o.sessions; i++)
        ss[i].idx = i;

    sslctx = SSL_CTX_new(TLS_client_method());
    if (!sslctx)
        return 1;
    SSL_CTX_set_session_cache_mode(sslctx, SSL_SESS_CACHE_OFF); /* full handshakes */
    SSL_CTX_set_options(sslctx, SSL_OP_NO_TICKET);
    if (o.fast && xl_fast_ctx(sslctx) < 0) /* but resumed ones with --fast */
        return 1;
    SSL_CTX_set_mode(sslctx, SSL_MODE_RELEASE_BUFFERS);
    if (o.cafile) {
        if (SSL_CTX_load_verify_locations(sslctx, o.cafile, NULL) != 1) {
            fprintf(stderr, "xedge-load: cannot load --cafile %s\n", o.cafile);
            return 2;
        }
        SSL_CTX_set_verify(sslctx, SSL_VERIFY_PEER, NULL);
    }
    if (sasl_client_init(NULL) != SASL_OK) {
        fprintf(stderr, "xedge-load: sasl_client_init failed\n");
        return 1;
    }

    loop = uv_default_loop();
    uv_timer_init(loop, &tick);
    uv_signal_init(loop, &sigint_h);
    uv_signal_start(&sigint_h, on_sigint, SIGINT);
    uv_signal_init(loop, &sigusr1_h);
    uv_signal_start(&sigusr1_h, on_sigusr1, SIGUSR1);
    t_begin = now_ns();
    t_end_ns = t_begin + (uint64_t)(o.duration * 1e9);
    uv_timer_start(&tick, on_tick, 0, XL_TICK_MS);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);

    rc = (logged_in == o.sessions && msg_recv == msg_sent && !msg_err && !interrupted &&
          (!o.relogin || (rl_on && first_ok == o.sessions)))
             ? 0
             : 1;
    for (unsigned i = 0; i < o.sessions; i++) {
        sess_release(&ss[i]);
        xl_fast_free(&ss[i]);
    }
    free(ss);
    free(login_ms);
    free(rtt_us);
    SSL_CTX_free(sslctx);
    sasl_client_done();
    return rc;
}
