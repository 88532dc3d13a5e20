/* xedge: finding a remote XMPP server (RFC 6120 3.2, XEP-0368) with c-ares on
 * libuv. One resolver per libuv loop (workers each have their own).
 *
 * A request asks for the SRV records _xmpp-server._tcp.DOMAIN and
 * _xmpps-server._tcp.DOMAIN at once, orders them by priority and, within a
 * priority, by weighted random selection (RFC 2782), then asks for each
 * target's AAAA and A records (per SRV target, in that order, its IPv6
 * addresses, then its IPv4 ones). With no SRV record, DOMAIN's own AAAA and A
 * records stand, on the default port. A service whose only SRV record has
 * the target "." is refused (XE_RESOLVE_NXDOMAIN when no other service is
 * offered). The whole request has a deadline (the resolver's timeout); the
 * answer comes at most once, never from inside the call that started the
 * request, and never after xe_resolve_cancel or xe_resolver_free. */
#ifndef XE_RESOLVE_H
#define XE_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

enum {
    XE_RESOLVE_NXDOMAIN = -1, /* no such domain, no address, or service refused (".") */
    XE_RESOLVE_TIMEOUT = -2,  /* the request's deadline passed */
    XE_RESOLVE_FAIL = -3,     /* the servers failed (SERVFAIL, refused, unreachable) */
};

struct xe_resolver;
struct xe_resolve_req;

struct xe_target {                /* one address to try, in order */
    struct sockaddr_storage addr; /* port set */
    socklen_t addrlen;
    char host[256]; /* the SRV target (or the domain) */
    int direct_tls; /* from _xmpps-server (XEP-0368) */
};

/* servers: NULL or "" for the system configuration (/etc/resolv.conf),
 * else "ADDR[:PORT],..." (IPv6 with a port: "[ADDR]:PORT"). timeout_ms: the
 * deadline of each request (0: XE_DEF_DNS_TIMEOUT_MS). NULL on error, with
 * err filled. */
struct xe_resolver *xe_resolver_new(uv_loop_t *loop, const char *servers,
                                    unsigned timeout_ms, char *err, size_t errlen);
/* Cancels every request (no callback is called any more) and closes the
 * handles; the memory goes when libuv has closed them (run the loop). */
void xe_resolver_free(struct xe_resolver *r);

/* status 0 and n >= 1 targets, or status < 0 (XE_RESOLVE_NXDOMAIN,
 * XE_RESOLVE_TIMEOUT, XE_RESOLVE_FAIL) and n == 0; targets valid during the
 * call. The request is over when the callback is called (do not cancel it). */
typedef void (*xe_resolve_cb)(void *arg, int status, const struct xe_target *targets,
                              size_t n);

/* domain: a DNS name in ASCII (IDNs as A-labels), a final dot allowed.
 * At most XE_RESOLVE_MAX_TARGETS targets. NULL when the request cannot start
 * (a domain that is not a DNS name, XE_RESOLVE_MAX_REQUESTS outstanding, out
 * of memory, a resolver being freed): then cb is never called. */
struct xe_resolve_req *xe_resolve_xmpp_server(struct xe_resolver *r, const char *domain,
                                              uint16_t default_port, xe_resolve_cb cb,
                                              void *arg);
/* cb is never called after this. Only before the callback has been called. */
void xe_resolve_cancel(struct xe_resolve_req *q);

/* Requests started and not yet answered or cancelled (for tests, metrics). */
size_t xe_resolver_pending(const struct xe_resolver *r);
/* A static string for a status. */
const char *xe_resolve_strstatus(int status);

#endif
