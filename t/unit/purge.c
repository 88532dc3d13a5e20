/* Unit tests of the purge of a deleted user's data (src/core/purge.c): a backend
 * transcript fed whole and byte by byte; the removal iq is sent after the
 * bind; the result confirms; an error, a stream error, the stream's end,
 * bad XML and a refused login or bind are failures that say why; the
 * recheck right before <remove/> (the tombstone re-read) can abandon it,
 * and then nothing of it is sent. TAP. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purge.h"
#include "tap.h"

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define HEADER                                                                           \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.test' "       \
    "version='1.0'>"
#define FEATURES1                                                                        \
    "<stream:features><mechanisms xmlns='" NS_SASL                                       \
    "'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
#define SUCCESS "<success xmlns='" NS_SASL "'/>"
#define FEATURES2                                                                        \
    "<stream:features><bind "                                                            \
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
#define BIND_RESULT                                                                      \
    "<iq type='result' id='xe-bind-1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"   \
    "<jid>gone@example.test/xedge-purge</jid></bind></iq>"
#define LOGIN HEADER FEATURES1 SUCCESS HEADER FEATURES2 BIND_RESULT
#define REMOVE_IQ                                                                        \
    "<iq type='set' id='xedge-purge-1'><query xmlns='jabber:iq:register'><remove/>"      \
    "</query></iq>"

/* the recheck's answer (NULL: go on) and its calls */
static const char *recheck_says;
static int rechecks;

static const char *
recheck(void *ctx)
{
    (void)ctx;
    rechecks++;
    return recheck_says;
}

/* Feed TEXT whole or byte by byte; the result, what was sent (all of it),
 * and the error on failure. */
static enum xe_purge_result
run(const char *text, bool bytewise, char *sent, size_t size, const char **err_r)
{
    static char err[256];
    struct xe_purge *p = xe_purge_new("example.test", "gone", "TOKEN");

    xe_purge_set_recheck(p, recheck, NULL);
    enum xe_purge_result r = XE_PURGE_CONTINUE;
    size_t len = strlen(text), off = 0, n = 0;

    sent[0] = '\0';
    while (off < len && r == XE_PURGE_CONTINUE) {
        size_t chunk = bytewise ? 1 : len;
        struct xe_buf *o;
        r = xe_purge_feed(p, text + off, chunk);
        off += chunk;
        o = xe_purge_output(p);
        if (n + o->len < size) {
            memcpy(sent + n, o->data, o->len);
            n += o->len;
            sent[n] = '\0';
        }
        xe_buf_consume(o, o->len);
    }
    snprintf(err, sizeof(err), "%s",
             r == XE_PURGE_FAIL || r == XE_PURGE_ABANDONED ? xe_purge_error(p) : "");
    *err_r = err;
    xe_purge_free(&p);
    return r;
}

static void
check(const char *name, const char *text, enum xe_purge_result want, const char *want_err)
{
    for (int mode = 0; mode < 2; mode++) {
        char sent[4096];
        const char *err;
        const char *how = mode ? "byte by byte" : "whole";
        enum xe_purge_result r = run(text, mode == 1, sent, sizeof(sent), &err);
        is_int(r, want, "%s (%s)", name, how);
        if (want_err)
            ok(strstr(err, want_err) != NULL, "%s (%s): says \"%s\" (%s)", name, how,
               want_err, err);
    }
}

int
main(void)
{
    char sent[4096];
    const char *err;

    /* the whole exchange: the removal goes after the bind, once */
    ok(run(LOGIN "<iq type='result' id='xedge-purge-1'/>", false, sent, sizeof(sent),
           &err) == XE_PURGE_DONE,
       "a result confirms the purge");
    ok(strstr(sent, REMOVE_IQ) != NULL &&
           strstr(sent, REMOVE_IQ) > strstr(sent, "xe-bind-1"),
       "the removal iq is sent after the bind");
    ok(strstr(strstr(sent, REMOVE_IQ) + 1, REMOVE_IQ) == NULL, "... once");
    ok(run(LOGIN, false, sent, sizeof(sent), &err) == XE_PURGE_CONTINUE &&
           strstr(sent, REMOVE_IQ) != NULL,
       "after the bind: the removal sent, waiting for the answer");

    /* the recheck right before <remove/>: once, after the bind */
    rechecks = 0;
    run(HEADER FEATURES1 SUCCESS HEADER FEATURES2, false, sent, sizeof(sent), &err);
    is_int(rechecks, 0, "no recheck before the bind's result");
    run(LOGIN "<iq type='result' id='xedge-purge-1'/>", true, sent, sizeof(sent), &err);
    is_int(rechecks, 1, "one recheck, after the bind (byte by byte)");
    recheck_says = "the tombstone is gone";
    for (int mode = 0; mode < 2; mode++) {
        enum xe_purge_result r = run(LOGIN "<iq type='result' id='xedge-purge-1'/>",
                                     mode == 1, sent, sizeof(sent), &err);
        is_int(r, XE_PURGE_ABANDONED, "the recheck says no: abandoned (%s)",
               mode ? "byte by byte" : "whole");
        ok(strstr(sent, "xe-bind-1") != NULL && strstr(sent, "remove") == NULL,
           "... the bind was sent, <remove/> never (%s)",
           mode ? "byte by byte" : "whole");
        is_str(err, "the tombstone is gone", "... saying why");
    }
    recheck_says = NULL;

    check("confirmed, with a push and a message first",
          LOGIN
          "<iq type='set' id='push1'><query xmlns='jabber:iq:roster'/></iq>"
          "<message from='x@example.test'><body>hi</body></message>"
          "<iq type='result' id='xedge-purge-1' to='gone@example.test/xedge-purge'/>",
          XE_PURGE_DONE, NULL);
    check("confirmed, then the stream closed (Prosody)",
          LOGIN
          "<iq type='result' id='xedge-purge-1'/><stream:error><not-authorized "
          "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
          XE_PURGE_DONE, NULL);
    check("an iq error (no mod_register)",
          LOGIN
          "<iq type='error' id='xedge-purge-1'><error type='cancel'><service-unavailable "
          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
          XE_PURGE_FAIL, "refused the removal: <service-unavailable/>");
    check("a result from another user does not count (the resource is well known)",
          LOGIN "<iq type='result' id='xedge-purge-1' from='mallory@example.test/x' "
                "to='gone@example.test/xedge-purge'/></stream:stream>",
          XE_PURGE_FAIL, "closed the stream before it answered");
    check("... nor an error from another user",
          LOGIN
          "<iq type='error' id='xedge-purge-1' from='mallory@example.test/x'><error "
          "type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
          "</error></iq><iq type='result' id='xedge-purge-1' from='GONE@example.test'/>",
          XE_PURGE_DONE, NULL);
    check("a result from the session's own full JID confirms (ejabberd)",
          LOGIN
          "<iq type='result' id='xedge-purge-1' from='gone@example.test/xedge-purge'/>",
          XE_PURGE_DONE, NULL);
    check("a result from another user whose name starts the same does not count",
          LOGIN "<iq type='result' id='xedge-purge-1' from='gone@example.testx/r'/>"
                "<iq type='result' id='xedge-purge-1' from='gonex@example.test/r'/>"
                "</stream:stream>",
          XE_PURGE_FAIL, "closed the stream before it answered");
    check("a result from the domain confirms",
          LOGIN "<iq type='result' id='xedge-purge-1' from='example.test'/>",
          XE_PURGE_DONE, NULL);
    check("another iq's result does not count",
          LOGIN "<iq type='result' id='other'/></stream:stream>", XE_PURGE_FAIL,
          "closed the stream before it answered");
    check("a stream error before the answer",
          LOGIN "<stream:error><system-shutdown "
                "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
          XE_PURGE_FAIL, "ended the stream: <system-shutdown/>");
    check("bad XML", LOGIN "<iq type='result' id='xedge-purge-1'><<", XE_PURGE_FAIL,
          "bad XML");
    check("the login refused",
          HEADER FEATURES1 "<failure xmlns='" NS_SASL "'><not-authorized/></failure>",
          XE_PURGE_FAIL, "login at the backend failed");
    check("the bind refused",
          HEADER FEATURES1 SUCCESS HEADER FEATURES2
          "<iq type='error' id='xe-bind-1'><error type='cancel'><not-allowed "
          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
          XE_PURGE_FAIL, "refused the bind: <not-allowed/>");
    return tap_done();
}
