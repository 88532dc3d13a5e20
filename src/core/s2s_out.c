/* xedge: server-to-server streams: the ones we open (OUT, VERIFY,
 * LINK) and BACKEND, a backend's outgoing stream. See s2s.h and doc/federation.md;
 * s2s_impl.h holds the shared state. */
#include "s2s_impl.h"

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
        xe_s2s_count_auth(s, false, "dialback",
                          r == XE_S2S_VALID     ? "success"
                          : r == XE_S2S_INVALID ? "invalid"
                                                : cond);
    if (r == XE_S2S_INVALID)
        xe_s2s_set_fail(s, "dialback: the remote server refused %s",
                        s->p.kind == XE_S2S_VERIFY ? "the key" : "our key");
    else if (r == XE_S2S_ERROR)
        xe_s2s_set_fail(s, "dialback: the remote server answered <%s/>",
                        cond ? cond : "error");
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
    if (s->p.kind == XE_S2S_OUT && xe_s2s_policy_of(s, s->to) != XE_S2S_POLICY_DIALBACK) {
        xe_info("event=s2s-refused kind=s2s-out peer=%s local=%s remote=%s "
                "reason=%s",
                s->p.peer, s->from, s->to,
                xe_s2s_policy_of(s, s->to) == XE_S2S_POLICY_REFUSE ? "policy"
                : xe_s2s_policy_of(s, s->to) == XE_S2S_POLICY_SECRET
                    ? "secret-required"
                    : "external-required");
        xe_s2s_set_fail(
            s, "%s",
            xe_s2s_policy_of(s, s->to) == XE_S2S_POLICY_REFUSE
                ? "federation with this domain is refused by policy"
            : xe_s2s_policy_of(s, s->to) == XE_S2S_POLICY_SECRET
                ? "policy requires SASL with the pre-shared secret, which failed or "
                  "was not offered"
                : "policy requires SASL EXTERNAL, which failed or was not possible "
                  "(no certificate valid for the domain, or not offered)");
        xe_s2s_end(s);
        s->verdict_new = true;
        s->verdict = XE_S2S_ERROR;
        s->verdict_cond = "policy-violation";
        return xe_s2s_stop_with(s, XE_S2S_VERDICT);
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

    if (m == NULL || s->secret_failed ||
        xe_s2s_policy_of(s, s->to) == XE_S2S_POLICY_REFUSE ||
        !xe_s2s_peer_secret(s, s->to, &sec))
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
        (out && outlen && xe_s2s_b64_out(out, outlen, b64, sizeof(b64)) < 0)) {
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
    xe_s2s_count_auth(s, false, s->mech, reason);
    xe_sasl_client_free(&s->sclient);
    s->secret_failed = true;
    s->mech[0] = '\0';
    if (xe_s2s_policy_of(s, s->to) == XE_S2S_POLICY_DIALBACK) {
        out_authenticate(s);
        return XE_XS_CONTINUE;
    }
    xe_s2s_set_fail(s, "the remote server refused our pre-shared secret (%s)", reason);
    xe_s2s_end(s);
    s->verdict_new = true;
    s->verdict = XE_S2S_ERROR;
    s->verdict_cond = "not-authorized";
    return xe_s2s_stop_with(s, XE_S2S_VERDICT);
}

/* OUT: SASL (the secret, or EXTERNAL) succeeded: restart the stream. */
static int
out_restart(struct xe_s2s *s)
{
    s->header_sent = false;
    xe_s2s_send_header(s, s->from, s->to, false);
    s->st = ST_HEADER;
    s->restarted = true;
    s->reset_pending = true; /* the next byte starts the new stream */
    return xe_s2s_stop_with(s, XE_S2S_CONTINUE);
}

static int
out_secret_element(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    const char *text = xe_xml_text(e), *out = NULL;
    char in[XE_S2S_MAX_SASL], b64[2 * XE_S2S_MAX_SASL];
    size_t inlen = 0, outlen = 0;
    int r;

    if (strcmp(e->ns, XE_NS_SASL) != 0)
        return xe_s2s_error_stop(s, "not-authorized", "SASL expected");
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
        return xe_s2s_error_stop(s, "not-authorized", "bad base64 from the server");
    if (strcmp(e->name, "challenge") == 0) {
        if (s->client_done)
            return xe_s2s_error_stop(s, "not-authorized", "a challenge after the end");
        r = xe_sasl_client_step(s->sclient, in, inlen, &out, &outlen);
        if (r == XE_SASL_FAIL ||
            (out && outlen && xe_s2s_b64_out(out, outlen, b64, sizeof(b64)) < 0)) {
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
        return xe_s2s_error_stop(s, "not-authorized", "SASL expected");
    if (!s->client_done) {
        /* SCRAM: the server's signature proves it knows the secret too */
        r = xe_sasl_client_step(s->sclient, in, inlen, &out, &outlen);
        if (r != XE_SASL_OK) {
            xe_info("event=s2s-auth-failed kind=s2s-out mech=%s peer=%s local=%s "
                    "remote=%s reason=server-not-verified detail=\"%s\"",
                    s->mech, s->p.peer, s->from, s->to,
                    xe_sasl_client_detail(s->sclient));
            xe_s2s_count_auth(s, false, s->mech, "server-not-verified");
            xe_sasl_client_free(&s->sclient);
            s->secret_failed = true;
            xe_s2s_set_fail(
                s, "the remote server could not prove it knows the pre-shared secret");
            xe_s2s_stream_error(s, "not-authorized", "the server's proof is wrong");
            s->verdict_new = true;
            s->verdict = XE_S2S_ERROR;
            s->verdict_cond = "not-authorized";
            return xe_s2s_stop_with(s, XE_S2S_VERDICT);
        }
    }
    xe_sasl_client_free(&s->sclient);
    xe_s2s_count_auth(s, false, s->mech, "success");
    s->sasl_ok = true;
    return out_restart(s);
}

int
xe_s2s_out_element(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    switch (s->st) {
    case ST_NEGOTIATE:
        if (!xe_xml_is(e, XE_NS_STREAMS, "features"))
            return xe_s2s_error_stop(s, "not-authorized", "features expected");
        if (!s->tls && s->p.tls_possible && s->p.kind != XE_S2S_LINK &&
            xe_xml_child(e, XE_NS_TLS, "starttls")) {
            xe_buf_append_str(&s->out, "<starttls xmlns='" XE_NS_TLS "'/>");
            s->st = ST_PROCEED;
            return XE_XS_CONTINUE;
        }
        if (!s->tls && s->p.require_tls && s->p.kind == XE_S2S_OUT) {
            xe_s2s_set_fail(
                s, "the remote server offers no STARTTLS and encryption is required");
            return xe_s2s_error_stop(s, "policy-violation", "STARTTLS is required");
        }
        if (s->p.kind == XE_S2S_OUT && s->tls && out_secret(s, e))
            return XE_XS_CONTINUE;
        if (s->p.kind == XE_S2S_OUT && s->tls && !s->p.no_external &&
            xe_s2s_cert_valid_for(s, s->to) &&
            xe_s2s_policy_of(s, s->to) != XE_S2S_POLICY_SECRET) {
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
            return xe_s2s_stop_with(s, XE_S2S_STARTTLS);
        return xe_s2s_error_stop(s, "not-authorized", "STARTTLS failed");
    case ST_SASL:
        if (xe_xml_is(e, XE_NS_SASL, "success")) {
            xe_s2s_count_auth(s, false, "external", "success");
            s->external = true;
            return out_restart(s);
        }
        xe_s2s_count_auth(s, false, "external", "not-authorized");
        return out_dialback(s); /* EXTERNAL refused: dialback, if allowed */
    case ST_SECRET:
        return out_secret_element(s, e);
    case ST_RESULT:
        if (s->p.kind == XE_S2S_VERIFY && xe_xml_is(e, XE_NS_DIALBACK, "verify")) {
            const char *id = xe_xml_attr(e, "id");
            if (id == NULL || strcmp(id, s->stream_id) != 0)
                return xe_s2s_error_stop(s, "invalid-id", "db:verify for another stream");
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
        return xe_s2s_error_stop(s, "not-authorized", NULL);
    }
}

int
xe_s2s_out_header(struct xe_s2s *s, const struct xe_xml_elem *h, const char *default_ns)
{
    const char *id = xe_xml_attr(h, "id");

    if (!xe_xml_is(h, XE_NS_STREAMS, "stream") || default_ns == NULL ||
        strcmp(default_ns, XE_NS_SERVER) != 0)
        return xe_s2s_error_stop(s, "invalid-namespace", NULL);
    if (id == NULL || strlen(id) >= sizeof(s->id))
        return xe_s2s_error_stop(s, "invalid-id", "no stream id");
    snprintf(s->id, sizeof(s->id), "%s", id);
    if (s->restarted && (s->external || s->sasl_ok)) {
        s->st = ST_DONE; /* the features that follow are not needed */
        return verdict_stop(s, XE_S2S_VALID, NULL);
    }
    s->st = ST_NEGOTIATE;
    if (!xe_s2s_version_1(h) && s->p.kind != XE_S2S_LINK && !s->restarted) {
        /* a pre-1.0 server sends no features: dialback at once, where
         * encryption is not required (no STARTTLS with it) */
        s->legacy = true;
        xe_info("event=s2s-legacy kind=s2s-%s peer=%s local=%s remote=%s tls=%s",
                xe_s2s_kind_names[s->p.kind], s->p.peer, s->from, s->to,
                s->tls ? "yes" : "none");
        if (s->p.require_tls && !s->tls) {
            xe_s2s_set_fail(
                s, "the remote server is pre-XMPP-1.0 (no version): no STARTTLS, and "
                   "encryption is required");
            return xe_s2s_error_stop(s, "policy-violation", "STARTTLS is required");
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

int
xe_s2s_backend_header(struct xe_s2s *s, const struct xe_xml_elem *h,
                      const char *default_ns)
{
    const char *to = xe_xml_attr(h, "to"), *from = xe_xml_attr(h, "from");
    char d[XE_S2S_MAX_DOMAIN_BUF];

    if (!xe_xml_is(h, XE_NS_STREAMS, "stream") || default_ns == NULL ||
        strcmp(default_ns, XE_NS_SERVER) != 0)
        return xe_s2s_error_stop(s, "invalid-namespace", NULL);
    if (from == NULL || xe_jid_domain(from, d, sizeof(d)) < 0 || !xe_s2s_is_local(s, d))
        return xe_s2s_error_stop(s, "invalid-from", "not a domain served here");
    free(s->local);
    s->local = xe_strdup(d);
    if (to == NULL || xe_jid_domain(to, d, sizeof(d)) < 0)
        return xe_s2s_error_stop(s, "host-unknown", "no to");
    free(s->remote);
    s->remote = xe_strdup(d);
    xe_random_id(s->id);
    xe_s2s_send_header(s, s->remote, s->local, true);
    xe_buf_append_str(&s->out, "<stream:features><dialback xmlns='" XE_NS_DIALBACK_FEATURE
                               "'><errors/></dialback></stream:features>");
    s->st = ST_NEGOTIATE;
    return XE_XS_CONTINUE;
}

int
xe_s2s_backend_element(struct xe_s2s *s, const struct xe_xml_elem *e)
{
    char from[XE_S2S_MAX_DOMAIN_BUF], to[XE_S2S_MAX_DOMAIN_BUF];

    if (s->st != ST_NEGOTIATE || !xe_xml_is(e, XE_NS_DIALBACK, "result"))
        return xe_s2s_error_stop(s, "not-authorized", "db:result expected");
    if (xe_s2s_copy_domain(xe_xml_attr(e, "from"), from) < 0 ||
        xe_s2s_copy_domain(xe_xml_attr(e, "to"), to) < 0 || strcmp(from, s->local) != 0 ||
        strcmp(to, s->remote) != 0)
        return xe_s2s_error_stop(s, "invalid-from",
                                 "db:result for another pair than the "
                                 "stream's");
    memset(&s->req, 0, sizeof(s->req));
    snprintf(s->req.from, sizeof(s->req.from), "%s", from);
    snprintf(s->req.to, sizeof(s->req.to), "%s", to);
    { /* the backend's key: the glue checks it (an s2s-out assertion) */
        const char *key = xe_xml_text(e);
        if (key == NULL || strlen(key) >= sizeof(s->req.key))
            return xe_s2s_error_stop(s, "not-authorized", "no key, or too long");
        snprintf(s->req.key, sizeof(s->req.key), "%s", key);
    }
    s->st = ST_WAIT;
    return xe_s2s_stop_with(s, XE_S2S_OPEN);
}
