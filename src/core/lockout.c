/* xedge: brute-force protection. See lockout.h. */
#include <pthread.h>
#include "lockout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "log.h"
#include "metrics.h"
#include "userstore.h"
#include "util.h"

/* quiet entries dropped from the old end of a table per call */
#define EXPIRE_PER_CALL 8

struct entry {
    struct entry *hnext;         /* hash chain */
    struct entry *older, *newer; /* activity order */
    uint64_t hash;
    uint64_t last_ms;         /* last counted failure */
    uint64_t locked_until_ms; /* 0: not locked */
    unsigned failures;
    unsigned lockouts;
    char key[];
};

struct table {
    struct entry **buckets;
    size_t n_buckets, n;
    struct entry *oldest, *newest;
    unsigned threshold;
};

struct xe_lockout {
    struct xe_lockout_conf conf;
    struct table t[2];
    uint64_t seed[2]; /* keys the hash, so that collisions cannot be chosen */
    struct xe_lockout_stats st;
    /* shared by the worker threads: every call holds it; now_ms is kept
     * monotonic (the workers' loops' clocks differ by a few ms) */
    pthread_mutex_t mu;
    uint64_t last_now;
    xe_lockout_share_fn share; /* several nodes: pgsync_io.c */
    void *share_ctx;
};

static uint64_t
hash_key(const struct xe_lockout *lo, const char *key)
{
    uint64_t h = 1469598103934665603ULL ^ lo->seed[0];

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= lo->seed[1];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

struct xe_lockout *
xe_lockout_new(const struct xe_lockout_conf *conf)
{
    struct xe_lockout *lo = xe_calloc(1, sizeof(*lo));

    pthread_mutex_init(&lo->mu, NULL);
    lo->conf = *conf;
    if (lo->conf.max_entries == 0)
        lo->conf.max_entries = 1;
    if (lo->conf.max_delay_ms < lo->conf.delay_ms)
        lo->conf.max_delay_ms = lo->conf.delay_ms;
    for (int k = 0; k < 2; k++) {
        lo->t[k].n_buckets = 256;
        lo->t[k].buckets = xe_calloc(lo->t[k].n_buckets, sizeof(struct entry *));
    }
    lo->t[XE_LOCKOUT_ADDRESS].threshold = conf->address_threshold;
    lo->t[XE_LOCKOUT_ACCOUNT].threshold = conf->account_threshold;
    if (RAND_bytes((unsigned char *)lo->seed, sizeof(lo->seed)) != 1)
        lo->seed[0] = (uint64_t)(uintptr_t)lo;
    return lo;
}

static void
lockout_reconfigure_unlocked(struct xe_lockout *lo, const struct xe_lockout_conf *conf)
{
    lo->conf = *conf;
    if (lo->conf.max_entries == 0)
        lo->conf.max_entries = 1;
    if (lo->conf.max_delay_ms < lo->conf.delay_ms)
        lo->conf.max_delay_ms = lo->conf.delay_ms;
    lo->t[XE_LOCKOUT_ADDRESS].threshold = conf->address_threshold;
    lo->t[XE_LOCKOUT_ACCOUNT].threshold = conf->account_threshold;
}

static void
table_free_entries(struct table *t)
{
    struct entry *e = t->oldest;

    while (e) {
        struct entry *n = e->newer;
        free(e);
        e = n;
    }
    memset(t->buckets, 0, t->n_buckets * sizeof(*t->buckets));
    t->oldest = t->newest = NULL;
    t->n = 0;
}

void
xe_lockout_free(struct xe_lockout **lop)
{
    struct xe_lockout *lo = *lop;

    if (lo == NULL)
        return;
    for (int k = 0; k < 2; k++) {
        table_free_entries(&lo->t[k]);
        free(lo->t[k].buckets);
    }
    pthread_mutex_destroy(&lo->mu);
    free(lo);
    *lop = NULL;
}

/* ---- one table ----------------------------------------------------------- */

static void
list_unlink(struct table *t, struct entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    e->older = e->newer = NULL;
}

static void
list_push(struct table *t, struct entry *e)
{
    e->older = t->newest;
    e->newer = NULL;
    if (t->newest)
        t->newest->newer = e;
    else
        t->oldest = e;
    t->newest = e;
}

static void
touch(struct table *t, struct entry *e)
{
    if (t->newest != e) {
        list_unlink(t, e);
        list_push(t, e);
    }
}

static void
remove_entry(struct table *t, struct entry *e)
{
    struct entry **pp = &t->buckets[e->hash & (t->n_buckets - 1)];

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    list_unlink(t, e);
    t->n--;
    free(e);
}

/* Bring e up to date: a lockout that is over, or a quiet window, clears the
 * count. Returns true when nothing is left (the entry can go). */
static bool
refresh(const struct xe_lockout *lo, struct entry *e, uint64_t now_ms)
{
    if (e->locked_until_ms && now_ms >= e->locked_until_ms) {
        e->locked_until_ms = 0;
        e->failures = 0;
    }
    if (e->failures && now_ms - e->last_ms >= lo->conf.window_ms &&
        e->locked_until_ms == 0)
        e->failures = 0;
    return e->failures == 0 && e->locked_until_ms == 0;
}

static void
expire_some(struct xe_lockout *lo, struct table *t, uint64_t now_ms)
{
    for (int i = 0; i < EXPIRE_PER_CALL && t->oldest; i++) {
        if (!refresh(lo, t->oldest, now_ms))
            break;
        remove_entry(t, t->oldest);
    }
}

static void
grow(struct table *t)
{
    size_t nb = t->n_buckets * 2;
    struct entry **b = xe_calloc(nb, sizeof(*b));

    for (struct entry *e = t->oldest; e; e = e->newer) {
        size_t j = e->hash & (nb - 1);
        e->hnext = b[j];
        b[j] = e;
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = nb;
}

static struct entry *
find(struct xe_lockout *lo, struct table *t, const char *key, uint64_t now_ms,
     bool create)
{
    uint64_t h = hash_key(lo, key);
    struct entry *e;
    size_t klen;

    expire_some(lo, t, now_ms);
    for (e = t->buckets[h & (t->n_buckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    if (!create)
        return NULL;
    while (t->n >= lo->conf.max_entries && t->oldest) {
        /* full of recent entries: the least recently active one goes */
        if (!refresh(lo, t->oldest, now_ms))
            lo->st.evicted++;
        remove_entry(t, t->oldest);
    }
    klen = strnlen(key, XE_LOCKOUT_KEY_MAX - 1);
    e = xe_calloc(1, sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen);
    e->hash = h;
    e->last_ms = now_ms;
    e->hnext = t->buckets[h & (t->n_buckets - 1)];
    t->buckets[h & (t->n_buckets - 1)] = e;
    list_push(t, e);
    if (++t->n > t->n_buckets)
        grow(t);
    return e;
}

static unsigned
delay_of(const struct xe_lockout *lo, unsigned failures)
{
    uint64_t d;
    unsigned steps;

    if (lo->conf.delay_ms == 0 || failures <= lo->conf.free_failures)
        return 0;
    steps = failures - lo->conf.free_failures - 1;
    if (steps > 31)
        steps = 31;
    d = (uint64_t)lo->conf.delay_ms << steps;
    return d > lo->conf.max_delay_ms ? lo->conf.max_delay_ms : (unsigned)d;
}

static bool
is_key(const char *k)
{
    return k != NULL && *k != '\0' && strcmp(k, "-") != 0;
}

/* ---- the API --------------------------------------------------------------- */

static bool
lockout_check_unlocked(struct xe_lockout *lo, const char *addr, const char *account,
                       uint64_t now_ms, uint64_t *remaining_ms_r)
{
    const char *keys[2] = {addr, account};
    uint64_t rem = 0;

    for (int k = 0; k < 2; k++) {
        struct entry *e;
        if (!is_key(keys[k]))
            continue;
        e = find(lo, &lo->t[k], keys[k], now_ms, false);
        if (e == NULL)
            continue;
        refresh(lo, e, now_ms);
        if (e->locked_until_ms > now_ms) {
            if (e->locked_until_ms - now_ms > rem)
                rem = e->locked_until_ms - now_ms;
            touch(&lo->t[k], e); /* an active attacker stays tracked */
        }
    }
    if (remaining_ms_r)
        *remaining_ms_r = rem;
    if (rem > 0)
        lo->st.refused++;
    return rem > 0;
}

static unsigned
lockout_failure_unlocked(struct xe_lockout *lo, const char *addr, const char *account,
                         uint64_t now_ms)
{
    const char *keys[2] = {addr, account};
    unsigned delay = 0;

    lo->st.failures++;
    for (int k = 0; k < 2; k++) {
        struct table *t = &lo->t[k];
        struct entry *e;
        unsigned d;

        if (!is_key(keys[k]))
            continue;
        e = find(lo, t, keys[k], now_ms, true);
        refresh(lo, e, now_ms);
        e->failures++;
        e->last_ms = now_ms;
        touch(t, e);
        if (e->locked_until_ms == 0 && t->threshold && e->failures >= t->threshold) {
            e->locked_until_ms = now_ms + lo->conf.lockout_ms;
            if (e->locked_until_ms == 0)
                e->locked_until_ms = 1;
            e->lockouts++;
            lo->st.lockouts++;
            xe_metrics_inc(XE_M_LOCKOUTS, xe_lockout_kind_name((enum xe_lockout_kind)k),
                           NULL);
            xe_warn("event=lockout kind=%s key=%s failures=%u duration_ms=%llu "
                    "lockouts=%llu",
                    xe_lockout_kind_name((enum xe_lockout_kind)k), e->key, e->failures,
                    (unsigned long long)lo->conf.lockout_ms,
                    (unsigned long long)lo->st.lockouts);
        }
        d = delay_of(lo, e->failures);
        if (d > delay)
            delay = d;
    }
    return delay;
}

static unsigned
lockout_delay_unlocked(struct xe_lockout *lo, const char *addr, const char *account,
                       uint64_t now_ms)
{
    const char *keys[2] = {addr, account};
    unsigned delay = 0;

    for (int k = 0; k < 2; k++) {
        struct entry *e;
        unsigned d;

        if (!is_key(keys[k]))
            continue;
        e = find(lo, &lo->t[k], keys[k], now_ms, false);
        if (e == NULL)
            continue;
        refresh(lo, e, now_ms);
        d = delay_of(lo, e->failures);
        if (d > delay)
            delay = d;
    }
    return delay;
}

/* true when the account had an entry that went */
static bool
lockout_success_unlocked(struct xe_lockout *lo, const char *account, uint64_t now_ms)
{
    struct table *t = &lo->t[XE_LOCKOUT_ACCOUNT];
    struct entry *e;

    if (!is_key(account))
        return false;
    e = find(lo, t, account, now_ms, false);
    if (e && (refresh(lo, e, now_ms) || e->locked_until_ms == 0)) {
        remove_entry(t, e);
        return true;
    }
    return false;
}

static void
lockout_foreach_unlocked(struct xe_lockout *lo, uint64_t now_ms,
                         int (*fn)(void *ctx, const struct xe_lockout_info *e), void *ctx)
{
    for (int k = 0; k < 2; k++) {
        for (struct entry *e = lo->t[k].oldest; e; e = e->newer) {
            struct xe_lockout_info info;
            if (refresh(lo, e, now_ms))
                continue; /* expired: dropped by a later call */
            info.kind = (enum xe_lockout_kind)k;
            info.key = e->key;
            info.failures = e->failures;
            info.locked = e->locked_until_ms > now_ms;
            info.remaining_ms = info.locked ? e->locked_until_ms - now_ms : 0;
            info.lockouts = e->lockouts;
            if (fn(ctx, &info) != 0)
                return;
        }
    }
}

static size_t
lockout_clear_unlocked(struct xe_lockout *lo, const char *key)
{
    size_t n = 0;

    if (key == NULL)
        return 0;
    for (int k = 0; k < 2; k++) {
        struct table *t = &lo->t[k];
        uint64_t h = hash_key(lo, key);
        struct entry *e;

        for (e = t->buckets[h & (t->n_buckets - 1)]; e; e = e->hnext)
            if (e->hash == h && strcmp(e->key, key) == 0)
                break;
        if (e) {
            remove_entry(t, e);
            n++;
        }
    }
    return n;
}

static size_t
lockout_clear_all_unlocked(struct xe_lockout *lo)
{
    size_t n = lo->t[0].n + lo->t[1].n;

    table_free_entries(&lo->t[0]);
    table_free_entries(&lo->t[1]);
    return n;
}

static void
lockout_get_stats_unlocked(struct xe_lockout *lo, uint64_t now_ms,
                           struct xe_lockout_stats *st_r)
{
    *st_r = lo->st;
    st_r->entries = 0;
    st_r->locked = 0;
    for (int k = 0; k < 2; k++)
        for (struct entry *e = lo->t[k].oldest; e; e = e->newer) {
            if (refresh(lo, e, now_ms))
                continue;
            st_r->entries++;
            if (e->locked_until_ms > now_ms)
                st_r->locked++;
        }
}

const char *
xe_lockout_kind_name(enum xe_lockout_kind k)
{
    return k == XE_LOCKOUT_ADDRESS ? "address" : "account";
}

/* ---- keys ------------------------------------------------------------------ */

void
xe_lockout_account_key(const char *jid, size_t len, char out[XE_LOCKOUT_KEY_MAX])
{
    static const char hex[] = "0123456789ABCDEF";
    char prepped[3072];
    size_t o = 0;

    /* one account, one key: a JID that nodeprep folds (another case of a
     * non-ASCII name, fullwidth letters) counts against the account it
     * names; a name that is no JID is keyed as it came */
    if (len < sizeof(prepped) && memchr(jid, '\0', len) == NULL) {
        memcpy(prepped, jid, len);
        prepped[len] = '\0';
        if (xe_jid_normalize(prepped, sizeof(prepped), NULL) == 0) {
            jid = prepped;
            len = strlen(prepped);
        }
    }

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)jid[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        if (ch > 0x20 && ch < 0x7f && strchr("%=\"\\", ch) == NULL) {
            if (o + 1 >= XE_LOCKOUT_KEY_MAX)
                break;
            out[o++] = (char)ch;
        } else {
            if (o + 3 >= XE_LOCKOUT_KEY_MAX)
                break;
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* The value of attribute "NAME=" in a comma-separated list (SCRAM), with
 * =2C and =3D decoded, into buf. */
static size_t
scram_attr(const char *p, const char *end, char name, char *buf, size_t max)
{
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (stop - p >= 2 && p[0] == name && p[1] == '=') {
            size_t n = 0;
            for (p += 2; p < stop && n < max; p++) {
                if (*p == '=' && stop - p >= 3 && p[1] == '2' && p[2] == 'C') {
                    buf[n++] = ',';
                    p += 2;
                } else if (*p == '=' && stop - p >= 3 && p[1] == '3' && p[2] == 'D') {
                    buf[n++] = '=';
                    p += 2;
                } else {
                    buf[n++] = *p;
                }
            }
            return n;
        }
        p = comma ? comma + 1 : end;
    }
    return 0;
}

/* DIGEST-MD5: the value of NAME="..." (or NAME=token) into buf. */
static size_t
digest_attr(const char *p, const char *end, const char *name, char *buf, size_t max)
{
    size_t nl = strlen(name), n = 0;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
            p++;
        if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == '=') {
            p += nl + 1;
            if (p < end && *p == '"') {
                for (p++; p < end && *p != '"' && n < max; p++) {
                    if (*p == '\\' && p + 1 < end)
                        p++;
                    buf[n++] = *p;
                }
            } else {
                while (p < end && *p != ',' && n < max)
                    buf[n++] = *p++;
            }
            return n;
        }
        /* skip this attribute (a quoted value may hold commas) */
        while (p < end && *p != ',' && *p != '"')
            p++;
        if (p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && p + 1 < end)
                    p++;
            if (p < end)
                p++;
        }
    }
    return 0;
}

void
xe_lockout_sasl_account(const char *mech, const char *msg, size_t len, const char *domain,
                        char out[XE_LOCKOUT_KEY_MAX])
{
    char name[1024 + 1 + 1024];
    const char *end = msg + len, *realm = domain;
    char realm_buf[1024];
    size_t n = 0;

    out[0] = '\0';
    if (mech == NULL || msg == NULL || len == 0)
        return;
    if (strcmp(mech, "PLAIN") == 0) {
        /* [authzid] NUL authcid NUL password */
        const char *a = memchr(msg, '\0', len), *b;
        if (a == NULL)
            return;
        a++;
        b = memchr(a, '\0', (size_t)(end - a));
        if (b == NULL)
            return;
        n = (size_t)(b - a) < 1024 ? (size_t)(b - a) : 1024;
        memcpy(name, a, n);
    } else if (strncmp(mech, "SCRAM-", 6) == 0) {
        /* gs2-cbind-flag "," [authzid] "," [m=...,] n=user,r=nonce */
        const char *p = memchr(msg, ',', len);
        if (p == NULL || (p = memchr(p + 1, ',', (size_t)(end - p - 1))) == NULL)
            return;
        n = scram_attr(p + 1, end, 'n', name, 1024);
    } else if (strcmp(mech, "DIGEST-MD5") == 0) {
        size_t rl;
        n = digest_attr(msg, end, "username", name, 1024);
        rl = digest_attr(msg, end, "realm", realm_buf, sizeof(realm_buf) - 1);
        if (rl > 0) {
            realm_buf[rl] = '\0';
            realm = realm_buf;
        }
    } else if (strcmp(mech, "CRAM-MD5") == 0) {
        /* user SP digest */
        const char *sp = NULL;
        for (const char *p = msg; p < end; p++)
            if (*p == ' ')
                sp = p;
        if (sp == NULL)
            return;
        n = (size_t)(sp - msg) < 1024 ? (size_t)(sp - msg) : 1024;
        memcpy(name, msg, n);
    }
    if (n == 0)
        return;
    if (memchr(name, '@', n) == NULL && realm && *realm) {
        size_t rl = strnlen(realm, 1023);
        name[n++] = '@';
        memcpy(name + n, realm, rl);
        n += rl;
    }
    xe_lockout_account_key(name, n, out);
}

/* ---- the locked entry points (the worker threads share the table) ------- */

static uint64_t
lo_now(struct xe_lockout *lo, uint64_t now_ms)
{
    if (now_ms < lo->last_now)
        return lo->last_now;
    return lo->last_now = now_ms;
}

#define LO_LOCKED(type, call)                                                            \
    do {                                                                                 \
        type r_;                                                                         \
        pthread_mutex_lock(&lo->mu);                                                     \
        r_ = call;                                                                       \
        pthread_mutex_unlock(&lo->mu);                                                   \
        return r_;                                                                       \
    } while (0)

void
xe_lockout_reconfigure(struct xe_lockout *lo, const struct xe_lockout_conf *conf)
{
    pthread_mutex_lock(&lo->mu);
    lockout_reconfigure_unlocked(lo, conf);
    pthread_mutex_unlock(&lo->mu);
}

bool
xe_lockout_check(struct xe_lockout *lo, const char *addr, const char *account,
                 uint64_t now_ms, uint64_t *remaining_ms_r)
{
    LO_LOCKED(bool, lockout_check_unlocked(lo, addr, account, lo_now(lo, now_ms),
                                           remaining_ms_r));
}

unsigned
xe_lockout_failure(struct xe_lockout *lo, const char *addr, const char *account,
                   uint64_t now_ms)
{
    unsigned d;
    xe_lockout_share_fn share;
    void *ctx;
    struct xe_lockout_conf conf;

    pthread_mutex_lock(&lo->mu);
    d = lockout_failure_unlocked(lo, addr, account, lo_now(lo, now_ms));
    share = lo->share;
    ctx = lo->share_ctx;
    conf = lo->conf;
    pthread_mutex_unlock(&lo->mu);
    if (share != NULL && is_key(account) && conf.account_threshold > 0)
        share(ctx, account, true, &conf);
    return d;
}

unsigned
xe_lockout_delay(struct xe_lockout *lo, const char *addr, const char *account,
                 uint64_t now_ms)
{
    LO_LOCKED(unsigned, lockout_delay_unlocked(lo, addr, account, lo_now(lo, now_ms)));
}

void
xe_lockout_success(struct xe_lockout *lo, const char *account, uint64_t now_ms)
{
    xe_lockout_share_fn share;
    void *ctx;
    struct xe_lockout_conf conf;
    bool had;

    pthread_mutex_lock(&lo->mu);
    had = lockout_success_unlocked(lo, account, lo_now(lo, now_ms));
    share = lo->share;
    ctx = lo->share_ctx;
    conf = lo->conf;
    pthread_mutex_unlock(&lo->mu);
    if (had && share != NULL)
        share(ctx, account, false, &conf);
}

void
xe_lockout_foreach(struct xe_lockout *lo, uint64_t now_ms,
                   int (*fn)(void *ctx, const struct xe_lockout_info *e), void *ctx)
{
    pthread_mutex_lock(&lo->mu);
    lockout_foreach_unlocked(lo, lo_now(lo, now_ms), fn, ctx);
    pthread_mutex_unlock(&lo->mu);
}

size_t
xe_lockout_clear(struct xe_lockout *lo, const char *key)
{
    LO_LOCKED(size_t, lockout_clear_unlocked(lo, key));
}

size_t
xe_lockout_clear_all(struct xe_lockout *lo)
{
    LO_LOCKED(size_t, lockout_clear_all_unlocked(lo));
}

void
xe_lockout_get_stats(struct xe_lockout *lo, uint64_t now_ms,
                     struct xe_lockout_stats *st_r)
{
    pthread_mutex_lock(&lo->mu);
    lockout_get_stats_unlocked(lo, lo_now(lo, now_ms), st_r);
    pthread_mutex_unlock(&lo->mu);
}

/* ---- several nodes: the account counts shared (pgsync_io.c) --------------- */

void
xe_lockout_set_share(struct xe_lockout *lo, xe_lockout_share_fn fn, void *ctx)
{
    pthread_mutex_lock(&lo->mu);
    lo->share = fn;
    lo->share_ctx = ctx;
    pthread_mutex_unlock(&lo->mu);
}

void
xe_lockout_apply_account(struct xe_lockout *lo, const char *account, unsigned failures,
                         uint64_t remaining_ms, uint64_t now_ms)
{
    struct table *t = &lo->t[XE_LOCKOUT_ACCOUNT];
    struct entry *e;

    if (!is_key(account))
        return;
    pthread_mutex_lock(&lo->mu);
    now_ms = lo_now(lo, now_ms);
    if (failures == 0) {
        if ((e = find(lo, t, account, now_ms, false)) != NULL)
            remove_entry(t, e);
    } else {
        e = find(lo, t, account, now_ms, true);
        refresh(lo, e, now_ms);
        /* never less than this node counted itself: the rows come late */
        if (failures > e->failures)
            e->failures = failures;
        e->last_ms = now_ms;
        if (remaining_ms > 0 && now_ms + remaining_ms > e->locked_until_ms) {
            if (e->locked_until_ms <= now_ms) {
                e->lockouts++;
                xe_info("event=lockout kind=account key=%s failures=%u duration_ms=%llu "
                        "source=database",
                        e->key, e->failures, (unsigned long long)remaining_ms);
            }
            e->locked_until_ms = now_ms + remaining_ms;
        }
        touch(t, e);
    }
    pthread_mutex_unlock(&lo->mu);
}
