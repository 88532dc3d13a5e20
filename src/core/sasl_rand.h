/* xedge: Cyrus SASL's server mechanisms that draw nonces from the
 * connection's random pool (SCRAM, DIGEST-MD5, CRAM-MD5), registered by
 * xedge with OpenSSL's DRBG in place of the pool. See sasl_rand.c. */
#ifndef XE_SASL_RAND_H
#define XE_SASL_RAND_H

#include <stdbool.h>
#include <stdint.h>

#include <sasl/sasl.h>

/* The SASL_CB_VERIFYFILE callback for sasl_server_init: keeps Cyrus from
 * loading the plugins xe_sasl_rand_register loads itself (their paths are
 * noted). Every other file: SASL_OK. */
int xe_sasl_rand_verifyfile(void *context, const char *file, sasl_verify_type_t type);
/* After sasl_server_init: loads the noted plugins and registers their
 * server mechanisms, wrapped. A plugin that fails to load is logged and
 * left out, as Cyrus's own loader leaves it out. */
void xe_sasl_rand_register(void);
/* After sasl_server_done: unloads them. */
void xe_sasl_rand_done(void);
/* How many server mechanisms are registered wrapped, and how many random
 * bytes the wrapped connections drew from OpenSSL (for tests). */
unsigned xe_sasl_rand_mechs(void);
uint64_t xe_sasl_rand_bytes(void);

#endif
