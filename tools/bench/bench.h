/*
 * bench.h - internal header of build/mcpgate-bench, the load generator for mcpgate and its peers.
 *
 * Contract: one process, one libuv loop, no threads. main.c parses the options; run.c drives a run
 * in phases (setup -> measure -> teardown) over N sessions; mcp.c is one MCP session (lifecycle,
 * tool calls, result checks) on one keep-alive HTTP/1.1 connection from http.c; stats.c keeps the
 * latency histograms and error counts and prints the report; proc.c reads RSS from /proc and
 * coldstart.c times a target from exec to its first answer. Every callback below runs on the loop.
 * Read next: run.c (phases and scheduling), then mcp.c and http.c.
 */
#ifndef MG_BENCH_H
#define MG_BENCH_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#define MG_BENCH_VERSION "0.1.0"

/* ---- options (main.c) ---- */

typedef struct mg_bench_opts {
    const char *url;            /* --url, http://IPv4:PORT/path */
    struct sockaddr_in addr;    /* parsed from url */
    char hostport[64];          /* Host header value */
    char path[512];             /* request target */
    unsigned sessions;          /* --sessions: concurrent sessions, one connection each */
    uint64_t calls;             /* --calls: tool calls per session (0: use duration) */
    double rate;                /* --rate: open-loop total calls/s (0: closed loop) */
    double duration;            /* --duration seconds (0: use calls) */
    const char *tool;           /* --tool */
    const char *args;           /* --args JSON object template */
    const char *bearer;         /* --bearer token or NULL */
    const char *protocol;       /* --protocol */
    int stateless;              /* --stateless (not implemented) */
    double connect_timeout;     /* --connect-timeout seconds */
    double timeout;             /* --timeout seconds, per request */
    int json;                   /* --json */
    double hold;                /* --hold seconds (>0: hold mode) */
    int raw_post;               /* --raw-post */
    unsigned setup_concurrency; /* --setup-concurrency: sessions in setup at once */
    int rss_pid;                /* --rss-pid: sample VmRSS of this process tree */
    int cold_start;             /* --cold-start */
    const char *health_url;     /* --health-url for --cold-start */
    char **cold_argv;           /* command after "--" for --cold-start */
    const char *label;          /* --label, echoed in the report */
    size_t max_body;            /* cap on one response body */
} mg_bench_opts_t;

/* Parses http://IPv4:PORT/path ("localhost" is 127.0.0.1); returns 0 or -1. */
int mg_bench_url_parse(const char *url, struct sockaddr_in *addr, char *hostport, size_t hpn, char *path,
                       size_t pn);

/* ---- growable buffer with a mandatory cap ---- */

typedef struct mg_bench_buf {
    char *p;
    size_t len, cap, max;
} mg_bench_buf_t;

/* Appends n bytes; returns 0, or -1 when the cap would be exceeded or memory is short. */
int mg_bench_buf_append(mg_bench_buf_t *b, const void *data, size_t n);
/* Appends printf output; same returns. */
int mg_bench_buf_printf(mg_bench_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mg_bench_buf_free(mg_bench_buf_t *b);

/* ---- statistics (stats.c) ---- */

/* Log-linear histogram of nanosecond values: exact below 256, then 128 sub-buckets per power of
 * two (relative error < 0.4% at the bucket midpoint), up to 2^41 ns (~37 min); larger values clamp. */
#define MG_BENCH_HIST_BUCKETS (256 + 34 * 128)

typedef struct mg_bench_hist {
    uint64_t counts[MG_BENCH_HIST_BUCKETS];
    uint64_t n, max;
    double sum;
} mg_bench_hist_t;

void mg_bench_hist_record(mg_bench_hist_t *h, uint64_t ns);
/* Value (ns) at quantile q in [0,1]; 0 when empty. */
uint64_t mg_bench_hist_quantile(const mg_bench_hist_t *h, double q);

#define MG_BENCH_MAX_ERR_KINDS 64

typedef struct mg_bench_stats {
    mg_bench_hist_t calls; /* latency of successful tool calls */
    mg_bench_hist_t setup; /* initialize round trip */
    uint64_t sessions_ok, sessions_failed;
    uint64_t calls_ok, calls_failed, calls_unsent;
    uint64_t reconnects;      /* new TCP connections after the first, per session */
    uint64_t t_measure_start; /* hrtime ns, start of the measured phase */
    uint64_t t_measure_end;   /* hrtime ns, last call answered */
    uint64_t t_setup_start, t_setup_end;
    struct {
        char kind[64];
        char sample[160]; /* first detail seen (a JSON-RPC error message, a body), or "" */
        uint64_t count;
    } errs[MG_BENCH_MAX_ERR_KINDS];
    unsigned n_errs;
    uint64_t errs_other; /* kinds past the table's size */
    /* RSS of --rss-pid's process tree, kB; -1 when not sampled */
    long rss_before_kb, rss_setup_kb, rss_after_kb;
    unsigned rss_procs;
    double cold_health_ms, cold_call_ms; /* --cold-start; <0 when not reached */
} mg_bench_stats_t;

void mg_bench_stats_init(mg_bench_stats_t *st);
/* Counts one error of kind `phase: what` (e.g. "tools/call", "http 503"); the first non-empty
 * detail (may be NULL) of each kind is kept as its sample. */
void mg_bench_stats_error(mg_bench_stats_t *st, const char *phase, const char *what, const char *detail);
/* Prints the table (stdout) or one JSON object (stdout) with --json. */
void mg_bench_stats_report(const mg_bench_stats_t *st, const mg_bench_opts_t *o, const char *mode);

/* ---- HTTP/1.1 client connection (http.c) ---- */

typedef struct mg_bench_conn mg_bench_conn_t;

/* The request ended: err is 0 (a whole response is in c->status/c->body) or a negative libuv code
 * (UV_ETIMEDOUT, UV_ECONNREFUSED, UV_EOF, UV_EPROTO for a malformed response, UV_E2BIG past a cap).
 * Called after the connection's handle is closed when the connection failed, so the callee may
 * send again at once. */
typedef void (*mg_bench_conn_done_cb)(mg_bench_conn_t *c, int err);
/* Some body bytes arrived (used to scan SSE events before the body ends). */
typedef void (*mg_bench_conn_body_cb)(mg_bench_conn_t *c);

enum { MG_BENCH_CONN_CLOSED, MG_BENCH_CONN_CONNECTING, MG_BENCH_CONN_OPEN, MG_BENCH_CONN_CLOSING };

struct mg_bench_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t timer;
    uv_loop_t *loop;
    const mg_bench_opts_t *opts;
    const struct sockaddr_in *addr; /* where to connect (opts->addr unless set) */
    int state;
    int busy;               /* a request is in flight */
    int pending_send;       /* send once the closing handle is closed */
    int used;               /* this TCP connection already carried a response */
    int retried;            /* the in-flight request was resent once on a fresh connection */
    int fail_err;           /* error to report from the close callback */
    int in_connect;         /* the failure happened while connecting */
    int connects;           /* TCP connections opened so far */
    int head_only;          /* the in-flight request expects no body (HEAD) */
    int writing;            /* write_req is in use (its callback has not run yet) */
    int write_deferred;     /* start the write when write_req is free */
    mg_bench_buf_t wbuf[2]; /* request bytes; alternate so a finishing write's buffer is untouched */
    int wcur, wnext;        /* buffer of the in-flight request (kept for a resend), of the next one */
    /* response */
    int rphase;
    mg_bench_buf_t head;
    mg_bench_buf_t body;
    uint64_t remaining;
    char line[80];
    size_t line_len;
    size_t got; /* response bytes seen for the in-flight request */
    int status;
    int keepalive;
    int is_sse;
    char session_id[256];
    mg_bench_conn_done_cb done_cb;
    mg_bench_conn_body_cb body_cb;
    void *data;
};

/* Prepares c (initializes its timer on loop). Never fails. */
void mg_bench_conn_init(mg_bench_conn_t *c, uv_loop_t *loop, const mg_bench_opts_t *o);
/* Returns an empty buffer for the next request's bytes (valid until mg_bench_conn_send). */
mg_bench_buf_t *mg_bench_conn_begin(mg_bench_conn_t *c);
/* Sends the request built in mg_bench_conn_begin()'s buffer, connecting first if needed; done_cb is
 * called exactly once. head_only: no body expected. Returns 0, or a libuv error and done_cb is not
 * called. */
int mg_bench_conn_send(mg_bench_conn_t *c, int head_only, mg_bench_conn_done_cb done_cb,
                       mg_bench_conn_body_cb body_cb);
/* Closes the TCP connection if open (no callback). */
void mg_bench_conn_close(mg_bench_conn_t *c);
/* Closes everything; c may be freed once the loop has run its close callbacks. */
void mg_bench_conn_dispose(mg_bench_conn_t *c);

/* ---- MCP session (mcp.c) ---- */

typedef struct mg_bench_run mg_bench_run_t;
typedef struct mg_bench_session mg_bench_session_t;

enum {
    MG_BENCH_STEP_IDLE,
    MG_BENCH_STEP_INIT,
    MG_BENCH_STEP_INITIALIZED,
    MG_BENCH_STEP_LIST,
    MG_BENCH_STEP_READY,
    MG_BENCH_STEP_CALL,
    MG_BENCH_STEP_DELETE,
    MG_BENCH_STEP_DONE
};

struct mg_bench_session {
    mg_bench_conn_t conn;
    mg_bench_run_t *run;
    unsigned idx;
    int step;
    int failed;         /* some step of this session failed */
    int transport_errs; /* consecutive transport errors */
    int aborted;        /* the session gave up; remaining calls are unsent */
    char sid[256];      /* Mcp-Session-Id from initialize, or "" */
    uint64_t calls_sent;
    uint64_t next_id;
    uint64_t t_sent, t_sched; /* hrtime ns */
    uint64_t seq;             /* per-call unique counter in the arguments */
    /* outcome of the in-flight request */
    int have_answer;
    int answer_ok;
    uint64_t t_answer;
    char answer_err[64];
    char answer_detail[160]; /* JSON-RPC error message or the start of an unexpected body */
    size_t sse_off;
    mg_bench_buf_t sse_data;
};

/* Call templates prepared once from the options (mcp.c). */
typedef struct mg_bench_calltpl {
    char *args_pre, *args_post;     /* serialized arguments around the per-call counter */
    char *expect_pre, *expect_post; /* expected echo text around the counter, or NULL: no echo check */
    char *tool_json;                /* the tool name as a JSON string */
    int varied;                     /* the counter appears in the arguments */
} mg_bench_calltpl_t;

/* Builds the templates; returns 0, or -1 with a message on stderr. */
int mg_bench_calltpl_init(mg_bench_calltpl_t *t, const mg_bench_opts_t *o);
void mg_bench_calltpl_dispose(mg_bench_calltpl_t *t);

void mg_bench_session_init(mg_bench_session_t *s, mg_bench_run_t *run, unsigned idx);
/* Starts the lifecycle (initialize, initialized, tools/list); run->on_ready follows. In raw-post
 * mode the session is ready at once (on_ready is called before this returns). */
void mg_bench_session_start(mg_bench_session_t *s);
/* Sends one tools/call (or the raw POST); sched is the scheduled send time (open loop) or 0. */
void mg_bench_session_call(mg_bench_session_t *s, uint64_t sched);
/* Ends the session: DELETE (if it has an id) and close; run->on_done follows. */
void mg_bench_session_finish(mg_bench_session_t *s);
void mg_bench_session_dispose(mg_bench_session_t *s);

/* ---- the run (run.c, coldstart.c) ---- */

struct mg_bench_run {
    uv_loop_t *loop;
    const mg_bench_opts_t *opts;
    mg_bench_stats_t *st;
    mg_bench_calltpl_t tpl;
    mg_bench_session_t *sessions;
    unsigned n_sessions;
    uint64_t seq; /* next per-call counter */
    /* driver callbacks, set by run.c or coldstart.c */
    void (*on_ready)(mg_bench_session_t *s);          /* lifecycle done (s->failed tells how) */
    void (*on_answer)(mg_bench_session_t *s, int ok); /* a call ended, ok or failed */
    void (*on_done)(mg_bench_session_t *s);           /* the session is closed */
    void *driver;
};

/* Runs the load (or --hold) described by o; fills st. Returns 0, or -1 on a setup error. */
int mg_bench_run_load(const mg_bench_opts_t *o, mg_bench_stats_t *st);
/* --cold-start: spawns o->cold_argv, times /healthz and the first tool call. Returns 0 or -1. */
int mg_bench_run_cold_start(const mg_bench_opts_t *o, mg_bench_stats_t *st);

/* ---- processes (proc.c) ---- */

/* Sum of VmRSS (kB) over pid and all its descendants; -1 if pid is gone. *nprocs gets the count. */
long mg_bench_proc_rss_tree(int pid, unsigned *nprocs);
/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
long mg_bench_proc_raise_nofile(void);

static inline double mg_bench_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

#endif
