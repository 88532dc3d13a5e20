/* xedge: every limit a peer can push against, named in one place.
 * Defaults here; most are settable in the `limits` and `timeouts` groups of
 * the configuration (see etc/xedge.conf.sample). */
#ifndef XE_LIMITS_H
#define XE_LIMITS_H

/* XML stream, before authentication */
#define XE_DEF_MAX_STANZA_PREAUTH (16 * 1024) /* bytes of one top-level element */
#define XE_DEF_MAX_XML_DEPTH 8                /* element depth below the stream */
#define XE_DEF_MAX_ATTRS 16                   /* attributes on one element */
#define XE_MAX_HEADER_BYTES 4096              /* the <stream:stream> header */
#define XE_MAX_BACKEND_FEATURES (64 * 1024)   /* backend's stream features */

/* SASL */
#define XE_DEF_MAX_SASL_BYTES 8192 /* one base64 SASL message */
#define XE_DEF_MAX_AUTH_ATTEMPTS 3 /* failed attempts before the stream closes */
#define XE_DEF_SCRAM_ITERATIONS 4096
#define XE_MAX_SCRAM_ITERATIONS 1000000

/* One read from a socket (bytes): what can land in a queue at once */
#define XE_READ_CHUNK (64 * 1024)

/* Buffers of the pump, per direction (bytes) */
#define XE_DEF_PUMP_HIGH_WATER (256 * 1024)
#define XE_DEF_PUMP_LOW_WATER (64 * 1024)
#define XE_DEF_PUMP_HARD_CAP (1024 * 1024)

/* Timeouts (milliseconds) */
#define XE_DEF_TLS_TIMEOUT_MS 10000
#define XE_DEF_AUTH_TIMEOUT_MS 60000
#define XE_DEF_PREAUTH_IDLE_MS 30000 /* silence allowed before authentication */
#define XE_DEF_BACKEND_CONNECT_MS 5000
#define XE_DEF_BACKEND_HANDSHAKE_MS 10000

/* Identity assertion */
#define XE_DEF_ASSERTION_LIFETIME 60 /* seconds */
#define XE_MIN_SECRET_BYTES 32

/* Connections */
#define XE_DEF_MAX_CONNECTIONS 100000
/* per source address (IPv6: per /64); generous, for clients behind NAT */
#define XE_DEF_MAX_CONNS_PER_ADDRESS 1000
#define XE_DEF_CONN_RATE_PER_ADDRESS 50 /* new connections per second */
#define XE_DEF_CONN_BURST_PER_ADDRESS 200
#define XE_ADDRLIMIT_MAX_ENTRIES (1 << 20) /* addresses tracked at once */

/* xedge-extauth, the ejabberd/jabberd2 glue (contrib/ejabberd) */
#define XE_EXTAUTH_MAX_REQUEST 2048        /* one request (bytes); longer: refused */
#define XE_EXTAUTH_MAX_PART 1023           /* a localpart or a domain (bytes) */
#define XE_EXTAUTH_MAX_DOMAINS 64          /* --domain given at most */
#define XE_EXTAUTH_MAX_SECRET_FILE 4096    /* as xedge's secret_file */
#define XE_EXTAUTH_READ_TIMEOUT_MS 10000   /* the rest of a started request */
#define XE_EXTAUTH_DEF_MAX_LIFETIME 120    /* seconds, as contrib/prosody */
#define XE_EXTAUTH_DEF_REPLAY_CACHE 100000 /* nonces remembered at most */

#endif
