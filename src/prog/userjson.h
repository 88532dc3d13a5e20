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

#include "import.h"
#include "userstore.h"

/* Write the users of DOMAIN (NULL: all) to OUT; legacy: include the
 * plaintext-equivalent of legacy users. 0, or a store error code. */
int xe_userjson_export(struct xe_userstore *store, const char *domain, bool legacy,
                       FILE *out, char **error_r);

/* Read JSON lines from IN (NAME: for messages) into SINK (import.h): every
 * line one user; a bad line is reported with its number and skipped.
 * 0 read to its end, 1 a read error, or a store error code (negative). */
int xe_userjson_import(struct xe_import_sink *sink, FILE *in, const char *name);

#endif
