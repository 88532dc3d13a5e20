/* xedge: in-band registration (XEP-0077). See register.h. */
#include "register.h"

#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "addrlimit.h"
#include "boundary.h"
#include "xmlstream.h"
#include "log.h"
#include "userstore.h"
#include "xelimits.h"

#define REG_PASSWORD_MAX 1024 /* as xedgectl */

static struct xe_userstore *g_store;
static struct xe_tokens *g_tokens; /* FAST tokens: revoked with the password */
static struct xe_addrlimit *g_rate;

void
xe_register_global_init(struct xe_userstore *store, const struct xe_conf *conf)
{
    struct xe_addrlimit_conf alc = {
        .rate = conf->registrations_per_address,
        .burst = conf->registrations_per_address,
        .max_entries = XE_ADDRLIMIT_MAX_ENTRIES,
        .period_ms = XE_REGISTER_PERIOD_MS,
    };

    g_store = store;
    xe_addrlimit_free(&g_rate);
    g_rate = xe_addrlimit_new(&alc);
}

void
xe_register_global_reconfigure(const struct xe_conf *conf)
{
    struct xe_addrlimit_conf alc = {
        .rate = conf->registrations_per_address,
        .burst = conf->registrations_per_address,
        .max_entries = XE_ADDRLIMIT_MAX_ENTRIES,
        .period_ms = XE_REGISTER_PERIOD_MS,
    };

    if (g_rate)
        xe_addrlimit_reconfigure(g_rate, &alc);
}

void
xe_register_set_tokens(struct xe_tokens *tokens)
{
    g_tokens = tokens;
}

void
xe_register_global_free(void)
{
    xe_addrlimit_free(&g_rate);
    g_store = NULL;
    g_tokens = NULL;
}

bool
xe_register_enabled(const struct xe_conf *conf, const char *domain)
{
    const struct xe_domain_conf *d = domain ? xe_conf_domain(conf, domain) : NULL;

    return d != NULL && d->register_;
}

bool
xe_register_postauth(const struct xe_conf *conf, const char *domain)
{
    const struct xe_domain_conf *d = domain ? xe_conf_domain(conf, domain) : NULL;

    return d != NULL && (d->register_ || d->account_management);
}

bool
xe_register_is_query(const struct xe_xml_elem *e)
{
    const char *type;

    if (!xe_xml_is(e, XE_NS_CLIENT, "iq") ||
        xe_xml_child(e, XE_NS_IQ_REGISTER, "query") == NULL)
        return false;
    type = xe_xml_attr(e, "type");
    return type && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* "192.0.2.1:5222" or "[2001:db8::1]:5222" back to an address. */
static bool
peer_addr(const char *peer, struct sockaddr_storage *ss)
{
    char host[64];
    const char *end;
    size_t n;

    memset(ss, 0, sizeof(*ss));
    if (peer[0] == '[') {
        end = strchr(peer, ']');
        if (end == NULL || (n = (size_t)(end - peer - 1)) >= sizeof(host))
            return false;
        memcpy(host, peer + 1, n);
        host[n] = '\0';
        ss->ss_family = AF_INET6;
        return inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1;
    }
    end = strrchr(peer, ':');
    if (end == NULL || (n = (size_t)(end - peer)) >= sizeof(host))
        return false;
    memcpy(host, peer, n);
    host[n] = '\0';
    ss->ss_family = AF_INET;
    return inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1;
}

/* ---- answers ------------------------------------------------------------- */

/* The request an answer is for: its id and 'to' (copied into a job). */
struct iq_ref {
    const char *id, *to;
};

static struct iq_ref
ref_of(const struct xe_xml_elem *iq)
{
    struct iq_ref r = {xe_xml_attr(iq, "id"), xe_xml_attr(iq, "to")};

    return r;
}

static void
iq_open(struct xe_buf *out, struct iq_ref iq, const char *type)
{
    xe_buf_appendf(out, "<iq type='%s' id='", type);
    xe_buf_append_escaped(out, iq.id ? iq.id : "");
    xe_buf_append_str(out, "'");
    if (iq.to) { /* the answer comes from whom the request went to */
        xe_buf_append_str(out, " from='");
        xe_buf_append_escaped(out, iq.to);
        xe_buf_append_str(out, "'");
    }
}

static void
iq_result(struct xe_buf *out, struct iq_ref iq)
{
    iq_open(out, iq, "result");
    xe_buf_append_str(out, "/>");
}

static void
iq_error(struct xe_buf *out, struct iq_ref iq, const char *type, const char *condition,
         const char *text)
{
    iq_open(out, iq, "error");
    xe_buf_appendf(out, "><error type='%s'><%s xmlns='" XE_NS_STANZAS "'/>", type,
                   condition);
    if (text) {
        xe_buf_append_str(out, "<text xmlns='" XE_NS_STANZAS "' xml:lang='en'>");
        xe_buf_append_escaped(out, text);
        xe_buf_append_str(out, "</text>");
    }
    xe_buf_append_str(out, "</error></iq>");
}

/* a store that refused or failed a write: with several nodes, the user
 * database unreachable is said (pgsync_io.h), else an internal error */
static void
iq_store_error(struct xe_buf *out, struct iq_ref iq, int r)
{
    if (r == XE_US_UNAVAILABLE)
        iq_error(out, iq, "wait", "service-unavailable", XE_US_UNAVAILABLE_TEXT);
    else
        iq_error(out, iq, "wait", "internal-server-error", NULL);
}

/* too many jobs under way (register_io.h): nothing was done */
static void
iq_busy(struct xe_buf *out, struct iq_ref iq)
{
    iq_error(out, iq, "wait", "resource-constraint",
             "the server is busy: try again in a moment");
}

static unsigned
iterations(const struct xe_conf *conf)
{
    return conf->scram_iterations ? conf->scram_iterations : XE_DEF_SCRAM_ITERATIONS;
}

static double
elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1000.0 +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The text of a query's child, or NULL when it is missing. */
static const char *
field(const struct xe_xml_elem *q, const char *name)
{
    const struct xe_xml_elem *f = xe_xml_child(q, XE_NS_IQ_REGISTER, name);

    return f ? xe_xml_text(f) : NULL;
}

static bool
password_ok(const char *pw)
{
    size_t n = pw ? strlen(pw) : 0;

    return n > 0 && n < REG_PASSWORD_MAX;
}

/* ---- the jobs -------------------------------------------------------------- */

enum job_res {
    JR_NONE,
    JR_OK,
    JR_CONFLICT, /* create: the name is taken */
    JR_NOTFOUND, /* password: the account is gone */
    JR_DERIVE,   /* create: the secrets could not be derived */
    JR_STORE,    /* the store failed or refused (r, err) */
    JR_BUSY,     /* not run (xe_reg_job_busy) */
};

struct xe_reg_job {
    enum xe_reg_op op;
    struct xe_userstore *store;
    struct xe_tokens *tokens;
    unsigned iterations;
    char jid[3072];
    char key[64]; /* the rate limit's address key (create), for the log */
    char *domain, *peer, *id, *to;
    char *password;
    size_t pw_len;
    struct timespec t0;
    /* the outcome */
    enum job_res res;
    int r;
    char *err;
    bool removed;  /* remove: a user was there (its purge is pending) */
    bool revoked;  /* the tokens' revocation was tried */
    int tok_r;     /* ... its result */
    size_t tok_n;  /* ... tokens revoked */
    char *tok_err; /* ... its error */
};

static struct xe_reg_job *
job_new(enum xe_reg_op op, const char *jid, const char *domain, const char *peer,
        struct iq_ref iq, const char *password, const struct xe_conf *conf)
{
    struct xe_reg_job *j = xe_calloc(1, sizeof(*j));

    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    j->op = op;
    j->store = g_store;
    j->tokens = g_tokens;
    j->iterations = iterations(conf);
    snprintf(j->jid, sizeof(j->jid), "%s", jid);
    snprintf(j->key, sizeof(j->key), "-");
    j->domain = xe_strdup(domain);
    j->peer = xe_strdup(peer);
    j->id = iq.id ? xe_strdup(iq.id) : NULL;
    j->to = iq.to ? xe_strdup(iq.to) : NULL;
    if (password) {
        j->pw_len = strlen(password);
        j->password = xe_strndup(password, j->pw_len);
    }
    return j;
}

static struct iq_ref
job_ref(const struct xe_reg_job *j)
{
    struct iq_ref r = {j->id, j->to};

    return r;
}

enum xe_reg_op
xe_reg_job_op(const struct xe_reg_job *j)
{
    return j->op;
}

const char *
xe_reg_job_op_name(const struct xe_reg_job *j)
{
    static const char *const names[] = {"register", "password", "remove"};

    return names[j->op];
}

const char *
xe_reg_job_result(const struct xe_reg_job *j)
{
    switch (j->res) {
    case JR_OK:
        return "ok";
    case JR_CONFLICT:
    case JR_NOTFOUND:
        return "refused";
    case JR_BUSY:
        return "busy";
    case JR_STORE:
        return j->r == XE_US_UNAVAILABLE ? "database-down" : "failed";
    default:
        return "failed";
    }
}

void
xe_reg_job_free(struct xe_reg_job **jp)
{
    struct xe_reg_job *j = *jp;

    if (j == NULL)
        return;
    if (j->password) {
        OPENSSL_cleanse(j->password, j->pw_len);
        free(j->password);
    }
    free(j->domain);
    free(j->peer);
    free(j->id);
    free(j->to);
    free(j->err);
    free(j->tok_err);
    OPENSSL_cleanse(j, sizeof(*j));
    free(j);
    *jp = NULL;
}

void
xe_reg_job_busy(struct xe_reg_job *j)
{
    j->res = JR_BUSY;
}

/* A password changed, an account removed: its FAST tokens go (in the same
 * thread as the user's write that precedes it; logged by the answer). */
static void
job_revoke_tokens(struct xe_reg_job *j)
{
    if (j->tokens == NULL)
        return;
    j->revoked = true;
    j->tok_r = xe_tokens_revoke_user(j->tokens, j->jid, &j->tok_n, &j->tok_err);
}

static void
log_revoked(const struct xe_reg_job *j, const char *event)
{
    if (!j->revoked)
        return;
    if (j->tok_r != XE_US_OK)
        xe_warn(
            "event=%s jid=%s tokens=not-revoked error=\"%s\" (they fail anyway: bound "
            "to the old credentials)",
            event, j->jid, j->tok_err ? j->tok_err : "?");
    else if (j->tok_n > 0)
        xe_info("event=%s jid=%s tokens_revoked=%zu", event, j->jid, j->tok_n);
}

static void
run_create(struct xe_reg_job *j, struct xe_user *user)
{
    int r = xe_userstore_get(j->store, j->jid, user, &j->err);

    if (r == XE_US_OK) {
        j->res = JR_CONFLICT;
        return;
    }
    if (r != XE_US_NOTFOUND) {
        j->res = JR_STORE;
        j->r = r;
        return;
    }
    free(j->err);
    j->err = NULL;
    memset(user, 0, sizeof(*user));
    snprintf(user->jid, sizeof(user->jid), "%s", j->jid);
    user->created = user->modified = xe_now_seconds();
    if (xe_user_set_password(user, j->password, j->pw_len, j->iterations) != XE_US_OK) {
        j->res = JR_DERIVE;
        return;
    }
    r = xe_userstore_put(j->store, user, true, &j->err);
    j->r = r;
    j->res = r == XE_US_OK ? JR_OK : r == XE_US_EXISTS ? JR_CONFLICT : JR_STORE;
}

static void
run_password(struct xe_reg_job *j, struct xe_user *user)
{
    int r = xe_userstore_get(j->store, j->jid, user, &j->err);

    if (r == XE_US_NOTFOUND) {
        j->res = JR_NOTFOUND;
        return;
    }
    if (r == XE_US_OK && (r = xe_user_set_password(user, j->password, j->pw_len,
                                                   j->iterations)) == XE_US_OK)
        /* the legacy plaintext-equivalent follows, when the operator enabled it */
        r = user->legacy ? xe_user_set_legacy(user, j->password, j->pw_len) : 0;
    if (r == XE_US_OK) {
        user->modified = xe_now_seconds();
        r = xe_userstore_put(j->store, user, false, &j->err);
        if (r == XE_US_OK)
            job_revoke_tokens(j);
    }
    j->r = r;
    j->res = r == XE_US_OK ? JR_OK : JR_STORE;
}

/* As `xedgectl user del`: the user is replaced by a tombstone, the daemon
 * purges its data at the backend (purge_io.h: it finds the tombstone
 * within a second). */
static void
run_remove(struct xe_reg_job *j, struct xe_user *u)
{
    struct xe_tombstone *t = xe_calloc(1, sizeof(*t));
    int r = xe_userstore_get(j->store, j->jid, u, &j->err);

    snprintf(t->jid, sizeof(t->jid), "%s", j->jid);
    if (r == XE_US_OK) {
        snprintf(t->pin, sizeof(t->pin), "%s", u->pin);
        t->deleted = t->next = xe_now_seconds();
        free(j->err);
        j->err = NULL;
        r = xe_userstore_bury(j->store, t, &j->err);
        if (r == XE_US_OK)
            job_revoke_tokens(j);
    }
    free(t);
    j->r = r;
    j->removed = r == XE_US_OK;
    j->res = r == XE_US_OK || r == XE_US_NOTFOUND ? JR_OK : JR_STORE;
}

void
xe_reg_job_run(struct xe_reg_job *j)
{
    struct xe_user *user = xe_calloc(1, sizeof(*user));

    if (j->store == NULL) {
        j->res = JR_STORE;
        j->r = XE_US_IO;
    } else if (j->op == XE_REG_CREATE)
        run_create(j, user);
    else if (j->op == XE_REG_PASSWORD)
        run_password(j, user);
    else
        run_remove(j, user);
    OPENSSL_cleanse(user, sizeof(*user));
    free(user);
}

/* ---- before authentication ----------------------------------------------- */

static struct xe_reg_job *
preauth_set(const struct xe_conf *conf, const char *domain, const char *peer,
            const struct xe_xml_elem *iq, const struct xe_xml_elem *q, struct xe_buf *out)
{
    const char *username = field(q, "username"), *password = field(q, "password");
    struct xe_reg_job *j;
    struct sockaddr_storage ss;
    char jid[3072], key[64] = "-";

    if (xe_xml_child(q, XE_NS_IQ_REGISTER, "remove")) {
        iq_error(out, ref_of(iq), "auth", "registration-required",
                 "there is no account to remove");
        xe_info("event=register peer=%s domain=%s result=registration-required", peer,
                domain);
        return NULL;
    }
    /* the JID is checked exactly as xedgectl checks it */
    if (username == NULL || password == NULL || !password_ok(password) ||
        strlen(username) + 1 + strlen(domain) >= sizeof(jid)) {
        iq_error(out, ref_of(iq), "modify", "not-acceptable",
                 "a username and a password are required");
        xe_info("event=register peer=%s domain=%s result=not-acceptable "
                "detail=\"missing or bad field\"",
                peer, domain);
        return NULL;
    }
    {
        size_t ul = strlen(username), dl = strlen(domain);
        memcpy(jid, username, ul);
        jid[ul] = '@';
        memcpy(jid + ul + 1, domain, dl + 1);
    }
    if (xe_jid_normalize(jid, sizeof(jid), NULL) != 0 || strchr(username, '@') != NULL) {
        iq_error(out, ref_of(iq), "modify", "not-acceptable",
                 "the requested username is invalid");
        xe_info("event=register peer=%s domain=%s result=not-acceptable "
                "detail=\"invalid username\"",
                peer, domain);
        return NULL;
    }
    if (g_store == NULL || g_rate == NULL) {
        iq_error(out, ref_of(iq), "cancel", "service-unavailable", NULL);
        return NULL;
    }
    if (peer_addr(peer, &ss)) {
        if (xe_addrlimit_acquire(g_rate, (struct sockaddr *)&ss, now_ms(), key,
                                 sizeof(key)) != XE_AL_OK) {
            /* as Prosody's mod_register_limits */
            iq_error(out, ref_of(iq), "wait", "policy-violation",
                     "Too many registrations from this IP address recently");
            xe_info("event=register peer=%s address=%s domain=%s user=%s "
                    "result=rate-limited",
                    peer, key, domain, jid);
            return NULL;
        }
        /* counted as a registration, not as an open connection */
        xe_addrlimit_release(g_rate, (struct sockaddr *)&ss, now_ms());
    }
    /* the store's read, the secrets and the write: off the loop */
    j = job_new(XE_REG_CREATE, jid, domain, peer, ref_of(iq), password, conf);
    snprintf(j->key, sizeof(j->key), "%s", key);
    return j;
}

struct xe_reg_job *
xe_register_preauth(const struct xe_conf *conf, const char *domain, const char *peer,
                    const struct xe_xml_elem *iq, struct xe_buf *out)
{
    const struct xe_xml_elem *q = xe_xml_child(iq, XE_NS_IQ_REGISTER, "query");

    if (strcmp(xe_xml_attr(iq, "type"), "get") == 0) {
        iq_open(out, ref_of(iq), "result");
        xe_buf_append_str(out,
                          "><query xmlns='" XE_NS_IQ_REGISTER "'><instructions>"
                          "Choose a username and password to register with this "
                          "server.</instructions><username/><password/></query></iq>");
        xe_debug("event=register-form peer=%s domain=%s", peer, domain);
        return NULL;
    }
    return preauth_set(conf, domain, peer, iq, q, out);
}

void
xe_register_preauth_done(const struct xe_reg_job *j, struct xe_buf *out)
{
    struct iq_ref iq = job_ref(j);

    switch (j->res) {
    case JR_OK:
        iq_result(out, iq);
        xe_info("event=register peer=%s address=%s domain=%s user=%s result=ok "
                "duration_ms=%.1f",
                j->peer, j->key, j->domain, j->jid, elapsed_ms(&j->t0));
        break;
    case JR_CONFLICT:
        iq_error(out, iq, "cancel", "conflict", "the requested username already exists");
        xe_info("event=register peer=%s domain=%s user=%s result=conflict", j->peer,
                j->domain, j->jid);
        break;
    case JR_DERIVE:
        iq_error(out, iq, "wait", "internal-server-error", NULL);
        xe_err("event=register peer=%s user=%s result=error detail=\"cannot derive the "
               "SCRAM secrets\"",
               j->peer, j->jid);
        break;
    case JR_BUSY:
        iq_busy(out, iq);
        xe_warn("event=register peer=%s domain=%s user=%s result=busy", j->peer,
                j->domain, j->jid);
        break;
    default:
        iq_store_error(out, iq, j->r);
        xe_err("event=register peer=%s user=%s result=store-error error=\"%s\"", j->peer,
               j->jid, j->err ? j->err : "?");
        break;
    }
}

/* ---- after authentication ------------------------------------------------ */

struct xe_regsplice {
    const struct xe_conf *conf;
    /* the client's stream, parsed; NULL once it ended, or while resting
     * (given back between two stanzas: xe_regsplice_rest) */
    struct xe_xmlstream *xs;
    struct xe_xmlstream_limits lim;
    bool resting;
    struct xe_boundary bt;     /* the backend's stream */
    struct xe_buf inject;      /* our answers, waiting for a boundary */
    struct xe_buf *to_backend; /* during xe_regsplice_client */
    char *domain, *jid, *local, *peer;
    unsigned char *header; /* the client's stream start tag (the parser's primer) */
    size_t header_len;
    struct xe_reg_job *job; /* a request's job, until taken */
    bool waiting;           /* ... taken: its answer is awaited */
    struct xe_buf held;     /* the client's bytes after the request, meanwhile */
    bool anonymous;
    bool priming;
    bool closing; /* an answer that ends the stream is queued */
    bool removed; /* the client removed its account (xe_regsplice_removed) */
};

/* Is the request addressed to the server: no 'to', the domain, or the
 * user's bare JID? (A full JID is some resource of the user: not ours.) */
static bool
for_us(const struct xe_regsplice *rs, const struct xe_xml_elem *iq)
{
    const char *to = xe_xml_attr(iq, "to");
    char norm[3072];

    if (to == NULL)
        return true;
    if (strlen(to) >= sizeof(norm))
        return false;
    snprintf(norm, sizeof(norm), "%s", to);
    xe_tolower_ascii(norm);
    return strcmp(norm, rs->domain) == 0 || strcmp(norm, rs->jid) == 0;
}

/* The client removes its own account (run_remove); the answer comes with
 * the job's end (remove_done). */
static void
remove_done(struct xe_regsplice *rs, const struct xe_reg_job *j)
{
    struct iq_ref iq = job_ref(j);

    if (j->res == JR_BUSY) {
        iq_busy(&rs->inject, iq);
        xe_warn("event=register-remove peer=%s jid=%s result=busy", rs->peer, rs->jid);
        return;
    }
    if (j->res != JR_OK) {
        iq_store_error(&rs->inject, iq, j->r);
        xe_err("event=register-remove peer=%s jid=%s result=store-error error=\"%s\"",
               rs->peer, rs->jid, j->err ? j->err : "?");
        return;
    }
    log_revoked(j, "register-remove");
    /* XEP-0077 3.2: the result, then the stream ends */
    iq_result(&rs->inject, iq);
    xe_stream_error_xml(&rs->inject, false, NULL, NULL, "not-authorized",
                        "the account was removed");
    rs->closing = true;
    rs->removed = j->removed;
    xe_info("event=register-remove peer=%s jid=%s result=ok purge=%s", rs->peer, rs->jid,
            rs->removed ? "pending" : "none");
}

static void
postauth_password(struct xe_regsplice *rs, const struct xe_xml_elem *iq,
                  const struct xe_xml_elem *q)
{
    const char *username = field(q, "username"), *password = field(q, "password");
    char name[1024];

    if (username == NULL || !password_ok(password) || strlen(username) >= sizeof(name)) {
        iq_error(&rs->inject, ref_of(iq), "modify", "bad-request",
                 "a username and a new password are required");
        xe_info("event=register-password peer=%s jid=%s result=bad-request", rs->peer,
                rs->jid);
        return;
    }
    snprintf(name, sizeof(name), "%s", username);
    xe_tolower_ascii(name);
    if (strcmp(name, rs->local) != 0) {
        iq_error(&rs->inject, ref_of(iq), "modify", "bad-request",
                 "the username is not the one of this session");
        xe_info("event=register-password peer=%s jid=%s result=bad-request "
                "detail=\"another username\"",
                rs->peer, rs->jid);
        return;
    }
    /* the store's read, the secrets and the write: off the loop */
    rs->job = job_new(XE_REG_PASSWORD, rs->jid, rs->domain, rs->peer, ref_of(iq),
                      password, rs->conf);
}

static void
password_done(struct xe_regsplice *rs, const struct xe_reg_job *j)
{
    struct iq_ref iq = job_ref(j);

    switch (j->res) {
    case JR_OK:
        log_revoked(j, "register-password");
        iq_result(&rs->inject, iq);
        xe_info("event=register-password peer=%s jid=%s result=ok duration_ms=%.1f",
                rs->peer, rs->jid, elapsed_ms(&j->t0));
        break;
    case JR_NOTFOUND:
        iq_error(&rs->inject, iq, "cancel", "item-not-found", "the account is gone");
        xe_info("event=register-password peer=%s jid=%s result=item-not-found", rs->peer,
                rs->jid);
        break;
    case JR_BUSY:
        iq_busy(&rs->inject, iq);
        xe_warn("event=register-password peer=%s jid=%s result=busy", rs->peer, rs->jid);
        break;
    default:
        iq_store_error(&rs->inject, iq, j->r);
        xe_err("event=register-password peer=%s jid=%s result=store-error error=\"%s\"",
               rs->peer, rs->jid, j->err ? j->err : "?");
        break;
    }
}

static void
postauth(struct xe_regsplice *rs, const struct xe_xml_elem *iq)
{
    const struct xe_xml_elem *q = xe_xml_child(iq, XE_NS_IQ_REGISTER, "query");

    if (rs->anonymous) {
        iq_error(&rs->inject, ref_of(iq), "cancel", "not-allowed",
                 "an anonymous session has no account");
        return;
    }
    if (g_store == NULL) {
        iq_error(&rs->inject, ref_of(iq), "cancel", "service-unavailable", NULL);
        return;
    }
    if (strcmp(xe_xml_attr(iq, "type"), "get") == 0) {
        iq_open(&rs->inject, ref_of(iq), "result");
        xe_buf_append_str(&rs->inject, "><query xmlns='" XE_NS_IQ_REGISTER
                                       "'><registered/><username>");
        xe_buf_append_escaped(&rs->inject, rs->local);
        xe_buf_append_str(&rs->inject, "</username><password/></query></iq>");
        return;
    }
    if (xe_xml_child(q, XE_NS_IQ_REGISTER, "remove"))
        rs->job = job_new(XE_REG_REMOVE, rs->jid, rs->domain, rs->peer, ref_of(iq), NULL,
                          rs->conf);
    else
        postauth_password(rs, iq, q);
}

static int
rs_stream_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    return XE_XS_CONTINUE; /* c2s has checked it */
}

static int
rs_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct xe_regsplice *rs = ctx;

    if (xe_register_is_query(e) && for_us(rs, e)) {
        postauth(rs, e);
        /* a job: the parser stops at the request (what follows waits) */
        return rs->closing || rs->job ? XE_XS_STOP : XE_XS_CONTINUE;
    }
    if (xe_buf_append(rs->to_backend, raw, len) < 0)
        xe_warn("event=output-overflow peer=%s jid=%s", rs->peer, rs->jid);
    return XE_XS_CONTINUE;
}

static int
rs_stream_end(void *ctx)
{
    struct xe_regsplice *rs = ctx;

    xe_buf_append_str(rs->to_backend, "</stream:stream>");
    return XE_XS_STOP;
}

static void
rs_space(void *ctx, const char *s, size_t len)
{
    struct xe_regsplice *rs = ctx;

    /* white space keepalives go on; other text at the top level is dropped */
    for (size_t i = 0; i < len; i++)
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
            xe_buf_append(rs->to_backend, &s[i], 1);
}

static const struct xe_xmlstream_cb rs_cb = {
    .stream_start = rs_stream_start,
    .element = rs_element,
    .stream_end = rs_stream_end,
};

/* The parser (again, after a stop) primed with the client's stream start
 * tag, so that its namespaces resolve. */
static int
rs_prime(struct xe_regsplice *rs)
{
    struct xe_buf scratch;
    size_t used;
    int r;

    xe_buf_init(&scratch, 1);
    rs->to_backend = &scratch;
    r = xe_xmlstream_feed(rs->xs, rs->header, rs->header_len, &used);
    rs->to_backend = NULL;
    xe_buf_free(&scratch);
    return r == XE_XS_OK ? 0 : -1;
}

/* A parser for the client's stream, primed (xe_regsplice_new, and after a
 * rest). */
static int
rs_parser(struct xe_regsplice *rs)
{
    rs->xs = xe_xmlstream_new(&rs->lim, &rs_cb, rs);
    if (rs->xs == NULL)
        return -1;
    xe_xmlstream_set_space_cb(rs->xs, rs_space);
    if (rs_prime(rs) < 0) {
        xe_xmlstream_free(&rs->xs);
        return -1;
    }
    rs->resting = false;
    return 0;
}

struct xe_regsplice *
xe_regsplice_new(const struct xe_regsplice_params *p)
{
    struct xe_regsplice *rs = xe_calloc(1, sizeof(*rs));
    const char *at = strchr(p->jid, '@');

    rs->conf = p->conf;
    rs->lim.max_element_bytes = p->conf->max_stanza_postauth;
    rs->lim.max_depth = XE_POSTAUTH_MAX_XML_DEPTH;
    rs->lim.max_attrs = XE_POSTAUTH_MAX_ATTRS;
    rs->domain = xe_strdup(p->domain);
    rs->jid = xe_strdup(p->jid);
    xe_tolower_ascii(rs->jid);
    rs->local = xe_strndup(rs->jid, at ? (size_t)(at - p->jid) : strlen(p->jid));
    rs->peer = xe_strdup(p->peer ? p->peer : "-");
    rs->anonymous = p->anonymous;
    xe_boundary_init(&rs->bt, 1);
    xe_buf_init(&rs->inject, XE_MAX_REGISTER_INJECT);
    /* what a client may send while its request's job runs: reading stops,
     * so at most what TLS or the transform had decoded already */
    xe_buf_init(&rs->held, p->conf->max_stanza_postauth + 2 * XE_READ_CHUNK);
    if (p->header == NULL) {
        xe_regsplice_free(&rs);
        return NULL;
    }
    rs->header = xe_malloc(p->header_len ? p->header_len : 1);
    memcpy(rs->header, p->header, p->header_len);
    rs->header_len = p->header_len;
    if (rs_parser(rs) < 0)
        xe_regsplice_free(&rs);
    return rs;
}

bool
xe_regsplice_rest(struct xe_regsplice *rs)
{
    if (rs->resting)
        return true;
    if (rs->xs == NULL || rs->job || rs->waiting || rs->closing || rs->held.len > 0 ||
        !xe_xmlstream_between(rs->xs))
        return false;
    xe_xmlstream_free(&rs->xs);
    xe_buf_free(&rs->held);
    if (rs->inject.len == 0)
        xe_buf_free(&rs->inject);
    rs->resting = true;
    return true;
}

bool
xe_regsplice_resting(const struct xe_regsplice *rs)
{
    return rs->resting;
}

static bool
all_space(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

bool
xe_regsplice_removed(const struct xe_regsplice *rs)
{
    return rs != NULL && rs->removed;
}

void
xe_regsplice_free(struct xe_regsplice **rsp)
{
    struct xe_regsplice *rs = *rsp;

    if (rs == NULL)
        return;
    xe_xmlstream_free(&rs->xs);
    xe_buf_free(&rs->inject);
    OPENSSL_cleanse(rs->held.data, rs->held.len);
    xe_buf_free(&rs->held);
    xe_reg_job_free(&rs->job); /* (one taken is the taker's) */
    free(rs->header);
    free(rs->domain);
    free(rs->jid);
    free(rs->local);
    free(rs->peer);
    free(rs);
    *rsp = NULL;
}

/* The client's stream broke a limit: the stream error, then the end. */
static enum xe_rs_result
rs_fail(struct xe_regsplice *rs, const char *cond, const char *text)
{
    xe_info("event=stream-error peer=%s jid=%s condition=%s text=\"%s\"", rs->peer,
            rs->jid, cond, text);
    xe_stream_error_xml(&rs->inject, false, NULL, NULL, cond, text);
    rs->closing = true;
    return XE_RS_CLOSE;
}

enum xe_rs_result
xe_regsplice_client(struct xe_regsplice *rs, const void *data, size_t len,
                    struct xe_buf *to_backend)
{
    size_t used = 0;
    int r;

    if (rs->closing)
        return XE_RS_CLOSE;
    if (rs->job || rs->waiting) { /* kept for after the answer */
        if (xe_buf_append(&rs->held, data, len) < 0)
            return rs_fail(rs, "policy-violation",
                           "too much sent while a request was being answered");
        return rs->job ? XE_RS_JOB : XE_RS_OK;
    }
    if (rs->resting) {
        /* white space keepalives go on as they are, the parser resting */
        if (all_space(data, len)) {
            (void)xe_buf_append(to_backend, data, len);
            return XE_RS_OK;
        }
        if (rs_parser(rs) < 0)
            return rs_fail(rs, "internal-server-error", "cannot parse the stream again");
    }
    if (rs->xs == NULL) /* the client's stream has ended: nothing more goes on */
        return XE_RS_OK;
    rs->to_backend = to_backend;
    r = xe_xmlstream_feed(rs->xs, data, len, &used);
    rs->to_backend = NULL;
    if (r == XE_XS_ERROR) {
        const char *cond = xe_xmlstream_condition(rs->xs),
                   *text = xe_xmlstream_error_text(rs->xs);
        if (strcmp(text, "element too large") == 0) /* as the raw splice says it */
            xe_warn("event=limit peer=%s jid=%s limit=max_stanza_postauth bytes=%zu",
                    rs->peer, rs->jid, rs->conf->max_stanza_postauth + 1);
        return rs_fail(rs, cond, text);
    }
    if (rs->inject.len > XE_MAX_REGISTER_INJECT / 2) {
        /* the backend is in the middle of a stanza while the client keeps asking */
        rs->inject.len = 0;
        xe_stream_error_xml(&rs->inject, false, NULL, NULL, "policy-violation",
                            "too many requests waiting for an answer");
        rs->closing = true;
        return XE_RS_CLOSE;
    }
    if (r == XE_XS_STOPPED && rs->job != NULL) {
        /* the request waits for its job; what follows it, for the answer */
        if (xe_buf_append(&rs->held, (const char *)data + used, len - used) < 0)
            return rs_fail(rs, "policy-violation",
                           "too much sent while a request was being answered");
        return XE_RS_JOB;
    }
    if (r == XE_XS_STOPPED && !rs->closing)
        xe_xmlstream_free(&rs->xs); /* the client ended its stream */
    return rs->closing ? XE_RS_CLOSE : XE_RS_OK;
}

struct xe_reg_job *
xe_regsplice_take_job(struct xe_regsplice *rs)
{
    struct xe_reg_job *j = rs->job;

    rs->job = NULL;
    if (j)
        rs->waiting = true;
    return j;
}

enum xe_rs_result
xe_regsplice_job_done(struct xe_regsplice *rs, struct xe_reg_job *job,
                      struct xe_buf *to_backend)
{
    struct xe_buf rest;
    enum xe_rs_result r;

    rs->waiting = false;
    if (job->op == XE_REG_REMOVE)
        remove_done(rs, job);
    else
        password_done(rs, job);
    xe_reg_job_free(&job);
    if (rs->closing) /* the account is gone: nothing more goes on */
        return XE_RS_CLOSE;
    /* a stop is not resumable: the parser starts over for what follows */
    xe_xmlstream_reset(rs->xs);
    if (rs_prime(rs) < 0)
        return rs_fail(rs, "internal-server-error", "cannot parse the stream again");
    rest = rs->held;
    xe_buf_init(&rs->held, rest.max);
    r = rest.len > 0 ? xe_regsplice_client(rs, rest.data, rest.len, to_backend)
                     : XE_RS_OK;
    OPENSSL_cleanse(rest.data, rest.len);
    xe_buf_free(&rest);
    return r;
}

int
xe_regsplice_backend(struct xe_regsplice *rs, const void *data, size_t len,
                     struct xe_buf *to_client)
{
    const char *p = data;

    while (len > 0) {
        bool waiting = rs->inject.len > 0;
        size_t n = xe_boundary_scan(&rs->bt, p, len, waiting);

        if (xe_buf_append(to_client, p, n) < 0)
            return -1;
        p += n;
        len -= n;
        if (waiting && xe_boundary_between(&rs->bt))
            xe_regsplice_flush(rs, to_client, false);
    }
    return 0;
}

void
xe_regsplice_flush(struct xe_regsplice *rs, struct xe_buf *to_client, bool force)
{
    if (rs->inject.len == 0 || (!force && !xe_boundary_between(&rs->bt)))
        return;
    xe_buf_append(to_client, rs->inject.data, rs->inject.len);
    rs->inject.len = 0;
}
