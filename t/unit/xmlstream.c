/* Unit tests of the XML stream parser (src/core/xmlstream.h): events and raw bytes
 * must not depend on how the input is split; stops report the exact byte;
 * restricted XML and the limits are enforced. TAP output. */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xelimits.h"
#include "xmlstream.h"
#include "util.h"
#include "tap.h"

#define HDR                                                                              \
    "<stream:stream xmlns='jabber:client' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' "                 \
    "version='1.0' xml:lang='en'>"

/* a short header, under the 100-byte element limit of the size tests */
#define SHDR                                                                             \
    "<stream:stream xmlns='jabber:client' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams'>"

/* ---- an event recorder ---------------------------------------------------- */

struct rec {
    struct xe_buf log;
    const char *stop_name; /* stop after the element with this local name */
    bool stop_header;      /* stop after the stream header */
    int n_start, n_elem, n_end;
    char last_raw[256]; /* raw bytes of the last element (truncated) */
};

static void
ser_elem(struct xe_buf *b, const struct xe_xml_elem *e)
{
    xe_buf_appendf(b, "<{%s}%s", e->ns, e->name);
    if (e->prefix)
        xe_buf_appendf(b, " prefix=%s", e->prefix);
    for (size_t i = 0; i < e->n_attrs; i++)
        xe_buf_appendf(b, " @%s=\"%s\"", e->attrs[i].name, e->attrs[i].value);
    xe_buf_appendf(b, ">[%s]", xe_xml_text(e));
    for (const struct xe_xml_elem *c = e->first_child; c; c = c->next) {
        if (c->parent != e)
            xe_buf_append_str(b, "(BAD-PARENT)");
        ser_elem(b, c);
    }
    xe_buf_append_str(b, "</>");
}

static int
on_start(void *ctx, const struct xe_xml_elem *header, const char *default_ns)
{
    struct rec *r = ctx;

    r->n_start++;
    xe_buf_append_str(&r->log, "S ");
    ser_elem(&r->log, header);
    xe_buf_appendf(&r->log, " dns=%s\n", default_ns ? default_ns : "(null)");
    return r->stop_header ? XE_XS_STOP : XE_XS_CONTINUE;
}

static int
on_elem(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t raw_len)
{
    struct rec *r = ctx;

    r->n_elem++;
    xe_buf_append_str(&r->log, "E ");
    ser_elem(&r->log, e);
    xe_buf_append_str(&r->log, " raw=");
    xe_buf_append(&r->log, raw, raw_len);
    xe_buf_append_str(&r->log, "\n");
    snprintf(r->last_raw, sizeof(r->last_raw), "%.*s", (int)raw_len, (const char *)raw);
    if (r->stop_name && strcmp(e->name, r->stop_name) == 0)
        return XE_XS_STOP;
    return XE_XS_CONTINUE;
}

static int
on_end(void *ctx)
{
    struct rec *r = ctx;

    r->n_end++;
    xe_buf_append_str(&r->log, "END\n");
    return XE_XS_CONTINUE;
}

static const struct xe_xmlstream_cb cbs = {on_start, on_elem, on_end};
static const struct xe_xmlstream_limits def_lim = {16384, 8, 16};

/* ---- the driver ------------------------------------------------------------ */

enum { WHOLE = 0, BYTES = 1 }; /* >= 2: random chunks, seeded by the mode */

static unsigned rnd_state;
static unsigned
rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) & 0x7fff;
}

/* Feed doc in chunks; after a stop, reset and continue at the reported byte.
 * The log gets the events, "STOP@<absolute offset>" and "ERR <condition>". */
static char *
drive_lim(const struct xe_xmlstream_limits *lim, const char *doc, size_t len, int mode,
          const char *stop_name, bool stop_header)
{
    struct rec r;
    struct xe_xmlstream *xs;
    size_t pos = 0;
    char *out;

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    r.stop_name = stop_name;
    r.stop_header = stop_header;
    rnd_state = (unsigned)mode * 7919u;
    xs = xe_xmlstream_new(lim, &cbs, &r);
    while (xs && pos < len) {
        size_t n, c = (size_t)-1;
        int st;

        if (mode == WHOLE)
            n = len - pos;
        else if (mode == BYTES)
            n = 1;
        else
            n = 1 + rnd() % 97;
        if (n > len - pos)
            n = len - pos;
        st = xe_xmlstream_feed(xs, doc + pos, n, &c);
        if (st == XE_XS_OK) {
            if (c != n)
                xe_buf_appendf(&r.log, "BAD-CONSUMED %zu/%zu\n", c, n);
            pos += n;
        } else if (st == XE_XS_STOPPED) {
            if (c > n) {
                xe_buf_appendf(&r.log, "BAD-CONSUMED %zu/%zu\n", c, n);
                break;
            }
            pos += c;
            xe_buf_appendf(&r.log, "STOP@%zu\n", pos);
            xe_xmlstream_reset(xs);
        } else if (st == XE_XS_ERROR) {
            xe_buf_appendf(&r.log, "ERR %s\n", xe_xmlstream_condition(xs));
            break;
        } else {
            xe_buf_appendf(&r.log, "BAD-STATUS %d\n", st);
            break;
        }
    }
    xe_xmlstream_free(&xs);
    if (xs != NULL)
        xe_buf_append_str(&r.log, "NOT-FREED\n");
    xe_buf_append(&r.log, "", 1);
    out = xe_strdup((const char *)r.log.data);
    xe_buf_free(&r.log);
    return out;
}

/* The log for the whole document, checked to be the same byte by byte and for
 * several random splits. Caller frees. */
static char *
same_all_ways_lim(const struct xe_xmlstream_limits *lim, const char *doc, size_t len,
                  const char *stop_name, const char *what)
{
    char *whole = drive_lim(lim, doc, len, WHOLE, stop_name, false);
    char *bytes = drive_lim(lim, doc, len, BYTES, stop_name, false);
    bool same = true;

    ok(strcmp(bytes, whole) == 0, "%s: byte by byte == whole", what);
    if (strcmp(bytes, whole) != 0)
        printf("# got  %.600s\n# want %.600s\n", bytes, whole);
    for (int seed = 2; seed < 22; seed++) {
        char *part = drive_lim(lim, doc, len, seed, stop_name, false);
        if (strcmp(part, whole) != 0) {
            if (same)
                printf("# seed %d:\n# got  %.600s\n# want %.600s\n", seed, part, whole);
            same = false;
        }
        free(part);
    }
    ok(same, "%s: 20 random splits == whole", what);
    free(bytes);
    return whole;
}

static char *
same_all_ways(const char *doc, const char *stop_name, const char *what)
{
    return same_all_ways_lim(&def_lim, doc, strlen(doc), stop_name, what);
}

static bool
contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_events(void)
{
    const char *doc =
        "<?xml version='1.0'?>" HDR
        "\n  <message to='bob@example.test' type='chat' id='m1'>"
        "<body>hi &amp; &lt;bye&gt; &#x263A;</body>"
        "<x xmlns='urn:x' a='1'><y b=\"2\">t</y>pre<z/>post</x></message>\r\n\t "
        "<iq type='get' id='i1'><p:q xmlns:p='urn:p' p:attr='v'/></iq>"
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNl</auth>"
        "</stream:stream>";
    char *log = same_all_ways(doc, NULL, "events");
    const char *want =
        "S <{http://etherx.jabber.org/streams}stream prefix=stream @to=\"example.test\" "
        "@version=\"1.0\" @{http://www.w3.org/XML/1998/namespace}lang=\"en\">[]</> "
        "dns=jabber:client\n"
        "E <{jabber:client}message @to=\"bob@example.test\" @type=\"chat\" @id=\"m1\">[]"
        "<{jabber:client}body>[hi & <bye> \xe2\x98\xba]</>"
        "<{urn:x}x @a=\"1\">[prepost]<{urn:x}y @b=\"2\">[t]</><{urn:x}z>[]</></></> "
        "raw=<message to='bob@example.test' type='chat' id='m1'>"
        "<body>hi &amp; &lt;bye&gt; &#x263A;</body>"
        "<x xmlns='urn:x' a='1'><y b=\"2\">t</y>pre<z/>post</x></message>\n"
        "E <{jabber:client}iq @type=\"get\" @id=\"i1\">[]"
        "<{urn:p}q prefix=p @{urn:p}attr=\"v\">[]</></> "
        "raw=<iq type='get' id='i1'><p:q xmlns:p='urn:p' p:attr='v'/></iq>\n"
        "E <{urn:ietf:params:xml:ns:xmpp-sasl}auth @mechanism=\"PLAIN\">[AGFsaWNl]</> "
        "raw=<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
        "mechanism='PLAIN'>AGFsaWNl</auth>\n"
        "END\n"
        "STOP@";
    ok(strncmp(log, want, strlen(want)) == 0, "events: header, trees, raw bytes, end");
    if (strncmp(log, want, strlen(want)) != 0)
        printf("# got:\n%s# want:\n%s\n", log, want);
    {
        char buf[64];
        snprintf(buf, sizeof(buf), "STOP@%zu\n", strlen(doc));
        ok(contains(log, buf), "stream end stops right after </stream:stream>");
    }
    free(log);
}

static void
test_accessors(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c;
    const char *doc = HDR "<iq id='a'><query xmlns='jabber:iq:roster'>"
                          "<item jid='x@y'/></query></iq>";

    /* accessors on a tree built by hand through the parser: use a callback
     * that records; then check the helpers on a small stream directly */
    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    is_int(xe_xmlstream_feed(xs, doc, strlen(doc), &c), XE_XS_OK, "accessors: fed");
    is_int(c, strlen(doc), "accessors: all consumed");
    is_int(r.n_start, 1, "accessors: one header");
    is_int(r.n_elem, 1, "accessors: one element");
    is_str(r.last_raw,
           "<iq id='a'><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>",
           "accessors: raw bytes");
    xe_xmlstream_free(&xs);
    ok(xs == NULL, "free clears the pointer");
    xe_xmlstream_free(&xs); /* twice is harmless */
    xe_buf_free(&r.log);
}

/* helpers on a tree: captured from a callback */
static int helper_checks;
static int
helper_elem(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    const struct xe_xml_elem *q;

    (void)ctx;
    (void)raw;
    (void)len;
    is_str(xe_xml_attr(e, "id"), "a", "xe_xml_attr finds id");
    ok(xe_xml_attr(e, "nope") == NULL, "xe_xml_attr: missing is NULL");
    ok(xe_xml_is(e, XE_NS_CLIENT, "iq"), "xe_xml_is(jabber:client, iq)");
    ok(xe_xml_is(e, NULL, "iq"), "xe_xml_is(NULL ns, iq)");
    ok(!xe_xml_is(e, "urn:other", "iq"), "xe_xml_is: other ns is false");
    ok(!xe_xml_is(e, XE_NS_CLIENT, "message"), "xe_xml_is: other name is false");
    q = xe_xml_child(e, "jabber:iq:roster", "query");
    ok(q != NULL, "xe_xml_child finds query");
    ok(xe_xml_child(e, "urn:other", "query") == NULL, "xe_xml_child: ns must match");
    ok(q && xe_xml_child(q, NULL, "item") != NULL, "xe_xml_child(NULL ns)");
    is_str(q ? xe_xml_text(q) : NULL, "", "xe_xml_text: no text is empty string");
    is_str(q ? xe_xml_attr(xe_xml_child(q, NULL, "item"), "jid") : NULL, "x@y",
           "grandchild attribute");
    is_str(xe_xml_text(xe_xml_child(e, NULL, "t")), "a\xc3\xa9<>&'\"", "text unescaped");
    helper_checks++;
    return XE_XS_CONTINUE;
}

static void
test_helpers(void)
{
    struct xe_xmlstream_cb cb = {on_start, helper_elem, on_end};
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c;
    const char *doc = HDR "<iq id='a'><query xmlns='jabber:iq:roster'>"
                          "<item jid='x@y'/></query><t>a\xc3\xa9&lt;&gt;&amp;&apos;&quot;"
                          "</t></iq>";

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cb, &r);
    is_int(xe_xmlstream_feed(xs, doc, strlen(doc), &c), XE_XS_OK, "helpers: fed");
    is_int(helper_checks, 1, "helpers: element callback ran");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);
}

static void
test_no_default_ns(void)
{
    char *log = same_all_ways("<stream:stream xmlns:stream='http://etherx.jabber.org/"
                              "streams' to='x'><a xmlns='urn:a'/>",
                              NULL, "no default ns");
    ok(contains(log, " dns=(null)\n"), "header without default namespace: NULL");
    ok(contains(log, "E <{urn:a}a>[]</> raw=<a xmlns='urn:a'/>\n"), "element parsed");
    free(log);
}

static void
test_stop_starttls(void)
{
    const char *hdr2 = "<stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams' to='b.test' "
                       "version='1.0'>";
    const char *st = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    struct xe_buf doc;
    char *log, want[128];
    size_t after_st;

    /* a STARTTLS with an injected element behind it in the same packet */
    xe_buf_init(&doc, 0);
    xe_buf_append_str(&doc, HDR " ");
    xe_buf_append_str(&doc, st);
    after_st = doc.len;
    xe_buf_append_str(&doc, "<evil/>");
    xe_buf_append(&doc, "", 1);
    log = same_all_ways((const char *)doc.data, "starttls", "stop after starttls");
    snprintf(want, sizeof(want), "STOP@%zu\n", after_st);
    ok(contains(log, want), "stop: consumed ends right after the starttls '/>'");
    ok(contains(log, "E <{urn:ietf:params:xml:ns:xmpp-tls}starttls>[]</> raw=<starttls "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nSTOP@"),
       "stop: starttls element delivered with its raw bytes, then the stop");
    /* after the reset, "<evil/>" is the start of a fresh stream: not a header
     * of a stream, so it is the (empty) root element, never a stanza */
    ok(!contains(log, "E <{}evil>") && !contains(log, "E <{jabber:client}evil>"),
       "stop: bytes after the stop are not delivered as a stanza of the old stream");
    free(log);

    /* the whole chunk in one go: exact consumed value */
    {
        struct rec r;
        struct xe_xmlstream *xs;
        size_t c = 12345;
        const char *d = (const char *)doc.data;
        size_t len = strlen(d);

        memset(&r, 0, sizeof(r));
        xe_buf_init(&r.log, 0);
        r.stop_name = "starttls";
        xs = xe_xmlstream_new(&def_lim, &cbs, &r);
        is_int(xe_xmlstream_feed(xs, d, len, &c), XE_XS_STOPPED, "stop: feed -> STOPPED");
        is_int(c, after_st, "stop: *consumed_r is the end of <starttls/>");
        is_int(r.n_elem, 1, "stop: nothing after the stopping element was delivered");
        is_str(d + c, "<evil/>", "stop: the rest is exactly the injected bytes");
        xe_xmlstream_free(&xs);
        xe_buf_free(&r.log);
    }
    xe_buf_free(&doc);

    /* restart: a new header right after the stop parses as a fresh stream */
    xe_buf_init(&doc, 0);
    xe_buf_append_str(&doc, HDR);
    xe_buf_append_str(&doc, st);
    after_st = doc.len;
    xe_buf_append_str(&doc, hdr2);
    xe_buf_append_str(&doc, "<iq id='x'/></stream:stream>");
    xe_buf_append(&doc, "", 1);
    log = same_all_ways((const char *)doc.data, "starttls", "restart");
    {
        struct xe_buf w;
        xe_buf_init(&w, 0);
        xe_buf_appendf(
            &w,
            "STOP@%zu\n"
            "S <{http://etherx.jabber.org/streams}stream prefix=stream @to=\"b.test\" "
            "@version=\"1.0\">[]</> dns=jabber:client\n"
            "E <{jabber:client}iq @id=\"x\">[]</> raw=<iq id='x'/>\n"
            "END\n"
            "STOP@%zu\n",
            after_st, doc.len - 1);
        xe_buf_append(&w, "", 1);
        ok(contains(log, (const char *)w.data),
           "restart: second header, element and end after the reset");
        if (!contains(log, (const char *)w.data))
            printf("# got:\n%s# want (suffix):\n%s", log, (const char *)w.data);
        xe_buf_free(&w);
    }
    free(log);
    xe_buf_free(&doc);
}

static void
test_stop_header(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c = 999;
    const char *doc = HDR "<a/>";

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    r.stop_header = true;
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    is_int(xe_xmlstream_feed(xs, doc, strlen(doc), &c), XE_XS_STOPPED,
           "stop in stream_start: STOPPED");
    is_int(c, strlen(HDR), "stop in stream_start: consumed = header length");
    is_int(r.n_elem, 0, "stop in stream_start: no element yet");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);
}

static void
test_reset_midway(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c;
    const char *a = HDR "<message><body>half";
    const char *b = "<stream:stream xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'><c/>";

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    is_int(xe_xmlstream_feed(xs, a, strlen(a), &c), XE_XS_OK, "reset midway: partial");
    xe_xmlstream_reset(xs);
    is_int(xe_xmlstream_feed(xs, b, strlen(b), &c), XE_XS_OK,
           "reset midway: new stream accepted");
    is_int(r.n_start, 2, "reset midway: two headers");
    is_str(r.last_raw, "<c/>", "reset midway: element of the new stream");
    is_int(r.n_elem, 1, "reset midway: half element discarded");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);
}

static void
expect_err(const char *doc, const char *cond, const char *what)
{
    char *log = same_all_ways(doc, NULL, what);
    char want[96];
    const char *e = strstr(log, "ERR ");

    snprintf(want, sizeof(want), "ERR %s\n", cond);
    ok(e != NULL && strcmp(e, want) == 0, "%s -> %s", what, cond);
    if (!(e != NULL && strcmp(e, want) == 0))
        printf("# log:\n%s", log);
    free(log);
}

static void
test_restricted(void)
{
    expect_err("<?xml version='1.0'?><!DOCTYPE stream:stream>" HDR, "restricted-xml",
               "DOCTYPE");
    expect_err("<?xml version='1.0'?>\n"
               "<!DOCTYPE lolz [\n"
               " <!ENTITY lol \"lol\">\n"
               " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
               " <!ENTITY lol2 "
               "\"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
               "]>\n" HDR "<message><body>&lol2;</body></message>",
               "restricted-xml", "billion laughs");
    expect_err("<!DOCTYPE x SYSTEM 'http://example.invalid/x.dtd'>" HDR, "restricted-xml",
               "external DTD");
    expect_err(HDR "<message><body>&ent;</body></message>", "restricted-xml",
               "undefined entity reference");
    expect_err(HDR "<!-- a comment -->", "restricted-xml", "comment between stanzas");
    expect_err(HDR "<message><!-- c --></message>", "restricted-xml",
               "comment inside a stanza");
    expect_err("<!-- before -->" HDR, "restricted-xml", "comment before the header");
    expect_err(HDR "<?pi data?>", "restricted-xml",
               "processing instruction at top level");
    expect_err(HDR "<message><?pi data?></message>", "restricted-xml",
               "processing instruction in a stanza");
    expect_err("<?pi data?>" HDR, "restricted-xml",
               "processing instruction before header");
}

static void
test_not_well_formed(void)
{
    expect_err(HDR "<message><body></message>", "not-well-formed", "mismatched tags");
    expect_err(HDR "<message><body>\xff\xfe</body></message>", "not-well-formed",
               "bad UTF-8 (0xff)");
    expect_err(HDR "<message><body>\xc3(</body></message>", "not-well-formed",
               "bad UTF-8 (truncated sequence)");
    expect_err(HDR "<message><body>\xed\xa0\x80</body></message>", "not-well-formed",
               "bad UTF-8 (surrogate)");
    expect_err(HDR "<message a='1' a='2'/>", "not-well-formed", "duplicate attribute");
    expect_err(HDR "<message><body>x</body></message></stream:stream2>",
               "not-well-formed", "mismatched stream end");
    expect_err(HDR "<message a=unquoted/>", "not-well-formed", "unquoted attribute");
    expect_err(HDR "<message>&#0;</message>", "not-well-formed", "character reference 0");
    {
        /* a NUL byte inside a stanza: strlen() would cut it, so by length */
        static const char d[] = HDR "<message><body>a\0b</body></message>";
        char *log = same_all_ways_lim(&def_lim, d, sizeof(d) - 1, NULL, "NUL byte");
        is_str(strstr(log, "ERR "), "ERR not-well-formed\n",
               "NUL byte -> not-well-formed");
        free(log);
    }
    expect_err(HDR "<x:message/>", "invalid-namespace", "unbound prefix");
}

static void
test_whitespace(void)
{
    char *log = same_all_ways(HDR "  \n\t\r\n <a/> \n\n   <b/>    \t \n", NULL,
                              "whitespace between elements");
    ok(!contains(log, "ERR"), "whitespace keepalives are fine");
    ok(contains(log, "raw=<a/>\nE <{jabber:client}b>[]</> raw=<b/>\n"),
       "raw bytes do not include the white space around");
    free(log);
}

static void
test_depth(void)
{
    struct xe_xmlstream_limits lim = {16384, 3, 16};
    const char *okd = HDR "<a><b><c/></b></a>";
    const char *bad = HDR "<a><b><c><d/></c></b></a>";
    char *log;

    log = same_all_ways_lim(&lim, okd, strlen(okd), NULL, "depth 3 of 3");
    ok(!contains(log, "ERR") && contains(log, "raw=<a><b><c/></b></a>\n"),
       "depth == max_depth is accepted");
    free(log);
    log = same_all_ways_lim(&lim, bad, strlen(bad), NULL, "depth 4 of 3");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n", "depth > max_depth -> policy");
    ok(!contains(log, "\nE "), "too deep: no element delivered");
    free(log);
    /* the default limits: 8 levels */
    {
        struct xe_buf d;
        xe_buf_init(&d, 0);
        xe_buf_append_str(&d, HDR);
        for (int i = 0; i < 1000; i++)
            xe_buf_append_str(&d, "<a>");
        xe_buf_append(&d, "", 1);
        log = same_all_ways((const char *)d.data, NULL, "1000 levels");
        is_str(strstr(log, "ERR"), "ERR policy-violation\n", "1000 open tags -> policy");
        free(log);
        xe_buf_free(&d);
    }
}

static void
test_attrs(void)
{
    struct xe_xmlstream_limits lim = {16384, 8, 3};
    const char *okd = HDR "<a x='1' y='2' z='3'/>";
    const char *bad = HDR "<a x='1' y='2' z='3' w='4'/>";
    const char *badchild = HDR "<a><b x='1' y='2' z='3' w='4'/></a>";
    const char *badhdr = "<stream:stream xmlns='jabber:client' "
                         "xmlns:stream='http://etherx.jabber.org/streams' a='1' b='2' "
                         "c='3' d='4'>";
    char *log;

    log = same_all_ways_lim(&lim, okd, strlen(okd), NULL, "3 attrs of 3");
    ok(!contains(log, "ERR") &&
           contains(log, "@z=\"3\">[]</> raw=<a x='1' y='2' z='3'/>"),
       "attrs == max_attrs is accepted (xmlns declarations are not counted)");
    free(log);
    log = same_all_ways_lim(&lim, bad, strlen(bad), NULL, "4 attrs of 3");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n", "attrs > max_attrs -> policy");
    free(log);
    log = same_all_ways_lim(&lim, badchild, strlen(badchild), NULL, "4 attrs on a child");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n", "child attrs > max -> policy");
    free(log);
    log = same_all_ways_lim(&lim, badhdr, strlen(badhdr), NULL, "4 attrs on the header");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n", "header attrs > max -> policy");
    free(log);
}

static void
test_size(void)
{
    struct xe_xmlstream_limits lim = {100, 8, 16};
    struct xe_buf d;
    char *log, want[200];

    /* exactly 100 bytes: "<a>" + 93 x + "</a>" ... 3 + 93 + 4 = 100 */
    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, SHDR "<a>");
    for (int i = 0; i < 93; i++)
        xe_buf_append_str(&d, "x");
    xe_buf_append_str(&d, "</a><b/>");
    xe_buf_append(&d, "", 1);
    log = same_all_ways_lim(&lim, (const char *)d.data, d.len - 1, NULL, "100 of 100");
    ok(!contains(log, "ERR") && contains(log, "raw=<b/>"),
       "element of exactly max_element_bytes is accepted");
    free(log);
    xe_buf_free(&d);

    /* 101 bytes */
    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, SHDR "<a>");
    for (int i = 0; i < 94; i++)
        xe_buf_append_str(&d, "x");
    xe_buf_append_str(&d, "</a><b/>");
    xe_buf_append(&d, "", 1);
    log = same_all_ways_lim(&lim, (const char *)d.data, d.len - 1, NULL, "101 of 100");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n", "101 bytes -> policy-violation");
    ok(!contains(log, "\nE "), "oversized element not delivered");
    free(log);
    xe_buf_free(&d);

    /* 1 MiB of text in one stanza, never closed, and closed */
    for (int closed = 0; closed < 2; closed++) {
        xe_buf_init(&d, 0);
        xe_buf_append_str(&d, SHDR "<message><body>");
        for (int i = 0; i < 1024 * 1024 / 8; i++)
            xe_buf_append_str(&d, "abcdefgh");
        if (closed)
            xe_buf_append_str(&d, "</body></message>");
        xe_buf_append(&d, "", 1);
        snprintf(want, sizeof(want), "1 MiB stanza (%s), limit 16 KiB",
                 closed ? "closed" : "open");
        log = same_all_ways((const char *)d.data, NULL, want);
        is_str(strstr(log, "ERR"), "ERR policy-violation\n", "%s -> policy-violation",
               want);
        free(log);
        xe_buf_free(&d);
    }

    /* an endless start tag (no element event ever fires) */
    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, SHDR "<message a='");
    for (int i = 0; i < 200; i++)
        xe_buf_append_str(&d, "y");
    xe_buf_append(&d, "", 1);
    log = same_all_ways_lim(&lim, (const char *)d.data, d.len - 1, NULL,
                            "endless start tag");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n",
           "endless start tag -> policy-violation");
    free(log);
    xe_buf_free(&d);

    /* many small elements, each under the limit, add up to far more: fine */
    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, SHDR);
    for (int i = 0; i < 2000; i++)
        xe_buf_appendf(&d, "<m id='%d'>%s</m>", i, "0123456789012345678901234567890");
    xe_buf_append(&d, "", 1);
    {
        char *w = drive_lim(&lim, (const char *)d.data, d.len - 1, WHOLE, NULL, false);
        char *b = drive_lim(&lim, (const char *)d.data, d.len - 1, BYTES, NULL, false);
        ok(!contains(w, "ERR") && contains(w, "<m id='1999'>"),
           "many small elements in one chunk are fine");
        is_str(b, w, "many small elements byte by byte == whole");
        free(w);
        free(b);
    }
    xe_buf_free(&d);
}

/* The header is bounded too (xelimits.h: XE_MAX_HEADER_BYTES, and at most one
 * element's worth), whether it arrives whole or in pieces. */
static void
test_header_size(void)
{
    struct xe_buf d;
    char *log;

    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, "<stream:stream xmlns='jabber:client' "
                          "xmlns:stream='http://etherx.jabber.org/streams' to='");
    for (int i = 0; i < 20000; i++)
        xe_buf_append_str(&d, "h");
    xe_buf_append_str(&d, "'><a/>");
    xe_buf_append(&d, "", 1);
    log = same_all_ways((const char *)d.data, NULL, "20 KB header, 16 KiB limit");
    is_str(strstr(log, "ERR"), "ERR policy-violation\n",
           "20 KB header -> policy-violation (also when sent in one chunk)");
    free(log);
    xe_buf_free(&d);
}

/* A limit hit on an empty top-level element (<a .../>): expat still calls the
 * end handler for it; that must not look like the end of the stream. */
static void
test_empty_elem_limits(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    struct xe_buf d;
    size_t c = 0;
    int st;

    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, HDR "<presence");
    for (int i = 0; i < 17; i++)
        xe_buf_appendf(&d, " a%d='%d'", i, i);
    xe_buf_append_str(&d, "/>");
    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    st = xe_xmlstream_feed(xs, d.data, d.len, &c);
    is_int(st, XE_XS_ERROR, "empty top-level element with 17 attributes: ERROR");
    is_str(st == XE_XS_ERROR ? xe_xmlstream_condition(xs) : "(not an error)",
           "policy-violation", "17 attributes on <presence/>: policy-violation");
    is_int(r.n_end, 0, "too many attributes on <presence/> is not a stream end");
    is_int(r.n_elem, 0, "too many attributes on <presence/>: no element delivered");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);
    xe_buf_free(&d);
}

static void
test_errors_sticky(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c = 7;
    const char *bad = HDR "<a></b>";

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    is_int(xe_xmlstream_feed(xs, bad, strlen(bad), &c), XE_XS_ERROR, "error: ERROR");
    is_str(xe_xmlstream_condition(xs), "not-well-formed", "error: condition");
    ok(xe_xmlstream_error_text(xs) != NULL && *xe_xmlstream_error_text(xs),
       "error: a text is given");
    is_int(xe_xmlstream_feed(xs, "<c/>", 4, &c), XE_XS_ERROR, "error is sticky");
    is_int(c, 0, "error: nothing consumed afterwards");
    xe_xmlstream_reset(xs);
    is_int(xe_xmlstream_feed(xs, HDR "<c/>", strlen(HDR "<c/>"), &c), XE_XS_OK,
           "after reset the parser works again");
    is_str(r.last_raw, "<c/>", "after reset: element delivered");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);
}

static void
test_stream_end_cb(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c = 0;
    const char *doc = HDR "<a/></stream:stream>trailing junk";

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    is_int(xe_xmlstream_feed(xs, doc, strlen(doc), &c), XE_XS_STOPPED,
           "stream end: feed reports STOPPED");
    is_int(c, strlen(HDR "<a/></stream:stream>"),
           "stream end: consumed up to the end tag");
    is_int(r.n_end, 1, "stream end callback called once");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);

    /* no stream end callback: allowed to be NULL */
    {
        struct xe_xmlstream_cb cb = {on_start, on_elem, NULL};
        memset(&r, 0, sizeof(r));
        xe_buf_init(&r.log, 0);
        xs = xe_xmlstream_new(&def_lim, &cb, &r);
        is_int(xe_xmlstream_feed(xs, doc, strlen(doc), &c), XE_XS_STOPPED,
               "stream end without callback: STOPPED");
        xe_xmlstream_free(&xs);
        xe_buf_free(&r.log);
    }
}

/* Real clients (go-sendxmpp) put a line break between </auth> and the XML
 * declaration of their restarted stream; white space before a stream is
 * skipped, and the bytes count as consumed. */
static void
test_space_before_restart(void)
{
    const char *st = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    struct xe_buf doc;
    char *log;

    xe_buf_init(&doc, 0);
    xe_buf_append_str(&doc, "\r\n " HDR);
    xe_buf_append_str(&doc, st);
    xe_buf_append_str(&doc,
                      "\n \t<?xml version='1.0'?>" HDR "<iq id='y'/></stream:stream>");
    xe_buf_append(&doc, "", 1);
    log =
        same_all_ways((const char *)doc.data, "starttls", "white space around a restart");
    ok(contains(log, "E <{jabber:client}iq @id=\"y\">[]</> raw=<iq id='y'/>\nEND\n"),
       "white space, then <?xml?> and a header after the restart: a fresh stream");
    ok(!contains(log, "ERR"), "no error for the leading white space");
    free(log);
    xe_buf_free(&doc);
}

/* Found by the fuzzers: an empty <stream:stream/> whose start stopped the
 * parser had its end reported too (c2s then closed a stream it had not
 * opened); and expat followed a UTF-16 byte order mark although XMPP is
 * UTF-8 only. */
static void
test_fuzz_findings(void)
{
    struct rec r;
    struct xe_xmlstream *xs;
    const char *d = "<stream:stream xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams' to='a.test' "
                    "version='1.0'/>";
    static const unsigned char utf16[] = {0xff, 0xfe, '<', 0, 'a', 0, '/', 0, '>', 0};
    size_t c = 0;
    int st;

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    r.stop_header = true;
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    st = xe_xmlstream_feed(xs, d, strlen(d), &c);
    is_int(st, XE_XS_STOPPED, "an empty header that stops the parser: STOPPED");
    is_int(r.n_end, 0, "... and no stream end is reported after the stop");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);

    memset(&r, 0, sizeof(r));
    xe_buf_init(&r.log, 0);
    xs = xe_xmlstream_new(&def_lim, &cbs, &r);
    st = xe_xmlstream_feed(xs, utf16, sizeof(utf16), &c);
    is_int(st, XE_XS_ERROR, "a UTF-16 stream is refused");
    is_str(xe_xmlstream_condition(xs), "unsupported-encoding",
           "... with unsupported-encoding");
    xe_xmlstream_free(&xs);
    xe_buf_free(&r.log);
}

/* ---- memory (issue 13) ------------------------------------------------------ */

/* the heap in use, less what the recorder's log holds */
static size_t
heap_in_use(const struct rec *r)
{
    return mallinfo2().uordblks - r->log.cap;
}

/* What a stream holds is what its open element needs: the raw bytes kept for
 * it grow geometrically with it and are given back when it ends; expat's own
 * buffer follows the slices it gets (XE_XML_FEED_SLICE), not the size of a
 * read. Whole, in one chunk, and byte by byte. */
static void
test_memory(void)
{
    const size_t body = 15000;
    struct xe_buf d;
    struct rec r;
    struct xe_xmlstream *xs;
    size_t c, h0, h_open, h_done, max_ratio_bad = 0;
    char *log;

    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, "<message><body>");
    for (size_t i = 0; i < body; i++)
        xe_buf_append(&d, "x", 1);
    for (int mode = WHOLE; mode <= BYTES; mode++) {
        const char *how = mode == WHOLE ? "one chunk" : "byte by byte";

        memset(&r, 0, sizeof(r));
        xe_buf_init(&r.log, 0);
        xs = xe_xmlstream_new(&def_lim, &cbs, &r);
        xe_xmlstream_feed(xs, HDR, strlen(HDR), &c);
        h0 = heap_in_use(&r);
        ok(xe_xmlstream_raw_capacity(xs) <= XE_XML_RAW_KEEP,
           "memory (%s): after the header, %zu bytes kept for raw bytes", how,
           xe_xmlstream_raw_capacity(xs));
        if (mode == WHOLE) {
            is_int(xe_xmlstream_feed(xs, d.data, d.len, &c), XE_XS_OK,
                   "memory (%s): an unfinished 15 KB element", how);
        } else {
            for (size_t i = 0; i < d.len; i++) {
                size_t cap;
                if (xe_xmlstream_feed(xs, d.data + i, 1, &c) != XE_XS_OK)
                    break;
                /* geometric growth: never more than twice what is held */
                cap = xe_xmlstream_raw_capacity(xs);
                if (cap > 2 * (i + 1) && cap > 256)
                    max_ratio_bad++;
            }
            ok(max_ratio_bad == 0,
               "memory (%s): raw capacity at most twice the open element", how);
        }
        ok(xe_xmlstream_raw_capacity(xs) >= d.len &&
               xe_xmlstream_raw_capacity(xs) < 2 * d.len,
           "memory (%s): raw capacity %zu for %zu bytes held", how,
           xe_xmlstream_raw_capacity(xs), d.len);
        h_open = heap_in_use(&r) - h0;
        /* the raw bytes and the element's text, each under 2x, and expat's
         * buffer for a few slices (46 KiB in all when expat got the whole
         * read, and 30 KiB kept after the element ended) */
        ok(h_open < 40 * 1024, "memory (%s): the open element costs %zu bytes of heap",
           how, h_open);
        is_int(xe_xmlstream_feed(xs, "</body></message>", 17, &c), XE_XS_OK,
               "memory (%s): the element ends", how);
        xe_buf_append(&r.log, "", 1);
        r.log.len--;
        ok(r.n_elem == 1 && contains((const char *)r.log.data, "raw=<message><body>xxx"),
           "memory (%s): ... and is delivered", how);
        is_int((int)xe_xmlstream_raw_capacity(xs), 0,
               "memory (%s): its raw bytes' capacity is given back", how);
        h_done = heap_in_use(&r) > h0 ? heap_in_use(&r) - h0 : 0;
        ok(h_done <= 6 * 1024,
           "memory (%s): afterwards the stream holds %zu bytes more than before", how,
           h_done);
        /* small elements after that: no allocation churn, the parser works */
        is_int(xe_xmlstream_feed(xs, "<a/><b>t</b>", 12, &c), XE_XS_OK,
               "memory (%s): small elements after it", how);
        ok(r.n_elem == 3 && xe_xmlstream_raw_capacity(xs) <= XE_XML_RAW_KEEP,
           "memory (%s): ... delivered, %zu bytes kept", how,
           xe_xmlstream_raw_capacity(xs));
        /* a reset with an open large element gives its capacity back too */
        xe_xmlstream_feed(xs, d.data, d.len, &c);
        xe_xmlstream_reset(xs);
        ok(xe_xmlstream_raw_capacity(xs) <= XE_XML_RAW_KEEP,
           "memory (%s): a reset gives a large open element's capacity back", how);
        xe_xmlstream_free(&xs);
        xe_buf_free(&r.log);
    }
    xe_buf_free(&d);

    /* a stop after an element that spans several slices: the exact byte */
    xe_buf_init(&d, 0);
    xe_buf_append_str(&d, SHDR "<message><body>");
    for (int i = 0; i < 5000; i++)
        xe_buf_append(&d, "y", 1);
    xe_buf_append_str(&d, "</body></message><starttls "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><later/>");
    xe_buf_append(&d, "", 1);
    log = same_all_ways_lim(&def_lim, (const char *)d.data, d.len - 1, "starttls",
                            "stop after 5 KB");
    {
        char want[64];
        snprintf(want, sizeof(want), "STOP@%zu\n",
                 (size_t)(strstr((const char *)d.data, "<later/>") - (char *)d.data));
        ok(contains(log, want),
           "stop after 5 KB: consumed ends right after <starttls/> (%s)", want);
    }
    free(log);
    xe_buf_free(&d);

    /* the element limit at its edge, sent in one chunk of many slices */
    for (int over = 0; over < 2; over++) {
        const char *open = "<message><body>", *close = "</body></message>";
        size_t fill = def_lim.max_element_bytes - strlen(open) - strlen(close) + over;
        char what[64];

        xe_buf_init(&d, 0);
        xe_buf_append_str(&d, SHDR);
        xe_buf_append_str(&d, open);
        for (size_t i = 0; i < fill; i++)
            xe_buf_append(&d, "z", 1);
        xe_buf_append_str(&d, close);
        xe_buf_append_str(&d, "<a/>");
        xe_buf_append(&d, "", 1);
        snprintf(what, sizeof(what), "%zu of %zu bytes", def_lim.max_element_bytes + over,
                 def_lim.max_element_bytes);
        log = same_all_ways_lim(&def_lim, (const char *)d.data, d.len - 1, NULL, what);
        if (over)
            is_str(strstr(log, "ERR"), "ERR policy-violation\n",
                   "%s -> policy-violation, nothing delivered%s", what,
                   contains(log, "\nE ") ? " (BUT DELIVERED)" : "");
        else
            ok(!contains(log, "ERR") && contains(log, "raw=<a/>"), "%s is accepted",
               what);
        free(log);
        xe_buf_free(&d);
    }
}

int
main(void)
{
    test_events();
    test_accessors();
    test_helpers();
    test_no_default_ns();
    test_stop_starttls();
    test_stop_header();
    test_reset_midway();
    test_restricted();
    test_not_well_formed();
    test_whitespace();
    test_depth();
    test_attrs();
    test_size();
    test_header_size();
    test_empty_elem_limits();
    test_errors_sticky();
    test_stream_end_cb();
    test_space_before_restart();
    test_fuzz_findings();
    test_memory();
    return tap_done();
}
