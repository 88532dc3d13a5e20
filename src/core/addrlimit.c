/* xedge: per source address limits. See addrlimit.h. */
#include <pthread.h>
#include "addrlimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "util.h"

struct entry {
    struct entry *next;
    unsigned char key[17]; /* family byte + 16 address bytes (IPv4: 4, IPv6: the /64) */
    unsigned conns;
    double tokens;
    uint64_t stamp_ms; /* last refill */
};

struct xe_addrlimit {
    struct xe_addrlimit_conf conf;
    struct entry **buckets;
    size_t n_buckets;
    size_t n_entries;
    uint64_t seed[2]; /* keys the hash, so that collisions cannot be chosen */
    /* shared by the worker threads: every call holds it; now_ms is kept
     * monotonic (the workers' loops' clocks differ by a few ms) */
    pthread_mutex_t mu;
    uint64_t last_now;
};

static bool
make_key(const struct sockaddr *sa, unsigned char key[17])
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) { /* an IPv4 client on a dual-stack socket */
            key[0] = 4;
            memcpy(key + 1, a + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a, 8); /* one /64: what one host or site can use */
        }
        return true;
    }
    return false;
}

static void
key_name(const unsigned char key[17], char *out, size_t len)
{
    char buf[INET6_ADDRSTRLEN];

    if (out == NULL || len == 0)
        return;
    if (key[0] == 4) {
        inet_ntop(AF_INET, key + 1, buf, sizeof(buf));
        snprintf(out, len, "%s", buf);
    } else {
        unsigned char a[16] = {0};
        memcpy(a, key + 1, 8);
        inet_ntop(AF_INET6, a, buf, sizeof(buf));
        snprintf(out, len, "%s/64", buf);
    }
}

static uint64_t
hash_key(const struct xe_addrlimit *al, const unsigned char key[17])
{
    /* FNV-1a over the key, mixed with a per-process secret seed */
    uint64_t h = 1469598103934665603ULL ^ al->seed[0];
    for (int i = 0; i < 17; i++) {
        h ^= key[i];
        h *= 1099511628211ULL;
    }
    h ^= al->seed[1];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

struct xe_addrlimit *
xe_addrlimit_new(const struct xe_addrlimit_conf *conf)
{
    struct xe_addrlimit *al = xe_calloc(1, sizeof(*al));

    pthread_mutex_init(&al->mu, NULL);
    al->conf = *conf;
    if (al->conf.rate > 0 && al->conf.burst == 0)
        al->conf.burst = al->conf.rate;
    if (al->conf.max_entries == 0)
        al->conf.max_entries = 1u << 20;
    if (al->conf.period_ms == 0)
        al->conf.period_ms = 1000;
    al->n_buckets = 1024;
    al->buckets = xe_calloc(al->n_buckets, sizeof(*al->buckets));
    if (RAND_bytes((unsigned char *)al->seed, sizeof(al->seed)) != 1)
        al->seed[0] = (uint64_t)(uintptr_t)al;
    return al;
}

static void
drop_entries(struct xe_addrlimit *al)
{
    for (size_t i = 0; i < al->n_buckets; i++) {
        struct entry *e = al->buckets[i];
        while (e) {
            struct entry *n = e->next;
            free(e);
            e = n;
        }
        al->buckets[i] = NULL;
    }
    al->n_entries = 0;
}

static void
addrlimit_reconfigure_unlocked(struct xe_addrlimit *al,
                               const struct xe_addrlimit_conf *conf)
{
    struct xe_addrlimit_conf c = *conf;

    if (c.rate > 0 && c.burst == 0)
        c.burst = c.rate;
    /* the table stays as it was made */
    c.max_entries = al->conf.max_entries;
    c.period_ms = conf->period_ms ? conf->period_ms : 1000;
    /* without limits nothing is counted: forget the counts, so that limits
     * set again later start from nothing rather than from stale counts */
    if (c.max_per_address == 0 && c.rate == 0)
        drop_entries(al);
    al->conf = c;
}

void
xe_addrlimit_free(struct xe_addrlimit **alp)
{
    struct xe_addrlimit *al = *alp;

    if (al == NULL)
        return;
    drop_entries(al);
    free(al->buckets);
    pthread_mutex_destroy(&al->mu);
    free(al);
    *alp = NULL;
}

static void
refill(const struct xe_addrlimit *al, struct entry *e, uint64_t now_ms)
{
    if (al->conf.rate == 0)
        return;
    if (now_ms > e->stamp_ms) {
        e->tokens +=
            (double)(now_ms - e->stamp_ms) * al->conf.rate / (double)al->conf.period_ms;
        if (e->tokens > al->conf.burst)
            e->tokens = al->conf.burst;
    }
    e->stamp_ms = now_ms;
}

/* An entry that holds nothing (no connection, a full bucket) can go. */
static bool
idle(const struct xe_addrlimit *al, const struct entry *e)
{
    return e->conns == 0 && (al->conf.rate == 0 || e->tokens >= al->conf.burst);
}

static void
grow(struct xe_addrlimit *al)
{
    size_t nb = al->n_buckets * 2;
    struct entry **b = xe_calloc(nb, sizeof(*b));

    for (size_t i = 0; i < al->n_buckets; i++) {
        struct entry *e = al->buckets[i];
        while (e) {
            struct entry *n = e->next;
            size_t j = hash_key(al, e->key) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = n;
        }
    }
    free(al->buckets);
    al->buckets = b;
    al->n_buckets = nb;
}

static void
sweep(struct xe_addrlimit *al, uint64_t now_ms)
{
    for (size_t i = 0; i < al->n_buckets; i++) {
        struct entry **pp = &al->buckets[i], *e;
        while ((e = *pp) != NULL) {
            refill(al, e, now_ms);
            if (idle(al, e)) {
                *pp = e->next;
                free(e);
                al->n_entries--;
            } else {
                pp = &e->next;
            }
        }
    }
}

/* Find the entry for key; drops idle entries met on the way. */
static struct entry *
find(struct xe_addrlimit *al, const unsigned char key[17], uint64_t now_ms, bool create)
{
    size_t i = hash_key(al, key) & (al->n_buckets - 1);
    struct entry **pp = &al->buckets[i], *e;

    while ((e = *pp) != NULL) {
        if (memcmp(e->key, key, 17) == 0) {
            refill(al, e, now_ms);
            return e;
        }
        refill(al, e, now_ms);
        if (idle(al, e)) {
            *pp = e->next;
            free(e);
            al->n_entries--;
            continue;
        }
        pp = &e->next;
    }
    if (!create)
        return NULL;
    if (al->n_entries >= al->conf.max_entries) {
        sweep(al, now_ms); /* full: drop every entry that holds nothing */
        if (al->n_entries >= al->conf.max_entries)
            return NULL;
    }
    e = xe_calloc(1, sizeof(*e));
    memcpy(e->key, key, 17);
    e->tokens = al->conf.burst;
    e->stamp_ms = now_ms;
    e->next = al->buckets[i];
    al->buckets[i] = e;
    if (++al->n_entries > al->n_buckets)
        grow(al);
    return e;
}

static enum xe_addrlimit_result
addrlimit_acquire_unlocked(struct xe_addrlimit *al, const struct sockaddr *sa,
                           uint64_t now_ms, char *key_r, size_t key_len)
{
    unsigned char key[17];
    struct entry *e;

    if (!make_key(sa, key)) /* not IP (a unix socket): not limited here */
        return XE_AL_OK;
    key_name(key, key_r, key_len);
    if (al->conf.max_per_address == 0 && al->conf.rate == 0)
        return XE_AL_OK;
    e = find(al, key, now_ms, true);
    if (e == NULL)
        return XE_AL_FULL;
    if (al->conf.max_per_address && e->conns >= al->conf.max_per_address)
        return XE_AL_TOO_MANY;
    if (al->conf.rate) {
        if (e->tokens < 1.0)
            return XE_AL_TOO_FAST;
        e->tokens -= 1.0;
    }
    e->conns++;
    return XE_AL_OK;
}

static void
addrlimit_release_unlocked(struct xe_addrlimit *al, const struct sockaddr *sa,
                           uint64_t now_ms)
{
    unsigned char key[17];
    struct entry *e;

    if (!make_key(sa, key) || (al->conf.max_per_address == 0 && al->conf.rate == 0))
        return;
    e = find(al, key, now_ms, false);
    if (e && e->conns > 0)
        e->conns--;
}

static size_t
addrlimit_entries_unlocked(const struct xe_addrlimit *al)
{
    return al->n_entries;
}

const char *
xe_addrlimit_result_name(enum xe_addrlimit_result r)
{
    switch (r) {
    case XE_AL_OK:
        return "ok";
    case XE_AL_TOO_MANY:
        return "max_connections_per_address";
    case XE_AL_TOO_FAST:
        return "connection_rate_per_address";
    case XE_AL_FULL:
        return "address_table_full";
    }
    return "?";
}

/* ---- the locked entry points (the worker threads share the table) ------- */

static uint64_t
al_now(struct xe_addrlimit *al, uint64_t now_ms)
{
    if (now_ms < al->last_now)
        return al->last_now;
    return al->last_now = now_ms;
}

void
xe_addrlimit_reconfigure(struct xe_addrlimit *al, const struct xe_addrlimit_conf *conf)
{
    pthread_mutex_lock(&al->mu);
    addrlimit_reconfigure_unlocked(al, conf);
    pthread_mutex_unlock(&al->mu);
}

enum xe_addrlimit_result
xe_addrlimit_acquire(struct xe_addrlimit *al, const struct sockaddr *sa, uint64_t now_ms,
                     char *key_r, size_t key_len)
{
    enum xe_addrlimit_result r;

    pthread_mutex_lock(&al->mu);
    r = addrlimit_acquire_unlocked(al, sa, al_now(al, now_ms), key_r, key_len);
    pthread_mutex_unlock(&al->mu);
    return r;
}

void
xe_addrlimit_release(struct xe_addrlimit *al, const struct sockaddr *sa, uint64_t now_ms)
{
    pthread_mutex_lock(&al->mu);
    addrlimit_release_unlocked(al, sa, al_now(al, now_ms));
    pthread_mutex_unlock(&al->mu);
}

size_t
xe_addrlimit_entries(const struct xe_addrlimit *al)
{
    struct xe_addrlimit *m = (struct xe_addrlimit *)al; /* the lock only */
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = addrlimit_entries_unlocked(al);
    pthread_mutex_unlock(&m->mu);
    return n;
}
