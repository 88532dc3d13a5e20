/* xedge: `xedgectl user import`: users moved in from a legacy server.
 *
 * Three readers feed one sink:
 *   - JSON lines (userjson.c: xedgectl's own export, prosody-export-users);
 *   - XEP-0227 files (import_xep227.c: ejabberd's export_piefxis, Prosody's
 *     migrator with the xep0227 store);
 *   - jabberd2's authreg table (import_jabberd2.c: its SQLite database).
 * The sink does what is the same for all of them: an existing user is kept
 * or replaced, a JID seen twice in one run is refused the second time, a dry
 * run writes nothing, every refused record is reported with where it is
 * (FILE:LINE or the database row) and the rest go on; a progress bar on a
 * terminal, a line every XE_IMPORT_PROGRESS_EVERY records otherwise; a
 * summary at the end. */
#ifndef XE_IMPORT_H
#define XE_IMPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "userstore.h"

/* a plain progress line every this many records when not on a terminal */
#define XE_IMPORT_PROGRESS_EVERY 1000

struct xe_import_sink;

struct xe_import_opts {
    bool replace;        /* replace existing users (default: keep them) */
    bool dry_run;        /* read and check everything, write nothing */
    bool legacy;         /* plaintext passwords are also kept for the legacy
                            mechanisms (DIGEST-MD5, CRAM-MD5) */
    bool progress_tty;   /* draw a progress bar (err is a terminal) */
    unsigned iterations; /* PBKDF2 rounds for secrets derived from a password */
    FILE *err;           /* messages, progress and the summary */
};

struct xe_import_stats {
    unsigned long added, replaced, skipped, failed;
};

struct xe_import_sink *xe_import_sink_new(struct xe_userstore *store,
                                          const struct xe_import_opts *opts);
void xe_import_sink_free(struct xe_import_sink **sink);
const struct xe_import_opts *xe_import_opts(const struct xe_import_sink *sink);
void xe_import_stats(const struct xe_import_sink *sink, struct xe_import_stats *st_r);

/* Store one complete, checked user (jid normalised, at least one SCRAM
 * secret). WHERE names the record in messages. 0 (added, replaced, kept,
 * or refused as a duplicate: counted and reported), or a store error code
 * (negative): the store cannot be written, the import stops. */
int xe_import_put(struct xe_import_sink *sink, const struct xe_user *user,
                  const char *where);

/* Report a refused record ("WHERE: why; not imported") and count it. */
void xe_import_refuse(struct xe_import_sink *sink, const char *where, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));
/* Report something that is not a record's failure (a whole file). */
void xe_import_note(struct xe_import_sink *sink, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Progress: DONE of TOTAL units (bytes or rows; TOTAL 0: unknown). */
void xe_import_progress(struct xe_import_sink *sink, uint64_t done, uint64_t total);

/* The closing line: "import: N added, N replaced, N kept (already there),
 * N failed" (a dry run says so and what it would have done). */
void xe_import_summary(struct xe_import_sink *sink, const char *progname);

/* A user from a plaintext password: every SCRAM secret derived, and the
 * password kept for the legacy mechanisms when opts->legacy. 0, or -1. */
int xe_import_set_password(struct xe_import_sink *sink, struct xe_user *user,
                           const char *password, size_t len);

/* Strict base64 (RFC 4648, padded, no whitespace) of at most OUT_MAX bytes
 * into OUT: 0 and *len_r, or -1. */
int xe_import_b64(const char *in, size_t len, unsigned char *out, size_t out_max,
                  size_t *len_r);

/* What `xedgectl user import` runs: ARGS are its arguments after
 * "import" ([--format F] [--replace] [--dry-run] [--legacy-mechs]
 * [--domain D] [FILE...]). Returns xedgectl's exit status (0 ok, 1 some
 * record failed, 2 usage, 3 store). */
int xe_import_cmd(struct xe_userstore *store, unsigned iterations, int argc, char **argv,
                  const char *progname, struct xe_import_stats *st_r);
/* Only the argument check, before the store is opened: 0 or 2 (usage,
 * reported). */
int xe_import_check_args(int argc, char **argv, const char *progname);

#endif
