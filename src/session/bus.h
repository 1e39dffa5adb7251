/*
 * bus.h - cross-replica messages: publish/subscribe, bounded per-stream event logs, small
 * expiring values (the replica registry). The companion of store.h: the redis backend serves both
 * over the same connections (store_redis.c). A memory backend that pins this contract down in the
 * unit tests lives in test/unit/support/bus_memory.c.
 *
 * Contract: every operation is asynchronous; a callback never runs inside the call that started
 * it for the redis backend, and may for memory (callers must allow both). When an operation
 * returns an error its callback is never called (libuv's rule). Names (channels, keys) are chosen
 * by the caller; a backend may prefix them (gateway.sessions.keyPrefix).
 *
 * Event logs. A log is an ordered list of events (seq, data, end flag) with increasing seq >= 1,
 * trimmed to about `maxlen` newest events and expiring ttl_ms after the last append. Appending
 * also publishes the event on `channel` as one message:
 *
 *     "<seq> <d|e>\n<data>"      d = a data event, e = the end of the stream (data empty)
 *
 * so a follower subscribes to the channel, then reads the log from where it is (range), and then
 * applies live messages whose seq it has not seen: nothing is lost and nothing is doubled.
 * seq 0 given to append means "allocate the next seq of this log" (several writers: a session's
 * GET stream); a log with one writer passes its own seqs (a POST response stream).
 *
 * Subscriptions survive reconnects: the backend subscribes again, then calls the subscriber's
 * callback with payload NULL ("(re)subscribed: catch up with range"). The same NULL call confirms
 * the first subscription.
 */
#ifndef MG_BUS_H
#define MG_BUS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mg_bus mg_bus_t;
typedef struct mg_bus_sub mg_bus_sub_t;

/* One message of a channel; payload NULL = subscribed (again): catch up. payload is borrowed. */
typedef void (*mg_bus_msg_cb)(const char *channel, const char *payload, size_t len, void *data);

typedef struct mg_bus_event {
    uint64_t seq;
    const char *data; /* borrowed */
    size_t len;
    int end;
} mg_bus_event_t;

typedef void (*mg_bus_append_cb)(int err, uint64_t seq, void *data);
/* events borrowed for the duration of the call, in seq order. */
typedef void (*mg_bus_range_cb)(int err, const mg_bus_event_t *events, size_t n, void *data);
typedef void (*mg_bus_done_cb)(int err, void *data);
/* value borrowed, NULL when absent. */
typedef void (*mg_bus_value_cb)(int err, const char *value, void *data);

typedef struct mg_bus_ops {
    const char *name;
    /* Fire and forget (lost when nobody listens or the backend is down). */
    int (*publish)(mg_bus_t *b, const char *channel, const char *payload, size_t len);
    /* cb(payload NULL) confirms; then every message until unsubscribe. *out valid until unsubscribe. */
    int (*subscribe)(mg_bus_t *b, const char *channel, mg_bus_msg_cb cb, void *data, mg_bus_sub_t **out);
    /* cb is never called again after this returns. */
    void (*unsubscribe)(mg_bus_t *b, mg_bus_sub_t *sub);
    /* Appends one event to log `key` and publishes it on `channel` (see above). cb may be NULL. */
    int (*append)(mg_bus_t *b, const char *key, const char *channel, uint64_t seq, const char *data,
                  size_t len, int end, unsigned maxlen, uint64_t ttl_ms, mg_bus_append_cb cb, void *cbdata);
    /* Events with seq > after, at most max of them (oldest first). */
    int (*range)(mg_bus_t *b, const char *key, uint64_t after, unsigned max, mg_bus_range_cb cb, void *data);
    /* The newest seq of the log (0 when empty or absent): where a fresh follower starts. */
    int (*last)(mg_bus_t *b, const char *key, mg_bus_append_cb cb, void *data);
    /* Small values with an expiry (ttl_ms 0 = none): the replica registry, stream metadata. */
    int (*set)(mg_bus_t *b, const char *key, const char *value, uint64_t ttl_ms, mg_bus_done_cb cb,
               void *data);
    int (*get)(mg_bus_t *b, const char *key, mg_bus_value_cb cb, void *data);
    /* Deletes keys (values and logs). cb may be NULL. */
    int (*del)(mg_bus_t *b, const char *const *keys, size_t nkeys, mg_bus_done_cb cb, void *data);
    int (*ready)(mg_bus_t *b);
    void (*free)(mg_bus_t *b);
} mg_bus_ops_t;

struct mg_bus {
    const mg_bus_ops_t *ops;
};

#endif
