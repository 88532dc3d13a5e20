/* Fuzz target: the whole client negotiation (src/core/c2s.h), bytes in, against a
 * test user store (fuzz.h: alice@example.test / "correct horse", and the
 * disabled bob@example.test / "battery staple").
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then what the
 * client sends (the plaintext inside TLS).
 * flags bit 0: Direct TLS (TLS is up from the start); else STARTTLS
 *       bits 1-2: the SNI handed to xe_c2s_tls_up on Direct TLS: none,
 *                 "example.test", "EXAMPLE.TEST", "unknown.test"
 *       bit 3: example.test offers stream compression (XEP-0138)
 *
 * The harness acts on each action as src/io/server.c does: STARTTLS ->
 * xe_c2s_tls_up and go on with the rest of the input (it stands for what
 * arrives inside TLS); AUTHENTICATED -> keep feeding; RESTARTED -> answer
 * with backend features and stop, or keep feeding when compression was
 * offered; COMPRESS -> a new stream, the rest stands for the inflated bytes;
 * SPLICE -> stop; CLOSE -> stop. The output is drained after every call.
 *
 * Checked: everything xedge sends parses as XML (one document per stream);
 * authentication succeeds only under TLS and only as alice; an action that
 * stops comes with progress. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s.h"
#include "conf.h"
#include "fuzz.h"
#include "xmlstream.h"

static struct xe_conf *conf, *conf_z; /* conf_z: example.test compresses */

/* ---- a client-side parser for what xedge sends -------------------------- */

struct checker {
    struct xe_xmlstream *xs;
    bool ended; /* </stream:stream> seen */
    bool restarted_after_auth;
};

static int
chk_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    FUZZ_CHECK(strcmp(h->name, "stream") == 0);
    FUZZ_CHECK(default_ns && strcmp(default_ns, XE_NS_CLIENT) == 0);
    return XE_XS_CONTINUE;
}

static int
chk_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    return XE_XS_CONTINUE;
}

static int
chk_end(void *ctx)
{
    struct checker *k = ctx;
    k->ended = true;
    return XE_XS_STOP;
}

static const struct xe_xmlstream_cb chk_cb = {
    .stream_start = chk_start,
    .element = chk_element,
    .stream_end = chk_end,
};

static void
check_output(struct checker *k, struct xe_c2s *c)
{
    struct xe_buf *out = xe_c2s_output(c);
    size_t used = 0;
    int r;

    if (out->len == 0)
        return;
    FUZZ_CHECK(!k->ended);
    r = xe_xmlstream_feed(k->xs, out->data, out->len, &used);
    if (r == XE_XS_ERROR) {
        fprintf(stderr, "xedge sent what does not parse (%s: %s):\n%.*s\n",
                xe_xmlstream_condition(k->xs), xe_xmlstream_error_text(k->xs),
                (int)out->len, (const char *)out->data);
        FUZZ_CHECK(!"the output is well-formed");
    }
    if (r == XE_XS_STOPPED) /* the stream end, and nothing after it */
        FUZZ_CHECK(used == out->len);
    xe_buf_consume(out, out->len);
}

/* A new stream starts on the client side. */
static void
check_restart(struct checker *k)
{
    xe_xmlstream_reset(k->xs);
    k->ended = false;
}

/* ---- the target ------------------------------------------------------------ */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_tmpdir(), *store;
    char path[1024], secret[1024], *text, *err = NULL;
    const char *extra[2] = {"", " compression = true;"};

    fuzz_logs();
    store = fuzz_sasl_setup();
    snprintf(secret, sizeof(secret), "%s/assertion.secret", dir);
    fuzz_write_file(secret, "0123456789abcdef0123456789abcdef0123456789abcdef\n", 49);
    for (int i = 0; i < 2; i++) {
        text = xe_asprintf(
            "user_store = { path = \"%s\"; };\n"
            "listeners = ( { kind = \"direct_tls\"; address = \"127.0.0.1\"; port = "
            "5223; } "
            ");\n"
            "domains = (\n"
            "  { name = \"example.test\"; certificate = \"%s/none.crt\";\n"
            "    key = \"%s/none.key\"; pool = \"main\";%s },\n"
            "  { name = \"example.org\"; certificate = \"%s/none.crt\";\n"
            "    key = \"%s/none.key\"; pool = \"main\"; }\n"
            ");\n"
            "pools = ( { name = \"main\"; secret_file = \"%s\";\n"
            "  servers = ( { name = \"b1\"; address = \"127.0.0.1\"; port = 15222; } ); "
            "} "
            ");\n"
            "sasl = { mechanisms = [ \"SCRAM-SHA-256\", \"SCRAM-SHA-1\", \"PLAIN\" ];\n"
            "  max_attempts = 3; };\n"
            "limits = { max_stanza_preauth = 4096; max_xml_depth = 8; max_attributes = "
            "16;\n"
            "  max_sasl_bytes = 2048; };\n",
            store, dir, dir, extra[i], dir, dir, secret);
        snprintf(path, sizeof(path), "%s/xedge%d.conf", dir, i);
        fuzz_write_file(path, text, strlen(text));
        free(text);
        if (xe_conf_load(path, i ? &conf_z : &conf, &err) != 0) {
            fprintf(stderr, "fuzz: the test configuration does not load: %s\n",
                    err ? err : "?");
            abort();
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const snis[] = {NULL, "example.test", "EXAMPLE.TEST",
                                       "unknown.test"};
    static const char features[] =
        "<stream:features><bind xmlns='" XE_NS_BIND "'/></stream:features>";
    const struct xe_xmlstream_limits klim = {
        .max_element_bytes = 1 << 20, .max_depth = 16, .max_attrs = 64};
    struct xe_c2s_params p = {.conf = conf, .peer = "192.0.2.1:4242"};
    struct fuzz_chunker ch;
    struct checker k = {0};
    struct xe_c2s *c;
    unsigned flags;
    bool tls, authed = false, done = false, restarted = false, compressed = false;
    unsigned stalls = 0;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);

    tls = flags & 1;
    p.tls = tls;
    p.conf = flags & 8 ? conf_z : conf;
    c = xe_c2s_new(&p);
    FUZZ_CHECK(c != NULL);
    k.xs = xe_xmlstream_new(&klim, &chk_cb, &k);
    FUZZ_CHECK(k.xs != NULL);
    if (tls)
        xe_c2s_tls_up(c, snis[(flags >> 1) & 3]);

    while (size > 0 && !done) {
        size_t len = fuzz_chunk_len(&ch, size);

        while (len > 0 && !done) {
            size_t used = 0;
            enum xe_c2s_action a = xe_c2s_feed(c, data, len, &used);

            FUZZ_CHECK(used <= len);
            check_output(&k, c);
            if (used == 0 && a != XE_C2S_CONTINUE && a != XE_C2S_CLOSE)
                FUZZ_CHECK(++stalls < 3);
            data += used;
            size -= used;
            len -= used;
            switch (a) {
            case XE_C2S_CONTINUE:
                FUZZ_CHECK(len == 0);
                break;
            case XE_C2S_STARTTLS:
                FUZZ_CHECK(!tls);
                tls = true;
                /* what follows stands for the plaintext inside TLS */
                xe_c2s_tls_up(c, NULL);
                check_restart(&k);
                break;
            case XE_C2S_AUTHENTICATED:
                FUZZ_CHECK(tls && !authed);
                FUZZ_CHECK(strcmp(xe_c2s_jid(c), FUZZ_USER) == 0);
                FUZZ_CHECK(xe_c2s_domain(c) &&
                           strcmp(xe_c2s_domain(c), "example.test") == 0);
                authed = true;
                check_restart(&k);
                k.restarted_after_auth = true;
                break;
            case XE_C2S_RESTARTED:
                FUZZ_CHECK(authed && !restarted);
                restarted = true;
                FUZZ_CHECK(xe_c2s_answer_restart(c, (const unsigned char *)features,
                                                 sizeof(features) - 1) == 0);
                check_output(&k, c);
                /* compression offered: the core reads the next element */
                done = !xe_c2s_compression_offered(c);
                FUZZ_CHECK(done == !(flags & 8));
                break;
            case XE_C2S_CLOSE:
                done = true;
                break;
            case XE_C2S_COMPRESS:
                FUZZ_CHECK(restarted && (flags & 8) && !compressed);
                compressed = true;
                /* what follows stands for the inflated bytes */
                check_restart(&k);
                break;
            case XE_C2S_SPLICE: {
                size_t hlen;
                FUZZ_CHECK(restarted && (flags & 8));
                /* after a compressed restart nothing is left over */
                FUZZ_CHECK(xe_c2s_splice_bytes(c, &hlen) != NULL || hlen == 0);
                FUZZ_CHECK(!compressed || hlen == 0);
                done = true;
                break;
            }
            }
        }
    }
    /* the client went away: what the server would send on a timeout */
    if (!done) {
        xe_c2s_stream_error(c, "connection-timeout", "fuzz input ended");
        check_output(&k, c);
    }
    xe_xmlstream_free(&k.xs);
    xe_c2s_free(&c);
    return 0;
}
