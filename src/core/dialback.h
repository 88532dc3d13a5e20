/* xedge: dialback keys (XEP-0185), as doc/federation.md fixes them:
 *
 *   key = lowercase-hex( HMAC-SHA256( lowercase-hex( SHA-256(secret) ),
 *                        RECEIVING " " ORIGINATING " " STREAM-ID ) )
 *
 * Any xedge node with the same secret issues and checks the same keys. */
#ifndef XE_DIALBACK_H
#define XE_DIALBACK_H

#include <stddef.h>

#define XE_DIALBACK_KEY_LEN 64

/* out: XE_DIALBACK_KEY_LEN + 1 bytes, NUL-terminated. 0, or -1. */
int xe_dialback_key(const unsigned char *secret, size_t secret_len, const char *receiving,
                    const char *originating, const char *stream_id, char *out);
/* 1 when key is the one we issue for these, else 0 (constant time). */
int xe_dialback_check(const unsigned char *secret, size_t secret_len,
                      const char *receiving, const char *originating,
                      const char *stream_id, const char *key);

#endif
