/* xedge: the HTTP/1.1 Upgrade request of a WebSocket listener (sans-IO).
 * http-parser reads the request; this file checks it and writes the answer.
 * See wshttp.h. */
#include "wshttp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const kept[] = {"host",
                                   "origin",
                                   "upgrade",
                                   "connection",
                                   "sec-websocket-key",
                                   "sec-websocket-version",
                                   "sec-websocket-protocol",
                                   "x-forwarded-for"};
enum {
    H_HOST,
    H_ORIGIN,
    H_UPGRADE,
    H_CONNECTION,
    H_KEY,
    H_VERSION,
    H_PROTOCOL,
    H_XFF,
    H_N
};

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static int
too_big(struct xe_wshttp *h, const char *why)
{
    h->too_big = true;
    h->reason = why;
    return 1; /* http-parser: stop with an error */
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct xe_wshttp *h = p->data;

    if (h->url_len + len > XE_WS_MAX_HTTP_VALUE)
        return too_big(h, "request target too long");
    memcpy(h->url + h->url_len, at, len);
    h->url_len += len;
    h->url[h->url_len] = '\0';
    return 0;
}

/* The header just read ends: which kept one it was is known by its name. */
static void
end_name(struct xe_wshttp *h)
{
    h->field = -1;
    if (h->name_len > XE_WS_MAX_HTTP_NAME)
        return;
    for (int i = 0; i < H_N; i++)
        if (strcasecmp(h->name, kept[i]) == 0)
            h->field = i;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct xe_wshttp *h = p->data;

    if (h->in_value || h->n_headers == 0) {
        if (++h->n_headers > XE_WS_MAX_HTTP_HEADERS)
            return too_big(h, "too many header lines");
        h->in_value = false;
        h->name_len = 0;
        h->name[0] = '\0';
    }
    if (h->name_len + len <= XE_WS_MAX_HTTP_NAME) {
        memcpy(h->name + h->name_len, at, len);
        h->name[h->name_len + len] = '\0';
    }
    h->name_len += len; /* past the bound: not a header we keep */
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct xe_wshttp *h = p->data;
    size_t *vl;

    if (!h->in_value) {
        h->in_value = true;
        end_name(h);
        /* a repeated header (Sec-WebSocket-Protocol, X-Forwarded-For):
         * joined with a comma, as RFC 9110 5.3 allows */
        if (h->field >= 0 && h->val_len[h->field] > 0) {
            if (h->val_len[h->field] + 1 > XE_WS_MAX_HTTP_VALUE)
                return too_big(h, "header value too long");
            h->val[h->field][h->val_len[h->field]++] = ',';
            h->val[h->field][h->val_len[h->field]] = '\0';
        }
    }
    if (h->field < 0)
        return 0;
    vl = &h->val_len[h->field];
    if (*vl + len > XE_WS_MAX_HTTP_VALUE)
        return too_big(h, "header value too long");
    memcpy(h->val[h->field] + *vl, at, len);
    *vl += len;
    h->val[h->field][*vl] = '\0';
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    struct xe_wshttp *h = p->data;

    h->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_message_complete = on_message_complete,
};

void
xe_wshttp_init(struct xe_wshttp *h, const struct xe_wshttp_conf *conf)
{
    memset(h, 0, sizeof(*h));
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->conf = conf;
    h->field = -1;
}

const char *
xe_wshttp_header(const struct xe_wshttp *h, const char *name)
{
    for (int i = 0; i < H_N; i++)
        if (strcasecmp(name, kept[i]) == 0)
            return h->val_len[i] ? h->val[i] : NULL;
    return NULL;
}

/* Does the comma-separated list hold token (case-insensitive, trimmed)? */
static bool
has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);

    while (list && *list) {
        while (*list == ' ' || *list == '\t' || *list == ',')
            list++;
        const char *e = list;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > list && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - list) == tl && strncasecmp(list, token, tl) == 0)
            return true;
        list = e;
    }
    return false;
}

int
xe_ws_accept_key(const char *key, char out[29])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    char buf[XE_WS_MAX_HTTP_VALUE + sizeof(WS_GUID)];
    size_t kl = strlen(key);

    if (kl > XE_WS_MAX_HTTP_VALUE)
        return -1;
    memcpy(buf, key, kl);
    memcpy(buf + kl, WS_GUID, sizeof(WS_GUID) - 1);
    SHA1((const unsigned char *)buf, kl + sizeof(WS_GUID) - 1, md);
    return EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH) == 28 ? 0 : -1;
}

/* The key must be the base64 of 16 bytes (RFC 6455 4.1): 24 characters. */
static bool
key_valid(const char *key)
{
    unsigned char raw[24];

    if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

static void
answer(struct xe_wshttp *h, int status, const char *text, const char *extra,
       const char *ctype, const char *body, const char *reason)
{
    int n;

    h->status = status;
    if (reason)
        h->reason = reason;
    if (!body)
        body = "";
    n = snprintf(h->answer, sizeof(h->answer),
                 "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "%s\r\n%s",
                 status, text, extra ? extra : "",
                 ctype ? ctype : "text/plain; charset=utf-8", strlen(body),
                 status == 101 ? "" : "Connection: close\r\n", body);
    if (n < 0 || (size_t)n >= sizeof(h->answer)) { /* a host-meta URL too long */
        n = snprintf(h->answer, sizeof(h->answer),
                     "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
        h->status = 500;
        h->reason = "answer too long";
    }
    h->answer_len = (size_t)n;
}

static void
error(struct xe_wshttp *h, int status, const char *text, const char *extra,
      const char *reason)
{
    char body[256];

    snprintf(body, sizeof(body), "%s\n", reason);
    answer(h, status, text, extra, NULL, body, reason);
}

/* host-meta (XEP-0156) in XRD or JSON. The URL goes in unescaped: the
 * configuration check refuses a URL with quotes, '<', '&', a backslash or controls. */
static void
host_meta(struct xe_wshttp *h, bool json)
{
    char body[XE_WS_MAX_HTTP_ANSWER / 2];
    const char *url = h->conf->host_meta_url;
    int n;

    if (json)
        n = snprintf(body, sizeof(body),
                     "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\","
                     "\"href\":\"%s\"}]}\n",
                     url);
    else
        n = snprintf(body, sizeof(body),
                     "<?xml version='1.0' encoding='utf-8'?>\n"
                     "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                     "  <Link rel='urn:xmpp:alt-connections:websocket' href='%s'/>\n"
                     "</XRD>\n",
                     url);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        error(h, 500, "Internal Server Error", NULL, "host-meta URL too long");
        return;
    }
    answer(h, 200, "OK",
           "Access-Control-Allow-Origin: *\r\nCache-Control: max-age=3600\r\n",
           json ? "application/json" : "application/xrd+xml", body, "host-meta");
}

static void
decide(struct xe_wshttp *h)
{
    const struct xe_wshttp_conf *c = h->conf;
    const char *path = c->path ? c->path : XE_WS_DEFAULT_PATH;
    const char *origin = h->val_len[H_ORIGIN] ? h->val[H_ORIGIN] : NULL;
    const char *key = h->val_len[H_KEY] ? h->val[H_KEY] : NULL;
    char target[XE_WS_MAX_HTTP_VALUE + 1];
    char extra[256];
    char acc[29];
    struct http_parser_url u;

    /* the path, without the query */
    http_parser_url_init(&u);
    if (http_parser_parse_url(h->url, h->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        error(h, 400, "Bad Request", NULL, "bad request target");
        return;
    }
    memcpy(target, h->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    target[u.field_data[UF_PATH].len] = '\0';

    if (h->parser.http_major != 1 || h->parser.http_minor < 1) {
        error(h, 400, "Bad Request", NULL, "HTTP/1.1 required");
        return;
    }
    if (!h->val_len[H_HOST]) {
        error(h, 400, "Bad Request", NULL, "no Host header");
        return;
    }
    if (h->parser.method != HTTP_GET) {
        error(h, 405, "Method Not Allowed", "Allow: GET\r\n", "method not allowed");
        return;
    }
    if (c->host_meta_url && strcmp(target, XE_WS_HOST_META) == 0) {
        host_meta(h, false);
        return;
    }
    if (c->host_meta_url && strcmp(target, XE_WS_HOST_META_JSON) == 0) {
        host_meta(h, true);
        return;
    }
    if (strcmp(target, path) != 0) {
        error(h, 404, "Not Found", NULL, "no such path");
        return;
    }
    if (!has_token(h->val[H_UPGRADE], "websocket") ||
        !has_token(h->val[H_CONNECTION], "upgrade")) {
        error(
            h, 426, "Upgrade Required",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
            "not a WebSocket upgrade");
        return;
    }
    if (strcmp(h->val[H_VERSION], "13") != 0) {
        error(h, 426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
              "unsupported WebSocket version");
        return;
    }
    if (!key_valid(key) || xe_ws_accept_key(key, acc) != 0) {
        error(h, 400, "Bad Request", NULL, "bad Sec-WebSocket-Key");
        return;
    }
    if (c->n_origins > 0 && origin) {
        bool allowed = false;
        for (size_t i = 0; i < c->n_origins && !allowed; i++)
            allowed = strcasecmp(origin, c->origins[i]) == 0;
        if (!allowed) {
            error(h, 403, "Forbidden", NULL, "origin not allowed");
            return;
        }
    }
    if (!has_token(h->val[H_PROTOCOL], "xmpp")) {
        error(h, 400, "Bad Request", NULL, "the xmpp subprotocol is required");
        return;
    }
    snprintf(extra, sizeof(extra),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\n",
             acc);
    h->status = 101;
    h->reason = "upgrade";
    h->answer_len = (size_t)snprintf(h->answer, sizeof(h->answer),
                                     "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", extra);
}

int
xe_wshttp_feed(struct xe_wshttp *h, const void *data, size_t len, size_t *used)
{
    size_t n, room;
    enum http_errno e;

    *used = 0;
    if (h->status)
        return h->status == 101 ? XE_WSHTTP_UPGRADE : XE_WSHTTP_ANSWER;
    room = XE_WS_MAX_HTTP_HEAD - h->head_bytes;
    n = http_parser_execute(&h->parser, &settings, data, len < room ? len : room);
    e = HTTP_PARSER_ERRNO(&h->parser);
    h->head_bytes += n;
    *used = n;
    if (h->too_big) {
        error(h, 431, "Request Header Fields Too Large", NULL, h->reason);
        return XE_WSHTTP_ANSWER;
    }
    if (h->done) {
        decide(h);
        return h->status == 101 ? XE_WSHTTP_UPGRADE : XE_WSHTTP_ANSWER;
    }
    if (e != HPE_OK) {
        error(h, 400, "Bad Request", NULL, http_errno_description(e));
        return XE_WSHTTP_ANSWER;
    }
    if (h->head_bytes >= XE_WS_MAX_HTTP_HEAD) {
        error(h, 431, "Request Header Fields Too Large", NULL, "request head too long");
        return XE_WSHTTP_ANSWER;
    }
    return XE_WSHTTP_MORE;
}

int
xe_wshttp_client_addr(const struct xe_wshttp *h, const struct xe_cidr *trusted,
                      size_t n_trusted, struct sockaddr_storage *out)
{
    const char *v = h->val_len[H_XFF] ? h->val[H_XFF] : NULL;
    const char *end;

    if (!v)
        return -1;
    end = v + strlen(v);
    while (end > v) {
        const char *s = end, *e = end;
        char one[64];
        struct sockaddr_in *in4 = (struct sockaddr_in *)out;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

        while (s > v && s[-1] != ',')
            s--;
        end = s > v ? s - 1 : v;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) >= sizeof(one))
            return -1;
        memcpy(one, s, (size_t)(e - s));
        one[e - s] = '\0';
        memset(out, 0, sizeof(*out));
        if (inet_pton(AF_INET, one, &in4->sin_addr) == 1)
            in4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, one, &in6->sin6_addr) == 1)
            in6->sin6_family = AF_INET6;
        else
            return -1; /* a name, "unknown", a port: not trusted */
        if (end == v || !xe_cidr_match(trusted, n_trusted, (struct sockaddr *)out))
            return 0;
    }
    return -1;
}
