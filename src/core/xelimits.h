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

/* The XML parser's memory between elements (every stream, issue 13): expat
 * gets the bytes in slices of at most this many (it copies each call's input
 * into a buffer of its own that never shrinks: its size follows the largest
 * slice, not the largest read), and the raw bytes kept for the element being
 * parsed give back their capacity above XE_XML_RAW_KEEP once no element is
 * open. Neither changes a limit: each is checked after every slice. */
#define XE_XML_FEED_SLICE 2048
#define XE_XML_RAW_KEEP 1024

/* XML stream after authentication, parsed only on a domain with in-band
 * registration (the client's stanzas are read to find jabber:iq:register) */
#define XE_DEF_MAX_STANZA_POSTAUTH (256 * 1024) /* bytes of one top-level element */
#define XE_POSTAUTH_MAX_XML_DEPTH 64            /* real payloads nest deeper */
#define XE_POSTAUTH_MAX_ATTRS 64
#define XE_MAX_REGISTER_INJECT                                                           \
    (64 * 1024) /* our answers waiting for a stanza boundary                             \
                 */
/* That parser is given back (xe_regsplice_rest: about 10 KiB per session,
 * 40% of an idle session's memory, issue 18) once the client has sent
 * nothing for this long and its stream is between stanzas; its next stanza
 * makes a new one (about 10 us, once per burst; white space keepalives go
 * through without one). */
#define XE_REGSPLICE_REST_MS 2000

/* Federation (s2s; doc/federation.md) */
#define XE_DEF_MAX_S2S_STANZA (256 * 1024) /* one stanza of an authenticated peer */
#define XE_S2S_MAX_DEPTH 64                /* as XE_POSTAUTH_MAX_XML_DEPTH */
#define XE_S2S_MAX_ATTRS 64
#define XE_S2S_MAX_PAIRS 64    /* authenticated domain pairs on one stream */
#define XE_S2S_MAX_PENDING 16  /* dialback requests waiting on one stream */
#define XE_S2S_MAX_REFUSED 8   /* refused keys a stream with pairs survives */
#define XE_S2S_MAX_DOMAIN 1023 /* bytes of a domain (RFC 7622) */
#define XE_S2S_MAX_KEY 1024    /* bytes of a db:result / db:verify key */
#define XE_S2S_MAX_DOMAIN_BUF (XE_S2S_MAX_DOMAIN + 1)
#define XE_S2S_MAX_KEY_BUF (XE_S2S_MAX_KEY + 1)
#define XE_S2S_MAX_ID_BUF 128         /* a stream id, with its NUL */
#define XE_DEF_S2S_CONNECT_MS 10000   /* TCP connect to a remote server or backend */
#define XE_DEF_S2S_HANDSHAKE_MS 30000 /* header to authenticated (either side) */
#define XE_DEF_DNS_MS XE_DEF_DNS_TIMEOUT_MS /* resolving a remote domain */
#define XE_DEF_S2S_IDLE_MS 600000   /* an authenticated s2s stream with no traffic */
#define XE_DIALBACK_SECRET_MAX 4096 /* bytes of s2s.dialback_secret_file */

/* federation: what a peer says in a log line; the resolvers a reload
 * replaced that may still answer requests in flight */
#define XE_S2S_MAX_LOG_TEXT 200
#define XE_S2S_MAX_RETIRED_RESOLVERS 4
/* remote domains remembered as dropping the stream during SASL EXTERNAL
 * (then dialback at once), and for how long */
#define XE_S2S_MAX_EXTERNAL_DROPS 64
#define XE_S2S_EXTERNAL_DROP_MS (10 * 60 * 1000)

/* Server-to-server SASL with a peer's pre-shared secret (s2s.peers[]) */
#define XE_DEF_S2S_SECRET_MECH "SCRAM-SHA-256" /* peers[].mechanisms' default */
#define XE_S2S_MAX_SECRET_MECHS 4              /* mechanisms for a peer's secret */
#define XE_S2S_MAX_SASL 2048                   /* bytes of one decoded s2s SASL message */

/* In-band registration (XEP-0077) */
#define XE_DEF_REGISTRATIONS_PER_ADDRESS 5 /* per hour, per IPv4 address or IPv6 /64 */
#define XE_REGISTER_PERIOD_MS (3600 * 1000)

/* SASL */
#define XE_DEF_MAX_SASL_BYTES 8192 /* one base64 SASL message */
#define XE_DEF_MAX_AUTH_ATTEMPTS 3 /* failed attempts before the stream closes */
#define XE_DEF_SCRAM_ITERATIONS 4096
#define XE_MAX_SCRAM_ITERATIONS 1000000

/* SASL2 (XEP-0388) and Bind2 (XEP-0386): sizes of what a client names */
#define XE_SASL2_MAX_MECH 20           /* a mechanism name (RFC 4422: 20 characters) */
#define XE_SASL2_MAX_UA_ID 64          /* <user-agent id=...> (a UUID is 36) */
#define XE_SASL2_MAX_UA_TEXT 128       /* <software>, <device> */
#define XE_SASL2_MAX_TEXT 256          /* an <abort>'s <text> kept for the log */
#define XE_BIND2_MAX_TAG 64            /* <tag> of a Bind2 request */
#define XE_BIND2_MAX_JID 3071          /* a full JID (RFC 7622: 3 x 1023) */
#define XE_BIND2_MAX_HELD (256 * 1024) /* backend bytes held until <success> */

/* One read from a socket (bytes): what can land in a queue at once */
#define XE_READ_CHUNK (64 * 1024)
/* Before the splice, what one callback writes to one side, held to go out
 * as one write (bytes; more is written at once) */
#define XE_CORK_MAX (16 * 1024)
/* A spliced session's TLS memory BIOs are replaced by fresh ones once empty
 * when they hold more capacity than this (after a large stanza); at the
 * splice, whatever they hold (the handshake's flight). */
#define XE_TLS_BIO_KEEP 4096

/* Buffers of the pump, per direction (bytes) */
#define XE_DEF_PUMP_HIGH_WATER (256 * 1024)
#define XE_DEF_PUMP_LOW_WATER (64 * 1024)
#define XE_DEF_PUMP_HARD_CAP (1024 * 1024)

/* Stream compression (XEP-0138), when a domain enables it */
#define XE_ZLIB_LEVEL 6              /* deflate level towards the client */
#define XE_ZLIB_WINDOW_BITS 12       /* deflate window: 4 KiB (zlib's default 32 KiB) */
#define XE_ZLIB_MEM_LEVEL 5          /* deflate hash memory: 16 KiB (default 128 KiB) */
#define XE_INFLATE_CHUNK (16 * 1024) /* inflated at once, before the pump takes it */
#define XE_DEFLATE_CHUNK (16 * 1024) /* deflated at once, before TLS takes it */
#define XE_MAX_COMPRESS_FAILURES 3   /* refused <compress/> requests on a stream */
/* compressed bytes held back while the backend's queue is above its high mark */
#define XE_MAX_INFLATE_PENDING (2 * XE_READ_CHUNK)

/* TLS 1.3 session tickets sent after a full handshake (OpenSSL's default is
 * 2). One keeps resumption for a client that uses it (a resumed handshake
 * gets a fresh one) and saves the second ticket's sealing, about 5% of the
 * CPU of a login (BENCHMARKS.md); XMPP clients hold one connection. */
#define XE_TLS_SESSION_TICKETS 1

/* Timeouts (milliseconds) */
#define XE_DEF_TLS_TIMEOUT_MS 10000 /* also: a PROXY header, on such a listener */
#define XE_DEF_AUTH_TIMEOUT_MS 60000
#define XE_DEF_PREAUTH_IDLE_MS 30000 /* silence allowed before authentication */
#define XE_DEF_BACKEND_CONNECT_MS 5000
/* another server of the pool tried when connecting to one, or its handshake,
 * fails (not for sticky users whose server holds their data: on_down) */
#define XE_DEF_BACKEND_RETRIES 1
#define XE_MAX_UNIX_PATH 108 /* sun_path, with its NUL */
#define XE_MAX_BACKEND_RETRIES 8
/* admission control of backend logins per server (admit.h): in progress at
 * once (0: no cap), and waiting in the FIFO beyond that */
#define XE_DEF_PENDING_LOGINS 64
#define XE_MAX_PENDING_LOGINS 100000
#define XE_DEF_QUEUED_LOGINS 4096
#define XE_MAX_QUEUED_LOGINS 1000000
#define XE_DEF_BACKEND_HANDSHAKE_MS 10000
/* backend health checks (a pool's health group) */
#define XE_DEF_HEALTH_INTERVAL_S 5
#define XE_DEF_HEALTH_TIMEOUT_S 2
#define XE_DEF_HEALTH_FALL 3
#define XE_DEF_HEALTH_RISE 2
/* a server back up gets a tenth of its weight, then all of it after this
 * (least-conn, round-robin) */
#define XE_DEF_HEALTH_SLOW_START_S 10
#define XE_HEALTH_MAX_BYTES (64 * 1024) /* of a server's answer to a check */
#define XE_HEALTH_TICK_MS 250           /* how often due checks are started */

/* Worker threads (workers = N | "auto") */
#define XE_MAX_WORKERS 64
/* the control socket waits this long for every worker's part of an answer
 * (session list, kick, stats, shutdown); a worker that has not answered by
 * then is left out (and logged) */
#define XE_WORKER_ANSWER_MS 2000
/* purging a deleted user's data at its backend (purge_io.c) */
#define XE_PURGE_TIMEOUT_MS 10000   /* one attempt: connect, login, the answer */
#define XE_PURGE_SCAN_MS 1000       /* tombstones due are looked for this often */
#define XE_PURGE_RETRY_MIN_S 5      /* after a failure: 5 s, doubling ... */
#define XE_PURGE_RETRY_MAX_S 3600   /* ... up to an hour between attempts */
#define XE_PURGE_MAX_READ (1 << 20) /* bytes read from the backend in one attempt */
#define XE_PURGE_PARALLEL 4         /* attempts at once (one per backend server) */

/* Identity assertion */
#define XE_DEF_ASSERTION_LIFETIME 60 /* seconds */
#define XE_MIN_SECRET_BYTES 32

/* DNS for federation (resolve.c): c-ares on libuv */
#define XE_DEF_DNS_TIMEOUT_MS 5000   /* a whole request (SRV, then A/AAAA) */
#define XE_RESOLVE_MAX_TARGETS 16    /* addresses given for one domain */
#define XE_RESOLVE_MAX_SRV 16        /* SRV records read per service */
#define XE_RESOLVE_MAX_REQUESTS 1024 /* outstanding, per resolver */
#define XE_RESOLVE_MAX_INFLIGHT 64   /* queries sent at once; the rest wait */

/* Connections */
#define XE_DEF_MAX_CONNECTIONS 100000
/* Connections not yet authenticated (limits.max_preauth_connections; unset:
 * this, or half the effective max_connections if that is less). One costs
 * 8-14 KiB (a parser, TLS, an unfinished element); a flood of them from
 * many addresses must leave room, descriptors and memory to the users. */
#define XE_DEF_MAX_PREAUTH_CONNECTIONS 10000
/* max_connections is clamped to what the descriptor limit (RLIMIT_NOFILE)
 * serves: two per session (the client, then its backend), after this many
 * kept for the rest: standard streams, the log, the user store, each
 * worker's loop, the control socket and its clients, the metrics endpoint
 * and its scrapes, health checks, DNS, federation (plus the listeners,
 * counted apart) */
#define XE_FD_RESERVE 64
#define XE_FD_PER_WORKER 4 /* a loop: epoll, its wakeups, signals */
/* The heap is given back to the system (glibc malloc_trim, on the thread
 * pool) when the unauthenticated connections have fallen from their peak
 * by this many, or by a quarter of their cap if that is less, a moment
 * after (the rest of a mass close goes with it); at most once per
 * interval. */
#define XE_PREAUTH_TRIM_DROP 1024
#define XE_PREAUTH_TRIM_INTERVAL_MS 10000
#define XE_PREAUTH_TRIM_DELAY_MS                                                         \
    1000 /* after the threshold: one trim for a mass close                               \
          */
/* per source address (IPv6: per /64); generous, for clients behind NAT */
#define XE_DEF_MAX_CONNS_PER_ADDRESS 1000
#define XE_DEF_CONN_RATE_PER_ADDRESS 50 /* new connections per second */
#define XE_DEF_CONN_BURST_PER_ADDRESS 200
#define XE_ADDRLIMIT_MAX_ENTRIES (1 << 20) /* addresses tracked at once */
#define XE_DEF_MAX_PROXY_HEADER 512 /* a PROXY v2 header (TLVs included); v1: 107 */

/* Brute-force protection (the `lockout` group; lockout.h). An address
 * behind NAT carries many users' typos, and anyone can make an account's
 * failures: both thresholds are generous, the account's the higher, so that
 * one attacking address locks itself out long before the account it tries. */
#define XE_DEF_LOCKOUT_FREE_FAILURES 3   /* answered at once */
#define XE_DEF_LOCKOUT_DELAY_MS 250      /* the first delay, doubling */
#define XE_DEF_LOCKOUT_MAX_DELAY_MS 8000 /* below every pre-auth timeout */
#define XE_DEF_LOCKOUT_ADDRESS_THRESHOLD 30
#define XE_DEF_LOCKOUT_ACCOUNT_THRESHOLD 50
#define XE_DEF_LOCKOUT_TIME_S 600           /* how long a lockout lasts */
#define XE_DEF_FAST_LIFETIME_S (21 * 86400) /* a FAST token lives (as Prosody's) */
#define XE_DEF_FAST_ROTATE_S 86400          /* a token login older: a new token */
#define XE_DEF_LOCKOUT_WINDOW_S 600      /* a count is forgotten after this long quiet */
#define XE_DEF_LOCKOUT_MAX_ENTRIES 65536 /* per kind (addresses, accounts) */

/* The control socket (control.c) */
#define XE_CONTROL_MAX_REQUEST 1024 /* bytes of one request line */
#define XE_CONTROL_TIMEOUT_MS 5000  /* to send the request and read the answer */
#define XE_CONTROL_MAX_CLIENTS 16   /* at once */
#define XE_CONTROL_MAX_ERROR 1024   /* bytes of an error answer (reload) */
#define XE_CONTROL_MAX_RESPONSE (64 * 1024 * 1024)

/* xedge-extauth, the ejabberd/jabberd2 glue (contrib/ejabberd) */
#define XE_EXTAUTH_MAX_REQUEST 2048        /* one request (bytes); longer: refused */
#define XE_EXTAUTH_MAX_PART 1023           /* a localpart or a domain (bytes) */
#define XE_EXTAUTH_MAX_DOMAINS 64          /* --domain given at most */
#define XE_EXTAUTH_MAX_SECRET_FILE 4096    /* as xedge's secret_file */
#define XE_EXTAUTH_READ_TIMEOUT_MS 10000   /* the rest of a started request */
#define XE_EXTAUTH_DEF_MAX_LIFETIME 120    /* seconds, as contrib/prosody */
#define XE_EXTAUTH_DEF_REPLAY_CACHE 100000 /* nonces remembered at most */

/* One domain over several servers: the routing links (route.h,
 * doc/pool-routing.md) */
#define XE_ROUTE_MAX_STANZA (256 * 1024) /* one routed stanza */
#define XE_ROUTE_MAX_DEPTH 64
#define XE_ROUTE_MAX_ATTRS 64
/* bytes of one part of the map sent to a glue (its stanza limit: 1 MiB) */
#define XE_ROUTE_MAP_PART (256 * 1024)
#define XE_ROUTE_MAX_DELTA (64 * 1024) /* one delta of the map; larger: the map whole */
#define XE_ROUTE_MAX_DELTAS                                                              \
    (256 * 1024)              /* deltas waiting for one link; more: the map whole */
#define XE_ROUTE_MAX_JID 3071 /* bytes of a JID (RFC 7622: 3 x 1023) */
#define XE_ROUTE_PIN_REFRESH_MS 1000 /* the pins are read again this often */
#define XE_ROUTE_AUTH_MS 10000   /* connect to authenticated; closing: the last bytes */
#define XE_ROUTE_MAX_PING_S 3600 /* the longest ping interval a glue may announce */
#define XE_ROUTE_SILENT_PINGS 3  /* a link silent this many ping intervals is dead */
#define XE_ROUTE_MAX_QUEUE (4 * 1024 * 1024) /* bytes queued to one link */
#define XE_ROUTE_MAX_LINKS 64                /* routing connections at once */
#define XE_ROUTE_LOG_BURST 10 /* refused stanzas logged per link and second */

/* several nodes: the replica of the PostgreSQL user database (pgsync_io.c) */
#define XE_PG_PULL_BATCH 500        /* changes per pull: a catch-up in bounded steps */
#define XE_PG_WRITE_QUEUE_MAX 10000 /* writes waiting for the database */
#define XE_PG_RETRY_MIN_MS 100      /* reconnection backoff, doubling ... */
#define XE_PG_RETRY_MAX_MS 5000     /* ... up to this */
#define XE_PG_TICK_MS 1000          /* heartbeat, and a pull in case a NOTIFY was lost */
#define XE_PG_CONNECT_TIMEOUT_MS 5000 /* a connection not made by then is dropped */
/* a query not answered by then drops the connection */
#define XE_PG_QUERY_TIMEOUT_MS 10000
/* the first catch-up's pulls (blocking, before the node listens) */
#define XE_PG_STATEMENT_TIMEOUT "10000"
/* a node without the purge lock tries for it every 5 ticks */
#define XE_PG_LEADER_TICKS 5
/* the change log's pruning, by the purging node (doc/scaling.md) */
#define XE_TOKIO_QUEUE_MAX 256 /* FAST token writes under way (tokens_io.c) */
/* in-band registration's jobs under way, all workers (register_io.h):
 * PBKDF2 and an LMDB write each, on libuv's 4 pool threads shared with the
 * token writes; beyond, <resource-constraint/> */
#define XE_REGIO_MAX_JOBS 16
#define XE_DEF_CHANGES_RETENTION_S 86400 /* user_store.changes_retention */
#define XE_PG_PRUNE_TICKS 60             /* prune every minute */
#define XE_PG_KICK_MAX_AGE_MS 60000      /* a kick older than this is not acted on */
#define XE_PG_RESYNC_KEYS_MAX 50000000   /* keys a full resync keeps in memory */

/* XMPP over WebSocket (RFC 7395): the Upgrade request, the frames */
#define XE_WS_DEFAULT_PATH "/xmpp-websocket" /* a websocket listener's path */
#define XE_WS_MAX_HTTP_HEAD 8192             /* bytes of the request line and headers */
#define XE_WS_MAX_HTTP_HEADERS 64            /* header lines of one request */
#define XE_WS_MAX_HTTP_NAME 64     /* a header name looked at (longer: ignored) */
#define XE_WS_MAX_HTTP_VALUE 1024  /* a kept header's value, and the request target */
#define XE_WS_MAX_HTTP_ANSWER 2048 /* the 101, an error or host-meta */
#define XE_WS_UPGRADE_TIMEOUT_MS XE_DEF_TLS_TIMEOUT_MS /* the whole request head */
#define XE_WS_MAX_OUT_MESSAGE XE_DEF_PUMP_HARD_CAP     /* one element of the backend's */

#endif
