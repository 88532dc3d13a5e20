/* xedge: the PROXY protocol, versions 1 and 2 (haproxy's
 * doc/proxy-protocol.txt), sans-IO.
 *
 * In: a parser fed the first bytes of a connection in chunks of any size. It
 * takes only the header's bytes (what follows is the client's own stream,
 * left to the caller), keeps at most max_header bytes (a v1 line is at most
 * 107 bytes whatever max_header says) and says: more, done (the addresses
 * carried, or none: v1 UNKNOWN, v2 LOCAL or an unspecified family, where the
 * connection's own addresses stand), or an error with a reason.
 *
 * Out: a v2 header (command PROXY, TCP over IPv4 or IPv6) for a backend.
 *
 * And the trusted sources: address/prefix ("CIDR") matching. */
#ifndef XE_PROXY_H
#define XE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#define XE_PROXY_V1_MAX 107 /* bytes of a v1 line, CRLF included (the spec's bound) */
#define XE_PROXY_V2_MIN 16  /* signature, version/command, family, length */
#define XE_PROXY_V2_OUT_MAX (16 + 36) /* what xe_proxy_write_v2 writes at most */

enum xe_proxy_result {
    XE_PROXY_ERROR = -1,
    XE_PROXY_MORE = 0, /* every byte fed was taken; the header goes on */
    XE_PROXY_DONE = 1, /* the header is complete; see xe_proxy_info */
};

struct xe_proxy_info {
    int version;    /* 1 or 2 */
    bool addresses; /* false: none carried (keep the connection's own) */
    struct sockaddr_storage src, dst; /* the client's and the one it reached */
    size_t header_len;                /* bytes of the whole header */
};

struct xe_proxy;

/* max_header bounds a v2 header (16 bytes and the length it announces);
 * at least XE_PROXY_V2_MIN + 36. */
struct xe_proxy *xe_proxy_new(size_t max_header);
void xe_proxy_free(struct xe_proxy **p);
/* Feed n bytes; *used_r gets how many of them belong to the header (all of
 * them on MORE; on DONE the rest is the stream's). After DONE or ERROR,
 * feeding again returns the same result and uses nothing. */
enum xe_proxy_result xe_proxy_feed(struct xe_proxy *p, const void *data, size_t n,
                                   size_t *used_r);
/* After DONE. */
const struct xe_proxy_info *xe_proxy_info(const struct xe_proxy *p);
/* After ERROR: why (a static string, safe to log). */
const char *xe_proxy_error(const struct xe_proxy *p);

/* Write a v2 PROXY header for a TCP connection from src to dst (each
 * AF_INET or AF_INET6; one of each kind: the IPv4 one is written as an
 * IPv4-mapped IPv6 address). Other families: a LOCAL header. Returns the
 * length written (at most XE_PROXY_V2_OUT_MAX), or 0 when out is too
 * small. */
size_t xe_proxy_write_v2(const struct sockaddr *src, const struct sockaddr *dst,
                         unsigned char *out, size_t out_len);

/* An address or a prefix: "192.0.2.1", "10.0.0.0/8", "::1", "2001:db8::/32". */
struct xe_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix; /* bits */
};

/* Parse s; returns 0, or -1 when it is not an address or a prefix (bits set
 * past the prefix are an error too: "10.0.0.1/8" is refused). */
int xe_cidr_parse(const char *s, struct xe_cidr *out);
/* Whether sa (IPv4-mapped IPv6 addresses count as IPv4) is in one of the n
 * prefixes. */
bool xe_cidr_match(const struct xe_cidr *list, size_t n, const struct sockaddr *sa);

/* "192.0.2.1:4242" or "[2001:db8::1]:4242" (the log's peer=); "?" for
 * another family. */
void xe_proxy_format(const struct sockaddr *sa, char *out, size_t len);

#endif
