/* xedge: the control socket. See control.h.
 *
 * One client: read up to XE_CONTROL_MAX_REQUEST bytes until a newline (or
 * the end of its input), run the request, write the answer, close. Each
 * client has a timer (XE_CONTROL_TIMEOUT_MS for the whole exchange), and at
 * most XE_CONTROL_MAX_CLIENTS are served at once. */
#define _GNU_SOURCE /* struct ucred */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlcmd.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"
#include "xelimits.h"

struct client;

struct xe_control {
    uv_loop_t *loop;
    uv_pipe_t pipe;
    struct xe_server *srv;
    char *path;
    bool listening;
    struct client *clients;
    unsigned n_clients;
    int (*reload)(void *ctx, unsigned long *generation_r, char **error_r);
    void *reload_ctx;
    void (*purge_kick)(void *ctx);
    void *purge_ctx;
};

struct client {
    struct xe_control *ctl;
    struct client *prev, *next;
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_write_t wreq;
    int handles;
    bool answered, closing;
    long uid, pid; /* the peer's (SO_PEERCRED), -1 unknown */
    struct xe_buf out;
    size_t len;
    char buf[XE_CONTROL_MAX_REQUEST + 1];
};

static void
on_client_closed(uv_handle_t *h)
{
    struct client *cl = h->data;

    if (--cl->handles > 0)
        return;
    xe_buf_free(&cl->out);
    free(cl);
}

static void
client_close(struct client *cl)
{
    struct xe_control *ctl = cl->ctl;

    if (cl->closing)
        return;
    cl->closing = true;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        ctl->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    ctl->n_clients--;
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
    uv_close((uv_handle_t *)&cl->timer, on_client_closed);
}

static void
on_written(uv_write_t *req, int status)
{
    struct client *cl = req->data;

    (void)status;
    client_close(cl);
}

static void
reply(struct client *cl)
{
    uv_buf_t b;

    cl->answered = true;
    uv_read_stop((uv_stream_t *)&cl->pipe);
    if (cl->out.len == 0) {
        client_close(cl);
        return;
    }
    b = uv_buf_init((char *)cl->out.data, (unsigned)cl->out.len);
    cl->wreq.data = cl;
    xe_log_flush(); /* the daemon's lines before the answer they go with */
    if (uv_write(&cl->wreq, (uv_stream_t *)&cl->pipe, &b, 1, on_written) < 0)
        client_close(cl);
}

static void
srv_sessions(void *srv, struct xe_buf *out)
{
    xe_server_sessions(srv, out);
}

static void
srv_s2s(void *srv, struct xe_buf *out)
{
    xe_server_s2s(srv, out);
}

static size_t
srv_kick(void *srv, const char *what)
{
    return xe_server_kick(srv, what);
}

static void
srv_stats(void *srv, struct xe_buf *out)
{
    xe_server_stats(srv, out);
}

static void
srv_backends(void *srv, struct xe_buf *out)
{
    xe_server_backends(srv, out);
}

static size_t
srv_drain(void *srv, const char *name, bool drain)
{
    return xe_server_drain(srv, name, drain);
}

static size_t
srv_end_account(void *srv, const char *jid, const char *reason)
{
    return xe_server_end_account(srv, jid, reason);
}

/* The audit trail: who (the peer's uid and pid) changed what. */
static void
audit(void *ctx, const char *action, const char *jid, const char *detail)
{
    struct client *cl = ctx;

    xe_info("event=admin action=%s jid=%s uid=%ld pid=%ld%s", action, jid, cl->uid,
            cl->pid, detail);
    xe_metrics_inc(XE_M_ADMIN, action, NULL);
}

static void
answer(struct client *cl, char *line, size_t len)
{
    struct xe_ctlcmd_env env = {
        .lockout = xe_server_lockout(cl->ctl->srv),
        .now_ms = uv_now(cl->ctl->loop),
        .srv = cl->ctl->srv,
        .sessions = srv_sessions,
        .s2s = srv_s2s,
        .kick = srv_kick,
        .stats = srv_stats,
        .backends = srv_backends,
        .drain = srv_drain,
        .reload = cl->ctl->reload,
        .reload_ctx = cl->ctl->reload_ctx,
        .end_account = srv_end_account,
        .audit = audit,
        .audit_ctx = cl,
        .purge_kick = cl->ctl->purge_kick,
        .purge_ctx = cl->ctl->purge_ctx,
    };
    char shown[128];
    size_t i;
    int r;

    r = xe_ctlcmd_run(&env, line, len, &cl->out);
    /* the request, as far as it is printable, for the audit trail */
    for (i = 0; i < len && i < sizeof(shown) - 1; i++)
        shown[i] = line[i] >= 0x20 && line[i] < 0x7f && line[i] != '"' ? line[i] : '?';
    shown[i] = '\0';
    xe_info("event=control request=\"%s\" result=%s", shown, r == 0 ? "ok" : "error");
    reply(cl);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *cl = h->data;

    (void)suggested;
    *buf = uv_buf_init(cl->buf + cl->len, (unsigned)(sizeof(cl->buf) - 1 - cl->len));
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    char *nl;

    (void)buf;
    if (cl->answered || cl->closing)
        return;
    if (n < 0) {
        if (n == UV_EOF && cl->len > 0) /* a request without its newline */
            answer(cl, cl->buf, cl->len);
        else
            client_close(cl);
        return;
    }
    cl->len += (size_t)n;
    cl->buf[cl->len] = '\0';
    nl = memchr(cl->buf, '\n', cl->len);
    if (nl) {
        answer(cl, cl->buf, (size_t)(nl - cl->buf));
        return;
    }
    if (cl->len >= XE_CONTROL_MAX_REQUEST) {
        xe_info("event=control result=error error=\"request too long\"");
        xe_buf_append_str(&cl->out, "error request too long\n");
        reply(cl);
    }
}

static void
on_timeout(uv_timer_t *t)
{
    struct client *cl = t->data;

    xe_info("event=control-timeout");
    client_close(cl);
}

/* Who is at the other end: the kernel's word (SO_PEERCRED), for the audit
 * trail. */
static void
peer_cred(struct client *cl)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;

    cl->uid = cl->pid = -1;
    if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
        len == sizeof(cred)) {
        cl->uid = (long)cred.uid;
        cl->pid = (long)cred.pid;
    }
}

static void
on_connection(uv_stream_t *ls, int status)
{
    struct xe_control *ctl = ls->data;
    struct client *cl;

    if (status < 0)
        return;
    cl = xe_calloc(1, sizeof(*cl));
    cl->ctl = ctl;
    xe_buf_init(&cl->out, XE_CONTROL_MAX_RESPONSE);
    uv_pipe_init(ctl->loop, &cl->pipe, 0);
    uv_timer_init(ctl->loop, &cl->timer);
    cl->pipe.data = cl->timer.data = cl;
    cl->handles = 2;
    cl->next = ctl->clients;
    if (ctl->clients)
        ctl->clients->prev = cl;
    ctl->clients = cl;
    ctl->n_clients++;
    if (uv_accept(ls, (uv_stream_t *)&cl->pipe) != 0 ||
        ctl->n_clients > XE_CONTROL_MAX_CLIENTS) {
        if (ctl->n_clients > XE_CONTROL_MAX_CLIENTS)
            xe_warn("event=control-refused reason=too_many_clients");
        client_close(cl);
        return;
    }
    peer_cred(cl);
    uv_timer_start(&cl->timer, on_timeout, XE_CONTROL_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read);
}

int
xe_control_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_server *srv,
               struct xe_control **ctl_r, char **error_r)
{
    struct xe_control *ctl = xe_calloc(1, sizeof(*ctl));
    const char *path = conf->control.socket;
    struct stat st;
    mode_t old;
    int r;

    ctl->loop = loop;
    ctl->srv = srv;
    ctl->path = xe_strdup(path);
    *ctl_r = ctl;
    /* a socket left by an xedge that did not stop cleanly; nothing else */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *error_r = xe_asprintf("control socket %s: exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    uv_pipe_init(loop, &ctl->pipe, 0);
    ctl->pipe.data = ctl;
    ctl->listening = true;
    old = umask(0177); /* no window in which others could connect */
    r = uv_pipe_bind(&ctl->pipe, path);
    umask(old);
    if (r == 0 && chmod(path, (mode_t)conf->control.mode) != 0)
        r = -errno;
    if (r == 0)
        r = uv_listen((uv_stream_t *)&ctl->pipe, 16, on_connection);
    if (r < 0) {
        *error_r = xe_asprintf("control socket %s: %s", path, uv_strerror(r));
        ctl->listening = false;
        uv_close((uv_handle_t *)&ctl->pipe, NULL);
        return -1;
    }
    xe_info("event=control-listen socket=%s mode=%04o", path, conf->control.mode);
    return 0;
}

void
xe_control_set_reload(struct xe_control *ctl,
                      int (*fn)(void *ctx, unsigned long *generation_r, char **error_r),
                      void *ctx)
{
    ctl->reload = fn;
    ctl->reload_ctx = ctx;
}

void
xe_control_set_purge(struct xe_control *ctl, void (*kick)(void *ctx), void *ctx)
{
    ctl->purge_kick = kick;
    ctl->purge_ctx = ctx;
}

void
xe_control_stop(struct xe_control *ctl)
{
    if (ctl == NULL || !ctl->listening)
        return;
    ctl->listening = false;
    uv_close((uv_handle_t *)&ctl->pipe, NULL);
    while (ctl->clients)
        client_close(ctl->clients);
    unlink(ctl->path);
}

void
xe_control_free(struct xe_control **ctlp)
{
    struct xe_control *ctl = *ctlp;

    if (ctl == NULL)
        return;
    free(ctl->path);
    free(ctl);
    *ctlp = NULL;
}
