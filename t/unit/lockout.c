/* Unit tests: brute-force protection (src/core/lockout.h) and the control socket's
 * commands (src/core/ctlcmd.h). No sockets, no clock: time is given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlcmd.h"
#include "lockout.h"
#include "log.h"
#include "tap.h"

static int last_failed;
static bool
ok_last(void)
{
    bool r = tap_failed == last_failed;
    last_failed = tap_failed;
    return r;
}

static const struct xe_lockout_conf base_conf = {
    .free_failures = 2,
    .delay_ms = 100,
    .max_delay_ms = 1000,
    .address_threshold = 10,
    .account_threshold = 20,
    .lockout_ms = 60000,
    .window_ms = 30000,
    .max_entries = 1000,
};

static void
test_delays(void)
{
    struct xe_lockout *lo = xe_lockout_new(&base_conf);
    unsigned want[] = {0, 0, 100, 200, 400, 800, 1000, 1000};
    bool same = true;

    for (int i = 0; i < 8; i++) {
        unsigned d = xe_lockout_failure(lo, "192.0.2.1", "alice@example.org", 1000 + i);
        if (d != want[i]) {
            same = false;
            printf("# failure %d: delay %u, want %u\n", i + 1, d, want[i]);
        }
    }
    ok(same, "delays: free, then doubling from delay_ms up to max_delay_ms");
    is_int(xe_lockout_delay(lo, "192.0.2.1", NULL, 2000), 1000,
           "delay: an uncounted attempt gets the current delay of its address");
    is_int(xe_lockout_delay(lo, "192.0.2.99", "bob@example.org", 2000), 0,
           "delay: other keys owe nothing");
    /* unknown and known accounts are keys alike: the same failures give the
     * same delays (the table never learns whether an account exists) */
    for (int i = 0; i < 5; i++)
        xe_lockout_failure(lo, NULL, "nosuchuser@example.org", 3000);
    for (int i = 0; i < 5; i++)
        xe_lockout_failure(lo, NULL, "carol@example.org", 3000);
    is_int(xe_lockout_delay(lo, NULL, "nosuchuser@example.org", 3000),
           xe_lockout_delay(lo, NULL, "carol@example.org", 3000),
           "delay: the same for any account name");
    /* the window: quiet for window_ms, the count is forgotten */
    is_int(xe_lockout_failure(lo, "192.0.2.1", NULL, 1007 + 30000), 0,
           "window: after window_ms of quiet the count starts again");
    /* success forgets the account, not the address */
    xe_lockout_failure(lo, "198.51.100.1", "dave@example.org", 50000);
    xe_lockout_failure(lo, "198.51.100.1", "dave@example.org", 50000);
    xe_lockout_success(lo, "dave@example.org", 50001);
    is_int(xe_lockout_failure(lo, NULL, "dave@example.org", 50002), 0,
           "success: the account's count is forgotten");
    is_int(xe_lockout_failure(lo, "198.51.100.1", NULL, 50002), 100,
           "success: the address keeps its count");
    xe_lockout_free(&lo);
}

static void
test_lockout(void)
{
    struct xe_lockout *lo = xe_lockout_new(&base_conf);
    struct xe_lockout_stats st;
    uint64_t left = 0;
    int i;

    for (i = 0; i < 9; i++) {
        char acc[32];
        snprintf(acc, sizeof(acc), "u%d@example.org", i);
        xe_lockout_failure(lo, "192.0.2.7", acc, 1000);
    }
    ok(!xe_lockout_check(lo, "192.0.2.7", "x@example.org", 1000, NULL),
       "below the address threshold: not refused");
    xe_lockout_failure(lo, "192.0.2.7", "u9@example.org", 1000);
    ok(xe_lockout_check(lo, "192.0.2.7", "x@example.org", 1001, &left),
       "address threshold: refused, whatever the account");
    is_int((long long)left, 59999, "remaining time of the lockout");
    ok(!xe_lockout_check(lo, "192.0.2.8", "x@example.org", 1001, NULL),
       "another address is not refused");
    ok(!xe_lockout_check(lo, "2001:db8:1:2::/64", NULL, 1001, NULL),
       "nor an IPv6 prefix");
    ok(xe_lockout_check(lo, "192.0.2.7", NULL, 60999, NULL), "still locked at the end");
    ok(!xe_lockout_check(lo, "192.0.2.7", NULL, 61000, NULL),
       "lockout_ms later: allowed again");
    is_int(xe_lockout_failure(lo, "192.0.2.7", NULL, 61001), 0,
           "after a lockout the count starts again");

    /* an account from many addresses */
    for (i = 0; i < 19; i++) {
        char a[32];
        snprintf(a, sizeof(a), "203.0.113.%d", i + 1);
        xe_lockout_failure(lo, a, "victim@example.org", 2000);
    }
    ok(!xe_lockout_check(lo, "203.0.113.200", "victim@example.org", 2000, NULL),
       "below the account threshold: not refused");
    xe_lockout_failure(lo, "203.0.113.100", "victim@example.org", 2000);
    ok(xe_lockout_check(lo, "203.0.113.200", "victim@example.org", 2000, NULL),
       "account threshold: refused from any address");
    ok(!xe_lockout_check(lo, "203.0.113.200", "other@example.org", 2000, NULL),
       "other accounts from that address: not refused");
    xe_lockout_success(lo, "victim@example.org", 2001);
    ok(xe_lockout_check(lo, NULL, "victim@example.org", 2002, NULL),
       "a success does not lift a lockout");

    xe_lockout_get_stats(lo, 2002, &st);
    is_int((long long)st.lockouts, 2, "stats: two lockouts");
    ok(st.refused >= 3, "stats: refusals counted (%llu)", (unsigned long long)st.refused);
    is_int((long long)xe_lockout_clear(lo, "victim@example.org"), 1, "clear: one entry");
    ok(!xe_lockout_check(lo, NULL, "victim@example.org", 2003, NULL),
       "clear: the account may try again");
    is_int((long long)xe_lockout_clear(lo, "victim@example.org"), 0, "clear: gone");
    ok(xe_lockout_clear_all(lo) > 0, "clear --all");
    xe_lockout_get_stats(lo, 2003, &st);
    is_int((long long)st.entries, 0, "nothing left");

    {
        struct xe_lockout_conf c = base_conf;
        c.address_threshold = 0;
        c.account_threshold = 0;
        xe_lockout_free(&lo);
        lo = xe_lockout_new(&c);
        for (i = 0; i < 100; i++)
            xe_lockout_failure(lo, "192.0.2.1", "a@example.org", 1000);
        ok(!xe_lockout_check(lo, "192.0.2.1", "a@example.org", 1000, NULL),
           "thresholds 0: never locked out");
        is_int(xe_lockout_delay(lo, "192.0.2.1", NULL, 1000), 1000,
               "thresholds 0: still delayed");
    }
    xe_lockout_free(&lo);
}

static int
count_cb(void *ctx, const struct xe_lockout_info *e)
{
    (void)e;
    (*(size_t *)ctx)++;
    return 0;
}

/* A reload: the next failures follow the new settings, the counts stay. */
static void
test_reconfigure(void)
{
    struct xe_lockout *lo = xe_lockout_new(&base_conf);
    struct xe_lockout_conf c = base_conf;

    for (int i = 0; i < 5; i++)
        xe_lockout_failure(lo, "192.0.2.50", NULL, 1000);
    ok(!xe_lockout_check(lo, "192.0.2.50", NULL, 1000, NULL),
       "reconfigure: 5 failures, below the threshold of 10");
    c.address_threshold = 6;
    c.delay_ms = 0;
    xe_lockout_reconfigure(lo, &c);
    is_int(xe_lockout_failure(lo, "192.0.2.50", NULL, 1001), 0,
           "reconfigure: delay_ms 0, no delay any more");
    ok(xe_lockout_check(lo, "192.0.2.50", NULL, 1002, NULL),
       "reconfigure: the sixth failure locks out under the new threshold");
    xe_lockout_free(&lo);
}

static void
test_bounded(void)
{
    struct xe_lockout_conf c = base_conf;
    struct xe_lockout *lo;
    struct xe_lockout_stats st;
    size_t n = 0;
    char a[64];

    c.max_entries = 100;
    lo = xe_lockout_new(&c);
    /* the victim's account is locked; then a flood of addresses */
    for (int i = 0; i < 20; i++)
        xe_lockout_failure(lo, "192.0.2.1", "victim@example.org", 1000);
    for (int i = 0; i < 100000; i++) {
        snprintf(a, sizeof(a), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        xe_lockout_failure(lo, a, NULL, 2000 + (uint64_t)i / 100);
    }
    xe_lockout_get_stats(lo, 3000, &st);
    ok(st.entries <= 2 * 100, "flood: the table stays bounded (%zu entries)", st.entries);
    ok(st.evicted > 0, "flood: evictions are counted (%llu)",
       (unsigned long long)st.evicted);
    ok(xe_lockout_check(lo, NULL, "victim@example.org", 3000, NULL),
       "flood of addresses: the accounts' table is untouched");
    xe_lockout_foreach(lo, 3000, count_cb, &n);
    is_int((long long)n, (long long)st.entries, "foreach sees every entry");
    /* long after: everything expires */
    xe_lockout_failure(lo, "192.0.2.200", NULL, 1000000);
    for (int i = 0; i < 100; i++)
        xe_lockout_check(lo, "192.0.2.200", "victim@example.org", 1000000, NULL);
    xe_lockout_get_stats(lo, 1000000, &st);
    ok(st.entries <= 2, "quiet entries expire (%zu left)", st.entries);
    xe_lockout_free(&lo);
}

static void
test_keys(void)
{
    char k[XE_LOCKOUT_KEY_MAX], big[1000];
    static const char plain[] = "\0Alice\0secret";
    static const char plain_z[] = "bob@example.org\0bob@Example.ORG\0pw";
    static const char scram[] = "n,,n=carol,r=abcdef";
    static const char scram_esc[] = "y,a=x,n=a=2Cb=3Dc@example.org,r=1";
    static const char scram_m[] = "p=tls-exporter,,m=ext,n=dave,r=1";
    static const char digest[] = "charset=utf-8,username=\"erin\",realm=\"Example.org\","
                                 "nonce=\"a,b\",cnonce=\"x\"";
    static const char cram[] = "frank 0123456789abcdef";

    xe_lockout_sasl_account("PLAIN", plain, sizeof(plain) - 1, "example.org", k);
    is_str(k, "alice@example.org", "PLAIN: the authcid, lower-cased, with the domain");
    xe_lockout_sasl_account("PLAIN", plain_z, sizeof(plain_z) - 1, "example.org", k);
    is_str(k, "bob@example.org", "PLAIN: the authcid, not the authzid");
    xe_lockout_sasl_account("SCRAM-SHA-256", scram, strlen(scram), "example.org", k);
    is_str(k, "carol@example.org", "SCRAM: n=");
    xe_lockout_sasl_account("SCRAM-SHA-1-PLUS", scram_esc, strlen(scram_esc),
                            "example.org", k);
    is_str(k, "a,b%3Dc@example.org", "SCRAM: =2C and =3D decoded, '=' escaped");
    xe_lockout_sasl_account("SCRAM-SHA-256-PLUS", scram_m, strlen(scram_m), "example.org",
                            k);
    is_str(k, "dave@example.org", "SCRAM: after m= and a channel binding header");
    xe_lockout_sasl_account("DIGEST-MD5", digest, strlen(digest), "example.org", k);
    is_str(k, "erin@example.org", "DIGEST-MD5: username and realm");
    xe_lockout_sasl_account("CRAM-MD5", cram, strlen(cram), "example.org", k);
    is_str(k, "frank@example.org", "CRAM-MD5: the user");
    xe_lockout_sasl_account("SCRAM-SHA-256", "n,,r=x", 6, "example.org", k);
    is_str(k, "", "SCRAM without n=: none");
    xe_lockout_sasl_account("PLAIN", "garbage", 7, "example.org", k);
    is_str(k, "", "PLAIN without NULs: none");
    xe_lockout_sasl_account("EXTERNAL", "", 0, "example.org", k);
    is_str(k, "", "EXTERNAL: none");
    xe_lockout_account_key("a b\"\\%\n\xc3\xa9@x", 11, k);
    is_str(k, "a%20b%22%5C%25%0A%C3%A9@x", "keys: unsafe bytes are escaped");
    {
        char k2[XE_LOCKOUT_KEY_MAX];
        xe_lockout_account_key("Stra\xc3\x9f"
                               "e@Example.ORG",
                               19, k);
        xe_lockout_account_key("STRASSE@example.org", 19, k2);
        ok(strcmp(k, k2) == 0 && strcmp(k, "strasse@example.org") == 0,
           "keys: the forms nodeprep folds together are one account (%s, %s)", k, k2);
    }
    memset(big, 'a', sizeof(big));
    xe_lockout_account_key(big, sizeof(big), k);
    is_int((long long)strlen(k), XE_LOCKOUT_KEY_MAX - 1, "keys: bounded");
}

static bool reload_fails;
static int fake_reload(void *ctx, unsigned long *generation_r, char **error_r);

static void
test_commands(void)
{
    struct xe_lockout *lo = xe_lockout_new(&base_conf);
    struct xe_ctlcmd_env env = {.lockout = lo, .now_ms = 5000};
    struct xe_buf out;
    char big[2000];

    last_failed = tap_failed;
    for (int i = 0; i < 10; i++)
        xe_lockout_failure(lo, "192.0.2.9", "eve@example.org", 4000);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "lockout list", 12, &out), 0, "command: lockout list");
    xe_buf_append(&out, "", 1);
    ok(strncmp((const char *)out.data, "ok\n", 3) == 0, "list: ok first");
    ok(strstr((const char *)out.data,
              "entry kind=address key=192.0.2.9 failures=10 locked=yes "
              "remaining_ms=59000 lockouts=1\n") != NULL,
       "list: the locked address");
    ok(strstr((const char *)out.data,
              "entry kind=account key=eve@example.org failures=10 locked=no") != NULL,
       "list: the account, not locked");
    ok(strstr((const char *)out.data,
              "stats entries=2 locked=1 failures=10 lockouts=1 ") != NULL,
       "list: the totals");
    if (!ok_last())
        printf("# %s", (const char *)out.data);
    xe_buf_free(&out);

    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "lockout clear 192.0.2.9", 23, &out), 0,
           "command: lockout clear KEY");
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "ok\ncleared=1\n", "clear: answer");
    xe_buf_free(&out);

    xe_buf_init(&out, 0);
    xe_ctlcmd_run(&env, "lockout clear --all", 19, &out);
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "ok\ncleared=1\n",
           "clear --all: the account was left");
    xe_buf_free(&out);

    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "lockout clear", 13, &out), -1, "clear without a key");
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "error usage: lockout clear KEY|--all\n", "usage");
    xe_buf_free(&out);

    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "sessions", 8, &out), -1, "unknown command");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "lockout\x01 list", 13, &out), -1, "control characters");
    xe_buf_free(&out);
    memset(big, 'a', sizeof(big));
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, big, sizeof(big), &out), -1, "request too long");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "help", 4, &out), 0, "help");
    xe_buf_free(&out);
    env.lockout = NULL;
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "lockout list", 12, &out), -1, "no table: an error");
    xe_buf_free(&out);
    xe_lockout_free(&lo);

    /* reload: the daemon's answer, on one line */
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "reload", 6, &out), -1,
           "reload: unavailable without a hook");
    xe_buf_free(&out);
    env.reload = fake_reload;
    reload_fails = false;
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "reload", 6, &out), 0, "reload: ok");
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "ok\nreload result=ok generation=7\n",
           "reload: the new generation");
    xe_buf_free(&out);
    reload_fails = true;
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "reload", 6, &out), -1, "reload: refused");
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "error x.conf:3: bad value\n",
           "reload: the error, control characters blanked");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "reload now", 10, &out), -1, "reload takes no argument");
    xe_buf_free(&out);
}

/* The backend commands, on a fake server of two backends. */
static bool drained[2];

static void
fake_backends(void *srv, struct xe_buf *out)
{
    (void)srv;
    for (int i = 0; i < 2; i++)
        xe_buf_appendf(out, "backend name=b%d state=%s\n", i,
                       drained[i] ? "draining" : "up");
}

static size_t
fake_drain(void *srv, const char *name, bool drain)
{
    (void)srv;
    for (int i = 0; i < 2; i++)
        if (name[0] == 'b' && name[1] == '0' + i && name[2] == '\0') {
            drained[i] = drain;
            return 1;
        }
    return 0;
}

static void
test_backend_commands(void)
{
    struct xe_ctlcmd_env env = {.now_ms = 0};
    struct xe_buf out;

    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "backend list", 12, &out), -1,
           "backend list: unavailable without a hook");
    xe_buf_free(&out);
    env.backends = fake_backends;
    env.drain = fake_drain;
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "backend drain b1", 16, &out), 0, "backend drain b1");
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "ok\ndraining=1\n", "... draining=1");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    xe_ctlcmd_run(&env, "backend list", 12, &out);
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data,
           "ok\nbackend name=b0 state=up\nbackend name=b1 state=draining\n",
           "backend list: the server's lines");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "backend undrain b1", 18, &out), 0, "backend undrain b1");
    ok(!drained[1], "... undrained");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "backend drain b7", 16, &out), -1,
           "drain: no such server");
    xe_buf_append(&out, "", 1);
    is_str((const char *)out.data, "error no backend server of that name\n",
           "... the error");
    xe_buf_free(&out);
    xe_buf_init(&out, 0);
    is_int(xe_ctlcmd_run(&env, "backend drain", 13, &out), -1, "drain without a name");
    xe_buf_free(&out);
}

/* A reload that changes nothing: generation 7, or an error. */
static int
fake_reload(void *ctx, unsigned long *generation_r, char **error_r)
{
    (void)ctx;
    if (reload_fails) {
        *error_r = xe_strdup("x.conf:3: bad\nvalue");
        return -1;
    }
    *generation_r = 7;
    return 0;
}

static char audited[512];
static unsigned n_audits, n_ended;

static void
fake_audit(void *ctx, const char *action, const char *jid, const char *detail)
{
    (void)ctx;
    n_audits++;
    snprintf(audited, sizeof(audited), "action=%s jid=%s uid=1000 pid=7%s", action, jid,
             detail);
}

static size_t
fake_end_account(void *srv, const char *jid, const char *reason)
{
    (void)srv;
    (void)jid;
    (void)reason;
    n_ended++;
    return 1;
}

/* "admin": what xedgectl sends is taken; a detail that would add a field
 * of the audit line's own (uid=, action=, jid=...) or a JID that is not
 * one is refused, and nothing is logged or ended. */
static void
test_admin(void)
{
    struct xe_ctlcmd_env env = {
        .now_ms = 0, .audit = fake_audit, .end_account = fake_end_account};
    static const char *const good[] = {
        "admin user-add alice@example.test legacy_mechs=no",
        "admin user-del alice@example.test end=removed purge=pending",
        "admin user-pin alice@example.test pin=prosody-1",
        "admin user-import - added=3 replaced=0 kept=1 failed=0", NULL};
    static const char *const bad[] = {
        "admin user-del alice@example.test uid=0",
        "admin user-del alice@example.test pid=1 purge=pending",
        "admin user-del alice@example.test action=user-add",
        "admin user-del alice@example.test jid=bob@example.test",
        "admin user-del alice@example.test event=admin",
        "admin user-del alice@example.test ended=5",
        "admin user-del alice@example.test level=error",
        "admin user-pin alice@example.test pin=a=b",
        "admin user-pin alice@example.test pin='x'",
        "admin user-del alice@example.test\"uid=0 end=removed",
        "admin user-del a'b@example.test end=removed",
        "admin user-del ALICE@example.test end=removed",
        "admin user-del alice@exa=mple.test end=removed",
        "admin user-del alice@example.test\xff end=removed",
        NULL};
    struct xe_buf out;

    for (int i = 0; good[i]; i++) {
        xe_buf_init(&out, 0);
        n_audits = 0;
        is_int(xe_ctlcmd_run(&env, good[i], strlen(good[i]), &out), 0, "admin: %s",
               good[i]);
        is_int(n_audits, 1, "... audited (%s)", audited);
        xe_buf_free(&out);
    }
    for (int i = 0; bad[i]; i++) {
        xe_buf_init(&out, 0);
        n_audits = n_ended = 0;
        is_int(xe_ctlcmd_run(&env, bad[i], strlen(bad[i]), &out), -1, "admin refused: %s",
               bad[i]);
        ok(n_audits == 0 && n_ended == 0, "... nothing audited or ended");
        xe_buf_free(&out);
    }
}

int
main(void)
{
    xe_log_level = XE_LOG_ERROR;
    test_delays();
    test_lockout();
    test_reconfigure();
    test_bounded();
    test_keys();
    test_commands();
    test_backend_commands();
    test_admin();
    return tap_done();
}
