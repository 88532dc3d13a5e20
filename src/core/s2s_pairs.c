/* xedge: federation's pair routing (sans-IO). See s2s_pairs.h.
 *
 * Two chained hash tables over the same entries: by id, and by (kind,
 * local, remote) for the bound ones; both double when their load passes
 * one. A list per kind (for the glue's "every IN stream") and a list of
 * BACKENDs per OUT. */
#include "s2s_pairs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define KINDS 5
#define FIRST_BUCKETS 64

struct ent {
    uint64_t id;
    enum xe_s2s_kind kind;
    void *v;
    bool hidden;
    char *local, *remote; /* bound: an OUT or a LINK */
    uint64_t pair_hash;
    struct ent *id_next, *pair_next; /* hash chains */
    struct ent *k_prev, *k_next;     /* its kind's list */
    /* a BACKEND: its OUT and its place in the OUT's list; an OUT: the list */
    struct ent *out, *b_prev, *b_next;
    struct ent *b_head, *b_tail;
    size_t n_b;
};

struct table {
    struct ent **b;
    size_t n, used;
};

struct xe_s2s_pairs {
    struct table ids, pairs;
    struct ent *k_head[KINDS], *k_tail[KINDS];
    size_t count;
};

static uint64_t
hash_id(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return id;
}

/* FNV-1a over kind, local, NUL, remote */
static uint64_t
hash_pair(enum xe_s2s_kind kind, const char *local, const char *remote)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)kind;

    h *= 0x100000001b3ULL;
    for (const char *s = local; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h *= 0x100000001b3ULL; /* the separator */
    for (const char *s = remote; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static struct ent **
id_slot(struct xe_s2s_pairs *p, uint64_t id)
{
    struct ent **e = &p->ids.b[hash_id(id) & (p->ids.n - 1)];

    while (*e && (*e)->id != id)
        e = &(*e)->id_next;
    return e;
}

static struct ent *
id_get(struct xe_s2s_pairs *p, uint64_t id)
{
    return id ? *id_slot(p, id) : NULL;
}

static void
grow(struct table *t, bool by_id)
{
    size_t n = t->n * 2;
    struct ent **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return; /* (chains just get longer) */
    for (size_t i = 0; i < t->n; i++) {
        struct ent *e = t->b[i], *next;
        for (; e; e = next) {
            uint64_t h = by_id ? hash_id(e->id) : e->pair_hash;
            struct ent **s = &b[h & (n - 1)];
            if (by_id) {
                next = e->id_next;
                e->id_next = *s;
            } else {
                next = e->pair_next;
                e->pair_next = *s;
            }
            *s = e;
        }
    }
    free(t->b);
    t->b = b;
    t->n = n;
}

struct xe_s2s_pairs *
xe_s2s_pairs_new(void)
{
    struct xe_s2s_pairs *p = xe_calloc(1, sizeof(*p));

    p->ids.n = p->pairs.n = FIRST_BUCKETS;
    p->ids.b = xe_calloc(FIRST_BUCKETS, sizeof(*p->ids.b));
    p->pairs.b = xe_calloc(FIRST_BUCKETS, sizeof(*p->pairs.b));
    return p;
}

static void
unbind(struct xe_s2s_pairs *p, struct ent *e)
{
    struct ent **s;

    if (e->local == NULL)
        return;
    for (s = &p->pairs.b[e->pair_hash & (p->pairs.n - 1)]; *s; s = &(*s)->pair_next)
        if (*s == e) {
            *s = e->pair_next;
            p->pairs.used--;
            break;
        }
    e->pair_next = NULL;
    free(e->local);
    free(e->remote);
    e->local = e->remote = NULL;
}

static void
detach(struct ent *b)
{
    struct ent *o = b->out;

    if (o == NULL)
        return;
    if (b->b_prev)
        b->b_prev->b_next = b->b_next;
    else
        o->b_head = b->b_next;
    if (b->b_next)
        b->b_next->b_prev = b->b_prev;
    else
        o->b_tail = b->b_prev;
    o->n_b--;
    b->out = b->b_prev = b->b_next = NULL;
}

static void
attach(struct ent *b, struct ent *o)
{
    b->out = o;
    b->b_next = NULL;
    b->b_prev = o->b_tail;
    if (o->b_tail)
        o->b_tail->b_next = b;
    else
        o->b_head = b;
    o->b_tail = b;
    o->n_b++;
}

void
xe_s2s_pairs_free(struct xe_s2s_pairs **pp)
{
    struct xe_s2s_pairs *p = *pp;

    if (p == NULL)
        return;
    for (int k = 0; k < KINDS; k++)
        while (p->k_head[k])
            xe_s2s_pairs_remove(p, p->k_head[k]->id);
    free(p->ids.b);
    free(p->pairs.b);
    free(p);
    *pp = NULL;
}

int
xe_s2s_pairs_add(struct xe_s2s_pairs *p, uint64_t id, enum xe_s2s_kind kind, void *v)
{
    struct ent *e;
    struct ent **s;

    if (id == 0 || v == NULL || (unsigned)kind >= KINDS || id_get(p, id))
        return -1;
    e = xe_calloc(1, sizeof(*e));
    e->id = id;
    e->kind = kind;
    e->v = v;
    s = &p->ids.b[hash_id(id) & (p->ids.n - 1)];
    e->id_next = *s;
    *s = e;
    e->k_prev = p->k_tail[kind];
    if (p->k_tail[kind])
        p->k_tail[kind]->k_next = e;
    else
        p->k_head[kind] = e;
    p->k_tail[kind] = e;
    p->count++;
    if (++p->ids.used > p->ids.n)
        grow(&p->ids, true);
    return 0;
}

void
xe_s2s_pairs_hide(struct xe_s2s_pairs *p, uint64_t id)
{
    struct ent *e = id_get(p, id);

    if (e == NULL)
        return;
    e->hidden = true;
    unbind(p, e);
}

void
xe_s2s_pairs_remove(struct xe_s2s_pairs *p, uint64_t id)
{
    struct ent **s, *e;

    if (id == 0 || *(s = id_slot(p, id)) == NULL)
        return;
    e = *s;
    *s = e->id_next;
    p->ids.used--;
    unbind(p, e);
    detach(e);
    while (e->b_head)
        detach(e->b_head);
    if (e->k_prev)
        e->k_prev->k_next = e->k_next;
    else
        p->k_head[e->kind] = e->k_next;
    if (e->k_next)
        e->k_next->k_prev = e->k_prev;
    else
        p->k_tail[e->kind] = e->k_prev;
    p->count--;
    free(e);
}

void *
xe_s2s_pairs_get(struct xe_s2s_pairs *p, uint64_t id)
{
    struct ent *e = id_get(p, id);

    return e && !e->hidden ? e->v : NULL;
}

size_t
xe_s2s_pairs_count(const struct xe_s2s_pairs *p)
{
    return p->count;
}

static struct ent *
pair_get(struct xe_s2s_pairs *p, enum xe_s2s_kind kind, const char *local,
         const char *remote, uint64_t h)
{
    for (struct ent *e = p->pairs.b[h & (p->pairs.n - 1)]; e; e = e->pair_next)
        if (e->pair_hash == h && e->kind == kind && strcmp(e->local, local) == 0 &&
            strcmp(e->remote, remote) == 0)
            return e;
    return NULL;
}

int
xe_s2s_pairs_bind(struct xe_s2s_pairs *p, uint64_t id, const char *local,
                  const char *remote)
{
    struct ent *e = id_get(p, id);
    struct ent **s;
    uint64_t h;

    if (e == NULL || e->hidden || e->local || local == NULL || remote == NULL ||
        (e->kind != XE_S2S_OUT && e->kind != XE_S2S_LINK))
        return -1;
    h = hash_pair(e->kind, local, remote);
    if (pair_get(p, e->kind, local, remote, h))
        return -1;
    e->local = xe_strdup(local);
    e->remote = xe_strdup(remote);
    e->pair_hash = h;
    s = &p->pairs.b[h & (p->pairs.n - 1)];
    e->pair_next = *s;
    *s = e;
    if (++p->pairs.used > p->pairs.n)
        grow(&p->pairs, false);
    return 0;
}

void *
xe_s2s_pairs_find(struct xe_s2s_pairs *p, enum xe_s2s_kind kind, const char *local,
                  const char *remote)
{
    struct ent *e;

    if (local == NULL || remote == NULL)
        return NULL;
    e = pair_get(p, kind, local, remote, hash_pair(kind, local, remote));
    return e ? e->v : NULL;
}

int
xe_s2s_pairs_attach(struct xe_s2s_pairs *p, uint64_t b, uint64_t o)
{
    struct ent *be = id_get(p, b), *oe = o ? id_get(p, o) : NULL;

    if (be == NULL || be->kind != XE_S2S_BACKEND ||
        (o && (oe == NULL || oe->kind != XE_S2S_OUT)))
        return -1;
    detach(be);
    if (oe)
        attach(be, oe);
    return 0;
}

void *
xe_s2s_pairs_out(struct xe_s2s_pairs *p, uint64_t b)
{
    struct ent *e = id_get(p, b);

    return e && e->out ? e->out->v : NULL;
}

void *
xe_s2s_pairs_backend(struct xe_s2s_pairs *p, uint64_t o, size_t i)
{
    struct ent *e = id_get(p, o);
    struct ent *b = e ? e->b_head : NULL;

    while (b && i-- > 0)
        b = b->b_next;
    return b ? b->v : NULL;
}

size_t
xe_s2s_pairs_n_backends(struct xe_s2s_pairs *p, uint64_t o)
{
    struct ent *e = id_get(p, o);

    return e ? e->n_b : 0;
}

void *
xe_s2s_pairs_detach_first(struct xe_s2s_pairs *p, uint64_t o)
{
    struct ent *e = id_get(p, o);
    struct ent *b = e ? e->b_head : NULL;

    if (b == NULL)
        return NULL;
    detach(b);
    return b->v;
}

int
xe_s2s_pairs_move(struct xe_s2s_pairs *p, uint64_t from, uint64_t to)
{
    struct ent *f = id_get(p, from), *t = id_get(p, to);

    if (f == NULL || t == NULL || f->kind != XE_S2S_OUT || t->kind != XE_S2S_OUT)
        return -1;
    if (f == t)
        return 0;
    while (f->b_head) {
        struct ent *b = f->b_head;
        detach(b);
        attach(b, t);
    }
    return 0;
}

void
xe_s2s_pairs_each(struct xe_s2s_pairs *p, enum xe_s2s_kind kind,
                  void (*fn)(void *v, void *ctx), void *ctx)
{
    if ((unsigned)kind >= KINDS)
        return;
    for (struct ent *e = p->k_head[kind]; e; e = e->k_next)
        fn(e->v, ctx);
}
