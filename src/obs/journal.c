/*
 * journal.c - the journal writer (journal.h): lines formatted on the loop; the chain (each line's
 * "prev" hash, checkpoint HMACs) and the writes on libuv's threadpool, one work item at a time.
 *
 * The loop writes a line with 64 '0's where "prev" (and a checkpoint's "hmac") go; the work item,
 * which takes lines in order anyway, fills them in just before writing (chain_lines()): the line
 * hashes and HMACs cost the loop nothing.
 *
 * Ownership: `pending` (chunks of formatted lines) belongs to the loop; while `busy`, `work_list`,
 * the file descriptor and the chain's last hash (`prev`, set by the loop only at open) belong to the
 * work item, and the loop touches none of them until its after-work callback. A chunk may end with a rotation
 * (rotate_after): the worker renames the live file and opens a new one right after writing it. Read next:
 * journal_verify.c.
 */
#include "journal.h"
#include "metrics.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/str.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MIN      (64u * 1024)
#define MAX_KEY        1024
#define RETRY_MS       1000
#define TAIL_MAX       (64u * 1024 * 1024) /* longest last line read back at open */
#define DEFAULT_EVERY  1000
#define DEFAULT_CP_MS  10000
#define DEFAULT_QUEUE  (16u * 1024 * 1024)
#define ROTATED_DIGITS 12
#define FLUSH_MS       50           /* lines wait at most this long for a write to start... */
#define FLUSH_BYTES    (256 * 1024) /* ...or until this many are queued: few wakeups per second */
#define SPARE_CHUNKS   8            /* written chunks kept for reuse (CHUNK_MIN bytes each) */

typedef struct chunk {
    struct chunk *next;
    char *buf;
    size_t len, cap, done; /* done: bytes written so far */
    size_t chained;        /* bytes whose lines have their prev (and hmac) filled in (work item) */
    int rotate_after;      /* then rename PATH to PATH.<rotate_seq> and open a new PATH */
    uint64_t rotate_seq;   /* first seq of the file being closed */
} chunk_t;

struct mg_journal {
    uv_loop_t *loop;
    char *path;
    unsigned char key[MAX_KEY];
    size_t keylen;
    uint64_t max_bytes;
    unsigned cp_every;
    uint64_t cp_ms;
    size_t queue_cap;
    /* the chain: seq on the loop; prev (the last line's hash) on the work item once open */
    uint64_t seq;
    char prev[MG_SHA256_HEX];
    uint64_t file_bytes;     /* the live file's size once everything queued is written */
    uint64_t file_first_seq; /* seq of its first line */
    unsigned since_cp;       /* lines since the last checkpoint */
    int rotating;
    uint64_t dropped_unreported; /* for the next "gap" line */
    /* the queue */
    chunk_t *head, *tail; /* loop-owned */
    chunk_t *work_list;   /* the work item's while busy */
    chunk_t *spare;       /* written chunks of CHUNK_MIN bytes, for reuse (loop-owned): a 64 KiB
                             malloc and free per batch cost the allocator a consolidation each */
    unsigned nspare;
    size_t queued;
    int busy;
    int work_err; /* errno of the work item's failure, 0 = none */
    const char *work_what;
    uint64_t work_written;
    int work_rotated;
    int fd;
    uv_work_t work;
    uv_prepare_t kick;
    uv_timer_t cp_timer, retry_timer, flush_timer;
    int retry_wait;
    mg_journal_stats_t st;
    mg_log_limit_t lim;
    /* close */
    int closing;
    int finished;
    time_t time_sec; /* format_time's cache */
    char time_prefix[40];
    uint64_t close_deadline;
    void (*done_cb)(void *);
    void *done_data;
    int handles;
};

static void metrics_cb(mg_metrics_out_t *out, void *data)
{
    mg_journal_t *j = data;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
        {"mcpgate_journal_records_total", "counter", "Lines appended to the call journal's chain.",
         offsetof(mg_journal_stats_t, records)},
        {"mcpgate_journal_dropped_total", "counter",
         "Journal records dropped because the write queue was full (slow or full disk).",
         offsetof(mg_journal_stats_t, dropped)},
        {"mcpgate_journal_write_errors_total", "counter", "Failed journal write attempts (retried).",
         offsetof(mg_journal_stats_t, write_errors)},
        {"mcpgate_journal_rotations_total", "counter", "Journal files rotated.",
         offsetof(mg_journal_stats_t, rotations)},
        {"mcpgate_journal_written_bytes_total", "counter", "Bytes written to the journal.",
         offsetof(mg_journal_stats_t, bytes_written)},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        mg_metrics_family(out, rows[i].name, rows[i].type, rows[i].help);
        mg_metrics_sample(out, rows[i].name, NULL, (double)*(uint64_t *)((char *)&j->st + rows[i].off));
    }
    mg_metrics_family(out, "mcpgate_journal_queue_bytes", "gauge",
                      "Journal bytes formatted, not yet written.");
    mg_metrics_sample(out, "mcpgate_journal_queue_bytes", NULL, (double)j->queued);
    mg_metrics_family(out, "mcpgate_journal_failing", "gauge",
                      "1 while journal writes fail (being retried).");
    mg_metrics_sample(out, "mcpgate_journal_failing", NULL, j->st.failing);
}

/* ---- the worker (threadpool): touches only work_list, fd and the work_* fields ---- */

static int open_live(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

static void rotated_name(const char *path, uint64_t seq, char *out, size_t n)
{
    snprintf(out, n, "%s.%0*" PRIu64, path, ROTATED_DIGITS, seq);
}

void mg_journal_checkpoint_mac(const unsigned char *key, size_t keylen, uint64_t seq, const char *prev_hex,
                               char out[65]);

#define PREV_AT "{\"seq\":"
#define PREV_IS ",\"prev\":\""
#define CP_KIND "\",\"kind\":\"checkpoint\","
#define HMAC_IS ",\"hmac\":\""

/* Fills in the prev hash (and a checkpoint's HMAC) of the lines of c not done yet, and chains them
 * (work item). Every line is the loop's emit_text(): {"seq":N,"prev":"<64>","time":"...",
 * "kind":"...", ...}\n, and a checkpoint with a key ends in ,"hmac":"<64>"}. */
static void chain_lines(mg_journal_t *j, chunk_t *c)
{
    while (c->chained < c->len) {
        char *line = c->buf + c->chained;
        char *nl = memchr(line, '\n', c->len - c->chained);
        size_t len = (size_t)(nl - line); /* the loop queues whole lines only */
        uint64_t seq = 0;
        size_t p = sizeof PREV_AT - 1;
        while (line[p] >= '0' && line[p] <= '9')
            seq = seq * 10 + (uint64_t)(line[p++] - '0');
        char *prev = line + p + sizeof PREV_IS - 1;
        memcpy(prev, j->prev, 64);
        if (j->keylen > 0 && len > 64 + 2 + sizeof HMAC_IS - 1) {
            const char *kind = memchr(prev + 64 + 10, '"', len - (size_t)(prev + 64 + 10 - line));
            char *mac = line + len - 2 - 64;
            if (kind != NULL && memcmp(kind, CP_KIND, sizeof CP_KIND - 1) == 0 &&
                memcmp(mac - (sizeof HMAC_IS - 1), HMAC_IS, sizeof HMAC_IS - 1) == 0) {
                char m[65];
                mg_journal_checkpoint_mac(j->key, j->keylen, seq, j->prev, m);
                memcpy(mac, m, 64);
                OPENSSL_cleanse(m, sizeof m);
            }
        }
        mg_sha256_hex(line, len, j->prev);
        c->chained += len + 1;
    }
}

/* Called with the path in data (read-only while busy). */
static void work_cb(uv_work_t *w)
{
    mg_journal_t *j = w->data;
    j->work_err = 0;
    j->work_written = 0;
    j->work_rotated = 0;
    for (chunk_t *c = j->work_list; c != NULL; c = c->next)
        chain_lines(j, c); /* once per line, whatever the writes below do */
    if (j->fd < 0 && (j->fd = open_live(j->path)) < 0) {
        j->work_err = errno;
        j->work_what = "open";
        return;
    }
    for (chunk_t *c = j->work_list; c != NULL; c = c->next) {
        while (c->done < c->len) {
            ssize_t n = write(j->fd, c->buf + c->done, c->len - c->done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                j->work_err = n < 0 ? errno : EIO;
                j->work_what = "write";
                return;
            }
            c->done += (size_t)n;
            j->work_written += (uint64_t)n;
        }
        if (c->rotate_after) {
            char to[PATH_MAX];
            rotated_name(j->path, c->rotate_seq, to, sizeof to);
            fsync(j->fd);
            close(j->fd);
            int r = rename(j->path, to);
            int e = errno;
            c->rotate_after = 0; /* done or given up: the chain continues either way */
            j->fd = open_live(j->path);
            if (r != 0) {
                j->work_err = e;
                j->work_what = "rename";
                return;
            }
            j->work_rotated++;
            if (j->fd < 0) {
                j->work_err = errno;
                j->work_what = "open";
                return;
            }
        }
    }
}

/* ---- the loop side ---- */

static void kick_cb(uv_prepare_t *h);
static void retry_cb(uv_timer_t *h);
static void schedule(mg_journal_t *j);

static void handle_closed_cb(uv_handle_t *h)
{
    mg_journal_t *j = h->data;
    if (--j->handles > 0)
        return;
    void (*cb)(void *) = j->done_cb;
    void *data = j->done_data;
    OPENSSL_cleanse(j->key, sizeof j->key);
    free(j->path);
    free(j);
    if (cb != NULL)
        cb(data);
}

/* Closing, and everything written (or the deadline passed while writes fail): close and free. */
static void maybe_finish(mg_journal_t *j)
{
    if (!j->closing || j->finished || j->busy)
        return;
    if (j->head != NULL && uv_now(j->loop) < j->close_deadline)
        return;
    if (j->head != NULL)
        mg_log_json(MG_LOG_ERROR, "call journal: closed with records not written",
                    json_pack("{s:s,s:I}", "path", j->path, "queued_bytes", (json_int_t)j->queued));
    while (j->head != NULL) {
        chunk_t *c = j->head;
        j->head = c->next;
        free(c->buf);
        free(c);
    }
    j->tail = NULL;
    while (j->spare != NULL) {
        chunk_t *c = j->spare;
        j->spare = c->next;
        free(c->buf);
        free(c);
    }
    j->nspare = 0;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    j->finished = 1;
    mg_metrics_unregister(metrics_cb, j);
    uv_close((uv_handle_t *)&j->kick, handle_closed_cb);
    uv_close((uv_handle_t *)&j->cp_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&j->retry_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&j->flush_timer, handle_closed_cb);
}

/* A written chunk: kept for reuse when it has the usual size and few are kept, else freed. */
static void chunk_release(mg_journal_t *j, chunk_t *c)
{
    if (c->cap == CHUNK_MIN && j->nspare < SPARE_CHUNKS && !j->closing) {
        c->len = c->done = c->chained = 0;
        c->rotate_after = 0;
        c->next = j->spare;
        j->spare = c;
        j->nspare++;
        return;
    }
    free(c->buf);
    free(c);
}

static void after_work_cb(uv_work_t *w, int status)
{
    mg_journal_t *j = w->data;
    j->busy = 0;
    j->st.bytes_written += j->work_written;
    j->queued -= j->work_written;
    j->st.rotations += (uint64_t)j->work_rotated;
    /* What was not written goes back in front of the queue, in order. */
    chunk_t *rest = NULL, *rest_tail = NULL;
    for (chunk_t *c = j->work_list; c != NULL;) {
        chunk_t *next = c->next;
        if (c->done == c->len && !c->rotate_after) {
            chunk_release(j, c);
        } else {
            c->next = NULL;
            if (rest_tail != NULL)
                rest_tail->next = c;
            else
                rest = c;
            rest_tail = c;
        }
        c = next;
    }
    j->work_list = NULL;
    if (rest != NULL) {
        rest_tail->next = j->head;
        if (j->head == NULL)
            j->tail = rest_tail;
        j->head = rest;
    }
    if (j->work_err != 0) {
        j->st.write_errors++;
        j->st.failing = 1;
        mg_log_limited(
            &j->lim, uv_now(j->loop), MG_LOG_ERROR,
            "call journal: writing failed; retrying every second (records queue until the queue is "
            "full, then are dropped and counted)",
            json_pack("{s:s,s:s,s:s,s:I}", "path", j->path, "action", j->work_what, "error",
                      strerror(j->work_err), "queued_bytes", (json_int_t)j->queued));
        j->retry_wait = 1;
        uv_timer_start(&j->retry_timer, retry_cb, RETRY_MS, 0);
    } else {
        if (j->st.failing)
            mg_log_json(
                MG_LOG_WARN, "call journal: writing works again",
                json_pack("{s:s,s:I}", "path", j->path, "write_errors", (json_int_t)j->st.write_errors));
        j->st.failing = 0;
        if (j->head != NULL)
            schedule(j);
    }
    maybe_finish(j);
}

static void kick_cb(uv_prepare_t *h)
{
    mg_journal_t *j = h->data;
    uv_prepare_stop(h);
    if (j->busy || j->retry_wait || j->head == NULL)
        return;
    j->work_list = j->head;
    j->head = j->tail = NULL;
    j->busy = 1;
    j->work.data = j;
    if (uv_queue_work(j->loop, &j->work, work_cb, after_work_cb) != 0) {
        j->busy = 0;
        j->head = j->work_list;
        for (j->tail = j->head; j->tail->next != NULL; j->tail = j->tail->next)
            ;
        j->work_list = NULL;
        j->retry_wait = 1;
        uv_timer_start(&j->retry_timer, retry_cb, RETRY_MS, 0);
    }
}

static void flush_cb(uv_timer_t *h)
{
    mg_journal_t *j = h->data;
    if (!j->busy && !j->retry_wait && j->head != NULL)
        uv_prepare_start(&j->kick, kick_cb);
}

/* A write soon: at once when much is queued or the journal closes, else within FLUSH_MS. */
static void schedule(mg_journal_t *j)
{
    if (j->busy || j->retry_wait || j->head == NULL)
        return;
    if (j->closing || j->queued >= FLUSH_BYTES)
        uv_prepare_start(&j->kick, kick_cb);
    else if (!uv_is_active((uv_handle_t *)&j->flush_timer))
        uv_timer_start(&j->flush_timer, flush_cb, FLUSH_MS, 0);
}

static void retry_cb(uv_timer_t *h)
{
    mg_journal_t *j = h->data;
    j->retry_wait = 0;
    if (j->closing && uv_now(j->loop) >= j->close_deadline) {
        maybe_finish(j);
        return;
    }
    if (j->head != NULL)
        uv_prepare_start(&j->kick, kick_cb);
}

/* Room for n bytes at the end of the queue's last chunk (a new one when it is full or ends with a
 * rotation), or NULL (no memory). The caller writes them and then calls queue_commit(j, n). */
static char *queue_room(mg_journal_t *j, size_t n)
{
    chunk_t *t = j->tail;
    if (t == NULL || t->rotate_after || t->len + n > t->cap) {
        chunk_t *c = j->spare;
        if (c != NULL && n <= CHUNK_MIN) {
            j->spare = c->next;
            j->nspare--;
            c->next = NULL;
        } else {
            size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
            c = calloc(1, sizeof(*c));
            if (c == NULL || (c->buf = malloc(cap)) == NULL) {
                free(c);
                return NULL;
            }
            c->cap = cap;
        }
        if (t != NULL)
            t->next = c;
        else
            j->head = c;
        j->tail = t = c;
    }
    return t->buf + t->len;
}

static void queue_commit(mg_journal_t *j, size_t n)
{
    j->tail->len += n;
    j->queued += n;
}

/* UTC with milliseconds; the date and time part is formatted once per second. */
static void format_time(mg_journal_t *j, char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != j->time_sec || j->time_prefix[0] == '\0') {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(j->time_prefix, sizeof j->time_prefix, "%04d-%02d-%02dT%02d:%02d:%02d",
                 (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100,
                 tm.tm_min % 100, tm.tm_sec % 100);
        j->time_sec = ts.tv_sec;
    }
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000) % 1000;
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z',
                    '\0'};
    size_t pl = strlen(j->time_prefix);
    if (n > pl + sizeof frac) {
        memcpy(out, j->time_prefix, pl);
        memcpy(out + pl, frac, sizeof frac);
    } else if (n > 0) {
        out[0] = '\0';
    }
}

static void checkpoint(mg_journal_t *j, const char *reason);

/*
 * Formats one line (seq, prev, time, kind, then fields' members), chains it and queues it.
 * force: bypasses the queue bound (checkpoints, gaps: small and needed for the chain to say what
 * happened). Returns 0, MG_EBUSY (dropped) or MG_ENOMEM.
 */
static int emit_text(mg_journal_t *j, const char *kind, const char *members, size_t mlen, int force);

static int emit(mg_journal_t *j, const char *kind, const json_t *fields, int force)
{
    char *body = fields != NULL ? json_dumps(fields, JSON_COMPACT) : NULL;
    if (fields != NULL && body == NULL)
        return MG_ENOMEM;
    size_t blen = body != NULL ? strlen(body) : 0;
    /* body is "{...}": its members follow ours; "{}" adds nothing */
    int r = emit_text(j, kind, blen > 2 ? body + 1 : "", blen > 2 ? blen - 2 : 0, force);
    free(body);
    return r;
}

static int emit_text(mg_journal_t *j, const char *kind, const char *members, size_t mlen, int force)
{
    char head[256], when[40], seqs[24];
    format_time(j, when, sizeof when);
    /* {"seq":N,"prev":"<hex>","time":"<when>","kind":"<kind>"[,]  (no printf: built on every call) */
    size_t sl = 0;
    for (uint64_t v = j->seq + 1; v > 0; v /= 10)
        seqs[sl++] = (char)('0' + v % 10);
    size_t kl = strlen(kind), wl = strlen(when), hn;
    if (kl > 64)
        return MG_EINVAL;
    memcpy(head, "{\"seq\":", 7);
    hn = 7;
    while (sl > 0)
        head[hn++] = seqs[--sl];
    memcpy(head + hn, ",\"prev\":\"", 9);
    hn += 9;
    memset(head + hn, '0', 64); /* filled in by the work item (chain_lines) */
    hn += 64;
    memcpy(head + hn, "\",\"time\":\"", 10);
    hn += 10;
    memcpy(head + hn, when, wl);
    hn += wl;
    memcpy(head + hn, "\",\"kind\":\"", 10);
    hn += 10;
    memcpy(head + hn, kind, kl);
    hn += kl;
    head[hn++] = '"';
    if (mlen > 0)
        head[hn++] = ',';
    size_t len = hn + mlen + 1; /* the closing brace */
    if (!force && j->queued + len + 1 > j->queue_cap) {
        j->st.dropped++;
        j->dropped_unreported++;
        mg_log_limited(&j->lim, uv_now(j->loop), MG_LOG_WARN,
                       "call journal: write queue full (the disk is slow or failing); record dropped and "
                       "counted, a \"gap\" line will say how many",
                       json_pack("{s:s,s:I,s:I}", "path", j->path, "queued_bytes", (json_int_t)j->queued,
                                 "dropped_total", (json_int_t)j->st.dropped));
        return MG_EBUSY;
    }
    char *line = queue_room(j, len + 1); /* written in place: the chunk is what the work item writes */
    if (line == NULL)
        return MG_ENOMEM;
    memcpy(line, head, hn);
    memcpy(line + hn, members, mlen);
    line[len - 1] = '}';
    line[len] = '\n';
    queue_commit(j, len + 1);
    j->seq++;
    j->st.seq = j->seq;
    j->st.records++;
    j->file_bytes += len + 1;
    if (strcmp(kind, "checkpoint") != 0)
        j->since_cp++;
    if (!j->closing)
        schedule(j);
    if (j->rotating)
        return 0;
    if (j->max_bytes > 0 && j->file_bytes >= j->max_bytes && !j->closing) {
        j->rotating = 1;
        checkpoint(j, "rotate"); /* the last line of the file being closed */
        j->rotating = 0;
        if (j->tail != NULL) {
            j->tail->rotate_after = 1;
            j->tail->rotate_seq = j->file_first_seq;
        }
        j->file_first_seq = j->seq + 1;
        j->file_bytes = 0;
    } else if (j->since_cp >= j->cp_every) {
        checkpoint(j, "count");
    }
    return 0;
}

/* A checkpoint line: "reason", and with a key "hmac" last, its 64 '0's filled in by the work item
 * (chain_lines: HMAC over this line's seq and prev). reason is one of this file's words. */
static void checkpoint(mg_journal_t *j, const char *reason)
{
    char m[128];
    size_t n = 0, rl = strlen(reason);
    memcpy(m, "\"reason\":\"", 10);
    n = 10;
    memcpy(m + n, reason, rl);
    n += rl;
    m[n++] = '"';
    if (j->keylen > 0) {
        memcpy(m + n, HMAC_IS, sizeof HMAC_IS - 1);
        n += sizeof HMAC_IS - 1;
        memset(m + n, '0', 64);
        n += 64;
        m[n++] = '"';
    }
    int was = j->rotating;
    j->rotating = 1; /* a checkpoint never triggers another */
    emit_text(j, "checkpoint", m, n, 1);
    j->rotating = was;
    j->since_cp = 0;
}

static void cp_timer_cb(uv_timer_t *h)
{
    mg_journal_t *j = h->data;
    if (j->since_cp > 0 && !j->closing)
        checkpoint(j, "interval");
}

/* After drops: the "gap" line first (MG_EBUSY while the queue is still full: this record is dropped
 * too). */
static int gap_first(mg_journal_t *j)
{
    if (j->dropped_unreported == 0)
        return 0;
    if (j->queued >= j->queue_cap) {
        j->st.dropped++;
        j->dropped_unreported++;
        return MG_EBUSY;
    }
    json_t *g = json_pack("{s:I}", "dropped", (json_int_t)j->dropped_unreported);
    int r = emit(j, "gap", g, 1);
    json_decref(g);
    if (r == 0)
        j->dropped_unreported = 0;
    return 0;
}

int mg_journal_append(mg_journal_t *j, const char *kind, const json_t *fields)
{
    if (j == NULL || j->closing)
        return MG_ECLOSED;
    if (gap_first(j) != 0)
        return MG_EBUSY;
    return emit(j, kind, fields, 0);
}

int mg_journal_append_text(mg_journal_t *j, const char *kind, const char *members, size_t len)
{
    if (j == NULL || j->closing)
        return MG_ECLOSED;
    if (gap_first(j) != 0)
        return MG_EBUSY;
    return emit_text(j, kind, members, len, 0);
}

void mg_journal_get_stats(const mg_journal_t *j, mg_journal_stats_t *out)
{
    *out = j->st;
    out->queued_bytes = j->queued;
}

void mg_journal_close(mg_journal_t *j, uint64_t wait_ms, void (*done_cb)(void *data), void *data)
{
    if (j->since_cp > 0 || j->seq > 0)
        checkpoint(j, "close");
    j->closing = 1;
    j->done_cb = done_cb;
    j->done_data = data;
    j->close_deadline = uv_now(j->loop) + wait_ms;
    uv_timer_stop(&j->cp_timer);
    if (!j->busy && !j->retry_wait && j->head != NULL)
        uv_prepare_start(&j->kick, kick_cb);
    if (j->retry_wait) /* writes fail: give them until the deadline */
        uv_timer_start(&j->retry_timer, retry_cb, wait_ms < RETRY_MS ? wait_ms : RETRY_MS, 0);
    maybe_finish(j);
}

/* ---- open: find where the chain stands ---- */

/* The highest seq among the rotated siblings PATH.N (0 when none). */
static uint64_t newest_rotated(const char *path)
{
    char dbuf[PATH_MAX], bbuf[PATH_MAX];
    mg_strlcpy(dbuf, sizeof dbuf, path);
    mg_strlcpy(bbuf, sizeof bbuf, path);
    const char *dir = dirname(dbuf), *base = basename(bbuf);
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    uint64_t best = 0;
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || n[blen] != '.' || n[blen + 1] == '\0' ||
            strspn(n + blen + 1, "0123456789") != strlen(n + blen + 1))
            continue;
        uint64_t v = strtoull(n + blen + 1, NULL, 10);
        if (v > best)
            best = v;
    }
    closedir(d);
    return best;
}

/*
 * The last complete line of the file at path (NEW, without '\n') into *line and *len; *cut when the
 * file ends inside a line (a write cut short). Returns 0 (an empty file gives *line NULL), or -1
 * with errno.
 */
static int last_line(const char *path, char **line, size_t *len, int *cut, uint64_t *size)
{
    *line = NULL;
    *len = 0;
    *cut = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    *size = (uint64_t)st.st_size;
    uint64_t want = 64 * 1024;
    for (;;) {
        uint64_t from = *size > want ? *size - want : 0, n = *size - from;
        if (n == 0)
            break;
        char *buf = malloc(n);
        if (buf == NULL) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        size_t got = 0;
        while (got < n) {
            ssize_t r = pread(fd, buf + got, n - got, (off_t)(from + got));
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        size_t end = got;
        *cut = end > 0 && buf[end - 1] != '\n';
        while (end > 0 && buf[end - 1] != '\n') /* a line cut short is not a line */
            end--;
        if (end > 0) {
            size_t stop = end - 1, start = stop;
            while (start > 0 && buf[start - 1] != '\n')
                start--;
            if (start > 0 || from == 0 || want >= TAIL_MAX) {
                *len = stop - start;
                *line = malloc(*len + 1);
                if (*line != NULL) {
                    memcpy(*line, buf + start, *len);
                    (*line)[*len] = '\0';
                }
                free(buf);
                break;
            }
        }
        free(buf);
        if (from == 0 || want >= TAIL_MAX)
            break;
        want *= 4;
    }
    close(fd);
    return 0;
}

/* seq of the first line of path, 0 when empty or unreadable. */
static uint64_t first_seq(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    char buf[64];
    uint64_t seq = 0;
    if (fgets(buf, sizeof buf, f) != NULL && strncmp(buf, "{\"seq\":", 7) == 0)
        seq = strtoull(buf + 7, NULL, 10);
    fclose(f);
    return seq;
}

int mg_journal_open(uv_loop_t *loop, const mg_journal_opts_t *o, json_t *open_fields, mg_journal_t **out,
                    char *why, size_t whylen)
{
    *out = NULL;
    if (o->path == NULL || o->path[0] == '\0' || o->keylen > MAX_KEY) {
        snprintf(why, whylen, "the journal needs a path, and a key of at most %d bytes", MAX_KEY);
        return MG_EINVAL;
    }
    mg_journal_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->path = strdup(o->path)) == NULL) {
        free(j);
        snprintf(why, whylen, "out of memory");
        return MG_ENOMEM;
    }
    j->loop = loop;
    j->fd = -1;
    if (o->key != NULL && o->keylen > 0) {
        memcpy(j->key, o->key, o->keylen);
        j->keylen = o->keylen;
    }
    j->max_bytes = o->max_bytes;
    j->cp_every = o->checkpoint_every ? o->checkpoint_every : DEFAULT_EVERY;
    j->cp_ms = o->checkpoint_ms ? o->checkpoint_ms : DEFAULT_CP_MS;
    j->queue_cap = o->queue_bytes ? o->queue_bytes : DEFAULT_QUEUE;
    memset(j->prev, '0', 64);
    j->prev[64] = '\0';
    mg_log_limit_init(&j->lim, 5, 10000);

    /* Where the chain stands: the live file's last line, else the newest rotated file's. */
    char *line = NULL;
    size_t len = 0;
    int cut = 0;
    uint64_t size = 0;
    const char *from = o->path;
    char rot[PATH_MAX];
    if (last_line(o->path, &line, &len, &cut, &size) != 0 && errno != ENOENT) {
        snprintf(why, whylen, "cannot read the journal %s: %s", o->path, strerror(errno));
        goto fail;
    }
    if (line == NULL && !cut) {
        uint64_t r = newest_rotated(o->path);
        uint64_t rsize;
        int rcut;
        if (r > 0) {
            rotated_name(o->path, r, rot, sizeof rot);
            from = rot;
            if (last_line(rot, &line, &len, &rcut, &rsize) != 0) {
                snprintf(why, whylen, "cannot read the journal %s: %s", rot, strerror(errno));
                goto fail;
            }
        }
    }
    if (line != NULL) {
        json_t *v = json_loadb(line, len, 0, NULL);
        json_int_t seq = json_integer_value(json_object_get(v, "seq"));
        json_decref(v);
        if (seq <= 0)
            mg_log_json(
                MG_LOG_WARN,
                "call journal: the last line is damaged; the chain continues after it and `mcpgate journal "
                "verify` will report it",
                json_pack("{s:s}", "path", from));
        j->seq = seq > 0 ? (uint64_t)seq : 0;
        mg_sha256_hex(line, len, j->prev);
        free(line);
    }
    j->file_bytes = size;
    j->file_first_seq = size > 0 ? first_seq(o->path) : j->seq + 1;
    if (j->file_first_seq == 0)
        j->file_first_seq = j->seq + 1;
    j->fd = open_live(o->path);
    if (j->fd < 0) {
        snprintf(why, whylen, "cannot open the journal %s for appending: %s", o->path, strerror(errno));
        goto fail;
    }
    if (cut) { /* end the line cut short, so ours start on a line of their own */
        mg_log_json(
            MG_LOG_WARN,
            "call journal: the file ends inside a line (a write was cut short); `mcpgate journal verify` "
            "will report that line",
            json_pack("{s:s}", "path", o->path));
        if (write(j->fd, "\n", 1) == 1)
            j->file_bytes++;
    }
    uv_prepare_init(loop, &j->kick);
    uv_timer_init(loop, &j->cp_timer);
    uv_timer_init(loop, &j->retry_timer);
    uv_timer_init(loop, &j->flush_timer);
    j->kick.data = j->cp_timer.data = j->retry_timer.data = j->flush_timer.data = j;
    j->handles = 4;
    uv_unref((uv_handle_t *)&j->cp_timer);
    uv_timer_start(&j->cp_timer, cp_timer_cb, j->cp_ms, j->cp_ms);
    mg_metrics_register(metrics_cb, j);
    emit(j, "open", open_fields, 1);
    *out = j;
    return 0;
fail:
    free(line);
    free(j->path);
    OPENSSL_cleanse(j->key, sizeof j->key);
    free(j);
    return MG_EIO;
}
