/* xedge: binding a listening TCP socket on a libuv loop, shared by the c2s
 * and the s2s listeners (see listen.h). */
#include "config.h"

#include "listen.h"

#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* With several workers, each has its own socket on the listener's address,
 * all with SO_REUSEPORT: the kernel spreads the connections over them. Bound
 * here, on the main thread, before the privileges are dropped. */
static int
bind_reuseport(uv_tcp_t *t, const struct sockaddr *sa, bool v6only)
{
    int fd, one = 1, r;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        (v6only && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, sa,
             sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in)) != 0) {
        r = uv_translate_sys_error(errno);
        close(fd);
        return r;
    }
    if ((r = uv_tcp_open(t, (uv_os_sock_t)fd)) < 0)
        close(fd);
    return r;
}

int
xe_tcp_listen(uv_tcp_t *t, const char *address, int port, bool reuseport,
              uv_connection_cb cb)
{
    struct sockaddr_storage ss;
    unsigned flags = 0;
    int r;

    if (uv_ip4_addr(address, port, (struct sockaddr_in *)&ss) != 0) {
        uv_ip6_addr(address, port, (struct sockaddr_in6 *)&ss);
        flags = UV_TCP_IPV6ONLY;
    }
    r = reuseport ? bind_reuseport(t, (struct sockaddr *)&ss, flags != 0)
                  : uv_tcp_bind(t, (struct sockaddr *)&ss, flags);
    return r == 0 ? uv_listen((uv_stream_t *)t, 511, cb) : r;
}
