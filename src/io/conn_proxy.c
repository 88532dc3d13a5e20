/* xedge: the PROXY protocol (proxy.h) on accepted connections and
 * towards the backends.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- the PROXY protocol (proxy.h) ----------------------------------------- */

/* A trusted proxy did not send its header in time (the client stream's
 * timer, conn.c). */
void
xe_srv_proxy_timeout(struct conn *c)
{
    xe_info("event=timeout peer=%s phase=proxy", c->peer);
    xe_srv_finish_close(c);
}

/* On a proxy_protocol listener: only a trusted source may speak, and it
 * must start with a PROXY header (read by proxy_input), within the TLS
 * handshake's time. Others are closed at once (logged at most once a
 * second, with the count of those not logged). */
void
xe_srv_proxy_accept(struct conn *c, const struct xe_listener_conf *lc)
{
    struct worker *w = c->w;
    int sl = sizeof(c->sa);

    if (uv_tcp_getpeername(&c->cs.u.tcp, (struct sockaddr *)&c->sa, &sl) != 0 ||
        !xe_cidr_match(lc->proxy_from, lc->n_proxy_from, (struct sockaddr *)&c->sa)) {
        uint64_t now = uv_now(w->loop);

        xe_metrics_inc(XE_M_REFUSED, "proxy_untrusted", NULL);
        if (w->proxy_logged_ms && now - w->proxy_logged_ms < 1000) {
            w->proxy_unlogged++;
        } else {
            xe_warn("event=proxy-refused peer=%s reason=\"not a trusted proxy "
                    "(proxy_from)\" also_refused=%lu",
                    c->peer, w->proxy_unlogged);
            w->proxy_logged_ms = now;
            w->proxy_unlogged = 0;
        }
        xe_srv_finish_close(c);
        return;
    }
    sl = sizeof(c->local);
    if (uv_tcp_getsockname(&c->cs.u.tcp, (struct sockaddr *)&c->local, &sl) != 0)
        memset(&c->local, 0, sizeof(c->local));
    c->proxy = xe_proxy_new(c->gen->conf->max_proxy_header);
    uv_tcp_nodelay(&c->cs.u.tcp, 1);
    xe_stream_arm(&c->cs, c->gen->conf->tls_timeout_ms);
    xe_stream_start(&c->cs);
}

/* The first bytes from a trusted proxy: its header, then the client's own
 * stream. The address it carries is the client's from now on (the log, the
 * per-address limits and lockouts, the backend's PROXY header); LOCAL or
 * UNKNOWN keep the connection's own. */
void
xe_srv_proxy_input(struct conn *c, const char *data, size_t n)
{
    const struct xe_proxy_info *info;
    char via[sizeof(c->peer)];
    size_t used;

    switch (xe_proxy_feed(c->proxy, data, n, &used)) {
    case XE_PROXY_MORE:
        return;
    case XE_PROXY_ERROR:
        xe_metrics_inc(XE_M_REFUSED, "proxy_bad_header", NULL);
        xe_info("event=proxy-failed peer=%s reason=\"%s\"", c->peer,
                xe_proxy_error(c->proxy));
        xe_srv_finish_close(c);
        return;
    case XE_PROXY_DONE:
        break;
    }
    info = xe_proxy_info(c->proxy);
    memcpy(via, c->peer, sizeof(via));
    if (info->addresses) {
        memcpy(&c->sa, &info->src, sizeof(c->sa));
        memcpy(&c->local, &info->dst, sizeof(c->local));
        xe_proxy_format((const struct sockaddr *)&c->sa, c->peer, sizeof(c->peer));
    }
    xe_info("event=proxy peer=%s via=%s version=%d%s", c->peer, via, info->version,
            info->addresses ? "" : " addresses=none");
    xe_proxy_free(&c->proxy);
    xe_stream_disarm(&c->cs);
    xe_srv_conn_start(c);
    if (c->closed || used == n)
        return;
    /* the client's own first bytes: through TLS when it is Direct TLS */
    xe_stream_feed(&c->cs, data + used, n - used);
}

/* A pool with proxy_protocol: a PROXY v2 header, the client's address and
 * the one it reached, before anything else on the backend connection. */
void
xe_srv_proxy_send(struct conn *c)
{
    unsigned char hdr[XE_PROXY_V2_OUT_MAX];
    size_t n;

    if (c->local.ss_family == AF_UNSPEC) {
        int sl = sizeof(c->local);
        if (uv_tcp_getsockname(&c->cs.u.tcp, (struct sockaddr *)&c->local, &sl) != 0)
            memset(&c->local, 0, sizeof(c->local));
    }
    n = xe_proxy_write_v2((const struct sockaddr *)&c->sa,
                          (const struct sockaddr *)&c->local, hdr, sizeof(hdr));
    xe_srv_write_raw(c, false, hdr, n);
}
