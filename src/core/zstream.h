/* xedge: XEP-0138 stream compression (zlib), sans-IO.
 *
 * The zlib stage of a compressed client stream: what the client sends is
 * inflated in bounded chunks (the caller hands each chunk on before asking
 * for the next, so a "zip bomb" never becomes more than one chunk in memory
 * here), and what goes to the client is deflated with a sync flush per batch,
 * so that every batch can be read by the client at once. The deflate side
 * uses a small window and memory level (xelimits.h): the default zlib state
 * is ~256 KiB per stream.
 *
 * Also the protocol bits the c2s core needs: the stream feature, and the
 * backend's features rewritten with ours in and any of its own out. */
#ifndef XE_ZSTREAM_H
#define XE_ZSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define XE_NS_COMPRESS_FEATURE "http://jabber.org/features/compress"
#define XE_NS_COMPRESS "http://jabber.org/protocol/compress"

/* The stream feature xedge offers (zlib only). */
#define XE_COMPRESS_FEATURE                                                              \
    "<compression xmlns='" XE_NS_COMPRESS_FEATURE "'><method>zlib</method></"            \
    "compression>"

struct xe_zstream;

/* NULL if zlib cannot set up (*error_r: a static text). */
struct xe_zstream *xe_zstream_new(const char **error_r);
void xe_zstream_free(struct xe_zstream **z);

/* Inflate what the peer sent: uses up to inlen bytes of in (*used_r) and
 * writes at most outcap bytes to out (*produced_r). When *produced_r ==
 * outcap, zlib may hold more output: call again (with the rest of the input,
 * or none). 0, or -1 on corrupt input (*error_r: a static text). */
int xe_zstream_inflate(struct xe_zstream *z, const void *in, size_t inlen, size_t *used_r,
                       void *out, size_t outcap, size_t *produced_r,
                       const char **error_r);

/* Deflate a batch for the peer, with a sync flush at its end: uses up to
 * inlen bytes (*used_r), writes at most outcap bytes (*produced_r). The batch
 * is complete when all input is used and *produced_r < outcap; otherwise call
 * again with the rest. outcap must be at least 64. 0, or -1. */
int xe_zstream_deflate(struct xe_zstream *z, const void *in, size_t inlen, size_t *used_r,
                       void *out, size_t outcap, size_t *produced_r,
                       const char **error_r);

/* Bytes through each side so far: plain and compressed. */
void xe_zstream_counts(const struct xe_zstream *z, uint64_t *in_z, uint64_t *in_plain,
                       uint64_t *out_plain, uint64_t *out_z);

/* The backend's raw <stream:features/> (features, len), rewritten:
 * offered_r gets them with XE_COMPRESS_FEATURE first and any compression
 * feature of the backend's own dropped; after_r gets them without any
 * compression feature (for the compressed stream). -1 if they cannot be
 * read (the caller then offers no compression); nothing is appended then. */
int xe_zstream_features(const unsigned char *features, size_t len,
                        struct xe_buf *offered_r, struct xe_buf *after_r);

/* A stream error for a compression failure after <compressed/> (XEP-0138:
 * <undefined-condition/> with the compress namespace's failure), no header. */
int xe_zstream_error_xml(struct xe_buf *out, const char *condition, const char *text);

#endif
