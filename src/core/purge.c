/* xedge: purging a deleted user's data at its home backend. See purge.h. */
#include "purge.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "register.h"
#include "xelimits.h"
#include "xmlstream.h"

#define PURGE_IQ_ID "xedge-purge-1"
#define PURGE_RESOURCE "xedge-purge"

enum state { ST_HANDSHAKE, ST_WAIT, ST_DONE, ST_FAILED, ST_ABANDONED };

struct xe_purge {
    enum state st;
    struct xe_backend_hs *hs;
    struct xe_xmlstream *xs; /* after the handshake: the answers */
    struct xe_buf out;
    char error[256];
    char *domain, *bare; /* who may answer (answered_by_server) */
    const char *(*recheck)(void *ctx);
    void *recheck_ctx;
};

/* WHAT failed, with the XMPP condition COND (or NULL) */
static void
fail(struct xe_purge *p, const char *what, const char *cond)
{
    if (p->st == ST_FAILED || p->st == ST_DONE || p->st == ST_ABANDONED)
        return;
    if (cond)
        snprintf(p->error, sizeof(p->error), "%s: <%s/>", what, cond);
    else
        snprintf(p->error, sizeof(p->error), "%s", what);
    for (char *c = p->error; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '"')
            *c = ' ';
    p->st = ST_FAILED;
}

/* the condition of a stanza or stream error element E */
static const char *
condition(const struct xe_xml_elem *e, const char *ns)
{
    for (const struct xe_xml_elem *c = e->first_child; c; c = c->next)
        if (strcmp(c->ns, ns) == 0 && strcmp(c->name, "text") != 0)
            return c->name;
    return "undefined-condition";
}

/* Whether FROM is the server answering for the account: no from, the
 * account's JID (bare, or full: ejabberd answers from the session's own
 * full JID), or the domain; only the server can write those. Another user
 * can send an iq of any type and id to the purge's full JID (the resource
 * is well known): such a "result" must not confirm a removal that did not
 * happen, nor such an error fail it. */
static bool
answered_by_server(const struct xe_purge *p, const char *from)
{
    const char *slash;
    size_t n;

    if (from == NULL || from[0] == '\0')
        return true;
    slash = strchr(from, '/');
    n = slash ? (size_t)(slash - from) : strlen(from);
    return (n == strlen(p->bare) && strncasecmp(from, p->bare, n) == 0) ||
           (n == strlen(p->domain) && strncasecmp(from, p->domain, n) == 0);
}

static int
on_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct xe_purge *p = ctx;
    const char *id, *type;
    const struct xe_xml_elem *err;

    (void)raw;
    (void)len;
    if (xe_xml_is(e, XE_NS_STREAMS, "error")) {
        fail(p, "the backend ended the stream", condition(e, XE_NS_STREAM_ERRORS));
        return XE_XS_STOP;
    }
    if (!xe_xml_is(e, XE_NS_CLIENT, "iq") || (id = xe_xml_attr(e, "id")) == NULL ||
        strcmp(id, PURGE_IQ_ID) != 0 || !answered_by_server(p, xe_xml_attr(e, "from")))
        return XE_XS_CONTINUE; /* a push, a message, another user's iq: not ours */
    type = xe_xml_attr(e, "type");
    if (type && strcmp(type, "result") == 0) {
        p->st = ST_DONE;
        return XE_XS_STOP;
    }
    err = xe_xml_child(e, XE_NS_CLIENT, "error");
    fail(p, "the backend refused the removal",
         err ? condition(err, XE_NS_STANZAS) : "undefined-condition");
    return XE_XS_STOP;
}

static int
on_stream_end(void *ctx)
{
    struct xe_purge *p = ctx;

    fail(p, "the backend closed the stream before it answered", NULL);
    return XE_XS_STOP;
}

static int
on_stream_start(void *ctx, const struct xe_xml_elem *header, const char *default_ns)
{
    (void)ctx;
    (void)header;
    (void)default_ns;
    return XE_XS_CONTINUE; /* ours: the parser starts inside the stream */
}

static const struct xe_xmlstream_cb cb = {
    .stream_start = on_stream_start,
    .element = on_element,
    .stream_end = on_stream_end,
};

struct xe_purge *
xe_purge_new(const char *domain, const char *localpart, const char *token)
{
    struct xe_purge *p = xe_calloc(1, sizeof(*p));

    xe_buf_init(&p->out, 0);
    p->domain = xe_strdup(domain);
    p->bare = xe_asprintf("%s@%s", localpart, domain);
    p->hs = xe_backend_hs_new(domain, localpart, token, XE_MAX_BACKEND_FEATURES);
    xe_backend_hs_bind(p->hs, PURGE_RESOURCE);
    xe_buf_append(&p->out, xe_backend_hs_output(p->hs)->data,
                  xe_backend_hs_output(p->hs)->len);
    xe_buf_consume(xe_backend_hs_output(p->hs), xe_backend_hs_output(p->hs)->len);
    return p;
}

void
xe_purge_free(struct xe_purge **pp)
{
    struct xe_purge *p = *pp;

    if (p == NULL)
        return;
    xe_backend_hs_free(&p->hs);
    xe_xmlstream_free(&p->xs);
    xe_buf_free(&p->out);
    free(p->domain);
    free(p->bare);
    free(p);
    *pp = NULL;
}

/* The handshake is done: ask for the removal, and read the answers with a
 * parser that starts inside the restarted stream. */
static void
ask(struct xe_purge *p)
{
    static const char header[] =
        "<stream:stream xmlns='" XE_NS_CLIENT "' xmlns:stream='" XE_NS_STREAMS "'>";
    struct xe_xmlstream_limits lim = {
        .max_element_bytes = XE_DEF_MAX_STANZA_POSTAUTH,
        .max_depth = XE_POSTAUTH_MAX_XML_DEPTH,
        .max_attrs = XE_POSTAUTH_MAX_ATTRS,
    };
    size_t used;
    const char *why;

    if (p->recheck != NULL && (why = p->recheck(p->recheck_ctx)) != NULL) {
        fail(p, why, NULL);
        p->st = ST_ABANDONED;
        return;
    }
    xe_buf_append_str(&p->out,
                      "<iq type='set' id='" PURGE_IQ_ID
                      "'><query xmlns='" XE_NS_IQ_REGISTER "'><remove/></query></iq>");
    p->xs = xe_xmlstream_new(&lim, &cb, p);
    if (p->xs == NULL ||
        xe_xmlstream_feed(p->xs, header, sizeof(header) - 1, &used) != XE_XS_OK) {
        fail(p, "cannot start the parser", NULL);
        return;
    }
    p->st = ST_WAIT;
}

static void
feed_answers(struct xe_purge *p, const void *data, size_t len)
{
    size_t used;

    if (len == 0 || p->st != ST_WAIT)
        return;
    if (xe_xmlstream_feed(p->xs, data, len, &used) == XE_XS_ERROR)
        fail(p, "the backend sent bad XML", xe_xmlstream_condition(p->xs));
}

enum xe_purge_result
xe_purge_feed(struct xe_purge *p, const void *data, size_t len)
{
    if (p->st == ST_HANDSHAKE) {
        size_t consumed = 0;
        enum xe_bhs_result r = xe_backend_hs_feed(p->hs, data, len, &consumed);
        struct xe_buf *o = xe_backend_hs_output(p->hs);

        xe_buf_append(&p->out, o->data, o->len);
        xe_buf_consume(o, o->len);
        if (r == XE_BHS_FAIL) {
            const char *be = xe_backend_hs_bind_error(p->hs);
            if (be)
                fail(p, "the backend refused the bind", be);
            else {
                char why[200];
                snprintf(why, sizeof(why), "login at the backend failed: %s",
                         xe_backend_hs_error(p->hs));
                fail(p, why, NULL);
            }
        } else if (r == XE_BHS_READY) {
            ask(p);
            feed_answers(p, (const unsigned char *)data + consumed, len - consumed);
        }
    } else {
        feed_answers(p, data, len);
    }
    switch (p->st) {
    case ST_DONE:
        return XE_PURGE_DONE;
    case ST_FAILED:
        return XE_PURGE_FAIL;
    case ST_ABANDONED:
        return XE_PURGE_ABANDONED;
    default:
        return XE_PURGE_CONTINUE;
    }
}

void
xe_purge_set_recheck(struct xe_purge *p, const char *(*recheck)(void *ctx), void *ctx)
{
    p->recheck = recheck;
    p->recheck_ctx = ctx;
}

struct xe_buf *
xe_purge_output(struct xe_purge *p)
{
    return &p->out;
}

const char *
xe_purge_error(const struct xe_purge *p)
{
    return p->error[0] ? p->error : "unknown";
}
