/* xedge: server-to-server streams. See s2s.h and doc/federation.md. */
#include "s2s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dialback.h"
#include "log.h"
#include "metrics.h"
#include "sasl.h"
#include "xmlstream.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XE_NS_SASL_CB "urn:xmpp:sasl-cb:0" /* XEP-0440 */

enum state {
    ST_HEADER,    /* waiting for the peer's stream header */
    ST_NEGOTIATE, /* IN/BACKEND: header answered; OUT/VERIFY/LINK: features next */
    ST_PROCEED,   /* OUT/VERIFY: <starttls/> sent */
    ST_SASL,      /* OUT: <auth mechanism='EXTERNAL'/> sent */
    ST_SECRET,    /* OUT: SASL with the peer's secret under way */
    ST_RESULT,    /* OUT/VERIFY/LINK: db:result or db:verify sent */
    ST_WAIT,      /* BACKEND: waiting for the outbound verdict */
    ST_DONE,      /* OUT/LINK: authenticated; BACKEND: pumped */
    ST_CLOSED,    /* an error or the end was sent */
};

struct pair {
    char *from, *to;
};

struct ev {
    struct ev *next;
    enum xe_s2s_event_type type;
    char *from, *to, *key, *id;
    unsigned char *raw;
    size_t len;
};

static void
ev_free(struct ev *e)
{
    if (e == NULL)
        return;
    free(e->from);
    free(e->to);
    if (e->key)
        OPENSSL_cleanse(e->key, strlen(e->key));
    free(e->key);
    free(e->id);
    free(e->raw);
    free(e);
}

struct xe_s2s {
    struct xe_s2s_params p;
    char *from, *to; /* OUT/VERIFY/LINK: ours, as given */
    char *key, *stream_id, *assertion;
    struct xe_xmlstream *xs;
    struct xe_buf out;
    enum state st;
    enum xe_s2s_action action; /* set by a callback that stops the parser */
    bool tls, header_sent, restarted;
    bool in_logged;             /* event=s2s-in was logged */
    bool reset_pending;         /* restart the parser once the callback returned */
    bool resuming;              /* BACKEND: backend_resume's header is parsed */
    bool ext_dropped;           /* OUT: the peer ended the stream during EXTERNAL */
    bool legacy;                /* IN/OUT/VERIFY: the peer's stream has no version
                                   (pre-XMPP-1.0, RFC 6120 4.7.5): dialback only */
    char id[XE_S2S_MAX_ID_BUF]; /* IN/BACKEND: ours; OUT/VERIFY/LINK: theirs */
    char *local, *remote;       /* IN/BACKEND: from the peer's header */
    char **names;               /* what the peer's certificate is valid for */
    size_t n_names;
    struct pair pairs[XE_S2S_MAX_PAIRS];
    size_t n_pairs;
    unsigned n_refused; /* dialback keys refused on this stream */
    unsigned pending;   /* IN: db:result requests not answered yet */
    struct xe_s2s_request req;
    enum xe_s2s_result verdict;
    const char *verdict_cond;
    bool external;
    bool verdict_new;
    /* SASL with the peer's pre-shared secret */
    struct xe_sasl *sasl;               /* IN: the server side, once offered */
    struct xe_sasl_client *sclient;     /* OUT: the client side */
    bool sasl_busy;                     /* IN: an exchange is under way */
    bool sasl_ok;                       /* OUT: it succeeded (restart next) */
    bool client_done;                   /* OUT: the client has nothing more to say */
    bool secret_failed;                 /* OUT: the remote refused our secret */
    unsigned failures;                  /* IN: failed attempts */
    char mech[32];                      /* the SASL mechanism of the secret */
    struct ev *evs, *evs_tail, *ev_cur; /* IN: events for the glue */
    char st_from[XE_S2S_MAX_DOMAIN_BUF], st_to[XE_S2S_MAX_DOMAIN_BUF];

    /* the TLS session's channel bindings (SASL with the secret: -PLUS) */
    struct xe_cbind cb[XE_CB_MAX];
    size_t n_cb;
    char peer_cond[48];                       /* the peer's stream error, if any */
    char peer_text[XE_S2S_MAX_LOG_TEXT + 1];  /* and its text (sanitized) */
    char fail_text[XE_S2S_MAX_LOG_TEXT + 64]; /* OUT/VERIFY: why it failed */
};

static const char *const kind_names[] = {"in", "out", "verify", "backend", "link"};

/* OUT/VERIFY/LINK: why the stream failed, for the log and the backend's
 * bounce; the first reason stays. */
static void __attribute__((format(printf, 2, 3)))
set_fail(struct xe_s2s *s, const char *fmt, ...)
{
    va_list ap;

    if (s->fail_text[0] || s->p.kind == XE_S2S_IN || s->p.kind == XE_S2S_BACKEND)
        return;
    va_start(ap, fmt);
    vsnprintf(s->fail_text, sizeof(s->fail_text), fmt, ap);
    va_end(ap);
}

int
xe_jid_domain(const char *jid, char *out, size_t outlen)
{
    const char *at, *slash, *d;
    size_t n;

    if (jid == NULL || outlen == 0)
        return -1;
    slash = strchr(jid, '/');
    at = strchr(jid, '@');
    d = (at && (!slash || at < slash)) ? at + 1 : jid;
    n = slash ? (size_t)(slash - d) : strlen(d);
    if (n == 0 || n >= outlen || n > XE_S2S_MAX_DOMAIN)
        return -1;
    memcpy(out, d, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] <= ' ' || out[i] == '@' || out[i] == '<' ||
            out[i] == '>' || out[i] == '\'' || out[i] == '"' || out[i] == '&' ||
            out[i] == '*')
            return -1;
    xe_tolower_ascii(out);
    return 0;
}

static void
send_header(struct xe_s2s *s, const char *from, const char *to, bool with_id)
{
    xe_buf_append_str(&s->out,
                      "<?xml version='1.0'?><stream:stream xmlns='" XE_NS_SERVER
                      "' xmlns:stream='" XE_NS_STREAMS "' xmlns:db='" XE_NS_DIALBACK "'");
    if (with_id)
        xe_buf_appendf(&s->out, " id='%s'", s->id);
    if (from && *from) {
        xe_buf_append_str(&s->out, " from='");
        xe_buf_append_escaped(&s->out, from);
        xe_buf_append_str(&s->out, "'");
    }
    if (to && *to) {
        xe_buf_append_str(&s->out, " to='");
        xe_buf_append_escaped(&s->out, to);
        xe_buf_append_str(&s->out, "'");
    }
    /* to a pre-1.0 peer's stream: no version either (RFC 6120 4.7.5) */
    xe_buf_append_str(&s->out,
                      s->legacy && (s->p.kind == XE_S2S_IN) ? ">" : " version='1.0'>");
    s->header_sent = true;
}

static const char *
our_domain(const struct xe_s2s *s)
{
    return (s->p.kind == XE_S2S_IN || s->p.kind == XE_S2S_BACKEND) ? s->local : s->from;
}

void
xe_s2s_stream_error(struct xe_s2s *s, const char *condition, const char *text)
{
    if (s->st == ST_CLOSED)
        return;
    if (!s->header_sent) {
        if (s->p.kind == XE_S2S_IN || s->p.kind == XE_S2S_BACKEND)
            xe_random_id(s->id);
        send_header(s, our_domain(s), NULL,
                    s->p.kind == XE_S2S_IN || s->p.kind == XE_S2S_BACKEND);
    }
    xe_buf_appendf(&s->out, "<stream:error><%s xmlns='" XE_NS_STREAM_ERRORS "'/>",
                   condition);
    if (text && *text) {
        xe_buf_append_str(&s->out,
                          "<text xmlns='" XE_NS_STREAM_ERRORS "' xml:lang='en'>");
        xe_buf_append_escaped(&s->out, text);
        xe_buf_append_str(&s->out, "</text>");
    }
    xe_buf_append_str(&s->out, "</stream:error></stream:stream>");
    s->st = ST_CLOSED;
    set_fail(s, "the remote server's stream was refused: %s%s%s", condition,
             text && *text ? ", " : "", text ? text : "");
    xe_metrics_inc(XE_M_STREAM_ERRORS, condition, NULL);
    xe_info("event=stream-error kind=s2s-%s peer=%s local=%s remote=%s condition=%s "
            "text=\"%s\"",
            kind_names[s->p.kind], s->p.peer, our_domain(s) ? our_domain(s) : "-",
            s->p.kind == XE_S2S_IN || s->p.kind == XE_S2S_BACKEND
                ? (s->remote ? s->remote : "-")
                : (s->to ? s->to : "-"),
            condition, text ? text : "");
}

void
xe_s2s_end(struct xe_s2s *s)
{
    if (s->st == ST_CLOSED)
        return;
    if (s->header_sent)
        xe_buf_append_str(&s->out, "</stream:stream>");
    s->st = ST_CLOSED;
}

static int
stop_with(struct xe_s2s *s, enum xe_s2s_action a)
{
    s->action = a;
    return XE_XS_STOP;
}

static int
error_stop(struct xe_s2s *s, const char *condition, const char *text)
{
    xe_s2s_stream_error(s, condition, text);
    return stop_with(s, XE_S2S_CLOSE);
}

static bool
is_local(const struct xe_s2s *s, const char *d)
{
    return d && s->p.is_local && s->p.is_local(s->p.ctx, d);
}

static enum xe_s2s_policy
policy_of(const struct xe_s2s *s, const char *d)
{
    /* a stream without `from` (legacy): its db:result names the domain */
    return s->p.policy && d ? s->p.policy(s->p.ctx, d) : XE_S2S_POLICY_DIALBACK;
}

/* Label values for the metrics: ours, or "other" (a peer names mechanisms
 * and failure conditions: they must not grow the number of series). */
static const char *
metric_mech(const char *m)
{
    static const char *const known[] = {
        "external",           "dialback",   "SCRAM-SHA-1",      "SCRAM-SHA-256",
        "SCRAM-SHA-512",      "DIGEST-MD5", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-512-PLUS", NULL};
    for (size_t i = 0; m && known[i]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

static const char *
metric_result(const char *r)
{
    static const char *const known[] = {"success",
                                        "invalid",
                                        "aborted",
                                        "account-disabled",
                                        "credentials-expired",
                                        "encryption-required",
                                        "incorrect-encoding",
                                        "invalid-authzid",
                                        "invalid-mechanism",
                                        "malformed-request",
                                        "mechanism-too-weak",
                                        "not-authorized",
                                        "temporary-auth-failure",
                                        "remote-server-not-found",
                                        "remote-server-timeout",
                                        "item-not-found",
                                        "policy-violation",
                                        "internal-server-error",
                                        "forbidden",
                                        "not-acceptable",
                                        "resource-constraint",
                                        "server-not-verified",
                                        "undefined-condition",
                                        NULL};
    for (size_t i = 0; r && known[i]; i++)
        if (strcmp(r, known[i]) == 0)
            return known[i];
    return "other";
}

static void
count_auth(const struct xe_s2s *s, bool in, const char *mech, const char *result)
{
    (void)s;
    xe_metrics_inc(in ? XE_M_S2S_AUTH_IN : XE_M_S2S_AUTH_OUT, metric_mech(mech),
                   metric_result(result));
}

static bool
peer_secret(const struct xe_s2s *s, const char *d, struct xe_s2s_secret *sec)
{
    memset(sec, 0, sizeof(*sec));
    return d && s->p.peer_secret && s->p.peer_secret(s->p.ctx, d, sec) && sec->secret &&
           sec->n_mechs > 0;
}

/* base64 of LEN bytes into OUT (NUL-terminated; "=" for nothing), or -1 */
static int
b64_out(const char *data, size_t len, char *out, size_t outmax)
{
    size_t n = 0;

    if (len == 0) {
        snprintf(out, outmax, "=");
        return 0;
    }
    if (xe_sasl_b64_encode(data, len, out, outmax - 1, &n) < 0)
        return -1;
    out[n] = '\0';
    return 0;
}

/* A certificate's DNS name with a wildcard (RFC 6125 6.4.3, as RFC 7590
 * allows for XMPP): "*" only as the whole left-most label, at least two
 * labels after it, matching exactly one label of d. (An xmppAddr never
 * carries one: xe_tls_peer_identities drops those, and a domain with "*"
 * is refused by xe_jid_domain.) */
static bool
wildcard_match(const char *pattern, const char *d)
{
    const char *rest = pattern + 2, *dot = strchr(d, '.');

    if (strncmp(pattern, "*.", 2) != 0 || strchr(rest, '.') == NULL ||
        strchr(rest, '*') != NULL || dot == NULL || dot == d)
        return false;
    return strcmp(dot + 1, rest) == 0;
}

static bool
cert_valid_for(const struct xe_s2s *s, const char *d)
{
    for (size_t i = 0; d && i < s->n_names; i++)
        if (strcmp(s->names[i], d) == 0 || wildcard_match(s->names[i], d))
            return true;
    return false;
}

bool
xe_s2s_pair_ok(const struct xe_s2s *s, const char *from, const char *to)
{
    for (size_t i = 0; i < s->n_pairs; i++)
        if (strcmp(s->pairs[i].from, from) == 0 && strcmp(s->pairs[i].to, to) == 0)
            return true;
    return false;
}

static bool
to_known(const struct xe_s2s *s, const char *to)
{
    for (size_t i = 0; i < s->n_pairs; i++)
        if (strcmp(s->pairs[i].to, to) == 0)
            return true;
    return false;
}

static int
add_pair(struct xe_s2s *s, const char *from, const char *to)
{
    if (xe_s2s_pair_ok(s, from, to))
        return 0;
    if (s->n_pairs == XE_S2S_MAX_PAIRS)
        return -1;
    s->pairs[s->n_pairs].from = xe_strdup(from);
    s->pairs[s->n_pairs].to = xe_strdup(to);
    s->n_pairs++;
    if (s->n_pairs == 1) { /* stanzas may now be large */
        struct xe_xmlstream_limits lim = {s->p.max_stanza, XE_S2S_MAX_DEPTH,
                                          XE_S2S_MAX_ATTRS};
        xe_xmlstream_set_limits(s->xs, &lim);
    }
    return 0;
}

/* ---- IN: a remote server's stream ---- */

/* IN: the server side of SASL with the peer's secret, made once the peer
 * (the header's from) is known to have one; true when it has mechanisms. */
static bool
in_secret_offer(struct xe_s2s *s)
{
    struct xe_s2s_secret sec;
    char *err = NULL;

    if (s->sasl)
        return true;
    if (s->remote == NULL || !peer_secret(s, s->remote, &sec))
        return false;
    s->sasl = xe_sasl_new_peer_tls(s->local, s->remote, sec.secret, sec.len, sec.mechs,
                                   sec.n_mechs, s->cb, s->n_cb, &err);
    if (s->sasl == NULL) {
        xe_warn("event=s2s-sasl-error peer=%s remote=%s local=%s error=\"%s\"", s->p.peer,
                s->remote, s->local, err ? err : "?");
        free(err);
        return false;
    }
    {
        const char *m[1];
        if (xe_sasl_mechanisms(s->sasl, m, 1) == 0) {
            xe_warn("event=s2s-sasl-error peer=%s remote=%s local=%s "
                    "error=\"none of the peer's mechanisms is loaded\"",
                    s->p.peer, s->remote, s->local);
            xe_sasl_free(&s->sasl);
            return false;
        }
    }
    return true;
}

static void
send_in_features(struct xe_s2s *s)
{
    enum xe_s2s_policy pol = policy_of(s, s->remote);

    xe_buf_append_str(&s->out, "<stream:features>");
    if (!s->tls) {
        xe_buf_append_str(&s->out, "<starttls xmlns='" XE_NS_TLS "'>");
        if (s->p.require_tls)
            xe_buf_append_str(&s->out, "<required/>");
        xe_buf_append_str(&s->out, "</starttls>");
    }
    if ((s->tls || !s->p.require_tls) && !s->restarted) {
        const char *m[XE_S2S_MAX_SECRET_MECHS];
        size_t n = 0;
        bool external = s->remote && cert_valid_for(s, s->remote) &&
                        pol != XE_S2S_POLICY_REFUSE && pol != XE_S2S_POLICY_SECRET;

        if (s->tls && pol != XE_S2S_POLICY_REFUSE && in_secret_offer(s))
            n = xe_sasl_mechanisms(s->sasl, m, XE_S2S_MAX_SECRET_MECHS);
        if (n || external) {
            xe_buf_append_str(&s->out, "<mechanisms xmlns='" XE_NS_SASL "'>");
            for (size_t i = 0; i < n; i++) /* the secret's first: preferred */
                xe_buf_appendf(&s->out, "<mechanism>%s</mechanism>", m[i]);
            if (external)
                xe_buf_append_str(&s->out, "<mechanism>EXTERNAL</mechanism>");
            xe_buf_append_str(&s->out, "</mechanisms>");
        }
        n = n ? xe_sasl_cb_types(s->sasl, m, XE_S2S_MAX_SECRET_MECHS) : 0;
        if (n > 0) { /* XEP-0440: the bindings the -PLUS mechanisms verify */
            xe_buf_append_str(&s->out,
                              "<sasl-channel-binding xmlns='" XE_NS_SASL_CB "'>");
            for (size_t i = 0; i < n; i++)
                xe_buf_appendf(&s->out, "<channel-binding type='%s'/>", m[i]);
            xe_buf_append_str(&s->out, "</sasl-channel-binding>");
        }
        if (pol == XE_S2S_POLICY_DIALBACK)
            xe_buf_append_str(&s->out, "<dialback xmlns='" XE_NS_DIALBACK_FEATURE
                                       "'><errors/></dialback>");
    } else if (s->restarted)
        xe_buf_append_str(&s->out, "<dialback xmlns='" XE_NS_DIALBACK_FEATURE
                                   "'><errors/></dialback>");
    xe_buf_append_str(&s->out, "</stream:features>");
}

/* A stream header of XMPP 1.0 or later (RFC 6120 4.7.5): version with a
 * major version of at least 1; none, or 0.x: a pre-1.0 (legacy) stream. */
static bool
version_1(const struct xe_xml_elem *h)
{
    const char *v = xe_xml_attr(h, "version");

    return v && v[0] >= '1' && v[0] <= '9';
}

/* IN: a pre-1.0 peer's stream (no version; jabberd2's s2s without a
 * certificate, old servers): no features, no TLS, no SASL: dialback only,
 * the domains taken from each db:result and db:verify (checked there against
 * ours and the policy). Only where encryption is not required. */
static int
in_legacy_header(struct xe_s2s *s, const struct xe_xml_elem *h)
{
    const char *to = xe_xml_attr(h, "to"), *from = xe_xml_attr(h, "from");
    char d[XE_S2S_MAX_DOMAIN_BUF];

    if (s->p.require_tls || s->tls) {
        xe_info("event=s2s-refused peer=%s remote=%s local=%s reason=legacy-stream",
                s->p.peer, from && xe_jid_domain(from, d, sizeof(d)) == 0 ? d : "-",
                to && xe_jid_domain(to, d, sizeof(d)) == 0 ? d : "-");
        return error_stop(s, "policy-violation",
                          s->tls ? "a stream without version='1.0' after TLS"
                                 : "encryption is required here: a stream without "
                                   "version='1.0' (pre-XMPP-1.0) cannot do STARTTLS");
    }
    s->legacy = true;
    if (to) {
        if (xe_jid_domain(to, d, sizeof(d)) < 0 || !is_local(s, d)) {
            xe_random_id(s->id);
            send_header(s, NULL, NULL, true);
            return error_stop(s, "host-unknown", "this domain is not served here");
        }
        s->local = xe_strdup(d);
    }
    if (from) {
        if (xe_jid_domain(from, d, sizeof(d)) < 0)
            return error_stop(s, "invalid-from", "malformed from");
        s->remote = xe_strdup(d);
    }
    xe_random_id(s->id);
    send_header(s, s->local, NULL, true);
    s->in_logged = true;
    xe_info("event=s2s-in peer=%s remote=%s local=%s tls=none legacy=yes", s->p.peer,
            s->remote ? s->remote : "-", s->local ? s->local : "-");
    s->st = ST_NEGOTIATE;
    return XE_XS_CONTINUE;
}

static int
in_header(struct xe_s2s *s, const struct xe_xml_elem *h, const char *default_ns)
{
    const char *to = xe_xml_attr(h, "to"), *from = xe_xml_attr(h, "from");
    char d[XE_S2S_MAX_DOMAIN_BUF];

    if (!xe_xml_is(h, XE_NS_STREAMS, "stream"))
        return error_stop(s, "invalid-namespace", "not a stream");
    if (default_ns == NULL || strcmp(default_ns, XE_NS_SERVER) != 0)
        return error_stop(s, "invalid-namespace",
                          "the stream's namespace must be "
                          "jabber:server");
    if (!version_1(h) && !s->restarted)
        return in_legacy_header(s, h);
    if (to == NULL || xe_jid_domain(to, d, sizeof(d)) < 0 || !is_local(s, d)) {
        /* the peer's from is echoed only as a well-formed domain: a bounded,
         * normalized name, never an arbitrary attribute value */
        xe_random_id(s->id);
        send_header(s, NULL, from && xe_jid_domain(from, d, sizeof(d)) == 0 ? d : NULL,
                    true);
        return error_stop(s, "host-unknown", "this domain is not served here");
    }
    free(s->local);
    s->local = xe_strdup(d);
    if (from) {
        if (xe_jid_domain(from, d, sizeof(d)) < 0)
            return error_stop(s, "invalid-from", "malformed from");
        free(s->remote);
        s->remote = xe_strdup(d);
        if (policy_of(s, d) == XE_S2S_POLICY_REFUSE) {
            xe_info("event=s2s-refused peer=%s remote=%s local=%s reason=policy",
                    s->p.peer, d, s->local);
            return error_stop(s, "policy-violation", "no federation with this domain");
        }
    }
    xe_random_id(s->id);
    send_header(s, s->local, s->remote, true);
    /* once per stream: its first header (before STARTTLS, or the first one
     * in a Direct TLS stream) */
    if (!s->restarted && !s->in_logged) {
        s->in_logged = true;
        xe_info("event=s2s-in peer=%s remote=%s local=%s tls=%s", s->p.peer,
                s->remote ? s->remote : "-", s->local, s->p.tls ? "direct" : "starttls");
    }
    send_in_features(s);
    s->st = ST_NEGOTIATE;
    return XE_XS_CONTINUE;
}

static int
copy_domain(const char *in, char *out)
{
    return in && xe_jid_domain(in, out, XE_S2S_MAX_DOMAIN_BUF) == 0 ? 0 : -1;
}

/* <db:result type='error'/> with a stanza error (type, condition and, if
 * given, a text: XEP-0220 2.4). */
static void
result_error_text(struct xe_s2s *s, const char *from, const char *to, const char *type,
                  const char *cond, const char *text)
{
    xe_buf_append_str(&s->out, "<db:result from='");
    xe_buf_append_escaped(&s->out, from);
    xe_buf_append_str(&s->out, "' to='");
    xe_buf_append_escaped(&s->out, to);
    xe_buf_appendf(&s->out,
                   "' type='error'><error type='%s'><%s xmlns='" NS_STANZAS "'/>", type,
                   cond);
    if (text && *text) {
        xe_buf_append_str(&s->out, "<text xmlns='" NS_STANZAS "' xml:lang='en'>");
        xe_buf_append_escaped(&s->out, text);
        xe_buf_append_str(&s->out, "</text>");
    }
    xe_buf_append_str(&s->out, "</error></db:result>");
}

static void
result_error(struct xe_s2s *s, const char *from, const char *to, const char *type,
             const char *cond)
{
    result_error_text(s, from, to, type, cond, NULL);
}

static void
push_event(struct xe_s2s *s, enum xe_s2s_event_type type, const char *from,
           const char *to, const char *key, const unsigned char *raw, size_t len)
{
    struct ev *e = xe_calloc(1, sizeof(*e));

    e->type = type;
    e->from = xe_strdup(from);
    e->to = xe_strdup(to);
    e->key = key ? xe_strdup(key) : NULL;
    e->id = xe_strdup(s->id);
    if (raw) {
        e->raw = xe_malloc(len ? len : 1);
        memcpy(e->raw, raw, len);
        e->len = len;
    }
    if (s->evs_tail)
        s->evs_tail->next = e;
    else
        s->evs = e;
    s->evs_tail = e;
}

bool
xe_s2s_next_event(struct xe_s2s *s, struct xe_s2s_event *ev)
{
    ev_free(s->ev_cur);
    s->ev_cur = s->evs;
    if (s->ev_cur == NULL)
        return false;
    s->evs = s->ev_cur->next;
    if (s->evs == NULL)
        s->evs_tail = NULL;
    ev->type = s->ev_cur->type;
    ev->from = s->ev_cur->from;
    ev->to = s->ev_cur->to;
    ev->key = s->ev_cur->key;
    ev->stream_id = s->ev_cur->id;
    ev->raw = s->ev_cur->raw;
    ev->len = s->ev_cur->len;
    return true;
}

static int
in_db_result(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    const char *key = xe_xml_text(e);
    char from[XE_S2S_MAX_DOMAIN_BUF], to[XE_S2S_MAX_DOMAIN_BUF];

    if (copy_domain(xe_xml_attr(e, "from"), from) < 0 ||
        copy_domain(xe_xml_attr(e, "to"), to) < 0)
        return error_stop(s, "improper-addressing", "db:result needs from and to");
    if (s->remote && !s->restarted && s->n_pairs == 0 && strcmp(from, s->remote) != 0)
        return error_stop(s, "invalid-from",
                          "db:result from another domain than the "
                          "stream's");
    if (!is_local(s, to)) {
        result_error(s, to, from, "cancel", "item-not-found");
        count_auth(s, true, "dialback", "item-not-found");
        xe_info("event=s2s-auth-failed mech=dialback peer=%s remote=%s local=%s "
                "reason=unknown-domain",
                s->p.peer, from, to);
        return XE_XS_CONTINUE;
    }
    if (policy_of(s, from) == XE_S2S_POLICY_REFUSE) {
        xe_info("event=s2s-refused peer=%s remote=%s local=%s reason=policy", s->p.peer,
                from, to);
        return error_stop(s, "policy-violation", "no federation with this domain");
    }
    if (policy_of(s, from) == XE_S2S_POLICY_EXTERNAL ||
        policy_of(s, from) == XE_S2S_POLICY_SECRET) {
        result_error(s, to, from, "auth", "not-authorized");
        count_auth(s, true, "dialback", "not-authorized");
        xe_info("event=s2s-auth-failed mech=dialback peer=%s remote=%s local=%s "
                "reason=policy-%s",
                s->p.peer, from, to,
                policy_of(s, from) == XE_S2S_POLICY_SECRET ? "secret" : "external");
        return XE_XS_CONTINUE;
    }
    if (!s->tls && s->p.require_tls)
        return error_stop(s, "policy-violation", "STARTTLS first");
    if (key == NULL || *key == '\0' || strlen(key) > XE_S2S_MAX_KEY)
        return error_stop(s, "not-authorized", "no dialback key");
    if (s->pending >= XE_S2S_MAX_PENDING)
        return error_stop(s, "policy-violation", "too many dialback requests");
    s->pending++;
    push_event(s, XE_S2S_EV_DIALBACK, from, to, key, NULL, 0);
    return XE_XS_CONTINUE;
}

static int
in_db_verify(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    const char *key = xe_xml_text(e), *id = xe_xml_attr(e, "id");
    char from[XE_S2S_MAX_DOMAIN_BUF], to[XE_S2S_MAX_DOMAIN_BUF];
    bool valid;

    if (copy_domain(xe_xml_attr(e, "from"), from) < 0 ||
        copy_domain(xe_xml_attr(e, "to"), to) < 0 || id == NULL)
        return error_stop(s, "improper-addressing", "db:verify needs from, to and id");
    /* from: the receiving server that asks; to: us, the originating one */
    valid = is_local(s, to) && s->p.secret &&
            xe_dialback_check(s->p.secret, s->p.secret_len, from, to, id, key) == 1;
    xe_buf_append_str(&s->out, "<db:verify from='");
    xe_buf_append_escaped(&s->out, to);
    xe_buf_append_str(&s->out, "' to='");
    xe_buf_append_escaped(&s->out, from);
    xe_buf_append_str(&s->out, "' id='");
    xe_buf_append_escaped(&s->out, id);
    xe_buf_appendf(&s->out, "' type='%s'/>", valid ? "valid" : "invalid");
    xe_info("event=s2s-verify peer=%s remote=%s local=%s result=%s", s->p.peer, from, to,
            valid ? "valid" : "invalid");
    return XE_XS_CONTINUE;
}

/* IN: SASL (EXTERNAL or the secret, s->mech) succeeded: the stream's pair
 * (from, to) is authenticated, <success/> (with its base64 data, or none),
 * and the stream restarts. */
static int
sasl_pair_up(struct xe_s2s *s, const char *b64)
{
    if (add_pair(s, s->remote, s->local) < 0)
        return error_stop(s, "policy-violation", "too many domain pairs");
    xe_buf_appendf(&s->out, "<success xmlns='" XE_NS_SASL "'>%s</success>",
                   b64 ? b64 : "");
    xe_info("event=s2s-auth mech=%s peer=%s remote=%s local=%s", s->mech, s->p.peer,
            s->remote, s->local);
    count_auth(s, true, s->mech, "success");
    memset(&s->req, 0, sizeof(s->req));
    snprintf(s->req.from, sizeof(s->req.from), "%s", s->remote);
    snprintf(s->req.to, sizeof(s->req.to), "%s", s->local);
    s->restarted = true;
    s->header_sent = false;
    s->st = ST_HEADER;
    return stop_with(s, XE_S2S_PAIR_UP);
}

static int
in_external(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    const char *mech = xe_xml_attr(e, "mechanism"), *text = xe_xml_text(e);
    char authz[XE_S2S_MAX_DOMAIN_BUF];
    size_t n = 0;

    if (mech == NULL || strcmp(mech, "EXTERNAL") != 0 || !s->tls || s->remote == NULL ||
        !cert_valid_for(s, s->remote) ||
        policy_of(s, s->remote) == XE_S2S_POLICY_REFUSE ||
        policy_of(s, s->remote) == XE_S2S_POLICY_SECRET || s->restarted) {
        xe_buf_append_str(&s->out, "<failure xmlns='" XE_NS_SASL
                                   "'><invalid-mechanism/></failure>");
        count_auth(s, true, mech, "invalid-mechanism");
        xe_info("event=s2s-auth-failed mech=external peer=%s remote=%s local=%s "
                "reason=not-offered",
                s->p.peer, s->remote ? s->remote : "-", s->local);
        return XE_XS_CONTINUE;
    }
    if (text && *text && strcmp(text, "=") != 0) {
        if (xe_sasl_b64_decode(text, strlen(text), authz, sizeof(authz) - 1, &n) < 0)
            n = sizeof(authz); /* refused below */
        else
            authz[n] = '\0';
        if (n >= sizeof(authz) || strcmp(authz, s->remote) != 0) {
            xe_buf_append_str(&s->out, "<failure xmlns='" XE_NS_SASL
                                       "'><invalid-authzid/></failure>");
            count_auth(s, true, "external", "invalid-authzid");
            xe_info("event=s2s-auth-failed mech=external peer=%s remote=%s local=%s "
                    "reason=authzid",
                    s->p.peer, s->remote, s->local);
            return XE_XS_CONTINUE;
        }
    }
    snprintf(s->mech, sizeof(s->mech), "external");
    return sasl_pair_up(s, NULL);
}

/* IN: <auth/> (start) or <response/> of SASL with the peer's secret. The
 * pair is the stream's (from, to), as for EXTERNAL (RFC 6120 6.4.6,
 * XEP-0178): the peer authenticated as its domain, for the domain it
 * addressed. */
static int
in_sasl(struct xe_s2s *s, const struct xe_xml_elem *e, bool start)
{
    const char *mech = start ? xe_xml_attr(e, "mechanism") : s->mech;
    const char *text = xe_xml_text(e), *out = NULL;
    char in[XE_S2S_MAX_SASL], b64[2 * XE_S2S_MAX_SASL];
    size_t inlen = 0, outlen = 0;
    enum xe_sasl_cond cond = XE_SASL_NOT_AUTHORIZED;
    int r;

    if (!start && !s->sasl_busy)
        return error_stop(s, "not-authorized", "no SASL exchange under way");
    if (start) {
        /* the peer's word: kept for the log only as a mechanism's name */
        snprintf(s->mech, sizeof(s->mech), "%s", mech && *mech ? mech : "-");
        if (strspn(s->mech, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(s->mech))
            snprintf(s->mech, sizeof(s->mech), "other");
    }
    if (text && *text && strcmp(text, "=") != 0 &&
        (strlen(text) >= sizeof(b64) ||
         xe_sasl_b64_decode(text, strlen(text), in, sizeof(in), &inlen) < 0)) {
        r = XE_SASL_FAIL;
        cond = XE_SASL_INCORRECT_ENCODING;
    } else if (start)
        r = xe_sasl_start(s->sasl, s->mech, text && *text ? in : NULL, inlen, &out,
                          &outlen, &cond);
    else
        r = xe_sasl_step(s->sasl, in, inlen, &out, &outlen, &cond);
    if (r != XE_SASL_FAIL && out && outlen && b64_out(out, outlen, b64, sizeof(b64)) < 0)
        r = XE_SASL_FAIL, cond = XE_SASL_TEMPORARY_AUTH_FAILURE;
    if (r == XE_SASL_CONTINUE) {
        s->sasl_busy = true;
        xe_buf_appendf(&s->out, "<challenge xmlns='" XE_NS_SASL "'>%s</challenge>",
                       outlen ? b64 : "");
        return XE_XS_CONTINUE;
    }
    s->sasl_busy = false;
    if (r == XE_SASL_FAIL) {
        s->failures++;
        xe_buf_appendf(&s->out, "<failure xmlns='" XE_NS_SASL "'><%s/></failure>",
                       xe_sasl_cond_name(cond));
        count_auth(s, true, s->mech, xe_sasl_cond_name(cond));
        xe_info("event=s2s-auth-failed mech=%s peer=%s remote=%s local=%s reason=%s "
                "detail=\"%s\" attempt=%u",
                s->mech, s->p.peer, s->remote, s->local, xe_sasl_cond_name(cond),
                xe_sasl_detail(s->sasl), s->failures);
        if (s->failures >=
            (s->p.max_auth_attempts ? s->p.max_auth_attempts : XE_DEF_MAX_AUTH_ATTEMPTS))
            return error_stop(s, "not-authorized",
                              "too many failed authentication attempts");
        return XE_XS_CONTINUE;
    }
    xe_sasl_free(&s->sasl);
    return sasl_pair_up(s, outlen ? b64 : NULL);
}

/* A peer's word for the log: at most XE_S2S_MAX_LOG_TEXT bytes, printable
 * ASCII, no quote or backslash (each other byte becomes '?'). */
static void
log_text(const char *in, char *out, size_t outlen)
{
    size_t n = 0;

    for (; in && *in && n + 1 < outlen; in++)
        out[n++] = (*in >= ' ' && *in < 0x7f && *in != '"' && *in != '\\') ? *in : '?';
    out[n] = '\0';
}

/* A peer's <stream:error/>, on any kind of stream: the end of its stream
 * (RFC 6120 4.9.1.1). Its condition and text are logged, our stream ends,
 * nothing else is answered. OUT/VERIFY/LINK not decided yet: the verdict
 * stays an error (xe_s2s_peer_error says what the peer said). */
static int
peer_stream_error(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    const char *cond = "undefined-condition", *text = NULL;
    char t[XE_S2S_MAX_LOG_TEXT + 1];

    for (const struct xe_xml_elem *c = e->first_child; c; c = c->next) {
        if (strcmp(c->ns, XE_NS_STREAM_ERRORS) != 0)
            continue;
        if (strcmp(c->name, "text") == 0)
            text = xe_xml_text(c);
        else
            cond = c->name;
    }
    /* a condition we print is a known name's shape, bounded */
    if (strlen(cond) > 40 || strspn(cond, "abcdefghijklmnopqrstuvwxyz-") != strlen(cond))
        cond = "undefined-condition";
    snprintf(s->peer_cond, sizeof(s->peer_cond), "%s", cond);
    s->ext_dropped = s->ext_dropped || s->st == ST_SASL;
    log_text(text, t, sizeof(t));
    snprintf(s->peer_text, sizeof(s->peer_text), "%s", t);
    set_fail(s, "the remote server ended the stream with <%s/>%s%s", cond,
             t[0] ? ": " : "", t);
    xe_info("event=s2s-peer-error kind=s2s-%s peer=%s local=%s remote=%s condition=%s "
            "text=\"%s\"",
            kind_names[s->p.kind], s->p.peer, our_domain(s) ? our_domain(s) : "-",
            xe_s2s_remote(s) ? xe_s2s_remote(s) : "-", cond, t);
    xe_s2s_end(s);
    return stop_with(s, XE_S2S_CLOSE);
}

static int
in_stanza(struct xe_s2s *s, const struct xe_xml_elem *e, const unsigned char *raw,
          size_t len)
{
    const char *from = xe_xml_attr(e, "from"), *to = xe_xml_attr(e, "to");

    if (strcmp(e->ns, XE_NS_SERVER) != 0 ||
        (strcmp(e->name, "message") != 0 && strcmp(e->name, "presence") != 0 &&
         strcmp(e->name, "iq") != 0))
        return error_stop(s, "unsupported-stanza-type", NULL);
    if (s->n_pairs == 0)
        return error_stop(s, "not-authorized", "authenticate first");
    if (to == NULL || xe_jid_domain(to, s->st_to, sizeof(s->st_to)) < 0 ||
        !to_known(s, s->st_to))
        return error_stop(s, "host-unknown",
                          "the stanza's to is not authenticated on "
                          "this stream");
    if (from == NULL || xe_jid_domain(from, s->st_from, sizeof(s->st_from)) < 0 ||
        !xe_s2s_pair_ok(s, s->st_from, s->st_to))
        return error_stop(s, "invalid-from",
                          "the stanza's from is not authenticated on "
                          "this stream");
    push_event(s, XE_S2S_EV_STANZA, s->st_from, s->st_to, NULL, raw, len);
    return XE_XS_CONTINUE;
}

static int
in_element(struct xe_s2s *s, const struct xe_xml_elem *e, const unsigned char *raw,
           size_t len)
{
    if (s->legacy && (strcmp(e->ns, XE_NS_TLS) == 0 || strcmp(e->ns, XE_NS_SASL) == 0))
        return error_stop(s, "policy-violation",
                          "a stream without version='1.0' has dialback only");
    if (xe_xml_is(e, XE_NS_TLS, "starttls")) {
        if (s->tls || s->restarted)
            return error_stop(s, "policy-violation", "TLS is already up");
        xe_buf_append_str(&s->out, "<proceed xmlns='" XE_NS_TLS "'/>");
        return stop_with(s, XE_S2S_STARTTLS);
    }
    if (xe_xml_is(e, XE_NS_DIALBACK, "verify"))
        return in_db_verify(s, e);
    if (xe_xml_is(e, XE_NS_DIALBACK, "result"))
        return in_db_result(s, e);
    if (xe_xml_is(e, XE_NS_SASL, "auth")) {
        const char *mech = xe_xml_attr(e, "mechanism");
        if (mech && strcmp(mech, "EXTERNAL") != 0 && s->sasl && !s->restarted)
            return in_sasl(s, e, true);
        return in_external(s, e);
    }
    if (xe_xml_is(e, XE_NS_SASL, "response"))
        return in_sasl(s, e, false);
    if (xe_xml_is(e, XE_NS_SASL, "abort")) {
        if (!s->sasl_busy)
            return error_stop(s, "not-authorized", "no SASL exchange under way");
        s->sasl_busy = false;
        s->failures++;
        xe_buf_append_str(&s->out,
                          "<failure xmlns='" XE_NS_SASL "'><aborted/></failure>");
        count_auth(s, true, s->mech, "aborted");
        xe_info("event=s2s-auth-failed mech=%s peer=%s remote=%s local=%s reason=aborted",
                s->mech, s->p.peer, s->remote, s->local);
        if (s->failures >=
            (s->p.max_auth_attempts ? s->p.max_auth_attempts : XE_DEF_MAX_AUTH_ATTEMPTS))
            return error_stop(s, "not-authorized",
                              "too many failed authentication attempts");
        return XE_XS_CONTINUE;
    }
    return in_stanza(s, e, raw, len);
}

/* ---- OUT, VERIFY, LINK: streams we open ---- */

static void
out_authenticate(struct xe_s2s *s)
{
    char key[XE_DIALBACK_KEY_LEN + 1];

    if (s->p.kind == XE_S2S_VERIFY) {
        xe_buf_append_str(&s->out, "<db:verify from='");
        xe_buf_append_escaped(&s->out, s->from);
        xe_buf_append_str(&s->out, "' to='");
        xe_buf_append_escaped(&s->out, s->to);
        xe_buf_append_str(&s->out, "' id='");
        xe_buf_append_escaped(&s->out, s->stream_id);
        xe_buf_append_str(&s->out, "'>");
        xe_buf_append_escaped(&s->out, s->key);
        xe_buf_append_str(&s->out, "</db:verify>");
        s->st = ST_RESULT;
        return;
    }
    xe_buf_append_str(&s->out, "<db:result from='");
    xe_buf_append_escaped(&s->out, s->from);
    xe_buf_append_str(&s->out, "' to='");
    xe_buf_append_escaped(&s->out, s->to);
    xe_buf_append_str(&s->out, "'>");
    if (s->p.kind == XE_S2S_LINK)
        xe_buf_append_escaped(&s->out, s->assertion);
    else {
        /* receiving = them, originating = us, their stream's id */
        if (s->p.secret == NULL ||
            xe_dialback_key(s->p.secret, s->p.secret_len, s->to, s->from, s->id, key) < 0)
            key[0] = '\0';
        xe_buf_append_str(&s->out, key);
        OPENSSL_cleanse(key, sizeof(key));
    }
    xe_buf_append_str(&s->out, "</db:result>");
    s->st = ST_RESULT;
}

static int
verdict_stop(struct xe_s2s *s, enum xe_s2s_result r, const char *cond)
{
    if (s->p.kind == XE_S2S_OUT && !s->external && !s->sasl_ok) /* dialback's answer */
        count_auth(s, false, "dialback",
                   r == XE_S2S_VALID     ? "success"
                   : r == XE_S2S_INVALID ? "invalid"
                                         : cond);
    if (r == XE_S2S_INVALID)
        set_fail(s, "dialback: the remote server refused %s",
                 s->p.kind == XE_S2S_VERIFY ? "the key" : "our key");
    else if (r == XE_S2S_ERROR)
        set_fail(s, "dialback: the remote server answered <%s/>", cond ? cond : "error");
    s->verdict = r;
    s->verdict_cond = r == XE_S2S_VALID ? NULL : cond;
    s->verdict_new = true;
    s->st = r == XE_S2S_VALID ? ST_DONE : ST_WAIT;
    return XE_XS_CONTINUE;
}

static const char *
error_condition(const struct xe_xml_elem *e)
{
    static const char *const known[] = {"remote-server-not-found",
                                        "remote-server-timeout",
                                        "item-not-found",
                                        "not-authorized",
                                        "policy-violation",
                                        "internal-server-error",
                                        "forbidden",
                                        "not-acceptable",
                                        NULL};
    const struct xe_xml_elem *err = xe_xml_child(e, e->ns, "error");

    if (err == NULL)
        err = xe_xml_child(e, XE_NS_SERVER, "error");
    for (const struct xe_xml_elem *c = err ? err->first_child : NULL; c; c = c->next)
        for (size_t i = 0; known[i]; i++)
            if (strcmp(c->name, known[i]) == 0)
                return known[i];
    return "undefined-condition";
}

static enum xe_s2s_result
type_result(const char *type)
{
    if (type && strcmp(type, "valid") == 0)
        return XE_S2S_VALID;
    if (type && strcmp(type, "error") == 0)
        return XE_S2S_ERROR;
    return XE_S2S_INVALID;
}

/* OUT: EXTERNAL was not possible; dialback unless the remote's policy is
 * "external" (then the stream ends and the backend hears policy-violation). */
static int
out_dialback(struct xe_s2s *s)
{
    if (s->p.kind == XE_S2S_OUT && policy_of(s, s->to) != XE_S2S_POLICY_DIALBACK) {
        xe_info("event=s2s-refused kind=s2s-out peer=%s local=%s remote=%s "
                "reason=%s",
                s->p.peer, s->from, s->to,
                policy_of(s, s->to) == XE_S2S_POLICY_REFUSE   ? "policy"
                : policy_of(s, s->to) == XE_S2S_POLICY_SECRET ? "secret-required"
                                                              : "external-required");
        set_fail(s, "%s",
                 policy_of(s, s->to) == XE_S2S_POLICY_REFUSE
                     ? "federation with this domain is refused by policy"
                 : policy_of(s, s->to) == XE_S2S_POLICY_SECRET
                     ? "policy requires SASL with the pre-shared secret, which failed or "
                       "was not offered"
                     : "policy requires SASL EXTERNAL, which failed or was not possible "
                       "(no certificate valid for the domain, or not offered)");
        xe_s2s_end(s);
        s->verdict_new = true;
        s->verdict = XE_S2S_ERROR;
        s->verdict_cond = "policy-violation";
        return stop_with(s, XE_S2S_VERDICT);
    }
    out_authenticate(s);
    return XE_XS_CONTINUE;
}

/* OUT: whether the remote's <mechanisms/> lists NAME. */
static bool
offered(const struct xe_xml_elem *mechanisms, const char *name)
{
    for (const struct xe_xml_elem *c = mechanisms->first_child; c; c = c->next)
        if (strcmp(c->name, "mechanism") == 0 && xe_xml_text(c) &&
            strcmp(xe_xml_text(c), name) == 0)
            return true;
    return false;
}

/* The -PLUS name of a SCRAM mechanism, as a static string. */
static const char *
plus_of(const char *mech)
{
    static const char *const plus[] = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS",
                                       "SCRAM-SHA-512-PLUS"};
    for (size_t i = 0; i < sizeof(plus) / sizeof(plus[0]); i++)
        if (strncmp(plus[i], mech, strlen(mech)) == 0 &&
            strlen(plus[i]) == strlen(mech) + 5)
            return plus[i];
    return mech;
}

/* OUT: the channel binding to use: of those the remote advertises
 * (XEP-0440; all of ours when it advertises none), tls-exporter, then
 * tls-server-end-point, then tls-unique. */
static const struct xe_cbind *
out_binding(const struct xe_s2s *s, const struct xe_xml_elem *features)
{
    static const char *const pref[] = {"tls-exporter", "tls-server-end-point",
                                       "tls-unique"};
    const struct xe_xml_elem *adv =
        xe_xml_child(features, XE_NS_SASL_CB, "sasl-channel-binding");

    for (size_t k = 0; k < sizeof(pref) / sizeof(pref[0]); k++)
        for (size_t i = 0; i < s->n_cb; i++) {
            bool ok = adv == NULL;
            if (strcmp(s->cb[i].type, pref[k]) != 0)
                continue;
            for (const struct xe_xml_elem *c = adv ? adv->first_child : NULL; c && !ok;
                 c = c->next)
                ok = strcmp(c->name, "channel-binding") == 0 && xe_xml_attr(c, "type") &&
                     strcmp(xe_xml_attr(c, "type"), pref[k]) == 0;
            if (ok)
                return &s->cb[i];
        }
    return s->cb[0].advertise ? &s->cb[0] : NULL;
}

/* OUT: SASL with the peer's secret when the remote offers one of its
 * mechanisms (ours in order of preference): true when <auth/> was sent. */
static bool
out_secret(struct xe_s2s *s, const struct xe_xml_elem *features)
{
    const struct xe_xml_elem *m = xe_xml_child(features, XE_NS_SASL, "mechanisms");
    struct xe_s2s_secret sec;
    const char *chosen = NULL, *out = NULL;
    const struct xe_cbind *cb;
    char b64[2 * XE_S2S_MAX_SASL], *err = NULL;
    size_t outlen = 0;
    int r;

    if (m == NULL || s->secret_failed || policy_of(s, s->to) == XE_S2S_POLICY_REFUSE ||
        !peer_secret(s, s->to, &sec))
        return false;
    for (size_t i = 0; i < sec.n_mechs && chosen == NULL; i++) {
        /* a SCRAM mechanism's -PLUS variant first when we can bind */
        char plus[32];
        snprintf(plus, sizeof(plus), "%s-PLUS", sec.mechs[i]);
        if (s->n_cb > 0 && strncmp(sec.mechs[i], "SCRAM-", 6) == 0 && offered(m, plus) &&
            xe_sasl_mech_loaded(sec.mechs[i]))
            chosen = plus_of(sec.mechs[i]);
        else if (offered(m, sec.mechs[i]) && xe_sasl_mech_loaded(sec.mechs[i]))
            chosen = sec.mechs[i];
    }
    if (chosen == NULL)
        return false;
    s->sclient = xe_sasl_client_new(s->from, s->to, sec.secret, sec.len, &err);
    if (s->sclient == NULL) {
        xe_warn("event=s2s-sasl-error kind=s2s-out peer=%s local=%s remote=%s "
                "error=\"%s\"",
                s->p.peer, s->from, s->to, err ? err : "?");
        free(err);
        return false;
    }
    snprintf(s->mech, sizeof(s->mech), "%s", chosen);
    cb = s->n_cb ? out_binding(s, features) : NULL;
    if (cb && xe_sasl_client_set_cb(s->sclient, cb) < 0)
        xe_warn("event=s2s-sasl-error kind=s2s-out peer=%s local=%s remote=%s "
                "error=\"no %s channel binding data\"",
                s->p.peer, s->from, s->to, cb->type);
    r = xe_sasl_client_start(s->sclient, chosen, &out, &outlen);
    if (r == XE_SASL_FAIL ||
        (out && outlen && b64_out(out, outlen, b64, sizeof(b64)) < 0)) {
        xe_warn("event=s2s-sasl-error kind=s2s-out peer=%s local=%s remote=%s mech=%s "
                "error=\"%s\"",
                s->p.peer, s->from, s->to, chosen, xe_sasl_client_detail(s->sclient));
        xe_sasl_client_free(&s->sclient);
        s->mech[0] = '\0';
        return false;
    }
    s->client_done = r == XE_SASL_OK;
    xe_buf_appendf(&s->out, "<auth xmlns='" XE_NS_SASL "' mechanism='%s'>%s</auth>",
                   chosen, out && outlen ? b64 : (out ? "=" : ""));
    s->st = ST_SECRET;
    return true;
}

/* OUT: the remote refused our secret (or could not prove it knows it):
 * dialback under policy "dialback", else the backend hears not-authorized. */
static int
out_secret_failed(struct xe_s2s *s, const char *reason)
{
    xe_info("event=s2s-auth-failed kind=s2s-out mech=%s peer=%s local=%s remote=%s "
            "reason=%s",
            s->mech, s->p.peer, s->from, s->to, reason);
    count_auth(s, false, s->mech, reason);
    xe_sasl_client_free(&s->sclient);
    s->secret_failed = true;
    s->mech[0] = '\0';
    if (policy_of(s, s->to) == XE_S2S_POLICY_DIALBACK) {
        out_authenticate(s);
        return XE_XS_CONTINUE;
    }
    set_fail(s, "the remote server refused our pre-shared secret (%s)", reason);
    xe_s2s_end(s);
    s->verdict_new = true;
    s->verdict = XE_S2S_ERROR;
    s->verdict_cond = "not-authorized";
    return stop_with(s, XE_S2S_VERDICT);
}

/* OUT: SASL (the secret, or EXTERNAL) succeeded: restart the stream. */
static int
out_restart(struct xe_s2s *s)
{
    s->header_sent = false;
    send_header(s, s->from, s->to, false);
    s->st = ST_HEADER;
    s->restarted = true;
    s->reset_pending = true; /* the next byte starts the new stream */
    return stop_with(s, XE_S2S_CONTINUE);
}

static int
out_secret_element(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    const char *text = xe_xml_text(e), *out = NULL;
    char in[XE_S2S_MAX_SASL], b64[2 * XE_S2S_MAX_SASL];
    size_t inlen = 0, outlen = 0;
    int r;

    if (strcmp(e->ns, XE_NS_SASL) != 0)
        return error_stop(s, "not-authorized", "SASL expected");
    if (strcmp(e->name, "failure") == 0) {
        const char *cond = "not-authorized";
        for (const struct xe_xml_elem *c = e->first_child; c; c = c->next)
            if (strcmp(c->name, "text") != 0)
                cond = c->name;
        return out_secret_failed(s, cond);
    }
    if (text && *text && strcmp(text, "=") != 0 &&
        (strlen(text) >= sizeof(b64) ||
         xe_sasl_b64_decode(text, strlen(text), in, sizeof(in), &inlen) < 0))
        return error_stop(s, "not-authorized", "bad base64 from the server");
    if (strcmp(e->name, "challenge") == 0) {
        if (s->client_done)
            return error_stop(s, "not-authorized", "a challenge after the end");
        r = xe_sasl_client_step(s->sclient, in, inlen, &out, &outlen);
        if (r == XE_SASL_FAIL ||
            (out && outlen && b64_out(out, outlen, b64, sizeof(b64)) < 0)) {
            xe_buf_append_str(&s->out, "<abort xmlns='" XE_NS_SASL "'/>");
            xe_info("event=s2s-auth-failed kind=s2s-out mech=%s peer=%s local=%s "
                    "remote=%s reason=client detail=\"%s\"",
                    s->mech, s->p.peer, s->from, s->to,
                    xe_sasl_client_detail(s->sclient));
            return XE_XS_CONTINUE; /* its <failure><aborted/> ends the attempt */
        }
        s->client_done = r == XE_SASL_OK;
        xe_buf_appendf(&s->out, "<response xmlns='" XE_NS_SASL "'>%s</response>",
                       out && outlen ? b64 : "");
        return XE_XS_CONTINUE;
    }
    if (strcmp(e->name, "success") != 0)
        return error_stop(s, "not-authorized", "SASL expected");
    if (!s->client_done) {
        /* SCRAM: the server's signature proves it knows the secret too */
        r = xe_sasl_client_step(s->sclient, in, inlen, &out, &outlen);
        if (r != XE_SASL_OK) {
            xe_info("event=s2s-auth-failed kind=s2s-out mech=%s peer=%s local=%s "
                    "remote=%s reason=server-not-verified detail=\"%s\"",
                    s->mech, s->p.peer, s->from, s->to,
                    xe_sasl_client_detail(s->sclient));
            count_auth(s, false, s->mech, "server-not-verified");
            xe_sasl_client_free(&s->sclient);
            s->secret_failed = true;
            set_fail(s,
                     "the remote server could not prove it knows the pre-shared secret");
            xe_s2s_stream_error(s, "not-authorized", "the server's proof is wrong");
            s->verdict_new = true;
            s->verdict = XE_S2S_ERROR;
            s->verdict_cond = "not-authorized";
            return stop_with(s, XE_S2S_VERDICT);
        }
    }
    xe_sasl_client_free(&s->sclient);
    count_auth(s, false, s->mech, "success");
    s->sasl_ok = true;
    return out_restart(s);
}

static int
out_element(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    switch (s->st) {
    case ST_NEGOTIATE:
        if (!xe_xml_is(e, XE_NS_STREAMS, "features"))
            return error_stop(s, "not-authorized", "features expected");
        if (!s->tls && s->p.tls_possible && s->p.kind != XE_S2S_LINK &&
            xe_xml_child(e, XE_NS_TLS, "starttls")) {
            xe_buf_append_str(&s->out, "<starttls xmlns='" XE_NS_TLS "'/>");
            s->st = ST_PROCEED;
            return XE_XS_CONTINUE;
        }
        if (!s->tls && s->p.require_tls && s->p.kind == XE_S2S_OUT) {
            set_fail(s,
                     "the remote server offers no STARTTLS and encryption is required");
            return error_stop(s, "policy-violation", "STARTTLS is required");
        }
        if (s->p.kind == XE_S2S_OUT && s->tls && out_secret(s, e))
            return XE_XS_CONTINUE;
        if (s->p.kind == XE_S2S_OUT && s->tls && !s->p.no_external &&
            cert_valid_for(s, s->to) && policy_of(s, s->to) != XE_S2S_POLICY_SECRET) {
            const struct xe_xml_elem *m = xe_xml_child(e, XE_NS_SASL, "mechanisms");
            for (const struct xe_xml_elem *c = m ? m->first_child : NULL; c; c = c->next)
                if (strcmp(c->name, "mechanism") == 0 && xe_xml_text(c) &&
                    strcmp(xe_xml_text(c), "EXTERNAL") == 0) {
                    char b64[2 * XE_S2S_MAX_DOMAIN_BUF];
                    size_t n = 0;
                    if (xe_sasl_b64_encode(s->from, strlen(s->from), b64, sizeof(b64) - 1,
                                           &n) < 0)
                        break;
                    b64[n] = '\0';
                    xe_buf_appendf(&s->out,
                                   "<auth xmlns='" XE_NS_SASL
                                   "' mechanism='EXTERNAL'>%s</auth>",
                                   b64);
                    s->st = ST_SASL;
                    return XE_XS_CONTINUE;
                }
        }
        return out_dialback(s);
    case ST_PROCEED:
        if (xe_xml_is(e, XE_NS_TLS, "proceed"))
            return stop_with(s, XE_S2S_STARTTLS);
        return error_stop(s, "not-authorized", "STARTTLS failed");
    case ST_SASL:
        if (xe_xml_is(e, XE_NS_SASL, "success")) {
            count_auth(s, false, "external", "success");
            s->external = true;
            return out_restart(s);
        }
        count_auth(s, false, "external", "not-authorized");
        return out_dialback(s); /* EXTERNAL refused: dialback, if allowed */
    case ST_SECRET:
        return out_secret_element(s, e);
    case ST_RESULT:
        if (s->p.kind == XE_S2S_VERIFY && xe_xml_is(e, XE_NS_DIALBACK, "verify")) {
            const char *id = xe_xml_attr(e, "id");
            if (id == NULL || strcmp(id, s->stream_id) != 0)
                return error_stop(s, "invalid-id", "db:verify for another stream");
            return verdict_stop(s, type_result(xe_xml_attr(e, "type")),
                                error_condition(e));
        }
        if (s->p.kind != XE_S2S_VERIFY && xe_xml_is(e, XE_NS_DIALBACK, "result"))
            return verdict_stop(s, type_result(xe_xml_attr(e, "type")),
                                error_condition(e));
        return XE_XS_CONTINUE; /* anything else waits */
    case ST_DONE:
    case ST_WAIT:
        return XE_XS_CONTINUE; /* one-way streams: nothing should come */
    default:
        return error_stop(s, "not-authorized", NULL);
    }
}

static int
out_header(struct xe_s2s *s, const struct xe_xml_elem *h, const char *default_ns)
{
    const char *id = xe_xml_attr(h, "id");

    if (!xe_xml_is(h, XE_NS_STREAMS, "stream") || default_ns == NULL ||
        strcmp(default_ns, XE_NS_SERVER) != 0)
        return error_stop(s, "invalid-namespace", NULL);
    if (id == NULL || strlen(id) >= sizeof(s->id))
        return error_stop(s, "invalid-id", "no stream id");
    snprintf(s->id, sizeof(s->id), "%s", id);
    if (s->restarted && (s->external || s->sasl_ok)) {
        s->st = ST_DONE; /* the features that follow are not needed */
        return verdict_stop(s, XE_S2S_VALID, NULL);
    }
    s->st = ST_NEGOTIATE;
    if (!version_1(h) && s->p.kind != XE_S2S_LINK && !s->restarted) {
        /* a pre-1.0 server sends no features: dialback at once, where
         * encryption is not required (no STARTTLS with it) */
        s->legacy = true;
        xe_info("event=s2s-legacy kind=s2s-%s peer=%s local=%s remote=%s tls=%s",
                kind_names[s->p.kind], s->p.peer, s->from, s->to,
                s->tls ? "yes" : "none");
        if (s->p.require_tls && !s->tls) {
            set_fail(s,
                     "the remote server is pre-XMPP-1.0 (no version): no STARTTLS, and "
                     "encryption is required");
            return error_stop(s, "policy-violation", "STARTTLS is required");
        }
        if (s->p.kind == XE_S2S_VERIFY) {
            out_authenticate(s);
            return XE_XS_CONTINUE;
        }
        return out_dialback(s);
    }
    return XE_XS_CONTINUE;
}

/* ---- BACKEND: a backend's outgoing stream ---- */

static int
backend_header(struct xe_s2s *s, const struct xe_xml_elem *h, const char *default_ns)
{
    const char *to = xe_xml_attr(h, "to"), *from = xe_xml_attr(h, "from");
    char d[XE_S2S_MAX_DOMAIN_BUF];

    if (!xe_xml_is(h, XE_NS_STREAMS, "stream") || default_ns == NULL ||
        strcmp(default_ns, XE_NS_SERVER) != 0)
        return error_stop(s, "invalid-namespace", NULL);
    if (from == NULL || xe_jid_domain(from, d, sizeof(d)) < 0 || !is_local(s, d))
        return error_stop(s, "invalid-from", "not a domain served here");
    free(s->local);
    s->local = xe_strdup(d);
    if (to == NULL || xe_jid_domain(to, d, sizeof(d)) < 0)
        return error_stop(s, "host-unknown", "no to");
    free(s->remote);
    s->remote = xe_strdup(d);
    xe_random_id(s->id);
    send_header(s, s->remote, s->local, true);
    xe_buf_append_str(&s->out, "<stream:features><dialback xmlns='" XE_NS_DIALBACK_FEATURE
                               "'><errors/></dialback></stream:features>");
    s->st = ST_NEGOTIATE;
    return XE_XS_CONTINUE;
}

static int
backend_element(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    char from[XE_S2S_MAX_DOMAIN_BUF], to[XE_S2S_MAX_DOMAIN_BUF];

    if (s->st != ST_NEGOTIATE || !xe_xml_is(e, XE_NS_DIALBACK, "result"))
        return error_stop(s, "not-authorized", "db:result expected");
    if (copy_domain(xe_xml_attr(e, "from"), from) < 0 ||
        copy_domain(xe_xml_attr(e, "to"), to) < 0 || strcmp(from, s->local) != 0 ||
        strcmp(to, s->remote) != 0)
        return error_stop(s, "invalid-from",
                          "db:result for another pair than the "
                          "stream's");
    memset(&s->req, 0, sizeof(s->req));
    snprintf(s->req.from, sizeof(s->req.from), "%s", from);
    snprintf(s->req.to, sizeof(s->req.to), "%s", to);
    { /* the backend's key: the glue checks it (an s2s-out assertion) */
        const char *key = xe_xml_text(e);
        if (key == NULL || strlen(key) >= sizeof(s->req.key))
            return error_stop(s, "not-authorized", "no key, or too long");
        snprintf(s->req.key, sizeof(s->req.key), "%s", key);
    }
    s->st = ST_WAIT;
    return stop_with(s, XE_S2S_OPEN);
}

/* ---- the parser's callbacks ---- */

static int
cb_stream_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    struct xe_s2s *s = ctx;

    if (s->resuming)
        return XE_XS_CONTINUE; /* backend_resume's header */
    if (s->st != ST_HEADER)
        return error_stop(s, "not-well-formed", "a second stream header");
    switch (s->p.kind) {
    case XE_S2S_IN:
        return in_header(s, h, default_ns);
    case XE_S2S_BACKEND:
        return backend_header(s, h, default_ns);
    default:
        return out_header(s, h, default_ns);
    }
}

static int
cb_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct xe_s2s *s = ctx;

    if (xe_xml_is(e, XE_NS_STREAMS, "error"))
        return peer_stream_error(s, e);
    switch (s->p.kind) {
    case XE_S2S_IN:
        return in_element(s, e, raw, len);
    case XE_S2S_BACKEND:
        return backend_element(s, e);
    default:
        return out_element(s, e);
    }
}

static int
cb_stream_end(void *ctx)
{
    struct xe_s2s *s = ctx;

    s->ext_dropped = s->ext_dropped || s->st == ST_SASL;
    xe_s2s_end(s);
    return stop_with(s, XE_S2S_CLOSE);
}

/* BACKEND: the request was answered with a failure; the stream goes on
 * (the backend may ask again, or end it: its stream error or
 * </stream:stream> is the normal end). The parser stopped at the
 * db:result, and a stopped parser does not resume: a new one continues the
 * stream after a header with the namespaces of the backend's (the glue of
 * every backend uses these prefixes), which is not answered. */
static void
backend_resume(struct xe_s2s *s)
{
    static const char hdr[] =
        "<stream:stream xmlns='" XE_NS_SERVER "' xmlns:stream='" XE_NS_STREAMS
        "' xmlns:db='" XE_NS_DIALBACK "'>";
    size_t used = 0;

    s->st = ST_HEADER;
    s->resuming = true;
    xe_xmlstream_reset(s->xs);
    if (xe_xmlstream_feed(s->xs, hdr, sizeof(hdr) - 1, &used) != XE_XS_OK)
        xe_s2s_stream_error(s, "internal-server-error", "cannot resume the stream");
    s->resuming = false;
    if (s->st == ST_HEADER)
        s->st = ST_NEGOTIATE;
}

struct xe_s2s *
xe_s2s_new(const struct xe_s2s_params *p)
{
    struct xe_s2s *s = xe_calloc(1, sizeof(*s));
    struct xe_xmlstream_limits lim = {p->max_stanza_preauth, p->max_depth_preauth,
                                      p->max_attrs_preauth};
    struct xe_xmlstream_cb cb = {cb_stream_start, cb_element, cb_stream_end};

    s->p = *p;
    s->p.peer = xe_strdup(p->peer ? p->peer : "-");
    s->tls = p->tls;
    s->from = p->from ? xe_strdup(p->from) : NULL;
    s->to = p->to ? xe_strdup(p->to) : NULL;
    s->key = p->key ? xe_strdup(p->key) : NULL;
    s->stream_id = p->stream_id ? xe_strdup(p->stream_id) : NULL;
    s->assertion = p->assertion ? xe_strdup(p->assertion) : NULL;
    s->p.from = s->p.to = s->p.key = s->p.stream_id = s->p.assertion = NULL;
    xe_buf_init(&s->out, 0);
    s->verdict = XE_S2S_ERROR;
    s->verdict_cond = "remote-server-not-found";
    if (s->p.kind == XE_S2S_LINK || s->p.kind == XE_S2S_BACKEND) {
        lim.max_element_bytes = p->max_stanza; /* trusted, and carries stanzas */
        lim.max_depth = XE_S2S_MAX_DEPTH;
        lim.max_attrs = XE_S2S_MAX_ATTRS;
    }
    s->xs = xe_xmlstream_new(&lim, &cb, s);
    if (s->xs == NULL) {
        xe_s2s_free(&s);
        return NULL;
    }
    if (s->p.kind == XE_S2S_OUT || s->p.kind == XE_S2S_VERIFY ||
        s->p.kind == XE_S2S_LINK) {
        if (s->from == NULL || s->to == NULL ||
            (s->p.kind == XE_S2S_VERIFY && (s->key == NULL || s->stream_id == NULL)) ||
            (s->p.kind == XE_S2S_LINK && s->assertion == NULL)) {
            xe_s2s_free(&s);
            return NULL;
        }
        send_header(s, s->from, s->to, false);
    }
    return s;
}

void
xe_s2s_free(struct xe_s2s **sp)
{
    struct xe_s2s *s = *sp;

    if (s == NULL)
        return;
    xe_xmlstream_free(&s->xs);
    xe_sasl_free(&s->sasl);
    xe_sasl_client_free(&s->sclient);
    xe_buf_free(&s->out);
    for (size_t i = 0; i < s->n_pairs; i++) {
        free(s->pairs[i].from);
        free(s->pairs[i].to);
    }
    for (size_t i = 0; i < s->n_names; i++)
        free(s->names[i]);
    free(s->names);
    free((char *)s->p.peer);
    free(s->from);
    free(s->to);
    if (s->key)
        OPENSSL_cleanse(s->key, strlen(s->key));
    free(s->key);
    free(s->stream_id);
    if (s->assertion)
        OPENSSL_cleanse(s->assertion, strlen(s->assertion));
    free(s->assertion);
    free(s->local);
    free(s->remote);
    OPENSSL_cleanse(s->req.key, sizeof(s->req.key));
    ev_free(s->ev_cur);
    while (s->evs) {
        struct ev *n = s->evs->next;
        ev_free(s->evs);
        s->evs = n;
    }
    free(s);
    *sp = NULL;
}

enum xe_s2s_action
xe_s2s_feed(struct xe_s2s *s, const void *data, size_t len, size_t *consumed_r)
{
    size_t used = 0;
    int r;

    *consumed_r = len;
    if (s->st == ST_CLOSED)
        return XE_S2S_CLOSE;
    s->action = XE_S2S_CONTINUE;
    r = xe_xmlstream_feed(s->xs, data, len, &used);
    if (r == XE_XS_ERROR) {
        xe_s2s_stream_error(s, xe_xmlstream_condition(s->xs),
                            xe_xmlstream_error_text(s->xs));
        return XE_S2S_CLOSE;
    }
    if (r == XE_XS_STOPPED) {
        *consumed_r = used;
        if (s->action == XE_S2S_CONTINUE && s->verdict_new && !s->reset_pending) {
            s->verdict_new = false;
            return XE_S2S_VERDICT;
        }
        if (s->action == XE_S2S_VERDICT)
            s->verdict_new = false;
        if (s->action == XE_S2S_PAIR_UP || s->reset_pending)
            xe_xmlstream_reset(s->xs); /* the next byte starts the new stream */
        s->reset_pending = false;
        return s->action;
    }
    if (s->verdict_new) {
        s->verdict_new = false;
        return XE_S2S_VERDICT;
    }
    return XE_S2S_CONTINUE;
}

struct xe_buf *
xe_s2s_output(struct xe_s2s *s)
{
    return &s->out;
}

void
xe_s2s_set_channel_bindings(struct xe_s2s *s, const struct xe_cbind *cb, size_t n)
{
    s->n_cb = 0;
    for (size_t i = 0; i < n && s->n_cb < XE_CB_MAX; i++)
        s->cb[s->n_cb++] = cb[i];
}

void
xe_s2s_tls_up(struct xe_s2s *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < s->n_names; i++)
        free(s->names[i]);
    free(s->names);
    s->names = n ? xe_calloc(n, sizeof(*s->names)) : NULL;
    s->n_names = n;
    for (size_t i = 0; i < n; i++) {
        s->names[i] = xe_strdup(names[i]);
        xe_tolower_ascii(s->names[i]);
    }
    s->tls = true;
    s->header_sent = false;
    xe_xmlstream_reset(s->xs);
    s->st = ST_HEADER;
    if (s->p.kind != XE_S2S_IN && s->p.kind != XE_S2S_BACKEND)
        send_header(s, s->from, s->to, false);
}

const struct xe_s2s_request *
xe_s2s_request(const struct xe_s2s *s)
{
    return &s->req;
}

void
xe_s2s_dialback_verdict(struct xe_s2s *s, const char *from, const char *to,
                        enum xe_s2s_result r, const char *condition)
{
    if (s->pending > 0)
        s->pending--;
    if (s->st == ST_CLOSED)
        return;
    if (r == XE_S2S_VALID && add_pair(s, from, to) < 0)
        r = XE_S2S_ERROR, condition = "resource-constraint";
    count_auth(s, true, "dialback",
               r == XE_S2S_VALID ? "success"
               : r == XE_S2S_INVALID
                   ? "invalid"
                   : (condition ? condition : "remote-server-not-found"));
    if (r == XE_S2S_ERROR) {
        result_error(s, to, from, "cancel",
                     condition ? condition : "remote-server-not-found");
        xe_info("event=s2s-auth-failed mech=dialback peer=%s remote=%s local=%s "
                "reason=%s",
                s->p.peer, from, to, condition ? condition : "error");
        return;
    }
    xe_buf_append_str(&s->out, "<db:result from='");
    xe_buf_append_escaped(&s->out, to);
    xe_buf_append_str(&s->out, "' to='");
    xe_buf_append_escaped(&s->out, from);
    xe_buf_appendf(&s->out, "' type='%s'/>", r == XE_S2S_VALID ? "valid" : "invalid");
    if (r == XE_S2S_VALID) {
        xe_info("event=s2s-auth mech=dialback peer=%s remote=%s local=%s", s->p.peer,
                from, to);
        return;
    }
    xe_info(
        "event=s2s-auth-failed mech=dialback peer=%s remote=%s local=%s reason=invalid",
        s->p.peer, from, to);
    /* XEP-0220 (since 0.6) does not require closing: the stream may carry
     * other pairs (piggybacking). Those already authenticated keep working;
     * the refused pair's stanzas get <invalid-from/>. A stream with no
     * pair authenticated ends, and so does one that keeps sending bad keys. */
    if (s->n_pairs > 0 && ++s->n_refused < XE_S2S_MAX_REFUSED)
        return;
    xe_s2s_stream_error(s, "not-authorized", "dialback key refused");
}

void
xe_s2s_backend_verdict(struct xe_s2s *s, enum xe_s2s_result r, const char *condition)
{
    if (s->st != ST_WAIT)
        return;
    if (r == XE_S2S_ERROR) {
        result_error(s, s->remote, s->local, "cancel",
                     condition ? condition : "remote-server-not-found");
        backend_resume(s);
        return;
    }
    xe_buf_append_str(&s->out, "<db:result from='");
    xe_buf_append_escaped(&s->out, s->remote);
    xe_buf_append_str(&s->out, "' to='");
    xe_buf_append_escaped(&s->out, s->local);
    xe_buf_appendf(&s->out, "' type='%s'/>", r == XE_S2S_VALID ? "valid" : "invalid");
    if (r == XE_S2S_VALID) {
        s->st = ST_DONE;
        xe_xmlstream_free(&s->xs); /* its bytes are pumped from now on */
    } else
        backend_resume(s);
}

enum xe_s2s_result
xe_s2s_verdict(const struct xe_s2s *s, const char **condition_r)
{
    if (condition_r)
        *condition_r = s->verdict_cond;
    return s->verdict;
}

bool
xe_s2s_used_external(const struct xe_s2s *s)
{
    return s->external;
}

const char *
xe_s2s_mech(const struct xe_s2s *s)
{
    if (s->p.kind == XE_S2S_OUT)
        return s->sasl_ok ? s->mech : s->external ? "external" : "dialback";
    return s->mech[0] ? s->mech : "dialback";
}

bool
xe_s2s_closed(const struct xe_s2s *s)
{
    return s->st == ST_CLOSED;
}

const char *
xe_s2s_id(const struct xe_s2s *s)
{
    return s->id;
}

const char *
xe_s2s_remote(const struct xe_s2s *s)
{
    return (s->p.kind == XE_S2S_IN || s->p.kind == XE_S2S_BACKEND) ? s->remote : s->to;
}

const char *
xe_s2s_local(const struct xe_s2s *s)
{
    return our_domain(s);
}

const char *
xe_s2s_peer_error(const struct xe_s2s *s, const char **text_r)
{
    if (text_r)
        *text_r = s->peer_text;
    return s->peer_cond[0] ? s->peer_cond : NULL;
}

const char *
xe_s2s_failure(const struct xe_s2s *s)
{
    return s->fail_text[0] ? s->fail_text : NULL;
}

void
xe_s2s_backend_failure(struct xe_s2s *s, const char *condition, const char *type,
                       const char *text)
{
    if (s->st != ST_WAIT)
        return;
    result_error_text(s, s->remote, s->local, type ? type : "cancel",
                      condition ? condition : "remote-server-not-found", text);
    backend_resume(s);
}

bool
xe_s2s_external_dropped(const struct xe_s2s *s)
{
    return s->p.kind == XE_S2S_OUT && (s->ext_dropped || s->st == ST_SASL);
}
