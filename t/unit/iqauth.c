/* Unit tests of non-SASL authentication (XEP-0078) in the c2s core
 * (src/core/c2s.c): a real LMDB store in a temporary directory, the c2s state
 * machine fed plaintext as the glue would after TLS; bytes in, bytes and
 * actions out. The feature, the fields, the errors, the attempts, the
 * action at the exact byte, and the answers once the backend has bound the
 * resource. TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "c2s.h"
#include "conf.h"
#include "log.h"
#include "sasl.h"
#include "userstore.h"
#include "tap.h"

#define HEADER(dom)                                                                      \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' to='" dom "' version='1.0'>"
#define FEATURE "<auth xmlns='http://jabber.org/features/iq-auth'/>"
#define SET(id, user, cred, res)                                                         \
    "<iq type='set' id='" id "'><query xmlns='jabber:iq:auth'><username>" user           \
    "</username>" cred "<resource>" res "</resource></query></iq>"

static struct xe_userstore *store;
static struct xe_conf conf;
static struct xe_domain_conf domains[2];
static char *mechs[] = {"SCRAM-SHA-256", "PLAIN"};

static void
add_user(const char *jid, const char *pw, bool legacy, bool disabled)
{
    struct xe_user u;
    char *err = NULL;

    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "%s", jid);
    u.disabled = disabled;
    xe_user_set_password(&u, pw, strlen(pw), 4096);
    if (legacy)
        xe_user_set_legacy(&u, pw, strlen(pw));
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "store %s", jid);
    free(err);
}

/* Feed DATA whole; *out gets the output (consumed), returns the action. */
static enum xe_c2s_action
feed(struct xe_c2s *c, const char *data, size_t *used_r, char *out, size_t size)
{
    size_t used = 0;
    enum xe_c2s_action a = xe_c2s_feed(c, data, strlen(data), &used);
    struct xe_buf *o = xe_c2s_output(c);

    snprintf(out, size, "%.*s", (int)o->len, (const char *)o->data);
    o->len = 0;
    if (used_r)
        *used_r = used;
    return a;
}

/* A c2s after TLS with its stream opened to DOMAIN; the stream id in ID. */
static struct xe_c2s *
open_stream(const char *header, char *features, size_t size, char id[33])
{
    struct xe_c2s_params p = {.conf = &conf, .tls = true, .peer = "test"};
    struct xe_c2s *c = xe_c2s_new(&p);
    const char *i;

    xe_c2s_tls_up(c, NULL);
    feed(c, header, NULL, features, size);
    i = strstr(features, " id='");
    snprintf(id, 33, "%.32s", i ? i + 5 : "");
    return c;
}

static void
digest_of(const char *id, const char *pw, char hex[41])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    char in[256];

    snprintf(in, sizeof(in), "%s%s", id, pw);
    SHA1((const unsigned char *)in, strlen(in), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void
test_off(void)
{
    char out[8192], id[33];
    struct xe_c2s *c = open_stream(HEADER("plain.test"), out, sizeof(out), id);
    enum xe_c2s_action a;

    ok(strstr(out, "<mechanisms") != NULL && strstr(out, FEATURE) == NULL,
       "iq_auth off: the mechanisms, no iq-auth feature");
    a = feed(c, SET("s1", "alice", "<password>alice-pw</password>", "r"), NULL, out,
             sizeof(out));
    ok(a == XE_C2S_CLOSE && strstr(out, "<not-authorized") != NULL &&
           strstr(out, "<stream:error>") != NULL,
       "iq_auth off: a set is refused as any element before SASL (stream error)");
    xe_c2s_free(&c);
}

static void
test_on(void)
{
    char out[8192], id[33], dg[41], buf[1024];
    struct xe_c2s *c = open_stream(HEADER("example.test"), out, sizeof(out), id);
    enum xe_c2s_action a;
    size_t used = 0;
    static const char set_ok[] =
        SET("s9", "alice", "<password>alice-pw</password>", "r&amp;1");
    static const char after[] = "<presence/><message to='x@y'>";

    ok(strstr(out, "</mechanisms>") != NULL && strstr(out, FEATURE) != NULL &&
           strstr(out, "</mechanisms>") < strstr(out, FEATURE),
       "iq_auth on: <auth xmlns='http://jabber.org/features/iq-auth'/> after the "
       "mechanisms");
    is_int(strlen(id), 32, "the stream id (%s)", id);

    a = feed(c,
             "<iq type='get' id='g1' to='example.test'><query xmlns='jabber:iq:auth'>"
             "<username>alice</username></query></iq>",
             NULL, out, sizeof(out));
    is_int(a, XE_C2S_CONTINUE, "get: CONTINUE");
    is_str(out,
           "<iq type='result' id='g1'><query xmlns='jabber:iq:auth'><username>alice"
           "</username><password/><digest/><resource/></query></iq>",
           "get: the fields, for alice");
    feed(c,
         "<iq type='get' id='g&amp;2'><query xmlns='jabber:iq:auth'>"
         "<username>nobody</username></query></iq>",
         NULL, out, sizeof(out));
    is_str(out,
           "<iq type='result' id='g&amp;2'><query xmlns='jabber:iq:auth'><username>nobody"
           "</username><password/><digest/><resource/></query></iq>",
           "get: the same fields for an unknown user; the id escaped");

    a = feed(c, SET("s1", "alice", "<password>alice-pw</password>", ""), NULL, out,
             sizeof(out));
    ok(a == XE_C2S_CONTINUE && strstr(out, "code='406' type='modify'><not-acceptable") &&
           strstr(out, "id='s1'"),
       "no resource: 406 not-acceptable (%s)", out);
    a = feed(c, SET("s2", "alice", "<password>wrong</password>", "r"), NULL, out,
             sizeof(out));
    ok(a == XE_C2S_CONTINUE && strstr(out, "id='s2'") &&
           strstr(out, "code='401' type='auth'><not-authorized"),
       "wrong password: 401 not-authorized (%s)", out);

    /* the right one, with bytes pipelined after it */
    snprintf(buf, sizeof(buf), "%s%s", set_ok, after);
    a = feed(c, buf, &used, out, sizeof(out));
    is_int(a, XE_C2S_IQ_AUTHED, "right password: XE_C2S_IQ_AUTHED");
    is_int(used, strlen(set_ok),
           "... at the byte after the iq (the rest is the backend's)");
    is_str(out, "", "... nothing answered before the backend has bound");
    is_str(xe_c2s_jid(c), "alice@example.test", "... jid");
    is_str(xe_c2s_resource(c), "r&1", "... the resource, unescaped");
    is_str(xe_c2s_mech(c), "iq-auth", "... mech iq-auth");
    xe_c2s_answer_iq_auth(c, NULL);
    feed(c, "", NULL, out, sizeof(out));
    is_str(out, "<iq type='result' id='s9'/>", "bound: the client's iq gets its result");
    xe_c2s_free(&c);

    /* a bind the backend refused */
    c = open_stream(HEADER("example.test"), out, sizeof(out), id);
    a = feed(c, SET("b1", "alice", "<password>alice-pw</password>", "r"), NULL, out,
             sizeof(out));
    is_int(a, XE_C2S_IQ_AUTHED, "another session: IQ_AUTHED");
    xe_c2s_answer_iq_auth(c, "conflict");
    feed(c, "", NULL, out, sizeof(out));
    is_str(out,
           "<iq type='error' id='b1'><error code='409' type='cancel'><conflict "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq></stream:stream>",
           "bind refused with conflict: 409, then the stream end");
    xe_c2s_free(&c);

    /* digest, fed byte by byte */
    c = open_stream(HEADER("example.test"), out, sizeof(out), id);
    digest_of(id, "dave-pw", dg);
    snprintf(buf, sizeof(buf),
             SET("d1", "dave", "<digest>%s</digest>", "d") "<presence/>", dg);
    {
        size_t len = strlen(buf), i;
        a = XE_C2S_CONTINUE;
        for (i = 0; i < len && a == XE_C2S_CONTINUE; i++)
            a = xe_c2s_feed(c, buf + i, 1, &used);
        ok(a == XE_C2S_IQ_AUTHED && i == len - strlen("<presence/>") && used == 1,
           "digest of a legacy user, byte by byte: IQ_AUTHED at the iq's last byte");
        is_str(xe_c2s_jid(c), "dave@example.test", "... as dave");
    }
    xe_c2s_free(&c);

    /* digest for a user without the legacy secret, disabled, attempts */
    c = open_stream(HEADER("example.test"), out, sizeof(out), id);
    digest_of(id, "alice-pw", dg);
    snprintf(buf, sizeof(buf), SET("d2", "alice", "<digest>%s</digest>", "d"), dg);
    a = feed(c, buf, NULL, out, sizeof(out));
    ok(a == XE_C2S_CONTINUE && strstr(out, "code='401'"),
       "digest for a user without the legacy secret: 401");
    a = feed(c, SET("x1", "carol", "<password>carol-pw</password>", "r"), NULL, out,
             sizeof(out));
    ok(a == XE_C2S_CONTINUE && strstr(out, "code='405' type='cancel'><not-allowed"),
       "disabled account with the right password: 405 not-allowed (%s)", out);
    a = feed(c, SET("x2", "alice", "<password>nope</password>", "r"), NULL, out,
             sizeof(out));
    ok(a == XE_C2S_CLOSE && strstr(out, "code='401'") &&
           strstr(out, "<stream:error><not-authorized"),
       "the third failure (sasl.max_attempts): the iq error, then <not-authorized/> and "
       "close");
    xe_c2s_free(&c);
}

int
main(void)
{
    char *dir = tap_mkdtemp("iqauth-test"), *err = NULL;
    int r;

    xe_log_level = XE_LOG_ERROR;
    ok(dir != NULL, "mkdtemp");
    if (dir == NULL)
        return tap_done();
    r = xe_userstore_open(dir, false, 16, &store, &err);
    ok(r == XE_US_OK, "userstore open %s", err ? err : "");
    free(err);
    err = NULL;
    if (r != XE_US_OK) {
        rm_rf(dir);
        return tap_done();
    }
    add_user("alice@example.test", "alice-pw", false, false);
    add_user("carol@example.test", "carol-pw", false, true);
    add_user("dave@example.test", "dave-pw", true, false);
    r = xe_sasl_global_init(store, "SCRAM-SHA-256 PLAIN", 4096, &err);
    ok(r == 0, "xe_sasl_global_init %s", err ? err : "");
    free(err);

    domains[0].name = "example.test";
    domains[0].iq_auth = true;
    domains[1].name = "plain.test";
    conf.domains = domains;
    conf.n_domains = 2;
    conf.mechanisms = mechs;
    conf.n_mechanisms = 2;
    conf.max_auth_attempts = 3;
    conf.max_stanza_preauth = 16384;
    conf.max_xml_depth = 8;
    conf.max_attrs = 16;
    conf.max_sasl_bytes = 8192;
    if (r == 0) {
        test_off();
        test_on();
    }
    xe_sasl_global_done();
    xe_userstore_close(&store);
    rm_rf(dir);
    return tap_done();
}
