/*
 * The worker hand-off: work off the loop thread, results on it in FIFO order, cancellation on
 * close, and a loop that closes cleanly (uv_loop_close() == 0 is asserted after every test).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "uk_err.h"
#include "uk_limits.h"
#include "uk_worker.h"

#define JOBS 1000

struct fixture {
    uv_loop_t loop;
    uv_thread_t loop_thread;
    uk_worker *w;
    int closed; /* close_cb calls */

    /* Per job records. */
    int work_order[JOBS + UK_LIMIT_WORKER_QUEUE + 8];
    int done_order[JOBS + UK_LIMIT_WORKER_QUEUE + 8];
    int done_status[JOBS + UK_LIMIT_WORKER_QUEUE + 8];
    int work_count; /* touched by the worker thread only */
    int done_count; /* touched by the loop thread only */
    bool work_on_loop_thread;
    bool done_off_loop_thread;

    /* A gate for the first job, to keep the others pending. */
    uv_sem_t started;
    uv_sem_t release;
};

struct job {
    struct fixture *f;
    int index;
    bool gated;
};

static struct job jobs[JOBS + UK_LIMIT_WORKER_QUEUE + 8];

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->loop_thread = uv_thread_self();
    assert_int_equal(uv_sem_init(&f->started, 0), 0);
    assert_int_equal(uv_sem_init(&f->release, 0), 0);
    assert_int_equal(uk_worker_new(&f->w, &f->loop, "uk-test"), UK_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Every test ends with the worker closed; nothing may be left on the loop. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    uv_sem_destroy(&f->started);
    uv_sem_destroy(&f->release);
    free(f);
    return 0;
}

static int work(void *arg)
{
    struct job *j = arg;
    struct fixture *f = j->f;
    if (j->gated) {
        uv_sem_post(&f->started);
        uv_sem_wait(&f->release);
    }
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &f->loop_thread))
        f->work_on_loop_thread = true;
    f->work_order[f->work_count++] = j->index;
    return j->index % 7 == 0 ? UK_E_CARD_REMOVED : UK_OK;
}

static void done(void *arg, int status)
{
    struct job *j = arg;
    struct fixture *f = j->f;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &f->loop_thread))
        f->done_off_loop_thread = true;
    f->done_order[f->done_count] = j->index;
    f->done_status[f->done_count] = status;
    f->done_count++;
}

static void on_close(uk_worker *w, void *ctx)
{
    struct fixture *f = ctx;
    assert_ptr_equal(w, f->w);
    f->closed++;
}

static void submit(struct fixture *f, int i, bool gated)
{
    jobs[i] = (struct job){.f = f, .index = i, .gated = gated};
    assert_int_equal(uk_worker_submit(f->w, work, done, &jobs[i]), UK_OK);
}

static void test_worker_completes_1000_jobs_in_order_on_the_loop_thread(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < JOBS; i++)
        submit(f, i, false);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* returns once all are done */
    assert_int_equal(f->done_count, JOBS);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(f->work_order[i], i);
        assert_int_equal(f->done_order[i], i);
        assert_int_equal(f->done_status[i], i % 7 == 0 ? UK_E_CARD_REMOVED : UK_OK);
    }
    assert_false(f->done_off_loop_thread);
    uk_worker_close(f->w, on_close, f);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
}

static void test_worker_runs_work_off_the_loop_thread(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 10; i++)
        submit(f, i, false);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->work_count, 10);
    assert_false(f->work_on_loop_thread);
    uk_worker_close(f->w, NULL, NULL);
}

static void test_worker_close_cancels_pending_jobs_and_the_loop_closes(void **state)
{
    struct fixture *f = *state;
    submit(f, 0, true);
    for (int i = 1; i < 50; i++)
        submit(f, i, false);
    uv_sem_wait(&f->started); /* job 0 runs, 1..49 wait */
    uk_worker_close(f->w, on_close, f);
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);

    assert_int_equal(f->closed, 1);
    assert_int_equal(f->work_count, 1); /* only the job in progress ran */
    assert_int_equal(f->done_count, 50);
    assert_int_equal(f->done_order[0], 0);
    assert_int_equal(f->done_status[0], UK_E_CARD_REMOVED); /* its own result, 0 % 7 == 0 */
    for (int i = 1; i < 50; i++) {
        assert_int_equal(f->done_order[i], i);
        assert_int_equal(f->done_status[i], UK_E_CANCELLED);
    }
}

static void test_worker_submit_after_close_fails_without_calling_back(void **state)
{
    struct fixture *f = *state;
    uk_worker_close(f->w, on_close, f);
    jobs[0] = (struct job){.f = f, .index = 0};
    assert_int_equal(uk_worker_submit(f->w, work, done, &jobs[0]), UK_E_CANCELLED);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->work_count, 0);
    assert_int_equal(f->done_count, 0);
}

static void test_worker_idle_does_not_keep_the_loop_alive(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* returns at once */
    submit(f, 1, false);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_count, 1);
    uk_worker_close(f->w, on_close, f);
}

static void close_from_done(void *arg, int status)
{
    struct job *j = arg;
    done(arg, status);
    if (j->index == 0)
        uk_worker_close(j->f->w, on_close, j->f);
}

static void test_worker_may_be_closed_from_a_done_callback(void **state)
{
    struct fixture *f = *state;
    jobs[0] = (struct job){.f = f, .index = 0, .gated = true};
    assert_int_equal(uk_worker_submit(f->w, work, close_from_done, &jobs[0]), UK_OK);
    for (int i = 1; i < 5; i++) {
        jobs[i] = (struct job){.f = f, .index = i};
        assert_int_equal(uk_worker_submit(f->w, work, done, &jobs[i]), UK_OK);
    }
    uv_sem_wait(&f->started);
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->done_count, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f->done_order[i], i);
}

static void test_worker_full_queue_returns_busy_without_calling_back(void **state)
{
    struct fixture *f = *state;
    submit(f, 0, true);
    uv_sem_wait(&f->started); /* job 0 is out of the queue, running */
    for (int i = 1; i <= (int)UK_LIMIT_WORKER_QUEUE; i++)
        submit(f, i, false);
    int extra = (int)UK_LIMIT_WORKER_QUEUE + 1;
    jobs[extra] = (struct job){.f = f, .index = extra};
    assert_int_equal(uk_worker_submit(f->w, work, done, &jobs[extra]), UK_E_BUSY);
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_count, (int)UK_LIMIT_WORKER_QUEUE + 1);
    for (int i = 0; i < f->done_count; i++)
        assert_int_not_equal(f->done_order[i], extra);
    uk_worker_close(f->w, on_close, f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_completes_1000_jobs_in_order_on_the_loop_thread,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_runs_work_off_the_loop_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_close_cancels_pending_jobs_and_the_loop_closes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_submit_after_close_fails_without_calling_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_idle_does_not_keep_the_loop_alive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_may_be_closed_from_a_done_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_full_queue_returns_busy_without_calling_back,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
