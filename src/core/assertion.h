/* xedge: the identity assertion that xedge hands to a backend as the
 * password of SASL PLAIN. Format and test vectors: doc/assertion.md. */
#ifndef XE_ASSERTION_H
#define XE_ASSERTION_H

#include <stddef.h>
#include <stdint.h>

#define XE_ASSERTION_MAX 160

enum xe_assertion_result {
    XE_ASSERT_OK = 0,
    XE_ASSERT_MALFORMED = -1,
    XE_ASSERT_WRONG_PURPOSE = -2,
    XE_ASSERT_EXPIRED = -3,
    XE_ASSERT_LIFETIME_TOO_LONG = -4,
    XE_ASSERT_BAD_SIGNATURE = -5,
};

/* Write a token into out (XE_ASSERTION_MAX bytes). nonce16: 16 random bytes
 * (NULL: drawn from RAND_bytes). Returns the length, or negative. */
int xe_assertion_make(const unsigned char *secret, size_t secret_len, const char *purpose,
                      const char *identity, int64_t expiry, const unsigned char *nonce16,
                      char *out, size_t out_size);
int xe_assertion_verify(const unsigned char *secret, size_t secret_len,
                        const char *purpose, const char *identity, const char *token,
                        int64_t now, int64_t max_lifetime);
const char *xe_assertion_result_name(int r);

#endif
