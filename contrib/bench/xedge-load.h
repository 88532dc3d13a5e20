/* xedge-load.h: what the parts of xedge-load share (xedge-load.c: sessions,
 * pacing, report; xedge-load-opts.c: options and --help; xedge-load-fast.c:
 * SASL2, FAST tokens and TLS session resumption for the re-login mode). */
#ifndef XEDGE_LOAD_H
#define XEDGE_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <expat.h>
#include <openssl/ssl.h>
#include <sasl/sasl.h>
#include <uv.h>

#define XL_MAX_SESSIONS 200000     /* hard cap on --sessions */
#define XL_MAX_DURATION 3600.0     /* hard cap on --duration, seconds */
#define XL_MAX_SOURCES 65536       /* source addresses */
#define XL_MAX_RTT_SAMPLES 4000000 /* message round trips kept for percentiles */
#define XL_TEXT_MAX 4096           /* character data kept per stanza */
#define XL_NAME_MAX 256            /* user names, passwords, JIDs */
#define XL_TOKEN_MAX 512           /* a FAST token */
#define XL_READ_BUF 65536
#define XL_TICK_MS 1
#define XL_CLOSE_WAIT_S 5.0 /* the server's </stream:stream> after ours */

enum state {
    S_IDLE = 0,   /* not started */
    S_CONNECTING, /* TCP connect in flight */
    S_HANDSHAKE,  /* TLS handshake in flight */
    S_STREAM,     /* stream open, waiting for features/stanzas */
    S_READY,      /* logged in (bound, or SASL2 success without Bind2) */
    S_CLOSING,    /* logged in, </stream:stream> sent (--close-after-login) */
    S_DEAD,       /* failed or closed */
};

enum err {
    E_CONNECT,
    E_TLS,
    E_STREAM_ERROR,
    E_NO_STARTTLS,
    E_MECH_NOT_OFFERED,
    E_SASL_CLIENT,
    E_AUTH_FAILED,
    E_BIND,
    E_PARSE,
    E_CLOSED,
    E_LOGIN_TIMEOUT,
    E_WRITE,
    E_MSG_ERROR,
    E_MSG_LOST,
    E_COUNT
};

enum tls_mode { M_STARTTLS, M_DIRECT, M_PLAIN };

struct sess {
    uv_tcp_t tcp;
    uv_connect_t creq;
    unsigned idx;
    enum state state;
    unsigned open : 1;     /* tcp initialised, not yet closed */
    unsigned closing : 1;  /* uv_close called, on_close not yet run */
    unsigned tls_up : 1;   /* handshake done */
    unsigned authed : 1;   /* SASL succeeded */
    unsigned restart : 1;  /* the parser must be reset after this chunk */
    unsigned stop : 1;     /* stop feeding the parser (closing) */
    unsigned in_mechs : 1; /* inside <mechanisms> or SASL2's <authentication> */
    unsigned in_cap : 1;   /* capturing character data */
    unsigned f_starttls : 1, f_mech : 1, f_bind : 1, f_sasl2 : 1;
    unsigned relogin : 1; /* this connection is a re-login (FAST, resumption) */
    SSL *ssl;
    BIO *rbio, *wbio;
    sasl_conn_t *sasl;
    sasl_callback_t cbs[4];
    sasl_secret_t *secret;
    char *authname;
    XML_Parser xp;
    int depth;
    char cur[24];   /* local name of the current top-level element */
    char child[40]; /* first child's local name (errors, failures) */
    char type[16];  /* type attribute */
    char id[48];    /* id attribute */
    char *text;     /* captured character data (XL_TEXT_MAX) */
    size_t textlen;
    char jid[XL_NAME_MAX]; /* full JID after bind */
    uint64_t t0;           /* connect start, ns */
    uint64_t deadline;     /* login deadline, ns */
    /* --fast: kept across connections */
    SSL_SESSION *tls_sess;   /* the newest ticket's session */
    char *token;             /* the FAST token (XL_TOKEN_MAX), NULL: none */
    unsigned char ht_cb[32]; /* HT-*-EXPR: this connection's channel binding */
};

struct opts {
    const char *host;
    int port;
    enum tls_mode mode;
    const char *domain;
    const char *mech;
    const char *user_fmt;
    const char *pass_fmt;
    const char *assertion_secret; /* file: PLAIN passwords are xedge assertions */
    unsigned user_offset;
    unsigned sessions;
    double rate;
    unsigned concurrency;
    double hold;
    double msg_at; /* unix time the messages start at, at the earliest (0: none) */
    double msg_rate;
    double msg_duration;
    int msg_pairs;
    double login_timeout;
    double msg_timeout;
    double duration;
    const char *source;
    unsigned sources;
    const char *cafile;
    int presence;
    unsigned pause_at;
    double pause;
    int graceful;
    int quiet;
    /* SASL2, FAST and re-logins */
    int sasl2;             /* log in with SASL2 (XEP-0388) */
    int bind2;             /* with an inline Bind2 request */
    const char *fast;      /* --fast MECH: request a token, re-login with it */
    int close_after;       /* --close-after-login */
    int relogin;           /* 0 none, 1 on SIGUSR1, 2 --relogin-after */
    double relogin_after;  /* seconds after the first logins settled */
    unsigned relogin_conc; /* re-logins in flight at most (0: --concurrency) */
    unsigned fail_list;    /* RELOGIN_FAIL lines at most */
};

extern struct opts o;

void say(const char *fmt, ...);
void usage(FILE *f);
void parse_args(int argc, char **argv);

/* xedge-load.c */
void send_str(struct sess *s, const char *str);
void sess_fail(struct sess *s, enum err e, const char *detail);

/* xedge-load-fast.c */
int xl_fast_ctx(SSL_CTX *ctx);
void xl_fast_ssl(struct sess *s);
int xl_sasl2_send(struct sess *s, const char *mech, const char *ir, unsigned irlen);
int xl_fast_start(struct sess *s);
int xl_fast_verify(struct sess *s, const char *b64, size_t len);
int xl_fast_keep_token(struct sess *s, const char *tok);
void xl_fast_free(struct sess *s);

#endif
