/* xedge: small shared helpers: byte buffers, random ids, XML escaping. */
#ifndef XE_UTIL_H
#define XE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* A growable byte buffer with a hard cap. */
struct xe_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t max; /* hard cap; 0 = unlimited */
};

void xe_buf_init(struct xe_buf *b, size_t max);
/* Append; -1 when the cap would be exceeded or memory is short. */
int xe_buf_append(struct xe_buf *b, const void *data, size_t len);
int xe_buf_appendf(struct xe_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int xe_buf_append_str(struct xe_buf *b, const char *s);
/* Append S escaped for XML character data and attribute values. */
int xe_buf_append_escaped(struct xe_buf *b, const char *s);
/* Drop the first n bytes. */
void xe_buf_consume(struct xe_buf *b, size_t n);
void xe_buf_free(struct xe_buf *b);

/* A random stream id: 16 bytes as 32 hex chars (+ NUL in a 33-byte buffer). */
void xe_random_id(char out[33]);
/* LEN random bytes from OpenSSL's DRBG for values that go out in the clear
 * (ids, nonces, salts: never keys), through a per-thread pool that saves a
 * RAND_bytes (and OpenSSL 3.0's getpid) per draw; false if RAND_bytes
 * failed. */
bool xe_random_public(void *buf, size_t len);

void *xe_malloc(size_t n);
void *xe_calloc(size_t n, size_t size);
void *xe_realloc(void *p, size_t n);
char *xe_strdup(const char *s);
char *xe_strndup(const char *s, size_t n);
char *xe_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int64_t xe_now_seconds(void);
void xe_tolower_ascii(char *s);

#endif
