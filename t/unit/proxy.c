/* Unit tests: the PROXY protocol (src/core/proxy.h): the spec's examples of v1
 * and v2, fed whole, byte by byte and split at every point; the stream's
 * bytes after the header left alone; malformed headers; the v2 writer (read
 * back by the parser); address/prefix matching. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy.h"
#include "tap.h"

#define MAX_HDR 512

static const unsigned char SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Feed in[0..n) split at `split` (0: whole); returns the result and what was
 * used in all. */
static enum xe_proxy_result
feed_split(struct xe_proxy *p, const unsigned char *in, size_t n, size_t split,
           size_t *used_r)
{
    size_t u1 = 0, u2 = 0;
    enum xe_proxy_result r;

    if (split == 0 || split >= n) {
        r = xe_proxy_feed(p, in, n, &u1);
        *used_r = u1;
        return r;
    }
    r = xe_proxy_feed(p, in, split, &u1);
    if (r != XE_PROXY_MORE) {
        *used_r = u1;
        return r;
    }
    r = xe_proxy_feed(p, in + split, n - split, &u2);
    *used_r = u1 + u2;
    return r;
}

static enum xe_proxy_result
feed_bytewise(struct xe_proxy *p, const unsigned char *in, size_t n, size_t *used_r)
{
    enum xe_proxy_result r = XE_PROXY_MORE;
    size_t used = 0, u;

    for (size_t i = 0; i < n && r == XE_PROXY_MORE; i++) {
        r = xe_proxy_feed(p, in + i, 1, &u);
        used += u;
    }
    *used_r = used;
    return r;
}

static void
fmt(const struct sockaddr_storage *ss, char *out, size_t len)
{
    xe_proxy_format((const struct sockaddr *)ss, out, len);
}

/* The header hdr (hlen bytes) followed by the stream's "<stream...": DONE at
 * every split point and byte by byte, with exactly hlen bytes used and the
 * addresses src and dst (NULL: none carried). */
static void
good(const char *name, const unsigned char *hdr, size_t hlen, int version,
     const char *src, const char *dst)
{
    static const char tail[] = "<?xml version='1.0'?><stream:stream>";
    unsigned char in[1024];
    size_t n = hlen + strlen(tail), bad_splits = 0, used;
    char s[80], d[80];

    memcpy(in, hdr, hlen);
    memcpy(in + hlen, tail, strlen(tail));
    for (size_t split = 0; split <= n; split++) {
        struct xe_proxy *p = xe_proxy_new(MAX_HDR);
        enum xe_proxy_result r = feed_split(p, in, n, split, &used);
        const struct xe_proxy_info *info = xe_proxy_info(p);
        bool right = r == XE_PROXY_DONE && used == hlen && info &&
                     info->version == version && info->header_len == hlen &&
                     info->addresses == (src != NULL);
        if (right && src) {
            fmt(&info->src, s, sizeof(s));
            fmt(&info->dst, d, sizeof(d));
            right = strcmp(s, src) == 0 && strcmp(d, dst) == 0;
        }
        if (right) { /* after DONE: nothing more is taken */
            size_t u = 99;
            right = xe_proxy_feed(p, in, n, &u) == XE_PROXY_DONE && u == 0;
        }
        if (!right && bad_splits++ == 0)
            printf("# %s: split at %zu: r=%d used=%zu error=%s\n", name, split, r, used,
                   xe_proxy_error(p));
        xe_proxy_free(&p);
    }
    ok(bad_splits == 0, "%s: done at every split point (%zu bytes used)", name, hlen);
    {
        struct xe_proxy *p = xe_proxy_new(MAX_HDR);
        enum xe_proxy_result r = feed_bytewise(p, in, n, &used);
        ok(r == XE_PROXY_DONE && used == hlen, "%s: done byte by byte", name);
        xe_proxy_free(&p);
    }
    {
        /* the header alone, cut short anywhere: more */
        bool all_more = true;
        for (size_t cut = 1; cut < hlen; cut++) {
            struct xe_proxy *p = xe_proxy_new(MAX_HDR);
            all_more = all_more && xe_proxy_feed(p, in, cut, &used) == XE_PROXY_MORE &&
                       used == cut;
            xe_proxy_free(&p);
        }
        ok(all_more, "%s: a truncated header asks for more", name);
    }
}

/* An error, whole and byte by byte, with a reason that contains `why`. */
static void
bad(const char *name, const unsigned char *in, size_t n, const char *why)
{
    struct xe_proxy *p = xe_proxy_new(MAX_HDR);
    size_t used, u;
    enum xe_proxy_result r = xe_proxy_feed(p, in, n, &used);
    bool right = r == XE_PROXY_ERROR && strstr(xe_proxy_error(p), why) != NULL;

    if (!right)
        printf("# %s: r=%d error=%s\n", name, r, xe_proxy_error(p));
    right = right && xe_proxy_feed(p, in, n, &u) == XE_PROXY_ERROR && u == 0;
    ok(right, "%s: refused (%s)", name, why);
    xe_proxy_free(&p);
    p = xe_proxy_new(MAX_HDR);
    r = feed_bytewise(p, in, n, &used);
    ok(r == XE_PROXY_ERROR && strstr(xe_proxy_error(p), why) != NULL,
       "%s: refused byte by byte", name);
    xe_proxy_free(&p);
}

/* A test's name: the line without its control bytes. */
static const char *
v1_name(const char *line)
{
    static char name[160];
    size_t j = 0;

    for (size_t i = 0; line[i] && j < sizeof(name) - 1; i++)
        name[j++] = (unsigned char)line[i] < 0x20 ? '.' : line[i];
    name[j] = '\0';
    return name;
}

static void
good_v1(const char *line, const char *src, const char *dst)
{
    good(v1_name(line), (const unsigned char *)line, strlen(line), 1, src, dst);
}

static void
bad_v1(const char *line, const char *why)
{
    bad(v1_name(line), (const unsigned char *)line, strlen(line), why);
}

/* A v2 header: SIG, ver_cmd, fam, then the body (len bytes). */
static size_t
v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam, const void *body,
   size_t len)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    if (len)
        memcpy(out + 16, body, len);
    return 16 + len;
}

static void
test_v1(void)
{
    char line[200];

    /* the spec's examples (section 2.1) */
    good_v1("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            "255.255.255.255:65535", "255.255.255.255:65535");
    good_v1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    good_v1("PROXY UNKNOWN\r\n", NULL, NULL);
    good_v1("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            NULL, NULL);
    good_v1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "192.168.0.1:56324",
            "192.168.0.11:443");
    good_v1("PROXY TCP4 203.0.113.7 127.0.0.1 4242 5222\r\n", "203.0.113.7:4242",
            "127.0.0.1:5222");
    good_v1("PROXY TCP6 2001:db8::7 ::1 0 5223\r\n", "[2001:db8::7]:0", "[::1]:5223");
    /* mixed notation makes a line longer than the spec's 107 bytes: refused */
    snprintf(line, sizeof(line), "PROXY TCP6 %s %s 65535 65535\r\n",
             "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
             "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    is_int(strlen(line), 116, "a TCP6 line in mixed notation");
    bad_v1(line, "107");

    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "control");
    bad_v1("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol");
    bad_v1("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "five fields");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "fields");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "fields");
    bad_v1("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "fields");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n", "port");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", "port");
    bad_v1("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "address");
    bad_v1("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "address");
    bad_v1("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "address");
    bad_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n", "control");
    bad_v1("PROXY \r\n", "protocol");
    bad_v1("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY");
    bad_v1("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY");
    bad_v1("<?xml version='1.0'?>", "not a PROXY");
    bad_v1("\x16\x03\x01\x02\x00", "not a PROXY"); /* a TLS ClientHello */
    {
        /* no CRLF within 107 bytes: refused at byte 107 */
        unsigned char in[300];
        size_t used;
        struct xe_proxy *p = xe_proxy_new(MAX_HDR);
        memcpy(in, "PROXY UNKNOWN ", 14);
        memset(in + 14, 'a', sizeof(in) - 14);
        ok(xe_proxy_feed(p, in, sizeof(in), &used) == XE_PROXY_ERROR &&
               used == XE_PROXY_V1_MAX && strstr(xe_proxy_error(p), "107"),
           "v1: no CRLF within 107 bytes (%zu used)", used);
        xe_proxy_free(&p);
        /* ... but one of 107 with its CRLF is fine */
        memset(in + 14, 'a', 91);
        memcpy(in + 105, "\r\n", 2);
        good("v1: UNKNOWN line of 107 bytes", in, 107, 1, NULL, NULL);
    }
    {
        unsigned char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
        bad("v1: a NUL byte", nul, sizeof(nul) - 1, "control");
    }
}

static void
test_v2(void)
{
    unsigned char h[1024], body[600];
    size_t n;

    /* TCP over IPv4: 203.0.113.7:4242 -> 127.0.0.1:5222 */
    memcpy(body, "\xcb\x00\x71\x07\x7f\x00\x00\x01\x10\x92\x14\x66", 12);
    n = v2(h, 0x21, 0x11, body, 12);
    good("v2 TCP4", h, n, 2, "203.0.113.7:4242", "127.0.0.1:5222");
    /* the same with TLVs after the addresses (ALPN, authority, NOOP): skipped */
    memcpy(body + 12, "\x01\x00\x02h2\x02\x00\x0bexample.com\x04\x00\x03xyz", 25);
    n = v2(h, 0x21, 0x11, body, 37);
    good("v2 TCP4 with TLVs", h, n, 2, "203.0.113.7:4242", "127.0.0.1:5222");
    /* haproxy's own v2 example (from a capture): 172.19.0.1:42578 -> 172.19.0.3:80 */
    memcpy(body, "\xac\x13\x00\x01\xac\x13\x00\x03\xa6\x52\x00\x50", 12);
    n = v2(h, 0x21, 0x11, body, 12);
    good("v2 TCP4 (capture)", h, n, 2, "172.19.0.1:42578", "172.19.0.3:80");
    /* TCP over IPv6: [2001:db8::7]:4242 -> [::1]:5223 */
    memset(body, 0, 36);
    memcpy(body, "\x20\x01\x0d\xb8", 4);
    body[15] = 7;
    body[31] = 1;
    memcpy(body + 32, "\x10\x92\x14\x67", 4);
    n = v2(h, 0x21, 0x21, body, 36);
    good("v2 TCP6", h, n, 2, "[2001:db8::7]:4242", "[::1]:5223");
    /* LOCAL: no address, whatever the family says; a body is skipped */
    n = v2(h, 0x20, 0x00, NULL, 0);
    good("v2 LOCAL", h, n, 2, NULL, NULL);
    n = v2(h, 0x20, 0x11, body, 12);
    good("v2 LOCAL with a body", h, n, 2, NULL, NULL);
    n = v2(h, 0x20, 0xff, body, 5);
    good("v2 LOCAL with a bad family", h, n, 2, NULL, NULL);
    /* PROXY with UNSPEC or UNIX: the connection's own addresses */
    n = v2(h, 0x21, 0x00, NULL, 0);
    good("v2 PROXY UNSPEC", h, n, 2, NULL, NULL);
    memset(body, 'x', 216);
    n = v2(h, 0x21, 0x31, body, 216);
    good("v2 PROXY UNIX stream", h, n, 2, NULL, NULL);

    /* malformed */
    n = v2(h, 0x11, 0x11, body, 12);
    bad("v2 version 1", h, n, "version");
    n = v2(h, 0x31, 0x11, body, 12);
    bad("v2 version 3", h, n, "version");
    n = v2(h, 0x22, 0x11, body, 12);
    bad("v2 command 2", h, n, "command");
    n = v2(h, 0x21, 0x12, body, 12);
    bad("v2 UDP over IPv4", h, n, "stream");
    n = v2(h, 0x21, 0x41, body, 12);
    bad("v2 family 4", h, n, "family");
    n = v2(h, 0x21, 0x13, body, 12);
    bad("v2 transport 3", h, n, "family");
    n = v2(h, 0x21, 0x11, body, 11);
    bad("v2 TCP4 too short", h, n, "IPv4");
    n = v2(h, 0x21, 0x21, body, 35);
    bad("v2 TCP6 too short", h, n, "IPv6");
    n = v2(h, 0x21, 0x11, body, 0);
    bad("v2 TCP4 no addresses", h, n, "IPv4");
    memcpy(h, SIG, 12);
    h[5] = 0x0c;
    bad("v2 signature off by one bit", h, 16, "not a PROXY");
    {
        /* longer than the maximum: refused as soon as the length is read */
        size_t used;
        struct xe_proxy *p = xe_proxy_new(MAX_HDR);
        n = v2(h, 0x21, 0x11, body, MAX_HDR - 16 + 1);
        ok(xe_proxy_feed(p, h, n, &used) == XE_PROXY_ERROR && used == 16 &&
               strstr(xe_proxy_error(p), "maximum"),
           "v2: a header of %zu bytes (max %d) refused after 16 bytes", n, MAX_HDR);
        xe_proxy_free(&p);
        p = xe_proxy_new(MAX_HDR);
        h[14] = h[15] = 0xff;
        ok(xe_proxy_feed(p, h, 16, &used) == XE_PROXY_ERROR,
           "v2: a length of 65535 refused");
        xe_proxy_free(&p);
        n = v2(h, 0x21, 0x11, body, MAX_HDR - 16);
        memcpy(h + 16, "\xcb\x00\x71\x07\x7f\x00\x00\x01\x10\x92\x14\x66", 12);
        good("v2: a header of exactly the maximum", h, n, 2, "203.0.113.7:4242",
             "127.0.0.1:5222");
    }
}

static struct sockaddr_storage
sa(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        a->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &a->sin_addr);
        a->sin_port = htons((uint16_t)port);
    }
    return ss;
}

/* Write a header, parse it back. */
static void
roundtrip(const char *src, unsigned sport, const char *dst, unsigned dport,
          size_t want_len, const char *want_src, const char *want_dst)
{
    struct sockaddr_storage s = sa(src, sport), d = sa(dst, dport);
    unsigned char out[XE_PROXY_V2_OUT_MAX];
    size_t n =
        xe_proxy_write_v2((struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
    char name[200];

    is_int(n, want_len, "write %s -> %s: %zu bytes", src, dst, want_len);
    snprintf(name, sizeof(name), "read back %s -> %s", src, dst);
    good(name, out, n, 2, want_src, want_dst);
}

static void
test_writer(void)
{
    unsigned char out[XE_PROXY_V2_OUT_MAX];
    struct sockaddr_storage s = sa("203.0.113.7", 4242), d = sa("127.0.0.1", 5222);
    struct sockaddr_storage u;

    roundtrip("203.0.113.7", 4242, "127.0.0.1", 5222, 28, "203.0.113.7:4242",
              "127.0.0.1:5222");
    roundtrip("2001:db8::7", 4242, "::1", 5222, 52, "[2001:db8::7]:4242", "[::1]:5222");
    roundtrip("203.0.113.7", 4242, "::1", 5222, 52, "[::ffff:203.0.113.7]:4242",
              "[::1]:5222");
    is_int(xe_proxy_write_v2((struct sockaddr *)&s, (struct sockaddr *)&d, out,
                             (size_t)XE_PROXY_V2_OUT_MAX - 1),
           0, "write: too small a buffer");
    is_int(
        xe_proxy_write_v2((struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out)),
        28, "write TCP4");
    ok(memcmp(out, SIG, 12) == 0 && out[12] == 0x21 && out[13] == 0x11 && out[14] == 0 &&
           out[15] == 12 &&
           memcmp(out + 16, "\xcb\x00\x71\x07\x7f\x00\x00\x01\x10\x92\x14\x66", 12) == 0,
       "write TCP4: the bytes of the spec's layout");
    memset(&u, 0, sizeof(u));
    u.ss_family = AF_UNIX;
    is_int(
        xe_proxy_write_v2((struct sockaddr *)&u, (struct sockaddr *)&d, out, sizeof(out)),
        16, "write: another family gives LOCAL");
    ok(out[12] == 0x20 && out[13] == 0 && out[15] == 0, "write: LOCAL's bytes");
}

static void
test_cidr(void)
{
    struct xe_cidr l[4];
    struct sockaddr_storage a;

    ok(xe_cidr_parse("127.0.0.1", &l[0]) == 0 && l[0].prefix == 32, "cidr 127.0.0.1");
    ok(xe_cidr_parse("::1", &l[1]) == 0 && l[1].prefix == 128, "cidr ::1");
    ok(xe_cidr_parse("10.0.0.0/8", &l[2]) == 0 && l[2].prefix == 8, "cidr 10.0.0.0/8");
    ok(xe_cidr_parse("2001:db8:80::/41", &l[3]) == 0 && l[3].prefix == 41,
       "cidr 2001:db8:80::/41");
    ok(xe_cidr_parse("10.0.0.1/8", &l[0]) < 0, "cidr: host bits refused");
    ok(xe_cidr_parse("10.0.0.0/33", &l[0]) < 0, "cidr: /33 refused");
    ok(xe_cidr_parse("10.0.0.0/", &l[0]) < 0, "cidr: empty prefix refused");
    ok(xe_cidr_parse("10.0.0.0/08", &l[0]) < 0, "cidr: leading zero refused");
    ok(xe_cidr_parse("localhost", &l[0]) < 0, "cidr: a name refused");
    ok(xe_cidr_parse("/8", &l[0]) < 0, "cidr: no address refused");
    ok(xe_cidr_parse("0.0.0.0/0", &l[0]) == 0 && l[0].prefix == 0, "cidr 0.0.0.0/0");
    xe_cidr_parse("127.0.0.1", &l[0]);

#define MATCH(ip, want)                                                                  \
    do {                                                                                 \
        a = sa(ip, 1);                                                                   \
        ok(xe_cidr_match(l, 4, (struct sockaddr *)&a) == (want), "match %s: %s", ip,     \
           (want) ? "yes" : "no");                                                       \
    } while (0)
    MATCH("127.0.0.1", true);
    MATCH("127.0.0.2", false);
    MATCH("::ffff:127.0.0.1", true);
    MATCH("::ffff:127.0.0.2", false);
    MATCH("::1", true);
    MATCH("::2", false);
    MATCH("10.1.2.3", true);
    MATCH("11.0.0.0", false);
    MATCH("9.255.255.255", false);
    MATCH("::ffff:10.9.9.9", true);
    MATCH("2001:db8:80::1", true);
    MATCH("2001:db8:ff::1", true);
    MATCH("2001:db8:7f::1", false);
    MATCH("2001:db8:100::1", false);
#undef MATCH
    a = sa("10.1.2.3", 1);
    ok(!xe_cidr_match(l, 0, (struct sockaddr *)&a), "match: an empty list matches none");
}

int
main(void)
{
    test_v1();
    test_v2();
    test_writer();
    test_cidr();
    return tap_done();
}
