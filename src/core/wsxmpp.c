/* xedge: RFC 7395 framing to and from an XMPP TCP stream. See wsxmpp.h. */
#define _GNU_SOURCE /* memmem */
#include "wsxmpp.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boundary.h"
#include "xelimits.h"

#define MAX_DECLS 8   /* namespace prefixes of the stream header kept */
#define MAX_NAME 128  /* an element or prefix name looked at */
#define MAX_ATTR 1024 /* an attribute value of <open/> or of the header kept */

enum { M_NONE, M_PI, M_END, M_HEADER, M_ELEM };

struct decl {
    char prefix[MAX_NAME];
    char *uri;
};

/* What expat read of one start tag. */
struct xe_wsxmpp;
struct tag {
    char name[MAX_NAME];
    bool has_xmlns, ok;
    char xmlns[MAX_ATTR];
    /* the attributes an <open/> or a header carries */
    char to[MAX_ATTR], from[MAX_ATTR], id[MAX_ATTR], version[MAX_ATTR], lang[MAX_ATTR];
    XML_Parser parser;
    struct xe_wsxmpp *collect; /* reading a header: its declarations kept here */
};

struct xe_wsxmpp {
    const struct xe_wsxmpp_cb *cb;
    void *ctx;
    size_t max_out;
    XML_Parser tagp;
    const char *error;
    /* client -> stream */
    bool open, client_done;
    /* stream -> client */
    bool have_header, stream_done;
    char *default_ns;
    char stream_prefix[MAX_NAME];
    struct decl decls[MAX_DECLS];
    size_t n_decls;
    char *buf; /* stream bytes not yet sent: [0, len) */
    size_t len, cap, scan;
    int mode;
    char quote;
    struct xe_boundary b;
    char *out; /* one rewritten element */
    size_t out_cap;
};

static void
copy_attr(char *dst, const char *v)
{
    size_t n = strlen(v);

    if (n >= MAX_ATTR)
        n = MAX_ATTR - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static void XMLCALL
tag_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct tag *t = ud;
    struct xe_wsxmpp *x = t->collect;

    t->ok = strlen(name) < MAX_NAME;
    if (t->ok)
        strcpy(t->name, name);
    for (size_t i = 0; atts[i]; i += 2) {
        const char *a = atts[i], *v = atts[i + 1];
        if (strcmp(a, "xmlns") == 0) {
            t->has_xmlns = true;
            copy_attr(t->xmlns, v);
        } else if (strncmp(a, "xmlns:", 6) == 0) {
            if (x && x->n_decls < MAX_DECLS && strlen(a + 6) < MAX_NAME) {
                struct decl *d = &x->decls[x->n_decls];
                d->uri = strdup(v);
                if (d->uri) {
                    strcpy(d->prefix, a + 6);
                    x->n_decls++;
                }
            }
        } else if (strcmp(a, "to") == 0)
            copy_attr(t->to, v);
        else if (strcmp(a, "from") == 0)
            copy_attr(t->from, v);
        else if (strcmp(a, "id") == 0)
            copy_attr(t->id, v);
        else if (strcmp(a, "version") == 0)
            copy_attr(t->version, v);
        else if (strcmp(a, "xml:lang") == 0)
            copy_attr(t->lang, v);
    }
    XML_StopParser(t->parser, XML_FALSE);
}

/* Read the start tag at raw (a whole element, or a header's tag); with
 * header, the tag's namespace declarations become the stream's. */
static bool
read_tag(struct xe_wsxmpp *x, const char *raw, size_t len, struct tag *t, bool header)
{
    memset(t, 0, sizeof(*t));
    t->parser = x->tagp;
    if (header) {
        for (size_t i = 0; i < x->n_decls; i++)
            free(x->decls[i].uri);
        x->n_decls = 0;
        t->collect = x;
    }
    XML_ParserReset(x->tagp, NULL);
    XML_SetUserData(x->tagp, t);
    XML_SetStartElementHandler(x->tagp, tag_start);
    XML_Parse(x->tagp, raw, (int)len, XML_FALSE);
    return t->ok;
}

static void
esc_append(char *dst, size_t cap, size_t *n, const char *v)
{
    for (; *v && *n + 7 < cap; v++) {
        const char *r = NULL;
        switch (*v) {
        case '&':
            r = "&amp;";
            break;
        case '<':
            r = "&lt;";
            break;
        case '\'':
            r = "&apos;";
            break;
        case '"':
            r = "&quot;";
            break;
        }
        if (r) {
            memcpy(dst + *n, r, strlen(r));
            *n += strlen(r);
        } else
            dst[(*n)++] = *v;
    }
    dst[*n] = '\0';
}

static void
attr_append(char *dst, size_t cap, size_t *n, const char *name, const char *v)
{
    size_t nl = strlen(name);

    if (!*v || *n + nl + 5 >= cap)
        return;
    dst[(*n)++] = ' ';
    memcpy(dst + *n, name, nl);
    *n += nl;
    dst[(*n)++] = '=';
    dst[(*n)++] = '\'';
    esc_append(dst, cap - 1, n, v);
    dst[(*n)++] = '\'';
    dst[*n] = '\0';
}

/* ---- client -> stream ------------------------------------------------------ */

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
frame_error(struct xe_wsxmpp *x, const char *cond, const char *why)
{
    char m[256];
    static const char close_msg[] = XE_WS_CLOSE_MSG;

    x->error = why;
    if (x->client_done)
        return XE_WSXMPP_EFRAME;
    x->client_done = true;
    snprintf(m, sizeof(m),
             "<error xmlns='" XE_NS_STREAMS
             "'><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
             "</error>",
             cond);
    if (x->cb->to_client(x->ctx, m, strlen(m)) < 0 ||
        x->cb->to_client(x->ctx, close_msg, sizeof(close_msg) - 1) < 0)
        return XE_WSXMPP_ECB;
    return XE_WSXMPP_EFRAME;
}

int
xe_wsxmpp_client_message(struct xe_wsxmpp *x, const char *msg, size_t len)
{
    struct xe_boundary b;
    struct tag t;
    size_t s = 0, e = len, k;

    x->error = "";
    if (x->client_done)
        return XE_WSXMPP_CLOSED;
    while (s < e && is_ws(msg[s]))
        s++;
    while (e > s && is_ws(msg[e - 1]))
        e--;
    if (s == e)
        return XE_WSXMPP_OK; /* whitespace only: nothing */
    if (msg[s] != '<' || e - s < 3 || msg[s + 1] == '?' || msg[s + 1] == '!' ||
        msg[s + 1] == '/')
        return frame_error(x, "not-well-formed", "not an element");
    xe_boundary_init(&b, 1);
    k = xe_boundary_scan(&b, msg + s, e - s, true);
    if (!xe_boundary_between(&b))
        return frame_error(x, "not-well-formed", "half an element in a message");
    if (s + k != e)
        return frame_error(x, "not-well-formed", "more than one element in a message");
    if (!read_tag(x, msg + s, e - s, &t, false))
        return frame_error(x, "not-well-formed", "bad start tag");
    if (strcmp(t.name, "open") == 0 && t.has_xmlns &&
        strcmp(t.xmlns, XE_NS_FRAMING) == 0) {
        char h[5 * MAX_ATTR + 256];
        size_t n = 0;

        n = (size_t)snprintf(h, sizeof(h),
                             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                             "xmlns:stream='" XE_NS_STREAMS "'");
        attr_append(h, sizeof(h), &n, "to", t.to);
        attr_append(h, sizeof(h), &n, "from", t.from);
        attr_append(h, sizeof(h), &n, "version", t.version);
        attr_append(h, sizeof(h), &n, "xml:lang", t.lang);
        h[n++] = '>';
        x->open = true;
        return x->cb->to_stream(x->ctx, h, n) < 0 ? XE_WSXMPP_ECB : XE_WSXMPP_OK;
    }
    if (strcmp(t.name, "close") == 0 && t.has_xmlns &&
        strcmp(t.xmlns, XE_NS_FRAMING) == 0) {
        static const char end[] = "</stream:stream>";
        x->open = false;
        x->client_done = true;
        return x->cb->to_stream(x->ctx, end, sizeof(end) - 1) < 0 ? XE_WSXMPP_ECB
                                                                  : XE_WSXMPP_CLOSED;
    }
    if (!x->open)
        return frame_error(x, "bad-format", "an element before <open/>");
    if (t.has_xmlns && strcmp(t.xmlns, XE_NS_FRAMING) == 0)
        return frame_error(x, "bad-format", "unknown framing element");
    return x->cb->to_stream(x->ctx, msg + s, e - s) < 0 ? XE_WSXMPP_ECB : XE_WSXMPP_OK;
}

bool
xe_wsxmpp_client_open(const struct xe_wsxmpp *x)
{
    return x->open;
}

/* ---- stream -> client ------------------------------------------------------ */

static int
send_header(struct xe_wsxmpp *x, const char *raw, size_t len)
{
    char m[5 * MAX_ATTR + 256];
    size_t n;
    struct tag t;
    const char *colon;

    /* a tag "<p:stream ...>" read as an element: closed for expat's sake */
    if (!read_tag(x, raw, len, &t, true))
        return x->error = "bad stream header", XE_WSXMPP_ESTREAM;
    colon = strchr(t.name, ':');
    if (!colon || strcmp(colon + 1, "stream") != 0)
        return x->error = "not a stream header", XE_WSXMPP_ESTREAM;
    memcpy(x->stream_prefix, t.name, (size_t)(colon - t.name));
    x->stream_prefix[colon - t.name] = '\0';
    free(x->default_ns);
    x->default_ns = t.has_xmlns ? strdup(t.xmlns) : NULL;
    if (t.has_xmlns && !x->default_ns)
        return x->error = "out of memory", XE_WSXMPP_ESTREAM;
    x->have_header = true;
    n = (size_t)snprintf(m, sizeof(m), "<open xmlns='" XE_NS_FRAMING "'");
    attr_append(m, sizeof(m), &n, "from", t.from);
    attr_append(m, sizeof(m), &n, "to", t.to);
    attr_append(m, sizeof(m), &n, "id", t.id);
    attr_append(m, sizeof(m), &n, "version", t.version);
    attr_append(m, sizeof(m), &n, "xml:lang", t.lang);
    memcpy(m + n, "/>", 3);
    n += 2;
    return x->cb->to_client(x->ctx, m, n) < 0 ? XE_WSXMPP_ECB : XE_WSXMPP_OK;
}

static bool
out_room(struct xe_wsxmpp *x, size_t need)
{
    char *p;

    if (need <= x->out_cap)
        return true;
    p = realloc(x->out, need);
    if (!p)
        return false;
    x->out = p;
    x->out_cap = need;
    return true;
}

/* Does the element use prefix p ("p:" in a name, or anywhere: over-declaring
 * is harmless, under-declaring is not)? */
static bool
uses_prefix(const char *raw, size_t len, const char *p)
{
    size_t pl = strlen(p);

    for (const char *q = raw; (q = memchr(q, p[0], len - (size_t)(q - raw))) != NULL;
         q++) {
        if ((size_t)(raw + len - q) > pl && memcmp(q, p, pl) == 0 && q[pl] == ':' &&
            q > raw && (q[-1] == '<' || q[-1] == '/' || is_ws(q[-1])))
            return true;
    }
    return false;
}

/* One balanced element: '<' first, and the boundary scan from inside the
 * stream comes back between stanzas exactly at its end. */
static bool
one_element(const char *p, size_t len)
{
    struct xe_boundary b;

    if (len < 3 || p[0] != '<')
        return false;
    xe_boundary_init(&b, 1);
    return xe_boundary_scan(&b, p, len, true) == len && xe_boundary_between(&b);
}

/* The bytes of the start tag at raw (to its '>', quotes followed). */
static size_t
start_tag_len(const char *raw, size_t len)
{
    char quote = 0;

    for (size_t i = 0; i < len; i++) {
        if (quote) {
            if (raw[i] == quote)
                quote = 0;
        } else if (raw[i] == '\'' || raw[i] == '"')
            quote = raw[i];
        else if (raw[i] == '>')
            return i + 1;
    }
    return len;
}

static int
send_element(struct xe_wsxmpp *x, const char *raw, size_t len)
{
    struct tag t;
    size_t nl, n = 0, need;
    bool is_error;
    char se[MAX_NAME + 8];

    if (!read_tag(x, raw, len, &t, false))
        return x->error = "bad element", XE_WSXMPP_ESTREAM;
    nl = strlen(t.name);
    snprintf(se, sizeof(se), "%s:error", x->stream_prefix);
    is_error = strcmp(t.name, se) == 0;
    /* the values inserted are escaped again: at most 6 bytes each */
    need = len + 64 + (x->default_ns ? 6 * strlen(x->default_ns) : 0);
    for (size_t i = 0; i < x->n_decls; i++)
        need += strlen(x->decls[i].prefix) + 6 * strlen(x->decls[i].uri) + 16;
    if (!out_room(x, need))
        return x->error = "out of memory", XE_WSXMPP_ESTREAM;
    if (is_error) {
        n = (size_t)sprintf(x->out, "<error xmlns='" XE_NS_STREAMS "'");
    } else {
        memcpy(x->out, raw, 1 + nl);
        n = 1 + nl;
        if (!t.has_xmlns && x->default_ns)
            attr_append(x->out, need, &n, "xmlns", x->default_ns);
    }
    for (size_t i = 0; i < x->n_decls; i++) {
        const struct decl *d = &x->decls[i];
        char own[MAX_NAME + 8];
        bool skip = is_error && strcmp(d->prefix, x->stream_prefix) == 0;

        snprintf(own, sizeof(own), "xmlns:%s=", d->prefix);
        /* declared on the element's own start tag: kept as it is */
        if (!skip && !memmem(raw, start_tag_len(raw, len), own, strlen(own)) &&
            uses_prefix(raw, len, d->prefix)) {
            own[strlen(own) - 1] = '\0'; /* the attribute's name, without '=' */
            attr_append(x->out, need, &n, own, d->uri);
        }
    }
    if (is_error) {
        /* "...</stream:error>" -> "...</error>"; "<stream:error/>" stays empty */
        size_t body = len - 1 - nl, tail = 0;
        const char *r = raw + 1 + nl;
        if (len >= nl + 3 && raw[len - 1] == '>' && raw[len - 2] != '/') {
            tail = nl + 3; /* "</" name ">" */
            if (len < tail + 1 + nl || memcmp(raw + len - tail + 2, t.name, nl) != 0)
                tail = 0;
        }
        memcpy(x->out + n, r, body - tail);
        n += body - tail;
        if (tail) {
            memcpy(x->out + n, "</error>", 8);
            n += 8;
        }
    } else {
        memcpy(x->out + n, raw + 1 + nl, len - 1 - nl);
        n += len - 1 - nl;
    }
    /* a rewritten stream error of a stream that is not well-formed may no
     * longer be one element: refused rather than sent */
    if (is_error && !one_element(x->out, n))
        return x->error = "bad stream error", XE_WSXMPP_ESTREAM;
    return x->cb->to_client(x->ctx, x->out, n) < 0 ? XE_WSXMPP_ECB : XE_WSXMPP_OK;
}

/* Is p (n bytes, starting with '<') a stream header's start, as far as it
 * goes? 1: yes, 0: no, -1: not known yet. */
static int
header_start(const struct xe_wsxmpp *x, const char *p, size_t n)
{
    char want[MAX_NAME + 16];
    size_t wl;

    if (!x->have_header)
        return 1; /* the first element of the stream is its header */
    wl = (size_t)snprintf(want, sizeof(want), "<%s:stream", x->stream_prefix);
    if (n < wl + 1)
        return memcmp(p, want, n) == 0 ? -1 : 0;
    return memcmp(p, want, wl) == 0 && (is_ws(p[wl]) || p[wl] == '>') ? 1 : 0;
}

static int
process(struct xe_wsxmpp *x)
{
    size_t pos = 0;
    int rc = XE_WSXMPP_OK;

    while (rc == XE_WSXMPP_OK && !x->stream_done) {
        char *p = x->buf + pos;
        size_t n = x->len - pos;

        if (x->mode == M_NONE) {
            while (n > 0 && is_ws(*p))
                p++, n--, pos++;
            if (n < 2)
                break;
            if (p[0] != '<') {
                x->error = "text between stanzas";
                rc = XE_WSXMPP_ESTREAM;
                break;
            }
            if (p[1] == '?') {
                x->mode = M_PI;
            } else if (p[1] == '/') {
                x->mode = M_END;
            } else {
                int h = header_start(x, p, n);
                if (h < 0)
                    break;
                x->mode = h ? M_HEADER : M_ELEM;
                x->quote = 0;
                xe_boundary_init(&x->b, 1);
            }
            x->scan = pos;
        }
        switch (x->mode) {
        case M_PI: {
            char *q = memmem(x->buf + x->scan, x->len - x->scan, "?>", 2);
            if (!q) {
                x->scan = x->len > pos + 2 ? x->len - 1 : pos;
                goto out;
            }
            pos = (size_t)(q + 2 - x->buf);
            x->mode = M_NONE;
            break;
        }
        case M_END: {
            static const char close_msg[] = XE_WS_CLOSE_MSG;
            char *q = memchr(x->buf + pos, '>', x->len - pos);
            if (!q)
                goto out;
            pos = (size_t)(q + 1 - x->buf);
            x->mode = M_NONE;
            x->stream_done = true;
            if (x->cb->to_client(x->ctx, close_msg, sizeof(close_msg) - 1) < 0)
                rc = XE_WSXMPP_ECB;
            else
                rc = XE_WSXMPP_CLOSED;
            break;
        }
        case M_HEADER: {
            size_t i;
            for (i = x->scan; i < x->len; i++) {
                char c = x->buf[i];
                if (x->quote) {
                    if (c == x->quote)
                        x->quote = 0;
                } else if (c == '\'' || c == '"')
                    x->quote = c;
                else if (c == '>')
                    break;
            }
            x->scan = i;
            if (i == x->len) {
                if (x->len - pos > XE_MAX_HEADER_BYTES) {
                    x->error = "stream header too long";
                    rc = XE_WSXMPP_ESTREAM;
                }
                goto out;
            }
            rc = send_header(x, x->buf + pos, i + 1 - pos);
            pos = i + 1;
            x->mode = M_NONE;
            break;
        }
        case M_ELEM: {
            size_t k = xe_boundary_scan(&x->b, x->buf + x->scan, x->len - x->scan, true);
            x->scan += k;
            if (!xe_boundary_between(&x->b)) {
                if (x->b.depth == 0) {
                    x->error = "unbalanced end tag";
                    rc = XE_WSXMPP_ESTREAM;
                }
                goto out;
            }
            rc = send_element(x, x->buf + pos, x->scan - pos);
            pos = x->scan;
            x->mode = M_NONE;
            break;
        }
        }
    }
out:
    memmove(x->buf, x->buf + pos, x->len - pos);
    x->len -= pos;
    x->scan = x->scan > pos ? x->scan - pos : 0;
    if (rc == XE_WSXMPP_OK && x->len > x->max_out) {
        x->error = "element too big";
        rc = XE_WSXMPP_ESTREAM;
    }
    return rc;
}

int
xe_wsxmpp_stream_input(struct xe_wsxmpp *x, const void *bytes, size_t len)
{
    int rc;

    x->error = "";
    if (x->stream_done)
        return XE_WSXMPP_CLOSED;
    if (x->len + len > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        char *p;
        while (cap < x->len + len)
            cap *= 2;
        if (x->len + len > x->max_out + XE_READ_CHUNK * 4) {
            x->error = "element too big";
            return XE_WSXMPP_ESTREAM;
        }
        p = realloc(x->buf, cap);
        if (!p) {
            x->error = "out of memory";
            return XE_WSXMPP_ESTREAM;
        }
        x->buf = p;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, bytes, len);
    x->len += len;
    rc = process(x);
    if (x->len == 0) {
        /* between elements: an idle session keeps no buffers (RSS per
         * session; the next input allocates again) */
        free(x->buf);
        x->buf = NULL;
        x->cap = 0;
        free(x->out);
        x->out = NULL;
        x->out_cap = 0;
    }
    return rc;
}

/* One expat parser per thread, shared by the thread's mappings: read_tag
 * resets it before each use and nothing of it outlives the call, so a
 * session need not hold its own (some 8 KiB: RSS per idle session). Made
 * with the thread's first mapping, freed with its last. */
static _Thread_local struct {
    XML_Parser p;
    unsigned users;
} shared;

struct xe_wsxmpp *
xe_wsxmpp_new(size_t max_out, const struct xe_wsxmpp_cb *cb, void *ctx)
{
    struct xe_wsxmpp *x = calloc(1, sizeof(*x));

    if (!x)
        return NULL;
    if (shared.users == 0 && (shared.p = XML_ParserCreate("UTF-8")) == NULL) {
        free(x);
        return NULL;
    }
    shared.users++;
    x->tagp = shared.p;
    x->cb = cb;
    x->ctx = ctx;
    x->max_out = max_out;
    x->error = "";
    return x;
}

void
xe_wsxmpp_free(struct xe_wsxmpp **xp)
{
    struct xe_wsxmpp *x = *xp;

    if (!x)
        return;
    if (--shared.users == 0) {
        XML_ParserFree(shared.p);
        shared.p = NULL;
    }
    for (size_t i = 0; i < x->n_decls; i++)
        free(x->decls[i].uri);
    free(x->default_ns);
    free(x->buf);
    free(x->out);
    free(x);
    *xp = NULL;
}

const char *
xe_wsxmpp_error(const struct xe_wsxmpp *x)
{
    return x->error;
}
