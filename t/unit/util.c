/* Unit tests: the random ids of src/core/util.c (xe_random_id), drawn from
 * the per-thread pool of xe_random_public, refilled 1 KiB (64 ids) at a time
 * (issue 18): each is 32 lower hex digits, none repeats across refills or
 * threads, and a child of fork() never hands out what its parent will (its
 * pool starts empty); xe_random_public's own draws (SASL nonces) share the
 * pool and never repeat what the ids took. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

#define IDS 200 /* several refills of the pool */

static char ids[3 * IDS + 1][33]; /* two threads, one before the fork, after it */

static int
cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void *
draw(void *arg)
{
    char(*out)[33] = arg;
    for (int i = 0; i < IDS; i++)
        xe_random_id(out[i]);
    return NULL;
}

int
main(void)
{
    pthread_t t;
    bool hex = true, distinct = true;
    int p[2];
    pid_t pid;

    draw(ids[0]);
    ok(pthread_create(&t, NULL, draw, ids[IDS]) == 0 && pthread_join(t, NULL) == 0,
       "ids drawn in a second thread");
    for (int i = 0; i < 2 * IDS; i++)
        hex = hex && strlen(ids[i]) == 32 && strspn(ids[i], "0123456789abcdef") == 32;
    ok(hex, "ids: 32 lower hex digits each");

    /* the child's first ids against the parent's next: the pool a fork
     * copies is the parent's, the child must not reuse it */
    xe_random_id(ids[2 * IDS]); /* the pool is now partly used */
    ok(pipe(p) == 0, "pipe");
    pid = fork();
    if (pid == 0) {
        char mine[IDS][33];
        close(p[0]);
        draw(mine);
        _exit(write(p[1], mine, sizeof(mine)) == (ssize_t)sizeof(mine) ? 0 : 1);
    }
    ok(pid > 0, "fork");
    close(p[1]);
    draw(ids[2 * IDS + 1]);
    {
        char child[IDS][33];
        size_t got = 0;
        ssize_t n;
        int st = 0;
        while (got < sizeof(child) &&
               (n = read(p[0], (char *)child + got, sizeof(child) - got)) > 0)
            got += (size_t)n;
        close(p[0]);
        waitpid(pid, &st, 0);
        ok(got == sizeof(child) && WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "the child drew its ids");
        /* all of them: both threads', the parent's after the fork, the child's */
        {
            static char all[4 * IDS + 1][33];
            size_t n_all = 0;
            for (int i = 0; i < 3 * IDS + 1; i++)
                memcpy(all[n_all++], ids[i], 33);
            for (int i = 0; i < IDS; i++)
                memcpy(all[n_all++], child[i], 33);
            qsort(all, n_all, 33, cmp);
            for (size_t i = 1; i < n_all; i++)
                if (strcmp(all[i - 1], all[i]) == 0)
                    distinct = false;
            ok(distinct,
               "no id repeats: across refills, threads, and a fork's child (%zu)", n_all);
        }
    }
    /* xe_random_public: nonce-sized draws from the same pool, across its
     * refills and between ids, and a draw too large for it (RAND_bytes
     * directly): no two alike, none all zero */
    {
        static unsigned char nonce[200][24];
        unsigned char big[2][300];
        bool all_ok = true, differ = true, nonzero = true;
        for (int i = 0; i < 200; i++) {
            char id[33];
            all_ok = all_ok && xe_random_public(nonce[i], sizeof(nonce[i]));
            xe_random_id(id);
        }
        all_ok = all_ok && xe_random_public(big[0], sizeof(big[0])) &&
                 xe_random_public(big[1], sizeof(big[1]));
        for (int i = 0; i < 200; i++) {
            static const unsigned char zero[24];
            nonzero = nonzero && memcmp(nonce[i], zero, sizeof(zero)) != 0;
            for (int j = 0; j < i; j++)
                differ = differ && memcmp(nonce[i], nonce[j], sizeof(nonce[i])) != 0;
        }
        differ = differ && memcmp(big[0], big[1], sizeof(big[0])) != 0;
        ok(all_ok, "xe_random_public: 200 draws of 24 bytes and two of 300");
        ok(differ && nonzero, "... no two alike, none all zero");
    }
    return tap_done();
}
