/* xedge: a CSPRNG for the nonces of Cyrus SASL's mechanisms, server and
 * client.
 *
 * Cyrus gives each connection's utilities (sasl_utils_t, made by
 * sasl_server_new and sasl_client_new) a random pool of its own: jrand48
 * over 48 bits of state, seeded on first use by opening and reading
 * /dev/urandom. The first use is the server nonce of SCRAM (create_nonce),
 * DIGEST-MD5 (create_nonce) and CRAM-MD5 (the challenge), and the client
 * nonce of SCRAM and DIGEST-MD5 (the cnonce), drawn with
 * utils->rand(utils->rpool, ...). So every login cost an open, a read and a
 * close, and the nonce was at most 48 bits of entropy stretched by an LCG.
 *
 * xedge loads these three plugins itself, through Cyrus's public interface,
 * once for each half: the SASL_CB_VERIFYFILE callbacks (one given to
 * sasl_server_init, one to sasl_client_init; both scan the same plugin
 * directory, each with its own callback, so a file skipped for one is still
 * scanned for the other) tell Cyrus to skip their files (their paths are
 * noted), and after each init xe_sasl_rand_register opens them, calls
 * their sasl_server_plug_init (or sasl_client_plug_init) and registers
 * copies of their mechanisms with sasl_server_add_plugin (or
 * sasl_client_add_plugin). Each copy's glob_context points to the
 * original's; its mech_new sets the connection's utils->rand to OpenSSL's
 * DRBG before calling the original mech_new, so the nonce (and any later
 * draw on that connection) is the DRBG's output and the pool is never
 * seeded. Only one copy of each mechanism is registered (Cyrus never loaded
 * the file for that half), so neither sasl_server_start nor
 * sasl_client_start (each takes the first match in its strength-sorted
 * list) can pick an unwrapped one, and mech_free runs once. The server
 * half is registered before sasl_client_init, as it was before the client
 * half existed: the end of each init rebuilds the list sasl_global_listmech
 * returns (both halves' names), which xedge's offer reads.
 *
 * xedge is a SASL client only to a peer server with a pre-shared secret
 * (s2s_out.c): SCRAM-SHA-1, -256, -512 (and -PLUS) and DIGEST-MD5, the
 * mechanisms with XE_MECH_PEER (mech.c). The whole client list of each file
 * is wrapped (CRAM-MD5's client draws nothing).
 *
 * The utilities are handed to plugins as const, but each connection's are
 * its own, allocated by sasl_server_new and sasl_client_new (lib/server.c
 * and lib/client.c in 2.1.28: _sasl_alloc_utils) and freed with it; rand
 * is a field of the public sasl_utils_t. Seeding the pool instead
 * (sasl_randseed) would keep the 48-bit generator. */
#include "sasl_rand.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/saslplug.h>
#include <sasl/saslutil.h>

#include "log.h"
#include "util.h"

#define N_SIDES 2 /* XE_SASL_RAND_SERVER, XE_SASL_RAND_CLIENT */

/* The plugin files taken over (the name Cyrus's loader looks for, and the
 * plugin name it would have registered them under). */
static const struct {
    const char *file;
    const char *plugname;
} wanted[] = {
    {"libscram.so", "scram"},
    {"libdigestmd5.so", "digestmd5"},
    {"libcrammd5.so", "crammd5"},
};
#define N_WANTED (sizeof(wanted) / sizeof(wanted[0]))

static const char *const side_name[N_SIDES] = {"server", "client"};
static const char *const entry_name[N_SIDES] = {"sasl_server_plug_init",
                                                "sasl_client_plug_init"};

/* A wrapped mechanism's glob_context: the original (of its half). */
struct wctx {
    const sasl_server_plug_t *srv;
    const sasl_client_plug_t *cli;
};

/* One half of a taken file. */
struct half {
    char *path;   /* noted by the verifyfile callback, NULL: not seen */
    void *handle; /* dlopen'd by xe_sasl_rand_register */
    union {
        sasl_server_plug_t *srv;
        sasl_client_plug_t *cli;
    } plugs; /* the wrapped copies */
    struct wctx *ctx;
    int n;
};

/* The table: each wanted file, its server and its client half. */
static struct half g_taken[N_WANTED][N_SIDES];
static bool g_registering; /* while xe_sasl_rand_register adds the plugins */
static union {
    sasl_server_plug_init_t *srv;
    sasl_client_plug_init_t *cli;
} g_cur_init;
static struct half *g_cur;
static unsigned g_mechs[N_SIDES];
static atomic_uint_fast64_t g_bytes[N_SIDES];

static int
verifyfile(enum xe_sasl_rand_side side, const char *file, sasl_verify_type_t type)
{
    const char *base;

    if (type != SASL_VRFY_PLUGIN || g_registering || file == NULL)
        return SASL_OK;
    base = strrchr(file, '/');
    base = base ? base + 1 : file;
    for (size_t i = 0; i < N_WANTED; i++)
        if (strcmp(base, wanted[i].file) == 0 && g_taken[i][side].path == NULL) {
            g_taken[i][side].path = xe_strdup(file);
            return SASL_CONTINUE; /* Cyrus skips it: registered wrapped below */
        }
    return SASL_OK;
}

int
xe_sasl_rand_verifyfile(void *context, const char *file, sasl_verify_type_t type)
{
    (void)context;
    return verifyfile(XE_SASL_RAND_SERVER, file, type);
}

int
xe_sasl_rand_verifyfile_client(void *context, const char *file, sasl_verify_type_t type)
{
    (void)context;
    return verifyfile(XE_SASL_RAND_CLIENT, file, type);
}

/* The bytes come from xe_random_public's per-thread pool (util.c): each
 * RAND_bytes costs OpenSSL 3.0 a getpid system call (its fork check), which
 * would take back one of the calls saved. What is drawn here is public
 * (nonces, challenges, salts). */
static void
drbg_rand(enum xe_sasl_rand_side side, sasl_rand_t *rpool, char *buf, unsigned len)
{
    if (xe_random_public(buf, len)) {
        atomic_fetch_add(&g_bytes[side], len);
        return;
    }
    xe_warn("event=sasl-rand-failed side=%s detail=\"RAND_bytes failed: Cyrus's pool "
            "used\"",
            side_name[side]);
    sasl_rand(rpool, buf, len);
}

/* utils->rand of a wrapped connection, by half (for the counts) */
static void
drbg_rand_server(sasl_rand_t *rpool, char *buf, unsigned len)
{
    drbg_rand(XE_SASL_RAND_SERVER, rpool, buf, len);
}

static void
drbg_rand_client(sasl_rand_t *rpool, char *buf, unsigned len)
{
    drbg_rand(XE_SASL_RAND_CLIENT, rpool, buf, len);
}

/* ---- the server half ---------------------------------------------------- */

static int
wrap_server_new(void *glob, sasl_server_params_t *sparams, const char *challenge,
                unsigned challen, void **conn_context)
{
    const struct wctx *w = glob;

    /* this connection's own utilities (see the top of the file) */
    ((sasl_utils_t *)sparams->utils)->rand = drbg_rand_server;
    return w->srv->mech_new(w->srv->glob_context, sparams, challenge, challen,
                            conn_context);
}

static void
wrap_server_free(void *glob, const sasl_utils_t *utils)
{
    const struct wctx *w = glob;

    w->srv->mech_free(w->srv->glob_context, utils);
}

static int
wrap_server_setpass(void *glob, sasl_server_params_t *sparams, const char *user,
                    const char *pass, unsigned passlen, const char *oldpass,
                    unsigned oldpasslen, unsigned flags)
{
    const struct wctx *w = glob;

    ((sasl_utils_t *)sparams->utils)->rand = drbg_rand_server; /* the salt */
    return w->srv->setpass(w->srv->glob_context, sparams, user, pass, passlen, oldpass,
                           oldpasslen, flags);
}

static int
wrap_server_user_query(void *glob, sasl_server_params_t *sparams, const char *user,
                       int maxmech, const char **mechlist)
{
    const struct wctx *w = glob;

    return w->srv->user_query(w->srv->glob_context, sparams, user, maxmech, mechlist);
}

static int
wrap_server_idle(void *glob, void *conn_context, sasl_server_params_t *sparams)
{
    const struct wctx *w = glob;

    return w->srv->idle(w->srv->glob_context, conn_context, sparams);
}

static int
wrap_server_avail(void *glob, sasl_server_params_t *sparams, void **conn_context)
{
    const struct wctx *w = glob;

    /* a mech_avail that makes the context skips mech_new */
    ((sasl_utils_t *)sparams->utils)->rand = drbg_rand_server;
    return w->srv->mech_avail(w->srv->glob_context, sparams, conn_context);
}

/* The entry point sasl_server_add_plugin calls: the real one's list,
 * copied with each mechanism wrapped. */
static int
wrap_server_init(const sasl_utils_t *utils, int max_version, int *out_version,
                 sasl_server_plug_t **pluglist, int *plugcount)
{
    sasl_server_plug_t *orig = NULL;
    struct half *h = g_cur;
    int n = 0;
    int r = g_cur_init.srv(utils, max_version, out_version, &orig, &n);

    if ((r != SASL_OK && r != SASL_NOUSER && r != SASL_CONTINUE) ||
        *out_version != SASL_SERVER_PLUG_VERSION || orig == NULL || n <= 0) {
        *pluglist = orig;
        *plugcount = n;
        return r; /* Cyrus refuses it as it would have */
    }
    h->plugs.srv = xe_calloc((size_t)n, sizeof(*h->plugs.srv));
    h->ctx = xe_calloc((size_t)n, sizeof(*h->ctx));
    h->n = n;
    for (int i = 0; i < n; i++) {
        sasl_server_plug_t *p = &h->plugs.srv[i];

        *p = orig[i];
        h->ctx[i].srv = &orig[i];
        p->glob_context = &h->ctx[i];
        p->mech_new = wrap_server_new;
        p->mech_free = orig[i].mech_free ? wrap_server_free : NULL;
        p->setpass = orig[i].setpass ? wrap_server_setpass : NULL;
        p->user_query = orig[i].user_query ? wrap_server_user_query : NULL;
        p->idle = orig[i].idle ? wrap_server_idle : NULL;
        p->mech_avail = orig[i].mech_avail ? wrap_server_avail : NULL;
    }
    *pluglist = h->plugs.srv;
    *plugcount = n;
    return r;
}

/* ---- the client half (server-to-server SASL as the client) -------------- */

static int
wrap_client_new(void *glob, sasl_client_params_t *cparams, void **conn_context)
{
    const struct wctx *w = glob;

    /* this connection's own utilities (see the top of the file) */
    ((sasl_utils_t *)cparams->utils)->rand = drbg_rand_client;
    return w->cli->mech_new(w->cli->glob_context, cparams, conn_context);
}

static void
wrap_client_free(void *glob, const sasl_utils_t *utils)
{
    const struct wctx *w = glob;

    w->cli->mech_free(w->cli->glob_context, utils);
}

static int
wrap_client_idle(void *glob, void *conn_context, sasl_client_params_t *cparams)
{
    const struct wctx *w = glob;

    return w->cli->idle(w->cli->glob_context, conn_context, cparams);
}

/* The entry point sasl_client_add_plugin calls (which, unlike the server's,
 * accepts only SASL_OK). */
static int
wrap_client_init(const sasl_utils_t *utils, int max_version, int *out_version,
                 sasl_client_plug_t **pluglist, int *plugcount)
{
    sasl_client_plug_t *orig = NULL;
    struct half *h = g_cur;
    int n = 0;
    int r = g_cur_init.cli(utils, max_version, out_version, &orig, &n);

    if (r != SASL_OK || *out_version != SASL_CLIENT_PLUG_VERSION || orig == NULL ||
        n <= 0) {
        *pluglist = orig;
        *plugcount = n;
        return r; /* Cyrus refuses it as it would have */
    }
    h->plugs.cli = xe_calloc((size_t)n, sizeof(*h->plugs.cli));
    h->ctx = xe_calloc((size_t)n, sizeof(*h->ctx));
    h->n = n;
    for (int i = 0; i < n; i++) {
        sasl_client_plug_t *p = &h->plugs.cli[i];

        *p = orig[i];
        h->ctx[i].cli = &orig[i];
        p->glob_context = &h->ctx[i];
        p->mech_new = wrap_client_new;
        p->mech_free = orig[i].mech_free ? wrap_client_free : NULL;
        p->idle = orig[i].idle ? wrap_client_idle : NULL;
    }
    *pluglist = h->plugs.cli;
    *plugcount = n;
    return r;
}

/* ---- loading -------------------------------------------------------------- */

static void
register_half(size_t i, enum xe_sasl_rand_side side)
{
    struct half *h = &g_taken[i][side];
    void *entry;
    int r;

    if (h->path == NULL || h->handle != NULL)
        return;
    h->handle = dlopen(h->path, RTLD_NOW | RTLD_LOCAL);
    if (h->handle == NULL) {
        /* Cyrus would have skipped it too */
        xe_warn("event=sasl-plugin-skipped side=%s path=\"%s\" detail=\"%s\"",
                side_name[side], h->path, dlerror());
        return;
    }
    entry = dlsym(h->handle, entry_name[side]);
    if (entry == NULL) {
        xe_warn("event=sasl-plugin-skipped side=%s path=\"%s\" detail=\"no %s\"",
                side_name[side], h->path, entry_name[side]);
        return;
    }
    g_cur = h;
    if (side == XE_SASL_RAND_SERVER) {
        g_cur_init.srv = (sasl_server_plug_init_t *)entry;
        r = sasl_server_add_plugin(wanted[i].plugname, wrap_server_init);
    } else {
        g_cur_init.cli = (sasl_client_plug_init_t *)entry;
        r = sasl_client_add_plugin(wanted[i].plugname, wrap_client_init);
    }
    g_cur = NULL;
    memset(&g_cur_init, 0, sizeof(g_cur_init));
    if (r != SASL_OK) {
        xe_warn("event=sasl-plugin-skipped side=%s path=\"%s\" detail=\"%s\"",
                side_name[side], h->path, sasl_errstring(r, NULL, NULL));
        return;
    }
    g_mechs[side] += (unsigned)h->n;
    xe_debug("event=sasl-plugin-wrapped side=%s path=\"%s\" mechanisms=%d",
             side_name[side], h->path, h->n);
}

void
xe_sasl_rand_register(enum xe_sasl_rand_side side)
{
    g_registering = true;
    for (size_t i = 0; i < N_WANTED; i++)
        register_half(i, side);
    g_registering = false;
}

void
xe_sasl_rand_done(void)
{
    for (size_t i = 0; i < N_WANTED; i++)
        for (int side = 0; side < N_SIDES; side++) {
            struct half *h = &g_taken[i][side];

            free(side == XE_SASL_RAND_SERVER ? (void *)h->plugs.srv
                                             : (void *)h->plugs.cli);
            free(h->ctx);
            if (h->handle)
                dlclose(h->handle);
            free(h->path);
            memset(h, 0, sizeof(*h));
        }
    memset(g_mechs, 0, sizeof(g_mechs));
}

unsigned
xe_sasl_rand_mechs(enum xe_sasl_rand_side side)
{
    return g_mechs[side];
}

uint64_t
xe_sasl_rand_bytes(enum xe_sasl_rand_side side)
{
    return (uint64_t)atomic_load(&g_bytes[side]);
}
