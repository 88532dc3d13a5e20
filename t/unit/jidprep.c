/* Unit tests: the JID's parts through nodeprep and nameprep (jidprep.c) and
 * the bare JID as the user store keys it (xe_jid_normalize). The expected
 * bytes are what Prosody 0.12's util.encodings (ICU) gives for the same
 * input; t/lua-pool.t checks the two agree on a running pair. */
#include <stdint.h>

#include "jidprep.h"
#include "userstore.h"
#include "tap.h"

/* xe_jid_normalize of JID, or NULL when it refuses it */
static const char *
norm(const char *jid)
{
    static char buf[3072];
    snprintf(buf, sizeof(buf), "%s", jid);
    return xe_jid_normalize(buf, sizeof(buf), NULL) == 0 ? buf : NULL;
}

/* The normalisation before nodeprep (ASCII lower case; the same checks), the
 * reference an ASCII JID must still match: its home is a hash of these
 * bytes. */
static const char *
old_norm(const char *jid)
{
    static char buf[3072];
    const char *at = strchr(jid, '@');
    size_t i;

    if (at == NULL || at == jid || at[1] == '\0' || strlen(jid) >= sizeof(buf))
        return NULL;
    for (i = 0; jid + i < at; i++) {
        unsigned char u = (unsigned char)jid[i];
        if (u < 0x20 || u == 0x7f || strchr(" \"&'/:<>@", u) != NULL)
            return NULL;
    }
    for (i = (size_t)(at - jid) + 1; jid[i]; i++) {
        unsigned char u = (unsigned char)jid[i];
        if (u <= 0x20 || u == 0x7f || u == '@' || u == '/')
            return NULL;
    }
    for (i = 0; jid[i]; i++)
        buf[i] = (char)(jid[i] >= 'A' && jid[i] <= 'Z' ? jid[i] - 'A' + 'a' : jid[i]);
    buf[i] = '\0';
    return buf;
}

static void
test_ascii_stable(void)
{
    char in[64], fast[64], prof[64];
    const char *why = NULL;
    uint32_t x = 2463534242u;
    int c, bad = 0, n;

    /* every printable ASCII character: the short path is the profile */
    for (c = 0x01; c < 0x80 && bad == 0; c++) {
        int rf, rp;
        in[0] = 'A';
        in[1] = (char)c;
        in[2] = 'z';
        rf = xe_jidprep_node(in, 3, fast, sizeof(fast), &why);
        rp = xe_jidprep_node_profile(in, 3, prof, sizeof(prof), &why);
        if (rf != rp || (rf == 0 && strcmp(fast, prof) != 0)) {
            bad = c;
            printf("# character 0x%02x: short path %d '%s', profile %d '%s'\n", c, rf,
                   rf == 0 ? fast : "", rp, rp == 0 ? prof : "");
        }
    }
    is_int(bad, 0,
           "ASCII: the short path gives what ICU's nodeprep gives, for each character");

    /* 20000 random ASCII JIDs: the same bytes as before nodeprep (so the
     * same key in the user store and the same home), or refused as before */
    for (n = 0, bad = 0; n < 20000; n++) {
        size_t len, i;
        const char *a, *b;
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        len = 1 + x % 20;
        for (i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            in[i] =
                (char)(x % 8 == 0 ? 0x20 + x % 95 : (x % 2 ? 'A' : 'a') + (x >> 8) % 26);
        }
        snprintf(in + len, sizeof(in) - len, "@Example.TEST");
        a = norm(in);
        b = old_norm(in);
        if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
            if (bad++ < 3)
                printf("# '%s': now %s, before %s\n", in, a ? a : "(refused)",
                       b ? b : "(refused)");
        }
    }
    is_int(bad, 0, "20000 random ASCII JIDs: the bytes (so key and home) are as before");
    is_str(norm("Alice.Smith+x@Example.TEST"), "alice.smith+x@example.test",
           "an ASCII JID is lower-cased");
    ok(norm("o'brien@example.test") == NULL,
       "a quote in a localpart is refused, as before");
}

static void
test_fold(void)
{
    /* German sharp s: case folding (RFC 3454 B.2) makes it "ss" */
    is_str(norm("Straße@example.test"), "strasse@example.test", "German ß folds to ss");
    is_str(norm("STRASSE@example.test"), "strasse@example.test",
           "so STRASSE and Straße are one user");
    /* Turkish dotted capital I: i and a combining dot above (the full
     * folding, not Turkish rules); the dotless i stays itself */
    is_str(norm("\xc4\xb0stanbul@example.test"), "i\xcc\x87stanbul@example.test",
           "Turkish İ folds to i + U+0307");
    is_str(norm("ISTANBUL@example.test"), "istanbul@example.test", "I folds to i");
    is_str(norm("\xc4\xb1stanbul@example.test"), "\xc4\xb1stanbul@example.test",
           "the dotless ı is kept");
    /* Greek: capital and final sigma both fold to σ */
    is_str(
        norm("\xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3@example."
             "test"),
        "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x83@example.test",
        "Greek capitals fold, Σ to σ");
    is_str(
        norm("\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x82@example."
             "test"),
        "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x83@example.test",
        "the final sigma ς folds to σ");
    /* fullwidth letters: NFKC makes them ASCII */
    is_str(
        norm("\xef\xbc\xa1\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa3\xef\xbc\xa5@example.test"),
        "alice@example.test", "fullwidth ＡＬＩＣＥ is alice");
    is_str(norm("\xef\xac\x81@example.test"), "fi@example.test", "the ligature ﬁ is fi");
    is_str(norm("\xe2\x85\xa8@example.test"), "ix@example.test", "the numeral Ⅸ is ix");
    is_str(norm("\xf0\x9f\x98\x80@example.test"), "\xf0\x9f\x98\x80@example.test",
           "an emoji (unassigned in Unicode 3.2, allowed as Prosody does) is kept");
    is_str(norm("alice@B\xc3\x9c"
                "CHER.test"),
           "alice@b\xc3\xbc"
           "cher.test",
           "the domain goes through nameprep");
}

static void
test_refused(void)
{
    const char *why = NULL;
    char buf[64], out[64];

    ok(norm("a\xc2\xa0"
            "b@example.test") == NULL,
       "a no-break space is prohibited (C.1.2)");
    ok(norm("a\xef\xbc\xa0"
            "b@example.test") == NULL,
       "a fullwidth @ becomes @, which nodeprep prohibits");
    ok(norm("a\xd7\x90@example.test") == NULL,
       "Latin and Hebrew mixed fail the bidi rule");
    is_str(norm("\xd7\x90\xd7\x91@example.test"), "\xd7\x90\xd7\x91@example.test",
           "Hebrew alone is fine");
    ok(norm("x\xf3\xa0\x80\x81@example.test") == NULL,
       "a tag character is prohibited (C.9)");
    ok(norm("\xc3\x28@example.test") == NULL, "invalid UTF-8 is refused");
    snprintf(buf, sizeof(buf),
             "a\xef\xbc\xa0"
             "b@example.test");
    ok(xe_jid_normalize(buf, sizeof(buf), &why) != 0 && why != NULL &&
           strstr(why, "prohibit") != NULL,
       "the refusal says why (%s)", why ? why : "");
    /* a prepared JID that does not fit its buffer is refused, not cut */
    snprintf(buf, sizeof(buf), "\xc4\xb0@e.t");
    ok(xe_jid_normalize(buf, strlen(buf) + 1, &why) != 0,
       "İ grows by a byte: refused in a buffer one byte short (%s)", why ? why : "");
    snprintf(buf, sizeof(buf), "\xc4\xb0@e.t");
    is_int(xe_jid_normalize(buf, strlen(buf) + 2, NULL), 0,
           "and accepted in one that fits");
    ok(xe_jidprep_node("", 0, out, sizeof(out), &why) != 0,
       "an empty localpart is refused");
}

/* A domain with A-labels (DNS, TLS's SNI, certificates) prepares as the
 * Unicode form a JID has. */
static void
test_ace(void)
{
    char out[256];
    const char *why = NULL;

    is_int(xe_jidprep_domain_ace("xn--bcher-kva.test", 18, out, sizeof(out), &why), 0,
           "ace: an A-label decodes");
    is_str(out,
           "b\xc3\xbc"
           "cher.test",
           "ace: xn--bcher-kva.test is bücher.test");
    is_int(xe_jidprep_domain_ace("XN--BCHER-KVA.Test", 18, out, sizeof(out), NULL), 0,
           "ace: in capitals too");
    is_str(out,
           "b\xc3\xbc"
           "cher.test",
           "ace: ... the same name");
    is_int(xe_jidprep_domain_ace("B\xc3\x9c"
                                 "CHER.test",
                                 12, out, sizeof(out), NULL),
           0, "ace: a Unicode name without A-labels");
    is_str(out,
           "b\xc3\xbc"
           "cher.test",
           "ace: ... nameprep as before");
    is_int(xe_jidprep_domain_ace("Example.TEST", 12, out, sizeof(out), NULL), 0,
           "ace: ASCII");
    is_str(out, "example.test", "ace: ... lowered");
    ok(xe_jidprep_domain_ace("xn--a-ecp.xn--zz9.test", 22, out, sizeof(out), &why) != 0,
       "ace: an A-label that does not decode is refused (%s)", why ? why : "");
}

int
main(void)
{
    test_ascii_stable();
    test_fold();
    test_refused();
    test_ace();
    return tap_done();
}
