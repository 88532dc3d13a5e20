/* Unit tests: admission control of backend logins (src/core/admit.h): the
 * cap, the FIFO order, the bound of the queue, a waiter that gives up. */
#include <stddef.h>

#include "admit.h"
#include "tap.h"

int
main(void)
{
    struct xe_admit a = {.max_pending = 2, .max_queued = 2};
    struct xe_admit_wait w[6];

    ok(xe_admit_enter(&a, &w[0]) == XE_ADMIT_GO, "first login goes");
    ok(xe_admit_enter(&a, &w[1]) == XE_ADMIT_GO, "second login goes");
    ok(a.pending == 2, "two pending");
    ok(xe_admit_enter(&a, &w[2]) == XE_ADMIT_QUEUED, "third waits (cap 2)");
    ok(xe_admit_enter(&a, &w[3]) == XE_ADMIT_QUEUED, "fourth waits");
    ok(a.queued == 2, "two queued");
    ok(xe_admit_enter(&a, &w[4]) == XE_ADMIT_FULL, "fifth refused: queue full");
    ok(a.refused == 1 && a.queued == 2 && a.pending == 2,
       "refusal counted, nothing else");
    ok(xe_admit_leave(&a) == &w[2], "a slot frees: the head of the queue (FIFO)");
    ok(a.pending == 2 && a.queued == 1 && !w[2].queued, "it is pending now");
    /* a waiter gives up (its client left): out of the queue, no slot taken */
    xe_admit_cancel(&a, &w[3]);
    ok(a.queued == 0 && a.head == NULL && a.tail == NULL, "cancel empties the queue");
    xe_admit_cancel(&a, &w[3]);
    ok(a.queued == 0, "a second cancel is a no-op");
    ok(xe_admit_leave(&a) == NULL, "a slot frees, nobody waits");
    ok(a.pending == 1, "one pending");
    ok(xe_admit_enter(&a, &w[5]) == XE_ADMIT_GO, "below the cap again: goes");
    /* cancel in the middle keeps the order of the others */
    ok(xe_admit_enter(&a, &w[0]) == XE_ADMIT_QUEUED, "w0 waits");
    ok(xe_admit_enter(&a, &w[1]) == XE_ADMIT_QUEUED, "w1 waits");
    xe_admit_cancel(&a, &w[0]);
    ok(a.head == &w[1] && a.tail == &w[1], "cancel of the head: w1 is head and tail");
    ok(xe_admit_enter(&a, &w[4]) == XE_ADMIT_QUEUED, "w4 waits behind w1");
    ok(xe_admit_leave(&a) == &w[1], "w1 first");
    ok(xe_admit_leave(&a) == &w[4], "then w4");
    ok(xe_admit_leave(&a) == NULL && xe_admit_leave(&a) == NULL, "all done");
    ok(a.pending == 0 && a.queued == 0, "back to 0");
    ok(xe_admit_leave(&a) == NULL && a.pending == 0, "leave never goes below 0");
    /* no cap */
    {
        struct xe_admit u = {0};
        for (int i = 0; i < 5; i++)
            xe_admit_enter(&u, &w[i]);
        ok(u.pending == 5 && u.queued == 0, "max_pending 0: no cap");
    }
    ok(xe_admit_share(64, 0, 1) == 64, "one worker: the whole cap");
    ok(xe_admit_share(5, 0, 2) == 3 && xe_admit_share(5, 1, 2) == 2, "split 5 over 2");
    ok(xe_admit_share(1, 3, 4) == 1, "at least 1 per worker");
    return tap_done();
}
