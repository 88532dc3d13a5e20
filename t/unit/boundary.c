/* Unit tests for src/core/boundary.c: the fast scan (memchr over character data,
 * attribute values and end tags) agrees with the byte-by-byte one at every
 * split of real backend output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boundary.h"
#include "tap.h"

/* the state after DATA, scanned byte by byte (stop mode never skips) */
static struct xe_boundary
slow(const char *data, size_t len)
{
    struct xe_boundary b;
    size_t i = 0;

    xe_boundary_init(&b, 1);
    while (i < len)
        i += xe_boundary_scan(&b, data + i, len - i, true);
    return b;
}

static int
same(const struct xe_boundary *a, const struct xe_boundary *b)
{
    return a->depth == b->depth && a->state == b->state &&
           (a->state != b->state || a->quote == b->quote);
}

int
main(void)
{
    static const char *const docs[] = {
        "<message from='a@b/c' to=\"d@e\" type='chat'><body>x &lt; y > z</body></message>"
        "<presence/><iq type='result' id='a>b'/>",
        "<message><body>'quotes' \"here\" &amp; /> not a tag</body><x xmlns='j:x'><y "
        "a='/>' b=\"'\"/></x></message>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A "
        "&apos;B&apos;'><group>G</group></item></query></iq></stream:stream>",
        "<message><body><![CDATA[ x > y </body></message> ]] ]> ]]]></body></message>"
        "<presence/>",
    };
    size_t failures = 0, checks = 0;

    for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
        const char *doc = docs[d];
        size_t len = strlen(doc);
        for (size_t split = 0; split <= len; split++) {
            struct xe_boundary fast, ref = slow(doc, split);
            xe_boundary_init(&fast, 1);
            xe_boundary_scan(&fast, doc, split, false);
            checks++;
            if (!same(&fast, &ref))
                failures++;
            /* and the rest, in a second call */
            xe_boundary_scan(&fast, doc + split, len - split, false);
            ref = slow(doc, len);
            checks++;
            if (!same(&fast, &ref))
                failures++;
        }
    }
    ok(failures == 0, "fast and byte-by-byte scans agree at every split (%zu checks)",
       checks);
    {
        struct xe_boundary b;
        const char *s = "<message><body>hi</body></message>";
        xe_boundary_init(&b, 1);
        xe_boundary_scan(&b, s, strlen(s), false);
        ok(xe_boundary_between(&b), "after a whole stanza: between stanzas");
        xe_boundary_scan(&b, "<message><body>h", 16, false);
        ok(!xe_boundary_between(&b) && b.depth == 3, "inside one: not (depth %u)",
           b.depth);
        xe_boundary_scan(&b, "</stream:stream>", 16, false);
        ok(b.depth == 2, "an end tag goes one level up");
    }
    {
        /* a CDATA section's '<' and '>' are text: an end tag inside one
         * does not end the stanza (nor stop the size count) */
        struct xe_boundary b;
        const char *s = "<message><body><![CDATA[ </body></message> <x>";
        xe_boundary_init(&b, 1);
        xe_boundary_scan(&b, s, strlen(s), false);
        ok(!xe_boundary_between(&b) && b.stanza == strlen(s),
           "an end tag inside CDATA is text (depth %u, stanza %zu)", b.depth, b.stanza);
        xe_boundary_scan(&b, "]]></body></message>", 20, false);
        ok(xe_boundary_between(&b), "... the stanza ends after the section");
    }
    {
        /* the size of the stanza in progress, for the post-auth limit */
        struct xe_boundary b;
        xe_boundary_init(&b, 1);
        xe_boundary_scan(&b, "  <message><body>", 17, false);
        is_int((long long)b.stanza, 15, "stanza bytes: counted from its '<'");
        xe_boundary_scan(&b, "hello", 5, false);
        is_int((long long)b.stanza, 20, "... across calls");
        xe_boundary_scan(&b, "</body></message> \n<iq", 22, false);
        is_int((long long)b.stanza, 3, "... and again from the next stanza's '<'");
        xe_boundary_scan(&b, "/>", 2, false);
        is_int((long long)b.stanza, 0, "between stanzas: 0");
        {
            static const char doc[] = "<message a='1'><body>xyz</body></message>";
            size_t len = sizeof(doc) - 1, bad = 0;
            for (size_t split = 1; split < len; split++) {
                xe_boundary_init(&b, 1);
                xe_boundary_scan(&b, doc, split, false);
                bad += b.stanza != split;
            }
            ok(bad == 0, "inside a stanza, its bytes so far at every split");
        }
    }
    {
        /* 1 MiB of character data: one memchr */
        size_t n = 1 << 20;
        char *big = malloc(n + 40);
        struct xe_boundary b;
        memcpy(big, "<message><body>", 15);
        memset(big + 15, 'x', n);
        memcpy(big + 15 + n, "</body></message>", 17);
        xe_boundary_init(&b, 1);
        is_int((long long)xe_boundary_scan(&b, big, n + 32, false), (long long)(n + 32),
               "a large stanza is scanned whole");
        ok(xe_boundary_between(&b), "... and ends between stanzas");
        free(big);
    }
    return tap_done();
}
