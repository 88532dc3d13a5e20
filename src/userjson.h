/* xedge: users as JSON lines, for `xedgectl user export` and `user import`.
 *
 * One JSON object a line:
 *   {"jid": "alice@example.org", "created": 1700000000, "modified": 1700000000,
 *    "disabled": false, "pin": "", "expires": 0,
 *    "scram": {"SCRAM-SHA-256": {"iterations": 4096, "salt": "<base64>",
 *                                "stored_key": "<base64>", "server_key": "<base64>"},
 *              ...},
 *    "legacy_password": "<base64>"}
 * On import only "jid" is required, with either "scram" (at least one hash)
 * or "password" (plaintext: the secrets are derived, and "legacy": true
 * keeps it for the legacy mechanisms). Unknown keys are errors. */
#ifndef XE_USERJSON_H
#define XE_USERJSON_H

#include <stdbool.h>
#include <stdio.h>

#include "userstore.h"

/* Write the users of DOMAIN (NULL: all) to OUT; legacy: include the
 * plaintext-equivalent of legacy users. 0, or a store error code. */
int xe_userjson_export(struct xe_userstore *store, const char *domain, bool legacy,
                       FILE *out, char **error_r);

struct xe_userjson_stats {
    unsigned long added, replaced, skipped, failed;
};

/* Read JSON lines from IN (name: for messages); each user is added, or
 * replaced when replace is true (else an existing one is skipped). Errors
 * of a line are reported on ERR with its number, and the line is skipped.
 * Returns 0 when the input could be read to its end (see stats->failed),
 * else a store error code. iterations: for "password" records. */
int xe_userjson_import(struct xe_userstore *store, FILE *in, const char *name,
                       bool replace, unsigned iterations, FILE *err,
                       struct xe_userjson_stats *stats);

#endif
