/*
 * h1client.c - the lean HTTP/1.1 client (h1client.h).
 *
 * A connection (conn_t: one uv_tcp_t, one uv_timer_t, its read buffer) carries at most one call at
 * a time. A call builds its request head once (the body appended unless body_kept), takes an idle
 * connection to the same address that passes a liveness peek, or opens a new one, writes, and reads
 * the response through h1parse.c: head (1xx skipped), then a body framed by Content-Length, chunked
 * coding or the connection's end; HEAD, 204 and 304 have none. A response read to its end, with no
 * byte after it, on a connection neither side asked to close, whose request was fully written,
 * leaves the connection idle (reading, so the server's close is noticed; closed after IDLE_MS or
 * beyond IDLE_MAX); anything else closes it. The timer holds the nearest of the call's deadlines
 * (whole exchange, connect, idle) or, on an idle connection, its expiry.
 *
 * Lifetimes: every libuv callback enters the client (depth); calls that end while inside one are
 * freed on the way out (reap), connections from their handles' close callbacks, the client from
 * the last of those once it is being freed.
 */
#include "h1client.h"
#include "../common/err.h"
#include "h1parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#define MAX_HEAD    (16u * 1024)               /* the header block, as client.h */
#define HEAD_BOUND  (MAX_HEAD + 1024u)         /* with the status line */
#define RBUF        (HEAD_BOUND + 16u * 1024u) /* one read */
#define IDLE_MAX    64u                        /* idle connections kept per client */
#define IDLE_MS     60000u                     /* an idle connection is closed after this long */
#define KEEP_MIN_MS 250u /* ... or after 3/4 of the server's Keep-Alive timeout, at least this */

typedef struct conn conn_t;

/* Where a request goes, from its URL and pin. */
typedef struct target {
    char host[260]; /* as in the URL, brackets included for IPv6 */
    unsigned port;
    const char *path; /* into the URL: from its '/' or '?', up to a '#' */
    size_t path_off;  /* path - url */
    size_t pathlen;
    struct sockaddr_storage addr;
} target_t;

struct mg_h1_client {
    uv_loop_t *loop;
    conn_t *conns; /* open connections, busy and idle */
    unsigned nidle;
    unsigned nopen;          /* connections whose handles are not closed yet */
    mg_h1_call_t *dead;      /* calls ended inside a callback: freed on the way out */
    char *t_url, *t_resolve; /* the last request's URL and pin, parsed into t_last (target_get()) */
    target_t t_last;
    int depth;
    int closing;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    mg_h1_client_t *cl;
    conn_t *next, *prev;
    struct sockaddr_storage addr;
    mg_h1_call_t *call; /* NULL: idle */
    char *buf;          /* RBUF bytes once reading */
    size_t len;         /* bytes in buf not consumed yet */
    int connected, writing, reused, closing, nclosed;
};

enum { S_HEAD = 0, S_LEN, S_CHUNKED, S_CLOSE };

struct mg_h1_call {
    mg_h1_client_t *cl;
    conn_t *conn;
    mg_http_head_cb head_cb;
    mg_http_body_cb body_cb;
    mg_http_done_cb done_cb;
    void *data;
    char *out; /* the request head, then the body unless kept */
    size_t outlen;
    const char *body; /* body_kept: the caller's */
    size_t blen;
    struct sockaddr_storage addr;
    char where[80]; /* "127.0.0.1 port 8080", for messages: written when one is (where_fill()) */
    uint64_t deadline, connect_deadline, idle_ms, last_rx;
    size_t max_body, got;
    int idempotent, head_only;
    int tries, written, rx, state, status, minor, head_done, close_after;
    uint64_t keep_ms; /* how long the connection may stay idle after this response (Keep-Alive) */
    int pending_err;  /* an error found while starting: delivered from the timer */
    int cancelled, finished;
    uint64_t left;
    mg_h1_chunks_t ch;
    mg_h1_call_t *next_dead;
    char why[192];
};

static void conn_timer_cb(uv_timer_t *t);
static int conn_start(mg_h1_call_t *c);
static void arm(mg_h1_call_t *c);

/* ---- lifetime ---- */

static void call_free(mg_h1_call_t *c)
{
    free(c->out);
    free(c);
}

/* c ended (finished or cancelled): freed now, or on the way out of the current callback. */
static void call_drop(mg_h1_call_t *c)
{
    mg_h1_client_t *cl = c->cl;
    if (cl->depth > 0) {
        c->next_dead = cl->dead;
        cl->dead = c;
    } else {
        call_free(c);
    }
}

static void client_maybe_free(mg_h1_client_t *cl)
{
    if (cl->closing && cl->depth == 0 && cl->nopen == 0) {
        free(cl->t_url);
        free(cl->t_resolve);
        free(cl);
    }
}

static void enter(mg_h1_client_t *cl)
{
    cl->depth++;
}

/* Leaves a callback: frees the calls that ended in it, and the client when it is done. */
static void leave(mg_h1_client_t *cl)
{
    if (--cl->depth > 0)
        return;
    while (cl->dead != NULL) {
        mg_h1_call_t *c = cl->dead;
        cl->dead = c->next_dead;
        call_free(c);
    }
    client_maybe_free(cl);
}

static void conn_closed_cb(uv_handle_t *h)
{
    conn_t *k = h->data;
    if (++k->nclosed < 2)
        return;
    mg_h1_client_t *cl = k->cl;
    free(k->buf);
    free(k);
    cl->nopen--;
    client_maybe_free(cl);
}

static void conn_close(conn_t *k)
{
    if (k->closing)
        return;
    mg_h1_client_t *cl = k->cl;
    k->closing = 1;
    if (k->prev)
        k->prev->next = k->next;
    else
        cl->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    if (k->call == NULL)
        cl->nidle--;
    else
        k->call->conn = NULL;
    k->call = NULL;
    uv_close((uv_handle_t *)&k->tcp, conn_closed_cb); /* a pending write ends with UV_ECANCELED */
    uv_close((uv_handle_t *)&k->timer, conn_closed_cb);
}

/* ---- the end of a call ---- */

/* The response (or the attempt) is over: the connection goes idle or is closed, then done_cb. */
static void finish(mg_h1_call_t *c, int err, const char *why)
{
    if (c->finished || c->cancelled)
        return;
    c->finished = 1;
    conn_t *k = c->conn;
    if (k != NULL) {
        mg_h1_client_t *cl = c->cl;
        if (err == 0 && !c->close_after && k->len == 0 && !k->writing && !cl->closing &&
            cl->nidle < IDLE_MAX) {
            k->call = NULL;
            c->conn = NULL;
            k->reused = 1;
            cl->nidle++;
            uv_timer_start(&k->timer, conn_timer_cb, c->keep_ms, 0);
        } else {
            conn_close(k);
        }
    }
    c->done_cb(c->data, err, c->status, err ? why : NULL);
    call_drop(c);
}

/* The call's address as text, for a message. */
static const char *where_fill(mg_h1_call_t *c)
{
    char ip[64] = "";
    unsigned port;
    if (c->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&c->addr;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const void *)&c->addr;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    }
    snprintf(c->where, sizeof c->where, "%s port %u", ip, port);
    return c->where;
}

/* finish() with a message naming the address: FMT has a %s for it, then one for ARG. */
#define finish_fmt(c, err, FMT, arg)                                                                         \
    do {                                                                                                     \
        snprintf((c)->why, sizeof(c)->why, FMT, where_fill(c), (arg));                                       \
        finish((c), (err), (c)->why);                                                                        \
    } while (0)

/* The connection ended or failed before the response did (status: a libuv error). A request whose
 * reused connection dies before any response byte goes again on a fresh connection once, when the
 * server cannot have acted on it: nothing of it was written, or its method is idempotent. */
static void broken(mg_h1_call_t *c, int status)
{
    conn_t *k = c->conn;
    if (c->state == S_CLOSE && status == UV_EOF) { /* the body ran to the connection's end */
        c->close_after = 1;
        finish(c, 0, NULL);
        return;
    }
    if (!c->rx && k != NULL && k->reused && c->tries == 0 && (!c->written || c->idempotent)) {
        c->tries++;
        conn_close(k);
        c->written = 0;
        int rc = conn_start(c);
        if (rc != 0)
            finish_fmt(c, MG_EIO, "Failed to connect to %s: %s", uv_strerror(rc));
        return;
    }
    if (!c->rx)
        finish_fmt(c, MG_EIO,
                   status == UV_EOF ? "Empty reply from server (%s)%s" : "Recv failure from %s: %s",
                   status == UV_EOF ? "" : uv_strerror(status));
    else
        finish_fmt(c, MG_EIO,
                   status == UV_EOF ? "the connection to %s closed in the middle of the response%s"
                                    : "the connection to %s broke in the middle of the response: %s",
                   status == UV_EOF ? "" : uv_strerror(status));
}

/* ---- the response ---- */

/* Body bytes to the caller. Returns 0, or 1 when the call ended (cancelled, finished, too big). */
static int emit(mg_h1_call_t *c, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (c->max_body > 0 && c->got + n > c->max_body) {
        c->close_after = 1;
        finish(c, MG_ETOOBIG, "the response body exceeds the size limit");
        return 1;
    }
    c->got += n;
    if (c->body_cb != NULL)
        c->body_cb(c->data, p, n);
    return c->cancelled || c->finished;
}

/* Body bytes p[0..n) as framed by c->state. Returns 1 when the call ended. */
static int body_bytes(mg_h1_call_t *c, const char *p, size_t n)
{
    if (c->state == S_CLOSE)
        return emit(c, p, n);
    if (c->state == S_LEN) {
        size_t take = (uint64_t)n < c->left ? n : (size_t)c->left;
        c->left -= take;
        if (emit(c, p, take))
            return 1;
        if (c->left > 0)
            return 0;
        if (take < n) /* bytes after the response: the connection is not in a known state */
            c->close_after = 1;
        finish(c, 0, NULL);
        return 1;
    }
    while (n > 0) { /* S_CHUNKED */
        const char *data, *why = NULL;
        size_t dlen;
        long used = mg_h1_chunks_next(&c->ch, p, n, &data, &dlen, &why);
        if (used < 0) {
            c->close_after = 1;
            finish(c, MG_EIO, why);
            return 1;
        }
        if (emit(c, data, dlen))
            return 1;
        p += used;
        n -= (size_t)used;
        if (c->ch.done) {
            if (n > 0)
                c->close_after = 1;
            finish(c, 0, NULL);
            return 1;
        }
    }
    return 0;
}

/* The bytes in the connection's buffer: the head (once complete), then the body. */
static void on_bytes(mg_h1_call_t *c)
{
    conn_t *k = c->conn;
    size_t off = 0;
    while (c->state == S_HEAD) {
        mg_h1_head_t h;
        const char *why = NULL;
        long n = mg_h1_head_parse(k->buf + off, k->len - off, HEAD_BOUND, &h, &why);
        if (n == 0) {
            if (off > 0) {
                memmove(k->buf, k->buf + off, k->len - off);
                k->len -= off;
            }
            return;
        }
        if (n < 0) {
            c->close_after = 1;
            finish(c, (int)n, n == MG_ETOOBIG ? "the response headers exceed 16 KiB" : why);
            return;
        }
        if (h.status < 200) {
            if (h.status == 101) {
                c->close_after = 1;
                finish(c, MG_EIO, "the server switched protocols, which was not asked for");
                return;
            }
            off += (size_t)n; /* 100 Continue, 103 Early Hints: the final head follows */
            continue;
        }
        off += (size_t)n;
        c->status = h.status;
        c->minor = h.minor;
        c->head_done = 1;
        c->close_after = h.close;
        /* a server that says how long it keeps an idle connection closes it then: stop using it at
         * three quarters of that (at least KEEP_MIN_MS: "timeout=0" is what Node says for less
         * than a second), so that no request is sent into its close */
        c->keep_ms = IDLE_MS;
        if (h.keep_alive_s >= 0 && (uint64_t)h.keep_alive_s * 750 < IDLE_MS)
            c->keep_ms =
                (uint64_t)h.keep_alive_s * 750 < KEEP_MIN_MS ? KEEP_MIN_MS : (uint64_t)h.keep_alive_s * 750;
        if (c->head_only || h.status == 204 || h.status == 304) {
            c->state = S_LEN;
            c->left = 0;
        } else if (h.chunked) {
            c->state = S_CHUNKED;
            mg_h1_chunks_init(&c->ch);
        } else if (h.content_length >= 0) {
            c->state = S_LEN;
            c->left = (uint64_t)h.content_length;
        } else {
            c->state = S_CLOSE;
            c->close_after = 1;
        }
        if (c->head_cb != NULL)
            c->head_cb(c->data, h.status, h.lines, h.lines_len);
        if (c->cancelled || c->finished)
            return;
        if (c->max_body > 0 && c->state == S_LEN && c->left > c->max_body) {
            c->close_after = 1;
            finish(c, MG_ETOOBIG, "the response body exceeds the size limit");
            return;
        }
        if (c->state == S_LEN && c->left == 0) {
            k->len -= off; /* bytes after the head: the connection is not reused */
            if (k->len > 0)
                c->close_after = 1;
            k->len = 0;
            finish(c, 0, NULL);
            return;
        }
    }
    size_t n = k->len - off;
    k->len = 0; /* delivered below; the connection's buffer is free for the next read */
    body_bytes(c, k->buf + off, n);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    conn_t *k = h->data;
    if (k->buf == NULL)
        k->buf = malloc(RBUF);
    if (k->buf == NULL) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(k->buf + k->len, (unsigned)(RBUF - k->len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    (void)b;
    conn_t *k = s->data;
    if (k->closing || nread == 0)
        return;
    mg_h1_client_t *cl = k->cl;
    enter(cl);
    mg_h1_call_t *c = k->call;
    if (c == NULL) { /* idle: the server closed it, or sent what nobody asked for */
        conn_close(k);
    } else if (nread < 0) {
        broken(c, nread == UV_ENOBUFS ? UV_ENOMEM : (int)nread);
    } else {
        k->len += (size_t)nread;
        c->rx = 1;
        c->last_rx = uv_now(cl->loop);
        on_bytes(c);
    }
    leave(cl);
}

/* ---- the request ---- */

static void write_cb(uv_write_t *w, int status)
{
    conn_t *k = w->data;
    k->writing = 0;
    if (k->closing || k->call == NULL)
        return;
    mg_h1_client_t *cl = k->cl;
    enter(cl);
    mg_h1_call_t *c = k->call;
    if (status < 0) {   /* the server closed before reading it all: it cannot have acted on it */
        c->written = 0; /* so broken() may send it again on a fresh connection */
        broken(c, status);
    } else {
        c->written = 1;
    }
    leave(cl);
}

static void send_req(mg_h1_call_t *c)
{
    conn_t *k = c->conn;
    uv_buf_t b[2] = {uv_buf_init(c->out, (unsigned)c->outlen),
                     uv_buf_init((char *)c->body, (unsigned)c->blen)};
    k->wreq.data = k;
    int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, b, c->body != NULL && c->blen > 0 ? 2 : 1, write_cb);
    if (rc != 0) { /* delivered from the timer: this may run inside mg_h1_request() */
        c->pending_err = rc;
        c->close_after = 1;
        arm(c);
        return;
    }
    k->writing = 1;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&k->tcp) == 0)
        c->written = 1; /* all of it is with the kernel: the server may act on it from now on */
}

/* The call's timer: the nearest of its deadlines. */
static void arm(mg_h1_call_t *c)
{
    conn_t *k = c->conn;
    uint64_t next = c->deadline;
    if (!k->connected && c->connect_deadline && (!next || c->connect_deadline < next))
        next = c->connect_deadline;
    if (c->idle_ms && (!next || c->last_rx + c->idle_ms < next))
        next = c->last_rx + c->idle_ms;
    if (c->pending_err)
        next = 1;
    if (!next) {
        uv_timer_stop(&k->timer);
        return;
    }
    uint64_t now = uv_now(c->cl->loop);
    uv_timer_start(&k->timer, conn_timer_cb, next > now ? next - now : 0, 0);
}

static void conn_timer_cb(uv_timer_t *t)
{
    conn_t *k = t->data;
    if (k->closing)
        return;
    mg_h1_client_t *cl = k->cl;
    enter(cl);
    mg_h1_call_t *c = k->call;
    uint64_t now = uv_now(cl->loop);
    if (c == NULL) {
        conn_close(k); /* idle too long */
    } else if (c->pending_err) {
        finish_fmt(c, MG_EIO, k->connected ? "Send failure to %s: %s" : "Failed to connect to %s: %s",
                   uv_strerror(c->pending_err));
    } else if ((c->deadline && now >= c->deadline) ||
               (!k->connected && c->connect_deadline && now >= c->connect_deadline) ||
               (c->idle_ms && now >= c->last_rx + c->idle_ms)) {
        c->close_after = 1;
        finish(c, MG_ETIMEOUT, "timed out");
    } else {
        arm(c);
    }
    leave(cl);
}

static void connect_cb(uv_connect_t *req, int status)
{
    conn_t *k = req->data;
    if (k->closing)
        return;
    mg_h1_client_t *cl = k->cl;
    enter(cl);
    mg_h1_call_t *c = k->call;
    if (status < 0) {
        finish_fmt(c, MG_EIO, "Failed to connect to %s: %s", uv_strerror(status));
    } else {
        k->connected = 1;
        int rc = uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, read_cb);
        if (rc != 0)
            finish_fmt(c, MG_EIO, "Failed to connect to %s: %s", uv_strerror(rc));
        else {
            arm(c);
            send_req(c);
        }
    }
    leave(cl);
}

/* 1 when an idle connection still looks open: nothing to read, no end of stream (the server's
 * close while idle, not seen by the loop yet). */
static int conn_alive(conn_t *k)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&k->tcp, &fd) != 0)
        return 0;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

/* Gives c a connection: an idle one to its address that is still open (not for a retry), or a new one.
 * Returns 0 (the request goes out now or once connected; a connect error found at once is delivered from the
 * timer), or a libuv error when no handle could be made (nothing to close, nothing called). */
static int conn_start(mg_h1_call_t *c)
{
    mg_h1_client_t *cl = c->cl;
    conn_t *k, *next;
    c->state = S_HEAD;
    c->rx = 0;
    for (k = c->tries > 0 ? NULL : cl->conns; k != NULL; k = next) { /* a retry: a new one */
        next = k->next;
        if (k->call != NULL || !same_addr(&k->addr, &c->addr))
            continue;
        if (!conn_alive(k)) {
            conn_close(k);
            continue;
        }
        cl->nidle--;
        k->call = c;
        c->conn = k;
        arm(c);
        send_req(c);
        return 0;
    }
    k = calloc(1, sizeof *k);
    if (k == NULL)
        return UV_ENOMEM;
    int rc = uv_tcp_init(cl->loop, &k->tcp);
    if (rc != 0) {
        free(k);
        return rc;
    }
    uv_timer_init(cl->loop, &k->timer);
    k->tcp.data = k->timer.data = k->creq.data = k;
    k->cl = cl;
    k->addr = c->addr;
    k->call = c;
    c->conn = k;
    cl->nopen++;
    k->next = cl->conns;
    if (cl->conns)
        cl->conns->prev = k;
    cl->conns = k;
    uv_tcp_nodelay(&k->tcp, 1);
    rc = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&c->addr, connect_cb);
    if (rc != 0)
        c->pending_err = rc;
    arm(c);
    return 0;
}

/* ---- targets ---- */

/* Parses an IP address (IPv6 in brackets or not) with port into sa. Returns 0 or -1. */
static int ip_parse(const char *s, size_t n, unsigned port, struct sockaddr_storage *sa)
{
    char ip[64];
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof ip)
        return -1;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(sa, 0, sizeof *sa);
    if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)sa) == 0)
        return 0;
    if (uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    return -1;
}

/* The URL of r into t (host, port, path) and, when addr, its address: r->resolve's pin for that host
 * and port, or the host as an IP literal. */
static int target_parse_as(const mg_http_req_t *r, target_t *t, int addr)
{
    if (r == NULL || r->url == NULL || r->basic_user != NULL || r->env_proxy)
        return MG_EINVAL;
    if (strncasecmp(r->url, "http://", 7) != 0)
        return MG_EINVAL;
    const char *a = r->url + 7, *ae = a + strcspn(a, "/?#");
    if (memchr(a, '@', (size_t)(ae - a)) != NULL || ae == a)
        return MG_EINVAL;
    const char *he, *colon = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', (size_t)(ae - a));
        if (rb == NULL)
            return MG_EINVAL;
        he = rb + 1;
        if (he < ae && *he != ':')
            return MG_EINVAL;
        colon = he < ae ? he : NULL;
    } else {
        colon = memchr(a, ':', (size_t)(ae - a));
        he = colon ? colon : ae;
    }
    if ((size_t)(he - a) >= sizeof t->host || he == a)
        return MG_EINVAL;
    memcpy(t->host, a, (size_t)(he - a));
    t->host[he - a] = '\0';
    t->port = 80;
    if (colon != NULL) {
        unsigned long p = 0;
        const char *d = colon + 1;
        if (d == ae || ae - d > 5)
            return MG_EINVAL;
        for (; d < ae; d++) {
            if (*d < '0' || *d > '9')
                return MG_EINVAL;
            p = p * 10 + (unsigned long)(*d - '0');
        }
        if (p == 0 || p > 65535)
            return MG_EINVAL;
        t->port = (unsigned)p;
    }
    t->path = ae;
    t->path_off = (size_t)(ae - r->url);
    t->pathlen = strcspn(ae, "#");
    for (size_t i = 0; i < t->pathlen; i++) /* what goes on the request line: visible ASCII only */
        if ((unsigned char)ae[i] <= 0x20 || (unsigned char)ae[i] >= 0x7f)
            return MG_EINVAL;
    if (!addr)
        return 0;
    if (r->resolve != NULL) { /* "host:port:address", for this host and port only */
        size_t hl = strlen(t->host);
        const char *res = r->resolve, *p = res + hl;
        if (strncasecmp(res, t->host, hl) != 0 || *p != ':')
            return MG_EINVAL;
        char *pe;
        unsigned long rp = strtoul(p + 1, &pe, 10);
        if (pe == p + 1 || *pe != ':' || rp != t->port)
            return MG_EINVAL;
        return ip_parse(pe + 1, strlen(pe + 1), t->port, &t->addr) == 0 ? 0 : MG_EINVAL;
    }
    return ip_parse(t->host, strlen(t->host), t->port, &t->addr) == 0 ? 0 : MG_EINVAL;
}

static int target_parse(const mg_http_req_t *r, target_t *t)
{
    return target_parse_as(r, t, 1);
}

static int same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* target_parse() through the client's one-entry cache: an upstream sends every request to the same
 * URL and pin, parsed once. */
static int target_get(mg_h1_client_t *cl, const mg_http_req_t *r, target_t *t)
{
    if (r == NULL || r->url == NULL || r->basic_user != NULL || r->env_proxy)
        return MG_EINVAL;
    if (cl->t_url != NULL && strcmp(cl->t_url, r->url) == 0 && same_str(cl->t_resolve, r->resolve)) {
        *t = cl->t_last;
        t->path = r->url + t->path_off;
        return 0;
    }
    int rc = target_parse(r, t);
    if (rc != 0)
        return rc;
    char *u = strdup(r->url), *res = r->resolve ? strdup(r->resolve) : NULL;
    if (u == NULL || (r->resolve != NULL && res == NULL)) {
        free(u);
        free(res);
        return 0; /* not cached: parsed again next time */
    }
    free(cl->t_url);
    free(cl->t_resolve);
    cl->t_url = u;
    cl->t_resolve = res;
    cl->t_last = *t;
    return 0;
}

int mg_h1_accepts(mg_h1_client_t *cl, const mg_http_req_t *r)
{
    target_t t;
    return cl != NULL && target_get(cl, r, &t) == 0;
}

int mg_h1_url_host(const char *url, char *host, size_t n, unsigned *port)
{
    mg_http_req_t r = {.url = url};
    target_t t;
    if (target_parse_as(&r, &t, 0) != 0 || strlen(t.host) >= n)
        return MG_EINVAL;
    memcpy(host, t.host, strlen(t.host) + 1);
    *port = t.port;
    return 0;
}

/* ---- public ---- */

int mg_h1_client_new(uv_loop_t *loop, mg_h1_client_t **out)
{
    mg_h1_client_t *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return MG_ENOMEM;
    cl->loop = loop;
    *out = cl;
    return 0;
}

void mg_h1_client_free(mg_h1_client_t *cl)
{
    if (cl == NULL || cl->closing)
        return;
    cl->closing = 1;
    enter(cl);
    while (cl->conns != NULL) {
        conn_t *k = cl->conns;
        mg_h1_call_t *c = k->call;
        conn_close(k);
        if (c != NULL && !c->cancelled && !c->finished) {
            c->cancelled = 1;
            call_drop(c);
        }
    }
    leave(cl);
}

/* 1 when s is an RFC 9110 token (a method or a header name); *len gets its length. */
static int token_ok(const char *s, size_t *len)
{
    static unsigned char tchar[256];
    if (!tchar['a']) {
        for (int ch = 0x21; ch < 0x7f; ch++)
            tchar[ch] = strchr("()<>@,;:\\\"/[]?={}", ch) == NULL;
    }
    const char *p = s;
    while (tchar[(unsigned char)*p])
        p++;
    *len = (size_t)(p - s);
    return *p == '\0' && p > s;
}

static int value_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* 1 for the headers this client writes itself: Host (the caller's replaces the URL's, see
 * mg_h1_request), and the framing ones (a caller's Content-Length, Transfer-Encoding or Connection
 * would contradict the request as written). */
static int own_header(const char *name, size_t nl)
{
    return (nl == 4 && strcasecmp(name, "host") == 0) ||
           (nl == 14 && strcasecmp(name, "content-length") == 0) ||
           (nl == 17 && strcasecmp(name, "transfer-encoding") == 0) ||
           (nl == 10 && strcasecmp(name, "connection") == 0);
}

/* Writes v in decimal at p; returns the digits written. */
static size_t put_dec(char *p, uint64_t v)
{
    char d[24];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        p[i] = d[n - 1 - i];
    return n;
}

static size_t put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return n;
}

int mg_h1_request(mg_h1_client_t *cl, const mg_http_req_t *r, mg_http_head_cb head_cb,
                  mg_http_body_cb body_cb, mg_http_done_cb done_cb, void *data, mg_h1_call_t **out)
{
    if (cl == NULL || done_cb == NULL)
        return MG_EINVAL;
    if (cl->closing)
        return MG_ECLOSED;
    target_t t;
    if (target_get(cl, r, &t) != 0)
        return MG_EINVAL;
    const char *method = r->method ? r->method : r->body ? "POST" : "GET";
    size_t ml, nl;
    if (!token_ok(method, &ml))
        return MG_EINVAL;
    const char *host_hdr = NULL;
    size_t need = strlen(method) + 1 + (t.pathlen ? t.pathlen : 1) + 11 + 8 + sizeof t.host + 8 + 2;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *n = r->headers[2 * i], *v = r->headers[2 * i + 1];
        if (!token_ok(n, &nl) || !value_ok(v))
            return MG_EINVAL;
        if (nl == 4 && strcasecmp(n, "host") == 0)
            host_hdr = v;
        need += strlen(n) + strlen(v) + 4;
    }
    int with_len = r->body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    need += 40 + (r->body != NULL && !r->body_kept ? r->len : 0) + (host_hdr ? strlen(host_hdr) : 0);
    mg_h1_call_t *c = calloc(1, sizeof *c);
    char *o = c ? malloc(need) : NULL;
    if (o == NULL) {
        free(c);
        return MG_ENOMEM;
    }
    /* the request head: what libcurl wrote for the same request, without its defaults */
    size_t n = 0;
    n += put(o + n, method, ml);
    o[n++] = ' ';
    if (t.pathlen == 0 || t.path[0] == '?')
        o[n++] = '/';
    n += put(o + n, t.path, t.pathlen);
    n += put(o + n, " HTTP/1.1\r\nHost: ", 17);
    if (host_hdr != NULL) {
        n += put(o + n, host_hdr, strlen(host_hdr));
    } else {
        n += put(o + n, t.host, strlen(t.host));
        if (t.port != 80) {
            o[n++] = ':';
            n += put_dec(o + n, t.port);
        }
    }
    n += put(o + n, "\r\n", 2);
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *hn = r->headers[2 * i], *hv = r->headers[2 * i + 1];
        size_t hl = strlen(hn);
        if (own_header(hn, hl))
            continue;
        n += put(o + n, hn, hl);
        n += put(o + n, *hv ? ": " : ":", *hv ? 2 : 1);
        n += put(o + n, hv, strlen(hv));
        n += put(o + n, "\r\n", 2);
    }
    size_t blen = r->body != NULL ? r->len : 0;
    if (with_len) {
        n += put(o + n, "Content-Length: ", 16);
        n += put_dec(o + n, blen);
        n += put(o + n, "\r\n", 2);
    }
    n += put(o + n, "\r\n", 2);
    if (r->body != NULL && !r->body_kept && blen > 0)
        n += put(o + n, r->body, blen);
    else if (r->body != NULL && blen > 0)
        c->body = r->body, c->blen = blen;
    c->out = o;
    c->outlen = n;
    c->cl = cl;
    c->head_cb = head_cb;
    c->body_cb = body_cb;
    c->done_cb = done_cb;
    c->data = data;
    c->addr = t.addr;
    c->max_body = r->max_body;
    c->head_only = strcmp(method, "HEAD") == 0;
    c->idempotent = c->head_only || strcmp(method, "GET") == 0 || strcmp(method, "PUT") == 0 ||
                    strcmp(method, "DELETE") == 0 || strcmp(method, "OPTIONS") == 0;
    uint64_t now = uv_now(cl->loop);
    long total = r->timeout_ms == 0 ? 30000 : r->timeout_ms;
    long conn_ms = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : total > 0 ? total : 30000;
    c->deadline = total > 0 ? now + (uint64_t)total : 0;
    c->connect_deadline = now + (uint64_t)conn_ms;
    c->idle_ms = r->idle_ms > 0 ? (uint64_t)r->idle_ms : 0;
    c->last_rx = now;
    int rc = conn_start(c);
    if (rc != 0) {
        call_free(c);
        return rc == UV_ENOMEM ? MG_ENOMEM : MG_EIO;
    }
    if (out != NULL)
        *out = c;
    return 0;
}

const char *mg_h1_call_version(const mg_h1_call_t *c)
{
    if (c == NULL || !c->head_done)
        return NULL;
    return c->minor ? "http/1.1" : "http/1.0";
}

void mg_h1_cancel(mg_h1_call_t *c)
{
    if (c == NULL || c->cancelled || c->finished)
        return;
    c->cancelled = 1;
    if (c->conn != NULL)
        conn_close(c->conn); /* an unfinished exchange: the server sees the client go away */
    call_drop(c);
}
