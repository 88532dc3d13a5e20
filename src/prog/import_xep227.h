/* xedge: users from XEP-0227 (Portable Import/Export Format) files, as
 * ejabberd's `ejabberdctl export_piefxis` and Prosody's migrator (the
 * xep0227 store) write them. Parsed with expat, record by record: a <user>
 * is stored only when its end tag has been read and everything in it checked.
 *
 * What is read of a <user name=.. [password=..]> of a <host jid=..>:
 *   - password: the plaintext password, from which every SCRAM secret is
 *     derived (and kept for the legacy mechanisms with --legacy-mechs);
 *   - <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>
 *     with <iter-count>, <salt>, <server-key>, <stored-key> (base64): kept as
 *     the SCRAM secret of that hash. ejabberd 23.01 writes the salt and keys
 *     base64-encoded twice (its own store keeps them in base64): a key that
 *     decodes to base64 text of the hash's length is that, and then the
 *     salt is decoded twice too;
 *   - other children (roster, vCard, offline messages, ...) stay with the
 *     legacy server: they are skipped. An element of the XEP-0227
 *     namespaces that has no place there refuses the record.
 * ejabberd's main file includes one file per host (<xi:include href=..>):
 * they are read from the main file's directory (a plain file name only).
 * A DOCTYPE or an entity declaration stops the file (no entity is ever
 * expanded: the "billion laughs" document is refused at its DOCTYPE). */
#ifndef XE_IMPORT_XEP227_H
#define XE_IMPORT_XEP227_H

#include <stdio.h>

#include "import.h"

/* Bytes per read (default 64 KiB); tests feed files byte by byte. */
extern size_t xe_import_xep227_chunk;

/* Read IN (PATH: its path, for the included files; NULL for stdin; NAME
 * for messages). 0 read to its end (refused records are counted in the
 * sink), 1 the file is broken (reported; the records before the break are
 * imported), or a store error code (negative). */
int xe_import_xep227(struct xe_import_sink *sink, FILE *in, const char *path,
                     const char *name);

#endif
