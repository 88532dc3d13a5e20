/* xedge: a CSPRNG for the nonces of Cyrus SASL's server mechanisms.
 *
 * Cyrus gives each connection's utilities (sasl_utils_t, made by
 * sasl_server_new) a random pool of its own: jrand48 over 48 bits of state,
 * seeded on first use by opening and reading /dev/urandom. The first use is
 * the server nonce of SCRAM (create_nonce), DIGEST-MD5 (create_nonce) and
 * CRAM-MD5 (the challenge), drawn with utils->rand(utils->rpool, ...). So
 * every login cost an open, a read and a close, and the nonce was at most 48
 * bits of entropy stretched by an LCG.
 *
 * xedge loads these three plugins itself, through Cyrus's public interface:
 * the SASL_CB_VERIFYFILE callback tells sasl_server_init to skip their
 * files (their paths are noted), and after it xe_sasl_rand_register opens
 * them, calls their sasl_server_plug_init and registers copies of their
 * mechanisms with sasl_server_add_plugin. Each copy's glob_context points
 * to the original's; its mech_new sets the connection's utils->rand to
 * drbg_rand (OpenSSL's DRBG) before calling the original mech_new, so the
 * nonce (and any later draw on that connection) is the DRBG's output and
 * the pool is never seeded. Only one copy of each mechanism is registered (Cyrus
 * never loaded the file), so sasl_server_start cannot pick an unwrapped one
 * and mech_free runs once.
 *
 * The utilities are handed to plugins as const, but each connection's are
 * its own, allocated by sasl_server_new (lib/server.c in 2.1.28) and freed
 * with it; rand is a field of the public sasl_utils_t. Seeding the pool
 * instead (sasl_randseed) would keep the 48-bit generator. */
#include "sasl_rand.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sasl/saslplug.h>
#include <sasl/saslutil.h>

#include "log.h"
#include "util.h"

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

/* A wrapped mechanism's glob_context: the original's. */
struct wctx {
    const sasl_server_plug_t *orig;
};

struct taken {
    char *path;   /* noted by the verifyfile callback, NULL: not seen */
    void *handle; /* dlopen'd by xe_sasl_rand_register */
    sasl_server_plug_t *plugs;
    struct wctx *ctx;
    int n;
};

static struct taken g_taken[N_WANTED];
static bool g_registering; /* while xe_sasl_rand_register adds the plugins */
static sasl_server_plug_init_t *g_cur_init;
static struct taken *g_cur;
static unsigned g_mechs;
static atomic_uint_fast64_t g_bytes;

int
xe_sasl_rand_verifyfile(void *context, const char *file, sasl_verify_type_t type)
{
    const char *base;

    (void)context;
    if (type != SASL_VRFY_PLUGIN || g_registering || file == NULL)
        return SASL_OK;
    base = strrchr(file, '/');
    base = base ? base + 1 : file;
    for (size_t i = 0; i < N_WANTED; i++)
        if (strcmp(base, wanted[i].file) == 0 && g_taken[i].path == NULL) {
            g_taken[i].path = xe_strdup(file);
            return SASL_CONTINUE; /* Cyrus skips it: registered wrapped below */
        }
    return SASL_OK;
}

/* The bytes come from a per-thread pool refilled 1 KiB at a time, as
 * xe_random_id's (util.c): each RAND_bytes costs OpenSSL 3.0 a getpid system
 * call (its fork check), which would take back one of the calls saved. What
 * is drawn here is public (nonces, challenges, salts); bytes handed out are
 * wiped from the pool, and a child of fork() starts with an empty one. */
static __thread unsigned char pool[1024];
static __thread size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void
pool_forget(void)
{
    OPENSSL_cleanse(pool, sizeof(pool));
    pool_left = 0;
}

static void
pool_atfork(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static bool
drbg_bytes(char *buf, unsigned len)
{
    pthread_once(&pool_once, pool_atfork);
    if (len > sizeof(pool) / 4)
        return len <= INT_MAX && RAND_bytes((unsigned char *)buf, (int)len) == 1;
    if (pool_left < len) {
        if (RAND_bytes(pool, sizeof(pool)) != 1)
            return false;
        pool_left = sizeof(pool);
    }
    memcpy(buf, pool + sizeof(pool) - pool_left, len);
    OPENSSL_cleanse(pool + sizeof(pool) - pool_left, len);
    pool_left -= len;
    return true;
}

static void
drbg_rand(sasl_rand_t *rpool, char *buf, unsigned len)
{
    if (drbg_bytes(buf, len)) {
        atomic_fetch_add(&g_bytes, len);
        return;
    }
    xe_warn("event=sasl-rand-failed detail=\"RAND_bytes failed: Cyrus's pool used\"");
    sasl_rand(rpool, buf, len);
}

static int
wrap_new(void *glob, sasl_server_params_t *sparams, const char *challenge,
         unsigned challen, void **conn_context)
{
    const struct wctx *w = glob;

    /* this connection's own utilities (see the top of the file) */
    ((sasl_utils_t *)sparams->utils)->rand = drbg_rand;
    return w->orig->mech_new(w->orig->glob_context, sparams, challenge, challen,
                             conn_context);
}

static void
wrap_free(void *glob, const sasl_utils_t *utils)
{
    const struct wctx *w = glob;

    w->orig->mech_free(w->orig->glob_context, utils);
}

static int
wrap_setpass(void *glob, sasl_server_params_t *sparams, const char *user,
             const char *pass, unsigned passlen, const char *oldpass, unsigned oldpasslen,
             unsigned flags)
{
    const struct wctx *w = glob;

    ((sasl_utils_t *)sparams->utils)->rand = drbg_rand; /* the salt */
    return w->orig->setpass(w->orig->glob_context, sparams, user, pass, passlen, oldpass,
                            oldpasslen, flags);
}

static int
wrap_user_query(void *glob, sasl_server_params_t *sparams, const char *user, int maxmech,
                const char **mechlist)
{
    const struct wctx *w = glob;

    return w->orig->user_query(w->orig->glob_context, sparams, user, maxmech, mechlist);
}

static int
wrap_idle(void *glob, void *conn_context, sasl_server_params_t *sparams)
{
    const struct wctx *w = glob;

    return w->orig->idle(w->orig->glob_context, conn_context, sparams);
}

static int
wrap_avail(void *glob, sasl_server_params_t *sparams, void **conn_context)
{
    const struct wctx *w = glob;

    /* a mech_avail that makes the context skips mech_new */
    ((sasl_utils_t *)sparams->utils)->rand = drbg_rand;
    return w->orig->mech_avail(w->orig->glob_context, sparams, conn_context);
}

/* The entry point sasl_server_add_plugin calls: the real one's list,
 * copied with each mechanism wrapped. */
static int
wrap_init(const sasl_utils_t *utils, int max_version, int *out_version,
          sasl_server_plug_t **pluglist, int *plugcount)
{
    sasl_server_plug_t *orig = NULL;
    struct taken *t = g_cur;
    int n = 0;
    int r = g_cur_init(utils, max_version, out_version, &orig, &n);

    if ((r != SASL_OK && r != SASL_NOUSER && r != SASL_CONTINUE) ||
        *out_version != SASL_SERVER_PLUG_VERSION || orig == NULL || n <= 0) {
        *pluglist = orig;
        *plugcount = n;
        return r; /* Cyrus refuses it as it would have */
    }
    t->plugs = xe_calloc((size_t)n, sizeof(*t->plugs));
    t->ctx = xe_calloc((size_t)n, sizeof(*t->ctx));
    t->n = n;
    for (int i = 0; i < n; i++) {
        sasl_server_plug_t *p = &t->plugs[i];

        *p = orig[i];
        t->ctx[i].orig = &orig[i];
        p->glob_context = &t->ctx[i];
        p->mech_new = wrap_new;
        p->mech_free = orig[i].mech_free ? wrap_free : NULL;
        p->setpass = orig[i].setpass ? wrap_setpass : NULL;
        p->user_query = orig[i].user_query ? wrap_user_query : NULL;
        p->idle = orig[i].idle ? wrap_idle : NULL;
        p->mech_avail = orig[i].mech_avail ? wrap_avail : NULL;
    }
    *pluglist = t->plugs;
    *plugcount = n;
    return r;
}

void
xe_sasl_rand_register(void)
{
    g_registering = true;
    for (size_t i = 0; i < N_WANTED; i++) {
        struct taken *t = &g_taken[i];
        void *entry;
        int r;

        if (t->path == NULL || t->handle != NULL)
            continue;
        t->handle = dlopen(t->path, RTLD_NOW | RTLD_LOCAL);
        if (t->handle == NULL) {
            /* Cyrus would have skipped it too */
            xe_warn("event=sasl-plugin-skipped path=\"%s\" detail=\"%s\"", t->path,
                    dlerror());
            continue;
        }
        entry = dlsym(t->handle, "sasl_server_plug_init");
        if (entry == NULL) {
            xe_warn("event=sasl-plugin-skipped path=\"%s\" detail=\"no "
                    "sasl_server_plug_init\"",
                    t->path);
            continue;
        }
        g_cur_init = (sasl_server_plug_init_t *)entry;
        g_cur = t;
        r = sasl_server_add_plugin(wanted[i].plugname, wrap_init);
        g_cur_init = NULL;
        g_cur = NULL;
        if (r != SASL_OK) {
            xe_warn("event=sasl-plugin-skipped path=\"%s\" detail=\"%s\"", t->path,
                    sasl_errstring(r, NULL, NULL));
            continue;
        }
        g_mechs += (unsigned)t->n;
        xe_debug("event=sasl-plugin-wrapped path=\"%s\" mechanisms=%d", t->path, t->n);
    }
    g_registering = false;
}

void
xe_sasl_rand_done(void)
{
    for (size_t i = 0; i < N_WANTED; i++) {
        struct taken *t = &g_taken[i];

        free(t->plugs);
        free(t->ctx);
        if (t->handle)
            dlclose(t->handle);
        free(t->path);
        memset(t, 0, sizeof(*t));
    }
    g_mechs = 0;
}

unsigned
xe_sasl_rand_mechs(void)
{
    return g_mechs;
}

uint64_t
xe_sasl_rand_bytes(void)
{
    return (uint64_t)atomic_load(&g_bytes);
}
