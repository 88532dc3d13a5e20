/* resolve_probe: run xedge's resolver (src/io/resolve.c) on a libuv loop and
 * print what it answers, for t/e2e-resolve.t.
 *
 *   resolve_probe [-s SERVERS] [-t TIMEOUT_MS] [-p DEFAULT_PORT] [-n RUNS]
 *                 [-c | -f | -P N] DOMAIN
 *
 * Each answer: "result domain=D status=S n=N elapsed_ms=M", then one line
 * "target host=H addr=A port=P tls=T" per target, in order. -n: RUNS
 * requests one after the other. -c: the request is cancelled at once, and
 * the probe waits two timeouts; -f: the resolver is freed with the request
 * outstanding; both then print "callbacks=N" (0 expected).
 * -P N: N requests at once; prints "started=K" (how many the resolver took),
 * then, when all are answered, "answers=A ok=O" instead of the results;
 * with -f, the resolver is freed at once instead, then "callbacks=N".
 * At the end, every time:
 * "loop-closed=0|1" (the resolver freed, the loop run to its end;
 * 1 when every handle was closed). Exit status 0 unless an argument or the
 * resolver's setup is wrong. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "resolve.h"

static struct xe_resolver *res;
static const char *domain;
static uint16_t default_port = 5269;
static int runs = 1, done_runs, callbacks;
static int parallel, started_n, answers, answers_ok;
static uint64_t started;
static uv_timer_t wait_timer;

static void start_one(void);

static void
on_result(void *arg, int status, const struct xe_target *t, size_t n)
{
    (void)arg;
    callbacks++;
    if (parallel) {
        answers++;
        answers_ok += status == 0 && n > 0;
        if (answers == started_n) {
            printf("answers=%d ok=%d\n", answers, answers_ok);
            xe_resolver_free(res);
        }
        return;
    }
    printf("result domain=%s status=%s n=%zu elapsed_ms=%llu\n", domain,
           xe_resolve_strstatus(status), n,
           (unsigned long long)(uv_now(uv_default_loop()) - started));
    for (size_t i = 0; i < n; i++) {
        char a[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (t[i].addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&t[i].addr;
            inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
            port = ntohs(s6->sin6_port);
        } else if (t[i].addr.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&t[i].addr;
            inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
            port = ntohs(s4->sin_port);
        }
        printf("target host=%s addr=%s port=%u tls=%d\n", t[i].host, a, port,
               t[i].direct_tls);
    }
    fflush(stdout);
    if (++done_runs < runs)
        start_one();
    else
        xe_resolver_free(res);
}

static void
start_one(void)
{
    uv_update_time(uv_default_loop());
    started = uv_now(uv_default_loop());
    if (!xe_resolve_xmpp_server(res, domain, default_port, on_result, NULL)) {
        printf("result domain=%s status=not-started n=0\n", domain);
        xe_resolver_free(res);
    }
}

static void
on_wait_over(uv_timer_t *t)
{
    printf("callbacks=%d\n", callbacks);
    uv_close((uv_handle_t *)t, NULL);
    xe_resolver_free(res);
}

int
main(int argc, char **argv)
{
    const char *servers = NULL;
    unsigned timeout_ms = 2000;
    int c, cancel = 0, free_early = 0;
    char err[256];
    uv_loop_t *loop = uv_default_loop();

    while ((c = getopt(argc, argv, "s:t:p:n:cfP:")) != -1) {
        switch (c) {
        case 's':
            servers = optarg;
            break;
        case 't':
            timeout_ms = (unsigned)atoi(optarg);
            break;
        case 'p':
            default_port = (uint16_t)atoi(optarg);
            break;
        case 'n':
            runs = atoi(optarg);
            break;
        case 'c':
            cancel = 1;
            break;
        case 'f':
            free_early = 1;
            break;
        case 'P':
            parallel = atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: resolve_probe [-s SERVERS] [-t MS] [-p PORT] [-n RUNS] "
                    "[-c|-f|-P N] DOMAIN\n");
            return 2;
        }
    }
    if (optind + 1 != argc || runs < 1)
        return 2;
    domain = argv[optind];
    res = xe_resolver_new(loop, servers, timeout_ms, err, sizeof err);
    if (!res) {
        fprintf(stderr, "resolve_probe: %s\n", err);
        return 1;
    }
    if (parallel > 0) {
        for (int i = 0; i < parallel; i++)
            if (xe_resolve_xmpp_server(res, domain, default_port, on_result, NULL))
                started_n++;
        printf("started=%d\n", started_n);
        if (started_n == 0 || free_early) {
            xe_resolver_free(res); /* -f: with them all outstanding */
            uv_run(loop, UV_RUN_DEFAULT);
            printf("callbacks=%d\n", callbacks);
        }
    } else if (cancel || free_early) {
        struct xe_resolve_req *q =
            xe_resolve_xmpp_server(res, domain, default_port, on_result, NULL);
        if (!q) {
            printf("result domain=%s status=not-started n=0\n", domain);
            return 1;
        }
        if (cancel) {
            xe_resolve_cancel(q);
            printf("cancelled pending=%zu\n", xe_resolver_pending(res));
            uv_timer_init(loop, &wait_timer);
            uv_timer_start(&wait_timer, on_wait_over, 2 * timeout_ms, 0);
        } else {
            xe_resolver_free(res);
            printf("freed\n");
            uv_run(loop, UV_RUN_DEFAULT);
            printf("callbacks=%d\n", callbacks);
            res = NULL;
        }
    } else {
        start_one();
    }
    uv_run(loop, UV_RUN_DEFAULT);
    printf("loop-closed=%d\n", uv_loop_close(loop) == 0);
    return 0;
}
