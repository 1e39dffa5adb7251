/*
 * script_srv.h - a scripted HTTP/1.1 server on a test's own libuv loop, for the outbound HTTP
 * client tests (test_http_client.c, test_h1client.c).
 *
 * It listens on 127.0.0.1 (a free port, in ->port), reads each complete request (its head and a
 * Content-Length body; keep-alive: several per connection), keeps the last one as it arrived
 * (->last, head and body), counts connections, requests and closes, and hands each request to the
 * test's respond callback, which answers with script_send*() at once or later (the connection's
 * timer is the test's, timer.data being the connection). A connection with drop_next set is closed
 * at its next request without an answer. script_srv_stop() closes everything; the test's loop then
 * runs until uv_loop_close() == 0.
 */
#ifndef MG_TEST_SCRIPT_SRV_H
#define MG_TEST_SCRIPT_SRV_H

#include <stddef.h>
#include <uv.h>

typedef struct script_srv script_srv_t;
typedef struct script_conn script_conn_t;

/* One request: method and path as sent, body[0..blen) (the body only lives during the call). */
typedef void (*script_respond_fn)(script_conn_t *c, const char *method, const char *path, const char *body,
                                  size_t blen);

struct script_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the test's (answers in steps); data is this connection */
    script_srv_t *s;
    char buf[65536];
    size_t len;
    int served;        /* requests answered on this connection */
    int drop_next;     /* close on the next request without answering */
    int step;          /* the test's own progress through a stepped answer */
    const char **plan; /* the test's: pieces still to write */
    int handles, closing;
    script_conn_t *next;
};

struct script_srv {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    int port;
    int accepts, requests, closed;
    char last[8192]; /* the last request: head and body (cut at 8 KiB) */
    script_conn_t *conns;
    script_respond_fn respond;
};

void script_srv_start(script_srv_t *s, uv_loop_t *loop, script_respond_fn respond);
void script_srv_stop(script_srv_t *s);
/* Closes the connection now (what was queued may not reach the client). */
void script_close(script_conn_t *c);
/* Closes once everything queued before has been written. */
void script_close_after_writes(script_conn_t *c);
void script_send(script_conn_t *c, const char *p, size_t n);
void script_send_str(script_conn_t *c, const char *s);
/* The answers over the clients' size bounds, when path is one of them (returns 1; else 0, nothing
 * sent): "/big" a 100,000-byte body by Content-Length, "/bigchunked" 50 chunks of 1 KiB, "/bighead"
 * 20 KiB of headers. */
int script_send_big(script_conn_t *c, const char *path);

#endif
