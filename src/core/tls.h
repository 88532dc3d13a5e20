/* xedge: TLS on memory BIOs (sans-IO). Ciphertext in and out through
 * buffers; the I/O glue moves it to and from the socket. Certificates per
 * served domain: chosen by SNI on Direct TLS and by the stream's `to` on
 * STARTTLS. TLS 1.2 and 1.3 only, renegotiation off. */
#ifndef XE_TLS_H
#define XE_TLS_H

#include <stddef.h>
#include <stdbool.h>

#include "cbind.h"

struct xe_tls_ctx;
struct xe_tls;

/* The protocol versions, as on the wire (and as OpenSSL numbers them). */
#define XE_TLS_1_2 0x0303
#define XE_TLS_1_3 0x0304

/* A domain's TLS parameters (xedge.conf's tls groups). NULL: the default.
 * The defaults are current server guidance's "intermediate": TLS 1.2 with
 * ECDHE and AEAD suites only (AES-GCM, ChaCha20-Poly1305), TLS 1.3 with its
 * three common suites, X25519, P-256 and P-384. */
#define XE_TLS_DEFAULT_CIPHERS                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                         \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define XE_TLS_DEFAULT_CIPHERSUITES                                                      \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define XE_TLS_DEFAULT_GROUPS "X25519:P-256:P-384"
struct xe_tls_settings {
    char *ciphers;      /* TLS 1.2 cipher list (OpenSSL's syntax) */
    char *ciphersuites; /* TLS 1.3 suites, ':'-separated */
    char *groups;       /* key exchange groups, ':'-separated */
    int min_version;    /* XE_TLS_1_2 or XE_TLS_1_3; 0: 1.2 */
};
/* Whether OpenSSL takes these settings, each name in them known: 0, or -1
 * and *setting_r (the setting's name: "ciphers", ...) and *error_r (to
 * free). */
int xe_tls_settings_check(const struct xe_tls_settings *s, const char **setting_r,
                          char **error_r);

struct xe_tls_cert {
    const char *domain;
    const char *certificate; /* PEM chain file */
    const char *key;         /* PEM key file */
    const char *client_ca;   /* PEM CAs for client certificates (EXTERNAL), or NULL */
    const struct xe_tls_settings *settings; /* NULL: the defaults */
    /* session ticket keys (xe_tls_ticket_keys_read), the first cert's for
     * every domain; NULL: OpenSSL makes its own, per context and process */
    const unsigned char *ticket_keys;
    size_t ticket_keys_len;
};

/* Session ticket keys (tls.ticket_key_file): the file holds one or more
 * keys of XE_TLS_TICKET_KEY_BYTES raw bytes each, as nginx's 80-byte
 * ssl_session_ticket_key: 16 bytes of key name, 32 of HMAC-SHA256 key, 32
 * of AES-256-CBC key. The first encrypts new tickets; each decrypts
 * (tickets under a later one are renewed); a ticket under no key gets a
 * full handshake. */
#define XE_TLS_TICKET_KEY_BYTES 80
#define XE_TLS_TICKET_KEYS_MAX 8
/* Reads and checks PATH: a regular file, not accessible to others nor
 * writable by its group, 1 to XE_TLS_TICKET_KEYS_MAX keys. 0 and *keys_r
 * (to OPENSSL_cleanse and free), *len_r; or -1 and *error_r (to free). */
int xe_tls_ticket_keys_read(const char *path, unsigned char **keys_r, size_t *len_r,
                            char **error_r);

/* Which names of a client certificate count as the client's JID. */
#define XE_ID_XMPPADDR 1u /* SAN otherName id-on-xmppAddr (RFC 6120 13.7.1.4) */
#define XE_ID_EMAIL 2u    /* SAN rfc822Name */
#define XE_ID_CN 4u       /* the subject's common name */
#define XE_ID_DNS 8u      /* SAN dNSName (a server's domain, RFC 6125) */
#define XE_MAX_PEER_IDS 8

/* One context per domain; the first is the default (no SNI, unknown SNI).
 * Direct TLS picks the domain from the SNI in the ClientHello, before the
 * session to resume and the parameters are looked at. Sessions and tickets
 * resume only under the context they were made in: its domain, its
 * client_ca (by content) and ALPN make its session ID context; a session
 * from elsewhere gets a full handshake. */
int xe_tls_ctx_new(const struct xe_tls_cert *certs, size_t n, const char *alpn,
                   struct xe_tls_ctx **ctx_r, char **error_r);
void xe_tls_ctx_free(struct xe_tls_ctx **ctx);

/* A server-side connection. domain: the certificate to present (STARTTLS:
 * the stream's `to`); NULL: by SNI (Direct TLS). */
struct xe_tls *xe_tls_new(struct xe_tls_ctx *ctx, const char *domain);
void xe_tls_free(struct xe_tls **t);

#define XE_TLS_WANT 0      /* more input needed */
#define XE_TLS_DONE 1      /* handshake complete */
#define XE_TLS_CLOSED (-1) /* peer sent close_notify */
#define XE_TLS_ERROR (-2)  /* protocol error; see xe_tls_error() */

/* Ciphertext from the peer. -1 if the buffer cannot take it. */
int xe_tls_feed(struct xe_tls *t, const void *data, size_t len);
int xe_tls_handshake(struct xe_tls *t);
/* Plaintext out of the connection: >0 bytes, XE_TLS_WANT, _CLOSED or _ERROR. */
int xe_tls_read(struct xe_tls *t, void *buf, size_t len);
/* Encrypt all of data. 0 or XE_TLS_ERROR. */
int xe_tls_write(struct xe_tls *t, const void *data, size_t len);
/* Send close_notify. */
void xe_tls_shutdown(struct xe_tls *t);
/* Ciphertext to send to the peer. */
size_t xe_tls_out_pending(struct xe_tls *t);
size_t xe_tls_out_take(struct xe_tls *t, void *buf, size_t len);
/* A memory BIO keeps the capacity of the most it ever held (the handshake's
 * flight, the largest stanza) for as long as the session lives. Replaces
 * each BIO that is empty and holds more than `keep` bytes of capacity with
 * a fresh one (keep 0: any): an idle session then holds none. */
void xe_tls_release_bios(struct xe_tls *t, size_t keep);
/* The capacity the two memory BIOs hold, in bytes. */
size_t xe_tls_bio_capacity(struct xe_tls *t);

const char *xe_tls_version(const struct xe_tls *t);
const char *xe_tls_cipher(const struct xe_tls *t);
const char *xe_tls_sni(const struct xe_tls *t);
/* Whether the handshake resumed a session. */
bool xe_tls_resumed(const struct xe_tls *t);
const char *xe_tls_alpn(const struct xe_tls *t, char *buf, size_t len);
const char *xe_tls_error(struct xe_tls *t);

/* The channel bindings this established session offers, preferred first:
 * on TLS 1.3 tls-exporter, and (not advertised) tls-unique when
 * tls13_unique, for clients that predate RFC 9266 and send it anyway; on
 * TLS 1.2 tls-unique, and tls-exporter when the extended master secret was
 * negotiated; on both, tls-server-end-point (RFC 5929: the hash of the
 * server's certificate, the one the SNI chose) when the certificate's
 * signature names a hash. Returns how many were written to out. */
size_t xe_tls_channel_bindings(const struct xe_tls *t, bool tls13_unique,
                               struct xe_cbind *out, size_t max);

/* The bare JIDs a client certificate vouches for: only when the client
 * presented one and it verified against the domain's client_ca. rules:
 * XE_ID_* bits. Returns how many were written (lower-cased). */
size_t xe_tls_peer_identities(const struct xe_tls *t, unsigned rules, char out[][3072],
                              size_t max);

/* A server-to-server client-side connection: presents CERTIFICATE/KEY (both
 * NULL: none), verifies the server against CA_FILE (NULL: nothing verifies)
 * without failing the handshake: xe_tls_peer_identities() (XE_ID_DNS) then
 * gives the names it is valid for. */
struct xe_tls_client_ctx;
/* The client side's context for one local domain: its certificate and key
 * (NULL: none), the trust anchors (NULL: none). Loaded once, with the
 * configuration (at start, before the privilege drop, and on reload), not
 * per connection. 0, or -1 and *error_r (to free). */
int xe_tls_client_ctx_new(const char *certificate, const char *key, const char *ca_file,
                          struct xe_tls_client_ctx **ctx_r, char **error_r);
void xe_tls_client_ctx_free(struct xe_tls_client_ctx **ctxp);
struct xe_tls *xe_tls_new_s2s_client(const struct xe_tls_client_ctx *ctx, const char *sni,
                                     const char *alpn);

/* For tests: a client-side connection (no verification). */
struct xe_tls *xe_tls_new_client(const char *sni, const char *alpn);

#endif
