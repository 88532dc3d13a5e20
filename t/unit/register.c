/* Unit tests: the backend stream's stanza boundaries (boundary.c) and the
 * post-authentication filter of in-band registration (xe_regsplice), fed
 * whole and split at every byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HAVE_MALLINFO2 1 /* (glibc 2.33) */
#endif

#include "boundary.h"
#include "conf.h"
#include "log.h"
#include "register.h"
#include "userstore.h"
#include "tap.h"

/* ---- the boundary tracker ------------------------------------------------ */

static const char backend[] =
    "<message from='a@example.test/r' to='b@example.test/x' id='x&gt;y' "
    "type=\"chat\" note='a /> b > c'><body>hi &amp; &lt;/body&gt; /&gt;</body>"
    "<x xmlns='urn:q' v=\"'>\"/></message>"
    " "
    "<iq id='a/>' type='result'/>"
    "<presence><status>s</status><c xmlns='urn:c' node='</x>'/></presence>\n"
    "</stream:stream>";

/* positions after which the stream is between two stanzas (scanning whole) */
static size_t
positions(const char *data, size_t len, size_t *pos, size_t max)
{
    struct xe_boundary b;
    size_t n = 0, at = 0;

    xe_boundary_init(&b, 1);
    while (at < len) {
        at += xe_boundary_scan(&b, data + at, len - at, true);
        if (xe_boundary_between(&b) && n < max)
            pos[n++] = at;
    }
    return n;
}

static void
test_boundary(void)
{
    size_t len = strlen(backend), pos[16], n, want[4];
    const char *p;
    bool all = true;

    n = positions(backend, len, pos, 16);
    p = strstr(backend, "</message>") + strlen("</message>");
    want[0] = (size_t)(p - backend);
    want[1] = want[0] + 1; /* the space */
    p = strstr(backend, "'result'/>") + strlen("'result'/>");
    want[2] = (size_t)(p - backend);
    p = strstr(backend, "</presence>") + strlen("</presence>");
    want[3] = (size_t)(p - backend);
    is_int(n, 5, "boundary: four stanzas or spaces end at depth 1, and the newline");
    ok(n >= 4 && pos[0] == want[0] && pos[1] == want[1] && pos[2] == want[2] &&
           pos[3] == want[3] && pos[4] == want[3] + 1,
       "boundary: after </message>, the space, the empty <iq/>, </presence>, the "
       "newline");
    {
        struct xe_boundary b;
        xe_boundary_init(&b, 1);
        xe_boundary_scan(&b, backend, len, false);
        ok(!xe_boundary_between(&b) && b.depth == 0,
           "boundary: after </stream:stream> nothing may be put in");
    }
    /* every split point: the same boundaries */
    for (size_t k = 0; k <= len; k++) {
        struct xe_boundary b;
        size_t got[16], m = 0, at = 0;

        xe_boundary_init(&b, 1);
        while (at < len) {
            size_t end = at < k ? k : len;
            at += xe_boundary_scan(&b, backend + at, end - at, true);
            if (xe_boundary_between(&b) && m < 16 &&
                (m == 0 || got[m - 1] != at)) /* the split itself is not one */
                got[m++] = at;
        }
        if (m != n || memcmp(got, pos, n * sizeof(*pos)) != 0) {
            all = false;
            printf("# split at %zu: %zu boundaries\n", k, m);
        }
    }
    ok(all, "boundary: the same positions for a split at every byte");
}

/* ---- the filter ------------------------------------------------------------ */

static struct xe_conf conf;
static struct xe_domain_conf dom;

static const char header[] = "<s:stream xmlns:s='http://etherx.jabber.org/streams' "
                             "xmlns='jabber:client' xmlns:foo='urn:foo' "
                             "to='example.test' version='1.0'>";

static struct xe_regsplice *
new_rs(void)
{
    struct xe_regsplice_params p = {
        .conf = &conf,
        .domain = "example.test",
        .jid = "alice@example.test",
        .peer = "192.0.2.1:1234",
        .header = (const unsigned char *)header,
        .header_len = strlen(header),
    };
    return xe_regsplice_new(&p);
}

/* what the backend must get from client_in below */
static const char fwd_a[] = "<message to='bob@example.test' id='m1'><body>a &lt; "
                            "b</body></message>";
static const char fwd_b[] = "<foo:x a='1'/>";
static const char fwd_c[] =
    "<iq type='get' id='other' to='alice@example.test/phone'><query "
    "xmlns='jabber:iq:register'/></iq>";
static const char ask_get[] =
    "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>";
static const char ask_set[] = "<iq type='set' id='r2' to='Example.TEST'><query "
                              "xmlns='jabber:iq:register'><username>alice</username>"
                              "<password>new-secret</password></query></iq>";

static int jobs_run; /* jobs the helper below ran */

/* xe_regsplice_client with the glue's part done in line: a request's job
 * (which the daemon runs in the thread pool) is run, then handed back. */
static enum xe_rs_result
client(struct xe_regsplice *rs, const char *data, size_t len, struct xe_buf *up)
{
    enum xe_rs_result r = xe_regsplice_client(rs, data, len, up);

    while (r == XE_RS_JOB) {
        struct xe_reg_job *j = xe_regsplice_take_job(rs);

        if (j == NULL)
            break;
        xe_reg_job_run(j);
        jobs_run++;
        r = xe_regsplice_job_done(rs, j, up);
    }
    return r;
}

/* The jobs: what follows a request waits for its answer; a job not run
 * (too many under way) is answered <resource-constraint/> and changes
 * nothing; a session that goes away while its job runs frees nothing the
 * job uses (run under valgrind: `make check-valgrind` or by hand). */
static void
test_jobs(struct xe_userstore *store)
{
    const char *req = "<iq type='set' id='pw'><query xmlns='jabber:iq:register'>"
                      "<username>alice</username><password>pw-2</password></query></iq>"
                      "<message id='after'/>";
    struct xe_regsplice *rs = new_rs();
    struct xe_reg_job *j;
    struct xe_buf up, down;
    struct xe_user u;
    char *err = NULL;
    enum xe_rs_result r;

    xe_buf_init(&up, 0);
    xe_buf_init(&down, 0);
    r = xe_regsplice_client(rs, req, strlen(req), &up);
    ok(r == XE_RS_JOB && up.len == 0,
       "jobs: a password change stops the filter; what follows it waits");
    r = xe_regsplice_client(rs, "<presence/>", 11, &up);
    j = xe_regsplice_take_job(rs);
    ok(j != NULL && xe_reg_job_op(j) == XE_REG_PASSWORD && up.len == 0 &&
           xe_regsplice_take_job(rs) == NULL,
       "jobs: the job is taken once; bytes read meanwhile wait too");
    xe_reg_job_run(j);
    ok(strcmp(xe_reg_job_result(j), "ok") == 0, "jobs: run: ok");
    r = xe_regsplice_job_done(rs, j, &up);
    xe_regsplice_flush(rs, &down, false);
    xe_buf_append(&up, "", 1);
    xe_buf_append(&down, "", 1);
    ok(r == XE_RS_OK &&
           strcmp((char *)up.data, "<message id='after'/><presence/>") == 0 &&
           strcmp((char *)down.data, "<iq type='result' id='pw'/>") == 0,
       "jobs: then the answer, and what followed goes on in order");
    ok(xe_userstore_get(store, "alice@example.test", &u, &err) == XE_US_OK &&
           xe_user_check_password(&u, "pw-2", 4),
       "jobs: the password was written by the job");
    xe_buf_free(&up);
    xe_buf_free(&down);
    xe_regsplice_free(&rs);

    /* busy: not run */
    rs = new_rs();
    xe_buf_init(&up, 0);
    xe_buf_init(&down, 0);
    r = xe_regsplice_client(rs, req, strlen(req), &up);
    j = xe_regsplice_take_job(rs);
    if (j)
        xe_reg_job_busy(j);
    r = j ? xe_regsplice_job_done(rs, j, &up) : XE_RS_CLOSE;
    xe_regsplice_flush(rs, &down, false);
    xe_buf_append(&up, "", 1);
    xe_buf_append(&down, "", 1);
    ok(r == XE_RS_OK && strstr((char *)down.data, "<resource-constraint") != NULL &&
           strstr((char *)down.data, "type='wait'") != NULL &&
           strcmp((char *)up.data, "<message id='after'/>") == 0,
       "jobs: busy: <resource-constraint/> (wait), and the stream goes on");
    ok(xe_userstore_get(store, "alice@example.test", &u, &err) == XE_US_OK &&
           xe_user_check_password(&u, "pw-2", 4),
       "jobs: busy: nothing written");
    xe_buf_free(&up);
    xe_buf_free(&down);
    xe_regsplice_free(&rs);

    /* the session goes away while the job runs */
    rs = new_rs();
    xe_buf_init(&up, 0);
    r = xe_regsplice_client(rs, req, strlen(req), &up);
    j = xe_regsplice_take_job(rs);
    xe_regsplice_free(&rs);
    if (j)
        xe_reg_job_run(j);
    ok(j != NULL && strcmp(xe_reg_job_result(j), "ok") == 0,
       "jobs: a job outlives its session (it holds copies)");
    xe_reg_job_free(&j);
    xe_buf_free(&up);
    /* a job never taken goes with its session */
    rs = new_rs();
    xe_buf_init(&up, 0);
    r = xe_regsplice_client(rs, req, strlen(req), &up);
    ok(r == XE_RS_JOB, "jobs: a job left untaken...");
    xe_regsplice_free(&rs); /* (valgrind: no leak) */
    xe_buf_free(&up);
    free(err);
}

/* Idle, the filter gives its parser back (xe_regsplice_rest) and makes a
 * new one, primed with the stream header, for the next stanza: the same
 * bytes go on and the same requests are answered; never in the middle of a
 * stanza or while a request's job runs. */
static void
test_rest(void)
{
    struct xe_regsplice *rs = new_rs();
    struct xe_reg_job *j;
    struct xe_buf up, down;
    enum xe_rs_result r;

    xe_buf_init(&up, 0);
    xe_buf_init(&down, 0);
    ok(xe_regsplice_rest(rs) && xe_regsplice_resting(rs),
       "rest: a filter whose client sent nothing after the header rests");
    r = xe_regsplice_client(rs, " \n", 2, &up);
    ok(r == XE_RS_OK && up.len == 2 && memcmp(up.data, " \n", 2) == 0 &&
           xe_regsplice_resting(rs),
       "rest: white space (a keepalive) goes on, the parser still resting");
    r = xe_regsplice_client(rs, fwd_b, strlen(fwd_b), &up);
    xe_buf_append(&up, "", 1);
    ok(r == XE_RS_OK && strcmp((char *)up.data, " \n<foo:x a='1'/>") == 0 &&
           !xe_regsplice_resting(rs),
       "rest: a stanza wakes it; a prefix declared on the header still resolves");
    up.len = 0;
    ok(xe_regsplice_rest(rs), "rest: again between two stanzas");
    r = xe_regsplice_client(rs, "<message><bo", 12, &up);
    ok(r == XE_RS_OK && up.len == 0 && !xe_regsplice_rest(rs) &&
           !xe_regsplice_resting(rs),
       "rest: refused with a stanza in part");
    r = xe_regsplice_client(rs, "dy>x</body></message>", 21, &up);
    xe_buf_append(&up, "", 1);
    ok(r == XE_RS_OK &&
           strcmp((char *)up.data, "<message><body>x</body></message>") == 0 &&
           xe_regsplice_rest(rs),
       "rest: the stanza went on whole, then it rests");
    up.len = 0;
    r = xe_regsplice_client(rs, ask_set, strlen(ask_set), &up);
    ok(r == XE_RS_JOB && !xe_regsplice_rest(rs),
       "rest: refused while a request's job waits");
    j = xe_regsplice_take_job(rs);
    ok(j != NULL && !xe_regsplice_rest(rs), "rest: refused while its answer is awaited");
    if (j) {
        xe_reg_job_run(j);
        r = xe_regsplice_job_done(rs, j, &up);
    }
    xe_regsplice_flush(rs, &down, false);
    xe_buf_append(&down, "", 1);
    ok(r == XE_RS_OK && strstr((char *)down.data, "id='r2'") != NULL &&
           xe_regsplice_rest(rs),
       "rest: answered, then it rests");
    down.len = 0;
    r = xe_regsplice_client(rs, ask_get, strlen(ask_get), &up);
    xe_regsplice_flush(rs, &down, false);
    xe_buf_append(&down, "", 1);
    ok(r == XE_RS_OK && up.len == 0 && strstr((char *)down.data, "<registered/>") != NULL,
       "rest: a request after a rest is answered by xedge, not forwarded");
    xe_buf_free(&up);
    xe_buf_free(&down);
    xe_regsplice_free(&rs);

#ifdef HAVE_MALLINFO2
    /* the memory: resting filters hold less (glibc's count of the bytes in
     * use; skipped where another allocator answers, e.g. ASan) */
    {
        enum { N = 64 };
        struct xe_regsplice *many[N];
        void *probe[64];
        size_t before, busy, rested, cal = mallinfo2().uordblks;

        for (int i = 0; i < 64; i++)
            probe[i] = malloc(1024);
        cal = mallinfo2().uordblks - cal;
        for (int i = 0; i < 64; i++)
            free(probe[i]);
        if (cal < 60 * 1024) {
            ok(1, "# SKIP rest: mallinfo2 does not count this allocator's memory");
        } else {
            before = mallinfo2().uordblks;
            for (int i = 0; i < N; i++) {
                many[i] = new_rs();
                xe_buf_init(&up, 0);
                client(many[i], fwd_a, strlen(fwd_a), &up);
                xe_buf_free(&up);
            }
            busy = mallinfo2().uordblks - before;
            for (int i = 0; i < N; i++)
                xe_regsplice_rest(many[i]);
            rested = mallinfo2().uordblks - before;
            printf("# per filter: %zu bytes busy, %zu resting\n", busy / N, rested / N);
            ok(busy - rested >= (size_t)N * 4096,
               "rest: each resting filter gives back at least 4 KiB (%zu bytes)",
               (busy - rested) / N);
            for (int i = 0; i < N; i++)
                xe_regsplice_free(&many[i]);
        }
    }
#endif
}

static void
test_filter(const char *tmp)
{
    struct xe_userstore *store = NULL;
    struct xe_user u;
    char *err = NULL, client_in[2048], want_fwd[2048], want_ans[2048];
    size_t len;
    bool all_fwd = true, all_ans = true;
    int cases = 0, rested = 0;

    ok(xe_userstore_open(tmp, false, 16, &store, &err) == XE_US_OK, "store opened");
    memset(&u, 0, sizeof(u));
    snprintf(u.jid, sizeof(u.jid), "alice@example.test");
    xe_user_set_password(&u, "old", 3, 1);
    ok(xe_userstore_put(store, &u, true, &err) == XE_US_OK, "alice added");
    xe_register_global_init(store, &conf);

    snprintf(client_in, sizeof(client_in), "%s\n %s%s%s%s %s", fwd_a, ask_get, fwd_b,
             ask_set, fwd_c, " ");
    snprintf(want_fwd, sizeof(want_fwd), "%s\n %s%s %s", fwd_a, fwd_b, fwd_c, " ");
    snprintf(want_ans, sizeof(want_ans),
             "<iq type='result' id='r1'><query xmlns='jabber:iq:register'><registered/>"
             "<username>alice</username><password/></query></iq>"
             "<iq type='result' id='r2' from='Example.TEST'/>");
    len = strlen(client_in);
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k <= len; k++) {
            struct xe_regsplice *rs = new_rs();
            struct xe_buf up, down;
            enum xe_rs_result r1, r2;

            xe_buf_init(&up, 0);
            xe_buf_init(&down, 0);
            r1 = client(rs, client_in, k, &up);
            xe_regsplice_flush(rs, &down, false);
            if (pass == 1 && xe_regsplice_rest(rs)) /* the second part on a new parser */
                rested++;
            r2 = client(rs, client_in + k, len - k, &up);
            xe_regsplice_flush(rs, &down, false);
            cases++;
            if (r1 != XE_RS_OK || r2 != XE_RS_OK || up.len != strlen(want_fwd) ||
                memcmp(up.data, want_fwd, up.len) != 0) {
                if (all_fwd)
                    printf("# split %zu: forwarded '%.*s'\n", k, (int)up.len, up.data);
                all_fwd = false;
            }
            if (down.len != strlen(want_ans) ||
                memcmp(down.data, want_ans, down.len) != 0) {
                if (all_ans)
                    printf("# split %zu: answered '%.*s'\n", k, (int)down.len, down.data);
                all_ans = false;
            }
            xe_buf_free(&up);
            xe_buf_free(&down);
            xe_regsplice_free(&rs);
        }
    ok(all_fwd,
       "filter: every other element and the white space go on unchanged "
       "(%d splits, half of them with a rest between where it could: %d)",
       cases, rested);
    ok(rested >= 8 && rested < cases / 2,
       "filter: the rest taken between stanzas, and refused inside one");
    ok(all_ans, "filter: the requests to the server are answered by xedge");
    ok(jobs_run == cases, "filter: each password change ran as a job (%d)", jobs_run);
    ok(xe_userstore_get(store, "alice@example.test", &u, &err) == XE_US_OK &&
           xe_user_check_password(&u, "new-secret", 10) &&
           !xe_user_check_password(&u, "old", 3),
       "filter: the password was changed in the store");

    /* the backend direction: our answer waits for the end of a stanza */
    {
        size_t blen = strlen(backend), pos[16], n = positions(backend, blen, pos, 16);
        const char *answer = "<iq type='result' id='r1'><query "
                             "xmlns='jabber:iq:register'><registered/><username>alice"
                             "</username><password/></query></iq>";
        bool all = true;

        for (size_t k = 0; k <= blen; k++) {
            struct xe_regsplice *rs = new_rs();
            struct xe_buf up, down, want;
            size_t p = 0;
            bool deliver = true;

            xe_buf_init(&up, 0);
            xe_buf_init(&down, 0);
            xe_buf_init(&want, 0);
            /* the first boundary at or after k (0: at the start) */
            if (k > 0) {
                deliver = false; /* after the stream's end: never */
                p = blen;
                for (size_t i = 0; i < n && !deliver; i++)
                    if (pos[i] >= k) {
                        p = pos[i];
                        deliver = true;
                    }
            }
            xe_regsplice_backend(rs, backend, k, &down);
            client(rs, ask_get, strlen(ask_get), &up);
            xe_regsplice_flush(rs, &down, false);
            xe_regsplice_backend(rs, backend + k, blen - k, &down);
            xe_buf_append(&want, backend, p);
            if (deliver)
                xe_buf_append(&want, answer, strlen(answer));
            xe_buf_append(&want, backend + p, blen - p);
            if (down.len != want.len || memcmp(down.data, want.data, want.len) != 0) {
                if (all)
                    printf("# split %zu: got '%.*s'\n", k, (int)down.len, down.data);
                all = false;
            }
            xe_buf_free(&up);
            xe_buf_free(&down);
            xe_buf_free(&want);
            xe_regsplice_free(&rs);
        }
        ok(all, "filter: the answer lands between two of the backend's stanzas, for a "
                "request at every byte of the backend's stream");
    }

    /* a stanza over the post-authentication limit */
    {
        struct xe_regsplice *rs = new_rs();
        struct xe_buf up, down;
        char *big = malloc(conf.max_stanza_postauth + 100);
        enum xe_rs_result r;

        xe_buf_init(&up, 0);
        xe_buf_init(&down, 0);
        memset(big, 'x', conf.max_stanza_postauth + 100);
        memcpy(big, "<message><body>", 15);
        r = client(rs, big, conf.max_stanza_postauth + 100, &up);
        xe_regsplice_flush(rs, &down, r == XE_RS_CLOSE);
        xe_buf_append(&down, "", 1);
        ok(r == XE_RS_CLOSE && up.len == 0 && down.len > 1 &&
               strstr((char *)down.data, "<policy-violation") != NULL,
           "filter: a stanza over max_stanza_postauth: <policy-violation/>");
        xe_buf_free(&up);
        xe_buf_free(&down);
        xe_regsplice_free(&rs);
        free(big);
    }

    test_jobs(store);
    test_rest();

    /* the stream end goes on; a removal ends the stream */
    {
        struct xe_regsplice *rs = new_rs();
        struct xe_buf up, down;
        const char *rm = "<iq type='set' id='rm' to='alice@example.test'><query "
                         "xmlns='jabber:iq:register'><remove/></query></iq><message/>";
        enum xe_rs_result r;

        xe_buf_init(&up, 0);
        xe_buf_init(&down, 0);
        r = client(rs, rm, strlen(rm), &up);
        xe_regsplice_flush(rs, &down, r == XE_RS_CLOSE);
        xe_buf_append(&down, "", 1);
        ok(r == XE_RS_CLOSE && up.len == 0 &&
               strncmp((char *)down.data, "<iq type='result' id='rm'", 25) == 0 &&
               strstr((char *)down.data, "<not-authorized") != NULL,
           "filter: removal answered, then the stream ends; nothing more goes on");
        ok(xe_userstore_get(store, "alice@example.test", &u, &err) == XE_US_NOTFOUND,
           "filter: the user is gone from the store");
        xe_buf_free(&up);
        xe_buf_free(&down);
        xe_regsplice_free(&rs);

        rs = new_rs();
        xe_buf_init(&up, 0);
        r = client(rs, "<presence/></s:stream>", 22, &up);
        xe_buf_append(&up, "", 1);
        ok(r == XE_RS_OK && strcmp((char *)up.data, "<presence/></stream:stream>") == 0,
           "filter: the client's stream end goes to the backend");
        xe_buf_free(&up);
        xe_regsplice_free(&rs);
    }
    xe_register_global_free();
    xe_userstore_close(&store);
    free(err);
}

int
main(void)
{
    const char *tmp = tap_mkdtemp("register");

    if (tmp == NULL)
        return 1;
    xe_log_level = XE_LOG_ERROR;
    dom.name = "example.test";
    dom.register_ = true;
    conf.domains = &dom;
    conf.n_domains = 1;
    conf.scram_iterations = 1;
    conf.registrations_per_address = 5;
    conf.max_stanza_postauth = 4096;
    test_boundary();
    test_filter(tmp);
    rm_rf(tmp);
    return tap_done();
}
