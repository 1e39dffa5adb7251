/*
 * mcp.c - one MCP client session of mcpgate-bench over Streamable HTTP (bench.h).
 *
 * Contract: POST initialize (200; Mcp-Session-Id kept), notifications/initialized (2xx), tools/list
 * (the tool listed as is or "<server>__<tool>"), the tools/call the driver asks for, DELETE (2xx or
 * 405). An answer is JSON, or the first SSE event whose JSON has the request's id (latency stops
 * there). Arguments carry a unique counter; an echo result must equal what was sent. Three
 * transport errors in a row or a 404 abort the session. --raw-post: a constant body, HTTP 200 = ok.
 * Read next: http.c (the connection), run.c (the driver).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MARKER "MGBENCH_SEQ_MARKER_7f3a"

static const char raw_body[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{"
    "\"message\":\"x\"}}}";

static mg_bench_buf_t body_scratch;

/* ---- templates ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int mg_bench_calltpl_init(mg_bench_calltpl_t *t, const mg_bench_opts_t *o)
{
    memset(t, 0, sizeof *t);
    json_error_t je;
    json_t *args = json_loads(o->args, 0, &je);
    if (args == NULL || !json_is_object(args)) {
        fprintf(stderr, "mcpgate-bench: --args must be a JSON object (%s)\n",
                args ? "not an object" : je.text);
        json_decref(args);
        return -1;
    }
    char *key = NULL, *spre = NULL, *spost = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(args, k, v)
    {
        const char *at = json_is_string(v) ? strstr(json_string_value(v), "{n}") : NULL;
        if (at != NULL) {
            key = strdup(k);
            spre = strndup(json_string_value(v), (size_t)(at - json_string_value(v)));
            spost = strdup(at + 3);
            break;
        }
    }
    if (key == NULL && json_is_string(json_object_get(args, "message"))) {
        key = strdup("message");
        spre = strdup(json_string_value(json_object_get(args, "message")));
        spost = strdup("");
    }
    if (key != NULL) {
        size_t n = strlen(spre) + strlen(MARKER) + strlen(spost) + 1;
        char *marked = malloc(n);
        snprintf(marked, n, "%s%s%s", spre, MARKER, spost);
        json_object_set_new(args, key, json_string(marked));
        free(marked);
    }
    char *dump = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    char *at = key ? strstr(dump, MARKER) : NULL;
    if (at != NULL) {
        t->args_pre = strndup(dump, (size_t)(at - dump));
        t->args_post = strdup(at + strlen(MARKER));
        t->varied = 1;
        free(dump);
    } else {
        t->args_pre = dump;
        t->args_post = strdup("");
    }
    json_t *name = json_string(o->tool);
    t->tool_json = json_dumps(name, JSON_ENCODE_ANY);
    json_decref(name);
    if (key != NULL && strcmp(key, "message") == 0 &&
        (strcmp(o->tool, "echo") == 0 || ends_with(o->tool, "__echo"))) {
        t->expect_pre = spre;
        t->expect_post = spost;
    } else {
        free(spre);
        free(spost);
    }
    free(key);
    return 0;
}

void mg_bench_calltpl_dispose(mg_bench_calltpl_t *t)
{
    free(t->args_pre);
    free(t->args_post);
    free(t->expect_pre);
    free(t->expect_post);
    free(t->tool_json);
    memset(t, 0, sizeof *t);
}

/* ---- requests ---- */

static void on_done(mg_bench_conn_t *c, int err);
static void on_body(mg_bench_conn_t *c);
static void close_session(mg_bench_session_t *s);

static const char *step_name(int step)
{
    switch (step) {
    case MG_BENCH_STEP_INIT:
        return "initialize";
    case MG_BENCH_STEP_INITIALIZED:
        return "initialized";
    case MG_BENCH_STEP_LIST:
        return "tools/list";
    case MG_BENCH_STEP_CALL:
        return "tools/call";
    case MG_BENCH_STEP_DELETE:
        return "delete";
    default:
        return "session";
    }
}

/* Sends method+body; with_session adds Mcp-Session-Id and MCP-Protocol-Version. */
static void send_req(mg_bench_session_t *s, const char *method, const char *body, size_t blen,
                     int with_session)
{
    const mg_bench_opts_t *o = s->run->opts;
    mg_bench_buf_t *b = mg_bench_conn_begin(&s->conn);
    int r = mg_bench_buf_printf(
        b, "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json, text/event-stream\r\n", method, o->path,
        o->hostport);
    if (body != NULL)
        r |= mg_bench_buf_printf(b, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    if (with_session) {
        if (s->sid[0] != '\0')
            r |= mg_bench_buf_printf(b, "Mcp-Session-Id: %s\r\n", s->sid);
        r |= mg_bench_buf_printf(b, "MCP-Protocol-Version: %s\r\n", o->protocol);
    }
    if (o->bearer != NULL)
        r |= mg_bench_buf_printf(b, "Authorization: Bearer %s\r\n", o->bearer);
    r |= mg_bench_buf_append(b, "\r\n", 2);
    if (body != NULL)
        r |= mg_bench_buf_append(b, body, blen);
    s->have_answer = 0;
    s->answer_ok = 0;
    s->answer_err[0] = '\0';
    s->answer_detail[0] = '\0';
    s->sse_off = 0;
    s->sse_data.len = 0;
    if (s->sse_data.cap > 4096) {
        mg_bench_buf_free(&s->sse_data);
        s->sse_data.max = o->max_body;
    }
    s->t_sent = uv_hrtime();
    if (r != 0) {
        fprintf(stderr, "mcpgate-bench: out of memory building a request\n");
        exit(1);
    }
    mg_bench_conn_send(&s->conn, 0, on_done, on_body);
}

static void set_err(mg_bench_session_t *s, const char *what)
{
    snprintf(s->answer_err, sizeof s->answer_err, "%s", what);
}

/* Checks the JSON-RPC answer to the in-flight request; sets have_answer/answer_ok/answer_err. */
static void check_answer(mg_bench_session_t *s, json_t *msg)
{
    const mg_bench_calltpl_t *t = &s->run->tpl;
    s->have_answer = 1;
    s->t_answer = uv_hrtime();
    s->answer_ok = 0;
    json_t *err = json_object_get(msg, "error");
    if (err != NULL) {
        json_t *code = json_object_get(err, "code");
        json_t *data = json_object_get(err, "data");
        char *d = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        snprintf(s->answer_detail, sizeof s->answer_detail, "%s%s%s",
                 json_string_value(json_object_get(err, "message"))
                     ? json_string_value(json_object_get(err, "message"))
                     : "",
                 d ? " data=" : "", d ? d : "");
        free(d);
        snprintf(s->answer_err, sizeof s->answer_err, "jsonrpc error %lld",
                 json_is_integer(code) ? (long long)json_integer_value(code) : 0);
        return;
    }
    json_t *res = json_object_get(msg, "result");
    if (!json_is_object(res)) {
        set_err(s, "no result");
        return;
    }
    switch (s->step) {
    case MG_BENCH_STEP_INIT:
        if (!json_is_string(json_object_get(res, "protocolVersion"))) {
            set_err(s, "no protocolVersion");
            return;
        }
        break;
    case MG_BENCH_STEP_LIST: {
        json_t *tools = json_object_get(res, "tools"), *tool;
        size_t i;
        int found = 0;
        const char *want = s->run->opts->tool;
        json_array_foreach(tools, i, tool)
        {
            const char *name = json_string_value(json_object_get(tool, "name"));
            size_t nl = name ? strlen(name) : 0, wl = strlen(want);
            if (name != NULL &&
                (strcmp(name, want) == 0 || (nl > wl + 2 && strcmp(name + nl - wl, want) == 0 &&
                                             memcmp(name + nl - wl - 2, "__", 2) == 0))) {
                found = 1;
                break;
            }
        }
        if (!json_is_array(tools) || !found) {
            set_err(s, json_is_array(tools) ? "tool not listed" : "no tools array");
            return;
        }
        break;
    }
    case MG_BENCH_STEP_CALL: {
        const char *text =
            json_string_value(json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
        if (text != NULL)
            snprintf(s->answer_detail, sizeof s->answer_detail, "text=%s", text);
        if (json_is_true(json_object_get(res, "isError"))) {
            set_err(s, "isError");
            return;
        }
        if (t->expect_pre != NULL) {
            char digits[24];
            int dl = snprintf(digits, sizeof digits, "%" PRIu64, s->seq);
            size_t pl = strlen(t->expect_pre);
            if (text == NULL || strncmp(text, t->expect_pre, pl) != 0 ||
                strncmp(text + pl, digits, (size_t)dl) != 0 ||
                strcmp(text + pl + (size_t)dl, t->expect_post) != 0) {
                set_err(s, "mismatch");
                return;
            }
        }
        break;
    }
    default:
        break;
    }
    s->answer_ok = 1;
}

static int id_matches(json_t *msg, uint64_t id)
{
    json_t *jid = json_object_get(msg, "id");
    return json_is_integer(jid) && (uint64_t)json_integer_value(jid) == id;
}

/* One SSE event's data: the answer if it is a response with our id; other messages are skipped. */
static void sse_event(mg_bench_session_t *s)
{
    if (s->sse_data.len == 0 || s->have_answer)
        return;
    json_t *msg = json_loadb(s->sse_data.p, s->sse_data.len, 0, NULL);
    s->sse_data.len = 0;
    if (json_is_object(msg) && id_matches(msg, s->next_id - 1) &&
        (json_object_get(msg, "result") || json_object_get(msg, "error")))
        check_answer(s, msg);
    json_decref(msg);
}

/* Scans complete SSE lines of the body from s->sse_off; at_end also ends a last unterminated event. */
static void sse_scan(mg_bench_session_t *s, int at_end)
{
    mg_bench_buf_t *b = &s->conn.body;
    size_t off = s->sse_off;
    while (off < b->len && !s->have_answer) {
        char *nl = memchr(b->p + off, '\n', b->len - off);
        if (nl == NULL)
            break;
        const char *line = b->p + off;
        size_t ll = (size_t)(nl - line);
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        off = (size_t)(nl - b->p) + 1;
        if (ll == 0) {
            sse_event(s);
        } else if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
            const char *v = line + 5;
            size_t vl = ll - 5;
            if (vl > 0 && *v == ' ') {
                v++;
                vl--;
            }
            if ((s->sse_data.len > 0 && mg_bench_buf_append(&s->sse_data, "\n", 1) != 0) ||
                mg_bench_buf_append(&s->sse_data, v, vl) != 0)
                s->sse_data.len = 0;
        }
    }
    s->sse_off = off;
    if (at_end && !s->have_answer)
        sse_event(s);
}

static void on_body(mg_bench_conn_t *c)
{
    mg_bench_session_t *s = (mg_bench_session_t *)c;
    if (c->is_sse && c->status == 200 && !s->run->opts->raw_post)
        sse_scan(s, 0);
}

/* ---- steps ---- */

static void send_call(mg_bench_session_t *s)
{
    const mg_bench_calltpl_t *t = &s->run->tpl;
    mg_bench_buf_t *b = &body_scratch;
    b->len = 0;
    int r;
    uint64_t id = s->next_id++;
    if (t->varied)
        r = mg_bench_buf_printf(b,
                                "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
                                ",\"method\":\"tools/call\",\"params\":{"
                                "\"name\":%s,\"arguments\":%s%" PRIu64 "%s}}",
                                id, t->tool_json, t->args_pre, s->seq, t->args_post);
    else
        r = mg_bench_buf_printf(b,
                                "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
                                ",\"method\":\"tools/call\",\"params\":{"
                                "\"name\":%s,\"arguments\":%s}}",
                                id, t->tool_json, t->args_pre);
    if (r != 0) {
        fprintf(stderr, "mcpgate-bench: out of memory building a call\n");
        exit(1);
    }
    send_req(s, "POST", b->p, b->len, 1);
}

static void send_initialize(mg_bench_session_t *s)
{
    char body[512];
    int n =
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"initialize\",\"params\":{"
                 "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpgate-bench\","
                 "\"version\":\"" MG_BENCH_VERSION "\"}}}",
                 s->next_id++, s->run->opts->protocol);
    send_req(s, "POST", body, (size_t)n, 0);
}

static void step_initialized(mg_bench_session_t *s)
{
    static const char body[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    s->step = MG_BENCH_STEP_INITIALIZED;
    send_req(s, "POST", body, sizeof body - 1, 1);
}

static void step_list(mg_bench_session_t *s)
{
    char body[128];
    int n = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"tools/list\"}",
                     s->next_id++);
    s->step = MG_BENCH_STEP_LIST;
    send_req(s, "POST", body, (size_t)n, 1);
}

static void setup_failed(mg_bench_session_t *s)
{
    s->failed = 1;
    s->aborted = 1;
    s->step = MG_BENCH_STEP_READY;
    s->run->on_ready(s);
}

static void on_done(mg_bench_conn_t *c, int err)
{
    mg_bench_session_t *s = (mg_bench_session_t *)c;
    mg_bench_stats_t *st = s->run->st;
    const mg_bench_opts_t *o = s->run->opts;
    int ok = 0, gone = 0;
    char what[80] = "";
    uint64_t now = uv_hrtime();

    if (err != 0) {
        s->transport_errs++;
        if (c->in_connect)
            snprintf(what, sizeof what, "connect %s", err == UV_ETIMEDOUT ? "timeout" : uv_err_name(err));
        else if (err == UV_ETIMEDOUT)
            snprintf(what, sizeof what, "timeout");
        else if (err == UV_EPROTO)
            snprintf(what, sizeof what, "malformed http response");
        else if (err == UV_E2BIG)
            snprintf(what, sizeof what, "response too large");
        else
            snprintf(what, sizeof what, "connection %s", uv_err_name(err));
    } else {
        s->transport_errs = 0;
        int want_answer = !o->raw_post && (s->step == MG_BENCH_STEP_INIT || s->step == MG_BENCH_STEP_LIST ||
                                           s->step == MG_BENCH_STEP_CALL);
        if (s->step == MG_BENCH_STEP_DELETE) {
            ok = (c->status >= 200 && c->status < 300) || c->status == 405;
        } else if (s->step == MG_BENCH_STEP_INITIALIZED) {
            ok = c->status >= 200 && c->status < 300;
        } else if (c->status != 200) {
            ok = 0;
        } else if (!want_answer) {
            ok = 1;
            s->t_answer = now;
        } else {
            if (c->is_sse) {
                sse_scan(s, 1);
                if (!s->have_answer)
                    snprintf(s->answer_err, sizeof s->answer_err, "sse stream without the response");
            } else {
                json_t *msg = json_loadb(c->body.p ? c->body.p : "", c->body.len, 0, NULL);
                if (json_is_object(msg) && id_matches(msg, s->next_id - 1))
                    check_answer(s, msg);
                else
                    snprintf(s->answer_err, sizeof s->answer_err, "%s",
                             msg ? "json without the response" : "body is not json");
                json_decref(msg);
            }
            ok = s->have_answer && s->answer_ok;
            snprintf(what, sizeof what, "%s", s->answer_err);
        }
        if (!ok && what[0] == '\0') {
            snprintf(what, sizeof what, "http %d", c->status);
            if (s->answer_detail[0] == '\0' && c->body.len > 0)
                snprintf(s->answer_detail, sizeof s->answer_detail, "%.*s", (int)c->body.len, c->body.p);
        }
        gone = c->status == 404 && !o->raw_post;
    }
    if (!ok)
        mg_bench_stats_error(st, step_name(s->step), what, err == 0 ? s->answer_detail : NULL);

    switch (s->step) {
    case MG_BENCH_STEP_INIT:
        if (!ok) {
            setup_failed(s);
            return;
        }
        mg_bench_hist_record(&st->setup, (s->have_answer ? s->t_answer : now) - s->t_sent);
        snprintf(s->sid, sizeof s->sid, "%s", c->session_id);
        step_initialized(s);
        return;
    case MG_BENCH_STEP_INITIALIZED:
        if (!ok) {
            setup_failed(s);
            return;
        }
        step_list(s);
        return;
    case MG_BENCH_STEP_LIST:
        if (!ok) {
            setup_failed(s);
            return;
        }
        s->step = MG_BENCH_STEP_READY;
        s->run->on_ready(s);
        return;
    case MG_BENCH_STEP_CALL:
        if (ok) {
            st->calls_ok++;
            uint64_t from = s->t_sched ? s->t_sched : s->t_sent;
            uint64_t at = s->t_answer > from ? s->t_answer : from;
            mg_bench_hist_record(&st->calls, at - from);
        } else {
            st->calls_failed++;
            s->failed = 1;
            if (s->transport_errs >= 3 || gone)
                s->aborted = 1;
        }
        s->step = MG_BENCH_STEP_READY;
        s->run->on_answer(s, ok);
        return;
    case MG_BENCH_STEP_DELETE:
        if (!ok)
            s->failed = 1;
        close_session(s);
        return;
    default:
        return;
    }
}

static void close_session(mg_bench_session_t *s)
{
    mg_bench_stats_t *st = s->run->st;
    s->step = MG_BENCH_STEP_DONE;
    mg_bench_conn_close(&s->conn);
    if (s->failed)
        st->sessions_failed++;
    else
        st->sessions_ok++;
    if (s->conn.connects > 1)
        st->reconnects += (uint64_t)s->conn.connects - 1;
    s->run->on_done(s);
}

/* ---- public ---- */

void mg_bench_session_init(mg_bench_session_t *s, mg_bench_run_t *run, unsigned idx)
{
    memset(s, 0, sizeof *s);
    mg_bench_conn_init(&s->conn, run->loop, run->opts);
    s->run = run;
    s->idx = idx;
    s->sse_data.max = run->opts->max_body;
    body_scratch.max = run->opts->max_body;
}

void mg_bench_session_start(mg_bench_session_t *s)
{
    s->failed = 0;
    s->aborted = 0;
    s->transport_errs = 0;
    s->calls_sent = 0;
    s->next_id = 1;
    s->sid[0] = '\0';
    s->conn.connects = 0;
    if (s->run->opts->raw_post) {
        s->step = MG_BENCH_STEP_READY;
        s->run->on_ready(s);
        return;
    }
    s->step = MG_BENCH_STEP_INIT;
    send_initialize(s);
}

void mg_bench_session_call(mg_bench_session_t *s, uint64_t sched)
{
    s->step = MG_BENCH_STEP_CALL;
    s->t_sched = sched;
    s->seq = s->run->seq++;
    s->calls_sent++;
    if (s->run->opts->raw_post) {
        s->next_id++;
        send_req(s, "POST", raw_body, sizeof raw_body - 1, 0);
        return;
    }
    send_call(s);
}

void mg_bench_session_finish(mg_bench_session_t *s)
{
    if (s->run->opts->raw_post || s->sid[0] == '\0') {
        close_session(s);
        return;
    }
    s->step = MG_BENCH_STEP_DELETE;
    send_req(s, "DELETE", NULL, 0, 1);
}

void mg_bench_session_dispose(mg_bench_session_t *s)
{
    mg_bench_conn_dispose(&s->conn);
    mg_bench_buf_free(&s->sse_data);
}
