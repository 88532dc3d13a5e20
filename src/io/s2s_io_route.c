/* xedge: federation and a routed pool (doc/pool-routing.md): a remote
 * domain's stanza for a user of the pool's domain goes straight to the
 * user's home, one for a component of the pool to the server hosting it,
 * over the routing links (route_io.h) rather than through the federation
 * link to one server of the pool and one more hop. Kept apart from the
 * streams' glue (s2s_io.c, s2s_io_pair.c): the server sets the router, the
 * IN stream's events ask it first. See s2s_io_impl.h. */
#include "s2s_io_impl.h"

void
xe_s2s_io_set_router(struct xe_s2s_io *io, const struct xe_s2s_router *router)
{
    if (io == NULL)
        return;
    if (router != NULL)
        io->router = *router;
    else
        memset(&io->router, 0, sizeof(io->router));
}

/* Whether the router took the stanza of event EV of IN stream C. */
bool
xe_s2sio_route_stanza(struct sconn *c, const struct xe_s2s_event *ev)
{
    struct xe_s2s_io *io = c->io;
    struct xe_buf reply;

    if (io->router.deliver == NULL || ev->to_jid == NULL)
        return false;
    xe_buf_init(&reply, 0);
    if (io->router.deliver(io->router.ctx, ev->from, ev->to, ev->to_jid, ev->raw, ev->len,
                           &reply) != 0) {
        xe_buf_free(&reply);
        return false;
    }
    c->bytes += ev->len;
    if (reply.len > 0) /* the error xedge answers for a component */
        xe_s2sio_send_own(io, ev->to, ev->from, reply.data, reply.len);
    xe_buf_free(&reply);
    return true;
}

/* The served domain NAME, or the domain whose routed pool hosts the
 * component NAME (its pool's secret signs the component's federation
 * requests, as mod_xedge_s2s on the component's host writes them). */
const struct xe_domain_conf *
xe_s2sio_served_domain(const struct xe_conf *conf, const char *name)
{
    const struct xe_domain_conf *d = xe_conf_domain(conf, name);

    return d ? d : xe_conf_component(conf, name);
}

/* The domain whose certificate an IN stream to NAME presents: a routed
 * pool's component domain has its domain's. */
const char *
xe_s2sio_tls_name(const struct xe_conf *conf, const char *name)
{
    const struct xe_domain_conf *d;

    if (name == NULL || xe_conf_domain(conf, name) != NULL)
        return name;
    d = xe_conf_component(conf, name);
    return d ? d->name : name;
}
