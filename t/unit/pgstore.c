/* Unit tests of the several-nodes parts without a database: the row <-> record
 * conversion of pgstore.c (users with every field, tombstones, bad rows), the
 * schema's steps, and the shared account counts of lockout.c (what a node
 * shares, what it applies). TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockout.h"
#include "pgstore.h"
#include "userstore.h"
#include "tap.h"

static bool
same_user(const struct xe_user *a, const struct xe_user *b)
{
    char *ea = NULL, *eb = NULL;
    size_t la = 0, lb = 0;
    bool r = xe_user_encode(a, &ea, &la) == 0 && xe_user_encode(b, &eb, &lb) == 0 &&
             la == lb && memcmp(ea, eb, la) == 0;
    free(ea);
    free(eb);
    return r;
}

struct shared {
    int failures, forgets;
    char last[XE_LOCKOUT_KEY_MAX];
    unsigned threshold;
};

static void
share(void *ctx, const char *account, bool failed, const struct xe_lockout_conf *conf)
{
    struct shared *s = ctx;
    if (failed)
        s->failures++;
    else
        s->forgets++;
    snprintf(s->last, sizeof(s->last), "%s", account);
    s->threshold = conf->account_threshold;
}

int
main(void)
{
    struct xe_user *u = calloc(3, sizeof(*u)), *back = u + 1, *v = u + 2;
    char *vals[XE_PG_USER_COLS];
    const char *cv[XE_PG_USER_COLS];

    /* a user with every field */
    snprintf(u->jid, sizeof(u->jid), "alice@example.test");
    u->created = 1700000000;
    u->modified = 1700000100;
    u->disabled = true;
    snprintf(u->pin, sizeof(u->pin), "prosody-1");
    u->expires = 1800000000;
    ok(xe_user_set_password(u, "secret", 6, 4096) == 0, "user: password set");
    ok(xe_user_set_legacy(u, "secret", 6) == 0, "user: legacy secret kept");
    ok(xe_pg_user_to_row(u, vals) == 0, "user -> row");
    is_str(vals[0], "alice@example.test", "row: jid");
    is_str(vals[3], "true", "row: disabled as a boolean");
    is_str(vals[4], "prosody-1", "row: pin");
    is_str(vals[5], "1800000000", "row: expires");
    ok(vals[7] != NULL && strncmp(vals[7], "4096:", 5) == 0,
       "row: SCRAM-SHA-256 in the record's form");
    ok(vals[6] != NULL && vals[8] != NULL, "row: SCRAM-SHA-1 and -512 too");
    ok(vals[9] != NULL && vals[9][0] != '\0', "row: the legacy secret");
    is_str(vals[10], "", "row: no unknown lines");
    for (int i = 0; i < XE_PG_USER_COLS; i++)
        cv[i] = vals[i];
    ok(xe_pg_user_from_row(cv, back) == 0, "row -> user");
    ok(same_user(u, back), "the round trip gives the same record");
    ok(xe_user_check_password(back, "secret", 6), "... whose password checks");
    xe_pg_vals_free(vals, XE_PG_USER_COLS);

    /* a minimal user: no expiry, no pin, only SHA-256, not disabled */
    memset(v, 0, sizeof(*v));
    snprintf(v->jid, sizeof(v->jid), "bob@example.test");
    v->created = v->modified = 5;
    ok(xe_user_set_password(v, "pw", 2, 4096) == 0, "minimal user");
    v->scram[XE_SCRAM_SHA1].present = v->scram[XE_SCRAM_SHA512].present = false;
    ok(xe_pg_user_to_row(v, vals) == 0, "minimal user -> row");
    ok(vals[6] == NULL && vals[8] == NULL && vals[9] == NULL,
       "absent secrets are SQL NULL");
    is_str(vals[5], "0", "no expiry: 0");
    is_str(vals[3], "false", "not disabled");
    for (int i = 0; i < XE_PG_USER_COLS; i++)
        cv[i] = vals[i];
    ok(xe_pg_user_from_row(cv, back) == 0 && same_user(v, back), "minimal round trip");
    /* bad rows */
    cv[1] = NULL;
    ok(xe_pg_user_from_row(cv, back) == XE_US_CORRUPT, "a row without created: corrupt");
    cv[1] = vals[1];
    cv[7] = "4096:not base64:x:y";
    ok(xe_pg_user_from_row(cv, back) == XE_US_CORRUPT, "a bad secret: corrupt");
    cv[7] = vals[7];
    cv[10] = "future-field=1\n";
    ok(xe_pg_user_from_row(cv, back) == 0,
       "an unknown line from a newer version is accepted");
    xe_pg_vals_free(vals, XE_PG_USER_COLS);

    /* tombstones */
    struct xe_tombstone t = {0}, t2;
    char *tv[XE_PG_TOMB_COLS];
    const char *ctv[XE_PG_TOMB_COLS];
    snprintf(t.jid, sizeof(t.jid), "gone@example.test");
    t.deleted = 1700000000;
    snprintf(t.pin, sizeof(t.pin), "ejabberd-0");
    t.attempts = 3;
    t.next = 1700000400;
    snprintf(t.error, sizeof(t.error), "the backend refused the removal");
    ok(xe_pg_tomb_to_row(&t, tv) == 0, "tombstone -> row");
    for (int i = 0; i < XE_PG_TOMB_COLS; i++)
        ctv[i] = tv[i];
    ok(xe_pg_tomb_from_row(ctv, &t2) == 0 && memcmp(&t, &t2, sizeof(t)) == 0,
       "row -> the same tombstone");
    ctv[3] = "-1";
    ok(xe_pg_tomb_from_row(ctv, &t2) == XE_US_CORRUPT, "negative attempts: corrupt");
    ctv[3] = "x";
    ok(xe_pg_tomb_from_row(ctv, &t2) == XE_US_CORRUPT, "attempts not a number: corrupt");
    xe_pg_vals_free(tv, XE_PG_TOMB_COLS);

    /* the schema's steps */
    ok(xe_pg_migration(1) != NULL && strstr(xe_pg_migration(1), "xe_changes") != NULL,
       "step 1 makes the change log");
    ok(xe_pg_migration(XE_PG_SCHEMA_VERSION + 1) == NULL, "no step past the version");
    ok(strstr(xe_pg_migration(1), "pg_advisory_xact_lock") != NULL,
       "the trigger serialises the writers (sequence order = commit order)");
    ok(xe_pg_migration(2) != NULL && strstr(xe_pg_migration(2), "xe_tokens") != NULL &&
           strstr(xe_pg_migration(2), "xe_kick") != NULL &&
           strstr(xe_pg_migration(2), "xe_prune") != NULL,
       "step 2: the tokens, the kicks, the pruning's mark");
    ok(strstr(xe_pg_migration(2), "pg_advisory_xact_lock") != NULL,
       "step 2's writers to the log serialised too");
    ok(strstr(xe_pg_sql_pull, "xe_tokens") != NULL, "the pull joins the tokens");

    /* shared account counts */
    struct xe_lockout_conf c = {.free_failures = 0,
                                .delay_ms = 0,
                                .max_delay_ms = 0,
                                .address_threshold = 0,
                                .account_threshold = 3,
                                .lockout_ms = 60000,
                                .window_ms = 30000,
                                .max_entries = 100};
    struct xe_lockout *lo = xe_lockout_new(&c);
    struct shared s = {0};
    uint64_t left = 0;
    xe_lockout_set_share(lo, share, &s);
    xe_lockout_failure(lo, "10.0.0.1", "mallory@example.test", 1000);
    is_int(s.failures, 1, "a counted failure naming an account is shared");
    is_str(s.last, "mallory@example.test", "... with the account's key");
    is_int((int)s.threshold, 3, "... and the settings");
    xe_lockout_failure(lo, "10.0.0.1", "", 1001);
    is_int(s.failures, 1, "a failure naming no account is not");
    xe_lockout_success(lo, "carol@example.test", 1002);
    is_int(s.forgets, 0, "a success without failures writes nothing");
    xe_lockout_success(lo, "mallory@example.test", 1003);
    is_int(s.forgets, 1, "a success after failures forgets them everywhere");
    /* what another node counted */
    xe_lockout_apply_account(lo, "eve@example.test", 3, 50000, 2000);
    ok(xe_lockout_check(lo, "10.0.0.9", "eve@example.test", 2001, &left),
       "an account locked on another node is refused here");
    ok(left > 49000 && left <= 50000, "... for what is left of the lockout (%llu ms)",
       (unsigned long long)left);
    xe_lockout_apply_account(lo, "eve@example.test", 1, 0, 2002);
    ok(xe_lockout_check(lo, "10.0.0.9", "eve@example.test", 2003, NULL),
       "an older row does not end the lockout early");
    xe_lockout_apply_account(lo, "eve@example.test", 0, 0, 2004);
    ok(!xe_lockout_check(lo, "10.0.0.9", "eve@example.test", 2005, NULL),
       "a deleted row (a success elsewhere) forgets the account");
    is_int(s.failures + s.forgets, 2, "what is applied is not shared again");
    xe_lockout_free(&lo);
    free(u);
    return tap_done();
}
