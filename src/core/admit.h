/* xedge: admission control of backend logins (issue 18, the storm): at
 * most max_pending logins in progress per backend server (connect, stream
 * header, login, bind until the splice); further logins wait in a bounded
 * FIFO, and beyond it are refused. Sans-IO: the glue keeps one struct
 * xe_admit per server (and worker), a struct xe_admit_wait per login, and
 * starts the login that xe_admit_leave hands it. Not locked: the caller's. */
#ifndef XE_ADMIT_H
#define XE_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

struct xe_admit_wait {
    struct xe_admit_wait *prev, *next;
    bool queued;
    void *ctx; /* the glue's (its connection) */
};

struct xe_admit {
    unsigned max_pending, max_queued; /* 0 max_pending: no cap */
    unsigned pending, queued;
    unsigned long refused; /* logins refused, the queue full */
    struct xe_admit_wait *head, *tail;
};

enum xe_admit_r {
    XE_ADMIT_GO,     /* a slot is the login's: start it; xe_admit_leave() after */
    XE_ADMIT_QUEUED, /* it waits: xe_admit_leave() of another hands it a slot,
                        or xe_admit_cancel() when it gives up */
    XE_ADMIT_FULL    /* refused: the queue is full (counted in refused) */
};

enum xe_admit_r xe_admit_enter(struct xe_admit *a, struct xe_admit_wait *w);
/* A login that held a slot is done (spliced, failed, gone): the slot goes
 * to the head of the queue, returned (now counted as pending; the caller
 * starts it), or NULL. */
struct xe_admit_wait *xe_admit_leave(struct xe_admit *a);
/* A queued login gives up (its client left, its deadline passed): out of
 * the queue. No-op when W is not queued. */
void xe_admit_cancel(struct xe_admit *a, struct xe_admit_wait *w);
/* The cap of worker INDEX of N when TOTAL is the server's: the total split
 * evenly (the first TOTAL % N get one more), at least 1; 0 stays 0. */
unsigned xe_admit_share(unsigned total, unsigned index, unsigned n);

#endif
