/* xedge: the SASL adapter over Cyrus SASL and the in-process auxprop plugin
 * that serves the LMDB user store to it. See sasl.h. */
#include "sasl.h"

#include <pthread.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <sasl/saslutil.h>

#include "log.h"
#include "mech.h"
#include "sasl_rand.h"
#include "util.h"

/* Cyrus keeps every callback as int (*)(void); cast through void * so the
 * compiler does not flag the (intended) change of function type. */
#define XE_CB(f) ((sasl_callback_ft)(void *)(f))

/* Set at start; a reload swaps the mechanism list and the iterations while
 * worker threads use them: they are read under g_mu, and a replaced list
 * is kept (in g_old_lists) until xe_sasl_global_done, since Cyrus may hold
 * the pointer getopt gave it. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct xe_userstore *g_store;
static char *g_mech_list;
static unsigned g_iterations;
struct old_list {
    struct old_list *next;
    char *list;
};
static struct old_list *g_old_lists;
static unsigned char g_fake_key[32]; /* keys the fake salts of unknown users */
static bool g_initialised;

struct xe_sasl {
    sasl_conn_t *conn;
    char *domain;
    bool tls;
    const char *mechs[XE_MECH_COUNT]; /* what this session offers, distinct */
    size_t n_mechs;
    char mech[32];
    char *jid;        /* the authenticated (or attempted) JID; NULL before (issue 13:
                       * a pre-auth connection holds no room for one) */
    bool gs2_pending; /* a SCRAM attempt whose client-first message is still to come */
    bool store_error; /* the store could not be read during this attempt */
    const char *bad_name; /* why the attempt's user name is no JID (nodeprep),
                           * or NULL: answered <malformed-request/> */
    char detail[256];
    sasl_callback_t cbs[4];
    struct xe_cbind cb[XE_CB_MAX]; /* the TLS session's channel bindings */
    size_t n_cb;
    sasl_channel_binding_t cyrus_cb; /* the one handed to Cyrus for this attempt */
    bool plus_offered;               /* a -PLUS mechanism is on offer */
    bool anonymous;                  /* the last success was ANONYMOUS */
    char (*ext)[3072];               /* JIDs a verified client certificate vouches for */
    size_t n_ext;
    /* server-to-server with a pre-shared secret (xe_sasl_new_peer): the peer
     * domain is the only identity, its secret the only password; the user
     * store is never read */
    char *peer;
    unsigned char *secret;
    size_t secret_len;
    char peer_mech_list[128];
    char peer_token[16]; /* PEER_TOKEN: how the auxprop plugin finds the session */
};

/* Cyrus hands the auxprop plugin the connection's getopt (its own wrapper
 * around ours, so the callback itself cannot be compared): a peer
 * session's getopt answers this option with its peer_token. */
#define PEER_OPTION "xedge_peer_session"
#define PEER_TOKEN "xedge-peer"

const char *
xe_sasl_cond_name(enum xe_sasl_cond c)
{
    static const char *const names[] = {
        [XE_SASL_ABORTED] = "aborted",
        [XE_SASL_ACCOUNT_DISABLED] = "account-disabled",
        [XE_SASL_CREDENTIALS_EXPIRED] = "credentials-expired",
        [XE_SASL_ENCRYPTION_REQUIRED] = "encryption-required",
        [XE_SASL_INCORRECT_ENCODING] = "incorrect-encoding",
        [XE_SASL_INVALID_AUTHZID] = "invalid-authzid",
        [XE_SASL_INVALID_MECHANISM] = "invalid-mechanism",
        [XE_SASL_MALFORMED_REQUEST] = "malformed-request",
        [XE_SASL_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
        [XE_SASL_NOT_AUTHORIZED] = "not-authorized",
        [XE_SASL_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
    };
    return names[c];
}

/* ---- the auxprop plugin ------------------------------------------------ */

static int
b64(const unsigned char *in, size_t len, char *out, size_t outmax)
{
    unsigned outlen = 0;
    return sasl_encode64((const char *)in, (unsigned)len, out, (unsigned)outmax, &outlen);
}

/* "SCRAM-SHA-1$<iter>:<salt>$<StoredKey>:<ServerKey>", as Cyrus' SCRAM reads
 * from the authPassword property (RFC 3112 syntax). */
static int
format_auth_password(const char *mech, const struct xe_scram_secret *sec, char *out,
                     size_t outmax)
{
    char salt[128], sk[128], svk[128];

    if (b64(sec->salt, sec->salt_len, salt, sizeof(salt)) != SASL_OK ||
        b64(sec->stored_key, sec->key_len, sk, sizeof(sk)) != SASL_OK ||
        b64(sec->server_key, sec->key_len, svk, sizeof(svk)) != SASL_OK)
        return -1;
    if ((size_t)snprintf(out, outmax, "%s$%u:%s$%s:%s", mech, sec->iterations, salt, sk,
                         svk) >= outmax)
        return -1;
    return 0;
}

/* Secrets for a user who does not exist: a salt that is stable for the JID
 * (so that repeated probes see the same one) and keys that match nothing. */
static void
fake_secret(const char *jid, enum xe_scram_hash h, struct xe_scram_secret *sec)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char in[3200];
    int n = snprintf(in, sizeof(in), "%d:%s", (int)h, jid);

    HMAC(EVP_sha256(), g_fake_key, sizeof(g_fake_key), (unsigned char *)in, (size_t)n, md,
         &mdlen);
    memset(sec, 0, sizeof(*sec));
    sec->present = true;
    pthread_mutex_lock(&g_mu);
    sec->iterations = g_iterations;
    pthread_mutex_unlock(&g_mu);
    sec->salt_len = 16;
    memcpy(sec->salt, md, 16);
    sec->key_len = h == XE_SCRAM_SHA1 ? 20 : h == XE_SCRAM_SHA256 ? 32 : 64;
    RAND_bytes(sec->stored_key, (int)sec->key_len);
    RAND_bytes(sec->server_key, (int)sec->key_len);
}

static void
user_jid(const char *user, unsigned ulen, const char *realm, char *out, size_t outmax)
{
    if (memchr(user, '@', ulen) != NULL || realm == NULL || *realm == '\0')
        snprintf(out, outmax, "%.*s", (int)ulen, user);
    else
        snprintf(out, outmax, "%.*s@%s", (int)ulen, user, realm);
}

static const struct propval *
find_prop(const struct propval *props, const char *name)
{
    for (; props->name; props++)
        if (strcmp(props->name, name) == 0)
            return props;
    return NULL;
}

/* Cyrus asks for "*authPassword" (SCRAM: our stored secrets) or, for the
 * mechanisms that need a plaintext-equivalent (DIGEST-MD5, CRAM-MD5, and
 * Cyrus' own PLAIN check), for "*userPassword": served only for a user on
 * whom the legacy mechanisms were enabled, and never to SCRAM (which would
 * then derive its secrets from it). */

/* A peer session (its connection has our per-connection getopt, whose
 * context is the session): the peer's secret as its userPassword, for the
 * peer's domain only; nothing else, and never the user store. */
static int
peer_lookup(const struct xe_sasl *s, sasl_server_params_t *sparams,
            const struct propval *to_fetch, const char *user, unsigned ulen)
{
    const struct propval *userpw = find_prop(to_fetch, "*userPassword");
    const struct propval *authpw = find_prop(to_fetch, "*authPassword");

    if (authpw && authpw->values)
        sparams->utils->prop_erase(sparams->propctx, authpw->name);
    if (userpw == NULL)
        return SASL_OK;
    if (userpw->values)
        sparams->utils->prop_erase(sparams->propctx, userpw->name);
    /* canon_user let only the peer's domain through; Cyrus may append the
     * realm (ours) */
    if ((strlen(s->peer) == ulen && strncasecmp(s->peer, user, ulen) == 0) ||
        (strlen(s->peer) + 1 + strlen(s->domain) == ulen &&
         strncasecmp(s->peer, user, strlen(s->peer)) == 0 &&
         user[strlen(s->peer)] == '@' &&
         strncasecmp(user + strlen(s->peer) + 1, s->domain, strlen(s->domain)) == 0))
        sparams->utils->prop_set(sparams->propctx, userpw->name, (const char *)s->secret,
                                 (int)s->secret_len);
    return SASL_OK;
}

static int
auxprop_lookup(void *glob_context, sasl_server_params_t *sparams, unsigned flags,
               const char *user, unsigned ulen)
{
    const struct propval *to_fetch, *authpw, *userpw;
    struct xe_user *u = NULL;
    char jid[3072], *err = NULL;
    int r, ret = SASL_OK;
    sasl_getopt_t *opt = NULL;
    void *opt_ctx = NULL;
    const char *token = NULL;

    if (flags & SASL_AUXPROP_AUTHZID)
        return SASL_OK; /* we serve the properties of the authentication identity */
    to_fetch = sparams->utils->prop_get(sparams->propctx);
    if (to_fetch == NULL)
        return SASL_OK;
    /* a peer session: its secret, never the store */
    if (sparams->utils->getcallback(sparams->utils->conn, SASL_CB_GETOPT,
                                    (sasl_callback_ft *)&opt, &opt_ctx) == SASL_OK &&
        opt && opt(opt_ctx, NULL, PEER_OPTION, &token, NULL) == SASL_OK && token &&
        strcmp(token, PEER_TOKEN) == 0)
        return peer_lookup(
            (const struct xe_sasl *)(const void *)(token -
                                                   offsetof(struct xe_sasl, peer_token)),
            sparams, to_fetch, user, ulen);
    authpw = find_prop(to_fetch, "*authPassword");
    userpw = authpw ? NULL : find_prop(to_fetch, "*userPassword");
    if (authpw == NULL && userpw == NULL)
        return SASL_OK; /* nothing we hold was asked for */
    if (((authpw && authpw->values) || (userpw && userpw->values)) &&
        !(flags & SASL_AUXPROP_OVERRIDE))
        return SASL_OK;

    user_jid(user, ulen, sparams->user_realm, jid, sizeof(jid));
    u = xe_calloc(1, sizeof(*u));
    r = xe_userstore_get(g_store, jid, u, &err);
    if (r == XE_US_NOTFOUND) {
        for (int h = 0; h < XE_SCRAM_N; h++)
            fake_secret(jid, (enum xe_scram_hash)h, &u->scram[h]);
    } else if (r < 0) {
        xe_err("event=store-error user=%s error=\"%s\"", jid, err ? err : "?");
        ret = SASL_FAIL;
        goto out;
    }
    if (userpw) {
        if (userpw->values)
            sparams->utils->prop_erase(sparams->propctx, userpw->name);
        if (u->legacy)
            sparams->utils->prop_set(sparams->propctx, userpw->name, u->legacy_password,
                                     (int)u->legacy_len);
        goto out;
    }
    if (authpw->values)
        sparams->utils->prop_erase(sparams->propctx, authpw->name);
    for (int h = 0; h < XE_SCRAM_N; h++) {
        char val[512];
        if (!u->scram[h].present)
            continue;
        if (format_auth_password(xe_scram_hash_name((enum xe_scram_hash)h), &u->scram[h],
                                 val, sizeof(val)) == 0)
            sparams->utils->prop_set(sparams->propctx, authpw->name, val,
                                     (int)strlen(val));
        OPENSSL_cleanse(val, sizeof(val));
    }
out:
    free(err);
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    return ret;
}

static sasl_auxprop_plug_t auxprop_plugin = {
    .features = 0,
    .spare_int1 = 0,
    .glob_context = NULL,
    .auxprop_free = NULL,
    .auxprop_lookup = auxprop_lookup,
    .name = "xedge",
};

static int
auxprop_init(const sasl_utils_t *utils, int max_version, int *out_version,
             sasl_auxprop_plug_t **plug, const char *plugname)
{
    if (max_version < SASL_AUXPROP_PLUG_VERSION)
        return SASL_BADVERS;
    *out_version = SASL_AUXPROP_PLUG_VERSION;
    *plug = &auxprop_plugin;
    return SASL_OK;
}

/* ---- callbacks ---------------------------------------------------------- */

static int
getopt_cb(void *context, const char *plugin_name, const char *option, const char **result,
          unsigned *len)
{
    const char *v = NULL;

    if (strcmp(option, "mech_list") == 0) {
        pthread_mutex_lock(&g_mu);
        v = g_mech_list;
        pthread_mutex_unlock(&g_mu);
    } else if (strcmp(option, "auxprop_plugin") == 0)
        v = "xedge";
    else if (strcmp(option, "pwcheck_method") == 0)
        v = "auxprop";
    if (v == NULL)
        return SASL_FAIL;
    *result = v;
    if (len)
        *len = (unsigned)strlen(v);
    return SASL_OK;
}

static int
log_cb(void *context, int level, const char *message)
{
    if (level <= SASL_LOG_ERR)
        xe_warn("event=sasl-log message=\"%s\"", message);
    else
        xe_debug("event=sasl-log message=\"%s\"", message);
    return SASL_OK;
}

/* The canonical form of a user name on DOMAIN: "localpart@domain", its
 * localpart through nodeprep (xe_jid_normalize). 0; -1 for a name that is
 * not a user of this domain (empty, too long, a NUL, another domain); -2,
 * with *why_r, for a name that is no JID (a localpart that fails nodeprep,
 * a resource). */
static int
canon_jid(const char *domain, const char *in, size_t inlen, char *out, size_t outmax,
          const char **why_r)
{
    char jid[3072];

    if (inlen == 0 || inlen >= 1024 || memchr(in, '\0', inlen))
        return -1;
    if (memchr(in, '@', inlen))
        snprintf(jid, sizeof(jid), "%.*s", (int)inlen, in);
    else
        snprintf(jid, sizeof(jid), "%.*s@%s", (int)inlen, in, domain);
    if (xe_jid_normalize(jid, sizeof(jid), why_r) != 0)
        return -2;
    if (strcmp(strchr(jid, '@') + 1, domain) != 0 || strlen(jid) >= outmax)
        return -1;
    strcpy(out, jid);
    return 0;
}

/* Canonical form: "localpart@domain" of the stream's domain, lower case. */
static int
canon_cb(sasl_conn_t *conn, void *context, const char *in, unsigned inlen, unsigned flags,
         const char *user_realm, char *out, unsigned out_max, unsigned *out_len)
{
    struct xe_sasl *s = context;
    const char *why = "not a JID";
    char jid[3072];
    int r;

    if (inlen == 0 || inlen >= 1024 || memchr(in, '\0', inlen))
        return (flags & SASL_CU_AUTHZID) && !(flags & SASL_CU_AUTHID) ? SASL_NOAUTHZ
                                                                      : SASL_BADAUTH;
    if ((r = canon_jid(s->domain, in, inlen, jid, sizeof(jid), &why)) < 0) {
        /* an authzid of another domain or with a resource: not this user */
        if (flags & SASL_CU_AUTHID) {
            /* a name that fails nodeprep is a malformed request, as
             * Prosody answers it (util/sasl: "Invalid username") */
            if (r == -2)
                s->bad_name = why;
            return SASL_BADAUTH;
        }
        return SASL_NOAUTHZ;
    }
    if (strlen(jid) >= out_max)
        return SASL_BUFOVER;
    strcpy(out, jid);
    *out_len = (unsigned)strlen(jid);
    return SASL_OK;
}

static int
authorize_cb(sasl_conn_t *conn, void *context, const char *requested_user, unsigned rlen,
             const char *auth_identity, unsigned alen, const char *def_realm,
             unsigned urlen, struct propctx *propctx)
{
    struct xe_sasl *s = context;

    /* a user may act only as herself */
    if (rlen == alen && memcmp(requested_user, auth_identity, alen) == 0)
        return SASL_OK;
    /* EXTERNAL: as any identity the client certificate vouches for */
    for (size_t i = 0; strcmp(s->mech, "EXTERNAL") == 0 && i < s->n_ext; i++)
        if (strlen(s->ext[i]) == rlen && memcmp(s->ext[i], requested_user, rlen) == 0)
            return SASL_OK;
    sasl_seterror(conn, SASL_NOLOG, "authzid is not the authenticated user");
    return SASL_NOAUTHZ;
}

/* ---- server-to-server with a pre-shared secret ---- */

/* A peer session's options: its own mechanism list; the rest as for users
 * (the auxprop plugin, which sees this callback and serves the secret). */
static int
peer_getopt_cb(void *context, const char *plugin_name, const char *option,
               const char **result, unsigned *len)
{
    struct xe_sasl *s = context;

    if (strcmp(option, PEER_OPTION) == 0) {
        *result = s->peer_token;
        if (len)
            *len = (unsigned)strlen(*result);
        return SASL_OK;
    }
    if (strcmp(option, "mech_list") == 0) {
        *result = s->peer_mech_list;
        if (len)
            *len = (unsigned)strlen(*result);
        return SASL_OK;
    }
    return getopt_cb(NULL, plugin_name, option, result, len);
}

/* The only name a peer session knows: the peer's domain (lower case). */
static int
peer_canon_cb(sasl_conn_t *conn, void *context, const char *in, unsigned inlen,
              unsigned flags, const char *user_realm, char *out, unsigned out_max,
              unsigned *out_len)
{
    struct xe_sasl *s = context;
    size_t n = strlen(s->peer);

    if (inlen != n || strncasecmp(in, s->peer, n) != 0)
        return (flags & SASL_CU_AUTHZID) && !(flags & SASL_CU_AUTHID) ? SASL_NOAUTHZ
                                                                      : SASL_BADAUTH;
    if (n >= out_max)
        return SASL_BUFOVER;
    memcpy(out, s->peer, n + 1);
    *out_len = (unsigned)n;
    return SASL_OK;
}

/* PLAIN's check (Cyrus calls it through checkpass_cb): the password against
 * the stored SCRAM secrets; an unknown user costs the same work. */
static int
check_plain(const char *user, const char *pass, size_t passlen, bool *store_error)
{
    struct xe_user *u = xe_calloc(1, sizeof(*u));
    char *err = NULL;
    int r, ret = SASL_BADAUTH;

    r = xe_userstore_get(g_store, user, u, &err);
    if (r == XE_US_OK) {
        if (xe_user_check_password(u, pass, passlen))
            ret = SASL_OK;
    } else if (r == XE_US_NOTFOUND) {
        /* spend the same work as for a real user */
        fake_secret(user, XE_SCRAM_SHA256, &u->scram[XE_SCRAM_SHA256]);
        (void)xe_user_check_password(u, pass, passlen);
        ret = SASL_NOUSER;
    } else {
        xe_err("event=store-error user=%s error=\"%s\"", user, err ? err : "?");
        *store_error = true;
        ret = SASL_FAIL;
    }
    free(err);
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    return ret;
}

static int
checkpass_cb(sasl_conn_t *conn, void *context, const char *user, const char *pass,
             unsigned passlen, struct propctx *propctx)
{
    struct xe_sasl *s = context;
    return check_plain(user, pass, passlen, &s->store_error);
}

/* After the credentials matched: the account must still exist and be
 * enabled. XE_SASL_OK, or XE_SASL_FAIL with *cond_r and DETAIL set. */
static int
check_usable(const char *jid, enum xe_sasl_cond *cond_r, char *detail, size_t dmax)
{
    struct xe_user *u = xe_calloc(1, sizeof(*u));
    char *err = NULL;
    int g = xe_userstore_get_state(g_store, jid, u, &err);
    bool disabled = g == XE_US_OK && u->disabled;
    bool expired = g == XE_US_OK && u->expires > 0 && xe_now_seconds() >= u->expires;

    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    free(err);
    if (g != XE_US_OK) {
        snprintf(detail, dmax, "user vanished or store unreadable");
        *cond_r =
            g == XE_US_NOTFOUND ? XE_SASL_NOT_AUTHORIZED : XE_SASL_TEMPORARY_AUTH_FAILURE;
        return XE_SASL_FAIL;
    }
    if (disabled) {
        snprintf(detail, dmax, "account disabled");
        *cond_r = XE_SASL_ACCOUNT_DISABLED;
        return XE_SASL_FAIL;
    }
    if (expired) {
        /* RFC 6120 6.5.2: the right password, but it has expired (the
         * operator sets a new one: xedgectl user passwd) */
        snprintf(detail, dmax, "password expired");
        *cond_r = XE_SASL_CREDENTIALS_EXPIRED;
        return XE_SASL_FAIL;
    }
    return XE_SASL_OK;
}

/* ---- the adapter ---------------------------------------------------------- */

static void *
mutex_alloc(void)
{
    pthread_mutex_t *m = xe_malloc(sizeof(*m));

    pthread_mutex_init(m, NULL);
    return m;
}

static int
mutex_lock(void *m)
{
    return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int
mutex_unlock(void *m)
{
    return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void
mutex_free(void *m)
{
    pthread_mutex_destroy(m);
    free(m);
}

int
xe_sasl_global_init(struct xe_userstore *store, const char *mech_list,
                    unsigned iterations, char **error_r)
{
    static sasl_callback_t global_cbs[] = {
        {SASL_CB_GETOPT, XE_CB(getopt_cb), NULL},
        {SASL_CB_LOG, XE_CB(log_cb), NULL},
        {SASL_CB_VERIFYFILE, XE_CB(xe_sasl_rand_verifyfile), NULL}, /* see sasl_rand.c */
        {SASL_CB_LIST_END, NULL, NULL},
    };
    int r;

    pthread_mutex_lock(&g_mu);
    if (g_store != store)
        g_store = store;
    if (g_mech_list) {
        struct old_list *o = xe_calloc(1, sizeof(*o));
        o->list = g_mech_list;
        o->next = g_old_lists;
        g_old_lists = o;
    }
    g_mech_list = xe_strdup(mech_list);
    g_iterations = iterations;
    pthread_mutex_unlock(&g_mu);
    if (g_initialised)
        return 0;
    /* Cyrus's own mutexes are no-ops unless it is given real ones: the
     * worker threads run sessions at once */
    sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
    if (RAND_bytes(g_fake_key, sizeof(g_fake_key)) != 1) {
        *error_r = xe_strdup("no randomness for SASL");
        return -1;
    }
    r = sasl_auxprop_add_plugin("xedge", auxprop_init);
    if (r != SASL_OK) {
        *error_r = xe_asprintf("cannot register the auxprop plugin: %s",
                               sasl_errstring(r, NULL, NULL));
        return -1;
    }
    r = sasl_server_init(global_cbs, "xedge");
    if (r != SASL_OK) {
        *error_r = xe_asprintf("sasl_server_init: %s", sasl_errstring(r, NULL, NULL));
        return -1;
    }
    /* SCRAM, DIGEST-MD5, CRAM-MD5: nonces from OpenSSL. Before
     * sasl_client_init: the end of each init rebuilds the list
     * sasl_global_listmech returns (the offer reads it) from the mechanisms
     * registered by then. */
    xe_sasl_rand_register(XE_SASL_RAND_SERVER);
    {
        static sasl_callback_t client_cbs[] = {
            {SASL_CB_LOG, XE_CB(log_cb), NULL},
            {SASL_CB_VERIFYFILE, XE_CB(xe_sasl_rand_verifyfile_client), NULL},
            {SASL_CB_LIST_END, NULL, NULL},
        };
        r = sasl_client_init(client_cbs); /* server-to-server SASL as the client */
        if (r != SASL_OK) {
            *error_r = xe_asprintf("sasl_client_init: %s", sasl_errstring(r, NULL, NULL));
            return -1;
        }
    }
    /* the same mechanisms as the client (the global list already names
     * them: the server half has them all) */
    xe_sasl_rand_register(XE_SASL_RAND_CLIENT);
    g_initialised = true;
    return 0;
}

/* Whether Cyrus has loaded the mechanism NAME (its first len bytes: the
 * name without -PLUS) and the mech_list option still names it. */
static bool
cyrus_has(const char *name, size_t len)
{
    const char **loaded = sasl_global_listmech();
    bool listed = false;

    pthread_mutex_lock(&g_mu);
    for (const char *p = g_mech_list; p && *p && !listed;) {
        size_t w = strcspn(p, " ");
        listed = w == len && strncasecmp(p, name, len) == 0;
        p += w;
        p += strspn(p, " ");
    }
    pthread_mutex_unlock(&g_mu);
    for (size_t i = 0; listed && loaded && loaded[i]; i++)
        if (strlen(loaded[i]) == len && strncasecmp(loaded[i], name, len) == 0)
            return true;
    return false;
}

bool
xe_sasl_mech_loaded(const char *name)
{
    const char **loaded = g_initialised ? sasl_global_listmech() : NULL;
    size_t len = strlen(name);

    if (len > 5 && strcasecmp(name + len - 5, "-PLUS") == 0)
        len -= 5;
    for (size_t i = 0; loaded && loaded[i]; i++)
        if (strlen(loaded[i]) == len && strncasecmp(loaded[i], name, len) == 0)
            return true;
    return false;
}

void
xe_sasl_global_done(void)
{
    if (g_initialised) {
        sasl_client_done();
        sasl_server_done();
        xe_sasl_rand_done();
    }
    g_initialised = false;
    free(g_mech_list);
    g_mech_list = NULL;
    while (g_old_lists) {
        struct old_list *o = g_old_lists;
        g_old_lists = o->next;
        free(o->list);
        free(o);
    }
}

/* Which of the session's bindings to give Cyrus for an attempt: the type the
 * client names in a SCRAM GS2 header ("p=tls-unique,..."), else the first
 * (preferred) one, so that Cyrus refuses a client that claims binding
 * support while we offer it ("y,,": a downgrade) and a type we do not have. */
static struct xe_cbind *
pick_cb(struct xe_sasl *s, const char *in, size_t inlen)
{
    /* without a -PLUS mechanism on offer, there is no binding to protect: a
     * client that says "y" is right */
    if (s->n_cb == 0 || !s->plus_offered)
        return NULL;
    if (in && inlen > 2 && in[0] == 'p' && in[1] == '=') {
        const char *end = memchr(in + 2, ',', inlen - 2);
        size_t tl = end ? (size_t)(end - (in + 2)) : 0;
        for (size_t i = 0; end && i < s->n_cb; i++)
            if (strlen(s->cb[i].type) == tl && memcmp(s->cb[i].type, in + 2, tl) == 0) {
                xe_cbind_fill(&s->cb[i]); /* the data is used: derive it now */
                return &s->cb[i];
            }
    }
    /* A GS2 header of "n" or "y" uses no binding data (Cyrus only needs to
     * know one is offered): the TLS exporter is not derived for them, the
     * common login. Anything else may still bind in a later step. */
    if (!(in && inlen > 0 && (in[0] == 'n' || in[0] == 'y')))
        xe_cbind_fill(&s->cb[0]);
    return &s->cb[0];
}

static void
use_cb(struct xe_sasl *s, struct xe_cbind *cb)
{
    s->cyrus_cb.name = cb->type;
    s->cyrus_cb.critical = 0; /* binding is offered, not required */
    s->cyrus_cb.len = cb->len;
    s->cyrus_cb.data = cb->data;
}

/* A fresh Cyrus connection for an attempt, with the channel binding cb
 * (NULL: none). */
/* mech: the mechanism of the attempt (NULL when only listing). RFC 6120 lets
 * <success/> carry the server's last data, and SCRAM's server signature
 * rides there; DIGEST-MD5 keeps the older form of the seed: rspauth in a
 * second challenge, an empty response, then <success/>. */
static int
new_conn(struct xe_sasl *s, struct xe_cbind *cb, const char *mech, char **error_r)
{
    sasl_security_properties_t sp;
    sasl_ssf_t ssf = s->tls ? 256 : 0;
    int r;

    if (s->conn)
        sasl_dispose(&s->conn);
    if (cb)
        use_cb(s, cb);
    r = sasl_server_new("xmpp", s->domain, s->domain, NULL, NULL, s->cbs,
                        mech && strcmp(mech, "DIGEST-MD5") == 0 ? 0 : SASL_SUCCESS_DATA,
                        &s->conn);
    if (r != SASL_OK) {
        *error_r = xe_asprintf("sasl_server_new: %s", sasl_errstring(r, NULL, NULL));
        return -1;
    }
    memset(&sp, 0, sizeof(sp));
    sp.min_ssf = 0;
    sp.max_ssf = 0; /* no SASL security layer: TLS protects the stream */
    sp.maxbufsize = 0;
    sp.security_flags = s->tls ? 0 : SASL_SEC_NOPLAINTEXT;
    if (sasl_setprop(s->conn, SASL_SSF_EXTERNAL, &ssf) != SASL_OK ||
        sasl_setprop(s->conn, SASL_SEC_PROPS, &sp) != SASL_OK) {
        *error_r = xe_strdup("cannot set SASL security properties");
        return -1;
    }
    if (s->n_ext && sasl_setprop(s->conn, SASL_AUTH_EXTERNAL, s->ext[0]) != SASL_OK) {
        *error_r = xe_strdup("cannot set the external identity");
        return -1;
    }
    if (cb && sasl_setprop(s->conn, SASL_CHANNEL_BINDING, &s->cyrus_cb) != SASL_OK) {
        *error_r = xe_strdup("cannot set the channel binding");
        return -1;
    }
    return 0;
}

/* Whether the session's offer has NAME already. */
static bool
offers(const struct xe_sasl *s, const char *name)
{
    for (size_t i = 0; i < s->n_mechs; i++)
        if (strcmp(s->mechs[i], name) == 0)
            return true;
    return false;
}

struct xe_sasl *
xe_sasl_new(const char *domain, char *const *mechs, size_t n_mechs, bool tls,
            char **error_r)
{
    return xe_sasl_new_tls(domain, mechs, n_mechs, tls, NULL, 0, NULL, 0, error_r);
}

struct xe_sasl *
xe_sasl_new_tls(const char *domain, char *const *mechs, size_t n_mechs, bool tls,
                const struct xe_cbind *cb, size_t n_cb, const char (*ext)[3072],
                size_t n_ext, char **error_r)
{
    struct xe_sasl *s = xe_calloc(1, sizeof(*s));

    if (n_ext > 0) { /* Cyrus offers EXTERNAL once it knows the identity */
        s->ext = xe_calloc(n_ext, sizeof(*s->ext));
        memcpy(s->ext, ext, n_ext * sizeof(*s->ext));
        s->n_ext = n_ext;
    }
    s->domain = xe_strdup(domain);
    xe_tolower_ascii(s->domain);
    s->tls = tls;
    s->cbs[0] = (sasl_callback_t){SASL_CB_CANON_USER, XE_CB(canon_cb), s};
    s->cbs[1] = (sasl_callback_t){SASL_CB_PROXY_POLICY, XE_CB(authorize_cb), s};
    s->cbs[2] =
        (sasl_callback_t){SASL_CB_SERVER_USERDB_CHECKPASS, XE_CB(checkpass_cb), s};
    s->cbs[3] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    for (size_t i = 0; i < n_cb && s->n_cb < XE_CB_MAX; i++)
        s->cb[s->n_cb++] = cb[i];
    /* No Cyrus connection yet: each attempt makes its own (xe_sasl_start),
     * and the offer below does not need one (a sasl_server_new per login
     * saved). */
    if (!g_initialised) {
        *error_r = xe_strdup("SASL is not initialised");
        goto fail;
    }
    /* Offer what is configured, in the configured order, that Cyrus has
     * loaded and this session can do: a -PLUS variant with a channel
     * binding, EXTERNAL with a verified certificate, PLAIN under TLS. (Not
     * through sasl_listmech: Cyrus 2.1.28 sizes its buffer one byte short
     * when every mechanism it has loaded has a -PLUS variant, e.g. when
     * SCRAM-SHA-256(-PLUS) is the only one configured.) */
    for (size_t i = 0; i < n_mechs; i++) {
        const struct xe_mech *m = xe_mech_find(mechs[i]);
        if (m == NULL || offers(s, m->name) || ((m->flags & XE_MECH_TLS) && !tls) ||
            ((m->flags & XE_MECH_PLUS) && s->n_cb == 0) ||
            ((m->flags & XE_MECH_CERT) && s->n_ext == 0) ||
            !cyrus_has(m->name, m->cyrus_len))
            continue;
        /* distinct names of the table: always room (mech.h) */
        s->mechs[s->n_mechs++] = m->name;
        s->plus_offered = s->plus_offered || (m->flags & XE_MECH_PLUS);
    }
    return s;
fail:
    xe_sasl_free(&s);
    return NULL;
}

/* The -PLUS name of a SCRAM mechanism (the table's string), or NULL. */
static const char *
plus_name(const char *mech)
{
    size_t l = strlen(mech);

    for (size_t i = 0; i < XE_MECH_COUNT; i++)
        if ((xe_mechs[i].flags & XE_MECH_PLUS) && xe_mechs[i].cyrus_len == l &&
            strncmp(xe_mechs[i].name, mech, l) == 0)
            return xe_mechs[i].name;
    return NULL;
}

struct xe_sasl *
xe_sasl_new_peer(const char *local, const char *peer, const unsigned char *secret,
                 size_t secret_len, char *const *mechs, size_t n_mechs, char **error_r)
{
    return xe_sasl_new_peer_tls(local, peer, secret, secret_len, mechs, n_mechs, NULL, 0,
                                error_r);
}

struct xe_sasl *
xe_sasl_new_peer_tls(const char *local, const char *peer, const unsigned char *secret,
                     size_t secret_len, char *const *mechs, size_t n_mechs,
                     const struct xe_cbind *cb, size_t n_cb, char **error_r)
{
    struct xe_sasl *s = xe_calloc(1, sizeof(*s));
    size_t off = 0;

    s->domain = xe_strdup(local);
    xe_tolower_ascii(s->domain);
    s->peer = xe_strdup(peer);
    xe_tolower_ascii(s->peer);
    s->secret = xe_malloc(secret_len ? secret_len : 1);
    memcpy(s->secret, secret, secret_len);
    s->secret_len = secret_len;
    s->tls = true; /* offered only under TLS */
    snprintf(s->peer_token, sizeof(s->peer_token), "%s", PEER_TOKEN);
    s->cbs[0] = (sasl_callback_t){SASL_CB_GETOPT, XE_CB(peer_getopt_cb), s};
    s->cbs[1] = (sasl_callback_t){SASL_CB_CANON_USER, XE_CB(peer_canon_cb), s};
    s->cbs[2] = (sasl_callback_t){SASL_CB_PROXY_POLICY, XE_CB(authorize_cb), s};
    s->cbs[3] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    for (size_t i = 0; i < n_cb && s->n_cb < XE_CB_MAX; i++)
        s->cb[s->n_cb++] = cb[i];
    for (size_t i = 0; i < n_mechs; i++) {
        const struct xe_mech *m = xe_mech_find(mechs[i]);
        const char *plus;
        /* shared-secret mechanisms only: no PLAIN, EXTERNAL or ANONYMOUS */
        if (m == NULL || !(m->flags & XE_MECH_PEER) || offers(s, m->name) ||
            !cyrus_has(m->name, m->cyrus_len) ||
            off + m->cyrus_len + 2 > sizeof(s->peer_mech_list))
            continue;
        /* each SCRAM mechanism with its -PLUS variant first, under TLS
         * with a channel binding: it binds the secret's proof to this TLS
         * session, which a certificate that does not verify cannot */
        plus = s->n_cb ? plus_name(m->name) : NULL;
        if (plus && !offers(s, plus) && s->n_mechs + 1 < XE_MECH_COUNT &&
            off + strlen(plus) + m->cyrus_len + 3 <= sizeof(s->peer_mech_list)) {
            s->mechs[s->n_mechs++] = plus;
            s->plus_offered = true;
            off +=
                (size_t)snprintf(s->peer_mech_list + off, sizeof(s->peer_mech_list) - off,
                                 "%s%s", off ? " " : "", plus);
        }
        s->mechs[s->n_mechs++] = m->name;
        off += (size_t)snprintf(s->peer_mech_list + off, sizeof(s->peer_mech_list) - off,
                                "%s%s", off ? " " : "", m->name);
    }
    if (new_conn(s, NULL, NULL, error_r) < 0) {
        xe_sasl_free(&s);
        return NULL;
    }
    return s;
}

void
xe_sasl_free(struct xe_sasl **sp)
{
    struct xe_sasl *s = *sp;

    if (s == NULL)
        return;
    free(s->jid);
    if (s->conn)
        sasl_dispose(&s->conn);
    if (s->secret)
        OPENSSL_cleanse(s->secret, s->secret_len);
    free(s->secret);
    free(s->peer);
    OPENSSL_cleanse(s->cb, sizeof(s->cb));
    free(s->ext);
    free(s->domain);
    free(s);
    *sp = NULL;
}

size_t
xe_sasl_cb_types(const struct xe_sasl *s, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; s->plus_offered && i < s->n_cb && n < max; i++)
        if (s->cb[i].advertise)
            out[n++] = s->cb[i].type;
    return n;
}

size_t
xe_sasl_mechanisms(const struct xe_sasl *s, const char **out, size_t max)
{
    size_t n = 0;
    for (; n < s->n_mechs && n < max; n++)
        out[n] = s->mechs[n];
    return n;
}

static enum xe_sasl_cond
map_cyrus(int r)
{
    switch (r) {
    case SASL_BADPROT:
    case SASL_BADPARAM:
        return XE_SASL_MALFORMED_REQUEST;
    case SASL_NOAUTHZ:
        return XE_SASL_INVALID_AUTHZID;
    case SASL_BADAUTH:
    case SASL_NOUSER:
    case SASL_NOVERIFY:
        return XE_SASL_NOT_AUTHORIZED;
    case SASL_NOMECH:
        return XE_SASL_INVALID_MECHANISM;
    case SASL_TOOWEAK:
        return XE_SASL_MECHANISM_TOO_WEAK;
    case SASL_ENCRYPT:
        return XE_SASL_ENCRYPTION_REQUIRED;
    case SASL_DISABLED:
        return XE_SASL_ACCOUNT_DISABLED;
    case SASL_EXPIRED:
        return XE_SASL_CREDENTIALS_EXPIRED;
    default:
        return XE_SASL_TEMPORARY_AUTH_FAILURE;
    }
}

/* The JID, bounded as the array it replaces was (3071 bytes). */
static void
set_jid(struct xe_sasl *s, const char *jid)
{
    free(s->jid);
    s->jid = xe_strndup(jid, strnlen(jid, 3071));
}

static int
finish(struct xe_sasl *s, int r, const char **out, size_t *outlen, unsigned olen,
       enum xe_sasl_cond *cond_r)
{
    const void *user = NULL;

    *outlen = olen;
    if (r == SASL_CONTINUE)
        return XE_SASL_CONTINUE;
    if (r != SASL_OK) {
        const char *d = sasl_errdetail(s->conn);
        const void *who = NULL;
        snprintf(s->detail, sizeof(s->detail), "%s",
                 d ? d : sasl_errstring(r, NULL, NULL));
        /* Cyrus may quote what the client sent: keep the log's quoting intact */
        for (char *p = s->detail; *p; p++)
            if (*p == '"' || *p == '\\')
                *p = '\'';
        if (sasl_getprop(s->conn, SASL_AUTHUSER, &who) == SASL_OK && who)
            set_jid(s, (const char *)who);
        *cond_r = s->store_error ? XE_SASL_TEMPORARY_AUTH_FAILURE : map_cyrus(r);
        if (s->bad_name != NULL) {
            snprintf(s->detail, sizeof(s->detail), "the user name is not a valid JID: %s",
                     s->bad_name);
            *cond_r = XE_SASL_MALFORMED_REQUEST;
        }
        /* a binding that does not match, or of a type we cannot verify, is a
         * failed authentication, not a malformed request */
        if (strstr(s->detail, "hannel binding") != NULL)
            *cond_r = XE_SASL_NOT_AUTHORIZED;
        return XE_SASL_FAIL;
    }
    if (sasl_getprop(s->conn, SASL_USERNAME, &user) != SASL_OK || user == NULL) {
        snprintf(s->detail, sizeof(s->detail), "no user name after success");
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        return XE_SASL_FAIL;
    }
    if (s->peer) {
        /* a peer: its domain, which canon_user alone let through (Cyrus
         * appends our realm) */
        const char *u = user;
        size_t pl = strlen(s->peer);
        if (strcmp(u, s->peer) != 0 && !(strncmp(u, s->peer, pl) == 0 && u[pl] == '@' &&
                                         strcmp(u + pl + 1, s->domain) == 0)) {
            snprintf(s->detail, sizeof(s->detail), "not the peer's domain");
            *cond_r = XE_SASL_NOT_AUTHORIZED;
            return XE_SASL_FAIL;
        }
        set_jid(s, s->peer);
        return XE_SASL_OK;
    }
    if (strcmp(s->mech, "ANONYMOUS") == 0) {
        /* RFC 4505: no account; the session gets a random temporary JID on
         * the domain, and the backend is told it is anonymous */
        char id[33];
        xe_random_id(id);
        free(s->jid);
        s->jid = xe_asprintf("anon-%.16s@%s", id, s->domain);
        s->anonymous = true;
        return XE_SASL_OK;
    }
    set_jid(s, (const char *)user);
    /* the account must still exist and be enabled */
    return check_usable(s->jid, cond_r, s->detail, sizeof(s->detail));
}

/* RFC 5802 sections 6 and 7: the gs2-cbind-flag of a SCRAM client-first
 * message against the mechanism named, checked before Cyrus sees it. Cyrus
 * 2.1.28 treats SCRAM-*-PLUS and SCRAM-* alike: it would take a -PLUS
 * exchange whose flag is "n" (nothing bound) as a success, and refuses "y"
 * only after the whole exchange. 0, or -1 with *cond_r and the detail:
 * - a -PLUS mechanism with "n" or "y": <malformed-request/>. The name says
 *   the client binds, its message says it does not (or thinks it cannot):
 *   the request contradicts itself, no credential was tried, and the same
 *   request can never succeed (as Prosody answers it).
 * - "y" on a SCRAM mechanism while a -PLUS one is on offer: the client
 *   supports binding but did not see our -PLUS mechanisms, a sign that the
 *   offer was stripped on the way (a downgrade); the server MUST fail the
 *   authentication: <not-authorized/> (what Cyrus answers for it too). */
static int
check_gs2(struct xe_sasl *s, const char *in, size_t inlen, enum xe_sasl_cond *cond_r)
{
    const struct xe_mech *m = xe_mech_find(s->mech);
    char flag = inlen > 0 ? in[0] : '\0';

    if (m == NULL || strncmp(m->name, "SCRAM-", 6) != 0 || (flag != 'n' && flag != 'y'))
        return 0; /* "p=" and anything malformed: Cyrus judges */
    if (m->flags & XE_MECH_PLUS) {
        snprintf(s->detail, sizeof(s->detail),
                 "%s with gs2 flag '%c': a -PLUS mechanism without channel binding",
                 s->mech, flag);
        *cond_r = XE_SASL_MALFORMED_REQUEST;
        return -1;
    }
    if (flag == 'y' && s->plus_offered) {
        snprintf(s->detail, sizeof(s->detail),
                 "client incorrectly assumed server had no channel binding (gs2 "
                 "flag 'y' while -PLUS is offered: a downgrade)");
        *cond_r = XE_SASL_NOT_AUTHORIZED;
        return -1;
    }
    return 0;
}

int
xe_sasl_start(struct xe_sasl *s, const char *mech, const char *in, size_t inlen,
              const char **out, size_t *outlen, enum xe_sasl_cond *cond_r)
{
    unsigned olen = 0;
    char *err = NULL;
    bool offered = false;
    int r;

    *out = NULL;
    *outlen = 0;
    s->detail[0] = '\0';
    free(s->jid);
    s->jid = NULL;
    s->store_error = false;
    s->bad_name = NULL;
    s->anonymous = false;
    s->gs2_pending = false;
    for (size_t i = 0; i < s->n_mechs; i++)
        offered = offered || strcmp(s->mechs[i], mech) == 0;
    if (!offered) {
        snprintf(s->detail, sizeof(s->detail), "mechanism not offered");
        *cond_r = XE_SASL_INVALID_MECHANISM;
        return XE_SASL_FAIL;
    }
    snprintf(s->mech, sizeof(s->mech), "%s", mech);
    if (in == NULL) /* SCRAM: the client-first message comes as a response */
        s->gs2_pending = strncmp(mech, "SCRAM-", 6) == 0;
    else if (check_gs2(s, in, inlen, cond_r) < 0) {
        if (s->conn) /* no earlier attempt goes on */
            sasl_dispose(&s->conn);
        return XE_SASL_FAIL;
    }
    if (new_conn(s, pick_cb(s, in, inlen), mech, &err) < 0) {
        snprintf(s->detail, sizeof(s->detail), "%s", err);
        free(err);
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        return XE_SASL_FAIL;
    }
    r = sasl_server_start(s->conn, mech, in, (unsigned)inlen, out, &olen);
    return finish(s, r, out, outlen, olen, cond_r);
}

int
xe_sasl_step(struct xe_sasl *s, const char *in, size_t inlen, const char **out,
             size_t *outlen, enum xe_sasl_cond *cond_r)
{
    unsigned olen = 0;
    int r;

    *out = NULL;
    *outlen = 0;
    if (s->conn == NULL) { /* no attempt started */
        snprintf(s->detail, sizeof(s->detail), "no authentication in progress");
        *cond_r = XE_SASL_MALFORMED_REQUEST;
        return XE_SASL_FAIL;
    }
    if (s->gs2_pending) {
        s->gs2_pending = false;
        if (check_gs2(s, in, inlen, cond_r) < 0) {
            sasl_dispose(&s->conn); /* the attempt is over */
            return XE_SASL_FAIL;
        }
    }
    r = sasl_server_step(s->conn, in, (unsigned)inlen, out, &olen);
    return finish(s, r, out, outlen, olen, cond_r);
}

const char *
xe_sasl_jid(const struct xe_sasl *s)
{
    return s->jid ? s->jid : "";
}

bool
xe_sasl_anonymous(const struct xe_sasl *s)
{
    return s->anonymous;
}

const char *
xe_sasl_mech(const struct xe_sasl *s)
{
    return s->mech;
}

const char *
xe_sasl_detail(const struct xe_sasl *s)
{
    return s->detail;
}

/* ---- server-to-server, the initiating side ------------------------------ */

struct xe_sasl_client {
    sasl_conn_t *conn;
    char *authname, *realm;
    sasl_secret_t *pass;
    sasl_callback_t cbs[6];
    char mech[32];
    char detail[256];
    struct xe_cbind cb;              /* the channel binding, when set */
    sasl_channel_binding_t cyrus_cb; /* ... as Cyrus takes it */
};

static int
client_simple_cb(void *context, int id, const char **result, unsigned *len)
{
    struct xe_sasl_client *c = context;

    /* the authentication identity is our domain; no authorization identity */
    *result = id == SASL_CB_AUTHNAME ? c->authname : "";
    if (len)
        *len = (unsigned)strlen(*result);
    return SASL_OK;
}

static int
client_pass_cb(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
    struct xe_sasl_client *c = context;

    *psecret = c->pass;
    return SASL_OK;
}

static int
client_realm_cb(void *context, int id, const char **availrealms, const char **result)
{
    struct xe_sasl_client *c = context;

    /* DIGEST-MD5: the realm the server offers, else its domain */
    *result = availrealms && availrealms[0] ? availrealms[0] : c->realm;
    return SASL_OK;
}

struct xe_sasl_client *
xe_sasl_client_new(const char *local, const char *remote, const unsigned char *secret,
                   size_t secret_len, char **error_r)
{
    struct xe_sasl_client *c = xe_calloc(1, sizeof(*c));
    sasl_security_properties_t sp;
    sasl_ssf_t ssf = 256;
    int r;

    c->authname = xe_strdup(local);
    c->realm = xe_strdup(remote);
    c->pass = xe_calloc(1, sizeof(*c->pass) + secret_len + 1);
    c->pass->len = secret_len;
    memcpy(c->pass->data, secret, secret_len);
    c->cbs[0] = (sasl_callback_t){SASL_CB_AUTHNAME, XE_CB(client_simple_cb), c};
    c->cbs[1] = (sasl_callback_t){SASL_CB_USER, XE_CB(client_simple_cb), c};
    c->cbs[2] = (sasl_callback_t){SASL_CB_PASS, XE_CB(client_pass_cb), c};
    c->cbs[3] = (sasl_callback_t){SASL_CB_GETREALM, XE_CB(client_realm_cb), c};
    c->cbs[4] = (sasl_callback_t){SASL_CB_LOG, XE_CB(log_cb), NULL};
    c->cbs[5] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    r = sasl_client_new("xmpp", remote, NULL, NULL, c->cbs, SASL_SUCCESS_DATA, &c->conn);
    if (r != SASL_OK) {
        *error_r = xe_asprintf("sasl_client_new: %s", sasl_errstring(r, NULL, NULL));
        xe_sasl_client_free(&c);
        return NULL;
    }
    memset(&sp, 0, sizeof(sp));
    sp.max_ssf = 0; /* no SASL security layer: TLS protects the stream */
    if (sasl_setprop(c->conn, SASL_SSF_EXTERNAL, &ssf) != SASL_OK ||
        sasl_setprop(c->conn, SASL_SEC_PROPS, &sp) != SASL_OK) {
        *error_r = xe_strdup("cannot set SASL security properties");
        xe_sasl_client_free(&c);
        return NULL;
    }
    return c;
}

void
xe_sasl_client_free(struct xe_sasl_client **cp)
{
    struct xe_sasl_client *c = *cp;

    if (c == NULL)
        return;
    if (c->conn)
        sasl_dispose(&c->conn);
    if (c->pass) {
        OPENSSL_cleanse(c->pass->data, c->pass->len);
        free(c->pass);
    }
    free(c->authname);
    free(c->realm);
    OPENSSL_cleanse(&c->cb, sizeof(c->cb));
    free(c);
    *cp = NULL;
}

static int
client_result(struct xe_sasl_client *c, int r, unsigned olen, size_t *outlen)
{
    *outlen = olen;
    if (r == SASL_OK)
        return XE_SASL_OK;
    if (r == SASL_CONTINUE)
        return XE_SASL_CONTINUE;
    snprintf(c->detail, sizeof(c->detail), "%s", sasl_errdetail(c->conn));
    for (char *p = c->detail; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
    return XE_SASL_FAIL;
}

int
xe_sasl_client_start(struct xe_sasl_client *c, const char *mech, const char **out,
                     size_t *outlen)
{
    const char *chosen = NULL;
    unsigned olen = 0;
    int r;

    snprintf(c->mech, sizeof(c->mech), "%s", mech);
    *out = NULL;
    r = sasl_client_start(c->conn, mech, NULL, out, &olen, &chosen);
    return client_result(c, r, olen, outlen);
}

int
xe_sasl_client_step(struct xe_sasl_client *c, const char *in, size_t inlen,
                    const char **out, size_t *outlen)
{
    unsigned olen = 0;
    int r;

    *out = NULL;
    r = sasl_client_step(c->conn, in, (unsigned)inlen, NULL, out, &olen);
    return client_result(c, r, olen, outlen);
}

int
xe_sasl_client_set_cb(struct xe_sasl_client *c, const struct xe_cbind *cb)
{
    c->cb = *cb;
    if (xe_cbind_fill(&c->cb) == 0)
        return -1;
    c->cyrus_cb.name = c->cb.type;
    c->cyrus_cb.critical = 0;
    c->cyrus_cb.len = c->cb.len;
    c->cyrus_cb.data = c->cb.data;
    return sasl_setprop(c->conn, SASL_CHANNEL_BINDING, &c->cyrus_cb) == SASL_OK ? 0 : -1;
}

const char *
xe_sasl_client_detail(const struct xe_sasl_client *c)
{
    return c->detail;
}

/* ---- non-SASL authentication (XEP-0078) ---------------------------------- */

int
xe_sasl_check_plain(const char *domain, const char *user, const char *pass,
                    size_t passlen, char *jid_r, size_t jidmax, enum xe_sasl_cond *cond_r,
                    char *detail, size_t dmax)
{
    bool store_error = false;
    int r;

    jid_r[0] = '\0';
    if (canon_jid(domain, user, strlen(user), jid_r, jidmax, NULL) < 0) {
        jid_r[0] = '\0';
        snprintf(detail, dmax, "not a user name of this domain");
        *cond_r = XE_SASL_NOT_AUTHORIZED;
        return XE_SASL_FAIL;
    }
    r = check_plain(jid_r, pass, passlen, &store_error);
    if (r != SASL_OK) {
        snprintf(detail, dmax, "%s",
                 store_error        ? "the store cannot be read"
                 : r == SASL_NOUSER ? "no such user"
                                    : "wrong password");
        *cond_r = store_error ? XE_SASL_TEMPORARY_AUTH_FAILURE : XE_SASL_NOT_AUTHORIZED;
        return XE_SASL_FAIL;
    }
    return check_usable(jid_r, cond_r, detail, dmax);
}

int
xe_sasl_check_digest(const char *domain, const char *user, const char *stream_id,
                     const char *digest, char *jid_r, size_t jidmax,
                     enum xe_sasl_cond *cond_r, char *detail, size_t dmax)
{
    struct xe_user *u = NULL;
    unsigned char md[SHA_DIGEST_LENGTH];
    char want[2 * SHA_DIGEST_LENGTH + 1], got[2 * SHA_DIGEST_LENGTH + 1];
    char *err = NULL;
    EVP_MD_CTX *ctx = NULL;
    int g, ret = XE_SASL_FAIL;
    bool match;

    *cond_r = XE_SASL_NOT_AUTHORIZED;
    jid_r[0] = '\0';
    if (canon_jid(domain, user, strlen(user), jid_r, jidmax, NULL) < 0) {
        jid_r[0] = '\0';
        snprintf(detail, dmax, "not a user name of this domain");
        return XE_SASL_FAIL;
    }
    /* hex, either case: 40 digits */
    if (strlen(digest) != 2 * SHA_DIGEST_LENGTH ||
        strspn(digest, "0123456789abcdefABCDEF") != 2 * SHA_DIGEST_LENGTH) {
        snprintf(detail, dmax, "the digest is not 40 hex digits");
        return XE_SASL_FAIL;
    }
    for (size_t i = 0; i <= 2 * SHA_DIGEST_LENGTH; i++)
        got[i] =
            (char)(digest[i] >= 'A' && digest[i] <= 'F' ? digest[i] + 32 : digest[i]);
    u = xe_calloc(1, sizeof(*u));
    g = xe_userstore_get(g_store, jid_r, u, &err);
    if (g != XE_US_OK && g != XE_US_NOTFOUND) {
        xe_err("event=store-error user=%s error=\"%s\"", jid_r, err ? err : "?");
        snprintf(detail, dmax, "the store cannot be read");
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        goto out;
    }
    if (g == XE_US_NOTFOUND || !u->legacy) {
        /* only a plaintext-equivalent gives the digest: fail as a wrong one */
        snprintf(detail, dmax, "%s",
                 g == XE_US_NOTFOUND ? "no such user" : "no legacy secret for digest");
        goto out;
    }
    /* XEP-0078: hex(SHA1(stream id || password)) */
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, stream_id, strlen(stream_id)) != 1 ||
        EVP_DigestUpdate(ctx, u->legacy_password, u->legacy_len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, NULL) != 1) {
        snprintf(detail, dmax, "cannot compute the digest");
        *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
        goto out;
    }
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    match = CRYPTO_memcmp(want, got, 2 * SHA_DIGEST_LENGTH) == 0;
    if (!match) {
        snprintf(detail, dmax, "wrong digest");
        goto out;
    }
    ret = check_usable(jid_r, cond_r, detail, dmax);
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(md, sizeof(md));
    OPENSSL_cleanse(want, sizeof(want));
    if (u) {
        OPENSSL_cleanse(u, sizeof(*u));
        free(u);
    }
    free(err);
    return ret;
}

int
xe_sasl_b64_decode(const char *in, size_t inlen, char *out, size_t outmax, size_t *outlen)
{
    unsigned ol = 0;

    if (inlen == 0) {
        *outlen = 0;
        return 0;
    }
    if (inlen > (size_t)UINT32_MAX / 2 ||
        sasl_decode64(in, (unsigned)inlen, out, (unsigned)outmax, &ol) != SASL_OK)
        return -1;
    *outlen = ol;
    return 0;
}

int
xe_sasl_b64_encode(const char *in, size_t inlen, char *out, size_t outmax, size_t *outlen)
{
    unsigned ol = 0;

    if (sasl_encode64(in, (unsigned)inlen, out, (unsigned)outmax, &ol) != SASL_OK)
        return -1;
    *outlen = ol;
    return 0;
}
