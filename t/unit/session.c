/* Unit tests of the c2s login (src/core/session.h): the typed failures and
 * their one mapping to what the client sees, the login timer's decision, and
 * the login machine (struct xe_sess) whole: every ordering rule R1-R7, and
 * the whole login against the canned bytes of each backend kind (Prosody's
 * direct login, Prosody with SASL PLAIN, ejabberd, jabberd2), both orders of
 * the two sides, fed whole and byte by byte; retries. A real LMDB store in a
 * temporary directory and Cyrus SASL over it; no sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "register.h"
#include "sasl.h"
#include "fast.h"
#include "session.h"
#include "tokens.h"
#include "userstore.h"
#include "tap.h"

static void
test_outcomes(void)
{
    const struct xe_sess_outcome *o;

    /* every failure is a defined XMPP outcome with a log event */
    for (int f = 0; f < XE_SF_COUNT; f++) {
        o = xe_sess_outcome((enum xe_sess_fail)f);
        ok(o && o->condition && o->event, "failure %d has a condition and an event", f);
    }
    o = xe_sess_outcome(XE_SF_BACKEND_UNAVAILABLE);
    is_str(o->condition, "remote-connection-failed", "unavailable: condition");
    is_str(o->text, "the service is temporarily unavailable, try again later",
           "unavailable: text");
    ok(!o->backend_lost, "unavailable: not a lost backend");
    o = xe_sess_outcome(XE_SF_USER_SERVER_DOWN);
    is_str(o->condition, "remote-connection-failed", "user's server: condition");
    is_str(o->text, "the server that holds this account is unavailable, try again later",
           "user's server: text");
    o = xe_sess_outcome(XE_SF_BACKEND_LOST);
    is_str(o->condition, "remote-connection-failed", "lost: condition");
    is_str(o->text, "the connection to the service was lost", "lost: text");
    is_str(o->event, "backend-lost", "lost: event");
    ok(o->backend_lost, "lost: counted as a lost backend");
    is_str(xe_sess_outcome(XE_SF_RESTART_TIMEOUT)->condition, "connection-timeout",
           "restart timeout: condition");
    is_str(xe_sess_outcome(XE_SF_RESTART_TIMEOUT)->text,
           "the stream was not restarted in time", "restart timeout: text");
    is_str(xe_sess_outcome(XE_SF_AUTH_TIMEOUT)->text, "authentication took too long",
           "auth timeout: text");
    is_str(xe_sess_outcome(XE_SF_IDLE_TIMEOUT)->text, "idle before authentication",
           "idle timeout: text");
    is_str(xe_sess_outcome(XE_SF_PENDING_OVERFLOW)->condition, "policy-violation",
           "pending overflow: condition");
    is_str(xe_sess_outcome(XE_SF_PENDING_OVERFLOW)->text,
           "too much data before the session started", "pending overflow: text");
    is_str(xe_sess_outcome(XE_SF_HELD_OVERFLOW)->text,
           "too much data during authentication", "held overflow: text");
    is_str(xe_sess_outcome(XE_SF_STANZA_TOO_LARGE)->text, "stanza too large",
           "stanza too large: text");
    is_str(xe_sess_outcome(XE_SF_REGISTER_INTERNAL)->condition, "internal-server-error",
           "register: condition");
    ok(xe_sess_outcome(XE_SF_REGISTER_INTERNAL)->text == NULL, "register: no text");
    is_str(xe_sess_outcome(XE_SF_COMPRESS_CORRUPT)->condition, "undefined-condition",
           "compression: condition");
    is_str(xe_sess_outcome(XE_SF_SHUTDOWN)->condition, "system-shutdown",
           "shutdown: condition");
    is_str(xe_sess_outcome(XE_SF_SHUTDOWN)->text, "the server is shutting down",
           "shutdown: text");
    /* an untyped or out-of-range value still ends as the usual failure */
    ok(xe_sess_outcome(XE_SF_NONE)->text ==
           xe_sess_outcome(XE_SF_BACKEND_UNAVAILABLE)->text,
       "none: the usual failure");
    ok(xe_sess_outcome((enum xe_sess_fail)999) ==
           xe_sess_outcome(XE_SF_BACKEND_UNAVAILABLE),
       "out of range: the usual failure");
}

static enum xe_sess_timer_do
timer(struct xe_sess_timer_in in, enum xe_sess_fail backend_fail, enum xe_sess_fail *fail)
{
    *fail = (enum xe_sess_fail)77;
    return xe_sess_timer(&in, backend_fail, fail);
}

static void
test_timer(void)
{
    enum xe_sess_fail f;

    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_CLOSING}, XE_SF_NONE, &f),
           XE_ST_FINISH_CLOSE, "closing: the grace is over");
    is_int(f, XE_SF_NONE, "closing: no failure");

    /* the backend is being set up */
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND}, XE_SF_NONE, &f),
           XE_ST_BACKEND_TIMEOUT, "backend: no answer in time (the retry decides)");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND, .backend_ready = true},
                 XE_SF_NONE, &f),
           XE_ST_FAIL, "backend ready, no restart: fail");
    is_int(f, XE_SF_RESTART_TIMEOUT, "backend ready, no restart: restart timeout");
    is_int(
        timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND, .backend_failed = true},
              XE_SF_NONE, &f),
        XE_ST_FAIL, "backend failed, no restart: fail");
    is_int(f, XE_SF_BACKEND_UNAVAILABLE, "backend failed: unavailable");
    timer((struct xe_sess_timer_in){.phase = XE_SP_BACKEND,
                                    .backend_failed = true,
                                    .backend_ready = true},
          XE_SF_USER_SERVER_DOWN, &f);
    is_int(f, XE_SF_USER_SERVER_DOWN, "backend failed: the recorded failure wins");

    /* negotiating */
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                           .held = true,
                                           .tls_handshaking = true},
                 XE_SF_NONE, &f),
           XE_ST_RELEASE_HELD, "held: the answer goes out (rule: a held answer resumes)");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                           .tls_handshaking = true,
                                           .now = 5,
                                           .auth_deadline = 1},
                 XE_SF_NONE, &f),
           XE_ST_TLS_TIMEOUT, "TLS handshake: closed without a stream error");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                           .now = 10,
                                           .auth_deadline = 10},
                 XE_SF_NONE, &f),
           XE_ST_FAIL, "deadline reached: fail");
    is_int(f, XE_SF_AUTH_TIMEOUT, "deadline reached: authentication took too long");
    timer((struct xe_sess_timer_in){.phase = XE_SP_NEGOTIATING,
                                    .now = 9,
                                    .auth_deadline = 10},
          XE_SF_NONE, &f);
    is_int(f, XE_SF_IDLE_TIMEOUT, "before the deadline: idle");

    /* spliced */
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_SPLICED}, XE_SF_NONE, &f),
           XE_ST_NOTHING, "spliced: nothing");
    is_int(timer((struct xe_sess_timer_in){.phase = XE_SP_SPLICED, .end_pending = true},
                 XE_SF_NONE, &f),
           XE_ST_BOUNDARY_TIMEOUT, "spliced, error waiting: close");
}

static void
test_starttls(void)
{
    ok(!xe_sess_starttls_injection("", 0), "nothing after <starttls/>");
    ok(!xe_sess_starttls_injection(" \r\n\t", 4), "white space only");
    ok(xe_sess_starttls_injection("\n<auth/>", 8), "an element after <starttls/>");
    ok(xe_sess_starttls_injection("x", 1), "one byte");
    /* byte by byte: each byte is judged alone */
    {
        const char *s = "  <iq type='get'/>";
        bool any = false;
        for (size_t i = 0; i < strlen(s); i++)
            any |= xe_sess_starttls_injection(s + i, 1);
        ok(any, "byte by byte: the injection is seen");
    }
}

static void
test_retry(void)
{
    struct xe_server_conf servers[3] = {{.name = "a"}, {.name = "b"}, {.name = "c"}};
    struct xe_pool_conf pool = {.name = "p",
                                .servers = servers,
                                .n_servers = 3,
                                .policy = XE_POLICY_LEAST_CONN,
                                .retries = 2};

    ok(xe_sess_may_retry(&pool, 0, 0, true), "least-conn, first failure: retry");
    ok(xe_sess_may_retry(&pool, 2, 1, true), "second failure: retry");
    ok(!xe_sess_may_retry(&pool, 1, 2, true), "retries used up: no retry");
    ok(!xe_sess_may_retry(&pool, 0, 0, false),
       "past the handshake: the backend keeps it");
    ok(!xe_sess_may_retry(&pool, XE_SESS_NO_SERVER, 0, true),
       "no server chosen: no retry");
    ok(!xe_sess_may_retry(NULL, 0, 0, true), "no pool: no retry");
    ok(!xe_sess_may_retry(&pool, 64, 0, true), "beyond the tried mask: no retry");
    pool.policy = XE_POLICY_STICKY;
    pool.on_down = XE_ON_DOWN_ERROR;
    ok(!xe_sess_may_retry(&pool, 0, 0, true),
       "sticky, on_down error: the user's server only");
    pool.on_down = XE_ON_DOWN_NEXT;
    ok(xe_sess_may_retry(&pool, 0, 0, true), "sticky, on_down next: retry");
    pool.n_servers = 1;
    ok(!xe_sess_may_retry(&pool, 0, 0, true), "one server: no retry");
    pool.n_servers = 3;
    pool.retries = 0;
    ok(!xe_sess_may_retry(&pool, 0, 0, true), "retries = 0: no retry");
}

static void
test_fail_when(void)
{
    /* between <success/> and the client's new header: the error answers the header */
    is_int(xe_sess_fail_when(true, false, false), XE_SW_AT_RESTART,
           "before the restart: at the restart");
    is_int(xe_sess_fail_when(true, true, false), XE_SW_NOW, "after the restart: now");
    is_int(xe_sess_fail_when(true, false, true), XE_SW_NOW, "a second failure: now");
    is_int(xe_sess_fail_when(false, false, false), XE_SW_NOW, "no c2s core: now");
}

/* Rules 3 and 4: the client is answered only once both sides are in, in
 * either order of arrival. */
static void
test_join(void)
{
    /* rule 3: the backend's features arrive before the client's restart is
     * answered: a restart alone waits, whatever the order */
    is_int(xe_sess_join(true, false, true, false), XE_SJ_WAIT,
           "rule 3: restart first, backend not ready: wait");
    is_int(xe_sess_join(true, true, false, false), XE_SJ_WAIT,
           "backend ready first, no restart: wait");
    is_int(xe_sess_join(true, true, true, false), XE_SJ_RESTART,
           "both: the restart is answered with the features");
    /* rule 4: iq-auth binds (backend ready = bound) before the splice */
    is_int(xe_sess_join(true, false, true, true), XE_SJ_WAIT,
           "rule 4: iq-auth, resource not bound yet: wait");
    is_int(xe_sess_join(true, true, true, true), XE_SJ_IQ_AUTH_SPLICE,
           "rule 4: iq-auth, bound: answer the iq, then splice");
    is_int(xe_sess_join(false, true, true, false), XE_SJ_WAIT,
           "no longer setting up the backend: nothing");
}

/* ---- the login machine, whole and byte by byte ---------------------------- */

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_DIRECT "urn:xedge:auth:0"
#define CHEADER(dom)                                                                     \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' to='" dom "' version='1.0'>"
/* PLAIN, alice / alice-pw: "\0alice\0alice-pw" */
#define AUTH_OK "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXB3</auth>"
#define AUTH_BAD "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>"
#define PIPE                                                                             \
    "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
#define IQ_AUTH                                                                          \
    "<iq type='set' id='s9'><query xmlns='jabber:iq:auth'><username>alice</username>"    \
    "<password>alice-pw</password><resource>r</resource></query></iq>"
#define TOKEN "v1.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl-_x"

#define B_HEADER(id)                                                                     \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' id='" id "' "                       \
    "from='example.test' version='1.0' xml:lang='en'>"
#define B_FEAT1                                                                          \
    "<stream:features><mechanisms xmlns='" NS_SASL                                       \
    "'><mechanism>SCRAM-SHA-1</mechanism>"                                               \
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
#define B_FEAT1_DIRECT                                                                   \
    "<stream:features><mechanisms xmlns='" NS_SASL "'><mechanism>PLAIN</mechanism>"      \
    "</mechanisms><auth xmlns='" NS_DIRECT "'/></stream:features>"
#define B_SUCCESS "<success xmlns='" NS_SASL "'/>"
#define B_FEAT2                                                                          \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>" \
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"         \
    "</stream:features>"
#define B_EXTRA "<message from='a@b' to='alice@example.test'><body>hi</body></message>"
#define BIND_RESULT                                                                      \
    "<iq type='result' id='xe-bind-1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"   \
    "<jid>alice@example.test/r</jid></bind></iq>"

struct kind {
    const char *name, *before_restart, *after_restart, *features, *sent;
};

/* The backend kinds' real bytes, captured from the servers the sandbox runs
 * (contrib/sandbox/xedge-sandbox with XEDGE_SANDBOX_BACKENDS_ONLY=1: Prosody
 * 0.12 with mod_auth_xedge, ejabberd 23.01 and jabberd2 2.7 with
 * xedge-extauth), logging in with an assertion as xedge does. prosody-plain
 * is the same Prosody without the direct login: its <auth xmlns='urn:xedge:auth:0'/>
 * feature taken out. */
static const struct kind kinds[] = {
    {"prosody-direct",
     "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/s"
     "treams' version='1.0' id='b914e5a9-e4b8-4722-a39b-d6029a17aa10' from='exampl"
     "e.test' xml:lang='en' xmlns='jabber:client'><stream:features><register xmlns"
     "='urn:xmpp:invite'/><register xmlns='urn:xmpp:ibr-token:0'/><mechanisms xmln"
     "s='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanism"
     "s><auth xmlns='urn:xedge:auth:0'/><register xmlns='http://jabber.org/feature"
     "s/iq-register'/></stream:features><success xmlns='urn:xedge:auth:0'/>",
     "",
     "<stream:features><ver xmlns='urn:xmpp:features:rosterver'/><sm xmlns='urn:xm"
     "pp:sm:2'><optional/></sm><sm xmlns='urn:xmpp:sm:3'><optional/></sm><bind xml"
     "ns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><session xmlns='urn:"
     "ietf:params:xml:ns:xmpp-session'><optional/></session><csi xmlns='urn:xmpp:c"
     "si:0'/><c node='http://prosody.im' ver='aFSBIOQm69bgjlIJRHM6A+jGGdU=' hash='"
     "sha-1' xmlns='http://jabber.org/protocol/caps'/><sub xmlns='urn:xmpp:feature"
     "s:pre-approval'/></stream:features>",
     "<auth xmlns='" NS_DIRECT "' user='alice'>" TOKEN "</auth>"},
    {"prosody-plain",
     "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/s"
     "treams' version='1.0' id='79c5f281-0c58-45e4-bcfa-957830dc2e17' from='exampl"
     "e.test' xml:lang='en' xmlns='jabber:client'><stream:features><register xmlns"
     "='urn:xmpp:invite'/><register xmlns='urn:xmpp:ibr-token:0'/><mechanisms xmln"
     "s='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanism"
     "s><register xmlns='http://jabber.org/features/iq-register'/></stream:feature"
     "s><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
     "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/s"
     "treams' version='1.0' id='e468cda6-b67f-4ed0-a0e1-1e2d46441ca0' from='exampl"
     "e.test' xml:lang='en' xmlns='jabber:client'>",
     "<stream:features><ver xmlns='urn:xmpp:features:rosterver'/><sm xmlns='urn:xm"
     "pp:sm:2'><optional/></sm><sm xmlns='urn:xmpp:sm:3'><optional/></sm><bind xml"
     "ns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><session xmlns='urn:"
     "ietf:params:xml:ns:xmpp-session'><optional/></session><csi xmlns='urn:xmpp:c"
     "si:0'/><c node='http://prosody.im' ver='aFSBIOQm69bgjlIJRHM6A+jGGdU=' hash='"
     "sha-1' xmlns='http://jabber.org/protocol/caps'/><sub xmlns='urn:xmpp:feature"
     "s:pre-approval'/></stream:features>",
     "mechanism='PLAIN'"},
    {"ejabberd",
     "<?xml version='1.0'?><stream:stream id='5737430860263127349' version='1.0' x"
     "ml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' from='example.t"
     "est' xmlns='jabber:client'><stream:features><mechanisms xmlns='urn:ietf:para"
     "ms:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:featu"
     "res><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
     "<?xml version='1.0'?><stream:stream id='3182052637502701842' version='1.0' x"
     "ml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' from='example.t"
     "est' xmlns='jabber:client'>",
     "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xm"
     "lns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session><c ver='KotyI"
     "MoAomN+LXHEODN7iHd9E40=' node='http://www.process-one.net/en/ejabberd/' hash"
     "='sha-1' xmlns='http://jabber.org/protocol/caps'/><sm xmlns='urn:xmpp:sm:2'/"
     "><sm xmlns='urn:xmpp:sm:3'/><ver xmlns='urn:xmpp:features:rosterver'/><csi x"
     "mlns='urn:xmpp:csi:0'/></stream:features>",
     "mechanism='PLAIN'"},
    {"jabberd2",
     "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/s"
     "treams' xmlns='jabber:client' from='example.test' version='1.0' id='1qqwnc2v"
     "ydh0yhc18l5mktvcf3a3seft55qshsof' xmlns:ack='http://www.xmpp.org/extensions/"
     "xep-0198.html#ns'><stream:features xmlns:stream='http://etherx.jabber.org/st"
     "reams'><address xmlns='http://affinix.com/jabber/address'>127.0.0.1</address"
     "><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mech"
     "anism></mechanisms><auth xmlns='http://jabber.org/features/iq-auth'/><regist"
     "er xmlns='http://jabber.org/features/iq-register'></register></stream:featur"
     "es><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'></success>",
     "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/s"
     "treams' xmlns='jabber:client' from='example.test' version='1.0' id='6g4nt5vf"
     "aiz4dbkhln903368tzqmn6stmwhg2dvd' xmlns:ack='http://www.xmpp.org/extensions/"
     "xep-0198.html#ns'>",
     "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><ack:ack/><"
     "bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><unbind xmln"
     "s='urn:ietf:params:xml:ns:xmpp-bind'/><ver xmlns='urn:xmpp:features:rosterve"
     "r'></ver></stream:features>",
     "mechanism='PLAIN'"},
};

static struct xe_conf conf;
static struct xe_domain_conf domains[2];
static struct xe_pool_conf pool;
static struct xe_server_conf servers[2];
static char *mechs[] = {"PLAIN"};
static uint64_t now = 1000;
/* what the glue remembers of the server's last features (session.h) */
static enum xe_bhs_login hint;

/* What one drive saw. */
struct run {
    struct xe_sess *s;
    struct xe_buf to_client, to_backend;
    char acts[64]; /* one letter per action other than NONE */
    size_t n_acts;
    bool spliced;
    char pend_client[4096], pend_backend[4096];
    size_t zused;     /* START_COMPRESSION: bytes used of the last chunk */
    unsigned n_retry; /* RETRY actions */
};

static const char act_letter[] = {
    [XE_SD_NONE] = '-',     [XE_SD_START_TLS] = 'T', [XE_SD_HOLD] = 'H',
    [XE_SD_CONNECT] = 'C',  [XE_SD_RETRY] = 'R',     [XE_SD_START_COMPRESSION] = 'Z',
    [XE_SD_SPLICE] = 'S',   [XE_SD_CLOSE] = 'X',     [XE_SD_FAST_VERIFY] = 'F',
    [XE_SD_REGISTER] = 'G',
};

static void
collect(struct run *r)
{
    struct xe_buf *c = xe_sess_to_client(r->s), *b = xe_sess_to_backend(r->s);

    xe_buf_append(&r->to_client, c->data, c->len);
    xe_buf_append(&r->to_backend, b->data, b->len);
    xe_sess_sent(r->s);
}

/* Act on D as the glue does: CONNECT/RETRY -> a server and the connection. */
static void
act(struct run *r, enum xe_sess_do d)
{
    collect(r);
    if (d == XE_SD_NONE)
        return;
    if (r->n_acts + 1 < sizeof(r->acts) &&
        (r->n_acts == 0 || r->acts[r->n_acts - 1] != act_letter[d]))
        r->acts[r->n_acts++] = act_letter[d];
    r->n_retry += d == XE_SD_RETRY;
    if (d == XE_SD_CONNECT || d == XE_SD_RETRY) {
        size_t server = xe_sess_tried(r->s) & 1 ? 1 : 0;
        xe_sess_set_login_ahead(r->s, hint);
        act(r, xe_sess_backend_begin(r->s, &pool, server, "alice", TOKEN, XE_SF_NONE));
        act(r, xe_sess_connected(r->s, true, NULL));
    }
    if (d == XE_SD_SPLICE) {
        struct xe_buf pc, pb;
        r->spliced = true;
        xe_sess_take_pending(r->s, &pc, &pb);
        snprintf(r->pend_client, sizeof(r->pend_client), "%.*s", (int)pc.len,
                 (const char *)pc.data);
        snprintf(r->pend_backend, sizeof(r->pend_backend), "%.*s", (int)pb.len,
                 (const char *)pb.data);
        xe_buf_free(&pc);
        xe_buf_free(&pb);
    }
}

/* Feed TEXT from the client in chunks of STEP (0: whole). */
static void
client(struct run *r, const char *text, size_t step)
{
    size_t len = strlen(text), off = 0;

    while (off < len && xe_sess_state(r->s) != XE_SS_CLOSING &&
           xe_sess_state(r->s) != XE_SS_SPLICED) {
        size_t n = step && step < len - off ? step : len - off, used = 0;
        enum xe_sess_do d = xe_sess_client(r->s, text + off, n, &used, now);
        act(r, d);
        if (d == XE_SD_START_COMPRESSION) {
            r->zused = off + used;
            return;
        }
        if (d == XE_SD_START_TLS)
            return; /* R1: the rest of this read is dropped */
        off += n;
    }
    if (r->spliced && off < len) /* after the splice the glue pumps (R7) */
        snprintf(r->pend_backend + strlen(r->pend_backend),
                 sizeof(r->pend_backend) - strlen(r->pend_backend), "%s", text + off);
}

static void
backend(struct run *r, const char *text, size_t step)
{
    size_t len = strlen(text), off = 0;

    while (off < len && xe_sess_state(r->s) == XE_SS_BACKEND) {
        size_t n = step && step < len - off ? step : len - off;
        act(r, xe_sess_backend(r->s, text + off, n, NULL));
        off += n;
    }
    if (r->spliced && off < len)
        snprintf(r->pend_client + strlen(r->pend_client),
                 sizeof(r->pend_client) - strlen(r->pend_client), "%s", text + off);
}

static void
run_start(struct run *r, bool direct_tls)
{
    struct xe_sess_params p = {.conf = &conf, .direct_tls = direct_tls, .peer = "test"};

    memset(r, 0, sizeof(*r));
    xe_buf_init(&r->to_client, 0);
    xe_buf_init(&r->to_backend, 0);
    r->s = xe_sess_new(&p, now);
    if (direct_tls)
        xe_sess_tls_up(r->s, NULL, now);
}

static void
run_end(struct run *r)
{
    xe_sess_free(&r->s);
    xe_buf_free(&r->to_client);
    xe_buf_free(&r->to_backend);
}

static const char *
str(struct xe_buf *b)
{
    xe_buf_append(b, "", 1);
    b->len--;
    return (const char *)b->data;
}

/* The whole login against each backend kind; R3 and R7: the client's
 * restart is answered with the backend's features, what the client and the
 * backend pipelined is kept in order. Both orders of the two sides. */
static void
test_login_kinds(void)
{
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (int order = 0; order < 2; order++)
            for (size_t step = 0; step <= 1; step++) {
                const struct kind *kd = &kinds[k];
                const char *how = step ? "byte by byte" : "whole";
                const char *ord = order ? "backend first" : "client first";
                char bk[4096];
                struct run r;
                const char *out, *succ, *feat;

                snprintf(bk, sizeof(bk), "%s%s%s" B_EXTRA, kd->before_restart,
                         kd->after_restart, kd->features);
                run_start(&r, true);
                client(&r, CHEADER("example.test"), step);
                if (order == 0) {
                    client(&r, AUTH_OK CHEADER("example.test") PIPE, step);
                    ok(!r.spliced, "%s, %s, %s: no splice before the backend", kd->name,
                       ord, how);
                    backend(&r, bk, step);
                } else {
                    client(&r, AUTH_OK, step);
                    backend(&r, bk, step);
                    ok(!r.spliced && !strstr(str(&r.to_client), "xmpp-bind"),
                       "%s, %s, %s: R3 the features wait for the restart", kd->name, ord,
                       how);
                    client(&r, CHEADER("example.test") PIPE, step);
                }
                out = str(&r.to_client);
                succ = strstr(out, "<success");
                feat = strstr(out, "xmpp-bind");
                is_str(r.acts, "CS", "%s, %s, %s: CONNECT then SPLICE", kd->name, ord,
                       how);
                ok(succ && feat && succ < feat,
                   "%s, %s, %s: <success/>, then the backend's features", kd->name, ord,
                   how);
                ok(strstr(str(&r.to_backend), kd->sent) != NULL,
                   "%s, %s, %s: the backend got the login", kd->name, ord, how);
                is_str(r.pend_backend, PIPE, "%s, %s, %s: R7 the client's pipelined iq",
                       kd->name, ord, how);
                is_str(r.pend_client, B_EXTRA, "%s, %s, %s: R7 the backend's stanza",
                       kd->name, ord, how);
                is_int(xe_sess_state(r.s), XE_SS_SPLICED, "%s, %s, %s: spliced", kd->name,
                       ord, how);
                run_end(&r);
            }
}

/* The login sent ahead (backend.h): with the server's kind configured, our
 * stream header and the login go out together at the connect, before the
 * backend said anything, and the login is not sent again after its
 * features; a generic server's and jabberd2's features still decide (2.7
 * leaves a login sent ahead unanswered). Per backend kind, whole and byte by
 * byte. */
static void
test_login_ahead(void)
{
    static const enum xe_server_kind as[] = {XE_KIND_PROSODY, XE_KIND_GENERIC,
                                             XE_KIND_EJABBERD, XE_KIND_JABBERD2};
    static const char *const as_name[] = {"prosody", "generic", "ejabberd", "jabberd2"};

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (size_t step = 0; step <= 1; step++) {
            const struct kind *kd = &kinds[k];
            const char *how = step ? "byte by byte" : "whole";
            bool ahead = as[k] != XE_KIND_GENERIC && as[k] != XE_KIND_JABBERD2;
            char bk[4096];
            const char *sent, *login;
            struct run r;

            servers[0].kind = servers[1].kind = as[k];
            snprintf(bk, sizeof(bk), "%s%s%s" B_EXTRA, kd->before_restart,
                     kd->after_restart, kd->features);
            run_start(&r, true);
            client(&r, CHEADER("example.test"), step);
            client(&r, AUTH_OK, step);
            sent = str(&r.to_backend);
            login = strstr(sent, kd->sent);
            ok(strncmp(sent, "<?xml version='1.0'?><stream:stream", 35) == 0 &&
                   (ahead ? login != NULL : login == NULL),
               "%s as %s, %s: at the connect our header%s", kd->name, as_name[k], how,
               ahead ? " and the login, in one output" : " only (the features decide)");
            backend(&r, bk, step);
            client(&r, CHEADER("example.test") PIPE, step);
            sent = str(&r.to_backend);
            login = strstr(sent, kd->sent);
            ok(login && strstr(login + 1, kd->sent) == NULL,
               "%s as %s, %s: the login sent once", kd->name, as_name[k], how);
            is_str(r.acts, "CS", "%s as %s, %s: CONNECT then SPLICE", kd->name,
                   as_name[k], how);
            is_str(r.pend_backend, PIPE, "%s as %s, %s: R7 the client's pipelined iq",
                   kd->name, as_name[k], how);
            is_str(r.pend_client, B_EXTRA, "%s as %s, %s: R7 the backend's stanza",
                   kd->name, as_name[k], how);
            run_end(&r);
        }
    servers[0].kind = servers[1].kind = XE_KIND_GENERIC;
}

/* A wrong guess: the kind says Prosody (the direct login) but this Prosody
 * does not offer it (xedge_direct_auth = false), or says ejabberd but the
 * server offers no PLAIN. The login is tried once more on a new connection,
 * waiting for the features (no retry spent, the server not blamed); what
 * those features do not offer either fails cleanly, with no third try. */
static void
test_login_ahead_wrong(void)
{
    static const char *const bare_header =
        "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
        "streams' version='1.0' id='x' from='example.test' xmlns='jabber:client'>";
    unsigned retries = pool.retries;

    for (size_t step = 0; step <= 1; step++) {
        const struct kind *kd = &kinds[1]; /* prosody-plain */
        const char *how = step ? "byte by byte" : "whole";
        char bk[4096];
        const char *sent, *err;
        bool counts = true;
        enum xe_bhs_login offered;
        enum xe_sess_do d;
        struct run r;

        servers[0].kind = servers[1].kind = XE_KIND_PROSODY;
        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, AUTH_OK, step);
        ok(strstr(str(&r.to_backend), "urn:xedge:auth:0") != NULL,
           "wrong guess, %s: the direct login sent ahead", how);
        r.to_backend.len = 0;
        /* its first features, no direct login among them (one read: the
         * rest would have been the failed connection's) */
        d = xe_sess_backend(r.s, kd->before_restart, strlen(kd->before_restart), NULL);
        err = xe_sess_backend_error(r.s, &counts); /* (the glue's order) */
        ok(xe_sess_login_offered(r.s, &offered) && offered == XE_BHS_LOGIN_PLAIN,
           "wrong guess, %s: PLAIN offered, for the server's next logins", how);
        act(&r, d);
        is_str(r.acts, "CR", "wrong guess, %s: RETRY at the features", how);
        ok(err && strstr(err, "direct login") && !counts,
           "wrong guess, %s: told, and not held against the server (%s)", how,
           err ? err : "-");
        is_int(xe_sess_retried(r.s), 0, "wrong guess, %s: no retry spent", how);
        is_int(xe_sess_tried(r.s), 0, "wrong guess, %s: the same server may take it",
               how);
        sent = str(&r.to_backend);
        ok(strncmp(sent, "<?xml version='1.0'?><stream:stream", 35) == 0 &&
               strstr(sent, "<auth") == NULL,
           "wrong guess, %s: the new connection waits for the features", how);
        snprintf(bk, sizeof(bk), "%s%s%s" B_EXTRA, kd->before_restart, kd->after_restart,
                 kd->features);
        backend(&r, bk, step);
        client(&r, CHEADER("example.test") PIPE, step);
        ok(strstr(str(&r.to_backend), "mechanism='PLAIN'") != NULL,
           "wrong guess, %s: PLAIN, as the features offer", how);
        is_str(r.acts, "CRS", "wrong guess, %s: then the login, the splice", how);
        run_end(&r);

        /* ejabberd without PLAIN: the second try fails, the session ends */
        servers[0].kind = servers[1].kind = XE_KIND_EJABBERD;
        pool.retries = 0; /* (no other server to try) */
        snprintf(bk, sizeof(bk), "%s<stream:features/>", bare_header);
        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, AUTH_OK, step);
        act(&r, xe_sess_backend(r.s, bk, strlen(bk), NULL));
        is_str(r.acts, "CR", "no PLAIN, %s: RETRY without the guess", how);
        act(&r, xe_sess_backend(r.s, bk, strlen(bk), NULL));
        client(&r, CHEADER("example.test"), step); /* (told at the restart, R3) */
        is_str(r.acts, "CRX", "no PLAIN, %s: then a clean failure", how);
        is_int(r.n_retry, 1, "no PLAIN, %s: no third try", how);
        ok(xe_sess_failure(r.s) != XE_SF_NONE, "no PLAIN, %s: a defined failure", how);
        run_end(&r);
        pool.retries = retries;

        /* what the server offered last time is sent ahead next time */
        servers[0].kind = servers[1].kind = XE_KIND_PROSODY;
        hint = XE_BHS_LOGIN_PLAIN;
        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, AUTH_OK, step);
        ok(strstr(str(&r.to_backend), "mechanism='PLAIN'") != NULL &&
               strstr(str(&r.to_backend), "urn:xedge:auth:0") == NULL,
           "learned, %s: PLAIN sent ahead to this Prosody", how);
        snprintf(bk, sizeof(bk), "%s%s%s" B_EXTRA, kd->before_restart, kd->after_restart,
                 kd->features);
        backend(&r, bk, step);
        client(&r, CHEADER("example.test") PIPE, step);
        is_str(r.acts, "CS", "learned, %s: no retry, the splice", how);
        run_end(&r);
        hint = XE_BHS_LOGIN_WAIT;
    }
    servers[0].kind = servers[1].kind = XE_KIND_GENERIC;
}

/* R1: bytes after <starttls/> are dropped. */
static void
test_r1_starttls(void)
{
    for (size_t step = 0; step <= 1; step++) {
        struct run r;

        run_start(&r, false);
        client(&r, CHEADER("example.test"), step);
        client(&r, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" AUTH_OK, step);
        is_str(r.acts, "T", "R1 (%s): START_TLS, nothing else", step ? "bytes" : "whole");
        ok(strstr(str(&r.to_client), "<proceed") != NULL &&
               strstr(str(&r.to_client), "success") == NULL,
           "R1 (%s): <proceed/>, the pipelined auth never parsed",
           step ? "bytes" : "whole");
        xe_sess_tls_up(r.s, NULL, now);
        r.to_client.len = 0;
        client(&r, CHEADER("example.test"), step);
        ok(strstr(str(&r.to_client), "<mechanisms") != NULL,
           "R1 (%s): a new stream inside TLS is negotiated afresh",
           step ? "bytes" : "whole");
        run_end(&r);
    }
}

static uint64_t
hold_failed(void *ctx, const char *account, bool counted, uint64_t t)
{
    (void)ctx, (void)account, (void)t;
    return counted ? 700 : 0;
}

static const struct xe_sess_guard hold_guard = {NULL, hold_failed, NULL};

/* R2: a held answer is released by the timer, what came meanwhile follows. */
static void
test_r2_held(void)
{
    for (size_t step = 0; step <= 1; step++) {
        struct xe_sess_params p = {
            .conf = &conf, .direct_tls = true, .peer = "t", .guard = &hold_guard};
        const char *how = step ? "byte by byte" : "whole";
        struct run r;
        uint64_t ms = 0;
        int op;

        memset(&r, 0, sizeof(r));
        xe_buf_init(&r.to_client, 0);
        xe_buf_init(&r.to_backend, 0);
        r.s = xe_sess_new(&p, now);
        xe_sess_tls_up(r.s, NULL, now);
        client(&r, CHEADER("example.test"), 0);
        r.to_client.len = 0;
        client(&r, AUTH_BAD AUTH_OK, step);
        ok(xe_sess_held(r.s) && r.acts[0] == 'H', "R2 (%s): held", how);
        op = xe_sess_timer_want(r.s, &ms);
        ok(op == 1 && ms == 700, "R2 (%s): the timer for the delay (%d, %llu)", how, op,
           (unsigned long long)ms);
        ok(strstr(str(&r.to_client), "failure") == NULL,
           "R2 (%s): the failure is not sent yet", how);
        act(&r, xe_sess_timer_fired(r.s, now + 700));
        ok(!xe_sess_held(r.s), "R2 (%s): released: reading resumes", how);
        ok(strstr(str(&r.to_client), "<failure") != NULL &&
               strstr(str(&r.to_client), "<failure") <
                   strstr(str(&r.to_client), "<success"),
           "R2 (%s): the failure, then the pipelined attempt's success", how);
        ok(strchr(r.acts, 'C') != NULL, "R2 (%s): the held success connects", how);
        run_end(&r);
    }
}

/* R3 (failure side): the backend fails between <success/> and the client's
 * new header: the error answers that header. */
static void
test_r3_fail_at_restart(void)
{
    for (size_t step = 0; step <= 1; step++) {
        const char *how = step ? "byte by byte" : "whole";
        struct run r;
        const char *out;

        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, AUTH_OK, step);
        act(&r, xe_sess_backend(r.s, "", 0, "refused"));
        ok(xe_sess_backend_error(r.s, NULL) != NULL,
           "R3 fail (%s): a backend error to log", how);
        ok(xe_sess_backend_error(r.s, NULL) == NULL, "R3 fail (%s): ... told once", how);
        is_int(xe_sess_state(r.s), XE_SS_BACKEND, "R3 fail (%s): waits for the restart",
               how);
        r.to_client.len = 0;
        client(&r, CHEADER("example.test") PIPE, step);
        out = str(&r.to_client);
        ok(strstr(out, "<stream:stream") && strstr(out, "remote-connection-failed"),
           "R3 fail (%s): the restart is answered with the error", how);
        is_int(xe_sess_failure(r.s), XE_SF_BACKEND_UNAVAILABLE, "R3 fail (%s): typed",
               how);
        ok(strchr(r.acts, 'X') != NULL, "R3 fail (%s): close", how);
        run_end(&r);
    }
}

/* R4: iq-auth binds at the backend before the iq is answered and spliced. */
static void
test_r4_iq_auth(void)
{
    for (size_t step = 0; step <= 1; step++) {
        const char *how = step ? "byte by byte" : "whole";
        struct run r;
        char bk[4096];

        snprintf(bk, sizeof(bk), "%s%s%s" BIND_RESULT B_EXTRA, kinds[1].before_restart,
                 kinds[1].after_restart, kinds[1].features);
        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        r.to_client.len = 0;
        client(&r, IQ_AUTH PIPE, step);
        ok(xe_sess_iq_auth(r.s) && strcmp(r.acts, "C") == 0, "R4 (%s): connect", how);
        ok(strstr(str(&r.to_client), "result") == NULL,
           "R4 (%s): no iq result before the bind", how);
        backend(&r, bk, step);
        ok(strstr(str(&r.to_backend), "<resource>r</resource>") != NULL,
           "R4 (%s): the backend binds the resource", how);
        ok(strstr(str(&r.to_client), "type='result'") != NULL && r.spliced,
           "R4 (%s): then the iq result and the splice", how);
        is_str(r.pend_backend, PIPE, "R4 (%s): R7 the client's next stanza kept", how);
        is_str(r.pend_client, B_EXTRA, "R4 (%s): R5 the backend's from its boundary",
               how);
        run_end(&r);
    }
    {
        struct run r;

        run_start(&r, true);
        client(&r, CHEADER("example.test"), 0);
        client(&r, IQ_AUTH, 0);
        r.to_client.len = 0;
        backend(&r,
                B_HEADER("p") B_FEAT1 B_SUCCESS B_HEADER("q") B_FEAT2
                "<iq type='error' id='xe-bind-1'><error type='cancel'><conflict "
                "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                0);
        ok(strstr(str(&r.to_client), "conflict") && strchr(r.acts, 'X') &&
               xe_sess_bind_refused(r.s) != NULL,
           "R4: a bind refusal is the iq's error, then close");
        run_end(&r);
    }
}

/* R6: compression starts on the right byte. */
static void
test_r6_compression(void)
{
    static const char compress[] =
        "<compress xmlns='http://jabber.org/protocol/compress'>"
        "<method>zlib</method></compress>";
    char bk[4096];

    snprintf(bk, sizeof(bk), "%s%s%s", kinds[1].before_restart, kinds[1].after_restart,
             kinds[1].features);
    domains[0].compression = true;
    for (size_t step = 0; step <= 1; step++) {
        const char *how = step ? "byte by byte" : "whole";
        char in[512];
        struct run r;

        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, AUTH_OK CHEADER("example.test"), step);
        backend(&r, bk, step);
        ok(!r.spliced && xe_sess_state(r.s) == XE_SS_COMPRESS_OFFER,
           "R6 (%s): compression offered: the client's next element decides", how);
        snprintf(in, sizeof(in), "%s\x78\x9c garbage", compress);
        client(&r, in, step);
        is_int(r.zused, strlen(compress), "R6 (%s): compression starts after </compress>",
               how);
        ok(strstr(str(&r.to_client), "<compressed") != NULL,
           "R6 (%s): <compressed/> goes out", how);
        run_end(&r);

        /* not <compress/>: spliced with that element first */
        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, AUTH_OK CHEADER("example.test") PIPE, step);
        backend(&r, bk, step);
        ok(r.spliced, "R6 (%s): another element: spliced", how);
        is_str(r.pend_backend, PIPE, "R6 (%s): R7 the element pipelined is kept", how);
        run_end(&r);
    }
    domains[0].compression = false;
}

/* Retries: a failure in the handshake goes to the other server. */
static void
test_machine_retry(void)
{
    struct run r;

    pool.retries = 1;
    run_start(&r, true);
    client(&r, CHEADER("example.test"), 0);
    client(&r, AUTH_OK CHEADER("example.test") PIPE, 0);
    act(&r, xe_sess_backend(r.s, B_HEADER("x"), strlen(B_HEADER("x")), NULL));
    act(&r, xe_sess_backend(r.s, "", 0, "reset"));
    is_str(r.acts, "CR", "retry: the handshake failure retries");
    ok(xe_sess_tried(r.s) == 1 && xe_sess_retried(r.s) == 1, "retry: server 0 tried");
    r.to_backend.len = 0;
    backend(&r, B_HEADER("p2") B_FEAT1 B_SUCCESS B_HEADER("p3") B_FEAT2, 0);
    is_str(r.acts, "CRS", "retry: the second server takes the login");
    is_str(r.pend_backend, PIPE, "retry: R7 survives the retry");
    run_end(&r);
    pool.retries = 0;
}

/* ---- SASL2 (XEP-0388) ------------------------------------------------------ */

#define NS_SASL2 "urn:xmpp:sasl:2"
#define AUTHN2(ir)                                                                       \
    "<authenticate xmlns='" NS_SASL2 "' mechanism='PLAIN'><initial-response>" ir         \
    "</initial-response><user-agent id='ua-1'><software>t</software></user-agent>"       \
    "</authenticate>"
#define AUTHN2_OK AUTHN2("AGFsaWNlAGFsaWNlLXB3")
#define AUTHN2_BAD AUTHN2("AGFsaWNlAHdyb25n")

/* A SASL2 login against each backend kind, whole and byte by byte, both
 * orders: no restart; <success> (the bare JID as authorization identifier)
 * goes out only once the backend is ready, followed by the backend's
 * post-login features on the same stream; what each side pipelined is kept
 * (R7). Early input: the <authenticate> written with the header. */
static void
test_sasl2_kinds(void)
{
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (int order = 0; order < 2; order++)
            for (size_t step = 0; step <= 1; step++) {
                const struct kind *kd = &kinds[k];
                const char *how = step ? "byte by byte" : "whole";
                const char *ord = order ? "backend first" : "client first";
                char bk[4096];
                struct run r;
                const char *out, *succ, *feat, *mech2;

                snprintf(bk, sizeof(bk), "%s%s%s" B_EXTRA, kd->before_restart,
                         kd->after_restart, kd->features);
                run_start(&r, true);
                if (order == 0) {
                    client(&r, CHEADER("example.test") AUTHN2_OK PIPE, step);
                    ok(!r.spliced && strstr(str(&r.to_client), "<success") == NULL,
                       "sasl2 %s, %s, %s: no success before the backend", kd->name, ord,
                       how);
                    backend(&r, bk, step);
                } else {
                    client(&r, CHEADER("example.test") AUTHN2_OK, step);
                    backend(&r, bk, step);
                    client(&r, PIPE, step);
                }
                out = str(&r.to_client);
                mech2 = strstr(out, "<authentication xmlns='" NS_SASL2 "'>");
                succ = strstr(out, "<success xmlns='" NS_SASL2 "'>");
                feat = strstr(out, "xmpp-bind");
                ok(mech2 && strstr(mech2, "<mechanism>PLAIN</mechanism>"),
                   "sasl2 %s, %s, %s: SASL2 offered with the mechanisms", kd->name, ord,
                   how);
                is_str(r.acts, "CS", "sasl2 %s, %s, %s: CONNECT then SPLICE", kd->name,
                       ord, how);
                ok(succ && feat && succ < feat &&
                       strstr(out, "<authorization-identifier>alice@example.test<"),
                   "sasl2 %s, %s, %s: <success> with the bare JID, then the features",
                   kd->name, ord, how);
                ok(succ && strstr(succ, "<stream:stream") == NULL,
                   "sasl2 %s, %s, %s: no stream restart", kd->name, ord, how);
                ok(strstr(str(&r.to_backend), kd->sent) != NULL,
                   "sasl2 %s, %s, %s: the backend got the login", kd->name, ord, how);
                is_str(r.pend_backend, PIPE, "sasl2 %s, %s, %s: R7 the client's iq",
                       kd->name, ord, how);
                is_str(r.pend_client, B_EXTRA,
                       "sasl2 %s, %s, %s: R7 the backend's stanza after the answer",
                       kd->name, ord, how);
                run_end(&r);
            }
}

/* A SASL2 failure leaves room for another attempt on the same stream;
 * max_auth_attempts failures end it. */
static void
test_sasl2_failure(void)
{
    for (size_t step = 0; step <= 1; step++) {
        const char *how = step ? "byte by byte" : "whole";
        struct run r;
        const char *out;

        run_start(&r, true);
        client(&r, CHEADER("example.test") AUTHN2_BAD, step);
        out = str(&r.to_client);
        ok(strstr(out, "<failure xmlns='" NS_SASL2 "'><not-authorized") != NULL,
           "sasl2 (%s): a wrong password: <failure><not-authorized/>", how);
        is_str(r.acts, "", "sasl2 (%s): nothing else", how);
        client(&r, AUTHN2_OK, step);
        backend(&r, kinds[2].before_restart, step);
        backend(&r, kinds[2].after_restart, step);
        backend(&r, kinds[2].features, step);
        ok(strstr(str(&r.to_client), "<success xmlns='" NS_SASL2 "'>") != NULL,
           "sasl2 (%s): then the right one succeeds on the same stream", how);
        is_str(r.acts, "CS", "sasl2 (%s): CONNECT then SPLICE", how);
        run_end(&r);
        run_start(&r, true);
        client(&r, CHEADER("example.test") AUTHN2_BAD AUTHN2_BAD AUTHN2_BAD, step);
        ok(strstr(str(&r.to_client), "too many failed") != NULL,
           "sasl2 (%s): max_auth_attempts failures end the stream", how);
        is_str(r.acts, "X", "sasl2 (%s): CLOSE", how);
        run_end(&r);
    }
}

/* Bind2 (XEP-0386) inside the SASL2 login, per backend kind, whole and byte
 * by byte: the script goes to the backend after its login (bind; carbons and
 * SM enable only where the pool's kind can); its answers are swallowed and
 * folded into <bound/>, the full JID is the authorization identifier, the
 * post-login features lose bind, session and (SM enabled) sm; a stanza the
 * backend sent among the answers is held and delivered after <success>,
 * before what followed <enabled/> (R7). */
#define BIND2_REQ                                                                        \
    "<bind xmlns='urn:xmpp:bind:0'><tag>t</tag><enable xmlns='urn:xmpp:carbons:2'/>"     \
    "<enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>"
#define AUTHN2_BIND                                                                      \
    "<authenticate xmlns='" NS_SASL2 "' mechanism='PLAIN'><initial-response>"            \
    "AGFsaWNlAGFsaWNlLXB3</initial-response><user-agent id='ua-1'/>" BIND2_REQ           \
    "</authenticate>"
#define B2_BIND_RES                                                                      \
    "<iq type='result' id='xe-b2-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"  \
    "<jid>alice@example.test/t.0123456789ab</jid></bind></iq>"
#define B2_HELD "<message from='c@d' to='alice@example.test'><body>held</body></message>"
#define B2_CARB_RES "<iq type='result' id='xe-b2-carb'/>"
#define B2_ENABLED                                                                       \
    "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' location='10.9.9.9:5222'/>"

static void
test_bind2_kinds(void)
{
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (size_t step = 0; step <= 1; step++) {
            const struct kind *kd = &kinds[k];
            bool j2 = strcmp(kd->name, "jabberd2") == 0;
            const char *how = step ? "byte by byte" : "whole";
            char bk[4096], all[8192];
            struct run r;
            const char *out, *succ, *tb;

            servers[0].kind = servers[1].kind = j2 ? XE_KIND_JABBERD2 : XE_KIND_PROSODY;
            hint = k == 0 ? XE_BHS_LOGIN_DIRECT : XE_BHS_LOGIN_PLAIN; /* (as offered) */
            snprintf(bk, sizeof(bk), "%s%s%s", kd->before_restart, kd->after_restart,
                     kd->features);
            run_start(&r, true);
            client(&r, CHEADER("example.test") AUTHN2_BIND PIPE, step);
            backend(&r, bk, step);
            tb = str(&r.to_backend);
            ok(strstr(tb, "id='xe-b2-bind'") && strstr(tb, "<resource>t.") != NULL,
               "bind2 %s, %s: the backend is asked to bind TAG.SUFFIX", kd->name, how);
            ok(j2 == (strstr(tb, "urn:xmpp:sm:3") == NULL &&
                      strstr(tb, "urn:xmpp:carbons:2") == NULL),
               "bind2 %s, %s: carbons and SM enable asked %s", kd->name, how,
               j2 ? "not (the pool cannot)" : "for");
            ok(strstr(str(&r.to_client), "<success") == NULL,
               "bind2 %s, %s: no success before the bind's answer", kd->name, how);
            if (j2)
                backend(&r, B2_BIND_RES B2_HELD B_EXTRA, step);
            else
                backend(&r, B2_BIND_RES B2_HELD B2_CARB_RES B2_ENABLED B_EXTRA, step);
            out = str(&r.to_client);
            succ = strstr(out, "<success xmlns='" NS_SASL2 "'>");
            is_str(r.acts, "CS", "bind2 %s, %s: CONNECT then SPLICE", kd->name, how);
            ok(succ && strstr(succ, "<authorization-identifier>alice@example.test/"
                                    "t.0123456789ab</authorization-identifier>"),
               "bind2 %s, %s: the full JID as authorization identifier", kd->name, how);
            ok(succ && strstr(succ, "<bound xmlns='urn:xmpp:bind:0'") != NULL,
               "bind2 %s, %s: <bound/> in <success>", kd->name, how);
            ok(j2 || (strstr(out, "<enabled") && !strstr(out, "location=")),
               "bind2 %s, %s: <enabled/> folded in, without the backend's location",
               kd->name, how);
            ok(succ && !strstr(succ, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'") &&
                   !strstr(succ, "xmpp-session") &&
                   strstr(succ, j2 ? "<ack:ack/>" : "<csi") &&
                   (j2 || !strstr(succ, "<sm ")) && strstr(succ, "</stream:features>"),
               "bind2 %s, %s: the features follow without bind, session, sm", kd->name,
               how);
            ok(!strstr(out, "xe-b2-") && !strstr(out, "<iq"),
               "bind2 %s, %s: the backend's answers are swallowed", kd->name, how);
            snprintf(all, sizeof(all), "%s%s", out, r.pend_client);
            ok(strstr(all, B2_HELD) && strstr(all, B_EXTRA) &&
                   strstr(all, succ ? "<success" : "-") < strstr(all, B2_HELD) &&
                   strstr(all, B2_HELD) < strstr(all, B_EXTRA),
               "bind2 %s, %s: held stanza after <success>, before the rest, in order",
               kd->name, how);
            is_str(r.pend_backend, PIPE, "bind2 %s, %s: R7 the client's stanza kept",
                   kd->name, how);
            run_end(&r);
        }
    servers[0].kind = servers[1].kind = XE_KIND_GENERIC;
    hint = XE_BHS_LOGIN_WAIT;
}

/* The backend refuses the bind: a SASL2 failure (temporary), the stream ends. */
static void
test_bind2_refused(void)
{
    struct run r;
    char bk[4096];

    servers[0].kind = servers[1].kind = XE_KIND_PROSODY;
    hint = XE_BHS_LOGIN_PLAIN; /* (what these bytes offer) */
    snprintf(bk, sizeof(bk), "%s%s%s", kinds[2].before_restart, kinds[2].after_restart,
             kinds[2].features);
    run_start(&r, true);
    client(&r, CHEADER("example.test") AUTHN2_BIND, 0);
    backend(&r, bk, 0);
    backend(&r,
            "<iq type='error' id='xe-b2-bind'><error type='cancel'><not-allowed "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            0);
    ok(strstr(str(&r.to_client),
              "<failure xmlns='" NS_SASL2 "'><temporary-auth-failure") != NULL,
       "bind2 refused: <failure><temporary-auth-failure/>");
    is_str(r.acts, "CX", "bind2 refused: CLOSE");
    run_end(&r);
    servers[0].kind = servers[1].kind = XE_KIND_GENERIC;
    hint = XE_BHS_LOGIN_WAIT;
}

/* FAST (XEP-0484) through the machine: an HT-SHA-256-NONE <authenticate>
 * makes it stop reading and ask for the verification (XE_SD_FAST_VERIFY,
 * the request carrying the JID, user agent and proof); what the client sent
 * meanwhile waits; the verdict answers the element (success: the Responder
 * as additional data, then the backend; failure: room for the password on
 * the same stream, not counted against max_auth_attempts). Whole and byte
 * by byte. The store's verify runs here synchronously, as the glue's
 * thread pool would. */
static void
test_fast(struct xe_tokens *tokens)
{
    char token[XE_TOKEN_MAX + 1], *err = NULL, ir[128], b64[256], authn[1024];
    unsigned char proof[32];
    int64_t expiry;
    size_t il, bl;

    if (xe_tokens_issue(tokens, "alice@example.test", "ua-f", "HT-SHA-256-NONE",
                        time(NULL), 3600, token, &expiry, &err) != XE_US_OK) {
        ok(0, "issue a token: %s", err ? err : "?");
        free(err);
        return;
    }
    xe_ht_sha256(token, strlen(token), "Initiator", NULL, 0, proof);
    memcpy(ir, "alice", 6);
    memcpy(ir + 6, proof, 32);
    il = 38;
    xe_sasl_b64_encode(ir, il, b64, sizeof(b64), &bl);
    for (size_t step = 0; step <= 1; step++)
        for (int good = 0; good < 2; good++) {
            const char *how = step ? "byte by byte" : "whole";
            const struct xe_fast_req *q;
            unsigned char resp[32];
            enum xe_sasl_cond cond = XE_SASL_OK;
            const char *detail = NULL;
            struct run r;
            int rc;

            snprintf(authn, sizeof(authn),
                     "<authenticate xmlns='" NS_SASL2 "' mechanism='HT-SHA-256-NONE'>"
                     "<initial-response>%s</initial-response><user-agent id='ua-f'/>"
                     "<fast xmlns='urn:xmpp:fast:0'/></authenticate>",
                     good ? b64 : "YWxpY2UAd3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3c=");
            run_start(&r, true);
            xe_sess_set_fast(r.s, tokens, NULL, 0);
            client(&r, CHEADER("example.test"), step);
            ok(strstr(str(&r.to_client), "<mechanism>HT-SHA-256-NONE</mechanism>") !=
                   NULL,
               "fast (%s): HT-SHA-256-NONE offered in <inline>", how);
            client(&r, authn, step);
            client(&r, good ? PIPE : AUTHN2_OK, step);
            q = xe_sess_fast_request(r.s);
            is_str(r.acts, "FH",
                   "fast %s (%s): the machine asks for a verification, holds the rest",
                   good ? "good" : "bad", how);
            ok(q && strcmp(q->jid, "alice@example.test") == 0 &&
                   strcmp(q->ua_id, "ua-f") == 0 && q->proof_len == 32,
               "fast %s (%s): the request names the user, the user agent, the proof",
               good ? "good" : "bad", how);
            ok(xe_sess_held(r.s) && !strstr(str(&r.to_client), "<success"),
               "fast %s (%s): nothing is answered or read meanwhile",
               good ? "good" : "bad", how);
            if (q == NULL) {
                run_end(&r);
                continue;
            }
            rc = xe_tokens_verify(tokens, q->jid, q->ua_id, q->mech, q->cb, q->cb_len,
                                  q->proof, q->proof_len, q->has_count, q->count,
                                  time(NULL), resp, &cond, &detail);
            act(&r, xe_sess_fast_verdict(r.s, rc, cond, detail, resp, now));
            if (good) {
                backend(&r, kinds[2].before_restart, step);
                backend(&r, kinds[2].after_restart, step);
                backend(&r, kinds[2].features, step);
                ok(strstr(str(&r.to_client), "<success xmlns='" NS_SASL2 "'>") &&
                       strstr(str(&r.to_client), "<additional-data>"),
                   "fast good (%s): <success> with the Responder", how);
                is_str(r.acts, "FHCS", "fast good (%s): then CONNECT, SPLICE", how);
                is_str(r.pend_backend, PIPE, "fast good (%s): the client's iq kept", how);
            } else {
                ok(strstr(str(&r.to_client), "<failure xmlns='" NS_SASL2 "'>") != NULL,
                   "fast bad (%s): <failure>", how);
                is_str(r.acts, "FHC",
                       "fast bad (%s): the password attempt that waited succeeds", how);
            }
            run_end(&r);
        }
}

/* Inline resumption (XEP-0198 inside SASL2): the client's <resume/> goes to
 * the fresh authenticated backend stream, no bind; <resumed/> is reported in
 * <success> without the backend's location, no features follow, the
 * backend's replay after it reaches the client after the answer. <failed/>:
 * Bind2 on the same backend stream, <failed/> beside <bound/>. */
#define AUTHN2_RESUME                                                                    \
    "<authenticate xmlns='" NS_SASL2 "' mechanism='PLAIN'><initial-response>"            \
    "AGFsaWNlAGFsaWNlLXB3</initial-response><user-agent id='ua-1'/>"                     \
    "<resume xmlns='urn:xmpp:sm:3' previd='sm-9' h='3'/>" BIND2_REQ "</authenticate>"

static void
test_resume(void)
{
    char bk[4096];

    servers[0].kind = servers[1].kind = XE_KIND_PROSODY;
    hint = XE_BHS_LOGIN_PLAIN; /* (what these bytes offer) */
    snprintf(bk, sizeof(bk), "%s%s%s", kinds[1].before_restart, kinds[1].after_restart,
             kinds[1].features);
    for (size_t step = 0; step <= 1; step++)
        for (int good = 0; good < 2; good++) {
            const char *how = step ? "byte by byte" : "whole";
            const char *out, *succ;
            struct run r;

            run_start(&r, true);
            client(&r, CHEADER("example.test"), step);
            ok(strstr(str(&r.to_client), "<sm xmlns='urn:xmpp:sm:3'/>") != NULL,
               "resume (%s): offered in <inline>", how);
            client(&r, AUTHN2_RESUME, step);
            backend(&r, bk, step);
            ok(strstr(str(&r.to_backend),
                      "<resume xmlns='urn:xmpp:sm:3' previd='sm-9' h='3'/>") &&
                   !strstr(str(&r.to_backend), "xe-b2-bind"),
               "resume (%s): the backend gets the <resume/>, no bind", how);
            if (good) {
                backend(&r,
                        "<resumed xmlns='urn:xmpp:sm:3' h='5' previd='sm-9' "
                        "location='10.1.1.1'/>" B_EXTRA,
                        step);
                out = str(&r.to_client);
                succ = strstr(out, "<success xmlns='" NS_SASL2 "'>");
                ok(succ && strstr(succ,
                                  "<resumed xmlns='urn:xmpp:sm:3' h='5' previd='sm-9'/>"),
                   "resumed (%s): <resumed/> in <success>, without location", how);
                ok(succ && !strstr(succ, "<stream:features") && !strstr(succ, "<bound"),
                   "resumed (%s): no features, no bind", how);
                is_str(r.pend_client, B_EXTRA,
                       "resumed (%s): the replay after the answer", how);
            } else {
                backend(&r,
                        "<failed xmlns='urn:xmpp:sm:3'><item-not-found "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
                        step);
                ok(strstr(str(&r.to_backend), "xe-b2-bind") != NULL,
                   "resume failed (%s): Bind2 on the same backend stream", how);
                backend(&r, B2_BIND_RES B2_CARB_RES B2_ENABLED, step);
                out = str(&r.to_client);
                succ = strstr(out, "<success xmlns='" NS_SASL2 "'>");
                ok(succ &&
                       strstr(succ, "<failed xmlns='urn:xmpp:sm:3'><item-not-found") &&
                       strstr(succ, "<bound") && strstr(succ, "<enabled"),
                   "resume failed (%s): <failed/> beside <bound/> with SM enabled anew",
                   how);
            }
            is_str(r.acts, "CS", "resume (%s): CONNECT then SPLICE", how);
            run_end(&r);
        }
    servers[0].kind = servers[1].kind = XE_KIND_GENERIC;
    hint = XE_BHS_LOGIN_WAIT;
}

/* A failed token counts half in the lockout guard (every second one of a
 * stream is counted) and not toward max_auth_attempts: four bad tokens on
 * one stream (more than max_auth_attempts, 3) give the guard two counted
 * failures, and the stream stays open for the password. */
static char counted_seq[16];

static uint64_t
seq_failed(void *ctx, const char *account, bool counted, uint64_t t)
{
    size_t n = strlen(counted_seq);
    (void)ctx, (void)t;
    if (n + 1 < sizeof(counted_seq))
        counted_seq[n] =
            counted ? (strcmp(account, "alice@example.test") == 0 ? 'c' : '?') : 'u';
    return 0;
}

static const struct xe_sess_guard seq_guard = {NULL, seq_failed, NULL};

static void
test_fast_lockout_weight(struct xe_tokens *tokens)
{
    const char *bad =
        "<authenticate xmlns='" NS_SASL2 "' mechanism='HT-SHA-256-NONE'>"
        "<initial-response>YWxpY2UAd3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3c="
        "</initial-response><user-agent id='ua-f'/></authenticate>";
    struct xe_sess_params p = {
        .conf = &conf, .direct_tls = true, .peer = "t", .guard = &seq_guard};
    struct run r;

    memset(&r, 0, sizeof(r));
    memset(counted_seq, 0, sizeof(counted_seq));
    xe_buf_init(&r.to_client, 0);
    xe_buf_init(&r.to_backend, 0);
    r.s = xe_sess_new(&p, now);
    xe_sess_tls_up(r.s, NULL, now);
    xe_sess_set_fast(r.s, tokens, NULL, 0);
    client(&r, CHEADER("example.test"), 0);
    for (int i = 0; i < 4; i++) {
        const struct xe_fast_req *q;
        unsigned char resp[32];
        enum xe_sasl_cond cond = XE_SASL_OK;
        const char *detail = NULL;
        int rc;

        client(&r, bad, 0);
        q = xe_sess_fast_request(r.s);
        if (q == NULL)
            break;
        rc = xe_tokens_verify(tokens, q->jid, q->ua_id, q->mech, q->cb, q->cb_len,
                              q->proof, q->proof_len, q->has_count, q->count, time(NULL),
                              resp, &cond, &detail);
        act(&r, xe_sess_fast_verdict(r.s, rc, cond, detail, resp, now));
    }
    is_str(counted_seq, "ucuc",
           "fast: bad tokens count half in the guard (every second)");
    ok(xe_sess_state(r.s) == XE_SS_NEGOTIATING,
       "fast: four bad tokens (max_auth_attempts 3) leave the stream open");
    client(&r, AUTHN2_OK, 0);
    is_str(r.acts, "FC", "fast: then the password succeeds on the same stream");
    run_end(&r);
}

/* R2 and FAST: a token attempt pipelined behind a failed password waits for
 * the failure's delay before its verification starts (else pipelining a
 * token attempt behind each guess would skip the delays). */
static void
test_fast_after_hold(struct xe_tokens *tokens)
{
    const char *tok =
        "<authenticate xmlns='" NS_SASL2 "' mechanism='HT-SHA-256-NONE'>"
        "<initial-response>YWxpY2UAd3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3c="
        "</initial-response><user-agent id='ua-f'/></authenticate>";
    struct xe_sess_params p = {
        .conf = &conf, .direct_tls = true, .peer = "t", .guard = &hold_guard};
    char both[2048];
    struct run r;

    snprintf(both, sizeof(both), "%s%s", AUTHN2_BAD, tok);
    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.to_client, 0);
    xe_buf_init(&r.to_backend, 0);
    r.s = xe_sess_new(&p, now);
    xe_sess_tls_up(r.s, NULL, now);
    xe_sess_set_fast(r.s, tokens, NULL, 0);
    client(&r, CHEADER("example.test"), 0);
    client(&r, both, 0);
    is_str(r.acts, "H", "R2 fast: a bad password, a token pipelined: held first");
    ok(xe_sess_fast_request(r.s) == NULL, "R2 fast: no verification during the delay");
    act(&r, xe_sess_timer_fired(r.s, now + 700));
    is_str(r.acts, "HF", "R2 fast: after the delay the token is verified");
    ok(xe_sess_fast_request(r.s) != NULL && xe_sess_held(r.s),
       "R2 fast: its request is there, the client is not read meanwhile");
    run_end(&r);
}

/* In-band registration before authentication: the request stops the
 * machine (XE_SD_REGISTER) with its job, to run off the loop; nothing is
 * answered and what the client sent after it waits; the job's end answers
 * it, then the rest (here the form's request) is answered, in order. A
 * session freed while its job runs leaves the job whole (valgrind). Whole
 * and byte by byte. */
#define REG_SET(n)                                                                       \
    "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>" n            \
    "</username><password>pw-" n "</password></query></iq>"
#define REG_GET "<iq type='get' id='reg2'><query xmlns='jabber:iq:register'/></iq>"

static void
test_register(struct xe_userstore *store)
{
    const char *names[] = {"newbie0", "newbie1"};
    char req[512];
    struct xe_user u;
    char *err = NULL;

    domains[0].register_ = true;
    conf.scram_iterations = 16;
    xe_register_global_init(store, &conf);
    for (size_t step = 0; step <= 1; step++) {
        const char *how = step ? "byte by byte" : "whole";
        struct xe_reg_job *j;
        struct run r;
        const char *res, *form;

        snprintf(req, sizeof(req),
                 "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>%s"
                 "</username><password>pw</password></query></iq>" REG_GET,
                 names[step]);
        run_start(&r, true);
        client(&r, CHEADER("example.test"), step);
        client(&r, req, step);
        ok(r.acts[0] == 'G' && strstr(str(&r.to_client), "id='reg") == NULL,
           "register (%s): the machine asks for the job, answers nothing (%s)", how,
           r.acts);
        j = xe_sess_take_reg_job(r.s);
        ok(j != NULL && xe_reg_job_op(j) == XE_REG_CREATE &&
               xe_sess_take_reg_job(r.s) == NULL,
           "register (%s): the job, once", how);
        {
            uint64_t ms = 0;
            int op = xe_sess_timer_want(r.s, &ms);
            ok(op > 0 && ms > conf.preauth_idle_ms && ms <= conf.auth_timeout_ms,
               "register (%s): meanwhile only the auth deadline runs, not preauth_idle "
               "(%d, %llu ms)",
               how, op, (unsigned long long)ms);
        }
        if (j == NULL) {
            run_end(&r);
            continue;
        }
        xe_reg_job_run(j);
        act(&r, xe_sess_reg_done(r.s, j, now));
        res = strstr(str(&r.to_client), "<iq type='result' id='reg1'/>");
        form = strstr(str(&r.to_client), "<iq type='result' id='reg2'>");
        ok(res && form && res < form,
           "register (%s): the account's result, then the form asked after it", how);
        snprintf(req, sizeof(req), "%s@example.test", names[step]);
        ok(xe_userstore_get(store, req, &u, &err) == XE_US_OK &&
               xe_user_check_password(&u, "pw", 2),
           "register (%s): the job wrote the user", how);
        client(&r, AUTH_OK, step);
        ok(strstr(str(&r.to_client), "<success") != NULL,
           "register (%s): the stream reads again: a login follows", how);
        run_end(&r);
    }
    {
        /* the session goes away while the job runs */
        struct xe_reg_job *j;
        struct run r;

        run_start(&r, true);
        client(&r, CHEADER("example.test"), 0);
        client(&r, REG_SET("gone") REG_GET, 0);
        j = xe_sess_take_reg_job(r.s);
        run_end(&r);
        if (j)
            xe_reg_job_run(j);
        ok(j != NULL && strcmp(xe_reg_job_result(j), "ok") == 0,
           "register: a job outlives its session");
        xe_reg_job_free(&j);
        /* a job never taken goes with the session (valgrind: no leak) */
        run_start(&r, true);
        client(&r, CHEADER("example.test"), 0);
        client(&r, REG_SET("gone2"), 0);
        run_end(&r);
    }
    xe_register_global_free();
    domains[0].register_ = false;
    conf.scram_iterations = 0;
    free(err);
}

static int
login_tests(void)
{
    char *dir = tap_mkdtemp("session-test"), *err = NULL;
    struct xe_userstore *store = NULL;
    struct xe_user u;
    int r;

    xe_log_level = XE_LOG_ERROR;
    if (dir == NULL)
        return -1;
    r = xe_userstore_open(dir, false, 16, &store, &err);
    ok(r == XE_US_OK, "userstore open %s", err ? err : "");
    free(err);
    err = NULL;
    if (r != XE_US_OK)
        goto out;
    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "alice@example.test");
    xe_user_set_password(&u, "alice-pw", 8, 16);
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "store alice");
    free(err);
    err = NULL;
    r = xe_sasl_global_init(store, "PLAIN", 16, &err);
    ok(r == 0, "xe_sasl_global_init %s", err ? err : "");
    free(err);
    servers[0].name = "one";
    servers[1].name = "two";
    pool.name = "p";
    pool.servers = servers;
    pool.n_servers = 2;
    pool.policy = XE_POLICY_LEAST_CONN;
    domains[0].name = "example.test";
    domains[0].iq_auth = true;
    domains[0].sasl2 = true;
    domains[0].pool = &pool;
    conf.domains = domains;
    conf.n_domains = 1;
    conf.mechanisms = mechs;
    conf.n_mechanisms = 1;
    conf.max_auth_attempts = 3;
    conf.max_stanza_preauth = 16384;
    conf.max_stanza_postauth = 65536;
    conf.max_xml_depth = 8;
    conf.max_attrs = 16;
    conf.max_sasl_bytes = 8192;
    conf.pump_hard_cap = 1 << 20;
    conf.auth_timeout_ms = 30000;
    conf.preauth_idle_ms = 10000;
    conf.tls_timeout_ms = 5000;
    conf.backend_connect_ms = 3000;
    conf.backend_handshake_ms = 5000;
    if (r == 0) {
        test_login_kinds();
        test_login_ahead();
        test_login_ahead_wrong();
        test_r1_starttls();
        test_r2_held();
        test_r3_fail_at_restart();
        test_r4_iq_auth();
        test_r6_compression();
        test_machine_retry();
        test_sasl2_kinds();
        test_sasl2_failure();
        test_bind2_kinds();
        test_bind2_refused();
        test_resume();
        test_register(store);
        {
            struct xe_tokens *tokens = NULL;
            char *e2 = NULL;
            if (xe_tokens_open(store, &tokens, &e2) == XE_US_OK)
                test_fast(tokens), test_fast_lockout_weight(tokens),
                    test_fast_after_hold(tokens);
            else
                ok(0, "tokens open: %s", e2 ? e2 : "?");
            free(e2);
            xe_tokens_close(&tokens);
        }
    }
    xe_sasl_global_done();
out:
    xe_userstore_close(&store);
    rm_rf(dir);
    return 0;
}

int
main(void)
{
    test_outcomes();
    test_timer();
    test_starttls();
    test_retry();
    test_fail_when();
    test_join();
    login_tests();
    return tap_done();
}
