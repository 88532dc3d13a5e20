/* xedge: Cyrus SASL's mechanisms that draw nonces from the connection's
 * random pool (SCRAM, DIGEST-MD5, CRAM-MD5), registered by xedge, server
 * and client, with OpenSSL's DRBG in place of the pool. See sasl_rand.c. */
#ifndef XE_SASL_RAND_H
#define XE_SASL_RAND_H

#include <stdbool.h>
#include <stdint.h>

#include <sasl/sasl.h>

enum xe_sasl_rand_side { XE_SASL_RAND_SERVER, XE_SASL_RAND_CLIENT };

/* The SASL_CB_VERIFYFILE callbacks for sasl_server_init and for
 * sasl_client_init: keep Cyrus from loading the plugins (for that half)
 * that xe_sasl_rand_register loads itself (their paths are noted). Every
 * other file: SASL_OK. */
int xe_sasl_rand_verifyfile(void *context, const char *file, sasl_verify_type_t type);
int xe_sasl_rand_verifyfile_client(void *context, const char *file,
                                   sasl_verify_type_t type);
/* After sasl_server_init (SIDE XE_SASL_RAND_SERVER) or sasl_client_init
 * (XE_SASL_RAND_CLIENT): loads the plugins noted for that half and
 * registers their mechanisms, wrapped. A plugin that fails to load is
 * logged and left out, as Cyrus's own loader leaves it out. */
void xe_sasl_rand_register(enum xe_sasl_rand_side side);
/* After sasl_client_done and sasl_server_done: unloads them. */
void xe_sasl_rand_done(void);
/* How many mechanisms of a half are registered wrapped, and how many
 * random bytes that half's wrapped connections drew from OpenSSL (for
 * tests). */
unsigned xe_sasl_rand_mechs(enum xe_sasl_rand_side side);
uint64_t xe_sasl_rand_bytes(enum xe_sasl_rand_side side);

#endif
