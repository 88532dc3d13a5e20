/* xedge: in-band registration's jobs in the thread pool; see register_io.h. */
#include "register_io.h"

#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "util.h"
#include "xelimits.h"

struct xe_regio_req {
    uv_work_t work;
    struct xe_reg_job *job;
    xe_regio_cb cb;
    void *ctx;
    bool cancelled;
};

static unsigned g_running; /* (atomic: every worker's loop queues jobs) */

unsigned
xe_regio_running(void)
{
    return __atomic_load_n(&g_running, __ATOMIC_RELAXED);
}

static void
work(uv_work_t *w)
{
    struct xe_regio_req *q = w->data;

    xe_reg_job_run(q->job);
}

static void
done(uv_work_t *w, int status)
{
    struct xe_regio_req *q = w->data;

    __atomic_sub_fetch(&g_running, 1, __ATOMIC_RELAXED);
    if (status == UV_ECANCELED)
        xe_reg_job_busy(q->job);
    xe_metrics_inc(XE_M_REGISTER_JOBS, xe_reg_job_op_name(q->job),
                   q->cancelled ? "dropped" : xe_reg_job_result(q->job));
    if (!q->cancelled)
        q->cb(q->ctx, q->job); /* the job is the callback's */
    else {
        xe_info("event=register-job op=%s result=dropped job=%s (the connection closed "
                "meanwhile; what was written stays written)",
                xe_reg_job_op_name(q->job), xe_reg_job_result(q->job));
        xe_reg_job_free(&q->job);
    }
    free(q);
}

struct xe_regio_req *
xe_regio_start(uv_loop_t *loop, struct xe_reg_job *job, xe_regio_cb cb, void *ctx)
{
    struct xe_regio_req *q;

    if (__atomic_add_fetch(&g_running, 1, __ATOMIC_RELAXED) > XE_REGIO_MAX_JOBS)
        goto busy;
    q = xe_calloc(1, sizeof(*q));
    q->job = job;
    q->cb = cb;
    q->ctx = ctx;
    q->work.data = q;
    if (uv_queue_work(loop, &q->work, work, done) == 0)
        return q;
    free(q);
busy:
    __atomic_sub_fetch(&g_running, 1, __ATOMIC_RELAXED);
    xe_reg_job_busy(job);
    xe_metrics_inc(XE_M_REGISTER_JOBS, xe_reg_job_op_name(job), "busy");
    return NULL;
}

void
xe_regio_cancel(struct xe_regio_req *req)
{
    if (req != NULL)
        req->cancelled = true;
}
