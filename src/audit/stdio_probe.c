/*
 * stdio_probe.c - `mcpgate audit --config`: the robustness checks that make sense over stdio, for
 * every enabled stdio server, started the way `serve` starts it (upstream/rawspawn.h: sandbox rules
 * apply) with plain pipes: after initialize, a malformed line (must be answered with a JSON-RPC
 * parse error, and the server must go on: a ping after it), an unknown method (must be -32601), and
 * one oversized line (2 MiB: the server may answer or refuse it, but must survive it). Never
 * tools/call. Every wait is bounded (the timeout of one exchange); what is read is capped (1 MiB a
 * line, the rest dropped). The recording is judged by mg_audit_stdio_verdict (pure, unit-tested).
 * Called by config_audit.c. Read next: docs/audit.md (Robustness).
 */
#include "audit_int.h"
#include "../common/err.h"
#include "../upstream/rawspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_CAP       (1024 * 1024)
#define OVERSIZE       (2 * 1024 * 1024)
#define UNKNOWN_METHOD "mcpgate-audit/no-such-method"

typedef struct io {
    mg_upstream_raw_t raw;
    char *buf; /* partial line */
    size_t len;
    int skipping; /* dropping the rest of a line over LINE_CAP */
    int eof;
} io_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Writes all of p within the deadline. 0 or -1 (the child closed its stdin, or too slow). */
static int write_all(io_t *io, const char *p, size_t n, uint64_t deadline)
{
    while (n > 0) {
        uint64_t t = now_ms();
        if (t >= deadline)
            return -1;
        struct pollfd pf = {io->raw.in, POLLOUT, 0};
        if (poll(&pf, 1, (int)(deadline - t)) <= 0)
            return -1;
        ssize_t w = write(io->raw.in, p, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The next message (a NEW JSON value) before the deadline, or NULL (timeout, EOF: io->eof). */
static json_t *read_msg(io_t *io, uint64_t deadline)
{
    for (;;) {
        char *nl = io->len ? memchr(io->buf, '\n', io->len) : NULL;
        if (nl != NULL) {
            size_t l = (size_t)(nl - io->buf);
            json_t *m = io->skipping ? NULL : json_loadb(io->buf, l, 0, NULL);
            io->skipping = 0;
            memmove(io->buf, nl + 1, io->len - l - 1);
            io->len -= l + 1;
            if (m != NULL)
                return m;
            continue;
        }
        if (io->len >= LINE_CAP) {
            io->len = 0;
            io->skipping = 1;
        }
        uint64_t t = now_ms();
        if (io->eof || t >= deadline)
            return NULL;
        struct pollfd pf = {io->raw.out, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(deadline - t));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return NULL;
        ssize_t r = read(io->raw.out, io->buf + io->len, LINE_CAP + 1 - io->len);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) {
            io->eof = 1;
            return NULL;
        }
        io->len += (size_t)r;
    }
}

/* Waits for the answer to id (other messages are dropped). NEW or NULL. */
static json_t *answer(io_t *io, json_int_t id, int null_id_too, uint64_t deadline)
{
    json_t *m;
    while ((m = read_msg(io, deadline)) != NULL) {
        json_t *mid = json_object_get(m, "id");
        if ((json_is_integer(mid) && json_integer_value(mid) == id) ||
            (null_id_too && json_is_null(mid) && json_object_get(m, "error")))
            return m;
        json_decref(m);
    }
    return NULL;
}

static int send_line(io_t *io, const char *line, unsigned long timeout_ms)
{
    size_t n = strlen(line);
    uint64_t dl = now_ms() + timeout_ms;
    return write_all(io, line, n, dl) == 0 && write_all(io, "\n", 1, dl) == 0 ? 0 : -1;
}

/* {"answered": bool, "code": N (absent: a result or nothing)} of one exchange. */
static json_t *outcome(json_t *m)
{
    json_t *o = json_pack("{s:b}", "answered", m != NULL);
    json_t *code = json_object_get(json_object_get(m, "error"), "code");
    if (json_is_integer(code))
        json_object_set(o, "code", code);
    json_decref(m);
    return o;
}

static int ping(io_t *io, json_int_t id, unsigned long timeout_ms)
{
    char line[96];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"ping\"}", (long long)id);
    if (send_line(io, line, timeout_ms) != 0)
        return 0;
    json_t *m = answer(io, id, 0, now_ms() + timeout_ms);
    json_decref(m);
    return m != NULL;
}

json_t *mg_audit_probe_stdio(const mg_server_config_t *s, unsigned long timeout_ms)
{
    json_t *rec = json_object();
    io_t io = {0};
    char why[600];
    if (rec == NULL)
        return NULL;
    if (mg_upstream_raw_start(s, &io.raw, why, sizeof why) != 0) {
        json_object_set_new(rec, "error", json_string(why));
        return rec;
    }
    io.buf = malloc(LINE_CAP + 1);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    fcntl(io.raw.in, F_SETFL, fcntl(io.raw.in, F_GETFL) | O_NONBLOCK);
    if (io.buf == NULL) {
        json_object_set_new(rec, "error", json_string("out of memory"));
        goto out;
    }
    /* Up: initialize, initialized. */
    json_t *init = NULL;
    if (send_line(&io,
                  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                  "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpgate-audit\",\"version\":"
                  "\"1\"}}}",
                  timeout_ms) == 0)
        init = answer(&io, 1, 0, now_ms() + timeout_ms);
    if (init == NULL || json_object_get(init, "result") == NULL) {
        json_object_set_new(rec, "error",
                            json_string(io.eof ? "it exited before answering initialize"
                                               : "no initialize result before --timeout"));
        json_decref(init);
        goto out;
    }
    json_decref(init);
    send_line(&io, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", timeout_ms);

    /* A malformed line: a parse error (id null) is awaited a third of the timeout, then a ping. */
    unsigned long brief = timeout_ms / 3 ? timeout_ms / 3 : 1;
    json_t *bad = NULL;
    if (send_line(&io, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":", timeout_ms) == 0)
        bad = answer(&io, 2, 1, now_ms() + brief);
    json_t *o = outcome(bad);
    json_object_set_new(o, "alive", json_boolean(ping(&io, 3, timeout_ms)));
    json_object_set_new(rec, "malformed", o);

    /* An unknown method. */
    json_t *unk = NULL;
    if (send_line(&io, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"" UNKNOWN_METHOD "\"}", timeout_ms) == 0)
        unk = answer(&io, 4, 0, now_ms() + timeout_ms);
    json_object_set_new(rec, "unknown", outcome(unk));

    /* One oversized line: a ping padded in _meta. */
    size_t cap = OVERSIZE + 128;
    char *big = malloc(cap);
    if (big != NULL) {
        int k = snprintf(big, cap,
                         "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":{\"_meta\":{"
                         "\"pad\":\"");
        memset(big + k, 'a', OVERSIZE);
        snprintf(big + k + OVERSIZE, cap - (size_t)k - OVERSIZE, "\"}}}");
        int sent = send_line(&io, big, timeout_ms) == 0;
        free(big);
        json_t *ov = sent ? answer(&io, 5, 1, now_ms() + brief) : NULL;
        o = outcome(ov);
        json_object_set_new(o, "bytes", json_integer(OVERSIZE));
        json_object_set_new(o, "sent", json_boolean(sent));
        json_object_set_new(o, "alive", json_boolean(ping(&io, 6, timeout_ms)));
        json_object_set_new(rec, "oversize", o);
    }
out:
    signal(SIGPIPE, old);
    mg_upstream_raw_stop(&io.raw, 2000);
    free(io.buf);
    return rec;
}
