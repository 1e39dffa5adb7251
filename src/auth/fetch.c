/*
 * fetch.c - libcurl multi on libuv (fetch.h).
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per socket,
 * assigned to the socket with curl_multi_assign) and when to call it back (CURLMOPT_TIMERFUNCTION
 * -> one uv_timer_t). Both paths call curl_multi_socket_action() and then drain
 * curl_multi_info_read() for finished transfers. A finished transfer's callback runs from those
 * libuv callbacks, never from mg_fetch_start(). Poll handles are freed from their close callback.
 */
#include "fetch.h"
#include "../common/err.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct mg_fetch {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    mg_fetch_req_t *reqs;
    int closing;
    int in_action; /* inside curl_multi_socket_action: defer frees */
};

struct mg_fetch_req {
    mg_fetch_t *f;
    CURL *easy;
    struct curl_slist *headers;
    mg_fetch_cb cb;
    void *data;
    char *body;
    size_t len, cap, max;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
    mg_fetch_req_t *next, *prev;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    mg_fetch_t *f;
} sock_ctx_t;

static int curl_inited;

static void unlink_req(mg_fetch_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->f->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void req_free(mg_fetch_req_t *r)
{
    curl_multi_remove_handle(r->f->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static void check_done(mg_fetch_t *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        mg_fetch_req_t *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r == NULL)
            continue;
        CURLcode rc = m->data.result;
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        unlink_req(r);
        int err = 0;
        const char *why = NULL;
        if (r->too_big) {
            err = MG_ETOOBIG;
            why = "response body exceeds the size limit";
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            err = MG_ETIMEOUT;
            why = "timed out";
        } else if (rc != CURLE_OK) {
            err = MG_EIO;
            why = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
        }
        if (r->body == NULL) {
            r->body = calloc(1, 1);
            r->len = 0;
        }
        mg_fetch_cb cb = r->cb;
        void *data = r->data;
        /* Remove from the multi before the callback: it may start new requests. */
        curl_multi_remove_handle(f->multi, r->easy);
        cb(data, err, status, r->body ? r->body : "", r->len, why);
        req_free(r);
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *s = h->data;
    mg_fetch_t *f = s->f;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running = 0;
    curl_multi_socket_action(f->multi, s->fd, flags, &running);
    check_done(f);
}

static void timer_cb(uv_timer_t *t)
{
    mg_fetch_t *f = t->data;
    int running = 0;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    mg_fetch_t *f = userp;
    if (f->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static void sock_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    mg_fetch_t *f = userp;
    sock_ctx_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
            curl_multi_assign(f->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->f = f;
        if (uv_poll_init_socket(f->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(f->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *userp)
{
    mg_fetch_req_t *r = userp;
    size_t len = size * n;
    if (r->len + len > r->max) {
        r->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, ptr, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

int mg_fetch_new(uv_loop_t *loop, mg_fetch_t **out)
{
    if (!curl_inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return MG_ENOMEM;
        curl_inited = 1;
    }
    mg_fetch_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return MG_ENOMEM;
    f->loop = loop;
    f->multi = curl_multi_init();
    if (f->multi == NULL) {
        free(f);
        return MG_ENOMEM;
    }
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    *out = f;
    return 0;
}

int mg_fetch_start(mg_fetch_t *f, const mg_fetch_opts_t *o, mg_fetch_cb cb, void *data, mg_fetch_req_t **out)
{
    if (f == NULL || f->closing || o == NULL || o->url == NULL || cb == NULL)
        return MG_EINVAL;
    mg_fetch_req_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MG_ENOMEM;
    r->f = f;
    r->cb = cb;
    r->data = data;
    r->max = o->max_bytes ? o->max_bytes : 1024 * 1024;
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        free(r);
        return MG_ENOMEM;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mcpgate/" MG_VERSION);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max);
    char accept[128];
    snprintf(accept, sizeof accept, "Accept: %s", o->accept ? o->accept : "application/json");
    r->headers = curl_slist_append(NULL, accept);
    if (o->post_form != NULL) {
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->post_form);
        r->headers = curl_slist_append(r->headers, "Content-Type: application/x-www-form-urlencoded");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (o->basic_user != NULL && o->basic_pass != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, o->basic_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, o->basic_pass);
    }
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(r->headers);
        free(r);
        return MG_ENOMEM;
    }
    r->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = r;
    f->reqs = r;
    if (out != NULL)
        *out = r;
    return 0;
}

void mg_fetch_cancel(mg_fetch_req_t *r)
{
    if (r == NULL)
        return;
    unlink_req(r);
    req_free(r);
}

static void timer_closed_cb(uv_handle_t *h)
{
    mg_fetch_t *f = h->data;
    curl_multi_cleanup(f->multi);
    free(f);
}

void mg_fetch_free(mg_fetch_t *f)
{
    if (f == NULL || f->closing)
        return;
    while (f->reqs != NULL)
        mg_fetch_cancel(f->reqs);
    f->closing = 1;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, timer_closed_cb);
}
