/* Fuzz target: the PROXY protocol parser and writer (src/core/proxy.h).
 *
 * Input: a flags byte (bits 0-1: the v2 maximum: 52, 128, 512 or 65551
 * bytes), the chunk sizes (fuzz.h), then the bytes a connection starts with.
 *
 * Invariants: the parser never takes more than the header (on DONE the bytes
 * used are the header's length; on MORE it took everything, and holds no
 * more than the maximum); fed whole in a fresh parser the same bytes give the
 * same result and the same addresses (the chunking changes nothing); a
 * carried address is IPv4 or IPv6; a v1 header is at most 107 bytes; and the
 * addresses carried, written again by xe_proxy_write_v2, read back the
 * same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "fuzz.h"
#include "proxy.h"

static const size_t maxima[4] = {52, 128, 512, 16 + 65535};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    return 0;
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return memcmp(&x->sin_addr, &y->sin_addr, 4) == 0 && x->sin_port == y->sin_port;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 &&
               x->sin6_port == y->sin6_port;
    }
    return false;
}

static bool
same_info(const struct xe_proxy_info *a, const struct xe_proxy_info *b)
{
    if (a->version != b->version || a->addresses != b->addresses ||
        a->header_len != b->header_len)
        return false;
    return !a->addresses || (same_addr(&a->src, &b->src) && same_addr(&a->dst, &b->dst));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_chunker ch;
    struct xe_proxy *p, *whole;
    enum xe_proxy_result r = XE_PROXY_MORE, rw;
    unsigned flags;
    size_t max, used = 0, off = 0, u, uw;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    max = maxima[flags & 3];
    fuzz_chunker_init(&ch, &data, &size);

    p = xe_proxy_new(max);
    while (off < size && r == XE_PROXY_MORE) {
        size_t n = fuzz_chunk_len(&ch, size - off);
        r = xe_proxy_feed(p, data + off, n, &u);
        FUZZ_CHECK(u <= n);
        if (r == XE_PROXY_MORE)
            FUZZ_CHECK(u == n);
        used += u;
        off += n;
    }
    FUZZ_CHECK(used <= size);
    if (r == XE_PROXY_MORE)
        FUZZ_CHECK(used == size && used < (max > 107 ? max : 107));
    /* after the end, nothing more is taken */
    if (r != XE_PROXY_MORE && size > 0) {
        FUZZ_CHECK(xe_proxy_feed(p, data, size, &u) == r && u == 0);
    }

    whole = xe_proxy_new(max);
    rw = xe_proxy_feed(whole, data, size, &uw);
    FUZZ_CHECK(rw == r);
    if (r == XE_PROXY_ERROR)
        FUZZ_CHECK(xe_proxy_error(p) != NULL &&
                   strcmp(xe_proxy_error(p), "no error") != 0);
    if (r == XE_PROXY_DONE) {
        const struct xe_proxy_info *info = xe_proxy_info(p);
        FUZZ_CHECK(info != NULL && xe_proxy_info(whole) != NULL);
        FUZZ_CHECK(uw == used && info->header_len == used);
        FUZZ_CHECK(same_info(info, xe_proxy_info(whole)));
        FUZZ_CHECK(info->version == 1 || info->version == 2);
        if (info->version == 1)
            FUZZ_CHECK(used <= XE_PROXY_V1_MAX && memcmp(data, "PROXY ", 6) == 0);
        else
            FUZZ_CHECK(used >= XE_PROXY_V2_MIN && used <= max);
        if (info->addresses) {
            unsigned char out[XE_PROXY_V2_OUT_MAX];
            struct xe_proxy *back = xe_proxy_new(64);
            size_t n, ub;
            char s[80];

            FUZZ_CHECK(info->src.ss_family == info->dst.ss_family);
            FUZZ_CHECK(info->src.ss_family == AF_INET || info->src.ss_family == AF_INET6);
            xe_proxy_format((const struct sockaddr *)&info->src, s, sizeof(s));
            FUZZ_CHECK(strcmp(s, "?") != 0);
            n = xe_proxy_write_v2((const struct sockaddr *)&info->src,
                                  (const struct sockaddr *)&info->dst, out, sizeof(out));
            FUZZ_CHECK(n == (info->src.ss_family == AF_INET ? 28u : 52u));
            FUZZ_CHECK(xe_proxy_feed(back, out, n, &ub) == XE_PROXY_DONE && ub == n);
            FUZZ_CHECK(xe_proxy_info(back)->addresses);
            FUZZ_CHECK(same_addr(&xe_proxy_info(back)->src, &info->src));
            FUZZ_CHECK(same_addr(&xe_proxy_info(back)->dst, &info->dst));
            xe_proxy_free(&back);
        }
    }
    xe_proxy_free(&whole);
    xe_proxy_free(&p);
    return 0;
}
