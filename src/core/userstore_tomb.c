/* xedge: the user store's tombstones (the database "tombstones", keyed by the
 * bare JID): their codec, reads and writes. Split from userstore.c (issue 14:
 * no source file over ~1,500 lines); the shared parts are in userstore_impl.h. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "xelimits.h"
#include "userstore.h"
#include "userstore_impl.h"
#include "util.h"

/* ---- tombstones -------------------------------------------------------- */

/* an id: empty or up to 32 lower hex digits */
static bool
us_tomb_id_valid(const char *s, size_t n)
{
    if (n >= sizeof(((struct xe_tombstone *)0)->id))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool
xe_tombstone_same(const struct xe_tombstone *a, const struct xe_tombstone *b)
{
    /* (a copy without an id, a replica's through PostgreSQL: the second) */
    return strcmp(a->jid, b->jid) == 0 && a->deleted == b->deleted &&
           (a->id[0] == '\0' || b->id[0] == '\0' || strcmp(a->id, b->id) == 0);
}

int
xe_tombstone_encode(const struct xe_tombstone *t, char **buf_r, size_t *len_r)
{
    size_t cap = 1024, pin_len = strnlen(t->pin, sizeof(t->pin));
    char *buf;
    int n;

    *buf_r = NULL;
    *len_r = 0;
    if (pin_len == sizeof(t->pin) || !xe_us_pin_valid(t->pin, pin_len) ||
        t->deleted < 0 || t->next < 0 ||
        strnlen(t->error, sizeof(t->error)) == sizeof(t->error))
        return XE_US_INVALID;
    for (const char *p = t->error; *p; p++)
        if ((unsigned char)*p < 0x20)
            return XE_US_INVALID; /* one line */
    if (!us_tomb_id_valid(t->id, strnlen(t->id, sizeof(t->id))))
        return XE_US_INVALID;
    if ((buf = malloc(cap)) == NULL)
        return XE_US_IO;
    n = snprintf(buf, cap,
                 "v=1\ndeleted=%" PRId64 "\npin=%s\nattempts=%u\nnext=%" PRId64
                 "\nerror=%s\n%s%s%s",
                 t->deleted, t->pin, t->attempts, t->next, t->error,
                 t->id[0] ? "id=" : "", t->id, t->id[0] ? "\n" : "");
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        return XE_US_INVALID;
    }
    *buf_r = buf;
    *len_r = (size_t)n;
    return XE_US_OK;
}

int
xe_tombstone_decode(const char *jid, const char *buf, size_t len, struct xe_tombstone *t)
{
    const char *p = buf, *end = buf + len;
    bool v = false, deleted = false;
    uint64_t u;

    memset(t, 0, sizeof(*t));
    if (jid != NULL) {
        if (strlen(jid) >= sizeof(t->jid))
            return XE_US_CORRUPT;
        snprintf(t->jid, sizeof(t->jid), "%s", jid);
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eq, *val;
        size_t nlen, vlen;
        if (nl == NULL)
            return XE_US_CORRUPT; /* every line ends with a newline */
        eq = memchr(p, '=', (size_t)(nl - p));
        if (eq == NULL)
            return XE_US_CORRUPT;
        nlen = (size_t)(eq - p);
        val = eq + 1;
        vlen = (size_t)(nl - val);
#define IS(name) (nlen == sizeof(name) - 1 && memcmp(p, name, nlen) == 0)
        if (IS("v")) {
            if (vlen != 1 || val[0] != '1')
                return XE_US_CORRUPT;
            v = true;
        } else if (IS("deleted") || IS("next")) {
            if (xe_us_parse_uint(val, vlen, INT64_MAX, &u) != 0)
                return XE_US_CORRUPT;
            if (IS("deleted")) {
                t->deleted = (int64_t)u;
                deleted = true;
            } else {
                t->next = (int64_t)u;
            }
        } else if (IS("attempts")) {
            if (xe_us_parse_uint(val, vlen, UINT_MAX, &u) != 0)
                return XE_US_CORRUPT;
            t->attempts = (unsigned)u;
        } else if (IS("pin")) {
            if (vlen >= sizeof(t->pin) || !xe_us_pin_valid(val, vlen))
                return XE_US_CORRUPT;
            memcpy(t->pin, val, vlen);
            t->pin[vlen] = '\0';
        } else if (IS("id")) {
            if (!us_tomb_id_valid(val, vlen))
                return XE_US_CORRUPT;
            memcpy(t->id, val, vlen);
            t->id[vlen] = '\0';
        } else if (IS("error")) {
            /* a long one is cut: it is only said */
            size_t n = vlen < sizeof(t->error) - 1 ? vlen : sizeof(t->error) - 1;
            memcpy(t->error, val, n);
            t->error[n] = '\0';
            for (char *q = t->error; *q; q++)
                if ((unsigned char)*q < 0x20)
                    *q = ' ';
        }
#undef IS
        p = nl + 1;
    }
    return v && deleted ? XE_US_OK : XE_US_CORRUPT;
}

/* Write T into the tombstones with TXN (a write transaction). */
static int
us_tomb_write(struct xe_userstore *store, MDB_txn *txn, const struct xe_tombstone *t,
              MDB_val *key, char **error_r)
{
    MDB_val data;
    char *rec = NULL;
    size_t len = 0;
    int r, rc;

    if ((r = xe_tombstone_encode(t, &rec, &len)) != XE_US_OK) {
        xe_us_error(error_r, "user store %s: cannot encode the tombstone of %s",
                    store->path, t->jid);
        return r;
    }
    data.mv_data = rec;
    data.mv_size = len;
    rc = mdb_put(txn, store->tdbi, key, &data, 0);
    free(rec);
    if (rc != 0)
        return xe_us_mdb_error(store, NULL, rc, "writing a tombstone", error_r);
    return XE_US_OK;
}

static int
us_bury_impl(struct xe_userstore *store, const struct xe_tombstone *t, char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key;
    int r, rc;

    if (store->readonly) {
        xe_us_error(error_r, "user store %s: opened read-only", store->path);
        return XE_US_INVALID;
    }
    if (xe_us_key(store, t->jid, &key) != 0)
        return XE_US_NOTFOUND;
    if ((r = xe_us_dbi(store, error_r)) != 0 || (r = xe_us_tdbi(store, error_r)) != 0)
        goto out;
    if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "mdb_txn_begin", error_r);
        goto out;
    }
    rc = mdb_del(txn, store->dbi, &key, NULL);
    if (rc == MDB_NOTFOUND) {
        r = XE_US_NOTFOUND;
        goto out;
    }
    if (rc != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "deleting a user", error_r);
        goto out;
    }
    if ((r = us_tomb_write(store, txn, t, &key, error_r)) != XE_US_OK)
        goto out;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    r = rc == 0 ? XE_US_OK
                : xe_us_mdb_error(store, NULL, rc, "committing a deletion", error_r);
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return r;
}

int
xe_userstore_tomb_get(struct xe_userstore *store, const char *jid, struct xe_tombstone *t,
                      char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_val key, data;
    int r, rc;

    if (xe_us_key(store, jid, &key) != 0)
        return XE_US_NOTFOUND;
    if ((r = xe_us_tdbi(store, error_r)) != 0)
        return r; /* XE_US_NOTFOUND: read-only and none was ever written */
    if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)) != 0)
        return xe_us_mdb_error(store, NULL, rc, "mdb_txn_begin", error_r);
    rc = mdb_get(txn, store->tdbi, &key, &data);
    if (rc == MDB_NOTFOUND)
        r = XE_US_NOTFOUND;
    else if (rc != 0)
        r = xe_us_mdb_error(store, NULL, rc, "reading a tombstone", error_r);
    else if ((r = xe_tombstone_decode(jid, data.mv_data, data.mv_size, t)) != XE_US_OK)
        xe_us_error(error_r, "user store %s: the tombstone of %s is corrupt", store->path,
                    jid);
    mdb_txn_abort(txn);
    return r;
}

struct us_tomb_update {
    const struct xe_tombstone *t;
    bool create;
};

static int
us_tomb_update_apply(struct xe_userstore *store, MDB_txn *txn, MDB_dbi dbi, MDB_val *key,
                     void *ctx, char **error_r)
{
    const struct us_tomb_update *u = ctx;
    const struct xe_tombstone *t = u->t;
    struct xe_tombstone *old = NULL;
    MDB_val data;
    int r, rc;

    rc = mdb_get(txn, dbi, key, &data);
    if (rc == MDB_NOTFOUND && !u->create) {
        r = XE_US_NOTFOUND;
        goto out;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = xe_us_mdb_error(store, NULL, rc, "reading a tombstone", error_r);
        goto out;
    }
    if (rc == 0) {
        /* an update of another deletion of the name (given up and deleted
         * again meanwhile) is not written; a copy without an id keeps the
         * record's */
        old = xe_calloc(1, sizeof(*old));
        if (xe_tombstone_decode(t->jid, data.mv_data, data.mv_size, old) == XE_US_OK) {
            if (!u->create && !xe_tombstone_same(old, t)) {
                r = XE_US_NOTFOUND;
                goto out;
            }
            if (t->id[0] == '\0' && xe_tombstone_same(old, t)) {
                struct xe_tombstone *c = xe_calloc(1, sizeof(*c));
                *c = *t;
                memcpy(c->id, old->id, sizeof(c->id));
                free(old);
                old = c;
                t = c;
            }
        }
    }
    r = us_tomb_write(store, txn, t, key, error_r);
out:
    free(old);
    return r;
}

static int
us_tomb_update_impl(struct xe_userstore *store, const struct xe_tombstone *t, bool create,
                    char **error_r)
{
    struct us_tomb_update u = {.t = t, .create = create};
    struct xe_us_keyed k = {.op = "writing a tombstone",
                            .commit = "committing a tombstone",
                            .apply = us_tomb_update_apply,
                            .ctx = &u};
    int r;

    if ((r = xe_us_writable(store, error_r)) != XE_US_OK)
        return r;
    if (xe_us_key(store, t->jid, &k.key) != 0)
        return XE_US_NOTFOUND;
    if ((r = xe_us_tdbi(store, error_r)) != 0)
        return r;
    k.dbi = store->tdbi;
    return xe_us_keyed_write(store, &k, error_r);
}

static int
us_tomb_del_impl(struct xe_userstore *store, const char *jid, char **error_r)
{
    struct xe_us_keyed k = {.op = "deleting a tombstone",
                            .commit = "committing a tombstone"};
    int r;

    if ((r = xe_us_writable(store, error_r)) != XE_US_OK)
        return r;
    if (xe_us_key(store, jid, &k.key) != 0)
        return XE_US_NOTFOUND;
    if ((r = xe_us_tdbi(store, error_r)) != 0)
        return r;
    k.dbi = store->tdbi;
    return xe_us_keyed_write(store, &k, error_r);
}

int
xe_userstore_tomb_foreach(struct xe_userstore *store, const char *domain,
                          int (*cb)(const struct xe_tombstone *t, void *ctx), void *ctx,
                          char **error_r)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val key, data;
    struct xe_tombstone *t = NULL;
    size_t dlen = domain != NULL ? strlen(domain) : 0;
    MDB_cursor_op op = MDB_FIRST;
    int r, rc;

    if ((r = xe_us_tdbi(store, error_r)) != 0) {
        if (r == XE_US_NOTFOUND)
            r = XE_US_OK; /* read-only and none was ever written */
        goto out;
    }
    r = XE_US_IO;
    if ((t = malloc(sizeof(*t))) == NULL) {
        xe_us_error(error_r, "user store %s: out of memory", store->path);
        goto out;
    }
    if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_cursor_open(txn, store->tdbi, &cur)) != 0) {
        r = xe_us_mdb_error(store, NULL, rc, "walking the tombstones", error_r);
        goto out;
    }
    for (;; op = MDB_NEXT) {
        char jid[sizeof(t->jid)];

        rc = mdb_cursor_get(cur, &key, &data, op);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc != 0) {
            r = xe_us_mdb_error(store, NULL, rc, "walking the tombstones", error_r);
            goto out;
        }
        if ((r = xe_us_key_jid(store, &key, domain, dlen, jid, sizeof(jid),
                               "a tombstone's key", error_r)) > 0)
            continue;
        if (r < 0)
            goto out;
        if ((r = xe_tombstone_decode(jid, data.mv_data, data.mv_size, t)) != XE_US_OK) {
            xe_us_error(error_r, "user store %s: the tombstone of %s is corrupt",
                        store->path, jid);
            goto out;
        }
        if (cb(t, ctx) != 0)
            break;
    }
    r = XE_US_OK;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    free(t);
    return r;
}

/* ---- the tombstone writes, through the write hooks ------------------- */

int
xe_userstore_bury(struct xe_userstore *store, const struct xe_tombstone *t,
                  char **error_r)
{
    struct xe_tombstone *c = NULL;
    int r = xe_userstore_hook_before(store, t->jid, error_r);

    if (r == XE_US_OK && t->id[0] == '\0') { /* this deletion's own stamp */
        c = xe_calloc(1, sizeof(*c));
        *c = *t;
        xe_random_id(c->id);
        t = c;
    }
    if (r == XE_US_OK && (r = us_bury_impl(store, t, error_r)) == XE_US_OK) {
        xe_userstore_hook_after(store, 't', t->jid);
        xe_userstore_hook_after(store, 'u', t->jid);
    }
    free(c);
    return r;
}

/* the purge's progress is not refused: it is queued */
int
xe_userstore_tomb_update(struct xe_userstore *store, const struct xe_tombstone *t,
                         char **error_r)
{
    int r = us_tomb_update_impl(store, t, false, error_r);
    if (r == XE_US_OK)
        xe_userstore_hook_after(store, 't', t->jid);
    return r;
}

int
xe_userstore_tomb_put(struct xe_userstore *store, const struct xe_tombstone *t,
                      char **error_r)
{
    int r = us_tomb_update_impl(store, t, true, error_r);
    if (r == XE_US_OK)
        xe_userstore_hook_after(store, 't', t->jid);
    return r;
}

int
xe_userstore_tomb_del(struct xe_userstore *store, const char *jid, char **error_r)
{
    int r = us_tomb_del_impl(store, jid, error_r);
    if (r == XE_US_OK)
        xe_userstore_hook_after(store, 't', jid);
    return r;
}
