/* Unit tests of the SASL adapter (src/core/sasl.h): a real LMDB store in a
 * temporary directory, the real Cyrus SASL server through the adapter, and
 * Cyrus' own client for SCRAM-SHA-1, SCRAM-SHA-256 and PLAIN. TAP output. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sasl/sasl.h>

#include "sasl.h"
#include "sasl_rand.h"
#include "userstore.h"
#include "tap.h"

#define CB(f) ((int (*)(void))(void *)(f))

/* ---- Cyrus' client ---------------------------------------------------------- */

struct creds {
    const char *authname, *authzid, *pass;
    sasl_secret_t *secret;
};

static int
cb_simple(void *ctx, int id, const char **result, unsigned *len)
{
    struct creds *c = ctx;
    const char *v = NULL;

    if (id == SASL_CB_AUTHNAME)
        v = c->authname;
    else if (id == SASL_CB_USER)
        v = c->authzid ? c->authzid : "";
    else
        return SASL_BADPARAM;
    *result = v;
    if (len)
        *len = (unsigned)strlen(v);
    return SASL_OK;
}

static int
cb_pass(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
    struct creds *c = ctx;
    size_t l = strlen(c->pass);

    (void)conn;
    if (id != SASL_CB_PASS)
        return SASL_BADPARAM;
    free(c->secret);
    c->secret = calloc(1, sizeof(sasl_secret_t) + l + 1);
    c->secret->len = (unsigned long)l;
    memcpy(c->secret->data, c->pass, l);
    *psecret = c->secret;
    return SASL_OK;
}

static int
cb_realm(void *ctx, int id, const char **avail, const char **result)
{
    (void)ctx;
    (void)id;
    *result = avail && avail[0] ? avail[0] : "example.test";
    return SASL_OK;
}

struct outcome {
    int r;                  /* XE_SASL_OK / _FAIL / ... */
    enum xe_sasl_cond cond; /* when FAIL */
    char server_first[512]; /* the first challenge */
    int client_final;       /* Cyrus client's verdict on the success data */
    int rounds;
    int client_start; /* sasl_client_start's result */
};

/* Authenticate with Cyrus' client against the adapter. */
static struct outcome
run_auth(struct xe_sasl *s, const char *mech, const char *authname, const char *authzid,
         const char *pass)
{
    struct creds c = {authname, authzid, pass, NULL};
    sasl_callback_t cbs[] = {
        {SASL_CB_AUTHNAME, CB(cb_simple), &c}, {SASL_CB_USER, CB(cb_simple), &c},
        {SASL_CB_PASS, CB(cb_pass), &c},       {SASL_CB_GETREALM, CB(cb_realm), &c},
        {SASL_CB_LIST_END, NULL, NULL},
    };
    struct outcome o;
    sasl_conn_t *cc = NULL;
    sasl_security_properties_t sp;
    const char *cout = NULL, *sout = NULL, *chosen = NULL;
    unsigned coutlen = 0;
    size_t soutlen = 0;
    int cr;

    memset(&o, 0, sizeof(o));
    o.r = -99;
    o.client_final = -99;
    cr = sasl_client_new("xmpp", "example.test", NULL, NULL, cbs, 0, &cc);
    if (cr != SASL_OK) {
        printf("# sasl_client_new: %s\n", sasl_errstring(cr, NULL, NULL));
        o.client_start = cr;
        return o;
    }
    memset(&sp, 0, sizeof(sp));
    sp.max_ssf = 0;
    sasl_setprop(cc, SASL_SEC_PROPS, &sp);
    cr = sasl_client_start(cc, mech, NULL, &cout, &coutlen, &chosen);
    o.client_start = cr;
    if (cr != SASL_OK && cr != SASL_CONTINUE) {
        printf("# sasl_client_start(%s): %s\n", mech, sasl_errdetail(cc));
        goto out;
    }
    o.r = xe_sasl_start(s, mech, cout, coutlen, &sout, &soutlen, &o.cond);
    while (o.r == XE_SASL_CONTINUE && o.rounds < 10) {
        if (o.rounds == 0)
            snprintf(o.server_first, sizeof(o.server_first), "%.*s", (int)soutlen, sout);
        o.rounds++;
        cr = sasl_client_step(cc, sout, (unsigned)soutlen, NULL, &cout, &coutlen);
        if (cr != SASL_OK && cr != SASL_CONTINUE) {
            printf("# client step: %s\n", sasl_errdetail(cc));
            o.r = -98;
            goto out;
        }
        o.r = xe_sasl_step(s, cout, coutlen, &sout, &soutlen, &o.cond);
    }
    if (o.r == XE_SASL_OK) {
        if (soutlen > 0)
            o.client_final =
                sasl_client_step(cc, sout, (unsigned)soutlen, NULL, &cout, &coutlen);
        else
            o.client_final = SASL_OK - 1000; /* no success data */
    }
out:
    sasl_dispose(&cc);
    free(c.secret);
    return o;
}

/* ---- fixtures ------------------------------------------------------------------ */

static struct xe_userstore *store;

static void
add_user(const char *jid, const char *pw, bool disabled)
{
    struct xe_user u;
    char *err = NULL;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "%s", jid);
    u.disabled = disabled;
    ok(xe_user_set_password(&u, pw, strlen(pw), 4096) == XE_US_OK, "set password of %s",
       jid);
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "store %s%s%s", jid,
       err ? ": " : "", err ? err : "");
    free(err);
}

/* The server nonce of SCRAM, DIGEST-MD5 and CRAM-MD5 comes from OpenSSL's
 * DRBG (sasl_rand.c), not from Cyrus's per-connection jrand48 pool (seeded
 * by an open of /dev/urandom per connection): the mechanisms are
 * registered wrapped, and each start draws its nonce through the wrapper. */
static const char *
server_nonce(struct xe_sasl *s, const char *mech, char *buf, size_t max)
{
    const char *out = NULL;
    size_t outlen = 0;
    enum xe_sasl_cond cond = XE_SASL_ABORTED;
    const char *first = "n,,n=alice,r=abcdefghijklmnop";
    int r = xe_sasl_start(s, mech, first, strlen(first), &out, &outlen, &cond);

    buf[0] = '\0';
    if (r == XE_SASL_CONTINUE && outlen > 20 &&
        strncmp(out, "r=abcdefghijklmnop", 18) == 0)
        snprintf(buf, max, "%.*s", (int)strcspn(out + 18, ","), out + 18);
    return buf;
}

#define SRV XE_SASL_RAND_SERVER
#define CLI XE_SASL_RAND_CLIENT

/* The client nonce of xedge's own client (server-to-server with a
 * pre-shared secret, xe_sasl_client_*) from its client-first message. */
static const char *
client_nonce(const char *mech, char *buf, size_t max)
{
    static const unsigned char secret[] = "peer-secret";
    struct xe_sasl_client *c =
        xe_sasl_client_new("a.test", "b.test", secret, sizeof(secret) - 1, NULL);
    const char *out = NULL, *r = NULL;
    char first[256];
    size_t outlen = 0;

    buf[0] = '\0';
    if (c && xe_sasl_client_start(c, mech, &out, &outlen) == XE_SASL_CONTINUE && out &&
        outlen < sizeof(first)) {
        memcpy(first, out, outlen);
        first[outlen] = '\0';
        r = strstr(first, ",r=");
    }
    if (r)
        snprintf(buf, max, "%.*s", (int)strcspn(r + 3, ","), r + 3);
    xe_sasl_client_free(&c);
    return buf;
}

/* A whole exchange between xedge's client and xedge's server for a peer
 * with a pre-shared secret, both wrapped: XE_SASL_OK on both sides (the
 * client checks the server's success data); the bytes each half drew. */
static int
peer_exchange(const char *mech, uint64_t *srv_bytes, uint64_t *cli_bytes)
{
    static const unsigned char secret[] = "peer-secret";
    char *mechs[] = {(char *)mech}, *err = NULL, *cerr = NULL;
    uint64_t s0 = xe_sasl_rand_bytes(SRV), c0 = xe_sasl_rand_bytes(CLI);
    struct xe_sasl *srv =
        xe_sasl_new_peer("b.test", "a.test", secret, sizeof(secret) - 1, mechs, 1, &err);
    struct xe_sasl_client *c =
        xe_sasl_client_new("a.test", "b.test", secret, sizeof(secret) - 1, &cerr);
    const char *out = NULL, *sout = NULL;
    size_t outlen = 0, soutlen = 0;
    enum xe_sasl_cond cond = XE_SASL_ABORTED;
    int r = XE_SASL_FAIL, sr = XE_SASL_FAIL, rounds = 0;

    if (srv == NULL || c == NULL) {
        printf("# peer_exchange(%s): %s %s\n", mech, err ? err : "", cerr ? cerr : "");
        goto out;
    }
    r = xe_sasl_client_start(c, mech, &out, &outlen);
    if (r == XE_SASL_FAIL) {
        printf("# client start(%s): %s\n", mech, xe_sasl_client_detail(c));
        goto out;
    }
    sr = xe_sasl_start(srv, mech, out, outlen, &sout, &soutlen, &cond);
    while (sr == XE_SASL_CONTINUE && rounds++ < 10) {
        r = xe_sasl_client_step(c, sout, soutlen, &out, &outlen);
        if (r == XE_SASL_FAIL) {
            printf("# client step(%s): %s\n", mech, xe_sasl_client_detail(c));
            goto out;
        }
        sr = xe_sasl_step(srv, out, outlen, &sout, &soutlen, &cond);
    }
    if (sr != XE_SASL_OK) {
        printf("# server (%s): %s\n", mech, xe_sasl_detail(srv));
        r = XE_SASL_FAIL;
        goto out;
    }
    /* the server's success data: the client verifies the server signature
     * (SCRAM) or rspauth (DIGEST-MD5) */
    if (soutlen > 0)
        r = xe_sasl_client_step(c, sout, soutlen, &out, &outlen);
    if (r != XE_SASL_OK)
        printf("# client final(%s): %d %s\n", mech, r, xe_sasl_client_detail(c));
    if (r == XE_SASL_OK &&
        strcmp(xe_sasl_jid(srv) ? xe_sasl_jid(srv) : "", "a.test") != 0)
        r = XE_SASL_FAIL;
out:
    free(err);
    free(cerr);
    xe_sasl_client_free(&c);
    xe_sasl_free(&srv);
    *srv_bytes = xe_sasl_rand_bytes(SRV) - s0;
    *cli_bytes = xe_sasl_rand_bytes(CLI) - c0;
    return r;
}

/* The same for xedge as the SASL client: the client nonce of SCRAM (and
 * DIGEST-MD5's cnonce) come from OpenSSL through the wrapped client
 * mechanisms. */
static void
test_csprng_client(void)
{
    char n1[64], n2[64], n3[64];
    uint64_t before, before_srv, sb = 0, cb = 0;

    ok(xe_sasl_rand_mechs(CLI) >= 7,
       "csprng: SCRAM (5), DIGEST-MD5, CRAM-MD5 registered wrapped as clients (%u)",
       xe_sasl_rand_mechs(CLI));
    before = xe_sasl_rand_bytes(CLI);
    before_srv = xe_sasl_rand_bytes(SRV);
    client_nonce("SCRAM-SHA-256", n1, sizeof(n1));
    is_int((int)(xe_sasl_rand_bytes(CLI) - before), 24,
           "csprng: xedge's SCRAM-SHA-256 client nonce is 24 bytes from OpenSSL");
    is_int((int)(xe_sasl_rand_bytes(SRV) - before_srv), 0,
           "csprng: counted for the client half only");
    is_int((int)strlen(n1), 32, "csprng: and is 32 base64 characters (%s)", n1);
    before = xe_sasl_rand_bytes(CLI);
    client_nonce("SCRAM-SHA-256", n2, sizeof(n2));
    client_nonce("SCRAM-SHA-1", n3, sizeof(n3));
    is_int((int)(xe_sasl_rand_bytes(CLI) - before), 48,
           "csprng: two more client connections, 24 bytes each");
    ok(strlen(n2) == 32 && strlen(n3) == 32 && strcmp(n1, n2) != 0 &&
           strcmp(n2, n3) != 0 && strcmp(n1, n3) != 0,
       "csprng: each client connection's nonce differs");
    for (size_t i = 0; i < 2; i++) {
        const char *mech = i == 0 ? "SCRAM-SHA-256" : "SCRAM-SHA-1";

        is_int(peer_exchange(mech, &sb, &cb), XE_SASL_OK,
               "csprng: %s between xedge's client and server, both wrapped, succeeds",
               mech);
        ok(sb == 24 && cb == 24,
           "csprng: %s drew 24 bytes on each side (server %d, "
           "client %d)",
           mech, (int)sb, (int)cb);
    }
}

static void
test_csprng_nonce(void)
{
    char *mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1"};
    char *legacy[] = {"DIGEST-MD5", "CRAM-MD5"};
    char *err = NULL;
    struct xe_sasl *s;
    char n1[64], n2[64], n3[64];
    uint64_t before;

    ok(xe_sasl_rand_mechs(XE_SASL_RAND_SERVER) >= 7,
       "csprng: SCRAM (5), DIGEST-MD5, CRAM-MD5 registered "
       "wrapped as servers (%u)",
       xe_sasl_rand_mechs(XE_SASL_RAND_SERVER));
    s = xe_sasl_new("example.test", mechs, 2, true, &err);
    ok(s != NULL, "csprng: xe_sasl_new %s", err ? err : "");
    free(err);
    err = NULL;
    if (s == NULL)
        return;
    before = xe_sasl_rand_bytes(SRV);
    server_nonce(s, "SCRAM-SHA-256", n1, sizeof(n1));
    is_int((int)(xe_sasl_rand_bytes(SRV) - before), 24,
           "csprng: SCRAM-SHA-256's server nonce is 24 bytes from OpenSSL");
    is_int((int)strlen(n1), 32, "csprng: and is 32 base64 characters (%s)", n1);
    before = xe_sasl_rand_bytes(SRV);
    server_nonce(s, "SCRAM-SHA-256", n2, sizeof(n2));
    server_nonce(s, "SCRAM-SHA-1", n3, sizeof(n3));
    is_int((int)(xe_sasl_rand_bytes(SRV) - before), 48,
           "csprng: two more connections, 24 bytes each");
    ok(strlen(n2) == 32 && strlen(n3) == 32 && strcmp(n1, n2) != 0 &&
           strcmp(n2, n3) != 0 && strcmp(n1, n3) != 0,
       "csprng: each connection's nonce differs");
    {
        struct outcome o = run_auth(s, "SCRAM-SHA-256", "alice", NULL, "alice-pw");
        is_int(o.r, XE_SASL_OK, "csprng: the wrapped SCRAM-SHA-256 logs in");
        is_int(o.client_final, SASL_OK,
               "csprng: and Cyrus' client accepts its signature");
    }
    xe_sasl_free(&s);

    /* the legacy mechanisms draw from the same pool */
    ok(xe_sasl_global_init(store, "DIGEST-MD5 CRAM-MD5", 4096, &err) == 0,
       "csprng: mech_list reloaded with the legacy mechanisms %s", err ? err : "");
    free(err);
    err = NULL;
    s = xe_sasl_new("example.test", legacy, 2, true, &err);
    ok(s != NULL, "csprng: xe_sasl_new(DIGEST-MD5, CRAM-MD5) %s", err ? err : "");
    free(err);
    if (s == NULL)
        return;
    for (size_t i = 0; i < 2; i++) {
        const char *out = NULL;
        size_t outlen = 0;
        enum xe_sasl_cond cond = XE_SASL_ABORTED;
        int r;

        before = xe_sasl_rand_bytes(SRV);
        r = xe_sasl_start(s, legacy[i], NULL, 0, &out, &outlen, &cond);
        is_int(r, XE_SASL_CONTINUE, "csprng: %s challenges", legacy[i]);
        ok(xe_sasl_rand_bytes(SRV) - before >= 4,
           "csprng: %s's nonce from OpenSSL (%d bytes)", legacy[i],
           (int)(xe_sasl_rand_bytes(SRV) - before));
    }
    xe_sasl_free(&s);
    {
        /* the one legacy mechanism xedge uses as a client (a peer's) */
        uint64_t sb = 0, cb = 0;

        is_int(peer_exchange("DIGEST-MD5", &sb, &cb), XE_SASL_OK,
               "csprng: DIGEST-MD5 between xedge's client and server succeeds");
        ok(sb >= 4 && cb >= 4,
           "csprng: its nonce and cnonce from OpenSSL (server %d, client %d bytes)",
           (int)sb, (int)cb);
    }
}

static char *all_mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"};

static struct xe_sasl *
new_sasl(bool tls)
{
    char *err = NULL;
    struct xe_sasl *s = xe_sasl_new("example.test", all_mechs, 3, tls, &err);

    if (s == NULL)
        printf("# xe_sasl_new: %s\n", err ? err : "?");
    free(err);
    return s;
}

static const char *
cond_of(struct outcome o)
{
    return o.r == XE_SASL_FAIL ? xe_sasl_cond_name(o.cond) : "(no failure)";
}

/* "r=...,s=...,i=..." */
static bool
parse_first(const char *m, size_t *nonce_len, char *salt_b64, size_t salt_max,
            size_t *salt_len, long *iter)
{
    const char *r = strstr(m, "r="), *s = strstr(m, ",s="), *i = strstr(m, ",i=");
    char dec[256];
    size_t dl = 0, sl;

    if (r != m || s == NULL || i == NULL || i < s)
        return false;
    *nonce_len = (size_t)(s - (r + 2));
    sl = (size_t)(i - (s + 3));
    if (sl >= salt_max)
        return false;
    memcpy(salt_b64, s + 3, sl);
    salt_b64[sl] = '\0';
    if (xe_sasl_b64_decode(salt_b64, sl, dec, sizeof(dec), &dl) != 0)
        return false;
    *salt_len = dl;
    *iter = strtol(i + 3, NULL, 10);
    return true;
}

/* ---- tests ------------------------------------------------------------------------- */

static void
test_mechs(void)
{
    const char *m[8];
    size_t n;
    struct xe_sasl *s = new_sasl(true), *p = new_sasl(false);

    ok(s != NULL && p != NULL, "xe_sasl_new");
    if (!s || !p)
        return;
    n = xe_sasl_mechanisms(s, m, 8);
    is_int(n, 3, "tls: three mechanisms offered");
    is_str(n > 0 ? m[0] : NULL, "SCRAM-SHA-256", "tls: in configured order (1)");
    is_str(n > 1 ? m[1] : NULL, "SCRAM-SHA-1", "tls: in configured order (2)");
    is_str(n > 2 ? m[2] : NULL, "PLAIN", "tls: in configured order (3)");
    is_int(xe_sasl_mechanisms(s, m, 1), 1, "mechanisms: max respected");
    n = xe_sasl_mechanisms(p, m, 8);
    is_int(n, 2, "no tls: PLAIN not offered");
    ok(n == 2 && strcmp(m[0], "SCRAM-SHA-256") == 0 && strcmp(m[1], "SCRAM-SHA-1") == 0,
       "no tls: the SCRAM mechanisms");
    {
        struct outcome o = run_auth(p, "PLAIN", "alice", NULL, "alice-pw");
        is_int(o.r, XE_SASL_FAIL, "no tls: PLAIN fails");
        is_str(cond_of(o), "invalid-mechanism", "no tls: PLAIN -> invalid-mechanism");
    }
    xe_sasl_free(&s);
    xe_sasl_free(&p);
    ok(s == NULL, "xe_sasl_free clears the pointer");

    /* only one mechanism configured; unknown ones are dropped */
    {
        char *one[] = {"SCRAM-SHA-1", "NO-SUCH-MECH"};
        char *err = NULL;
        struct xe_sasl *o1 = xe_sasl_new("Example.TEST", one, 2, true, &err);
        const char *out = NULL;
        size_t outlen = 0;
        enum xe_sasl_cond cond = XE_SASL_ABORTED;

        ok(o1 != NULL, "xe_sasl_new with one mechanism");
        if (o1 == NULL)
            return;
        n = xe_sasl_mechanisms(o1, m, 8);
        ok(n == 1 && strcmp(m[0], "SCRAM-SHA-1") == 0,
           "unknown configured mechanism is not offered");
        is_int(xe_sasl_start(o1, "SCRAM-SHA-256", "n,,n=alice,r=abc", 16, &out, &outlen,
                             &cond),
               XE_SASL_FAIL, "mechanism not offered: FAIL");
        is_str(xe_sasl_cond_name(cond), "invalid-mechanism",
               "mechanism not offered -> invalid-mechanism");
        cond = XE_SASL_ABORTED;
        is_int(xe_sasl_start(o1, "NO-SUCH-MECH", NULL, 0, &out, &outlen, &cond),
               XE_SASL_FAIL, "unknown mechanism: FAIL");
        is_str(xe_sasl_cond_name(cond), "invalid-mechanism",
               "unknown mechanism -> invalid-mechanism");
        {
            struct outcome o = run_auth(o1, "SCRAM-SHA-1", "alice", NULL, "alice-pw");
            is_int(o.r, XE_SASL_OK, "domain given in upper case still works");
            is_str(xe_sasl_jid(o1), "alice@example.test", "  as alice@example.test");
        }
        xe_sasl_free(&o1);
    }
}

/* SCRAM-SHA-512, for operators who enable it: the user store keeps its
 * secrets too, and Cyrus reads them through the same auxprop plugin. */
static void
test_sha512(void)
{
    char *mechs[] = {"SCRAM-SHA-512"};
    char *err = NULL;
    struct xe_sasl *s = xe_sasl_new("example.test", mechs, 1, true, &err);
    const char *offered[4];
    struct outcome o;

    free(err);
    if (s == NULL) {
        ok(0, "xe_sasl_new with SCRAM-SHA-512");
        return;
    }
    ok(xe_sasl_mechanisms(s, offered, 4) == 1 && strcmp(offered[0], "SCRAM-SHA-512") == 0,
       "SCRAM-SHA-512 is offered when configured");
    o = run_auth(s, "SCRAM-SHA-512", "alice", NULL, "alice-pw");
    is_int(o.r, XE_SASL_OK, "SCRAM-SHA-512: success");
    if (o.r != XE_SASL_OK)
        printf("#   cond %s, detail %s\n", cond_of(o), xe_sasl_detail(s));
    is_int(o.client_final, SASL_OK,
           "SCRAM-SHA-512: Cyrus' client accepts the server signature");
    o = run_auth(s, "SCRAM-SHA-512", "alice", NULL, "wrong");
    is_str(cond_of(o), "not-authorized",
           "SCRAM-SHA-512: wrong password -> not-authorized");
    o = run_auth(s, "SCRAM-SHA-512", "nobody", NULL, "wrong");
    is_str(cond_of(o), "not-authorized", "SCRAM-SHA-512: unknown user -> not-authorized");
    xe_sasl_free(&s);
}

/* A user name goes through nodeprep, as Prosody's SASL does: any case or
 * form of a name logs in as its one user; a name that fails the profile is
 * a malformed request (Prosody: "Invalid username"), not a wrong password. */
static void
test_nodeprep(void)
{
    const char *mechs[] = {"SCRAM-SHA-256", "PLAIN"};
    const char *names[] = {"Stra\xc3\x9f"
                           "e",
                           "STRASSE",
                           "Stra\xc3\x9f"
                           "e@EXAMPLE.test"};

    for (int m = 0; m < 2; m++) {
        for (int n = 0; n < 3; n++) {
            struct xe_sasl *s = new_sasl(true);
            struct outcome o;

            if (s == NULL)
                continue;
            o = run_auth(s, mechs[m], names[n], NULL, "s-pw");
            is_int(o.r, XE_SASL_OK, "%s as %s: success (nodeprep)", mechs[m], names[n]);
            is_str(xe_sasl_jid(s), "strasse@example.test", "%s as %s: the prepared jid",
                   mechs[m], names[n]);
            xe_sasl_free(&s);
        }
        struct xe_sasl *s = new_sasl(true);
        struct outcome o;
        if (s == NULL)
            continue;
        /* a fullwidth @ becomes '@', which nodeprep prohibits */
        o = run_auth(s, mechs[m],
                     "a\xef\xbc\xa0"
                     "b",
                     NULL, "s-pw");
        is_int(o.r, XE_SASL_FAIL, "%s as a name that fails nodeprep: FAIL", mechs[m]);
        is_str(cond_of(o), "malformed-request", "%s: ... malformed-request", mechs[m]);
        ok(strstr(xe_sasl_detail(s), "nodeprep") != NULL ||
               strstr(xe_sasl_detail(s), "prohibit") != NULL,
           "%s: ... the detail says why (%s)", mechs[m], xe_sasl_detail(s));
        /* and the next attempt on the same session is judged afresh */
        o = run_auth(s, mechs[m], "strasse", NULL, "wrong");
        is_str(cond_of(o), "not-authorized", "%s: then a wrong password: not-authorized",
               mechs[m]);
        xe_sasl_free(&s);
    }
}

static void
test_success(void)
{
    const char *mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"};
    const char *names[] = {"alice", "alice@example.test", "ALICE@Example.Test"};

    for (int m = 0; m < 3; m++) {
        for (int n = 0; n < 3; n++) {
            struct xe_sasl *s = new_sasl(true);
            struct outcome o;

            if (s == NULL)
                continue;
            o = run_auth(s, mechs[m], names[n], NULL, "alice-pw");
            is_int(o.r, XE_SASL_OK, "%s as %s: success", mechs[m], names[n]);
            if (o.r != XE_SASL_OK)
                printf("#   cond %s, detail %s\n", cond_of(o), xe_sasl_detail(s));
            is_str(xe_sasl_jid(s), "alice@example.test", "%s as %s: jid", mechs[m],
                   names[n]);
            is_str(xe_sasl_mech(s), mechs[m], "%s: xe_sasl_mech", mechs[m]);
            if (m < 2)
                is_int(o.client_final, SASL_OK,
                       "%s as %s: Cyrus' client accepts the server signature", mechs[m],
                       names[n]);
            xe_sasl_free(&s);
        }
    }
}

static void
test_failures(void)
{
    const char *mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"};

    for (int m = 0; m < 3; m++) {
        struct xe_sasl *s = new_sasl(true);
        struct outcome o;

        if (s == NULL)
            continue;
        o = run_auth(s, mechs[m], "alice", NULL, "wrong-pw");
        is_int(o.r, XE_SASL_FAIL, "%s wrong password: FAIL", mechs[m]);
        is_str(cond_of(o), "not-authorized", "%s wrong password -> not-authorized",
               mechs[m]);
        /* after a failure the jid is at most the claimed identity (for the log) */
        ok(strcmp(xe_sasl_jid(s), "") == 0 ||
               strcmp(xe_sasl_jid(s), "alice@example.test") == 0,
           "%s wrong password: jid empty or the claimed identity (%s)", mechs[m],
           xe_sasl_jid(s));
        ok(xe_sasl_detail(s) != NULL && *xe_sasl_detail(s),
           "%s wrong password: a detail for the log", mechs[m]);
        ok(xe_sasl_detail(s) && strstr(xe_sasl_detail(s), "wrong-pw") == NULL &&
               strstr(xe_sasl_detail(s), "alice-pw") == NULL,
           "%s: the detail holds no password", mechs[m]);

        /* retry on the same object */
        o = run_auth(s, mechs[m], "alice", NULL, "alice-pw");
        is_int(o.r, XE_SASL_OK, "%s retry after failure on the same object: success",
               mechs[m]);
        is_str(xe_sasl_jid(s), "alice@example.test", "%s retry: jid", mechs[m]);

        o = run_auth(s, mechs[m], "nobody", NULL, "whatever");
        is_int(o.r, XE_SASL_FAIL, "%s unknown user: FAIL", mechs[m]);
        is_str(cond_of(o), "not-authorized", "%s unknown user -> not-authorized",
               mechs[m]);
        if (m < 2)
            ok(o.rounds >= 1 && o.server_first[0] != '\0',
               "%s unknown user: a full server-first message, no early failure",
               mechs[m]);

        o = run_auth(s, mechs[m], "carol", NULL, "carol-pw");
        is_int(o.r, XE_SASL_FAIL, "%s disabled user, right password: FAIL", mechs[m]);
        is_str(cond_of(o), "account-disabled", "%s disabled user -> account-disabled",
               mechs[m]);
        ok(strcmp(xe_sasl_jid(s), "") == 0 ||
               strcmp(xe_sasl_jid(s), "carol@example.test") == 0,
           "%s disabled user: jid empty or the claimed identity (%s)", mechs[m],
           xe_sasl_jid(s));

        o = run_auth(s, mechs[m], "carol", NULL, "wrong-pw");
        is_str(cond_of(o), "not-authorized",
               "%s disabled user, wrong password -> not-authorized", mechs[m]);

        o = run_auth(s, mechs[m], "alice", "bob@example.test", "alice-pw");
        is_int(o.r, XE_SASL_FAIL, "%s authzid of bob: FAIL", mechs[m]);
        is_str(cond_of(o), "invalid-authzid", "%s authzid of bob -> invalid-authzid",
               mechs[m]);

        o = run_auth(s, mechs[m], "alice", "alice@other.test", "alice-pw");
        is_str(cond_of(o), "invalid-authzid",
               "%s authzid in another domain -> invalid-authzid", mechs[m]);

        o = run_auth(s, mechs[m], "alice", "alice@example.test/res", "alice-pw");
        is_str(cond_of(o), "invalid-authzid",
               "%s authzid with a resource -> invalid-authzid", mechs[m]);

        o = run_auth(s, mechs[m], "alice", "alice@example.test", "alice-pw");
        is_int(o.r, XE_SASL_OK, "%s authzid = own JID: success", mechs[m]);
        is_str(xe_sasl_jid(s), "alice@example.test", "%s authzid = own JID: jid",
               mechs[m]);

        o = run_auth(s, mechs[m], "bob@other.test", NULL, "bob-pw");
        is_str(cond_of(o), "not-authorized",
               "%s user of another domain -> not-authorized", mechs[m]);
        xe_sasl_free(&s);
    }
}

static void
test_unknown_shape(void)
{
    const char *mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1"};

    for (int m = 0; m < 2; m++) {
        struct xe_sasl *s = new_sasl(true);
        struct outcome k, u, u2, u3;
        size_t kn = 0, un = 0, ks = 0, us = 0, dummy = 0;
        long ki = 0, ui = 0, li = 0;
        char ksalt[128], usalt[128], u2salt[128], u3salt[128];
        struct xe_user user;
        char *err = NULL;
        char want_salt[128];
        size_t wl = 0;

        if (s == NULL)
            continue;
        k = run_auth(s, mechs[m], "alice", NULL, "alice-pw");
        u = run_auth(s, mechs[m], "nobody", NULL, "alice-pw");
        u2 = run_auth(s, mechs[m], "nobody", NULL, "other");
        u3 = run_auth(s, mechs[m], "someone-else", NULL, "other");
        ok(parse_first(k.server_first, &kn, ksalt, sizeof(ksalt), &ks, &ki),
           "%s known user: server-first parses (%s)", mechs[m], k.server_first);
        ok(parse_first(u.server_first, &un, usalt, sizeof(usalt), &us, &ui),
           "%s unknown user: server-first parses (%s)", mechs[m], u.server_first);
        is_int(ki, 4096, "%s known user: i=4096", mechs[m]);
        is_int(ui, 4096, "%s unknown user: i=4096", mechs[m]);
        is_int(us, ks, "%s unknown user: same salt length as a known one", mechs[m]);
        is_int(us, 16, "%s salt of 16 bytes", mechs[m]);
        is_int(un, kn, "%s unknown user: same nonce length", mechs[m]);
        ok(parse_first(u2.server_first, &dummy, u2salt, sizeof(u2salt), &dummy, &li) &&
               strcmp(u2salt, usalt) == 0,
           "%s unknown user: the same salt on every probe", mechs[m]);
        ok(parse_first(u3.server_first, &dummy, u3salt, sizeof(u3salt), &dummy, &li) &&
               strcmp(u3salt, usalt) != 0,
           "%s two unknown users: different salts", mechs[m]);

        /* the known user's salt is the stored one */
        memset(&user, 0, sizeof(user));
        ok(xe_userstore_get(store, "alice@example.test", &user, &err) == XE_US_OK,
           "read alice back");
        free(err);
        err = NULL;
        xe_sasl_b64_encode(
            (const char *)user.scram[m == 0 ? XE_SCRAM_SHA256 : XE_SCRAM_SHA1].salt,
            user.scram[m == 0 ? XE_SCRAM_SHA256 : XE_SCRAM_SHA1].salt_len, want_salt,
            sizeof(want_salt), &wl);
        want_salt[wl] = '\0';
        is_str(ksalt, want_salt, "%s known user: the stored salt is announced", mechs[m]);
        xe_sasl_free(&s);
    }
}

static void
test_malformed(void)
{
    struct xe_sasl *s = new_sasl(true);
    const char *out = NULL;
    size_t outlen = 0;
    enum xe_sasl_cond cond = XE_SASL_ABORTED;
    static const char garbage[] = "\x01\xff\x00garbage\x7f not scram";
    int r;

    if (s == NULL)
        return;
    r = xe_sasl_start(s, "SCRAM-SHA-256", garbage, sizeof(garbage) - 1, &out, &outlen,
                      &cond);
    is_int(r, XE_SASL_FAIL, "garbage SCRAM client-first: FAIL");
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "malformed-request",
           "garbage SCRAM client-first -> malformed-request (detail: %s)",
           xe_sasl_detail(s));

    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "SCRAM-SHA-1", "y,,n=alice", 10, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "SCRAM client-first without a nonce: FAIL");
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "malformed-request",
           "SCRAM client-first without a nonce -> malformed-request");

    /* a SCRAM exchange with a garbage client-final */
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "SCRAM-SHA-256", "n,,n=alice,r=abcdefghijklmnop", 28, &out,
                      &outlen, &cond);
    is_int(r, XE_SASL_CONTINUE, "good client-first: CONTINUE");
    if (r == XE_SASL_CONTINUE) {
        r = xe_sasl_step(s, "c=biws,r=WRONG,p=AAAA", 21, &out, &outlen, &cond);
        is_int(r, XE_SASL_FAIL, "client-final with a foreign nonce: FAIL");
        ok(r == XE_SASL_FAIL &&
               (cond == XE_SASL_MALFORMED_REQUEST || cond == XE_SASL_NOT_AUTHORIZED),
           "client-final with a foreign nonce -> malformed-request or not-authorized "
           "(%s)",
           xe_sasl_cond_name(cond));
    }

    /* PLAIN without the NULs */
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "PLAIN", "alicealice-pw", 13, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "PLAIN without separators: FAIL");
    ok(r == XE_SASL_FAIL &&
           (cond == XE_SASL_MALFORMED_REQUEST || cond == XE_SASL_NOT_AUTHORIZED),
       "PLAIN without separators -> malformed-request or not-authorized (%s)",
       xe_sasl_cond_name(cond));

    /* PLAIN with an empty password */
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "PLAIN", "\0alice\0", 7, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "PLAIN with an empty password: FAIL");

    /* PLAIN by hand: authzid, authcid, password */
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "PLAIN", "\0alice\0alice-pw", 15, &out, &outlen, &cond);
    is_int(r, XE_SASL_OK, "PLAIN by hand: success");
    is_str(xe_sasl_jid(s), "alice@example.test", "PLAIN by hand: jid");

    /* and a failure right after a success, then the success again */
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "PLAIN", "\0nobody\0alice-pw", 16, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "PLAIN unknown user after success: FAIL");
    ok(strcmp(xe_sasl_jid(s), "alice@example.test") != 0,
       "the previous success's jid is not kept on a new attempt (%s)", xe_sasl_jid(s));
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "PLAIN", "\0alice\0alice-pX", 15, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "PLAIN wrong password after success: FAIL");
    r = xe_sasl_start(s, "PLAIN", "\0alice\0alice-pw", 15, &out, &outlen, &cond);
    is_int(r, XE_SASL_OK, "PLAIN again: success");

    /* PLAIN with NUL in the password */
    r = xe_sasl_start(s, "PLAIN", "\0alice\0alice-pw\0x", 17, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "PLAIN with trailing NUL+data: FAIL");
    xe_sasl_free(&s);
}

/* RFC 5802 sections 6 and 7: the gs2 flag against the mechanism named. A
 * -PLUS mechanism with "n" or "y" is a request that contradicts itself
 * (malformed-request); "y" on SCRAM-* while -PLUS is offered is a
 * downgrade (not-authorized), refused before any challenge. */
static void
test_gs2(void)
{
    char *mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"};
    struct xe_cbind cb = {.type = "tls-exporter", .len = 32, .advertise = true};
    struct xe_sasl *s, *nop;
    const char *out = NULL;
    size_t outlen = 0;
    enum xe_sasl_cond cond = XE_SASL_ABORTED;
    char *err = NULL;
    int r;

    memset(cb.data, 0x5a, 32);
    s = xe_sasl_new_tls("example.test", mechs, 3, true, &cb, 1, NULL, 0, &err);
    ok(s != NULL, "xe_sasl_new_tls with a binding %s", err ? err : "");
    free(err);
    err = NULL;
    if (s == NULL)
        return;
    r = xe_sasl_start(s, "SCRAM-SHA-256-PLUS", "n,,n=alice,r=abcdefghijklmnop", 28, &out,
                      &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "-PLUS with gs2 flag 'n': FAIL at once");
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "malformed-request",
           "-PLUS with 'n' -> malformed-request");
    ok(strstr(xe_sasl_detail(s), "without channel binding") != NULL,
       "... the detail says why (%s)", xe_sasl_detail(s));
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "SCRAM-SHA-256-PLUS", "y,,n=alice,r=abcdefghijklmnop", 28, &out,
                      &outlen, &cond);
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "malformed-request",
           "-PLUS with 'y' -> malformed-request");
    /* no initial response: the client-first message is the first response */
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "SCRAM-SHA-256-PLUS", NULL, 0, &out, &outlen, &cond);
    is_int(r, XE_SASL_CONTINUE, "-PLUS without an initial response: an empty challenge");
    r = xe_sasl_step(s, "n,,n=alice,r=abcdefghijklmnop", 28, &out, &outlen, &cond);
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "malformed-request",
           "... then 'n' in the response -> malformed-request");
    r = xe_sasl_step(s, "c=biws,r=x,p=AAAA", 17, &out, &outlen, &cond);
    is_int(r, XE_SASL_FAIL, "... and the attempt is over (a further response fails)");
    cond = XE_SASL_ABORTED;
    r = xe_sasl_start(s, "SCRAM-SHA-256", "y,,n=alice,r=abcdefghijklmnop", 28, &out,
                      &outlen, &cond);
    is_int(r, XE_SASL_FAIL,
           "SCRAM-SHA-256 with 'y' while -PLUS is offered: FAIL at once");
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "not-authorized",
           "... -> not-authorized (a downgrade)");
    r = xe_sasl_start(s, "SCRAM-SHA-256", NULL, 0, &out, &outlen, &cond);
    r = r == XE_SASL_CONTINUE
            ? xe_sasl_step(s, "y,,n=alice,r=abcdefghijklmnop", 28, &out, &outlen, &cond)
            : r;
    is_str(r == XE_SASL_FAIL ? xe_sasl_cond_name(cond) : "(none)", "not-authorized",
           "... also when 'y' comes in the first response");
    r = xe_sasl_start(s, "SCRAM-SHA-256", "n,,n=alice,r=abcdefghijklmnop", 28, &out,
                      &outlen, &cond);
    is_int(r, XE_SASL_CONTINUE, "SCRAM-SHA-256 with 'n' goes on");
    r = xe_sasl_start(s, "SCRAM-SHA-256-PLUS",
                      "p=tls-exporter,,n=alice,r=abcdefghijklmnop", 41, &out, &outlen,
                      &cond);
    is_int(r, XE_SASL_CONTINUE, "-PLUS with 'p=tls-exporter' goes on");
    xe_sasl_free(&s);

    /* without a -PLUS mechanism on offer, "y" is the client's right guess */
    nop = xe_sasl_new_tls("example.test", mechs + 1, 2, true, &cb, 1, NULL, 0, &err);
    free(err);
    ok(nop != NULL, "a session offering no -PLUS");
    if (nop == NULL)
        return;
    r = xe_sasl_start(nop, "SCRAM-SHA-256", "y,,n=alice,r=abcdefghijklmnop", 28, &out,
                      &outlen, &cond);
    is_int(r, XE_SASL_CONTINUE, "... takes 'y'");
    xe_sasl_free(&nop);
}

static void
test_cond_names(void)
{
    is_str(xe_sasl_cond_name(XE_SASL_ABORTED), "aborted", "cond aborted");
    is_str(xe_sasl_cond_name(XE_SASL_ACCOUNT_DISABLED), "account-disabled",
           "cond account-disabled");
    is_str(xe_sasl_cond_name(XE_SASL_CREDENTIALS_EXPIRED), "credentials-expired",
           "cond credentials-expired");
    is_str(xe_sasl_cond_name(XE_SASL_ENCRYPTION_REQUIRED), "encryption-required",
           "cond encryption-required");
    is_str(xe_sasl_cond_name(XE_SASL_INCORRECT_ENCODING), "incorrect-encoding",
           "cond incorrect-encoding");
    is_str(xe_sasl_cond_name(XE_SASL_INVALID_AUTHZID), "invalid-authzid",
           "cond invalid-authzid");
    is_str(xe_sasl_cond_name(XE_SASL_INVALID_MECHANISM), "invalid-mechanism",
           "cond invalid-mechanism");
    is_str(xe_sasl_cond_name(XE_SASL_MALFORMED_REQUEST), "malformed-request",
           "cond malformed-request");
    is_str(xe_sasl_cond_name(XE_SASL_MECHANISM_TOO_WEAK), "mechanism-too-weak",
           "cond mechanism-too-weak");
    is_str(xe_sasl_cond_name(XE_SASL_NOT_AUTHORIZED), "not-authorized",
           "cond not-authorized");
    is_str(xe_sasl_cond_name(XE_SASL_TEMPORARY_AUTH_FAILURE), "temporary-auth-failure",
           "cond temporary-auth-failure");
}

static void
test_b64(void)
{
    char enc[64], dec[64];
    size_t el = 0, dl = 0;
    static const char bin[] = "\x00\x01\xfe\xff binary \x00 data";
    const size_t binlen = sizeof(bin) - 1;
    struct {
        const char *plain, *b64;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        el = 99;
        ok(xe_sasl_b64_encode(v[i].plain, strlen(v[i].plain), enc, sizeof(enc), &el) ==
                   0 &&
               el == strlen(v[i].b64) && memcmp(enc, v[i].b64, el) == 0,
           "b64 encode RFC 4648 '%s'", v[i].plain);
        dl = 99;
        ok(xe_sasl_b64_decode(v[i].b64, strlen(v[i].b64), dec, sizeof(dec), &dl) == 0 &&
               dl == strlen(v[i].plain) && memcmp(dec, v[i].plain, dl) == 0,
           "b64 decode RFC 4648 '%s'", v[i].b64);
    }
    ok(xe_sasl_b64_encode(bin, binlen, enc, sizeof(enc), &el) == 0, "b64 encode binary");
    ok(xe_sasl_b64_decode(enc, el, dec, sizeof(dec), &dl) == 0 && dl == binlen &&
           memcmp(dec, bin, binlen) == 0,
       "b64 round trip of binary data with NULs");

    ok(xe_sasl_b64_decode("Zm9v!mFy", 8, dec, sizeof(dec), &dl) < 0,
       "b64: a character outside the alphabet is rejected");
    ok(xe_sasl_b64_decode("Zm9vYmF", 7, dec, sizeof(dec), &dl) < 0,
       "b64: a length that is not a multiple of 4 is rejected");
    ok(xe_sasl_b64_decode("Zg==Zg==", 8, dec, sizeof(dec), &dl) < 0,
       "b64: data after the padding is rejected");
    ok(xe_sasl_b64_decode("Z===", 4, dec, sizeof(dec), &dl) < 0,
       "b64: three padding characters are rejected");
    ok(xe_sasl_b64_decode("Zm9v\nYmFy", 9, dec, sizeof(dec), &dl) < 0,
       "b64: a line break is rejected");
    ok(xe_sasl_b64_decode("=", 1, dec, sizeof(dec), &dl) < 0, "b64: '=' alone rejected");
    ok(xe_sasl_b64_decode("Zm9vYmFy", 8, dec, 2, &dl) < 0,
       "b64 decode: an output buffer too small is an error");
    ok(xe_sasl_b64_encode("foobar", 6, enc, 4, &el) < 0,
       "b64 encode: an output buffer too small is an error");
}

/* Non-SASL authentication (XEP-0078): the password checked as PLAIN checks
 * it; the digest only with a legacy secret. */
static void
test_iq_auth(void)
{
    char jid[3072], detail[128], dg[41];
    enum xe_sasl_cond cond = XE_SASL_ABORTED;
    unsigned char md[20];
    struct xe_user u;
    char *err = NULL;
    int r;

    /* dave keeps a plaintext-equivalent (xedgectl --legacy-mechs) */
    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "dave@example.test");
    xe_user_set_password(&u, "dave-pw", 7, 4096);
    xe_user_set_legacy(&u, "dave-pw", 7);
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "store dave (legacy)");
    free(err);

    r = xe_sasl_check_plain("example.test", "alice", "alice-pw", 8, jid, sizeof(jid),
                            &cond, detail, sizeof(detail));
    ok(r == XE_SASL_OK && strcmp(jid, "alice@example.test") == 0,
       "iq-auth password: alice, right password -> OK, jid %s", jid);
    r = xe_sasl_check_plain("example.test", "ALICE@example.test", "alice-pw", 8, jid,
                            sizeof(jid), &cond, detail, sizeof(detail));
    ok(r == XE_SASL_OK && strcmp(jid, "alice@example.test") == 0,
       "iq-auth password: a bare JID in any case is the same user");
    r = xe_sasl_check_plain("example.test", "alice", "wrong", 5, jid, sizeof(jid), &cond,
                            detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth password: wrong password -> not-authorized (%s)", detail);
    r = xe_sasl_check_plain("example.test", "nobody", "x", 1, jid, sizeof(jid), &cond,
                            detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth password: unknown user -> not-authorized, as a wrong password");
    r = xe_sasl_check_plain("example.test", "bob@other.test", "bob-pw", 6, jid,
                            sizeof(jid), &cond, detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED && jid[0] == '\0',
       "iq-auth password: a user of another domain -> not-authorized");
    r = xe_sasl_check_plain("example.test", "carol", "wrong", 5, jid, sizeof(jid), &cond,
                            detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth password: disabled account, wrong password -> not-authorized");
    r = xe_sasl_check_plain("example.test", "carol", "carol-pw", 8, jid, sizeof(jid),
                            &cond, detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_ACCOUNT_DISABLED,
       "iq-auth password: disabled account, right password -> account-disabled");

    /* digest = hex(SHA1(stream id || password)) */
    SHA1((const unsigned char *)"s1d"
                                "dave-pw",
         10, md);
    for (int i = 0; i < 20; i++)
        snprintf(dg + 2 * i, 3, "%02x", md[i]);
    r = xe_sasl_check_digest("example.test", "dave", "s1d", dg, jid, sizeof(jid), &cond,
                             detail, sizeof(detail));
    ok(r == XE_SASL_OK && strcmp(jid, "dave@example.test") == 0,
       "iq-auth digest: legacy user, right digest -> OK");
    for (int i = 0; i < 40; i++)
        dg[i] = (char)(dg[i] >= 'a' ? dg[i] - 32 : dg[i]);
    r = xe_sasl_check_digest("example.test", "dave", "s1d", dg, jid, sizeof(jid), &cond,
                             detail, sizeof(detail));
    ok(r == XE_SASL_OK, "iq-auth digest: upper-case hex is the same digest");
    r = xe_sasl_check_digest("example.test", "dave", "other-id", dg, jid, sizeof(jid),
                             &cond, detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth digest: the digest of another stream id -> not-authorized");
    r = xe_sasl_check_digest("example.test", "dave", "s1d", "abc", jid, sizeof(jid),
                             &cond, detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth digest: not 40 hex digits -> not-authorized");
    SHA1((const unsigned char *)"s1d"
                                "alice-pw",
         11, md);
    for (int i = 0; i < 20; i++)
        snprintf(dg + 2 * i, 3, "%02x", md[i]);
    r = xe_sasl_check_digest("example.test", "alice", "s1d", dg, jid, sizeof(jid), &cond,
                             detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth digest: a user without a legacy secret fails as a wrong digest (%s)",
       detail);
    r = xe_sasl_check_digest("example.test", "nobody", "s1d", dg, jid, sizeof(jid), &cond,
                             detail, sizeof(detail));
    ok(r == XE_SASL_FAIL && cond == XE_SASL_NOT_AUTHORIZED,
       "iq-auth digest: an unknown user -> not-authorized");
    OPENSSL_cleanse(&u, sizeof(u));
}

int
main(void)
{
    char *dir = tap_mkdtemp("sasl-test"), *err = NULL;
    int r;

    ok(dir != NULL, "mkdtemp");
    if (dir == NULL)
        return tap_done();
    r = xe_userstore_open(dir, false, 16, &store, &err);
    ok(r == XE_US_OK, "userstore open %s", err ? err : "");
    free(err);
    err = NULL;
    if (r != XE_US_OK) {
        rm_rf(dir);
        return tap_done();
    }
    add_user("alice@example.test", "alice-pw", false);
    add_user("bob@example.test", "bob-pw", false);
    add_user("carol@example.test", "carol-pw", true);
    add_user("bob@other.test", "bob-pw", false);
    add_user("strasse@example.test", "s-pw", false);

    r = xe_sasl_global_init(store, "SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 PLAIN", 4096,
                            &err);
    ok(r == 0, "xe_sasl_global_init %s", err ? err : "");
    free(err);
    err = NULL;
    {
        sasl_callback_t none[] = {{SASL_CB_LIST_END, NULL, NULL}};
        int cr = sasl_client_init(none);
        ok(cr == SASL_OK, "sasl_client_init: %s", sasl_errstring(cr, NULL, NULL));
    }
    if (r == 0) {
        test_cond_names();
        test_mechs();
        test_success();
        test_nodeprep();
        test_sha512();
        test_failures();
        test_unknown_shape();
        test_malformed();
        test_gs2();
        test_iq_auth();
        test_csprng_client();
        test_csprng_nonce(); /* last: it reloads the mechanism list */
    }
    test_b64();

    sasl_client_done(); /* this test's sasl_client_init: xedge's frees the mechanisms */
    xe_sasl_global_done();
    xe_userstore_close(&store);
    rm_rf(dir);
    return tap_done();
}
