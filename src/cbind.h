/* xedge: channel binding data of a TLS session, handed from the TLS module to
 * the SASL adapter (RFC 5929 tls-unique, RFC 9266 tls-exporter). */
#ifndef XE_CBIND_H
#define XE_CBIND_H

#include <stdbool.h>
#include <stddef.h>

#define XE_CB_MAX 3
#define XE_CB_DATA_MAX 64

struct xe_cbind {
    const char *type; /* "tls-exporter" or "tls-unique" (a static string) */
    unsigned char data[XE_CB_DATA_MAX];
    size_t len;
    bool advertise; /* listed in the stream features (XEP-0440) */
};

#endif
