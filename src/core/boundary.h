/* xedge: where the backend's stream is between two stanzas (sans-IO).
 *
 * After authentication the backend's bytes are spliced to the client
 * unparsed. To put a stanza of our own into that stream (an answer to an
 * in-band registration request) it must land between two of the backend's
 * stanzas, never inside one. The backend is a trusted, well-formed XML
 * writer, so a depth counter over '<', '</', '/>' and quoted attribute values
 * is enough: it starts at depth 1 (inside <stream:stream>) at the splice
 * point, where the backend has just finished its features. CDATA sections are
 * followed (their '<' and '>' are text); comments, which XMPP forbids and
 * every server refuses, are not. The client's side is tracked too (its
 * stanza size limit): there nothing is trusted, but a wrong count only ever
 * ends a stream the backend refuses anyway. */
#ifndef XE_BOUNDARY_H
#define XE_BOUNDARY_H

#include <stdbool.h>
#include <stddef.h>

struct xe_boundary {
    unsigned depth; /* 1: inside the stream, between stanzas; 0: the stream ended */
    int state;
    char quote;
    unsigned char match; /* progress through "<![CDATA[" or "]]>" */
    size_t stanza;       /* bytes of the stanza in progress (0 between stanzas) */
};

void xe_boundary_init(struct xe_boundary *b, unsigned depth);
/* Scan up to len bytes. With stop, the scan ends right after the first byte
 * that leaves the stream between two stanzas. Returns the bytes scanned. */
size_t xe_boundary_scan(struct xe_boundary *b, const void *data, size_t len, bool stop);
/* Between two stanzas now: a stanza may be put in here. (b->stanza: the
 * bytes of the stanza in progress so far, for a size limit.) */
bool xe_boundary_between(const struct xe_boundary *b);

#endif
