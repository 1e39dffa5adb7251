/*
 * listall.c - the runner of listall.h: one private loop, one mg_upstream_t per enabled server, a
 * state hook that sends the list requests once the server is ready, page callbacks that follow
 * nextCursor, one timer for the whole run, then a stop of every upstream and a clean loop close.
 * Read next: upstream.h.
 */
#include "listall.h"
#include "../common/err.h"
#include "upstream.h"
#include "upstream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lsrv lsrv_t;

/* The callback data of one list method's requests (one page in flight per method). */
typedef struct lkind {
    lsrv_t *s;
    int k;
} lkind_t;

struct lsrv {
    mg_upstream_listing_t *out;
    mg_upstream_t *up;
    lkind_t kinds[MG_UPSTREAM_LIST_MAX];
    unsigned pages[MG_UPSTREAM_LIST_MAX];
    int outstanding, started, done;
    struct lrun *run;
};

typedef struct lrun {
    const mg_upstream_list_opts_t *o;
    uv_loop_t loop;
    uv_timer_t timer;
    lsrv_t *srv;
    size_t n, pending, stopping;
} lrun_t;

/* Records the first error; the server is done at its first error or when nothing is outstanding. */
static void finish(lsrv_t *s, const char *error)
{
    if (error != NULL && s->out->error == NULL)
        s->out->error = strdup(error);
    if (s->done)
        return;
    if (error == NULL && s->outstanding > 0)
        return;
    s->done = 1;
    if (--s->run->pending == 0)
        uv_stop(&s->run->loop);
}

static void fetch(lsrv_t *s, int k, const char *cursor);

static void page_cb(mg_upstream_req_t *req, int err, json_t *response, const char *message, void *data)
{
    lkind_t *lk = data;
    lsrv_t *s = lk->s;
    int k = lk->k;
    const mg_upstream_list_opts_t *o = s->run->o;
    if (s->done)
        return;
    json_t *result = response ? json_object_get(response, "result") : NULL;
    json_t *items = json_object_get(result, o->keys[k]);
    if (err != 0 || !json_is_array(items)) {
        char m[400];
        const char *emsg = json_string_value(json_object_get(json_object_get(response, "error"), "message"));
        snprintf(m, sizeof m, "%s failed: %s", o->methods[k],
                 message ? message
                 : emsg  ? emsg
                 : err   ? mg_strerror(err)
                         : o->no_list_error);
        s->outstanding--;
        finish(s, m);
        return;
    }
    json_array_extend(s->out->lists[k], items);
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next != NULL && next[0] != '\0' && ++s->pages[k] < o->max_pages) {
        fetch(s, k, next);
        return;
    }
    s->outstanding--;
    finish(s, NULL);
}

static void fetch(lsrv_t *s, int k, const char *cursor)
{
    const char *method = s->run->o->methods[k];
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    json_t *msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
    int r = mg_upstream_request(s->up, msg, 0, page_cb, NULL, &s->kinds[k], NULL);
    if (r != 0) {
        char m[200];
        snprintf(m, sizeof m, "%s could not be sent: %s", method, mg_strerror(r));
        s->outstanding--;
        finish(s, m);
    }
}

static void state_cb(mg_upstream_t *up, mg_upstream_state_t state, void *data)
{
    lsrv_t *s = data;
    const mg_upstream_list_opts_t *o = s->run->o;
    if (s->done || s->started)
        return;
    if (state == MG_UPSTREAM_READY) {
        s->started = 1;
        json_t *ir = mg_upstream_init_result(up);
        const char *in = json_string_value(json_object_get(ir, "instructions"));
        if (in != NULL && in[0] != '\0')
            s->out->instructions = strdup(in);
        const char *pv = json_string_value(json_object_get(ir, "protocolVersion"));
        if (mg_upstream_era(up) != NULL)
            s->out->era = strdup(mg_upstream_era(up));
        if (mg_upstream_http_version(up) != NULL)
            s->out->http = strdup(mg_upstream_http_version(up));
        else if (pv != NULL)
            s->out->era = mg__fmt("%s (stdio)", pv);
        json_t *caps = json_object_get(ir, "capabilities");
        s->outstanding = 1; /* guard: finish only after every method was sent */
        for (int k = 0; k < o->nmethods; k++) {
            if (json_object_get(caps, o->caps[k]) == NULL)
                continue; /* not offered: nothing to list */
            s->outstanding++;
            fetch(s, k, NULL);
        }
        s->outstanding--;
        finish(s, NULL);
    } else if (state == MG_UPSTREAM_BACKOFF) {
        const char *e = mg_upstream_last_error(up);
        finish(s, e ? e : "the server failed to start");
    }
}

static void timeout_cb(uv_timer_t *t)
{
    lrun_t *r = t->data;
    for (size_t i = 0; i < r->n; i++)
        if (!r->srv[i].done) {
            r->srv[i].outstanding = 0;
            finish(&r->srv[i], r->o->timeout_error);
        }
}

static void stopped_cb(mg_upstream_t *up, void *data)
{
    lsrv_t *s = data;
    mg_upstream_free(up);
    s->up = NULL;
    s->run->stopping--;
}

static void run_all(const mg_config_t *cfg, lrun_t *r)
{
    static const mg_upstream_hooks_t hooks = {NULL, state_cb};
    uv_loop_init(&r->loop);
    uv_timer_init(&r->loop, &r->timer);
    r->timer.data = r;
    for (size_t i = 0; i < r->n; i++) {
        lsrv_t *s = &r->srv[i];
        mg_upstream_opts_t uo = {s->out->cfg,  &cfg->limits, r->o->client_name, MG_VERSION, 0,
                                 &cfg->egress, NULL};
        if (mg_upstream_new(&r->loop, &uo, &hooks, s, &s->up) != 0) {
            s->up = NULL;
            finish(s, "out of memory");
            continue;
        }
        mg_upstream_start(s->up);
    }
    if (r->pending > 0) {
        uv_timer_start(&r->timer, timeout_cb, r->o->timeout_ms, 0);
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    uv_timer_stop(&r->timer);
    for (size_t i = 0; i < r->n; i++) {
        if (r->srv[i].up != NULL) {
            r->stopping++;
            mg_upstream_stop(r->srv[i].up, 2000, stopped_cb, &r->srv[i]);
        }
    }
    while (r->stopping > 0 && uv_run(&r->loop, UV_RUN_ONCE) != 0) {
    }
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
}

int mg_upstream_list_all(const mg_config_t *cfg, const mg_upstream_list_opts_t *o,
                         mg_upstream_listing_t **out, size_t *n)
{
    lrun_t run;
    memset(&run, 0, sizeof run);
    run.o = o;
    size_t cap = cfg->nservers ? cfg->nservers : 1;
    mg_upstream_listing_t *l = calloc(cap, sizeof *l);
    run.srv = calloc(cap, sizeof *run.srv);
    *out = NULL;
    *n = 0;
    if (l == NULL || run.srv == NULL) {
        free(l);
        free(run.srv);
        return MG_ENOMEM;
    }
    for (size_t i = 0; i < cfg->nservers; i++) {
        if (cfg->servers[i].disabled)
            continue;
        lsrv_t *s = &run.srv[run.n];
        s->out = &l[run.n++];
        s->out->cfg = &cfg->servers[i];
        s->run = &run;
        for (int k = 0; k < o->nmethods; k++) {
            s->out->lists[k] = json_array();
            s->kinds[k].s = s;
            s->kinds[k].k = k;
        }
    }
    run.pending = run.n;
    run_all(cfg, &run);
    free(run.srv);
    *out = l;
    *n = run.n;
    return 0;
}

void mg_upstream_listings_free(mg_upstream_listing_t *l, size_t n)
{
    for (size_t i = 0; l != NULL && i < n; i++) {
        for (int k = 0; k < MG_UPSTREAM_LIST_MAX; k++)
            json_decref(l[i].lists[k]);
        free(l[i].instructions);
        free(l[i].era);
        free(l[i].http);
        free(l[i].error);
    }
    free(l);
}
