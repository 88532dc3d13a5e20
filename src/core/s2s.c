/* xedge: server-to-server streams: what every kind shares, the parser's
 * callbacks and the interface of s2s.h. See s2s.h and doc/federation.md;
 * s2s_impl.h holds the shared state. */
#include "s2s_impl.h"

/* ---- common to every kind ---- */

void
xe_s2s_ev_free(struct ev *e)
{
    if (e == NULL)
        return;
    free(e->from);
    free(e->to);
    if (e->key)
        OPENSSL_cleanse(e->key, strlen(e->key));
    free(e->key);
    free(e->id);
    free(e->to_jid);
    free(e->raw);
    free(e);
}

const char *const xe_s2s_kind_names[] = {"in", "out", "verify", "backend", "link"};

/* OUT/VERIFY/LINK: why the stream failed, for the log and the backend's
 * bounce; the first reason stays. */
void
xe_s2s_set_fail(struct xe_s2s *s, const char *fmt, ...)
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

void
xe_s2s_send_header(struct xe_s2s *s, const char *from, const char *to, bool with_id)
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

const char *
xe_s2s_our_domain(const struct xe_s2s *s)
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
        xe_s2s_send_header(s, xe_s2s_our_domain(s), NULL,
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
    xe_s2s_set_fail(s, "the remote server's stream was refused: %s%s%s", condition,
                    text && *text ? ", " : "", text ? text : "");
    xe_metrics_inc(XE_M_STREAM_ERRORS, condition, NULL);
    xe_info("event=stream-error kind=s2s-%s peer=%s local=%s remote=%s condition=%s "
            "text=\"%s\"",
            xe_s2s_kind_names[s->p.kind], s->p.peer,
            xe_s2s_our_domain(s) ? xe_s2s_our_domain(s) : "-",
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

int
xe_s2s_stop_with(struct xe_s2s *s, enum xe_s2s_action a)
{
    s->action = a;
    return XE_XS_STOP;
}

int
xe_s2s_error_stop(struct xe_s2s *s, const char *condition, const char *text)
{
    xe_s2s_stream_error(s, condition, text);
    return xe_s2s_stop_with(s, XE_S2S_CLOSE);
}

bool
xe_s2s_is_local(const struct xe_s2s *s, const char *d)
{
    return d && s->p.is_local && s->p.is_local(s->p.ctx, d);
}

enum xe_s2s_policy
xe_s2s_policy_of(const struct xe_s2s *s, const char *d)
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

void
xe_s2s_count_auth(const struct xe_s2s *s, bool in, const char *mech, const char *result)
{
    (void)s;
    xe_metrics_inc(in ? XE_M_S2S_AUTH_IN : XE_M_S2S_AUTH_OUT, metric_mech(mech),
                   metric_result(result));
}

bool
xe_s2s_peer_secret(const struct xe_s2s *s, const char *d, struct xe_s2s_secret *sec)
{
    memset(sec, 0, sizeof(*sec));
    return d && s->p.peer_secret && s->p.peer_secret(s->p.ctx, d, sec) && sec->secret &&
           sec->n_mechs > 0;
}

/* base64 of LEN bytes into OUT (NUL-terminated; "=" for nothing), or -1 */
int
xe_s2s_b64_out(const char *data, size_t len, char *out, size_t outmax)
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

bool
xe_s2s_cert_valid_for(const struct xe_s2s *s, const char *d)
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

bool
xe_s2s_to_known(const struct xe_s2s *s, const char *to)
{
    for (size_t i = 0; i < s->n_pairs; i++)
        if (strcmp(s->pairs[i].to, to) == 0)
            return true;
    return false;
}

int
xe_s2s_add_pair(struct xe_s2s *s, const char *from, const char *to)
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

/* ---- the parser's callbacks ---- */

static int
cb_stream_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    struct xe_s2s *s = ctx;

    if (s->resuming)
        return XE_XS_CONTINUE; /* backend_resume's header */
    if (s->st != ST_HEADER)
        return xe_s2s_error_stop(s, "not-well-formed", "a second stream header");
    switch (s->p.kind) {
    case XE_S2S_IN:
        return xe_s2s_in_header(s, h, default_ns);
    case XE_S2S_BACKEND:
        return xe_s2s_backend_header(s, h, default_ns);
    default:
        return xe_s2s_out_header(s, h, default_ns);
    }
}

static int
cb_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct xe_s2s *s = ctx;

    if (xe_xml_is(e, XE_NS_STREAMS, "error"))
        return xe_s2s_peer_stream_error(s, e);
    switch (s->p.kind) {
    case XE_S2S_IN:
        return xe_s2s_in_element(s, e, raw, len);
    case XE_S2S_BACKEND:
        return xe_s2s_backend_element(s, e);
    default:
        return xe_s2s_out_element(s, e);
    }
}

static int
cb_stream_end(void *ctx)
{
    struct xe_s2s *s = ctx;

    s->ext_dropped = s->ext_dropped || s->st == ST_SASL;
    xe_s2s_end(s);
    return xe_s2s_stop_with(s, XE_S2S_CLOSE);
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
        xe_s2s_send_header(s, s->from, s->to, false);
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
    xe_s2s_ev_free(s->ev_cur);
    while (s->evs) {
        struct ev *n = s->evs->next;
        xe_s2s_ev_free(s->evs);
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
        xe_s2s_send_header(s, s->from, s->to, false);
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
    if (r == XE_S2S_VALID && xe_s2s_add_pair(s, from, to) < 0)
        r = XE_S2S_ERROR, condition = "resource-constraint";
    xe_s2s_count_auth(s, true, "dialback",
                      r == XE_S2S_VALID ? "success"
                      : r == XE_S2S_INVALID
                          ? "invalid"
                          : (condition ? condition : "remote-server-not-found"));
    if (r == XE_S2S_ERROR) {
        xe_s2s_result_error(s, to, from, "cancel",
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
        xe_s2s_result_error(s, s->remote, s->local, "cancel",
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
    return xe_s2s_our_domain(s);
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
    xe_s2s_result_error_text(s, s->remote, s->local, type ? type : "cancel",
                             condition ? condition : "remote-server-not-found", text);
    backend_resume(s);
}

bool
xe_s2s_external_dropped(const struct xe_s2s *s)
{
    return s->p.kind == XE_S2S_OUT && (s->ext_dropped || s->st == ST_SASL);
}
