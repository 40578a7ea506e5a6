/* pool.c — the worker pool: its threads and queue, a request's job from the event thread to a worker and
 * back, and requests started on the event thread (rk_pending: finish, offload, calloc, base). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/server_internal.h"

#define MAX_QUEUE 8192 /* jobs waiting for a worker */

void job_free(job *j)
{
    if (!j)
        return;
    json_decref(j->in.json);
    free(j->path);
    free(j->query);
    /* Bodies may hold My Numbers or provided values: wiped, not just freed. */
    if (j->body)
        rk_wipe(j->body, j->in.body_len);
    if (j->out.body)
        rk_wipe(j->out.body, j->out.body_len);
    free(j->body);
    free(j->out.body);
    free(j);
}

/* Event thread: the handler finished; send its answer. */
void on_job_done(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    record_stats(j->stats, j->out.status, mono_us() - j->started_us);
    send_now(j->req, j->srv, &j->out);
    job_free(j);
}

static void run_job(job *j)
{
    rk_server *srv = j->srv;
    if (j->route->fn)
        j->route->fn(srv->cfg.app, &j->in, &j->out);
    else if (strcmp(j->in.path, "/healthz") == 0)
        serve_health(srv, &j->out);
    else
        serve_metrics(srv, &j->out);
    if (!j->out.status)
        rk_reply_error(&j->out, 500, "internal", "the handler gave no answer");
}

static void on_offload_done(job *j);

/* Worker: j is done; the event thread takes it back. One wake-up of the
 * loop serves every job finished before the loop gets to them. */
static void hand_back(rk_server *srv, job *j)
{
    pthread_mutex_lock(&srv->fin_lock);
    j->next = NULL;
    if (srv->fin_tail)
        srv->fin_tail->next = j;
    else
        srv->fin_head = j;
    srv->fin_tail = j;
    int wake = !srv->fin_scheduled;
    srv->fin_scheduled = 1;
    pthread_mutex_unlock(&srv->fin_lock);
    if (wake) /* thread-safe: libevent locks the base and wakes the loop */
        event_active(srv->finished, EV_WRITE, 0);
}

/* Event thread: the jobs the workers finished, each to its answer or to
 * the next step of its started request. */
static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    rk_server *srv = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&srv->fin_lock);
    job *j = srv->fin_head;
    srv->fin_head = srv->fin_tail = NULL;
    srv->fin_scheduled = 0;
    pthread_mutex_unlock(&srv->fin_lock);
    while (j) {
        job *next = j->next; /* a step may queue j again */
        j->next = NULL;
        if (j->work_done)
            on_offload_done(j);
        else
            on_job_done(-1, 0, j);
        j = next;
    }
}

static void *worker_main(void *arg)
{
    rk_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->lock);
        while (!srv->head && !srv->stopping)
            pthread_cond_wait(&srv->cond, &srv->lock);
        job *j = srv->head;
        if (!j) {
            pthread_mutex_unlock(&srv->lock);
            return NULL;
        }
        srv->head = j->next;
        j->next = NULL; /* a flow may queue the same job again later */
        if (!srv->head)
            srv->tail = NULL;
        srv->queued--;
        pthread_mutex_unlock(&srv->lock);
        if (j->work)
            j->work(j->work_arg);
        else
            run_job(j);
        hand_back(srv, j);
    }
}

int enqueue(rk_server *srv, job *j)
{
    pthread_mutex_lock(&srv->lock);
    int ok = srv->queued < MAX_QUEUE && !srv->stopping;
    if (ok) {
        if (srv->tail)
            srv->tail->next = j;
        else
            srv->head = j;
        srv->tail = j;
        srv->queued++;
        pthread_cond_signal(&srv->cond);
    }
    pthread_mutex_unlock(&srv->lock);
    return ok;
}

/* Event thread: a started request has its answer. */
void rk_pending_finish(rk_pending *p)
{
    job *j = (job *)p;
    j->srv->started--;
    if (!j->out.status)
        rk_reply_error(&j->out, 500, "internal", "the handler gave no answer");
    record_stats(j->stats, j->out.status, mono_us() - j->started_us);
    send_now(j->req, j->srv, &j->out);
    job_free(j);
}

/* Event thread: the offloaded work is done; back to the started request. */
static void on_offload_done(job *j)
{
    void (*done)(void *) = j->work_done;
    void *work_arg = j->work_arg;
    j->work = NULL;
    j->work_done = NULL;
    j->work_arg = NULL;
    done(work_arg);
}

rk_rc rk_pending_offload(rk_pending *p, void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
    job *j = (job *)p;
    j->work = work;
    j->work_done = done;
    j->work_arg = arg;
    if (enqueue(j->srv, j))
        return RK_OK;
    /* no worker can take it: the caller answers 503, the loop does no such work */
    j->work = NULL;
    j->work_done = NULL;
    j->work_arg = NULL;
    return RK_ERR_BUSY;
}

void *rk_pending_calloc(rk_pending *p, rk_response *resp, size_t size)
{
    void *state = calloc(1, size);
    if (!state) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        rk_pending_finish(p);
    }
    return state;
}

struct event_base *rk_pending_base(const rk_pending *p)
{
    return ((const job *)p)->srv->base;
}

/* Starts the workers; a thread that cannot start stops the server (the loop ends at once). */
rk_rc pool_start(rk_server *srv)
{
    pthread_mutex_init(&srv->fin_lock, NULL);
    if (!(srv->finished = event_new(srv->base, -1, 0, on_finished, srv)))
        return RK_ERR_NOMEM;
    srv->n_threads = srv->cfg.workers > 0 ? srv->cfg.workers : 4;
    srv->threads = calloc((size_t)srv->n_threads, sizeof *srv->threads);
    if (!srv->threads)
        return RK_ERR_NOMEM;
    for (int i = 0; i < srv->n_threads; i++)
        if (pthread_create(&srv->threads[i], NULL, worker_main, srv) != 0) {
            srv->n_threads = i;
            rk_server_stop(srv);
            break;
        }
    return RK_OK;
}

/* Stop: queued requests were never acknowledged, so they are dropped
 * (their clients retry with the same id); running handlers finish. */
void pool_stop(rk_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->stopping = 1;
    job *queued = srv->head;
    srv->head = srv->tail = NULL;
    srv->queued = 0;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    for (int i = 0; i < srv->n_threads; i++)
        pthread_join(srv->threads[i], NULL);
    srv->n_threads = 0;
    while (queued) {
        job *next = queued->next;
        if (queued->work) { /* a started request's step: it finishes, here */
            queued->work(queued->work_arg);
            on_offload_done(queued);
        } else {
            job_free(queued);
        }
        queued = next;
    }
}
