/* xedge: admission control of backend logins (admit.h). */
#include "config.h"

#include <stddef.h>

#include "admit.h"

enum xe_admit_r
xe_admit_enter(struct xe_admit *a, struct xe_admit_wait *w)
{
    w->prev = w->next = NULL;
    w->queued = false;
    if (a->max_pending == 0 || (a->pending < a->max_pending && a->head == NULL)) {
        a->pending++;
        return XE_ADMIT_GO;
    }
    if (a->queued >= a->max_queued) {
        a->refused++;
        return XE_ADMIT_FULL;
    }
    w->prev = a->tail;
    if (a->tail)
        a->tail->next = w;
    else
        a->head = w;
    a->tail = w;
    w->queued = true;
    a->queued++;
    return XE_ADMIT_QUEUED;
}

void
xe_admit_cancel(struct xe_admit *a, struct xe_admit_wait *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        a->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        a->tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
    a->queued--;
}

struct xe_admit_wait *
xe_admit_leave(struct xe_admit *a)
{
    struct xe_admit_wait *w = a->head;

    if (a->pending > 0)
        a->pending--;
    if (w == NULL || (a->max_pending && a->pending >= a->max_pending))
        return NULL;
    xe_admit_cancel(a, w);
    a->pending++;
    return w;
}

unsigned
xe_admit_share(unsigned total, unsigned index, unsigned n)
{
    unsigned s;

    if (total == 0 || n <= 1)
        return total;
    s = total / n + (index < total % n ? 1 : 0);
    return s ? s : 1;
}
