/* xedge: every SASL mechanism xedge knows, in one table. The configuration
 * checks names against it and takes its defaults from it, the SASL adapter
 * sizes its offer by it and asks it what a mechanism needs, `xedge -M`
 * prints it (the sandbox and the documentation follow that list). */
#ifndef XE_MECH_H
#define XE_MECH_H

#include <stdbool.h>
#include <stddef.h>

/* what a mechanism is, or needs to be offered */
#define XE_MECH_DEFAULT 0x01 /* in the default list (no sasl.mechanisms) */
#define XE_MECH_PLUS 0x02    /* SCRAM with channel binding: needs a binding */
#define XE_MECH_TLS 0x04     /* offered under TLS only (PLAIN) */
#define XE_MECH_CERT 0x08    /* needs a verified client certificate (EXTERNAL) */
#define XE_MECH_PEER 0x10    /* usable with an s2s peer's pre-shared secret */
#define XE_MECH_LEGACY 0x20  /* needs a user's plaintext-equivalent */
#define XE_MECH_ANON 0x40    /* no account: a temporary JID (RFC 4505) */

struct xe_mech {
    const char *name;  /* as offered and configured (upper case) */
    size_t cyrus_len;  /* Cyrus' name: the first cyrus_len bytes (no -PLUS) */
    unsigned flags;    /* XE_MECH_* */
    const char *about; /* a few words, for `xedge -M` */
};

/* How many there are: the most one offer can hold. */
#define XE_MECH_COUNT 11

/* The table, in the default order of preference (the -PLUS variants first). */
extern const struct xe_mech xe_mechs[XE_MECH_COUNT];

/* NAME is a well-formed SASL mechanism name (RFC 4422 3.1: upper-case
 * letters, digits, '-' and '_', 1 to 20 characters), known or not. */
bool xe_mech_name_ok(const char *name);
/* The entry for NAME (exact, upper case), or NULL. */
const struct xe_mech *xe_mech_find(const char *name);
/* The flag's words, comma-separated, into out (for `xedge -M`). */
void xe_mech_flag_words(unsigned flags, char *out, size_t max);
/* The names of the mechanisms that have every flag in FLAGS, joined by ", "
 * (for error messages). */
void xe_mech_list(unsigned flags, char *out, size_t max);

#endif
