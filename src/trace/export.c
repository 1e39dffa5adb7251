/*
 * export.c - ended spans to the collector: a bounded queue, drained every second (or as soon as a
 * batch is full) by one OTLP/HTTP POST at a time (JSON, or protobuf: otlp_pb.h) through an outbound client:
 * http/h1client.h for an http:// endpoint given by IP (ADR 0020), else http/client.h (libcurl on the
 * loop). An http:// endpoint named by host goes through the lean client too: its name is looked up
 * on the thread pool (uv_getaddrinfo) and an address of the answer pinned for the requests (h1client.h
 * never resolves): the same one while it works, the next one after an export through it failed, a new
 * lookup when none is left and every minute. Exports wait for the first answer; when the name cannot be
 * resolved, libcurl sends (it looks the name up itself) until the next lookup. A request never waits for it:
 * a full queue drops the span and counts it; a failed export (collector down, timeout, non-2xx) drops its
 * batch and counts it. Spans are queued as records (span_rec.h) and encoded, a batch at a time, into one body
 * kept between exports. Nothing is retried: traces are best effort, memory is bounded. Metrics:
 * mcpgate_trace_spans_total{outcome="exported|dropped|failed"}, mcpgate_trace_exports_failed_total,
 * mcpgate_trace_queue_spans. Read next: trace_int.h (the body's format), span_rec.h, trace.c.
 */
#include "trace_int.h"
#include "otlp_pb.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../obs/metrics.h"

#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void export_now(mg_trace_t *t);

/* 1 while an export is in flight (through either client). */
static int exporting(const mg_trace_t *t)
{
    return t->call != NULL || t->h1call != NULL;
}

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_trace_t *t = data;
    mg_metrics_family(out, "mcpgate_trace_spans_total", "counter",
                      "Spans ended, by outcome: exported to the collector, dropped because the export queue "
                      "was full, or lost in a failed export");
    const char *ex[] = {"outcome", "exported", NULL};
    const char *dr[] = {"outcome", "dropped", NULL};
    const char *fa[] = {"outcome", "failed", NULL};
    mg_metrics_sample(out, "mcpgate_trace_spans_total", ex, (double)t->spans_exported);
    mg_metrics_sample(out, "mcpgate_trace_spans_total", dr, (double)t->spans_dropped);
    mg_metrics_sample(out, "mcpgate_trace_spans_total", fa, (double)t->spans_failed);
    mg_metrics_family(out, "mcpgate_trace_exports_failed_total", "counter",
                      "OTLP export requests that failed (collector unreachable, timeout, non-2xx answer)");
    mg_metrics_sample(out, "mcpgate_trace_exports_failed_total", NULL, (double)t->exports_failed);
    mg_metrics_family(out, "mcpgate_trace_queue_spans", "gauge", "Ended spans waiting for export");
    mg_metrics_sample(out, "mcpgate_trace_queue_spans", NULL, (double)t->count);
}

static void drain_check(mg_trace_t *t);

static void timer_cb(uv_timer_t *h)
{
    mg_trace_t *t = h->data;
    export_now(t);
    if (t->drain_cb != NULL)
        drain_check(t);
}

int mg__trace_export_init(mg_trace_t *t)
{
    t->ring = calloc(MG__TRACE_QUEUE_MAX, sizeof *t->ring);
    if (t->ring == NULL)
        return MG_ENOMEM;
    uv_timer_init(t->loop, &t->timer);
    t->timer.data = t;
    uv_unref((uv_handle_t *)&t->timer); /* never keeps the loop alive */
    uv_timer_start(&t->timer, timer_cb, MG__TRACE_FLUSH_MS, MG__TRACE_FLUSH_MS);
    mg_metrics_register(collect_cb, t);
    return 0;
}

/* Room for n bytes in the block being filled (a fresh one when it is full), or NULL. */
static char *block_room(mg_trace_t *t, size_t n)
{
    mg__trace_block_t *b = t->blk;
    if (b != NULL && b->used + n <= MG__TRACE_BLOCK)
        return b->data + b->used;
    if (n > MG__TRACE_BLOCK)
        return NULL;
    if (b != NULL && b->refs == 0) { /* nothing queued in it: start it over */
        b->used = 0;
        return b->data;
    }
    if ((b = t->spare) != NULL) {
        t->spare = b->next_spare;
        t->nspare--;
    } else if ((b = malloc(sizeof *b)) == NULL) {
        return NULL;
    }
    b->refs = b->used = 0;
    t->blk = b; /* the previous one is freed when its last span leaves (queue_drop) */
    return b->data;
}

void mg__trace_queue(mg_trace_t *t, const mg_span_t *s)
{
    size_t data = s->b.len, len = MG__SPAN_REC_ALIGN(sizeof(mg__span_rec_t) + data + s->h.error_len);
    char *o;
    if (s->bad || s->b.err || t->freeing || t->count >= MG__TRACE_QUEUE_MAX ||
        (o = block_room(t, len)) == NULL) {
        t->spans_dropped++;
        return;
    }
    mg__span_rec_t *r = (mg__span_rec_t *)(void *)o; /* blocks and records are 8-aligned */
    *r = s->h;
    r->len = (uint32_t)len;
    memcpy(o + sizeof *r, s->b.p, data);
    if (s->h.has_error)
        memcpy(o + sizeof *r + data, s->error, s->h.error_len);
    t->blk->used += len;
    t->blk->refs++;
    mg__trace_item_t *it = &t->ring[(t->head + t->count++) % MG__TRACE_QUEUE_MAX];
    it->rec = r;
    it->blk = t->blk;
    if (t->count >= MG__TRACE_BATCH_MAX && !exporting(t))
        uv_timer_start(&t->timer, timer_cb, 0, MG__TRACE_FLUSH_MS); /* a full batch: on the next turn */
}

/* ---- an endpoint named by host: its address, looked up and pinned ---- */

/* One lookup; its tracer may be freed meanwhile (t NULL: the answer is thrown away). */
struct mg__trace_lookup {
    uv_getaddrinfo_t gai;
    mg_trace_t *t;
};

/* Pins address i of the last lookup. Returns 0, or MG_ENOMEM (the pin stays as it was). */
static int pin_addr(mg_trace_t *t, unsigned i)
{
    const char *addr = t->addrs[i];
    size_t n = strlen(t->pin_host) + strlen(addr) + 16;
    char *pin = malloc(n);
    if (pin == NULL)
        return MG_ENOMEM;
    snprintf(pin, n, strchr(addr, ':') ? "%s:%u:[%s]" : "%s:%u:%s", t->pin_host, t->pin_port, addr);
    free(t->pin);
    t->pin = pin;
    t->addr_i = i;
    return 0;
}

static void lookup_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    struct mg__trace_lookup *l = g->data;
    mg_trace_t *t = l->t;
    unsigned n = 0;
    char addrs[4][48];
    for (const struct addrinfo *a = status == 0 ? ai : NULL; a != NULL && n < 4; a = a->ai_next) {
        char *o = addrs[n];
        if (a->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)(const void *)a->ai_addr, o, sizeof addrs[0]);
        else if (a->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)(const void *)a->ai_addr, o, sizeof addrs[0]);
        else
            continue;
        int seen = 0; /* each address once (the answer repeats it per socket type and protocol) */
        for (unsigned k = 0; k < n; k++)
            seen |= strcmp(addrs[k], o) == 0;
        n += !seen;
    }
    uv_freeaddrinfo(ai);
    free(l);
    if (t == NULL)
        return; /* the tracer went first */
    t->lookup = NULL;
    t->pin_ms = uv_now(t->loop);
    unsigned keep = 0; /* the address pinned now when the answer still has it and it did not fail */
    for (unsigned k = 0; k < n && t->pin != NULL && !t->pin_stale; k++)
        if (strcmp(addrs[k], t->addrs[t->addr_i]) == 0)
            keep = k;
    t->pin_stale = 0;
    memcpy(t->addrs, addrs, sizeof addrs);
    t->naddrs = n;
    if (n == 0 || pin_addr(t, keep) != 0) { /* no answer: libcurl sends (it looks the name up itself)
                                               until the next try */
        free(t->pin);
        t->pin = NULL;
        t->naddrs = 0;
    }
    if (t->count > 0)
        export_now(t);
}

/* Starts a lookup of the endpoint's name when it is due: none yet, a minute old, or an export through
 * the pin failed. Nothing when one is under way. */
static void lookup_due(mg_trace_t *t)
{
    if (t->lookup != NULL || t->freeing)
        return;
    uint64_t now = uv_now(t->loop);
    if (t->pin_ms != 0 && !t->pin_stale && now - t->pin_ms < MG__TRACE_PIN_MS)
        return;
    struct mg__trace_lookup *l = calloc(1, sizeof *l);
    if (l == NULL)
        return;
    l->t = t;
    l->gai.data = l;
    char port[8];
    snprintf(port, sizeof port, "%u", t->pin_port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    if (uv_getaddrinfo(t->loop, &l->gai, lookup_cb, t->pin_host, port, &hints) != 0) {
        free(l);
        t->pin_ms = now; /* not now: again in a minute */
        return;
    }
    t->lookup = l;
}

static void done_cb(void *data, int err, int status, const char *why)
{
    mg_trace_t *t = data;
    t->call = NULL;
    t->h1call = NULL;
    if (t->via_pin && err == MG_EIO) { /* connect failed or the connection broke: the name's next
                                          address, or a new lookup when none is left */
        if (t->addr_i + 1 >= t->naddrs || pin_addr(t, t->addr_i + 1) != 0)
            t->pin_stale = 1;
    }
    t->via_pin = 0;
    if (err == 0 && status >= 200 && status < 300) {
        t->spans_exported += t->inflight;
    } else {
        t->spans_failed += t->inflight;
        if (t->exports_failed++ % 60 == 0) /* the first failure, then one line a minute at most */
            mg_log_json(MG_LOG_WARN, "trace export failed; spans of this batch are dropped",
                        json_pack("{s:i,s:s,s:I}", "status", status, "error",
                                  err ? (why ? why : mg_strerror(err)) : "collector answered non-2xx",
                                  "failures", (json_int_t)t->exports_failed));
    }
    t->inflight = 0;
    if (t->count >= MG__TRACE_BATCH_MAX || (t->drain_cb != NULL && t->count > 0))
        export_now(t);
    if (t->drain_cb != NULL)
        drain_check(t);
}

/* Releases the n oldest spans of the queue (and the blocks that held only them). */
static void queue_drop(mg_trace_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mg__trace_item_t *it = &t->ring[t->head];
        mg__trace_block_t *b = it->blk;
        it->rec = NULL;
        it->blk = NULL;
        if (--b->refs == 0) {
            if (b == t->blk)
                b->used = 0;
            else if (t->nspare < MG__TRACE_SPARE_BLOCKS) {
                b->next_spare = t->spare;
                t->spare = b;
                t->nspare++;
            } else
                free(b);
        }
        t->head = (t->head + 1) % MG__TRACE_QUEUE_MAX;
        t->count--;
    }
}

/* POSTs body (NULL: out of memory) of n spans with the configured headers. kept: body is t->body,
 * sent from where it is (it stays untouched until done_cb); otherwise it is borrowed and copied. */
static void send_body(mg_trace_t *t, const char *body, size_t len, const char *ctype, size_t n, int kept)
{
    const char *stack[2 * 10];
    size_t nh = 2 + t->nheaders;
    const char **hdrs = nh <= 10 ? stack : malloc(2 * nh * sizeof *hdrs);
    if (hdrs != NULL) {
        hdrs[0] = "content-type";
        hdrs[1] = ctype;
        hdrs[2] = "user-agent";
        hdrs[3] = "mcpgate/" MG_VERSION;
        for (size_t i = 0; i < 2 * t->nheaders; i++)
            hdrs[4 + i] = t->headers[i];
    }
    mg_http_req_t r = {.url = t->endpoint,
                       .headers = hdrs,
                       .nheaders = nh,
                       .body = body,
                       .len = len,
                       .body_kept = kept,
                       .timeout_ms = MG__TRACE_TIMEOUT_MS,
                       .connect_timeout_ms = 2000,
                       .max_body = 64 * 1024};
    if (!t->h1_ok && t->named && t->pin != NULL)
        r.resolve = t->pin; /* an endpoint named by host: its pinned address */
    int rc = body == NULL || hdrs == NULL    ? MG_ENOMEM
             : t->h1_ok || r.resolve != NULL ? mg_h1_request(t->h1, &r, NULL, NULL, done_cb, t, &t->h1call)
                                             : MG_EINVAL;
    t->via_pin = rc == 0 && r.resolve != NULL;
    if (rc == MG_EINVAL) { /* not for the lean client (another endpoint, a header it refuses): libcurl */
        if (t->http == NULL && mg_http_client_new(t->loop, &t->http) != 0)
            t->http = NULL; /* libcurl missing (logged by the client) */
        rc = t->http != NULL ? mg_http_request(t->http, &r, NULL, NULL, done_cb, t, &t->call) : MG_EINVAL;
    }
    if (hdrs != stack)
        free(hdrs);
    if (rc != 0) {
        t->call = NULL;
        t->h1call = NULL;
        t->spans_failed += n;
        t->exports_failed++;
        return;
    }
    t->inflight = n;
}

int mg__trace_encode(const mg_trace_t *t, size_t n, mg_jbuf_t *b)
{
    if (t->protobuf) {
        const mg__span_rec_t *recs[MG__TRACE_BATCH_MAX];
        if (n > MG__TRACE_BATCH_MAX)
            n = MG__TRACE_BATCH_MAX;
        for (size_t i = 0; i < n; i++)
            recs[i] = t->ring[(t->head + i) % MG__TRACE_QUEUE_MAX].rec;
        return mg_otlp_pb_request_recs(recs, n, b);
    }
    /* The body around the spans (trace_int.h). */
    static const char head[] =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":\"mcpgate\"}},{\"key\":\"service.version\",\"value\":"
        "{\"stringValue\":\"" MG_VERSION "\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
        "\"mcpgate\",\"version\":\"" MG_VERSION "\"},\"spans\":[";
    static const char tail[] = "]}]}]}";
    mg_jbuf_put(b, head, sizeof head - 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            mg_jbuf_put(b, ",", 1);
        mg__span_rec_json(t->ring[(t->head + i) % MG__TRACE_QUEUE_MAX].rec, b);
    }
    mg_jbuf_put(b, tail, sizeof tail - 1);
    return b->err;
}

static void export_now(mg_trace_t *t)
{
    size_t n = t->count;
    if (exporting(t) || n == 0 || t->freeing)
        return;
    if (!t->h1_checked) { /* an http:// endpoint given by IP: the lean client, without libcurl's costs */
        mg_http_req_t probe = {.url = t->endpoint};
        t->h1_checked = 1;
        t->h1_ok = mg_h1_client_new(t->loop, &t->h1) == 0 && mg_h1_accepts(t->h1, &probe);
        /* named by host: the lean client once the name is looked up and pinned */
        t->named = !t->h1_ok && t->h1 != NULL &&
                   mg_h1_url_host(t->endpoint, t->pin_host, sizeof t->pin_host, &t->pin_port) == 0;
    }
    if (t->named) {
        lookup_due(t);
        if (t->pin == NULL && t->lookup != NULL)
            return; /* the name's address first: lookup_cb exports */
    }
    if (!t->h1_ok && !(t->named && t->pin != NULL) && t->http == NULL &&
        mg_http_client_new(t->loop, &t->http) != 0) {
        t->http = NULL; /* libcurl missing (logged by the client): nothing can be sent */
        t->spans_failed += n;
        t->exports_failed++;
        queue_drop(t, n);
        return;
    }
    if (n > MG__TRACE_BATCH_MAX)
        n = MG__TRACE_BATCH_MAX;
    /* The records are encoded into the buffer of the previous export (grown when too small); the
     * HTTP client sends it from there (body_kept: the next export starts after done_cb). */
    mg_jbuf_t b;
    mg_jbuf_init(&b, t->body, t->body_cap, n * (6 * (size_t)MG__TRACE_SPAN_MAX + 1024) + 4096);
    int rc = mg__trace_encode(t, n, &b);
    if (b.p != t->body) { /* grown: the new buffer is kept instead */
        free(t->body);
        t->body = b.p;
        t->body_cap = b.cap;
    }
    queue_drop(t, n);
    send_body(t, rc == 0 ? b.p : NULL, b.len, t->protobuf ? "application/x-protobuf" : "application/json", n,
              1);
}

void mg_trace_flush(mg_trace_t *t)
{
    if (t != NULL)
        export_now(t);
}

int mg_trace_set_export(mg_trace_t *t, int protobuf, const char *const *headers, size_t n)
{
    char **h = n > 0 ? calloc(2 * n, sizeof *h) : NULL;
    if (n > 0 && h == NULL)
        return MG_ENOMEM;
    for (size_t i = 0; i < 2 * n; i++) {
        if ((h[i] = strdup(headers[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(h[j]);
            free(h);
            return MG_ENOMEM;
        }
    }
    t->protobuf = protobuf;
    t->headers = h;
    t->nheaders = n;
    return 0;
}

/* Draining: done when nothing is queued or in flight, or at the deadline. */
static void drain_check(mg_trace_t *t)
{
    if ((t->count > 0 || exporting(t)) && uv_now(t->loop) < t->drain_deadline)
        return;
    void (*cb)(void *) = t->drain_cb;
    t->drain_cb = NULL;
    uv_unref((uv_handle_t *)&t->timer);
    uv_timer_start(&t->timer, timer_cb, MG__TRACE_FLUSH_MS, MG__TRACE_FLUSH_MS);
    cb(t->drain_data);
}

void mg_trace_drain(mg_trace_t *t, uint64_t wait_ms, void (*drained_cb)(void *data), void *data)
{
    t->drain_cb = drained_cb;
    t->drain_data = data;
    t->drain_deadline = uv_now(t->loop) + wait_ms;
    uv_ref((uv_handle_t *)&t->timer);           /* the loop waits for the drain */
    uv_timer_start(&t->timer, timer_cb, 0, 20); /* exports now, then checks every 20 ms */
}

static void closed_cb(uv_handle_t *h)
{
    mg_trace_t *t = h->data;
    free(t->endpoint);
    free(t);
}

void mg__trace_export_dispose(mg_trace_t *t)
{
    t->freeing = 1;
    mg_metrics_unregister(collect_cb, t);
    if (t->call != NULL) {
        mg_http_cancel(t->call);
        t->call = NULL;
    }
    if (t->h1call != NULL) {
        mg_h1_cancel(t->h1call);
        t->h1call = NULL;
    }
    mg_http_client_free(t->http);
    t->http = NULL;
    mg_h1_client_free(t->h1); /* its memory goes at its connections' close callbacks */
    t->h1 = NULL;
    if (t->lookup != NULL) { /* its callback runs later (cancelled or not) and frees it alone */
        t->lookup->t = NULL;
        uv_cancel((uv_req_t *)&t->lookup->gai);
        t->lookup = NULL;
    }
    free(t->pin);
    t->pin = NULL;
    free(t->body); /* no export uses it any more: cancelled above */
    t->body = NULL;
    t->body_cap = 0;
    queue_drop(t, t->count);
    free(t->ring);
    t->ring = NULL;
    free(t->blk);
    while (t->spare != NULL) {
        mg__trace_block_t *b = t->spare;
        t->spare = b->next_spare;
        free(b);
    }
    t->nspare = 0;
    t->blk = NULL;
    for (size_t i = 0; i < 2 * t->nheaders; i++) {
        OPENSSL_cleanse(t->headers[i], strlen(t->headers[i]));
        free(t->headers[i]);
    }
    free(t->headers);
    t->headers = NULL;
    t->nheaders = 0;
    mg__trace_free_spans(t);
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, closed_cb);
}
