/* xedge: the PROXY protocol, v1 and v2, sans-IO. See proxy.h. */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "util.h"

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6

enum pstate { P_DETECT, P_V1, P_V2, P_DONE, P_ERROR };

struct xe_proxy {
    enum pstate st;
    size_t max_header;
    size_t len, want; /* bytes held; v2: the whole header's length, once known */
    const char *error;
    struct xe_proxy_info info;
    unsigned char buf[]; /* max_header bytes, at least XE_PROXY_V1_MAX */
};

struct xe_proxy *
xe_proxy_new(size_t max_header)
{
    struct xe_proxy *p;

    if (max_header < XE_PROXY_V2_MIN + 36)
        max_header = XE_PROXY_V2_MIN + 36;
    /* the buffer holds a v1 line too */
    p = xe_calloc(1, sizeof(*p) +
                         (max_header > XE_PROXY_V1_MAX ? max_header : XE_PROXY_V1_MAX));
    p->max_header = max_header;
    return p;
}

void
xe_proxy_free(struct xe_proxy **p)
{
    free(*p);
    *p = NULL;
}

const struct xe_proxy_info *
xe_proxy_info(const struct xe_proxy *p)
{
    return p->st == P_DONE ? &p->info : NULL;
}

const char *
xe_proxy_error(const struct xe_proxy *p)
{
    return p->error ? p->error : "no error";
}

static enum xe_proxy_result
fail(struct xe_proxy *p, const char *why)
{
    p->st = P_ERROR;
    p->error = why;
    return XE_PROXY_ERROR;
}

/* A decimal port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static int
parse_port(const char *s, uint16_t *out)
{
    unsigned long v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int
set_addr(struct sockaddr_storage *ss, int family, const char *text, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
    }
    return 0;
}

/* The whole v1 line is in buf (len bytes, ending in LF). */
static enum xe_proxy_result
parse_v1(struct xe_proxy *p)
{
    char line[XE_PROXY_V1_MAX + 1], *f[6], *s;
    size_t n = p->len, nf = 0;
    int family;
    uint16_t sport, dport;

    if (n < 2 || p->buf[n - 2] != '\r')
        return fail(p, "v1: the line does not end in CRLF");
    n -= 2;
    memcpy(line, p->buf, n);
    line[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return fail(p, "v1: a control or non-ASCII byte in the line");
    /* "PROXY" SP proto [SP src SP dst SP sport SP dport]; single spaces */
    s = line + V1_SIG_LEN;
    if (strncmp(s, "UNKNOWN", 7) == 0 && (s[7] == '\0' || s[7] == ' ')) {
        /* the rest, whatever it is, says nothing we may use */
        p->info.addresses = false;
        goto done;
    }
    f[nf++] = s;
    for (char *c = s; *c; c++) {
        if (*c != ' ')
            continue;
        *c = '\0';
        if (nf == 6)
            return fail(p, "v1: too many fields");
        f[nf++] = c + 1;
    }
    if (strcmp(f[0], "TCP4") == 0)
        family = AF_INET;
    else if (strcmp(f[0], "TCP6") == 0)
        family = AF_INET6;
    else
        return fail(p, "v1: the protocol is not TCP4, TCP6 or UNKNOWN");
    if (nf != 5)
        return fail(p, "v1: not five fields after PROXY");
    if (parse_port(f[3], &sport) < 0 || parse_port(f[4], &dport) < 0)
        return fail(p, "v1: a port is not a number from 0 to 65535");
    if (set_addr(&p->info.src, family, f[1], sport) < 0 ||
        set_addr(&p->info.dst, family, f[2], dport) < 0)
        return fail(p, "v1: an address is not one of the protocol's family");
    p->info.addresses = true;
done:
    p->info.version = 1;
    p->info.header_len = p->len;
    p->st = P_DONE;
    return XE_PROXY_DONE;
}

/* The whole v2 header is in buf (want bytes). */
static enum xe_proxy_result
parse_v2(struct xe_proxy *p)
{
    const unsigned char *b = p->buf, *a = p->buf + 16;
    unsigned cmd = b[12] & 0x0f, fam = b[13] >> 4, proto = b[13] & 0x0f;
    size_t alen = p->want - 16;

    p->info.version = 2;
    p->info.header_len = p->want;
    p->info.addresses = false;
    if (cmd == 0x0) /* LOCAL: the proxy's own connection (a health check) */
        goto done;
    if (fam > 3 || proto > 2)
        return fail(p, "v2: unknown address family or transport");
    if (fam == 0 || fam == 3) /* UNSPEC, UNIX: nothing we may use */
        goto done;
    if (proto != 1)
        return fail(p, "v2: the transport is not a stream (TCP)");
    if (fam == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&p->info.src,
                           *d = (struct sockaddr_in *)&p->info.dst;
        if (alen < 12)
            return fail(p, "v2: too short for IPv4 addresses");
        memset(&p->info.src, 0, sizeof(p->info.src));
        memset(&p->info.dst, 0, sizeof(p->info.dst));
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p->info.src,
                            *d = (struct sockaddr_in6 *)&p->info.dst;
        if (alen < 36)
            return fail(p, "v2: too short for IPv6 addresses");
        memset(&p->info.src, 0, sizeof(p->info.src));
        memset(&p->info.dst, 0, sizeof(p->info.dst));
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    }
    /* TLVs after the addresses (ALPN, authority, CRC, SSL ...) are skipped */
    p->info.addresses = true;
done:
    p->st = P_DONE;
    return XE_PROXY_DONE;
}

enum xe_proxy_result
xe_proxy_feed(struct xe_proxy *p, const void *data, size_t n, size_t *used_r)
{
    const unsigned char *in = data;
    size_t used = 0;
    enum xe_proxy_result r = XE_PROXY_MORE;

    *used_r = 0;
    if (p->st == P_DONE)
        return XE_PROXY_DONE;
    if (p->st == P_ERROR)
        return XE_PROXY_ERROR;
    while (used < n && r == XE_PROXY_MORE) {
        unsigned char b = in[used];

        switch (p->st) {
        case P_DETECT: {
            /* either signature, byte by byte: a stray byte fails at once */
            bool v1 = p->len < V1_SIG_LEN && b == (unsigned char)v1_sig[p->len] &&
                      memcmp(p->buf, v1_sig, p->len) == 0;
            bool v2 = b == v2_sig[p->len] && memcmp(p->buf, v2_sig, p->len) == 0;
            if (!v1 && !v2) {
                r = fail(p, "not a PROXY protocol header");
                break;
            }
            p->buf[p->len++] = b;
            used++;
            if (v1 && p->len == V1_SIG_LEN)
                p->st = P_V1;
            else if (v2 && p->len == sizeof(v2_sig))
                p->st = P_V2;
            break;
        }
        case P_V1:
            p->buf[p->len++] = b;
            used++;
            if (b == '\n')
                r = parse_v1(p);
            else if (p->len >= XE_PROXY_V1_MAX)
                r = fail(p, "v1: no CRLF within 107 bytes");
            break;
        case P_V2: {
            size_t take;
            if (p->len < XE_PROXY_V2_MIN) {
                p->buf[p->len++] = b;
                used++;
                if (p->len == 13 && (b & 0xf0) != 0x20) {
                    r = fail(p, "v2: the version is not 2");
                    break;
                }
                if (p->len == 13 && (b & 0x0f) > 1) {
                    r = fail(p, "v2: the command is not LOCAL or PROXY");
                    break;
                }
                if (p->len < XE_PROXY_V2_MIN)
                    break;
                p->want = XE_PROXY_V2_MIN + ((size_t)p->buf[14] << 8 | p->buf[15]);
                if (p->want > p->max_header) {
                    r = fail(p, "v2: the header is longer than the configured maximum");
                    break;
                }
                if (p->len == p->want)
                    r = parse_v2(p);
                break;
            }
            take = p->want - p->len;
            if (take > n - used)
                take = n - used;
            memcpy(p->buf + p->len, in + used, take);
            p->len += take;
            used += take;
            if (p->len == p->want)
                r = parse_v2(p);
            break;
        }
        case P_DONE:
        case P_ERROR:
            break;
        }
    }
    *used_r = used;
    return r;
}

static void
put16(unsigned char *o, uint16_t v_net)
{
    memcpy(o, &v_net, 2);
}

size_t
xe_proxy_write_v2(const struct sockaddr *src, const struct sockaddr *dst,
                  unsigned char *out, size_t out_len)
{
    struct sockaddr_in6 m[2];
    const struct sockaddr *sa[2] = {src, dst};
    size_t alen;

    if (out_len < XE_PROXY_V2_OUT_MAX)
        return 0;
    memcpy(out, v2_sig, sizeof(v2_sig));
    if (src == NULL || dst == NULL ||
        (src->sa_family != AF_INET && src->sa_family != AF_INET6) ||
        (dst->sa_family != AF_INET && dst->sa_family != AF_INET6)) {
        out[12] = 0x20; /* LOCAL */
        out[13] = 0x00;
        out[14] = out[15] = 0;
        return 16;
    }
    out[12] = 0x21; /* version 2, PROXY */
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src,
                                 *d = (const struct sockaddr_in *)dst;
        out[13] = 0x11; /* TCP over IPv4 */
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        put16(out + 24, s->sin_port);
        put16(out + 26, d->sin_port);
        alen = 12;
    } else {
        /* both as IPv6: an IPv4 one as ::ffff:a.b.c.d */
        for (int i = 0; i < 2; i++) {
            if (sa[i]->sa_family == AF_INET6) {
                memcpy(&m[i], sa[i], sizeof(m[i]));
            } else {
                const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa[i];
                memset(&m[i], 0, sizeof(m[i]));
                m[i].sin6_family = AF_INET6;
                m[i].sin6_port = v4->sin_port;
                m[i].sin6_addr.s6_addr[10] = m[i].sin6_addr.s6_addr[11] = 0xff;
                memcpy(&m[i].sin6_addr.s6_addr[12], &v4->sin_addr, 4);
            }
        }
        out[13] = 0x21; /* TCP over IPv6 */
        memcpy(out + 16, &m[0].sin6_addr, 16);
        memcpy(out + 32, &m[1].sin6_addr, 16);
        put16(out + 48, m[0].sin6_port);
        put16(out + 50, m[1].sin6_port);
        alen = 36;
    }
    out[14] = 0;
    out[15] = (unsigned char)alen;
    return 16 + alen;
}

int
xe_cidr_parse(const char *s, struct xe_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned max, prefix;

    memset(out, 0, sizeof(*out));
    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    prefix = max;
    if (slash) {
        const char *d = slash + 1;
        size_t nd = strlen(d);
        if (nd == 0 || nd > 3 || (d[0] == '0' && nd > 1))
            return -1;
        prefix = 0;
        for (size_t i = 0; i < nd; i++) {
            if (d[i] < '0' || d[i] > '9')
                return -1;
            prefix = prefix * 10 + (unsigned)(d[i] - '0');
        }
        if (prefix > max)
            return -1;
    }
    /* no host bits past the prefix */
    for (unsigned bit = prefix; bit < max; bit++)
        if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
            return -1;
    out->prefix = prefix;
    return 0;
}

static bool
prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[whole] ^ b[whole]) & (0xff00 >> rest)) == 0;
}

bool
xe_cidr_match(const struct xe_cidr *list, size_t n, const struct sockaddr *sa)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    unsigned char a[16];
    int family;

    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        family = AF_INET6;
        if (memcmp(a, mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            family = AF_INET;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].family == family && prefix_eq(list[i].addr, a, list[i].prefix))
            return true;
    return false;
}

void
xe_proxy_format(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    int n = -1;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip)))
            n = snprintf(out, len, "%s:%u", ip, ntohs(s->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip)))
            n = snprintf(out, len, "[%s]:%u", ip, ntohs(s->sin6_port));
    }
    if (n < 0 || (size_t)n >= len)
        snprintf(out, len, "?");
}
