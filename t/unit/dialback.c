/* Unit tests of the dialback keys (src/core/dialback.h): the XEP-0185 example
 * (the key of XEP-0220's examples), vectors computed independently with
 * openssl dgst, and the constant-time check. TAP output. */
#include <stdio.h>
#include <string.h>

#include "dialback.h"
#include "tap.h"

struct vec {
    const char *secret, *receiving, *originating, *id, *key;
};

/* The first is XEP-0185's example; the others were computed with
 *   k=$(printf %s "$SECRET" | openssl dgst -sha256 -r | cut -d' ' -f1)
 *   printf %s "$R $O $ID" | openssl dgst -sha256 -mac HMAC -macopt key:$k */
static const struct vec vecs[] = {
    {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
     "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"},
    {"s3cr3tf0rd14lb4ck", "example.net", "example.com", "D60000229F",
     "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc"},
    {"a secret that is long enough for xedge 123", "b.test", "a.test", "abc123",
     "b21cc6c68b1fcb3300ee462e094d48a2214bd9338e4592dd579764b958a7c540"},
    {"x", "a.test", "b.test", "",
     "9afb2aa2a6e5f707da651f18968de80f38d7d1fe16cd608a07ab5d8286a36f88"},
};

int
main(void)
{
    char key[XE_DIALBACK_KEY_LEN + 1], bad[XE_DIALBACK_KEY_LEN + 1];
    size_t i;

    for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        const unsigned char *s = (const unsigned char *)v->secret;
        size_t sl = strlen(v->secret);

        is_int(xe_dialback_key(s, sl, v->receiving, v->originating, v->id, key), 0,
               "vector %zu: key made", i);
        is_str(key, v->key, "vector %zu: the expected key", i);
        is_int(xe_dialback_check(s, sl, v->receiving, v->originating, v->id, v->key), 1,
               "vector %zu: check accepts it", i);
        memcpy(bad, v->key, sizeof(bad));
        bad[10] = bad[10] == '0' ? '1' : '0';
        is_int(xe_dialback_check(s, sl, v->receiving, v->originating, v->id, bad), 0,
               "vector %zu: one hex digit changed: refused", i);
        is_int(xe_dialback_check(s, sl, v->originating, v->receiving, v->id, v->key), 0,
               "vector %zu: domains swapped: refused", i);
        is_int(xe_dialback_check(s, sl, v->receiving, v->originating, "other", v->key), 0,
               "vector %zu: another stream id: refused", i);
    }
    is_int(xe_dialback_check((const unsigned char *)"x", 1, "a", "b", "c", "abc"), 0,
           "a short key is refused");
    is_int(xe_dialback_check((const unsigned char *)"x", 1, "a", "b", "c", NULL), 0,
           "no key is refused");
    is_int(xe_dialback_key((const unsigned char *)"x", 1, NULL, "b", "c", key), -1,
           "no receiving domain: error");
    return tap_done();
}
