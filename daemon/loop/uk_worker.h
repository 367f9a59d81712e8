/*
 * uk_worker.h - run blocking work on a thread of its own, report back on the loop thread.
 *
 * One uk_worker is one thread with a FIFO job queue (the token layer uses one per reader, so card
 * I/O for a reader is serialised and never runs on the loop thread). Results come back through a
 * uv_async_t; since uv_async_send coalesces, the loop side drains a queue of finished jobs on each
 * wake-up.
 *
 * Thread:
 *   - uk_worker_new, uk_worker_submit and uk_worker_close: loop thread only.
 *   - work_fn: the worker's thread, one job at a time, in submission order.
 *   - done_fn and close_cb: the loop thread, from inside uv_run, never from inside a uk_worker_*
 *     call. done_fn is called in submission order.
 *
 * Callback guarantees:
 *   - A call that takes a callback and returns an error never calls it.
 *   - Every job accepted by uk_worker_submit gets exactly one done_fn call: with work_fn's return
 *     value after work_fn ran, or with UK_E_CANCELLED (work_fn not run) when the worker was closed
 *     before the job started. A job that has started always runs to its end: work_fn is never
 *     interrupted, so make blocking calls cancellable from outside (e.g. SCardCancel) if they can
 *     wait for long.
 *   - close_cb comes after the last done_fn.
 *
 * Loop liveness: the worker keeps the loop alive (uv_run does not return) only while it has jobs
 * outstanding or is closing; an idle worker does not, like uv_queue_work.
 *
 * Ownership: uk_worker_new allocates the worker; uk_worker_close is its destructor. The memory is
 * released after close_cb returns, so the pointer must not be used after close_cb (uk_worker_submit
 * between uk_worker_close and close_cb is fine and returns UK_E_CANCELLED). After close_cb the
 * worker holds no uv handle, so uv_loop_close() can return 0. The caller owns arg.
 */
#ifndef UK_WORKER_H
#define UK_WORKER_H

#include <uv.h>

typedef struct uk_worker uk_worker;

/* Runs on the worker thread. Its return value (UK_OK or a UK_E_* code) is passed to done_fn. */
typedef int (*uk_worker_work_fn)(void *arg);

/* Runs on the loop thread: status is work_fn's return value, or UK_E_CANCELLED. */
typedef void (*uk_worker_done_fn)(void *arg, int status);

/* Runs on the loop thread once the worker is gone; w is only for identification. */
typedef void (*uk_worker_close_cb)(uk_worker *w, void *ctx);

/*
 * Create a worker on loop and start its thread. name (copied, up to 15 bytes kept) names the thread
 * for debuggers and may be NULL. Errors: UK_E_NO_MEMORY, UK_E_INTERNAL (thread or handle creation
 * failed); on error *out is untouched and nothing is left on the loop.
 */
int uk_worker_new(uk_worker **out, uv_loop_t *loop, const char *name)
    __attribute__((warn_unused_result));

/*
 * Queue a job. work_fn and done_fn are required. Errors: UK_E_CANCELLED (the worker is closing),
 * UK_E_BUSY (UK_LIMIT_WORKER_QUEUE jobs are already waiting), UK_E_NO_MEMORY; on error neither
 * callback is ever called.
 */
int uk_worker_submit(uk_worker *w, uk_worker_work_fn work_fn, uk_worker_done_fn done_fn, void *arg)
    __attribute__((warn_unused_result));

/*
 * Close the worker: jobs not yet started are cancelled (their done_fn gets UK_E_CANCELLED), the
 * job in progress, if any, finishes and reports normally, the thread is joined without blocking
 * the loop (the join happens once the thread has said it is leaving), the uv handle is closed,
 * close_cb (may be NULL) is called with ctx, and the worker is freed. Calling it twice is a
 * programming error. May be called from inside a done_fn.
 */
void uk_worker_close(uk_worker *w, uk_worker_close_cb close_cb, void *ctx);

#endif
