/* xedge: stanza boundaries in the backend's stream. See boundary.h. */
#include "boundary.h"

#include <stdint.h>
#include <string.h>

enum {
    S_TEXT,  /* character data */
    S_LT,    /* after '<' */
    S_START, /* inside a start tag */
    S_SLASH, /* '/' inside a start tag: '>' makes it empty */
    S_QUOTE, /* inside an attribute value */
    S_END,   /* inside an end tag */
    S_DECL,  /* <?...?> or <!...> */
    S_BANG,  /* after "<!": maybe "<![CDATA[" (match: how much of it) */
    S_CDATA, /* inside a CDATA section (match: the ']' just seen, up to 2) */
};

static const char cdata_open[] = "[CDATA[";

void
xe_boundary_init(struct xe_boundary *b, unsigned depth)
{
    b->depth = depth;
    b->state = S_TEXT;
    b->quote = 0;
    b->match = 0;
    b->stanza = 0;
}

bool
xe_boundary_between(const struct xe_boundary *b)
{
    return b->state == S_TEXT && b->depth == 1;
}

static void
step(struct xe_boundary *b, char ch)
{
    switch (b->state) {
    case S_TEXT:
        if (ch == '<')
            b->state = S_LT;
        break;
    case S_LT:
        if (ch == '/')
            b->state = S_END;
        else if (ch == '!') {
            b->state = S_BANG;
            b->match = 0;
        } else if (ch == '?')
            b->state = S_DECL;
        else
            b->state = S_START;
        break;
    case S_SLASH:
        if (ch == '>') {
            b->state = S_TEXT; /* an empty element: the depth is unchanged */
            break;
        }
        b->state = S_START;
        /* fall through */
    case S_START:
        if (ch == '\'' || ch == '"') {
            b->quote = ch;
            b->state = S_QUOTE;
        } else if (ch == '/') {
            b->state = S_SLASH;
        } else if (ch == '>') {
            b->depth++;
            b->state = S_TEXT;
        }
        break;
    case S_QUOTE:
        if (ch == b->quote)
            b->state = S_START;
        break;
    case S_END:
        if (ch == '>') {
            if (b->depth > 0)
                b->depth--;
            b->state = S_TEXT;
        }
        break;
    case S_BANG:
        if (ch == cdata_open[b->match]) {
            if (++b->match == sizeof(cdata_open) - 1) {
                b->state = S_CDATA; /* its '<' and '>' are text */
                b->match = 0;
            }
        } else {
            b->state = ch == '>' ? S_TEXT : S_DECL;
        }
        break;
    case S_CDATA:
        if (ch == '>' && b->match == 2)
            b->state = S_TEXT;
        else if (ch == ']')
            b->match = b->match < 2 ? b->match + 1 : 2;
        else
            b->match = 0;
        break;
    case S_DECL:
        if (ch == '>')
            b->state = S_TEXT;
        break;
    }
}

/* The scan itself; *mark_r: the end of the last stretch of the scanned bytes
 * that was between stanzas (SIZE_MAX: none). */
static size_t
scan(struct xe_boundary *b, const char *p, size_t len, bool stop, size_t *mark_r)
{
    size_t i, mark = xe_boundary_between(b) ? 0 : SIZE_MAX;

    *mark_r = mark;
    for (i = 0; i < len; i++) {
        /* Most bytes are character data or attribute values: skip to the one
         * byte that can end them (memchr: many bytes a cycle), so that the
         * tracker costs little beside TLS on every spliced session. */
        if (!stop) {
            const char *q = NULL;
            if (b->state == S_TEXT)
                q = memchr(p + i, '<', len - i);
            else if (b->state == S_QUOTE)
                q = memchr(p + i, b->quote, len - i);
            else if (b->state == S_END || b->state == S_DECL)
                q = memchr(p + i, '>', len - i);
            else
                goto one;
            if (q == NULL) {
                if (xe_boundary_between(b))
                    *mark_r = len;
                return len;
            }
            if (xe_boundary_between(b)) /* the text before '<' is between */
                *mark_r = (size_t)(q - p);
            i = (size_t)(q - p);
        }
    one:
        step(b, p[i]);
        if (xe_boundary_between(b)) {
            *mark_r = i + 1;
            if (stop)
                return i + 1;
        }
    }
    return len;
}

size_t
xe_boundary_scan(struct xe_boundary *b, const void *data, size_t len, bool stop)
{
    size_t mark, n = scan(b, data, len, stop, &mark);

    if (xe_boundary_between(b))
        b->stanza = 0;
    else if (mark != SIZE_MAX)
        b->stanza = n - mark;
    else
        b->stanza += n;
    return n;
}
