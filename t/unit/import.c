/* Unit tests: xedgectl user import's XEP-0227 reader and its sink, on a real
 * LMDB store in a temporary directory; every document is fed whole and in
 * pieces down to one byte. */
#define _GNU_SOURCE /* fmemopen, open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "import.h"
#include "import_xep227.h"
#include "tap.h"
#include "userstore.h"
#include "util.h"

static struct xe_userstore *store;
static char *msgs;
static size_t msgs_len;

static void
b64(const unsigned char *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* the <scram-credentials> of SHA-1 secret S, base64 once (Prosody) or twice
 * (ejabberd 23.01) */
static char *
scram_el(const struct xe_scram_secret *s, bool twice)
{
    char salt[256], sk[256], svk[256], t[512];

    b64(s->salt, s->salt_len, salt);
    b64(s->stored_key, s->key_len, sk);
    b64(s->server_key, s->key_len, svk);
    if (twice) {
        b64((unsigned char *)salt, strlen(salt), t);
        strcpy(salt, t);
        b64((unsigned char *)sk, strlen(sk), t);
        strcpy(sk, t);
        b64((unsigned char *)svk, strlen(svk), t);
        strcpy(svk, t);
    }
    return xe_asprintf(
        "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
        "<iter-count>%u</iter-count><salt>%s</salt><server-key>%s</server-key>"
        "<stored-key>%s</stored-key></scram-credentials>",
        s->iterations, salt, svk, sk);
}

/* Import DOC with CHUNK bytes per read; the stats, *r_r the reader's result. */
static struct xe_import_stats
run(const char *doc, size_t chunk, bool replace, int *r_r)
{
    struct xe_import_opts o = {.replace = replace, .iterations = 4096};
    struct xe_import_sink *sink;
    struct xe_import_stats st;
    FILE *in = fmemopen((void *)doc, strlen(doc), "r");

    free(msgs);
    msgs = NULL;
    o.err = open_memstream(&msgs, &msgs_len);
    sink = xe_import_sink_new(store, &o);
    xe_import_xep227_chunk = chunk;
    *r_r = xe_import_xep227(sink, in, NULL, "doc");
    xe_import_stats(sink, &st);
    xe_import_sink_free(&sink);
    fclose(o.err);
    fclose(in);
    return st;
}

static bool
logs_in(const char *jid, const char *pw)
{
    struct xe_user *u = calloc(1, sizeof(*u));
    bool ok = xe_userstore_get(store, jid, u, NULL) == XE_US_OK &&
              xe_user_check_password(u, pw, strlen(pw));

    free(u);
    return ok;
}

static bool
exists(const char *jid)
{
    struct xe_user *u = calloc(1, sizeof(*u));
    bool ok = xe_userstore_get(store, jid, u, NULL) == XE_US_OK;

    free(u);
    return ok;
}

static void
clear(void)
{
    static const char *const all[] = {"p1@example.test",   "e1@example.test",
                                      "pw1@example.test",  "r1@example.test",
                                      "good@example.test", "dup@example.test"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        xe_userstore_del(store, all[i], NULL);
}

int
main(void)
{
    static const size_t chunks[] = {65536, 1, 2, 3, 7, 100};
    char dir[] = "/tmp/xedge-unit-import.XXXXXX", path[64];
    struct xe_user *alice = calloc(1, sizeof(*alice));
    struct xe_import_stats st;
    char *once, *twice, *good, *bad, *cut;
    const char *laughs;
    int r;

    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/users", dir);
    if (xe_userstore_open(path, false, 16, &store, NULL) != XE_US_OK)
        return 1;
    xe_user_set_password(alice, "alice <pw>", 10, 4096);
    once = scram_el(&alice->scram[XE_SCRAM_SHA1], false);
    twice = scram_el(&alice->scram[XE_SCRAM_SHA1], true);

    good = xe_asprintf(
        "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host "
        "jid='Example.Test'>\n"
        "<user name='p1'>%s</user>\n<user name='e1'>%s</user>\n"
        "<user name='pw1' password='alice &lt;pw&gt;'/>\n"
        "<user name='r1'><query xmlns='jabber:iq:roster'><item jid='x@y'><group>g</group>"
        "</item></query>\n%s</user>\n</host>\n</server-data>\n",
        once, twice, once);
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        clear();
        st = run(good, chunks[i], false, &r);
        ok(r == 0 && st.added == 4 && st.failed == 0 && st.skipped == 0,
           "good document, %zu bytes a read: 4 added (r=%d, %lu added, %lu failed)",
           chunks[i], r, st.added, st.failed);
        ok(logs_in("p1@example.test", "alice <pw>") &&
               logs_in("e1@example.test", "alice <pw>") &&
               logs_in("pw1@example.test", "alice <pw>") &&
               logs_in("r1@example.test", "alice <pw>"),
           "... each checks alice's password: SCRAM base64 once (Prosody), twice "
           "(ejabberd), "
           "a password, a user with a roster");
    }
    st = run(good, 1, false, &r);
    ok(st.added == 0 && st.skipped == 4, "again: the 4 are kept");
    st = run(good, 5, true, &r);
    ok(st.replaced == 4, "--replace: the 4 are replaced");

    bad = xe_asprintf("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.test'>\n"
                      "<user name='bad1'>%.*s!!!%s</user>\n"                     /* 2 */
                      "<user name='bad2'><x xmlns='urn:xmpp:pie:0'/>%s</user>\n" /* 3 */
                      "<user name='dup' password='one'/>\n"                      /* 4 */
                      "<user name='dup' password='two'/>\n"                      /* 5 */
                      "<user name='bad3' password='wrong'>%s</user>\n"           /* 6 */
                      "<user name='bad4'/>\n"                                    /* 7 */
                      "<user name='good' password='g'/>\n"                       /* 8 */
                      "</host></server-data>",
                      (int)(strstr(once, "<stored-key>") - once + 12), once,
                      strstr(once, "<stored-key>") + 12, once, once);
    for (size_t i = 0; i < 2; i++) {
        clear();
        st = run(bad, i == 0 ? 65536 : 1, false, &r);
        ok(r == 0 && st.added == 2 && st.failed == 5,
           "bad records (%s): 2 added, 5 refused (%lu, %lu)",
           i == 0 ? "whole" : "byte by byte", st.added, st.failed);
        ok(msgs != NULL &&
               strstr(msgs, "doc:2: user bad1@example.test: line 2: <stored-key> is "
                            "not base64") &&
               strstr(msgs,
                      "doc:3: user bad2@example.test: unknown element <x> in <user>") &&
               strstr(msgs, "doc:5: user dup@example.test: a second record") &&
               strstr(msgs,
                      "doc:6: user bad3@example.test: its password and its SCRAM") &&
               strstr(msgs, "doc:7: user bad4@example.test: no password and no SCRAM"),
           "... each reported with its line");
        ok(!exists("bad1@example.test") && !exists("bad2@example.test") &&
               !exists("bad3@example.test") && logs_in("dup@example.test", "one") &&
               logs_in("good@example.test", "g"),
           "... nothing of them written; the first dup kept");
    }
    if (tap_failed)
        printf("# %s\n", msgs ? msgs : "");

    cut = xe_asprintf("<host xmlns='urn:xmpp:pie:0' jid='example.test'><user name='good' "
                      "password='g'/>\n<user name='e1'>%.40s",
                      twice);
    clear();
    st = run(cut, 1, false, &r);
    ok(r == 1 && st.added == 1 && st.failed == 1 && !exists("e1@example.test"),
       "a truncated file: the record before kept, the cut one refused (r=%d)", r);
    ok(msgs && strstr(msgs, "doc:2: user e1: the file breaks off inside it") &&
           strstr(msgs, "XML error"),
       "... with the XML error");

    laughs = "<?xml version='1.0'?>\n<!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'>"
             "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>\n"
             "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.test'>"
             "<user name='lol' password='&b;'/></host></server-data>";
    st = run(laughs, 1, false, &r);
    ok(r == 1 && st.added == 0 && !exists("lol@example.test") && msgs &&
           strstr(msgs, "doc:2: a DOCTYPE is refused"),
       "a DOCTYPE (billion laughs) stops the file at once");
    st = run("<stream xmlns='jabber:client'/>", 65536, false, &r);
    ok(r == 1 && msgs && strstr(msgs, "not a XEP-0227 file"),
       "another root: not XEP-0227");

    free(once);
    free(twice);
    free(good);
    free(bad);
    free(cut);
    free(msgs);
    free(alice);
    xe_userstore_close(&store);
    rm_rf(dir);
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
