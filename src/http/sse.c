/*
 * sse.c - SSE event framing and a queueing writer over h2o's one-send-at-a-time generator model.
 *
 * State of a conn: `inflight` holds the bytes currently given to h2o_send (must stay valid until
 * proceed); `queue` collects bytes written meanwhile. `ended` means FINAL goes out with the next
 * send. The struct is allocated in the request pool with a dispose hook, which is how we learn the
 * request is gone (client disconnect, connection error, or normal completion).
 */
#include "sse.h"
#include "../common/err.h"
#include "status.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_PENDING (8u << 20) /* slow-client cap per SSE response */

struct mg_sse_conn {
    h2o_generator_t gen; /* first member: h2o hands it back to us */
    h2o_req_t *req;      /* NULL once disposed */
    char *queue;
    size_t qlen, qcap;
    char *inflight;
    size_t inlen;
    int sending;
    int ended;
    int final_sent;
    mg_sse_gone_cb gone_cb;
    void *data;
};

static int buf_reserve(char **buf, size_t *len, size_t *cap, size_t extra)
{
    if (*len + extra <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < *len + extra)
        ncap *= 2;
    char *n = realloc(*buf, ncap);
    if (n == NULL)
        return MG_ENOMEM;
    *buf = n;
    *cap = ncap;
    return 0;
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (buf_reserve(buf, len, cap, n) != 0)
        return MG_ENOMEM;
    memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

int mg_sse_format(char **buf, size_t *len, size_t *cap, const char *id, const char *data, size_t data_len,
                  uint32_t retry_ms)
{
    char tmp[64];
    if (id != NULL) {
        if (buf_append(buf, len, cap, "id: ", 4) || buf_append(buf, len, cap, id, strlen(id)) ||
            buf_append(buf, len, cap, "\n", 1))
            return MG_ENOMEM;
    }
    if (retry_ms != 0) {
        int n = snprintf(tmp, sizeof tmp, "retry: %u\n", retry_ms);
        if (buf_append(buf, len, cap, tmp, (size_t)n))
            return MG_ENOMEM;
    }
    /* Every line break a client's parser honours (LF, CRLF and a lone CR) starts a new data line:
     * a payload can never end the event early or inject a field (found by fuzz/fuzz_sse.c). */
    size_t start = 0;
    for (size_t i = 0; i <= data_len; i++) {
        if (i == data_len || data[i] == '\n' || data[i] == '\r') {
            if (buf_append(buf, len, cap, "data: ", 6) ||
                buf_append(buf, len, cap, data + start, i - start) || buf_append(buf, len, cap, "\n", 1))
                return MG_ENOMEM;
            if (i + 1 < data_len && data[i] == '\r' && data[i + 1] == '\n')
                i++;
            start = i + 1;
        }
    }
    return buf_append(buf, len, cap, "\n", 1);
}

static void do_send(mg_sse_conn_t *c)
{
    if (c->req == NULL || c->sending || c->final_sent)
        return;
    if (c->qlen == 0 && !c->ended)
        return;
    free(c->inflight);
    c->inflight = c->queue;
    c->inlen = c->qlen;
    c->queue = NULL;
    c->qlen = c->qcap = 0;
    h2o_iovec_t vec = h2o_iovec_init(c->inflight, c->inlen);
    h2o_send_state_t st = c->ended ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS;
    if (st == H2O_SEND_STATE_FINAL)
        c->final_sent = 1;
    c->sending = 1;
    h2o_send(c->req, &vec, c->inlen ? 1 : 0, st);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    mg_sse_conn_t *c = (mg_sse_conn_t *)gen;
    c->sending = 0;
    do_send(c);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    mg_sse_conn_t *c = (mg_sse_conn_t *)gen;
    c->sending = 0;
    c->ended = 1;
    c->final_sent = 1;
}

static void on_dispose(void *p)
{
    mg_sse_conn_t *c = p;
    c->req = NULL;
    free(c->queue);
    free(c->inflight);
    c->queue = c->inflight = NULL;
    mg_sse_gone_cb cb = c->gone_cb;
    c->gone_cb = NULL;
    if (cb != NULL)
        cb(c, c->data);
}

mg_sse_conn_t *mg_sse_conn_start(h2o_req_t *req, const char **hdrs, size_t nhdrs, mg_sse_gone_cb gone_cb,
                                 void *data)
{
    mg_sse_conn_t *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), on_dispose);
    memset(c, 0, sizeof(*c));
    c->gen.proceed = on_proceed;
    c->gen.stop = on_stop;
    c->req = req;
    c->gone_cb = gone_cb;
    c->data = data;
    req->res.status = 200;
    req->res.reason = mg_http_reason(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    for (size_t i = 0; i < nhdrs; i++)
        h2o_add_header_by_str(&req->pool, &req->res.headers, hdrs[2 * i], strlen(hdrs[2 * i]), 0, NULL,
                              hdrs[2 * i + 1], strlen(hdrs[2 * i + 1]));
    h2o_start_response(req, &c->gen);
    /* h2o 2.2 holds the headers back until there is body data, so the stream opens with an SSE
     * comment (ignored by every SSE parser): the client sees status and headers at once, even on
     * an idle GET stream of a revision that has no priming event. */
    static const char opening[] = ": stream open\n\n";
    mg_sse_conn_write(c, opening, sizeof opening - 1);
    return c;
}

int mg_sse_conn_write(mg_sse_conn_t *c, const char *bytes, size_t len)
{
    if (c->req == NULL || c->ended)
        return MG_ECLOSED;
    if (c->qlen + c->inlen + len > MAX_PENDING)
        return MG_ETOOBIG;
    if (buf_append(&c->queue, &c->qlen, &c->qcap, bytes, len) != 0)
        return MG_ENOMEM;
    do_send(c);
    return 0;
}

void mg_sse_conn_end(mg_sse_conn_t *c)
{
    if (c->req == NULL || c->ended)
        return;
    c->ended = 1;
    do_send(c);
}

void mg_sse_conn_abandon(mg_sse_conn_t *c)
{
    c->gone_cb = NULL;
    mg_sse_conn_end(c);
}

int mg_sse_conn_peer_closed(mg_sse_conn_t *c)
{
    h2o_req_t *req = c->req;
    if (req == NULL || c->ended || req->version >= 0x200 || req->conn == NULL ||
        req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    if (fd < 0)
        return 0;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT); /* reads nothing: h2o's bytes stay */
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
