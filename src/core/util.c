/* xedge: small shared helpers. */
#include "util.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static void
oom(void)
{
    fputs("xedge: out of memory\n", stderr);
    abort();
}

void *
xe_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *
xe_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *
xe_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *
xe_strdup(const char *s)
{
    return xe_strndup(s, strlen(s));
}

char *
xe_strndup(const char *s, size_t n)
{
    char *p = xe_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
xe_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    s = xe_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void
xe_buf_init(struct xe_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

static int
buf_reserve(struct xe_buf *b, size_t extra)
{
    size_t need = b->len + extra, ncap;
    unsigned char *p;

    if (need < b->len || (b->max && need > b->max))
        return -1;
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    if (b->max && ncap > b->max)
        ncap = b->max;
    p = realloc(b->data, ncap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int
xe_buf_append(struct xe_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (buf_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int
xe_buf_append_str(struct xe_buf *b, const char *s)
{
    return xe_buf_append(b, s, strlen(s));
}

int
xe_buf_appendf(struct xe_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int
xe_buf_append_escaped(struct xe_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '"':
            rep = "&quot;";
            break;
        }
        if ((rep ? xe_buf_append_str(b, rep) : xe_buf_append(b, s, 1)) < 0)
            return -1;
    }
    return 0;
}

void
xe_buf_consume(struct xe_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void
xe_buf_free(struct xe_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Public random bytes (ids, nonces) come from a per-thread pool refilled
 * 1 KiB at a time: each RAND_bytes costs OpenSSL 3.0 a DRBG generate and a
 * getpid system call (its fork check), several times per login for the ids
 * and the SASL nonce alone (issue 18). A child of fork() starts with an
 * empty pool (the parent's bytes are never reused); bytes handed out are
 * wiped from the pool. */
static __thread unsigned char pub_pool[1024];
static __thread size_t pub_pool_left;
static pthread_once_t pub_pool_once = PTHREAD_ONCE_INIT;

static void
pub_pool_forget(void)
{
    OPENSSL_cleanse(pub_pool, sizeof(pub_pool));
    pub_pool_left = 0;
}

static void
pub_pool_atfork(void)
{
    pthread_atfork(NULL, NULL, pub_pool_forget);
}

bool
xe_random_public(void *buf, size_t len)
{
    pthread_once(&pub_pool_once, pub_pool_atfork);
    if (len > sizeof(pub_pool) / 4)
        return len <= INT_MAX && RAND_bytes(buf, (int)len) == 1;
    if (pub_pool_left < len) {
        if (RAND_bytes(pub_pool, sizeof(pub_pool)) != 1)
            return false;
        pub_pool_left = sizeof(pub_pool);
    }
    memcpy(buf, pub_pool + sizeof(pub_pool) - pub_pool_left, len);
    OPENSSL_cleanse(pub_pool + sizeof(pub_pool) - pub_pool_left, len);
    pub_pool_left -= len;
    return true;
}

void
xe_random_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];

    if (!xe_random_public(r, sizeof(r)))
        abort(); /* no randomness: nothing safe to do */
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[32] = '\0';
    OPENSSL_cleanse(r, sizeof(r));
}

int64_t
xe_now_seconds(void)
{
    return (int64_t)time(NULL);
}

void
xe_tolower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}
