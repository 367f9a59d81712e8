#include "uk_worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"

struct job {
    struct job *next;
    uk_worker_work_fn work;
    uk_worker_done_fn done;
    void *arg;
    int status;
};

struct job_list {
    struct job *head;
    struct job **tail;
};

struct uk_worker {
    uv_loop_t *loop;
    uv_async_t async;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    char name[16];

    /* Shared with the thread, under mu. */
    struct job_list pending; /* submitted, not started */
    size_t pending_count;
    struct job_list finished; /* ran or cancelled, done_fn not yet called */
    bool stop;                /* set by close: cancel what is pending, then leave */
    bool exited;              /* the thread has moved its last job to finished */

    /* Loop thread only. */
    size_t outstanding; /* accepted jobs whose done_fn has not run yet */
    bool closing;
    bool joined;
    uk_worker_close_cb close_cb;
    void *close_ctx;
};

static void list_init(struct job_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void list_push(struct job_list *l, struct job *j)
{
    j->next = NULL;
    *l->tail = j;
    l->tail = &j->next;
}

static struct job *list_pop(struct job_list *l)
{
    struct job *j = l->head;
    if (j != NULL) {
        l->head = j->next;
        if (l->head == NULL)
            l->tail = &l->head;
    }
    return j;
}

static void thread_main(void *arg)
{
    uk_worker *w = arg;
    if (w->name[0] != '\0')
        pthread_setname_np(pthread_self(), w->name);

    uv_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->pending.head == NULL)
            uv_cond_wait(&w->cond, &w->mu);
        if (w->stop)
            break;
        struct job *j = list_pop(&w->pending);
        w->pending_count--;
        uv_mutex_unlock(&w->mu);

        j->status = j->work(j->arg);

        uv_mutex_lock(&w->mu);
        list_push(&w->finished, j);
        uv_mutex_unlock(&w->mu);
        uv_async_send(&w->async);
        uv_mutex_lock(&w->mu);
    }
    /* Closing: what has not started is cancelled, after everything that ran (FIFO holds). */
    struct job *j;
    while ((j = list_pop(&w->pending)) != NULL) {
        j->status = UK_E_CANCELLED;
        list_push(&w->finished, j);
    }
    w->pending_count = 0;
    w->exited = true;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

static void free_worker(uk_worker *w)
{
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->mu);
    free(w);
}

static void on_closed(uv_handle_t *h)
{
    uk_worker *w = h->data;
    if (w->close_cb != NULL)
        w->close_cb(w, w->close_ctx);
    free_worker(w);
}

static void on_closed_failed_start(uv_handle_t *h)
{
    free_worker(h->data);
}

static void on_async(uv_async_t *h)
{
    uk_worker *w = h->data;

    uv_mutex_lock(&w->mu);
    struct job *j = w->finished.head;
    list_init(&w->finished);
    bool exited = w->exited;
    uv_mutex_unlock(&w->mu);

    while (j != NULL) {
        struct job *next = j->next;
        uk_worker_done_fn done = j->done;
        void *arg = j->arg;
        int status = j->status;
        free(j);
        w->outstanding--;
        done(arg, status); /* may submit or close */
        j = next;
    }

    if (w->outstanding == 0 && !w->closing)
        uv_unref((uv_handle_t *)&w->async);

    /* exited was read with the list, so the list held the thread's last jobs. */
    if (exited && w->closing && !w->joined) {
        uv_thread_join(&w->thread); /* the thread is past its last statement */
        w->joined = true;
        uv_close((uv_handle_t *)&w->async, on_closed);
    }
}

int uk_worker_new(uk_worker **out, uv_loop_t *loop, const char *name)
{
    uk_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return UK_E_NO_MEMORY;
    w->loop = loop;
    list_init(&w->pending);
    list_init(&w->finished);
    if (name != NULL) {
        strncpy(w->name, name, sizeof(w->name) - 1);
        w->name[sizeof(w->name) - 1] = '\0';
    }

    int rc = uv_mutex_init(&w->mu);
    if (rc != 0) {
        free(w);
        return UK_E_INTERNAL;
    }
    rc = uv_cond_init(&w->cond);
    if (rc != 0) {
        uv_mutex_destroy(&w->mu);
        free(w);
        return UK_E_INTERNAL;
    }
    rc = uv_async_init(loop, &w->async, on_async);
    if (rc != 0) {
        UK_LOG_ERR("uv_async_init: %s", uv_strerror(rc));
        free_worker(w);
        return UK_E_INTERNAL;
    }
    w->async.data = w;
    uv_unref((uv_handle_t *)&w->async); /* idle workers do not keep the loop alive */

    rc = uv_thread_create(&w->thread, thread_main, w);
    if (rc != 0) {
        UK_LOG_ERR("uv_thread_create: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&w->async, on_closed_failed_start);
        return rc == UV_ENOMEM ? UK_E_NO_MEMORY : UK_E_INTERNAL;
    }
    *out = w;
    return UK_OK;
}

int uk_worker_submit(uk_worker *w, uk_worker_work_fn work_fn, uk_worker_done_fn done_fn, void *arg)
{
    if (w->closing)
        return UK_E_CANCELLED;

    struct job *j = malloc(sizeof(*j));
    if (j == NULL)
        return UK_E_NO_MEMORY;
    j->work = work_fn;
    j->done = done_fn;
    j->arg = arg;
    j->status = UK_OK;

    uv_mutex_lock(&w->mu);
    if (w->pending_count >= UK_LIMIT_WORKER_QUEUE) {
        uv_mutex_unlock(&w->mu);
        free(j);
        return UK_E_BUSY;
    }
    list_push(&w->pending, j);
    w->pending_count++;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->mu);

    if (w->outstanding++ == 0)
        uv_ref((uv_handle_t *)&w->async);
    return UK_OK;
}

void uk_worker_close(uk_worker *w, uk_worker_close_cb close_cb, void *ctx)
{
    w->closing = true;
    w->close_cb = close_cb;
    w->close_ctx = ctx;
    uv_ref((uv_handle_t *)&w->async); /* stay alive until the thread has left */

    uv_mutex_lock(&w->mu);
    w->stop = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->mu);
}
