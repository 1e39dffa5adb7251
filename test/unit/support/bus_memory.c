/*
 * bus_memory.c - the bus (bus.h) inside one process: channels, event logs and expiring values in
 * jansson objects. Operation callbacks run synchronously (bus.h allows it); subscription messages
 * are queued and delivered from a uv_idle callback, so a publisher is never re-entered by its
 * subscribers, as with Redis. Used by the unit tests to pin down the contract the redis backend
 * (store_redis.c) implements. Read next: store_redis.c.
 */
#include "memory_backends.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_bus_sub {
    char *channel;
    mg_bus_msg_cb cb;
    void *data;
    int dead;
    struct mg_bus_sub *next;
};

typedef struct queued {
    char *channel;
    char *payload; /* NULL = confirmation for `only` */
    size_t len;
    mg_bus_sub_t *only;
    struct queued *next;
} queued_t;

typedef struct mem_bus {
    mg_bus_t base;
    uv_loop_t *loop;
    uint64_t (*now_ms)(void);
    uv_idle_t *idle;
    mg_bus_sub_t *subs;
    queued_t *head, *tail;
    json_t *logs;   /* key -> {"ev": [[seq, data, end]...], "n": last seq, "exp": ms} */
    json_t *values; /* key -> {"v": value, "exp": ms (0 = none)} */
    int delivering;
} mem_bus_t;

static void enqueue(mem_bus_t *m, const char *channel, const char *payload, size_t len, mg_bus_sub_t *only);

static void idle_cb(uv_idle_t *h)
{
    mem_bus_t *m = h->data;
    queued_t *q = m->head;
    m->head = m->tail = NULL;
    m->delivering = 1;
    while (q != NULL) {
        queued_t *next = q->next;
        for (mg_bus_sub_t *s = m->subs; s != NULL; s = s->next) {
            if (s->dead || strcmp(s->channel, q->channel) != 0)
                continue;
            if (q->payload == NULL && s != q->only)
                continue;
            s->cb(s->channel, q->payload, q->len, s->data);
        }
        free(q->channel);
        free(q->payload);
        free(q);
        q = next;
    }
    m->delivering = 0;
    for (mg_bus_sub_t **pp = &m->subs; *pp != NULL;) {
        mg_bus_sub_t *s = *pp;
        if (s->dead) {
            *pp = s->next;
            free(s->channel);
            free(s);
            continue;
        }
        pp = &s->next;
    }
    if (m->head == NULL)
        uv_idle_stop(h);
}

static void enqueue(mem_bus_t *m, const char *channel, const char *payload, size_t len, mg_bus_sub_t *only)
{
    queued_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return;
    q->channel = strdup(channel);
    if (payload != NULL) {
        q->payload = malloc(len + 1);
        if (q->payload != NULL) {
            memcpy(q->payload, payload, len);
            q->payload[len] = '\0';
        }
    }
    if (q->channel == NULL || (payload != NULL && q->payload == NULL)) {
        free(q->channel);
        free(q->payload);
        free(q);
        return;
    }
    q->len = len;
    q->only = only;
    if (m->tail)
        m->tail->next = q;
    else
        m->head = q;
    m->tail = q;
    uv_idle_start(m->idle, idle_cb);
}

static int mem_publish(mg_bus_t *b, const char *channel, const char *payload, size_t len)
{
    enqueue((mem_bus_t *)b, channel, payload, len, NULL);
    return 0;
}

static int mem_subscribe(mg_bus_t *b, const char *channel, mg_bus_msg_cb cb, void *data, mg_bus_sub_t **out)
{
    mem_bus_t *m = (mem_bus_t *)b;
    mg_bus_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
        free(s);
        return MG_ENOMEM;
    }
    s->cb = cb;
    s->data = data;
    s->next = m->subs;
    m->subs = s;
    enqueue(m, channel, NULL, 0, s);
    *out = s;
    return 0;
}

static void mem_unsubscribe(mg_bus_t *b, mg_bus_sub_t *sub)
{
    sub->dead = 1; /* freed after the current delivery pass */
    mem_bus_t *m = (mem_bus_t *)b;
    if (!m->delivering)
        uv_idle_start(m->idle, idle_cb);
}

static json_t *live(mem_bus_t *m, json_t *map, const char *key)
{
    json_t *e = json_object_get(map, key);
    if (e == NULL)
        return NULL;
    uint64_t exp = (uint64_t)json_integer_value(json_object_get(e, "exp"));
    if (exp != 0 && exp < m->now_ms()) {
        json_object_del(map, key);
        return NULL;
    }
    return e;
}

static int mem_append(mg_bus_t *b, const char *key, const char *channel, uint64_t seq, const char *data,
                      size_t len, int end, unsigned maxlen, uint64_t ttl_ms, mg_bus_append_cb cb,
                      void *cbdata)
{
    mem_bus_t *m = (mem_bus_t *)b;
    json_t *log = live(m, m->logs, key);
    if (log == NULL) {
        log = json_pack("{s:[],s:I,s:I}", "ev", "n", (json_int_t)0, "exp", (json_int_t)0);
        if (log == NULL || json_object_set_new(m->logs, key, log) != 0)
            return MG_ENOMEM;
    }
    uint64_t last = (uint64_t)json_integer_value(json_object_get(log, "n"));
    if (seq == 0)
        seq = last + 1;
    else if (seq <= last)
        return MG_EINVAL; /* the same contract as XADD with an explicit id */
    json_t *ev = json_object_get(log, "ev");
    json_array_append_new(ev, json_pack("[I,s%,b]", (json_int_t)seq, data ? data : "", data ? len : 0, end));
    while (maxlen > 0 && json_array_size(ev) > maxlen)
        json_array_remove(ev, 0);
    json_object_set_new(log, "n", json_integer((json_int_t)seq));
    json_object_set_new(log, "exp", json_integer(ttl_ms ? (json_int_t)(m->now_ms() + ttl_ms) : 0));
    char head[48];
    int hn = snprintf(head, sizeof head, "%llu %c\n", (unsigned long long)seq, end ? 'e' : 'd');
    char *msg = malloc((size_t)hn + len + 1);
    if (msg != NULL) {
        memcpy(msg, head, (size_t)hn);
        if (len)
            memcpy(msg + hn, data, len);
        enqueue(m, channel, msg, (size_t)hn + len, NULL);
        free(msg);
    }
    if (cb)
        cb(0, seq, cbdata);
    return 0;
}

static int mem_range(mg_bus_t *b, const char *key, uint64_t after, unsigned max, mg_bus_range_cb cb,
                     void *data)
{
    mem_bus_t *m = (mem_bus_t *)b;
    json_t *log = live(m, m->logs, key);
    json_t *ev = json_object_get(log, "ev");
    size_t n = json_array_size(ev), k = 0;
    mg_bus_event_t *out = calloc(n ? n : 1, sizeof(*out));
    if (out == NULL)
        return MG_ENOMEM;
    for (size_t i = 0; i < n && (max == 0 || k < max); i++) {
        json_t *e = json_array_get(ev, i);
        uint64_t seq = (uint64_t)json_integer_value(json_array_get(e, 0));
        if (seq <= after)
            continue;
        out[k].seq = seq;
        out[k].data = json_string_value(json_array_get(e, 1));
        out[k].len = json_string_length(json_array_get(e, 1));
        out[k].end = json_is_true(json_array_get(e, 2));
        k++;
    }
    cb(0, out, k, data);
    free(out);
    return 0;
}

static int mem_last(mg_bus_t *b, const char *key, mg_bus_append_cb cb, void *data)
{
    mem_bus_t *m = (mem_bus_t *)b;
    json_t *log = live(m, m->logs, key);
    cb(0, log ? (uint64_t)json_integer_value(json_object_get(log, "n")) : 0, data);
    return 0;
}

static int mem_set(mg_bus_t *b, const char *key, const char *value, uint64_t ttl_ms, mg_bus_done_cb cb,
                   void *data)
{
    mem_bus_t *m = (mem_bus_t *)b;
    json_t *e = json_pack("{s:s,s:I}", "v", value, "exp", ttl_ms ? (json_int_t)(m->now_ms() + ttl_ms) : 0);
    if (e == NULL || json_object_set_new(m->values, key, e) != 0)
        return MG_ENOMEM;
    if (cb)
        cb(0, data);
    return 0;
}

static int mem_get(mg_bus_t *b, const char *key, mg_bus_value_cb cb, void *data)
{
    mem_bus_t *m = (mem_bus_t *)b;
    json_t *e = live(m, m->values, key);
    cb(0, e ? json_string_value(json_object_get(e, "v")) : NULL, data);
    return 0;
}

static int mem_del(mg_bus_t *b, const char *const *keys, size_t nkeys, mg_bus_done_cb cb, void *data)
{
    mem_bus_t *m = (mem_bus_t *)b;
    for (size_t i = 0; i < nkeys; i++) {
        json_object_del(m->values, keys[i]);
        json_object_del(m->logs, keys[i]);
    }
    if (cb)
        cb(0, data);
    return 0;
}

static int mem_ready(mg_bus_t *b)
{
    return 1;
}

static void mem_free(mg_bus_t *b)
{
    mem_bus_t *m = (mem_bus_t *)b;
    while (m->head != NULL) {
        queued_t *n = m->head->next;
        free(m->head->channel);
        free(m->head->payload);
        free(m->head);
        m->head = n;
    }
    while (m->subs != NULL) {
        mg_bus_sub_t *n = m->subs->next;
        free(m->subs->channel);
        free(m->subs);
        m->subs = n;
    }
    json_decref(m->logs);
    json_decref(m->values);
    uv_close((uv_handle_t *)m->idle, (uv_close_cb)free);
    free(m);
}

static const mg_bus_ops_t mem_ops = {"memory",   mem_publish, mem_subscribe, mem_unsubscribe,
                                     mem_append, mem_range,   mem_last,      mem_set,
                                     mem_get,    mem_del,     mem_ready,     mem_free};

mg_bus_t *mg_bus_memory_new(uv_loop_t *loop, uint64_t (*now_ms)(void))
{
    mem_bus_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->idle = malloc(sizeof(*m->idle));
    m->logs = json_object();
    m->values = json_object();
    if (m->idle == NULL || m->logs == NULL || m->values == NULL) {
        free(m->idle);
        json_decref(m->logs);
        json_decref(m->values);
        free(m);
        return NULL;
    }
    uv_idle_init(loop, m->idle);
    m->idle->data = m;
    m->base.ops = &mem_ops;
    m->loop = loop;
    m->now_ms = now_ms;
    return &m->base;
}
