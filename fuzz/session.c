/* Fuzz target: the c2s login machine (src/core/session.h) driven with
 * arbitrary client and backend bytes, timer expiries and connect results,
 * against the test user store (fuzz.h: alice@example.test / "correct horse").
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then the events.
 * flags bit 0: Direct TLS (else STARTTLS: the harness says TLS is up at once)
 *       bit 1: example.test offers stream compression (XEP-0138)
 *       bit 2: the pool has two servers and one retry
 * The domain offers SASL2 with Bind2 and inline resumption (its servers are
 * of kinds that can: carbons, CSI, SM), so the Bind2 script and the resume
 * run on the backend's bytes too.
 * Each chunk's first byte says what it is: 0-127 client bytes, 128-223
 * backend bytes, 224-239 the timer fires, 240-247 the backend closes,
 * 248-255 the connect fails. The harness acts on each action as the glue
 * does (CONNECT/RETRY: a server and a connect; START_TLS: TLS is up;
 * START_COMPRESSION: the rest stands for the inflated bytes).
 *
 * Checked: nothing reaches the backend before it is connected; SPLICE only
 * once a backend was connected; no action after CLOSE or SPLICE; no client
 * output while an answer is held; a CLOSE for a failure carries a typed
 * failure with an outcome. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fuzz.h"
#include "register.h"
#include "session.h"

static struct xe_conf *confs[4];
static bool trace; /* FUZZ_SESSION_TRACE=1: the actions on stderr */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_tmpdir(), *store;
    char path[1024], secret[1024], *text, *err = NULL;

    (void)argc, (void)argv;
    fuzz_logs();
    trace = getenv("FUZZ_SESSION_TRACE") != NULL;
    store = fuzz_sasl_setup();
    snprintf(secret, sizeof(secret), "%s/assertion.secret", dir);
    fuzz_write_file(secret, "0123456789abcdef0123456789abcdef0123456789abcdef\n", 49);
    for (int i = 0; i < 4; i++) {
        text = xe_asprintf(
            "user_store = { path = \"%s\"; };\n"
            "listeners = ( { kind = \"direct_tls\"; address = \"127.0.0.1\"; port = "
            "5223; } );\n"
            "domains = (\n"
            "  { name = \"example.test\"; certificate = \"%s/none.crt\";\n"
            "    key = \"%s/none.key\"; pool = \"main\"; iq_auth = true;\n"
            "    sasl2 = true;%s }\n"
            ");\n"
            "pools = ( { name = \"main\"; secret_file = \"%s\";%s\n"
            "  servers = ( { name = \"b1\"; address = \"127.0.0.1\"; port = 15222; kind "
            "= \"ejabberd\"; }%s "
            "); "
            "} );\n"
            "sasl = { mechanisms = [ \"SCRAM-SHA-256\", \"PLAIN\" ];\n"
            "  max_attempts = 3; };\n"
            "limits = { max_stanza_preauth = 4096; max_xml_depth = 8; max_attributes = "
            "16;\n"
            "  max_sasl_bytes = 2048; };\n",
            store, dir, dir, i & 1 ? " compression = true;" : "", secret,
            i & 2 ? " retries = 1; policy = \"least-conn\";" : "",
            i & 2 ? ", { name = \"b2\"; address = \"127.0.0.1\"; port = 15223; kind = "
                    "\"ejabberd\"; }"
                  : "");
        snprintf(path, sizeof(path), "%s/xedge%d.conf", dir, i);
        fuzz_write_file(path, text, strlen(text));
        free(text);
        if (xe_conf_load(path, &confs[i], &err) != 0) {
            fprintf(stderr, "fuzz: the test configuration does not load: %s\n",
                    err ? err : "?");
            abort();
        }
    }
    return 0;
}

/* the failed-authentication delay (R2): 100 ms per counted failure */
static uint64_t
guard_failed(void *ctx, const char *account, bool counted, uint64_t now)
{
    (void)ctx, (void)account, (void)now;
    return counted ? 100 : 0;
}

static const struct xe_sess_guard guard = {NULL, guard_failed, NULL};

struct h {
    struct xe_sess *s;
    const struct xe_conf *conf;
    bool connected, spliced, closed, ever_connected;
};

static void
act(struct h *h, enum xe_sess_do d)
{
    struct xe_buf *b = xe_sess_to_backend(h->s), *c = xe_sess_to_client(h->s);

    FUZZ_CHECK(b->len == 0 || h->connected);
    if (xe_sess_held(h->s))
        FUZZ_CHECK(c->len == 0);
    xe_sess_sent(h->s);
    if (trace && d != XE_SD_NONE)
        fprintf(stderr, "session: action %d in state %d\n", d, xe_sess_state(h->s));
    if (d == XE_SD_NONE)
        return;
    FUZZ_CHECK(!h->closed && !h->spliced);
    switch (d) {
    case XE_SD_CONNECT:
    case XE_SD_RETRY: {
        const struct xe_pool_conf *p = &h->conf->pools[0];
        size_t server = xe_sess_tried(h->s) & 1 ? 1 : 0;
        h->connected = false;
        act(h, xe_sess_backend_begin(h->s, p, server, "alice", "v1.token", XE_SF_NONE));
        break;
    }
    case XE_SD_START_TLS:
        xe_sess_tls_up(h->s, NULL, 1000);
        break;
    case XE_SD_REGISTER: { /* (not run: no store here) */
        struct xe_reg_job *j = xe_sess_take_reg_job(h->s);
        FUZZ_CHECK(j != NULL);
        xe_reg_job_busy(j);
        act(h, xe_sess_reg_done(h->s, j, 1000));
        break;
    }
    case XE_SD_SPLICE:
        FUZZ_CHECK(h->ever_connected);
        h->spliced = true;
        break;
    case XE_SD_CLOSE:
        FUZZ_CHECK(xe_sess_outcome(xe_sess_failure(h->s))->condition != NULL);
        h->closed = true;
        break;
    default:
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xe_sess_params p = {.peer = "192.0.2.1:4242", .guard = &guard};
    struct fuzz_chunker ch;
    struct h h = {0};
    unsigned flags;
    uint64_t now = 1000;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);
    h.conf = p.conf = confs[(flags >> 1) & 3];
    p.direct_tls = flags & 1;
    h.s = xe_sess_new(&p, now);
    FUZZ_CHECK(h.s != NULL);
    if (p.direct_tls)
        xe_sess_tls_up(h.s, NULL, now);
    while (size > 0 && !h.closed && !h.spliced) {
        size_t n = fuzz_chunk_len(&ch, size), used = 0;
        uint8_t kind = data[0];
        const uint8_t *d = data + 1;
        size_t dn = n - 1;

        data += n;
        size -= n;
        now += 10;
        if (kind < 128) {
            enum xe_sess_do r = xe_sess_client(h.s, d, dn, &used, now);
            FUZZ_CHECK(used <= dn);
            act(&h, r);
        } else if (kind < 224) {
            if (!h.connected && xe_sess_state(h.s) == XE_SS_BACKEND) {
                h.connected = h.ever_connected = true;
                act(&h, xe_sess_connected(h.s, true, NULL));
            }
            if (h.connected && dn > 0)
                act(&h, xe_sess_backend(h.s, d, dn, NULL));
        } else if (kind < 240) {
            now += 100000;
            act(&h, xe_sess_timer_fired(h.s, now));
        } else if (kind < 248) {
            if (h.connected)
                act(&h, xe_sess_backend(h.s, "", 0, "closed"));
        } else if (xe_sess_state(h.s) == XE_SS_BACKEND && !h.connected) {
            act(&h, xe_sess_connected(h.s, false, "refused"));
        }
    }
    xe_sess_free(&h.s);
    return 0;
}
