/* Fuzz target: the server-to-server core (src/core/s2s.h), a peer's bytes in.
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then what the
 * peer sends (the plaintext inside TLS).
 * flags bits 0-2: the kind of stream (modulo 5: IN, OUT, VERIFY, BACKEND,
 *                 LINK)
 *       bit 3: TLS is up from the start (Direct TLS)
 *       bit 4: IN: the peer's certificate is valid for a.test (EXTERNAL)
 *       bit 5: require_tls off
 *       bit 6: the dialback requests are answered valid (else invalid)
 *
 * The harness acts on each action as src/io/s2s_io.c does: STARTTLS ->
 * xe_s2s_tls_up and go on with the rest of the input (it stands for what
 * arrives inside TLS); OPEN -> the pair's OUT stream found or opened in the
 * pair routing (s2s_pairs.h) and the backend attached to it, then a verdict
 * (valid, the rest is then pumped and not fed); PAIR_UP -> the pair's LINK
 * found or opened; VERDICT -> go on; CLOSE -> stop. IN's events are
 * drained after every call: a dialback request opens a VERIFY stream that
 * names the IN stream by id, found again by id when it is answered (valid:
 * the pair's LINK), a stanza is routed to its pair's LINK (opened when
 * there is none, as the glue does).
 *
 * Checked: every stanza handed out is a pair the stream authenticated,
 * starts with '<' and ends with '>' and appears
 * as such in the input; a stopping action comes with progress; what is
 * sent parses as XML; the routing's streams add up at the end. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "s2s.h"
#include "s2s_pairs.h"
#include "xelimits.h"
#include "xmlstream.h"

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef";

static bool
is_local(void *ctx, const char *d)
{
    (void)ctx;
    return strcmp(d, "b.test") == 0 || strcmp(d, "b2.test") == 0;
}

static enum xe_s2s_policy
policy(void *ctx, const char *d)
{
    (void)ctx;
    if (strcmp(d, "evil.test") == 0)
        return XE_S2S_POLICY_REFUSE;
    if (strcmp(d, "strict.test") == 0)
        return XE_S2S_POLICY_EXTERNAL;
    return XE_S2S_POLICY_DIALBACK;
}

/* ---- the pair routing, as the glue uses it ------------------------------- */

/* The fuzzed stream is id 1 and holds its core; the others (LINK, OUT,
 * VERIFY) hold their id as the caller's pointer (never dereferenced). */
#define STREAM_ID 1
#define AS_PTR(id) ((void *)(uintptr_t)(id))

static uint64_t next_id;
static size_t n_opened; /* LINK and OUT streams */

/* The LINK of (LOCAL, REMOTE), opened when there is none. */
static void
link_for(struct xe_s2s_pairs *pairs, const char *local, const char *remote)
{
    uint64_t id;

    if (xe_s2s_pairs_find(pairs, XE_S2S_LINK, local, remote))
        return;
    id = ++next_id;
    FUZZ_CHECK(xe_s2s_pairs_add(pairs, id, XE_S2S_LINK, AS_PTR(id)) == 0);
    FUZZ_CHECK(xe_s2s_pairs_bind(pairs, id, local, remote) == 0);
    n_opened++;
    FUZZ_CHECK(xe_s2s_pairs_find(pairs, XE_S2S_LINK, local, remote) == AS_PTR(id));
    FUZZ_CHECK(xe_s2s_pairs_find(pairs, XE_S2S_OUT, local, remote) != AS_PTR(id));
}

/* A dialback request of IN stream S: a VERIFY stream that names S by id,
 * finds it again by id with its answer, then closes. */
static void
verify(struct xe_s2s_pairs *pairs, struct xe_s2s *s, const struct xe_s2s_event *ev,
       enum xe_s2s_result r)
{
    uint64_t v = ++next_id, asker = STREAM_ID;

    FUZZ_CHECK(xe_s2s_pairs_add(pairs, v, XE_S2S_VERIFY, AS_PTR(v)) == 0);
    FUZZ_CHECK(xe_s2s_pairs_get(pairs, asker) == s);
    xe_s2s_dialback_verdict(s, ev->from, ev->to, r, NULL);
    if (r == XE_S2S_VALID)
        link_for(pairs, ev->to, ev->from);
    xe_s2s_pairs_remove(pairs, v);
}

/* BACKEND S asks for (local, remote): the pair's OUT, opened when there is
 * none; S waits on it. */
static void
backend_open(struct xe_s2s_pairs *pairs, struct xe_s2s *s)
{
    const struct xe_s2s_request *req = xe_s2s_request(s);
    void *out = xe_s2s_pairs_find(pairs, XE_S2S_OUT, req->from, req->to);

    if (out == NULL) {
        uint64_t id = ++next_id;
        FUZZ_CHECK(xe_s2s_pairs_add(pairs, id, XE_S2S_OUT, AS_PTR(id)) == 0);
        FUZZ_CHECK(xe_s2s_pairs_bind(pairs, id, req->from, req->to) == 0);
        n_opened++;
        out = AS_PTR(id);
    }
    FUZZ_CHECK(xe_s2s_pairs_attach(pairs, STREAM_ID, (uint64_t)(uintptr_t)out) == 0);
    FUZZ_CHECK(xe_s2s_pairs_out(pairs, STREAM_ID) == out);
    FUZZ_CHECK(xe_s2s_pairs_n_backends(pairs, (uint64_t)(uintptr_t)out) == 1);
}

/* ---- a parser for what xedge sends ---------------------------------------- */

static int
chk_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    (void)ctx;
    FUZZ_CHECK(strcmp(h->name, "stream") == 0);
    FUZZ_CHECK(default_ns && strcmp(default_ns, XE_NS_SERVER) == 0);
    return XE_XS_CONTINUE;
}

static int
chk_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    (void)ctx;
    (void)e;
    (void)raw;
    (void)len;
    return XE_XS_CONTINUE;
}

static int
chk_end(void *ctx)
{
    (void)ctx;
    return XE_XS_CONTINUE;
}

/* Check what the core sends: each stream (a new one starts with <?xml)
 * parses. */
static void
drain(struct xe_s2s *s, struct xe_xmlstream *chk)
{
    struct xe_buf *out = xe_s2s_output(s);
    size_t off = 0;

    while (off < out->len) {
        const unsigned char *next =
            out->len - off > 5
                ? memmem(out->data + off + 1, out->len - off - 1, "<?xml", 5)
                : NULL;
        size_t end = next ? (size_t)(next - out->data) : out->len, u = 0;

        if (out->len - off >= 5 && memcmp(out->data + off, "<?xml", 5) == 0)
            xe_xmlstream_reset(chk);
        FUZZ_CHECK(xe_xmlstream_feed(chk, out->data + off, end - off, &u) != XE_XS_ERROR);
        off = end;
    }
    xe_buf_consume(out, out->len);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_logs();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct xe_xmlstream_limits lim = {1 << 20, 64, 64};
    static const struct xe_xmlstream_cb ccb = {chk_start, chk_element, chk_end};
    struct fuzz_chunker ch;
    struct xe_s2s_params p;
    struct xe_s2s *s;
    struct xe_xmlstream *chk;
    struct xe_s2s_pairs *pairs;
    const uint8_t *input;
    size_t input_len;
    unsigned flags;
    enum xe_s2s_action a = XE_S2S_CONTINUE;
    bool pumped = false;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);
    input = data;
    input_len = size;

    memset(&p, 0, sizeof(p));
    p.kind = (enum xe_s2s_kind)((flags & 7) % 5);
    p.peer = "fuzz";
    p.tls = (flags & 8) != 0;
    p.require_tls = (flags & 32) == 0;
    p.tls_possible = true;
    p.is_local = is_local;
    p.policy = policy;
    p.secret = SECRET;
    p.secret_len = sizeof(SECRET) - 1;
    p.max_stanza_preauth = 4096;
    p.max_stanza = 16384;
    p.max_depth_preauth = 8;
    p.max_attrs_preauth = 16;
    p.from = "b.test";
    p.to = "a.test";
    p.key = "0123abcd";
    p.stream_id = "sid1";
    p.assertion = "xe1:s2s:1:00:00";
    s = xe_s2s_new(&p);
    FUZZ_CHECK(s != NULL);
    chk = xe_xmlstream_new(&lim, &ccb, NULL);
    FUZZ_CHECK(chk != NULL);
    pairs = xe_s2s_pairs_new();
    next_id = STREAM_ID;
    n_opened = 0;
    FUZZ_CHECK(xe_s2s_pairs_add(pairs, STREAM_ID, p.kind, s) == 0);
    if (p.tls && (flags & 16)) {
        const char *names[] = {"a.test"};
        xe_s2s_tls_up(s, names, 1);
    }
    while (size > 0 && a != XE_S2S_CLOSE && !pumped) {
        size_t len = fuzz_chunk_len(&ch, size), used = 0;
        struct xe_s2s_event ev;

        a = xe_s2s_feed(s, data, len, &used);
        FUZZ_CHECK(used <= len);
        if (a == XE_S2S_CONTINUE && used < len) /* only a restart stops early */
            FUZZ_CHECK(used > 0);
        while (xe_s2s_next_event(s, &ev)) {
            FUZZ_CHECK(p.kind == XE_S2S_IN);
            if (ev.type == XE_S2S_EV_STANZA) {
                FUZZ_CHECK(xe_s2s_pair_ok(s, ev.from, ev.to));
                FUZZ_CHECK(ev.len >= 3 && ev.raw[0] == '<' && ev.raw[ev.len - 1] == '>');
                FUZZ_CHECK(memmem(input, input_len, ev.raw, ev.len) != NULL);
                link_for(pairs, ev.to, ev.from);
            } else {
                FUZZ_CHECK(is_local(NULL, ev.to));
                verify(pairs, s, &ev, (flags & 64) ? XE_S2S_VALID : XE_S2S_INVALID);
            }
        }
        switch (a) {
        case XE_S2S_STARTTLS: {
            const char *names[] = {"a.test"};
            drain(s, chk);
            xe_s2s_tls_up(s, names, (flags & 16) ? 1 : 0);
            break;
        }
        case XE_S2S_OPEN:
            FUZZ_CHECK(p.kind == XE_S2S_BACKEND);
            FUZZ_CHECK(is_local(NULL, xe_s2s_request(s)->from));
            backend_open(pairs, s);
            if (!(flags & 64)) /* it fails: the backend waits on no OUT */
                FUZZ_CHECK(xe_s2s_pairs_attach(pairs, STREAM_ID, 0) == 0);
            xe_s2s_backend_verdict(s, (flags & 64) ? XE_S2S_VALID : XE_S2S_ERROR,
                                   "remote-server-not-found");
            pumped = (flags & 64) != 0;
            break;
        case XE_S2S_PAIR_UP:
            FUZZ_CHECK(p.kind == XE_S2S_IN && (flags & 16));
            FUZZ_CHECK(xe_s2s_pair_ok(s, xe_s2s_request(s)->from, xe_s2s_request(s)->to));
            link_for(pairs, xe_s2s_request(s)->to, xe_s2s_request(s)->from);
            break;
        default:
            break;
        }
        drain(s, chk);
        data += used;
        size -= used;
    }
    FUZZ_CHECK(xe_s2s_pairs_count(pairs) == 1 + n_opened);
    xe_s2s_pairs_remove(pairs, STREAM_ID);
    FUZZ_CHECK(xe_s2s_pairs_count(pairs) == n_opened);
    FUZZ_CHECK(xe_s2s_pairs_out(pairs, STREAM_ID) == NULL);
    xe_s2s_pairs_free(&pairs);
    xe_xmlstream_free(&chk);
    xe_s2s_free(&s);
    FUZZ_CHECK(s == NULL);
    return 0;
}
