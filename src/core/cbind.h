/* xedge: channel binding data of a TLS session, handed from the TLS module to
 * the SASL adapter (RFC 5929 tls-unique and tls-server-end-point, RFC 9266
 * tls-exporter). */
#ifndef XE_CBIND_H
#define XE_CBIND_H

#include <stdbool.h>
#include <stddef.h>

#define XE_CB_MAX 3
#define XE_CB_DATA_MAX 64

struct xe_tls;

struct xe_cbind {
    const char
        *type; /* "tls-exporter", "tls-unique" or "tls-server-end-point" (static) */
    unsigned char data[XE_CB_DATA_MAX];
    size_t len;
    bool advertise; /* listed in the stream features (XEP-0440) */
    /* len 0 and lazy set: data not computed yet; xe_cbind_fill() derives it
     * from this TLS session when an attempt uses the binding (a TLS
     * exporter costs two HKDF rounds, and most logins use no binding). The
     * session must outlive every copy that is filled. */
    const struct xe_tls *lazy;
};

/* Compute a lazy binding's data (see above); returns its length, 0 if it
 * cannot be had. Defined in tls.c. */
size_t xe_cbind_fill(struct xe_cbind *cb);

#endif
