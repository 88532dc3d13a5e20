/* xedge: users from jabberd2's authreg table, as Debian's jabberd2 keeps
 * it: the "sqlite" authreg module (c2s.xml <authreg><module>sqlite</module>,
 * /var/lib/jabberd2/sqlite.db, table authreg(username, realm, password)),
 * read with libsqlite3, read-only.
 *
 * Passwords stored as plaintext (<password_type><plaintext/>, Debian's
 * default) are carried over: every SCRAM secret is derived from them.
 * crypt(3) hashes (<crypt/>: DES, MD5-, SHA-256-, SHA-512-crypt, bcrypt)
 * cannot be: SCRAM needs the password or its PBKDF2 keys, and a crypt hash
 * is neither; such rows are refused one by one, with the advice to set a new
 * password (xedgectl user add). */
#ifndef XE_IMPORT_JABBERD2_H
#define XE_IMPORT_JABBERD2_H

#include "import.h"

/* Read the authreg table of the SQLite database PATH. DOMAIN: for rows
 * with an empty realm (NULL: such rows are refused). 0, 1 (the database
 * cannot be read: reported), or a store error code (negative). */
int xe_import_jabberd2(struct xe_import_sink *sink, const char *path, const char *domain);

#endif
