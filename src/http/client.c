/*
 * client.c - libcurl multi on libuv (client.h).
 *
 * curl says which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per socket, bound to
 * it with curl_multi_assign) and when to call it back (CURLMOPT_TIMERFUNCTION -> one uv_timer_t).
 * Both paths call curl_multi_socket_action() and then drain curl_multi_info_read() for finished
 * transfers, whose done_cb runs from there. libcurl forbids adding or removing a transfer from
 * inside its own callbacks (head/body are delivered from its header and write callbacks), so while
 * `in_curl` is set, mg_http_request() only queues the call and mg_http_cancel() only marks it; the
 * sweep after curl_multi_socket_action() returns does the rest. Idle connections stay in the
 * multi's connection cache (keep-alive); finished calls keep their easy handle for the next one,
 * with the options every request sets alike, the parsed URL (CURLOPT_CURLU) and, per client, the
 * pinned address already in the multi's DNS cache (configure(), url_parsed(), pin_needed()).
 * libcurl itself is loaded on first use (common/lazylib.c). Handles are freed from their close
 * callbacks; the client from the last one.
 */
#include "client.h"
#include "../common/err.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEAD (16u * 1024)
/* Finished calls kept per client for the next request: a libcurl easy handle is several KiB with its
 * buffers, and a fresh one per request was the first cost of a remote upstream's hop. */
#define SPARE_MAX 16u

typedef struct sock_ctx sock_ctx_t;

struct mg_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    mg_http_call_t *calls; /* every call not finished yet, queued ones included */
    sock_ctx_t *socks;     /* polls not closing yet */
    int handles;           /* open uv handles: the timer and the polls */
    int in_curl;           /* inside curl_multi_socket_action: defer adds and removals */
    int depth;             /* inside poll_cb / timer_cb: defer the teardown */
    int closing;
    mg_http_call_t *spare; /* finished calls kept for reuse: easy handle (reset) and header buffer */
    unsigned nspare;
    char *pinned; /* the CURLOPT_RESOLVE entry in the multi's DNS cache, see pin_needed() */
};

struct mg_http_call {
    mg_http_client_t *cl;
    CURL *easy;
    struct curl_slist *headers;
    struct curl_slist *resolve; /* the pinned address (CURLOPT_RESOLVE), or NULL */
    mg_http_head_cb head_cb;
    mg_http_body_cb body_cb;
    mg_http_done_cb done_cb;
    void *data;
    char *head;   /* header lines of the current block */
    CURLU *uh;    /* the parsed URL of the last request on this handle (CURLOPT_CURLU), kept with it */
    char *uh_url; /* that URL as given, to know when uh still matches */
    /* The easy handle's options that outlive a request, see configure(): set since its last reset
     * (and no option that must not survive, such as credentials); with these CA file and proxy. */
    int configured;
    char *cfg_ca;
    int cfg_env_proxy;
    size_t headlen;
    size_t got, max;
    int added;     /* in the multi */
    int cancelled; /* no callback runs any more; freed by the next sweep (or at once) */
    int head_sent;
    int head_too_big, body_too_big;
    char errbuf[CURL_ERROR_SIZE];
    mg_http_call_t *next, *prev;
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    mg_http_client_t *cl;
    sock_ctx_t *next, *prev;
};

static int curl_inited;

/* ---- lists and lifetime ---- */

static void call_unlink(mg_http_call_t *c)
{
    mg_http_client_t *cl = c->cl;
    if (c->prev)
        c->prev->next = c->next;
    else if (cl->calls == c)
        cl->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void call_dispose(mg_http_call_t *c)
{
    curl_easy_cleanup(c->easy);
    curl_url_cleanup(c->uh);
    free(c->uh_url);
    free(c->cfg_ca);
    free(c->head);
    free(c);
}

/* A call out of the multi and every list: kept as a spare or freed. A spare's handle keeps the
 * options every request sets alike (configure()); its header list and pinned address are gone
 * (unset before their lists are freed), and a handle that carried credentials (basic auth) or
 * whose setup failed half-way is reset: no option of this request survives there. */
static void call_release(mg_http_call_t *c)
{
    mg_http_client_t *cl = c->cl;
    if (c->easy != NULL && !cl->closing && cl->nspare < SPARE_MAX) {
        CURL *easy = c->easy;
        char *head = c->head, *uh_url = c->uh_url, *cfg_ca = c->cfg_ca;
        CURLU *uh = c->uh;
        int configured = c->configured, env_proxy = c->cfg_env_proxy;
        if (configured) {
            curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
            curl_easy_setopt(easy, CURLOPT_RESOLVE, NULL);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL); /* frees a copied body */
        } else {
            curl_easy_reset(easy);
            free(cfg_ca);
            cfg_ca = NULL;
        }
        curl_slist_free_all(c->headers);
        curl_slist_free_all(c->resolve);
        memset(c, 0, sizeof *c);
        c->cl = cl;
        c->easy = easy;
        c->head = head;
        c->uh = uh;
        c->uh_url = uh_url;
        c->configured = configured;
        c->cfg_ca = cfg_ca;
        c->cfg_env_proxy = env_proxy;
        c->next = cl->spare;
        cl->spare = c;
        cl->nspare++;
        return;
    }
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->resolve);
    call_dispose(c);
}

/* Removes the transfer from the multi (closing an unfinished exchange's connection) and frees it.
 * Never from inside a curl callback. */
static void call_free(mg_http_call_t *c)
{
    call_unlink(c);
    if (c->added)
        curl_multi_remove_handle(c->cl->multi, c->easy);
    call_release(c);
}

static void handle_closed_cb(uv_handle_t *h)
{
    mg_http_client_t *cl = h->data;
    if (h != (uv_handle_t *)&cl->timer) {
        sock_ctx_t *s = (sock_ctx_t *)h;
        free(s);
    }
    if (--cl->handles == 0)
        free(cl);
}

static void sock_close(sock_ctx_t *s)
{
    mg_http_client_t *cl = s->cl;
    if (s->prev)
        s->prev->next = s->next;
    else
        cl->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    s->poll.data = cl;
    uv_close((uv_handle_t *)&s->poll, handle_closed_cb);
}

static void teardown(mg_http_client_t *cl)
{
    while (cl->calls != NULL)
        call_free(cl->calls);
    while (cl->spare != NULL) {
        mg_http_call_t *c = cl->spare;
        cl->spare = c->next;
        call_dispose(c);
    }
    cl->nspare = 0;
    free(cl->pinned);
    cl->pinned = NULL;
    curl_multi_cleanup(cl->multi); /* closes the cached connections (their polls: CURL_POLL_REMOVE) */
    cl->multi = NULL;
    while (cl->socks != NULL)
        sock_close(cl->socks);
    uv_timer_stop(&cl->timer);
    uv_close((uv_handle_t *)&cl->timer, handle_closed_cb);
}

void mg_http_client_free(mg_http_client_t *cl)
{
    if (cl == NULL || cl->closing)
        return;
    cl->closing = 1;
    for (mg_http_call_t *c = cl->calls; c != NULL; c = c->next)
        c->cancelled = 1;
    if (cl->depth == 0)
        teardown(cl);
}

/* ---- finishing ---- */

/* After a transfer that loaded its pinned address (c->resolve): that entry is in the multi's DNS
 * cache for good once the transfer connected to it, so later requests with the same pin need not
 * load it again (pin_needed()). Recorded only when the connection's address is the pinned one. */
static void pin_loaded(mg_http_call_t *c, CURLcode rc)
{
    mg_http_client_t *cl = c->cl;
    const char *ip = NULL, *entry = c->resolve->data;
    size_t n = strlen(entry);
    /* the address: after the last ':' ("host:port:192.0.2.1") or in brackets ("host:port:[2001:db8::1]") */
    const char *addr = n > 0 && entry[n - 1] == ']' ? strrchr(entry, '[') : strrchr(entry, ':');
    if (rc != CURLE_OK || addr == NULL || curl_easy_getinfo(c->easy, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK ||
        ip == NULL)
        return;
    addr++;
    size_t alen = entry[n - 1] == ']' ? (size_t)(entry + n - 1 - addr) : strlen(addr);
    if (strlen(ip) != alen || memcmp(ip, addr, alen) != 0)
        return;
    char *copy = strdup(entry);
    if (copy == NULL)
        return;
    free(cl->pinned);
    cl->pinned = copy;
}

static void finish(mg_http_call_t *c, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->resolve != NULL)
        pin_loaded(c, rc);
    call_unlink(c);
    curl_multi_remove_handle(c->cl->multi, c->easy); /* before the callback: it may start requests */
    c->added = 0;
    if (!c->cancelled) {
        int err = 0;
        const char *why = NULL;
        if (c->head_too_big) {
            err = MG_ETOOBIG;
            why = "the response headers exceed 16 KiB";
        } else if (c->body_too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            err = MG_ETOOBIG;
            why = "the response body exceeds the size limit";
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            err = MG_ETIMEOUT;
            why = "timed out";
        } else if (rc != CURLE_OK) {
            err = MG_EIO;
            why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
        }
        c->cancelled = 1;
        c->done_cb(c->data, err, (int)status, why);
    }
    call_release(c);
}

/* Queued adds and cancelled calls, once libcurl has returned. */
static void sweep(mg_http_client_t *cl)
{
    mg_http_call_t *c = cl->calls, *next;
    for (; c != NULL && !cl->closing; c = next) {
        next = c->next;
        if (c->cancelled) {
            call_free(c);
        } else if (!c->added) {
            if (curl_multi_add_handle(cl->multi, c->easy) == CURLM_OK) {
                c->added = 1;
            } else {
                call_unlink(c);
                c->cancelled = 1;
                c->done_cb(c->data, MG_ENOMEM, 0, "could not start the request");
                c->added = 0;
                call_free(c);
                next = cl->calls; /* the callback may have changed the list */
            }
        }
    }
}

static void check_done(mg_http_client_t *cl)
{
    CURLMsg *m;
    int left;
    while (!cl->closing && (m = curl_multi_info_read(cl->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        mg_http_call_t *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (c != NULL)
            finish(c, m->data.result);
    }
}

static void action(mg_http_client_t *cl, curl_socket_t fd, int flags)
{
    int running = 0;
    cl->depth++;
    cl->in_curl = 1;
    curl_multi_socket_action(cl->multi, fd, flags, &running);
    cl->in_curl = 0;
    sweep(cl);
    check_done(cl);
    sweep(cl);
    if (--cl->depth == 0 && cl->closing)
        teardown(cl);
}

/* ---- libcurl -> libuv ---- */

static void poll_cb(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *s = (sock_ctx_t *)h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    action(s->cl, s->fd, flags);
}

static void timer_cb(uv_timer_t *t)
{
    action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    mg_http_client_t *cl = userp;
    if (cl->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&cl->timer);
    else
        uv_timer_start(&cl->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    mg_http_client_t *cl = userp;
    sock_ctx_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            if (cl->multi != NULL)
                curl_multi_assign(cl->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (cl->closing)
        return -1;
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->cl = cl;
        if (uv_poll_init_socket(cl->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        cl->handles++;
        s->next = cl->socks;
        if (cl->socks)
            cl->socks->prev = s;
        cl->socks = s;
        curl_multi_assign(cl->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

/* ---- response ---- */

/* One header line at a time, the status line and the empty line that ends the block included;
 * 1xx blocks are skipped, and trailers after the body ignored. */
static size_t header_cb(char *p, size_t size, size_t n, void *userp)
{
    mg_http_call_t *c = userp;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    if (c->head_sent)
        return len;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        c->headlen = 0;
        return len;
    }
    if (len == 0 || p[0] == '\r' || p[0] == '\n') {
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 100 && status < 200) {
            c->headlen = 0;
            return len;
        }
        c->head_sent = 1;
        if (c->head_cb != NULL)
            c->head_cb(c->data, (int)status, c->head ? c->head : "", c->headlen);
        return c->cancelled ? 0 : len;
    }
    if (c->headlen + len > MAX_HEAD) {
        c->head_too_big = 1;
        return 0;
    }
    if (c->head == NULL) {
        c->head = malloc(MAX_HEAD + 1);
        if (c->head == NULL)
            return 0;
    }
    memcpy(c->head + c->headlen, p, len);
    c->headlen += len;
    c->head[c->headlen] = '\0';
    return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userp)
{
    mg_http_call_t *c = userp;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    if (c->max > 0 && c->got + len > c->max) {
        c->body_too_big = 1;
        return 0;
    }
    c->got += len;
    if (c->body_cb != NULL && len > 0)
        c->body_cb(c->data, p, len);
    return c->cancelled ? 0 : len;
}

/* ---- requests ---- */

int mg_http_client_new(uv_loop_t *loop, mg_http_client_t **out)
{
    if (!curl_inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return MG_EIO;
        curl_inited = 1;
    }
    mg_http_client_t *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return MG_ENOMEM;
    cl->loop = loop;
    cl->multi = curl_multi_init();
    if (cl->multi == NULL) {
        free(cl);
        return MG_ENOMEM;
    }
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
    /* keep-alive: libcurl's default cache holds 4 connections per transfer *currently added*, so
     * with transfers added and removed one by one every burst closed its connections */
    curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS, 256L);
    uv_timer_init(loop, &cl->timer);
    cl->timer.data = cl;
    cl->handles = 1;
    *out = cl;
    return 0;
}

/* Appends "Name: value" (or "Name;" for an empty value: "Name:" would remove the header). */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *line = malloc(nl + vl + 3);
    if (line == NULL)
        return MG_ENOMEM;
    if (vl == 0) {
        memcpy(line, name, nl);
        memcpy(line + nl, ";", 2);
    } else {
        memcpy(line, name, nl);
        memcpy(line + nl, ": ", 2);
        memcpy(line + nl + 2, value, vl + 1);
    }
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (l == NULL)
        return MG_ENOMEM;
    *list = l;
    return 0;
}

static int has_header(const mg_http_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[2 * i], name) == 0)
            return 1;
    return 0;
}

static int set_headers(mg_http_call_t *c, const mg_http_req_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (add_header(&c->headers, r->headers[2 * i], r->headers[2 * i + 1]) != 0)
            return MG_ENOMEM;
    /* Only what the caller names goes out: none of libcurl's defaults (Accept: star/star, a form
     * Content-Type on POST) and no "Expect: 100-continue" round trip for large bodies. */
    const char *removed[] = {"Accept:", "Content-Type:", "Expect:"};
    for (size_t i = 0; i < sizeof removed / sizeof *removed; i++) {
        char name[16];
        memcpy(name, removed[i], strlen(removed[i]) - 1);
        name[strlen(removed[i]) - 1] = '\0';
        if (has_header(r, name))
            continue;
        struct curl_slist *l = curl_slist_append(c->headers, removed[i]);
        if (l == NULL)
            return MG_ENOMEM;
        c->headers = l;
    }
    return 0;
}

/* 1 when c->uh holds url parsed. libcurl parses a CURLOPT_URL string afresh on every transfer
 * (parse, then print it back normalised: ~10 k instructions); a handle given as CURLOPT_CURLU is
 * only copied. A spare keeps its parsed URL, so a client with one upstream parses it once. The
 * URL's host still goes through CURLOPT_RESOLVE when pinned: the parse does not resolve anything.
 * 0 (libcurl then parses the string and reports what is wrong with it) when it does not parse. */
static int url_parsed(mg_http_call_t *c, const char *url)
{
    if (c->uh != NULL && strcmp(c->uh_url, url) == 0)
        return 1;
    curl_url_cleanup(c->uh);
    free(c->uh_url);
    c->uh = curl_url();
    c->uh_url = strdup(url);
    if (c->uh == NULL || c->uh_url == NULL || curl_url_set(c->uh, CURLUPART_URL, url, 0) != CURLUE_OK) {
        curl_url_cleanup(c->uh);
        free(c->uh_url);
        c->uh = NULL;
        c->uh_url = NULL;
        return 0;
    }
    return 1;
}

/* 1 when a request pinned to `resolve` ("host:port:address") must hand it to libcurl. A
 * CURLOPT_RESOLVE entry goes into the multi's DNS cache as a permanent entry (it never expires, and
 * a later entry for the same host:port replaces it), and libcurl parses the list on every transfer
 * that sets it (~2.5 k instructions). So it is set again only when it is not the entry a finished
 * transfer of this client connected through (cl->pinned). Setting another pin forgets cl->pinned
 * first: until that transfer has connected, nobody relies on the cache, so every new connection
 * still goes to its own request's pinned address. */
static int pin_needed(mg_http_client_t *cl, const char *resolve)
{
    if (resolve == NULL)
        return 0;
    if (cl->pinned != NULL && strcmp(cl->pinned, resolve) == 0)
        return 0;
    free(cl->pinned);
    cl->pinned = NULL;
    return 1;
}

/* 1 when c's handle was configured for requests like r (same CA file, same proxy rule). */
static int configured_as(const mg_http_call_t *c, const mg_http_req_t *r)
{
    if (r->env_proxy != c->cfg_env_proxy)
        return 0;
    if (r->ca_file == NULL || c->cfg_ca == NULL)
        return r->ca_file == c->cfg_ca;
    return strcmp(r->ca_file, c->cfg_ca) == 0;
}

/* Resets c's handle and sets the options every request of its kind sets alike: callbacks, no
 * redirects, http(s) only, TCP_NODELAY, the proxy rule and the CA file. A spare keeps them for
 * the next request (curl_easy_reset and these ~15 options were ~6 k instructions per request);
 * the options that differ between requests are set by mg_http_request() every time. Returns
 * nonzero when an option could not be set. */
static int configure(mg_http_call_t *c, const mg_http_req_t *r)
{
    CURL *e = c->easy;
    int bad = 0;
    curl_easy_reset(e);
    c->configured = 0;
    free(c->cfg_ca);
    c->cfg_ca = NULL;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, c) != CURLE_OK;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (!r->env_proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, ""); /* not even from the environment */
    c->cfg_env_proxy = r->env_proxy;
    if (r->ca_file != NULL) {
        c->cfg_ca = strdup(r->ca_file);
        bad |= c->cfg_ca == NULL || curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file) != CURLE_OK;
    }
    return bad;
}

int mg_http_request(mg_http_client_t *cl, const mg_http_req_t *r, mg_http_head_cb head_cb,
                    mg_http_body_cb body_cb, mg_http_done_cb done_cb, void *data, mg_http_call_t **out)
{
    if (cl == NULL || r == NULL || r->url == NULL || done_cb == NULL ||
        (strncasecmp(r->url, "http://", 7) != 0 && strncasecmp(r->url, "https://", 8) != 0))
        return MG_EINVAL;
    if (cl->closing)
        return MG_ECLOSED;
    mg_http_call_t *c = cl->spare;
    if (c != NULL) {
        cl->spare = c->next;
        cl->nspare--;
        c->next = NULL;
    } else {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return MG_ENOMEM;
        c->cl = cl;
        c->easy = curl_easy_init();
    }
    c->head_cb = head_cb;
    c->body_cb = body_cb;
    c->done_cb = done_cb;
    c->data = data;
    c->max = r->max_body;
    if (c->easy == NULL || set_headers(c, r) != 0) {
        call_release(c);
        return MG_ENOMEM;
    }
    CURL *e = c->easy;
    long timeout = r->timeout_ms == 0 ? 30000L : r->timeout_ms < 0 ? 0L : r->timeout_ms;
    long connect = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : timeout > 0 ? timeout : 30000L;
    int reused = c->configured, bad = 0;
    if (!c->configured || !configured_as(c, r)) {
        bad |= configure(c, r);
        reused = 0;
    }
    c->configured = 0; /* until every option of this request is set */
    if (url_parsed(c, r->url)) {
        bad |= curl_easy_setopt(e, CURLOPT_CURLU, c->uh) != CURLE_OK;
    } else {
        curl_easy_setopt(e, CURLOPT_CURLU, NULL); /* it would take precedence over the string */
        bad |= curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK;
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    if (reused || r->max_body > 0)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body); /* 0: no limit */
    if (pin_needed(cl, r->resolve)) {
        c->resolve = curl_slist_append(NULL, r->resolve);
        bad |= c->resolve == NULL || curl_easy_setopt(e, CURLOPT_RESOLVE, c->resolve) != CURLE_OK;
    }
    if (reused || r->idle_ms > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, r->idle_ms > 0 ? 1L : 0L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, r->idle_ms > 0 ? (r->idle_ms + 999) / 1000 : 0L);
    }
    if (r->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
        bad |= curl_easy_setopt(e, r->body_kept ? CURLOPT_POSTFIELDS : CURLOPT_COPYPOSTFIELDS, r->body) !=
               CURLE_OK;
    } else if (reused) { /* back to a GET without a body (POSTFIELDS NULL alone would mean POST) */
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    if (r->method != NULL && strcmp(r->method, r->body != NULL ? "POST" : "GET") != 0)
        bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method) != CURLE_OK;
    else if (reused)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    int sticky = 0;
    if (r->basic_user != NULL && r->basic_pass != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        bad |= curl_easy_setopt(e, CURLOPT_USERNAME, r->basic_user) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, r->basic_pass) != CURLE_OK;
        sticky = 1; /* credentials: the handle is reset after this request */
    }
    if (bad) {
        call_release(c);
        return MG_ENOMEM;
    }
    c->configured = !sticky;
    if (!cl->in_curl) {
        if (curl_multi_add_handle(cl->multi, e) != CURLM_OK) {
            call_release(c);
            return MG_ENOMEM;
        }
        c->added = 1;
    } /* else: added by the sweep once libcurl has returned */
    c->next = cl->calls;
    if (cl->calls)
        cl->calls->prev = c;
    cl->calls = c;
    if (out != NULL)
        *out = c;
    return 0;
}

const char *mg_http_call_version(const mg_http_call_t *c)
{
    long v = 0;
    if (c == NULL || c->easy == NULL || curl_easy_getinfo(c->easy, CURLINFO_HTTP_VERSION, &v) != CURLE_OK)
        return NULL;
    return v == CURL_HTTP_VERSION_2_0   ? "h2"
           : v == CURL_HTTP_VERSION_1_1 ? "http/1.1"
           : v == CURL_HTTP_VERSION_1_0 ? "http/1.0"
           : v == CURL_HTTP_VERSION_3   ? "h3"
                                        : NULL;
}

void mg_http_cancel(mg_http_call_t *c)
{
    if (c == NULL || c->cancelled)
        return;
    c->cancelled = 1;
    if (!c->cl->in_curl)
        call_free(c);
}
