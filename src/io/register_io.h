/* xedge: in-band registration's jobs in libuv's thread pool (I/O glue over
 * register.h).
 *
 * A registration, a password change and an account removal derive SCRAM
 * secrets (PBKDF2, scram_iterations per hash) and write the user store (an
 * LMDB write transaction, flushed to disk): nothing of it runs on a loop.
 * xe_regio_start queues the job with uv_queue_work on the connection's
 * loop; the callback runs on that loop with the job done. At most
 * XE_REGIO_MAX_JOBS jobs are under way at a time, over all workers; beyond,
 * the job is not run: it is marked busy (the client's answer is a
 * <resource-constraint/>, type wait) and the caller answers it at once.
 * Each job is counted in xedge_register_jobs_total{op,result}; the jobs
 * under way are the gauge xedge_register_jobs. */
#ifndef XE_REGISTER_IO_H
#define XE_REGISTER_IO_H

#include <uv.h>

#include "register.h"

struct xe_regio_req;
/* The job is the callback's again (to answer, then free). */
typedef void (*xe_regio_cb)(void *ctx, struct xe_reg_job *job);

/* Run JOB in the thread pool of LOOP, then CB on LOOP. NULL: not queued
 * (too many under way, or libuv refused): JOB is marked busy and stays the
 * caller's, CB is not called. */
struct xe_regio_req *xe_regio_start(uv_loop_t *loop, struct xe_reg_job *job,
                                    xe_regio_cb cb, void *ctx);
/* The caller goes away (its connection closed): no callback; the job is
 * freed when it ends, its result dropped. */
void xe_regio_cancel(struct xe_regio_req *req);
/* Jobs under way (queued or running), over all loops. */
unsigned xe_regio_running(void);

#endif
