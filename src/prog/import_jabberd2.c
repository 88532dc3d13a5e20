/* xedge: users from jabberd2's SQLite authreg. See import_jabberd2.h. */
#include "import_jabberd2.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "util.h"

#define BUSY_TIMEOUT_MS 5000

/* A modular crypt(3) hash: $1$ (MD5), $2a$/$2b$/$2y$ (bcrypt), $5$
 * (SHA-256), $6$ (SHA-512), $y$ (yescrypt). (A DES crypt hash, 13 characters
 * of [./0-9A-Za-z], cannot be told from a password of that shape: a database
 * kept with <crypt/> and DES hashes must not be imported.) */
static const char *
crypt_kind(const char *pw)
{
    static const struct {
        const char *prefix, *name;
    } kinds[] = {{"$1$", "MD5-crypt"}, {"$2a$", "bcrypt"},       {"$2b$", "bcrypt"},
                 {"$2y$", "bcrypt"},   {"$5$", "SHA-256-crypt"}, {"$6$", "SHA-512-crypt"},
                 {"$y$", "yescrypt"}};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strncmp(pw, kinds[i].prefix, strlen(kinds[i].prefix)) == 0 &&
            strchr(pw + strlen(kinds[i].prefix), '$') != NULL)
            return kinds[i].name;
    return NULL;
}

static const char *
text(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

int
xe_import_jabberd2(struct xe_import_sink *sink, const char *path, const char *domain)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct xe_user *u = xe_calloc(1, sizeof(*u));
    char *uri = NULL;
    sqlite3_int64 total = 0, done = 0;
    const char *why = "";
    int r = 1, rc;

    /* read-only, and never a journal or a new file next to the database */
    uri = sqlite3_mprintf("file:%q?mode=ro", path);
    rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK) {
        xe_import_note(sink, "%s: cannot open the database: %s", path,
                       db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM authreg", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        xe_import_note(sink,
                       "%s: no authreg table (%s): is it jabberd2's authreg database "
                       "(c2s.xml <authreg><sqlite><dbname>)?",
                       path, sqlite3_errmsg(db));
        goto out;
    }
    total = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(
            db,
            "SELECT rowid, username, realm, password FROM authreg ORDER BY "
            "rowid",
            -1, &st, NULL) != SQLITE_OK) {
        xe_import_note(sink, "%s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *user = text(st, 1), *realm = text(st, 2), *pw = text(st, 3), *kind;
        char where[PATH_MAX + 64];
        int pr;

        done++;
        snprintf(where, sizeof(where), "%s: authreg row %lld", path,
                 (long long)sqlite3_column_int64(st, 0));
        memset(u, 0, sizeof(*u));
        if (realm == NULL || realm[0] == '\0')
            realm = domain;
        if (user == NULL || user[0] == '\0' || realm == NULL) {
            xe_import_refuse(sink, where, "user %s@%s: %s; not imported",
                             user != NULL ? user : "(null)", realm != NULL ? realm : "",
                             realm == NULL ? "an empty realm (give --domain D)"
                                           : "no username");
            goto next;
        }
        if (strlen(user) + strlen(realm) + 2 > sizeof(u->jid)) {
            xe_import_refuse(sink, where,
                             "user %.64s...: the JID is too long; not imported", user);
            goto next;
        }
        memcpy(u->jid, user, strlen(user));
        u->jid[strlen(user)] = '@';
        memcpy(u->jid + strlen(user) + 1, realm, strlen(realm) + 1);
        if (xe_jid_normalize(u->jid, sizeof(u->jid), &why) != XE_US_OK) {
            xe_import_refuse(sink, where, "%s@%s is not a valid JID (%s); not imported",
                             user, realm, why);
            goto next;
        }
        if (pw == NULL || pw[0] == '\0') {
            xe_import_refuse(sink, where, "user %s: no password; not imported", u->jid);
            goto next;
        }
        if ((kind = crypt_kind(pw)) != NULL) {
            xe_import_refuse(sink, where,
                             "user %s: the password is a %s hash, which cannot be turned "
                             "into SCRAM secrets; not imported (set a new password with "
                             "xedgectl user add)",
                             u->jid, kind);
            goto next;
        }
        if (xe_import_set_password(sink, u, pw, strlen(pw)) != 0) {
            xe_import_refuse(sink, where,
                             "user %s: the password is longer than %zu bytes; "
                             "not imported",
                             u->jid, sizeof(u->legacy_password) - 1);
            goto next;
        }
        u->created = u->modified = xe_now_seconds();
        if ((pr = xe_import_put(sink, u, where)) < 0) {
            r = pr;
            goto out;
        }
    next:
        xe_import_progress(sink, (uint64_t)done, (uint64_t)total);
    }
    if (rc != SQLITE_DONE) {
        xe_import_note(sink, "%s: reading the authreg table failed: %s", path,
                       sqlite3_errmsg(db));
        goto out;
    }
    r = 0;
out:
    if (st != NULL)
        sqlite3_finalize(st);
    if (db != NULL)
        sqlite3_close(db);
    sqlite3_free(uri);
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    return r;
}
