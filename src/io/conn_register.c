/* xedge: in-band registration (register.h), the glue's part: a
 * registration, a password change or an account removal runs in the thread
 * pool (register_io.h) while the client is not read; its answer comes back
 * on the loop, then what the client sent after the request is parsed, in
 * order. A connection that closes meanwhile cancels the request: the job
 * ends in the pool and is freed there, its answer dropped (the job holds
 * copies, no pointer to the connection). */
#include "register_io.h"
#include "server_impl.h"

/* Reading stops while a job runs: the stream's resume (backpressure, R2)
 * waits for c->reg_req to clear (xe_srv_resume_reading). */
static void
reg_resume(struct conn *c)
{
    if (!c->closed && c->reg_req == NULL && !c->held)
        xe_srv_resume_reading(c, true);
}

/* ---- before authentication: the login machine's XE_SD_REGISTER ---------- */

static void
on_preauth_done(void *ctx, struct xe_reg_job *job)
{
    struct conn *c = ctx;

    c->reg_req = NULL;
    if (c->closed || c->sess == NULL) {
        xe_reg_job_free(&job);
        return;
    }
    xe_srv_cork(c);
    xe_srv_exec(c, xe_sess_reg_done(c->sess, job, uv_now(c->w->loop)));
    reg_resume(c); /* (what TLS holds first, then read again) */
    xe_srv_uncork(c);
}

void
xe_srv_reg_preauth(struct conn *c)
{
    struct xe_reg_job *job = c->sess ? xe_sess_take_reg_job(c->sess) : NULL;

    xe_srv_pause_reading(c, true);
    if (job == NULL) { /* (the machine said REGISTER without a job) */
        xe_err("event=register-error peer=%s error=\"no job for the request\"", c->peer);
        xe_srv_close_conn(c);
        return;
    }
    c->reg_req = xe_regio_start(c->w->loop, job, on_preauth_done, c);
    if (c->reg_req == NULL) /* too many under way: answered busy at once */
        on_preauth_done(c, job);
}

/* ---- after authentication: a spliced request's job ------------------------ */

static void
on_postauth_done(void *ctx, struct xe_reg_job *job)
{
    struct conn *c = ctx;
    struct xe_buf up;
    enum xe_rs_result r;

    c->reg_req = NULL;
    if (c->closed || c->reg == NULL) {
        xe_reg_job_free(&job);
        return;
    }
    xe_buf_init(&up, 0);
    r = xe_regsplice_job_done(c->reg, job, &up);
    xe_srv_reg_deliver(c, r, &up); /* (another request: another job) */
    xe_buf_free(&up);
    if (c->closed || (c->backend_inited && xe_stream_above_high(&c->bs, 0)))
        return; /* (the backend's drain resumes reading) */
    reg_resume(c);
}

void
xe_srv_reg_postauth(struct conn *c)
{
    struct xe_reg_job *job = c->reg ? xe_regsplice_take_job(c->reg) : NULL;

    if (job == NULL)
        return;
    xe_srv_pause_reading(c, true);
    c->reg_req = xe_regio_start(c->w->loop, job, on_postauth_done, c);
    if (c->reg_req == NULL) /* too many under way: answered busy at once */
        on_postauth_done(c, job);
}

void
xe_srv_reg_cancel(struct conn *c)
{
    xe_regio_cancel(c->reg_req);
    c->reg_req = NULL;
}
