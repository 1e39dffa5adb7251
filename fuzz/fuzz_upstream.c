/*
 * fuzz_upstream.c - libFuzzer target: what a child writes on stdout, through the real upstream
 * code (src/upstream/child.c: framing, JSON parse, dispatch of responses, progress, server
 * requests and notifications, the initialize handshake; upstream.c: request completion).
 *
 * A child record is built by hand instead of spawned (no process: its stdin is /dev/null, its pid
 * 0 so no signal is ever sent), with three requests in flight (one with a progress token); the
 * input is fed to its stdout splitter in chunks, then the child is torn down as finalize() would
 * and the upstream stopped. child.c is #included to reach its statics (h2o's unit-test style);
 * the rest of upstream/ comes from mgcore.
 * Input: byte 0 bit 0 = child still in INIT (the input may answer initialize, id 1), bit 1 = the
 * same bytes also go to stderr; byte 1 = read chunk size; then the child's stdout.
 * Oracles: every request completes exactly once, after the teardown at the latest; the loop
 * closes cleanly (no handle leaked); ASan/UBSan/LSan on everything.
 * Read next: src/upstream/upstream_int.h.
 */
#include "../src/upstream/child.c"

#include <fcntl.h>
#include <unistd.h>

#define NREQ 3

typedef struct fz_call {
    int done;
    int related;
} fz_call_t;

static uv_loop_t loop;
static int devnull = -1;

static void fz_done_cb(mg_upstream_req_t *req, int err, json_t *response, const char *message, void *data)
{
    fz_call_t *c = data;
    if (c->done++ != 0)
        abort(); /* completed twice */
    if (err == 0 && !json_is_object(response))
        abort();
    if (err != 0 && (response != NULL || message == NULL))
        abort();
}

static void fz_related_cb(mg_upstream_req_t *req, mg_upstream_origin_t origin, json_t *msg, void *data)
{
    fz_call_t *c = data;
    if (c->done || !json_is_object(msg))
        abort(); /* related after done */
    c->related++;
}

static void fz_message_cb(mg_upstream_t *up, mg_upstream_origin_t origin, json_t *msg, void *data)
{
    if (!json_is_object(msg))
        abort();
}

static void fz_stopped_cb(mg_upstream_t *up, void *data)
{
    *(int *)data = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uv_loop_init(&loop);
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    mg_log_set_level(getenv("MG_FUZZ_LOG") ? MG_LOG_DEBUG : MG_LOG_ERROR + 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 20)
        return 0;
    int init_mode = data[0] & 1, to_stderr = data[0] & 2;
    size_t chunk = (size_t)data[1] * 37 + 1;
    data += 2;
    size -= 2;

    char *args[] = {NULL};
    mg_server_config_t server = {0};
    server.name = "fz";
    server.command = "/nonexistent";
    server.args = args;
    server.instances = 1;
    mg_limits_t limits;
    mg_limits_default(&limits);
    limits.max_line_bytes = 2048; /* small, so over-long lines are reachable */
    mg_upstream_opts_t opts = {
        .server = &server, .limits = &limits, .client_name = "mcpgate-fuzz", .client_version = "0"};
    mg_upstream_hooks_t hooks = {fz_message_cb, NULL};
    mg_upstream_t *up = NULL;
    if (mg_upstream_new(&loop, &opts, &hooks, NULL, &up) != 0)
        abort();
    up->started = 1;

    /* The child, as mg__child_spawn would leave it, minus the process. */
    mg__slot_t *slot = &up->slots[0];
    mg__child_t *child = calloc(1, sizeof *child);
    child->up = up;
    child->slot = 0;
    child->generation = ++slot->generation;
    child->state = init_mode ? MG__CHILD_INIT : MG__CHILD_READY;
    child->ever_ready = !init_mode;
    mg__idtable_init(&child->table);
    mg__list_init(&child->inflight);
    mg__linebuf_init(&child->outbuf, up->max_line, 0);
    mg__linebuf_init(&child->errbuf, MG__STDERR_LINE_MAX, 1);
    uv_pipe_init(&loop, &child->in, 0);
    uv_pipe_open(&child->in, dup(devnull));
    uv_pipe_init(&loop, &child->out, 0);
    uv_pipe_init(&loop, &child->err, 0);
    uv_timer_init(&loop, &child->timer);
    child->in.data = child->out.data = child->err.data = child->timer.data = child->proc.data = child;
    child->nopen = 4; /* proc is never initialised, so never closed */
    up->nhandles += 4;
    slot->child = child;
    if (init_mode)
        child->init_id = slot->next_id++; /* 1 */

    fz_call_t calls[NREQ] = {{0}};
    for (int i = 0; i < NREQ; i++) {
        json_t *m = i == 1 ? json_pack("{s:s,s:{s:s,s:{s:s}}}", "method", "tools/call", "params", "name", "x",
                                       "_meta", "progressToken", "tok")
                           : json_pack("{s:s,s:{}}", "method", i == 0 ? "tools/list" : "ping", "params");
        if (mg_upstream_request(up, m, 0, fz_done_cb, fz_related_cb, &calls[i], NULL) != 0)
            abort();
    }
    uv_run(&loop, UV_RUN_NOWAIT);

    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (slot->child != child)
            break; /* finalized meanwhile (cannot happen without an exit; keep the harness honest) */
        mg__linebuf_feed(&child->outbuf, (const char *)data + off, n, &stdout_ops, child);
        if (to_stderr)
            mg__linebuf_feed(&child->errbuf, (const char *)data + off, n, &stderr_ops, child);
        uv_run(&loop, UV_RUN_NOWAIT); /* deferred completions */
    }
    mg__linebuf_finish(&child->outbuf, &stdout_ops, child);
    mg__linebuf_finish(&child->errbuf, &stderr_ops, child);

    /* Teardown as finalize() does it after an exit, without the process handle. */
    child->exited = 1;
    child->finalized = 1;
    uv_timer_stop(&child->timer);
    if (slot->child == child)
        slot->child = NULL;
    mg__list_t taken;
    mg__list_init(&taken);
    mg__child_take_inflight(child, &taken);
    uv_handle_t *hs[] = {(uv_handle_t *)&child->in, (uv_handle_t *)&child->out, (uv_handle_t *)&child->err,
                         (uv_handle_t *)&child->timer};
    for (size_t i = 0; i < 4; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], child_close_cb);
    mg__req_complete_list(&taken, MG_EUPSTREAM, "fuzz: child gone");
    int stopped = 0;
    mg_upstream_stop(up, 1, fz_stopped_cb, &stopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!stopped)
        abort();
    mg_upstream_free(up);
    for (int i = 0; i < NREQ; i++)
        if (calls[i].done != 1)
            abort(); /* a request that never completed: a hang in production */
    if (uv_run(&loop, UV_RUN_NOWAIT) != 0)
        abort(); /* a handle left open */
    return 0;
}
