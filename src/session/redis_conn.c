/*
 * redis_conn.c - the two Redis connections of a process (redis_int.h has the state machine):
 * name resolution on the loop, Sentinel master lookup, AUTH/SELECT/ROLE/SCRIPT LOAD handshake,
 * reconnect with backoff, per-command deadlines, the pub/sub liveness ping, and a corrected
 * libuv adapter for hiredis 0.14. Everything runs on the gateway's loop.
 * Contract: mg__redis_command() either returns MG_EIO at once or calls back exactly once;
 * commands left on a dropped connection are called back with reply NULL (hiredis does that while
 * freeing the context). Read next: store_redis.c.
 */
#include "redis_int.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/log.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TICK_MS        100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_EVERY_MS  1000
#define PING_SILENT_MS 3500

static uint64_t now(mg_redis_t *r)
{
    return r->now_ms ? r->now_ms() : uv_now(r->loop);
}

/* ---- libuv adapter (hiredis 0.14's adapters/libuv.h, with poll errors handed to hiredis) ---- */

typedef struct uvev {
    redisAsyncContext *ac;
    uv_poll_t handle;
    int events;
} uvev_t;

static void uvev_poll_cb(uv_poll_t *h, int status, int events)
{
    uvev_t *p = h->data;
    /* On an error (refused, reset) libuv reports status < 0 and no events; the original adapter
     * returned here and hiredis never learnt the socket was dead. Let hiredis read/write: it then
     * finds the error itself and disconnects. */
    int ev = status < 0 ? (p->events ? p->events : UV_READABLE) : events;
    if (p->ac != NULL && (ev & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac != NULL && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void uvev_update(uvev_t *p)
{
    if (p->events)
        uv_poll_start(&p->handle, p->events, uvev_poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void uvev_add_read(void *d)
{
    uvev_t *p = d;
    p->events |= UV_READABLE;
    uvev_update(p);
}

static void uvev_del_read(void *d)
{
    uvev_t *p = d;
    p->events &= ~UV_READABLE;
    uvev_update(p);
}

static void uvev_add_write(void *d)
{
    uvev_t *p = d;
    p->events |= UV_WRITABLE;
    uvev_update(p);
}

static void uvev_del_write(void *d)
{
    uvev_t *p = d;
    p->events &= ~UV_WRITABLE;
    uvev_update(p);
}

static void uvev_closed(uv_handle_t *h)
{
    free(h->data);
}

static void uvev_cleanup(void *d)
{
    uvev_t *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, uvev_closed);
}

static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uvev_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->handle.data = p;
    p->ac = ac;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}

/* ---- Lua scripts' SHA-1 ---- */

static void sha1_hex(const char *text, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL);
    mg_hex_encode(md, 20, out);
}

/* ---- connection state ---- */

static void rc_connect_addr(rconn_t *rc, const char *ip);
static void rc_start(rconn_t *rc);
static void probe_free(probe_t *p);

static void set_error(rconn_t *rc, const char *a, const char *b)
{
    mg_redis_t *r = rc->r;
    snprintf(r->error, sizeof r->error, "%s connection: %s%s", rc->label, a ? a : "", b ? b : "");
    if (strcmp(r->error, rc->last_error) != 0) {
        snprintf(rc->last_error, sizeof rc->last_error, "%s", r->error);
        mg_log_json(MG_LOG_WARN, "session store: redis problem", json_pack("{s:s}", "error", r->error));
    }
}

typedef struct cmdreq {
    rconn_t *rc;
    redisAsyncContext *ac; /* the context it was sent on */
    rc_reply_cb cb;
    void *data;
    uint64_t sent;
    int expired; /* answered MG_EIO already (late): its reply is dropped */
} cmdreq_t;

static void sent_reset(rconn_t *rc)
{
    rc->sent_head = rc->sent_count = 0;
}

static int sent_push(rconn_t *rc, cmdreq_t *q)
{
    if (rc->sent_count == rc->sent_cap) {
        size_t ncap = rc->sent_cap ? rc->sent_cap * 2 : 64;
        cmdreq_t **n = malloc(ncap * sizeof(*n));
        if (n == NULL)
            return MG_ENOMEM;
        for (size_t i = 0; i < rc->sent_count; i++)
            n[i] = rc->sent[(rc->sent_head + i) % rc->sent_cap];
        free(rc->sent);
        rc->sent = n;
        rc->sent_cap = ncap;
        rc->sent_head = 0;
    }
    rc->sent[(rc->sent_head + rc->sent_count) % rc->sent_cap] = q;
    rc->sent_count++;
    return 0;
}

static void sent_pop(rconn_t *rc)
{
    if (rc->sent_count == 0)
        return;
    rc->sent_head = (rc->sent_head + 1) % rc->sent_cap;
    rc->sent_count--;
}

static uint64_t backoff(rconn_t *rc)
{
    unsigned a = rc->attempts < 6 ? rc->attempts : 6;
    uint64_t d = (uint64_t)BACKOFF_MIN_MS << a;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    uint64_t jitter = d / 5;
    return d - jitter + (uint64_t)(rand() % (int)(2 * jitter + 1));
}

/* Ends the current attempt or connection; the tick starts the next attempt after a backoff. */
static void rc_drop(rconn_t *rc, const char *why, const char *detail)
{
    mg_redis_t *r = rc->r;
    if (why != NULL)
        set_error(rc, why, detail);
    if (rc->state == RC_READY)
        r->reconnects++;
    redisAsyncContext *ac = rc->ac;
    rc->ac = NULL;
    if (rc->gai != NULL) {
        rc->gai->data = NULL; /* freed by its callback */
        rc->gai = NULL;
    }
    if (rc->probe != NULL) {
        probe_free(rc->probe);
        rc->probe = NULL;
    }
    sent_reset(rc);
    rc->state = RC_WAIT;
    rc->since = now(r);
    rc->retry_at = r->closing ? UINT64_MAX : now(r) + backoff(rc);
    rc->attempts++;
    if (ac != NULL) {
        ac->data = NULL; /* callbacks of this context no longer reach rc */
        redisAsyncFree(ac);
    }
}

static void on_connect(const redisAsyncContext *cac, int status);
static void on_disconnect(const redisAsyncContext *cac, int status);

/* ---- commands ---- */

static void cmd_trampoline(redisAsyncContext *ac, void *reply, void *privdata)
{
    cmdreq_t *q = privdata;
    rconn_t *rc = q->rc;
    if (reply != NULL && rc->ac == ac) {
        sent_pop(rc); /* replies come in order: q is the oldest */
        rc->last_reply = now(rc->r);
    }
    if (q->cb && !q->expired)
        q->cb(rc->r, reply, q->data);
    free(q);
}

/* Answers MG_EIO (reply NULL) to the commands older than the deadline; their replies, if they
 * ever come, are dropped by cmd_trampoline. */
static void sent_expire(rconn_t *rc, uint64_t t)
{
    mg_redis_t *r = rc->r;
    for (size_t i = 0; i < rc->sent_count; i++) {
        cmdreq_t *q = rc->sent[(rc->sent_head + i) % rc->sent_cap];
        if (t - q->sent <= r->timeout_ms)
            break;
        if (q->expired)
            continue;
        q->expired = 1;
        r->ops_failed++;
        if (q->cb)
            q->cb(r, NULL, q->data);
        if (rc->ac == NULL) /* the callback dropped the connection: the ring is gone */
            break;
    }
}

static int rc_send(rconn_t *rc, int argc, const char **argv, const size_t *lens, rc_reply_cb cb, void *data)
{
    if (rc->ac == NULL)
        return MG_EIO;
    cmdreq_t *q = malloc(sizeof(*q));
    if (q == NULL)
        return MG_ENOMEM;
    q->rc = rc;
    q->ac = rc->ac;
    q->cb = cb;
    q->data = data;
    q->sent = now(rc->r);
    q->expired = 0;
    if (sent_push(rc, q) != 0) {
        free(q);
        return MG_ENOMEM;
    }
    if (redisAsyncCommandArgv(rc->ac, cmd_trampoline, q, argc, argv, lens) != REDIS_OK) {
        rc->sent_count--;
        free(q);
        return MG_EIO;
    }
    return 0;
}

int mg__redis_ready(const mg_redis_t *r)
{
    return r->cmd.state == RC_READY && r->subc.state == RC_READY;
}

int mg__redis_command(mg_redis_t *r, int argc, const char **argv, const size_t *lens, rc_reply_cb cb,
                      void *data)
{
    if (r->cmd.state != RC_READY)
        return MG_EIO;
    int e = rc_send(&r->cmd, argc, argv, lens, cb, data);
    if (e == 0)
        r->ops_ok++;
    return e;
}

typedef struct evalreq {
    int script;
    int argc;
    char **argv;
    size_t *lens;
    rc_reply_cb cb;
    void *data;
    int retried;
} evalreq_t;

static void evalreq_free(evalreq_t *e)
{
    for (int i = 0; i < e->argc; i++)
        free(e->argv[i]);
    free(e->argv);
    free(e->lens);
    free(e);
}

static void eval_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    evalreq_t *e = data;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && !e->retried && reply->str != NULL &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* The server lost its script cache (restart, SCRIPT FLUSH): send the text once. */
        e->retried = 1;
        free(e->argv[0]);
        free(e->argv[1]);
        e->argv[0] = strdup("EVAL");
        e->lens[0] = 4;
        e->argv[1] = strdup(r->scripts[e->script].text);
        e->lens[1] = strlen(r->scripts[e->script].text);
        if (e->argv[0] != NULL && e->argv[1] != NULL &&
            mg__redis_command(r, e->argc, (const char **)e->argv, e->lens, eval_cb, e) == 0)
            return;
        reply = NULL;
    }
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        mg_log_json(MG_LOG_WARN, "session store: redis script error",
                    json_pack("{s:i,s:s}", "script", e->script, "error", reply->str ? reply->str : ""));
    e->cb(r, reply, e->data);
    evalreq_free(e);
}

int mg__redis_eval(mg_redis_t *r, int s, int nkeys, int nargs, const char **args, const size_t *lens,
                   rc_reply_cb cb, void *data)
{
    if (r->cmd.state != RC_READY)
        return MG_EIO;
    evalreq_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return MG_ENOMEM;
    e->argc = 3 + nargs;
    e->argv = calloc((size_t)e->argc, sizeof(*e->argv));
    e->lens = calloc((size_t)e->argc, sizeof(*e->lens));
    if (e->argv == NULL || e->lens == NULL) {
        e->argc = 0;
        evalreq_free(e);
        return MG_ENOMEM;
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    e->argv[0] = strdup("EVALSHA");
    e->lens[0] = 7;
    e->argv[1] = strdup(r->scripts[s].sha);
    e->lens[1] = 40;
    e->argv[2] = strdup(nk);
    e->lens[2] = strlen(nk);
    int ok = e->argv[0] && e->argv[1] && e->argv[2];
    for (int i = 0; i < nargs && ok; i++) {
        size_t n = lens ? lens[i] : strlen(args[i]);
        e->argv[3 + i] = malloc(n + 1);
        ok = e->argv[3 + i] != NULL;
        if (ok) {
            memcpy(e->argv[3 + i], args[i], n);
            e->argv[3 + i][n] = '\0';
            e->lens[3 + i] = n;
        }
    }
    e->script = s;
    e->cb = cb;
    e->data = data;
    int rc = ok ? mg__redis_command(r, e->argc, (const char **)e->argv, e->lens, eval_cb, e) : MG_ENOMEM;
    if (rc != 0)
        evalreq_free(e);
    return rc;
}

/* ---- handshake ---- */

static void rc_ready(rconn_t *rc)
{
    mg_redis_t *r = rc->r;
    rc->state = RC_READY;
    rc->since = now(r);
    rc->attempts = 0;
    rc->last_rx = now(r);
    rc->last_error[0] = '\0';
    if (rc->sub)
        return;
    mg_log_json(
        MG_LOG_INFO, "session store: redis connected",
        json_pack("{s:s,s:s}", "connection", rc->label, "address", r->master[0] ? r->master : rc->host));
    if (mg__redis_ready(r))
        r->error[0] = '\0';
}

static void sub_subscribe_all(rconn_t *rc);

static void handshake_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    rconn_t *rc = data;
    if (reply == NULL)
        return; /* the connection went away: rc_drop already ran or on_disconnect will */
    if (reply->type == REDIS_REPLY_ERROR) {
        rc_drop(rc, "the server refused the handshake: ", reply->str);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        (strcmp(reply->element[0]->str, "slave") == 0 || strcmp(reply->element[0]->str, "sentinel") == 0)) {
        rc_drop(rc, "the address the sentinels gave is not a master (ROLE ", reply->element[0]->str);
        return;
    }
    if (--rc->handshake_left > 0)
        return;
    if (rc->sub)
        sub_subscribe_all(rc);
    else
        rc_ready(rc);
}

static void rc_handshake(rconn_t *rc)
{
    mg_redis_t *r = rc->r;
    rc->state = RC_HANDSHAKE;
    rc->since = now(r);
    rc->handshake_left = 0;
    const char *argv[4];
    size_t lens[4];
    int ok = 1;
    if (r->password != NULL) {
        int n = 0;
        argv[n] = "AUTH";
        lens[n++] = 4;
        if (r->target.username != NULL) {
            argv[n] = r->target.username;
            lens[n++] = strlen(r->target.username);
        }
        argv[n] = r->password;
        lens[n++] = strlen(r->password);
        ok = ok && rc_send(rc, n, argv, lens, handshake_cb, rc) == 0;
        rc->handshake_left++;
    }
    if (!rc->sub && r->target.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%u", r->target.db);
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = db;
        lens[1] = strlen(db);
        ok = ok && rc_send(rc, 2, argv, lens, handshake_cb, rc) == 0;
        rc->handshake_left++;
    }
    if (r->target.sentinel) {
        argv[0] = "ROLE";
        lens[0] = 4;
        ok = ok && rc_send(rc, 1, argv, lens, handshake_cb, rc) == 0;
        rc->handshake_left++;
    }
    if (!rc->sub) {
        for (int i = 0; i < SCRIPT_COUNT && ok; i++) {
            argv[0] = "SCRIPT";
            lens[0] = 6;
            argv[1] = "LOAD";
            lens[1] = 4;
            argv[2] = r->scripts[i].text;
            lens[2] = strlen(r->scripts[i].text);
            ok = rc_send(rc, 3, argv, lens, handshake_cb, rc) == 0;
            rc->handshake_left++;
        }
    }
    if (!ok) {
        rc_drop(rc, "could not send the handshake", NULL);
        return;
    }
    if (rc->handshake_left == 0) {
        if (rc->sub)
            sub_subscribe_all(rc);
        else
            rc_ready(rc);
    }
}

/* ---- pub/sub connection ---- */

static void sub_cb(redisAsyncContext *ac, void *rep, void *privdata)
{
    redisReply *reply = rep;
    rconn_t *rc = ac->data;
    if (reply == NULL || rc == NULL || rc->ac != ac || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements < 3)
        return;
    redisReply *kind = reply->element[0], *ch = reply->element[1], *payload = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
        return;
    mg_redis_t *r = rc->r;
    int is_ping = strcmp(ch->str, r->ping_channel) == 0;
    if (strcasecmp(kind->str, "subscribe") == 0) {
        if (is_ping) {
            rc_ready(rc);
            if (mg__redis_ready(r))
                r->error[0] = '\0';
            return;
        }
        mg__redis_on_message(r, ch->str, NULL, 0);
    } else if (strcasecmp(kind->str, "message") == 0 && payload->type == REDIS_REPLY_STRING) {
        if (is_ping) {
            rc->last_rx = now(r);
            return;
        }
        mg__redis_on_message(r, ch->str, payload->str, payload->len);
    }
}

static void sub_send(rconn_t *rc, const char *verb, const char **channels, size_t n)
{
    if (rc->ac == NULL || n == 0)
        return;
    const char **argv = malloc((n + 1) * sizeof(*argv));
    size_t *lens = malloc((n + 1) * sizeof(*lens));
    if (argv != NULL && lens != NULL) {
        argv[0] = verb;
        lens[0] = strlen(verb);
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = channels[i];
            lens[i + 1] = strlen(channels[i]);
        }
        /* (UN)SUBSCRIBE replies go to the per-channel callback, not the reply queue: untracked. */
        if (redisAsyncCommandArgv(rc->ac, strcasecmp(verb, "SUBSCRIBE") == 0 ? sub_cb : NULL, NULL,
                                  (int)n + 1, argv, lens) != REDIS_OK &&
            strcasecmp(verb, "SUBSCRIBE") == 0)
            rc_drop(rc, "could not subscribe", NULL);
    }
    free(argv);
    free(lens);
}

static void sub_subscribe_all(rconn_t *rc)
{
    mg_redis_t *r = rc->r;
    size_t n = r->channels.count + 1, k = 0;
    const char **chs = malloc(n * sizeof(*chs));
    if (chs == NULL) {
        rc_drop(rc, "out of memory", NULL);
        return;
    }
    chs[k++] = r->ping_channel; /* first: its confirmation marks the connection ready */
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&r->channels, &pos, &key, &val))
        chs[k++] = key;
    /* Several commands keep each one small. */
    for (size_t i = 0; i < k; i += 256)
        sub_send(rc, "SUBSCRIBE", chs + i, k - i < 256 ? k - i : 256);
    free(chs);
}

void mg__redis_sub_send(mg_redis_t *r, const char *channel, int subscribe)
{
    if (r->subc.state != RC_READY)
        return; /* subscribed with the others once connected */
    sub_send(&r->subc, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", &channel, 1);
}

/* ---- connect ---- */

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rconn_t *rc = ac->data;
    if (rc == NULL || rc->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        rc->ac = NULL;
        ac->data = NULL;
        rc_drop(rc, "cannot connect: ", ac->errstr);
        return;
    }
    rc_handshake(rc);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rconn_t *rc = ac->data;
    if (rc == NULL || rc->ac != ac)
        return;
    rc->ac = NULL; /* hiredis frees it after this callback */
    ac->data = NULL;
    rc_drop(rc, "lost: ", status == REDIS_OK ? "closed by the server" : ac->errstr);
}

static void rc_connect_addr(rconn_t *rc, const char *ip)
{
    mg_redis_t *r = rc->r;
    rc->state = RC_CONNECTING;
    rc->since = now(r);
    redisAsyncContext *ac = redisAsyncConnect(ip, (int)rc->port);
    if (ac == NULL) {
        rc_drop(rc, "out of memory", NULL);
        return;
    }
    if (ac->err) {
        char e[128];
        snprintf(e, sizeof e, "%s (%s:%u)", ac->errstr, ip, rc->port);
        redisAsyncFree(ac);
        rc_drop(rc, "cannot connect: ", e);
        return;
    }
    if (uvev_attach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        rc_drop(rc, "cannot watch the socket", NULL);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* Resolves host (names or literals) without blocking, then calls done(owner, ip or NULL, why). */
typedef void (*resolved_cb)(void *owner, const char *ip, const char *why);

typedef struct gaireq {
    uv_getaddrinfo_t req;
    resolved_cb done;
} gaireq_t;

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gaireq_t *g = (gaireq_t *)req;
    void *owner = req->data;
    char ip[64] = "";
    if (status == 0 && res != NULL) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    }
    if (res != NULL)
        uv_freeaddrinfo(res);
    if (owner != NULL)
        g->done(owner, ip[0] ? ip : NULL, status != 0 ? uv_strerror(status) : "no address");
    free(g);
}

static uv_getaddrinfo_t *resolve(mg_redis_t *r, const char *host, void *owner, resolved_cb done)
{
    gaireq_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->done = done;
    g->req.data = owner;
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    if (uv_getaddrinfo(r->loop, &g->req, gai_cb, host, NULL, &hints) != 0) {
        free(g);
        return NULL;
    }
    return &g->req;
}

static void rc_resolved(void *owner, const char *ip, const char *why)
{
    rconn_t *rc = owner;
    rc->gai = NULL;
    if (ip == NULL) {
        rc_drop(rc, "cannot resolve the host: ", why);
        return;
    }
    rc_connect_addr(rc, ip);
}

static void rc_connect_host(rconn_t *rc)
{
    rc->state = RC_RESOLVE;
    rc->since = now(rc->r);
    rc->gai = resolve(rc->r, rc->host, rc, rc_resolved);
    if (rc->gai == NULL)
        rc_drop(rc, "cannot resolve the host", NULL);
}

/* ---- Sentinel: SENTINEL get-master-addr-by-name, one sentinel after the other ---- */

struct probe {
    rconn_t *rc;
    size_t idx;
    redisAsyncContext *ac;
    uv_getaddrinfo_t *gai;
    uint64_t started;
    char last_error[160];
};

static void probe_next(probe_t *p);

static void probe_close_ac(probe_t *p)
{
    if (p->ac != NULL) {
        redisAsyncContext *ac = p->ac;
        p->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    if (p->gai != NULL) {
        p->gai->data = NULL;
        p->gai = NULL;
    }
}

static void probe_free(probe_t *p)
{
    probe_close_ac(p);
    free(p);
}

static void probe_fail_one(probe_t *p, const char *why, const char *detail)
{
    snprintf(p->last_error, sizeof p->last_error, "sentinel %s:%u: %s%s", p->rc->r->target.hosts[p->idx],
             p->rc->r->target.ports[p->idx], why, detail ? detail : "");
    probe_close_ac(p);
    p->idx++;
    probe_next(p);
}

static void probe_reply(redisAsyncContext *ac, void *rep, void *privdata)
{
    probe_t *p = ac->data;
    redisReply *reply = rep;
    if (p == NULL || (intptr_t)privdata != 1)
        return;
    if (reply == NULL) {
        probe_fail_one(p, "connection lost", NULL);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        probe_fail_one(p, "", reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING) {
        probe_fail_one(p, "does not know the master ", p->rc->r->target.master);
        return;
    }
    rconn_t *rc = p->rc;
    mg_redis_t *r = rc->r;
    snprintf(rc->host, sizeof rc->host, "%s", reply->element[0]->str);
    rc->port = (unsigned)atoi(reply->element[1]->str);
    snprintf(r->master, sizeof r->master, "%s:%u", rc->host, rc->port);
    rc->probe = NULL;
    probe_free(p); /* its context is freed once this callback returns */
    rc_connect_host(rc);
}

static void probe_auth_reply(redisAsyncContext *ac, void *rep, void *privdata)
{
    probe_t *p = ac->data;
    redisReply *reply = rep;
    if (p != NULL && reply != NULL && reply->type == REDIS_REPLY_ERROR)
        probe_fail_one(p, "AUTH refused: ", reply->str);
}

static void probe_on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    probe_t *p = ac->data;
    if (p == NULL)
        return;
    if (status != REDIS_OK) {
        p->ac = NULL; /* freed by hiredis */
        ac->data = NULL;
        probe_fail_one(p, "cannot connect: ", ac->errstr);
        return;
    }
    mg_redis_t *r = p->rc->r;
    if (r->sentinel_password != NULL) {
        const char *argv[] = {"AUTH", r->sentinel_password};
        redisAsyncCommandArgv(ac, probe_auth_reply, NULL, 2, argv, NULL);
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->target.master};
    redisAsyncCommandArgv(ac, probe_reply, (void *)(intptr_t)1, 3, argv, NULL);
}

static void probe_on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    probe_t *p = ac->data;
    if (p == NULL)
        return;
    p->ac = NULL;
    ac->data = NULL;
    probe_fail_one(p, "connection lost", NULL);
}

static void probe_resolved(void *owner, const char *ip, const char *why)
{
    probe_t *p = owner;
    p->gai = NULL;
    if (ip == NULL) {
        probe_fail_one(p, "cannot resolve: ", why);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(ip, (int)p->rc->r->target.ports[p->idx]);
    if (ac == NULL || ac->err || uvev_attach(ac, p->rc->r->loop) != REDIS_OK) {
        char e[128];
        snprintf(e, sizeof e, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        probe_fail_one(p, "cannot connect: ", e);
        return;
    }
    ac->data = p;
    p->ac = ac;
    redisAsyncSetConnectCallback(ac, probe_on_connect);
    redisAsyncSetDisconnectCallback(ac, probe_on_disconnect);
}

static void probe_next(probe_t *p)
{
    rconn_t *rc = p->rc;
    mg_redis_t *r = rc->r;
    if (p->idx >= r->target.nhosts) {
        char e[200];
        snprintf(e, sizeof e, "%s", p->last_error[0] ? p->last_error : "no sentinel answered");
        rc->probe = NULL;
        probe_free(p);
        rc_drop(rc, "no master from the sentinels: ", e);
        return;
    }
    p->started = now(r);
    p->gai = resolve(r, r->target.hosts[p->idx], p, probe_resolved);
    if (p->gai == NULL)
        probe_fail_one(p, "cannot resolve", NULL);
}

/* ---- attempts and the tick ---- */

static void rc_start(rconn_t *rc)
{
    mg_redis_t *r = rc->r;
    if (r->target.sentinel) {
        probe_t *p = calloc(1, sizeof(*p));
        if (p == NULL) {
            rc_drop(rc, "out of memory", NULL);
            return;
        }
        p->rc = rc;
        rc->probe = p;
        rc->state = RC_RESOLVE;
        rc->since = now(r);
        probe_next(p);
        return;
    }
    snprintf(rc->host, sizeof rc->host, "%s", r->target.hosts[0]);
    rc->port = r->target.ports[0];
    rc_connect_host(rc);
}

static void rc_tick(rconn_t *rc, uint64_t t)
{
    mg_redis_t *r = rc->r;
    switch (rc->state) {
    case RC_WAIT:
        if (t >= rc->retry_at && !r->closing)
            rc_start(rc);
        break;
    case RC_RESOLVE:
        if (rc->probe != NULL && t - rc->probe->started > r->timeout_ms) {
            probe_fail_one(rc->probe, "timed out", NULL);
            break;
        }
        /* fallthrough */
    case RC_CONNECTING:
    case RC_HANDSHAKE:
        if (rc->state != RC_WAIT && rc->probe == NULL && t - rc->since > r->timeout_ms)
            rc_drop(rc, "timed out while connecting", NULL);
        break;
    case RC_READY: {
        if (rc->sent_count == 0)
            break;
        uint64_t age = t - rc->sent[rc->sent_head]->sent;
        if (age > r->timeout_ms && rc->ac != NULL) {
            /* Timers run before I/O in a loop iteration: a busy loop may not have read a reply that
             * is already here. Read what is there before calling the server late. */
            redisAsyncHandleRead(rc->ac);
        }
        if (rc->state != RC_READY || rc->sent_count == 0)
            break;
        sent_expire(rc, t); /* no caller waits longer than the deadline */
        uint64_t hard = r->timeout_ms * 3 < 5000 ? 5000 : r->timeout_ms * 3;
        uint64_t quiet = t - (rc->last_reply > rc->since ? rc->last_reply : rc->since);
        if (rc->state == RC_READY && rc->sent_count > 0 && t - rc->sent[rc->sent_head]->sent > hard &&
            quiet > hard) {
            char d[48];
            snprintf(d, sizeof d, "%llu ms", (unsigned long long)hard);
            rc_drop(rc, "no reply within ", d);
        }
        break;
    }
    }
}

static void ping_cb(mg_redis_t *r, redisReply *reply, void *data)
{
}

static void tick_cb(uv_timer_t *t)
{
    mg_redis_t *r = t->data;
    uint64_t n = now(r);
    rc_tick(&r->cmd, n);
    rc_tick(&r->subc, n);
    if (r->cmd.state == RC_READY && r->subc.state == RC_READY) {
        if (n - r->last_ping_tx >= PING_EVERY_MS) {
            const char *argv[] = {"PUBLISH", r->ping_channel, "p"};
            r->last_ping_tx = n;
            mg__redis_command(r, 3, argv, NULL, ping_cb, NULL);
        }
        if (n - r->subc.last_rx > PING_SILENT_MS && n - r->subc.since > PING_SILENT_MS && r->subc.ac != NULL)
            redisAsyncHandleRead(r->subc.ac); /* a busy loop may not have read it yet */
        if (r->subc.state == RC_READY && n - r->subc.last_rx > PING_SILENT_MS &&
            n - r->subc.since > PING_SILENT_MS)
            rc_drop(&r->subc, "silent (no ping through pub/sub)", NULL);
    }
}

int mg__redis_conn_init(mg_redis_t *r)
{
    r->cmd.r = r->subc.r = r;
    r->cmd.label = "command";
    r->subc.label = "pub/sub";
    r->subc.sub = 1;
    for (int i = 0; i < SCRIPT_COUNT; i++)
        sha1_hex(r->scripts[i].text, r->scripts[i].sha);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return MG_EINTERNAL;
    srand((unsigned)(rnd[0] | rnd[1] << 8 | rnd[2] << 16)); /* backoff jitter only */
    char rndhex[2 * sizeof rnd + 1];
    mg_hex_encode(rnd, sizeof rnd, rndhex);
    snprintf(r->ping_channel, sizeof r->ping_channel, "%sping:%s", r->prefix, rndhex);
    r->tick = malloc(sizeof(*r->tick));
    if (r->tick == NULL)
        return MG_ENOMEM;
    uv_timer_init(r->loop, r->tick);
    r->tick->data = r;
    uv_timer_start(r->tick, tick_cb, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)r->tick);
    snprintf(r->error, sizeof r->error, "connecting");
    rc_start(&r->cmd);
    rc_start(&r->subc);
    return 0;
}

void mg__redis_conn_close(mg_redis_t *r)
{
    r->closing = 1;
    if (r->cmd.r == NULL)
        return; /* never started */
    rc_drop(&r->cmd, NULL, NULL);
    rc_drop(&r->subc, NULL, NULL);
    free(r->cmd.sent);
    free(r->subc.sent);
    r->cmd.sent = r->subc.sent = NULL;
    if (r->tick != NULL) {
        uv_timer_stop(r->tick);
        uv_close((uv_handle_t *)r->tick, (uv_close_cb)free);
        r->tick = NULL;
    }
}

static const char *state_name(rc_state_t s)
{
    static const char *names[] = {"waiting to reconnect", "resolving", "connecting", "handshake", "ready"};
    return names[s];
}

json_t *mg__redis_status(mg_redis_t *r)
{
    char target[400];
    int n = snprintf(target, sizeof target, "%s://", r->target.sentinel ? "redis-sentinel" : "redis");
    for (size_t i = 0; i < r->target.nhosts && n < (int)sizeof target; i++)
        n += snprintf(target + n, sizeof target - (size_t)n, "%s%s:%u", i ? "," : "", r->target.hosts[i],
                      r->target.ports[i]);
    if (r->target.sentinel && n < (int)sizeof target)
        n += snprintf(target + n, sizeof target - (size_t)n, "/%s", r->target.master);
    if (n < (int)sizeof target)
        snprintf(target + n, sizeof target - (size_t)n, "/%u", r->target.db);
    json_t *s = json_pack("{s:s,s:b,s:s,s:s,s:s,s:I}", "backend", "redis", "ready", mg__redis_ready(r),
                          "target", target, "command", state_name(r->cmd.state), "pubsub",
                          state_name(r->subc.state), "reconnects", (json_int_t)r->reconnects);
    if (r->target.sentinel && r->master[0])
        json_object_set_new(s, "master", json_string(r->master));
    if (!mg__redis_ready(r) && r->error[0])
        json_object_set_new(s, "error", json_string(r->error));
    return s;
}
