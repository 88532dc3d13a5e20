/* xedge: one domain over several servers (doc/pool-routing.md), sans-IO.
 *
 * A pool with route = true is one server of its domains for users and for
 * the network: each user has one home (the pin, else the rendezvous
 * choice of pool.h), and every stanza for a user of the domain reaches that
 * home. A backend's glue keeps one link to xedge's routing listener; over
 * it, the glue sends the stanzas it would deliver locally to a user homed
 * elsewhere, and xedge sends it the stanzas for its own users and the map
 * of homes (the servers and the pins), so that the glue decides as xedge
 * does.
 *
 * The map: the homes of a pool's users. The link: one routing connection's
 * protocol (header, the identity assertion of purpose "route", stanzas). */
#ifndef XE_ROUTE_H
#define XE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "util.h"

#define XE_NS_ROUTE "urn:xedge:route:0"

/* ---- the map ----------------------------------------------------------- */

struct xe_route_map;

/* A map of POOL's servers (names and weights are copied) with no pins, of
 * generation 0, held once. */
struct xe_route_map *xe_route_map_new(const struct xe_pool_conf *pool);
/* One hold more (a link sending the map in parts keeps the map it
 * started); xe_route_map_free lets go of one, the last frees. */
struct xe_route_map *xe_route_map_ref(struct xe_route_map *m);
void xe_route_map_free(struct xe_route_map **m);
/* The generation the glue knows the map by (<pool gen=''>, <delta gen=''>):
 * one more at each change a pool's links are sent. */
void xe_route_map_set_gen(struct xe_route_map *m, uint64_t gen);
uint64_t xe_route_map_gen(const struct xe_route_map *m);
/* Pin JID (a bare JID as the user store keeps it) to SERVER. 0, or -1 when
 * SERVER is not in the pool (*why_r). (No bound of its own: the user
 * store's size bounds the pins.) */
int xe_route_map_add_pin(struct xe_route_map *m, const char *jid, const char *server,
                         const char **why_r);
/* After the last pin: sorts them for lookups. */
void xe_route_map_seal(struct xe_route_map *m);
size_t xe_route_map_n_servers(const struct xe_route_map *m);
const char *xe_route_map_server_name(const struct xe_route_map *m, size_t i);
/* The index of the server named NAME, or XE_POOL_NONE. */
size_t xe_route_map_find(const struct xe_route_map *m, const char *name);
/* The server hosting component DOMAIN (pools[].components), or
 * XE_POOL_NONE. */
size_t xe_route_component(const struct xe_route_map *m, const char *domain);
/* The home of BARE (normalized): its pin, else the rendezvous choice;
 * *pinned_r says which (may be NULL). */
size_t xe_route_home(const struct xe_route_map *m, const char *bare, bool *pinned_r);
/* Where a stanza for TO that reached xedge from outside the pool (from a
 * remote domain over federation) goes, in MAP of DOMAIN's routed pool: the
 * home of the user TO names (its bare JID normalized into BARE, SIZE
 * bytes), or the server hosting the component domain TO is addressed to
 * (*component_r true; the domain in BARE). XE_POOL_NONE when TO is neither
 * (the domain itself, another domain, not a JID): such a stanza takes the
 * federation link to the pool. */
size_t xe_route_target(const struct xe_route_map *m, const char *domain, const char *to,
                       char *bare, size_t size, bool *component_r);
/* The map as the glue reads it: <pool xmlns='urn:xedge:route:0' self=''>
 * <server name='' weight=''/>... <component domain='' server=''/>...
 * <pin jid='' server=''/>...</pool>. */
int xe_route_map_render(const struct xe_route_map *m, const char *self,
                        struct xe_buf *out);
/* The map in parts, as it goes to the glue (doc/pool-routing.md): the
 * first (*POS == 0) <pool xmlns='urn:xedge:route:0' self='' gen='G'
 * pins='N'> with
 * the servers, the components and the first pins; then <pins xmlns=''>
 * with the next ones. Each part is a whole element of about MAX bytes (at
 * least one pin): appended to OUT, *POS advanced. 1: more parts follow, 0:
 * the last one, -1: error. The glue uses the map once it has the N pins. */
int xe_route_map_render_part(const struct xe_route_map *m, const char *self, size_t *pos,
                             size_t max, struct xe_buf *out);
/* Whether A and B give every user the same home. */
bool xe_route_map_same(const struct xe_route_map *a, const struct xe_route_map *b);
/* What changes OLD into NEW, when only pins changed: <delta
 * xmlns='urn:xedge:route:0' gen='G' pins='N'> (G: NEW's generation, N: its
 * count of pins) with <pin jid='' server=''/> for each pin added or moved
 * and <unpin jid=''/> for each removed (unpinned, or the user deleted),
 * appended to OUT: 0. 1 (OUT unchanged): the servers, their weights or the
 * components differ, or the delta would pass MAX bytes: send NEW whole.
 * -1: error. Both maps sealed. */
int xe_route_map_delta(const struct xe_route_map *old, const struct xe_route_map *new,
                       size_t max, struct xe_buf *out);

/* ---- errors ------------------------------------------------------------ */

struct xe_xml_elem; /* xmlstream.h */

/* The error (RFC 6120 8.3) xedge answers for stanza E it cannot deliver:
 * <NAME type='error' to=E's from from=E's to id=E's id><error type=TYPE>
 * <CONDITION/><text>TEXT</text></error>, appended to OUT: 1. 0 (nothing
 * appended) for a stanza that gets no error: an error, an iq result, one
 * without a from, not a message, presence or iq, and presence of type
 * unavailable or probe, or without a type (broadcast: RFC 6121 4.3, 4.5)
 * unless COMPONENT (a presence to a component is directed: a room's join
 * waits for its answer, XEP-0045 7.2). */
int xe_route_error_for(const struct xe_xml_elem *e, bool component, const char *type,
                       const char *condition, const char *text, struct xe_buf *out);
/* The same for a stanza of a remote domain for a component (RAW, LEN: its
 * bytes, as its stream had them, in jabber:server): 1 appended, 0 none due,
 * -1 not a stanza that parses. */
int xe_route_component_error(const unsigned char *raw, size_t len, const char *type,
                             const char *condition, const char *text, struct xe_buf *out);
/* The text of the error for a component whose server's link is down. */
#define XE_ROUTE_COMPONENT_DOWN_TEXT "the component's server is unavailable"

/* ---- a link ------------------------------------------------------------ */

/* What became of a stanza a link sent (for the counters and the log). */
enum xe_route_outcome {
    XE_ROUTE_FORWARDED, /* to its home's link */
    XE_ROUTE_LOOP,      /* its home is the sending server: refused */
    XE_ROUTE_HOME_DOWN, /* its home has no link: the sender gets an error */
    XE_ROUTE_FULL,      /* the home's link is full: the sender gets an error */
    XE_ROUTE_BAD,       /* no usable "to", or not a user of the link's domain */
    XE_ROUTE_FORGED,    /* a "from" the sending server does not serve: dropped */
};
const char *xe_route_outcome_name(enum xe_route_outcome o);

struct xe_route_link_cb {
    /* The secret and map of DOMAIN's pool if it routes and SERVER is in
     * it; NULL with *why_r otherwise. */
    const struct xe_route_map *(*find)(void *ctx, const char *domain, const char *server,
                                       const unsigned char **secret_r,
                                       size_t *secret_len_r, const char **why_r);
    /* Whether server I of the map has a link now. */
    bool (*up)(void *ctx, size_t i);
    /* Send RAW (one stanza) to server I's link: 0, or -1 when its queue is
     * full. */
    int (*forward)(void *ctx, size_t i, const unsigned char *raw, size_t len);
    /* Told of every stanza: its outcome, its home (XE_POOL_NONE if none)
     * and the bare JID it was for ("" if none). */
    void (*outcome)(void *ctx, enum xe_route_outcome o, size_t home, const char *to);
    /* Whether xedge serves DOMAIN (a domain or a pool's component domain)
     * other than the link's: a "from" there cannot come from the link.
     * May be NULL (none). */
    bool (*served)(void *ctx, const char *domain);
    /* The glue asked for the whole map (<resync xmlns='urn:xedge:route:0'/>:
     * a delta's generation it did not expect). May be NULL. */
    void (*resync)(void *ctx);
};

struct xe_route_link;

/* max_lifetime: the longest assertion accepted (seconds). */
struct xe_route_link *xe_route_link_new(const struct xe_route_link_cb *cb, void *ctx,
                                        int64_t max_lifetime);
void xe_route_link_free(struct xe_route_link **l);

#define XE_ROUTE_MORE 0     /* go on */
#define XE_ROUTE_READY 1    /* the link just authenticated (send the map) */
#define XE_ROUTE_CLOSE (-1) /* out ends with the stream's end: close */

/* Feed the link's bytes; what goes back to it is appended to OUT. NOW:
 * unix seconds. On XE_ROUTE_CLOSE, *why_r says why (for the log). */
int xe_route_link_feed(struct xe_route_link *l, const void *data, size_t n, int64_t now,
                       struct xe_buf *out, const char **why_r);
/* The map the link's server is in (a new one after a reload or a pin
 * change): -1 when its server is no longer in it (close the link: out has
 * the stream error). */
int xe_route_link_set_map(struct xe_route_link *l, const struct xe_route_map *m,
                          struct xe_buf *out);
/* After XE_ROUTE_READY: the domain and the server it authenticated as, and
 * its index in the current map. */
const char *xe_route_link_domain(const struct xe_route_link *l);
const char *xe_route_link_server(const struct xe_route_link *l);
size_t xe_route_link_self(const struct xe_route_link *l);
/* The ping interval (seconds) the glue's last <ping interval='N'/>
 * announced, 0 before any: the glue writes at least that often, so a link
 * silent for XE_ROUTE_SILENT_PINGS intervals is dead (route_io closes it). */
int xe_route_link_ping_interval(const struct xe_route_link *l);

#endif
