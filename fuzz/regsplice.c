/* Fuzz target: in-band registration after authentication (src/core/register.h),
 * the client's stanzas and the backend's stream interleaved.
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then the bytes;
 * each chunk's first byte says where the rest goes (bit 0: the backend's
 * stream, else the client's).
 * flags bit 0: the session is anonymous; bit 1: max_stanza_postauth 1024
 * bytes (else 4096); bit 2: a request's job is answered busy (too many
 * under way) instead of run.
 *
 * The session's user (carol@example.test) has no account, so that a removal
 * or a password change leaves the store as it was for the next input.
 *
 * Checked: the backend's bytes all reach the client, in order, with only our
 * answers put in between; what goes to the backend is never more than the
 * client sent (plus one </stream:stream>); after XE_RS_CLOSE nothing more
 * goes to the backend. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boundary.h"
#include "fuzz.h"
#include "register.h"

static struct xe_conf conf;
static struct xe_domain_conf dom;

static const char header[] = "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' "
                             "to='example.test' version='1.0'>";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    fuzz_sasl_setup();
    dom.name = "example.test";
    dom.register_ = true;
    conf.domains = &dom;
    conf.n_domains = 1;
    conf.scram_iterations = FUZZ_ITERATIONS;
    conf.registrations_per_address = 0;
    xe_register_global_init(fuzz_store, &conf);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_chunker ch;
    struct xe_regsplice_params p = {
        .conf = &conf,
        .domain = "example.test",
        .jid = "carol@example.test",
        .peer = "192.0.2.1:5222",
        .header = (const unsigned char *)header,
        .header_len = sizeof(header) - 1,
    };
    struct xe_regsplice *rs;
    struct xe_buf up, down, in_backend;
    size_t client_bytes = 0;
    unsigned flags;
    bool closed = false;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);
    p.anonymous = flags & 1;
    conf.max_stanza_postauth = (flags & 2) ? 1024 : 4096;
    rs = xe_regsplice_new(&p);
    FUZZ_CHECK(rs != NULL);
    xe_buf_init(&up, 0);
    xe_buf_init(&down, 0);
    xe_buf_init(&in_backend, 0);
    while (size > 0) {
        size_t len = fuzz_chunk_len(&ch, size);
        bool to_backend_side = data[0] & 1;
        const uint8_t *chunk = data + 1;
        size_t clen = len - 1;

        if (to_backend_side) {
            xe_buf_append(&in_backend, chunk, clen);
            FUZZ_CHECK(xe_regsplice_backend(rs, chunk, clen, &down) == 0);
        } else if (!closed) {
            size_t before = up.len;
            enum xe_rs_result r = xe_regsplice_client(rs, chunk, clen, &up);
            client_bytes += clen;
            while (r == XE_RS_JOB) { /* as the glue: run it (or too many: busy) */
                struct xe_reg_job *j = xe_regsplice_take_job(rs);
                FUZZ_CHECK(j != NULL);
                if (flags & 4)
                    xe_reg_job_busy(j);
                else
                    xe_reg_job_run(j);
                r = xe_regsplice_job_done(rs, j, &up);
            }
            FUZZ_CHECK(up.len <= client_bytes + 16);
            xe_regsplice_flush(rs, &down, r == XE_RS_CLOSE);
            if (r == XE_RS_CLOSE) {
                closed = true;
                FUZZ_CHECK(xe_regsplice_client(rs, "<a/>", 4, &up) == XE_RS_CLOSE);
                FUZZ_CHECK(up.len >= before);
            }
        }
        data += len;
        size -= len;
    }
    /* the backend's bytes are a subsequence of what the client got, and
     * whatever else it got is ours (an <iq/> or a stream error) */
    {
        size_t i = 0, j = 0;
        while (i < in_backend.len && j < down.len) {
            if (in_backend.data[i] == down.data[j])
                i++;
            j++;
        }
        FUZZ_CHECK(i == in_backend.len);
    }
    xe_buf_free(&up);
    xe_buf_free(&down);
    xe_buf_free(&in_backend);
    xe_regsplice_free(&rs);
    FUZZ_CHECK(rs == NULL);
    return 0;
}
