/* xedge: dialback keys (XEP-0185). */
#include "dialback.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "util.h"

static void
hex_lower(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int
xe_dialback_key(const unsigned char *secret, size_t secret_len, const char *receiving,
                const char *originating, const char *stream_id, char *out)
{
    unsigned char digest[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
    char hkey[2 * SHA256_DIGEST_LENGTH + 1];
    unsigned int mac_len = 0;
    char *msg = NULL;
    int r = -1;

    if (secret == NULL || receiving == NULL || originating == NULL || stream_id == NULL ||
        out == NULL)
        return -1;
    out[0] = '\0';
    if (SHA256(secret, secret_len, digest) == NULL)
        goto out;
    hex_lower(digest, sizeof(digest), hkey);
    if ((msg = xe_asprintf("%s %s %s", receiving, originating, stream_id)) == NULL)
        goto out;
    if (HMAC(EVP_sha256(), hkey, (int)strlen(hkey), (const unsigned char *)msg,
             strlen(msg), mac, &mac_len) == NULL ||
        mac_len != SHA256_DIGEST_LENGTH)
        goto out;
    hex_lower(mac, mac_len, out);
    r = 0;
out:
    free(msg);
    OPENSSL_cleanse(digest, sizeof(digest));
    OPENSSL_cleanse(hkey, sizeof(hkey));
    OPENSSL_cleanse(mac, sizeof(mac));
    return r;
}

int
xe_dialback_check(const unsigned char *secret, size_t secret_len, const char *receiving,
                  const char *originating, const char *stream_id, const char *key)
{
    char want[XE_DIALBACK_KEY_LEN + 1];
    int ok;

    if (key == NULL || strlen(key) != XE_DIALBACK_KEY_LEN)
        return 0;
    if (xe_dialback_key(secret, secret_len, receiving, originating, stream_id, want) != 0)
        return 0;
    ok = CRYPTO_memcmp(want, key, XE_DIALBACK_KEY_LEN) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}
