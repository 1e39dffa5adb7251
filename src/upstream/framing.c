/*
 * framing.c - bytes from a child's stdout/stderr into lines, with a hard cap per line.
 *
 * Implements the framing table of upstream_int.h: the line splitter (discard mode for stdout, cut
 * mode for stderr), the top-level "id" scanner used to fail the request behind an over-long
 * response, and the UTF-8 cleanup applied before a child's bytes go into a JSON log line.
 * Pure functions of their inputs; no loop, no logging. Read next: child.c (the only caller).
 */
#include "upstream_int.h"

#include <stdlib.h>
#include <string.h>

#define SHRINK_ABOVE (256u * 1024u) /* free the line buffer after a line that made it this big */

/* ---- top-level "id" scanner ---- */

void mg__idscan_init(mg__idscan_t *s)
{
    memset(s, 0, sizeof *s);
}

static int number_done(mg__idscan_t *s)
{
    s->in_val = 0;
    if (s->ndigits > 0 && s->ndigits <= 18) {
        s->found = 1;
        return 1;
    }
    return 0;
}

void mg__idscan_feed(mg__idscan_t *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !s->found && !s->dead; i++) {
        char c = p[i];
        if (s->in_str) {
            if (s->esc) {
                s->esc = 0;
                if (s->key_mode)
                    s->klen = 3; /* an escaped key is never taken for "id" */
            } else if (c == '\\') {
                s->esc = 1;
            } else if (c == '"') {
                s->in_str = 0;
                if (s->key_mode) {
                    s->key_mode = 0;
                    s->key_is_id = s->klen == 2 && s->key[0] == 'i' && s->key[1] == 'd';
                }
            } else if (s->key_mode) {
                if (s->klen < 2)
                    s->key[s->klen] = c;
                if (s->klen < 3)
                    s->klen++;
            }
            continue;
        }
        if (s->in_val) {
            if (c >= '0' && c <= '9') {
                if (s->ndigits < 19)
                    s->ndigits++;
                if (s->ndigits <= 18)
                    s->val = s->val * 10 + (uint64_t)(c - '0');
                continue;
            }
            if (c == '.' || c == 'e' || c == 'E') { /* not an integer: not ours */
                s->in_val = 0;
                s->ndigits = 0;
                s->key_is_id = 0;
                continue;
            }
            if (number_done(s))
                return;
        }
        switch (c) {
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            break;
        case '"':
            s->in_str = 1;
            s->want_val = 0;
            if (s->depth == 1 && s->expect_key) {
                s->key_mode = 1;
                s->klen = 0;
                s->expect_key = 0;
            }
            break;
        case '{':
        case '[':
            if (s->depth == 0 && c == '[') {
                s->dead = 1; /* a batch: no single id */
                break;
            }
            s->depth++;
            s->want_val = 0;
            if (s->depth == 1)
                s->expect_key = 1;
            break;
        case '}':
        case ']':
            s->depth--;
            s->want_val = 0;
            if (s->depth <= 0)
                s->dead = 1; /* outermost object closed without an integer id */
            break;
        case ',':
            if (s->depth == 1) {
                s->expect_key = 1;
                s->key_is_id = 0;
            }
            s->want_val = 0;
            break;
        case ':':
            if (s->depth == 1 && s->key_is_id)
                s->want_val = 1;
            break;
        default:
            if (s->want_val && s->depth == 1 && (c == '-' || (c >= '0' && c <= '9'))) {
                s->in_val = 1;
                s->neg = c == '-';
                s->ndigits = c == '-' ? 0 : 1;
                s->val = c == '-' ? 0 : (uint64_t)(c - '0');
            }
            s->want_val = 0;
            break;
        }
    }
}

int mg__idscan_result(mg__idscan_t *s, int64_t *id)
{
    if (!s->found && s->in_val)
        number_done(s);
    if (!s->found)
        return 0;
    *id = s->neg ? -(int64_t)s->val : (int64_t)s->val;
    return 1;
}

/* ---- line splitter ---- */

void mg__linebuf_init(mg__linebuf_t *lb, size_t max, int cut_mode)
{
    memset(lb, 0, sizeof *lb);
    lb->max = max;
    lb->cut_mode = cut_mode;
}

void mg__linebuf_dispose(mg__linebuf_t *lb)
{
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

static void release(mg__linebuf_t *lb)
{
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

/* Grows to hold `need` bytes (need <= max). Returns 0 or -1 on ENOMEM. */
static int reserve(mg__linebuf_t *lb, size_t need)
{
    if (need <= lb->cap)
        return 0;
    size_t ncap = lb->cap ? lb->cap : 4096;
    while (ncap < need)
        ncap *= 2;
    if (ncap > lb->max)
        ncap = lb->max;
    char *nb = realloc(lb->buf, ncap);
    if (nb == NULL)
        return -1;
    lb->buf = nb;
    lb->cap = ncap;
    return 0;
}

static void deliver(const char *p, size_t len, int truncated, const mg__line_ops_t *ops, void *ctx)
{
    if (len > 0 && p[len - 1] == '\r')
        len--;
    ops->line(ctx, p, len, truncated);
}

static void end_overflow(mg__linebuf_t *lb, const mg__line_ops_t *ops, void *ctx)
{
    lb->overflow = 0;
    size_t dropped = lb->dropped;
    lb->dropped = 0;
    if (!lb->cut_mode && ops->overlong != NULL) {
        int64_t id = 0;
        int have = mg__idscan_result(&lb->scan, &id);
        ops->overlong(ctx, dropped, have, id);
    }
}

/* The current line (lb->buf[0..len) + p[0..seg)) does not fit in max bytes. */
static void start_overflow(mg__linebuf_t *lb, const char *p, size_t seg, const mg__line_ops_t *ops, void *ctx)
{
    lb->overflow = 1;
    lb->dropped = lb->len + seg;
    if (lb->cut_mode) {
        size_t take = lb->max - lb->len;
        if (reserve(lb, lb->max) == 0) {
            memcpy(lb->buf + lb->len, p, take);
            lb->len = 0;
            deliver(lb->buf, lb->max, 1, ops, ctx);
        }
        release(lb);
        return;
    }
    mg__idscan_init(&lb->scan);
    mg__idscan_feed(&lb->scan, lb->buf, lb->len);
    mg__idscan_feed(&lb->scan, p, seg);
    release(lb);
}

void mg__linebuf_feed(mg__linebuf_t *lb, const char *p, size_t n, const mg__line_ops_t *ops, void *ctx)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;
        size_t adv = nl ? seg + 1 : n;
        if (lb->overflow) {
            if (!lb->cut_mode)
                mg__idscan_feed(&lb->scan, p, seg);
            lb->dropped += seg;
            if (nl)
                end_overflow(lb, ops, ctx);
        } else if (lb->len == 0 && nl != NULL && seg <= lb->max) {
            deliver(p, seg, 0, ops, ctx); /* whole line inside the read buffer: no copy */
        } else if (lb->len + seg > lb->max || reserve(lb, lb->len + seg) != 0) {
            start_overflow(lb, p, seg, ops, ctx);
            if (nl)
                end_overflow(lb, ops, ctx);
        } else {
            memcpy(lb->buf + lb->len, p, seg);
            lb->len += seg;
            if (nl) {
                size_t len = lb->len;
                lb->len = 0;
                deliver(lb->buf, len, 0, ops, ctx);
                if (lb->cap > SHRINK_ABOVE && lb->len == 0)
                    release(lb);
            }
        }
        p += adv;
        n -= adv;
    }
}

void mg__linebuf_finish(mg__linebuf_t *lb, const mg__line_ops_t *ops, void *ctx)
{
    if (lb->overflow) {
        end_overflow(lb, ops, ctx);
    } else if (lb->len > 0) {
        size_t len = lb->len;
        lb->len = 0;
        deliver(lb->buf, len, 0, ops, ctx);
    }
    release(lb);
}

/* ---- UTF-8 cleanup ---- */

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c >= 0x01 && c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    }
    return len;
}

char *mg__utf8_clean(const char *p, size_t n, size_t max, int *cut)
{
    if (cut != NULL)
        *cut = n > max;
    if (n > max)
        n = max;
    char *out = malloc(n * 3 + 1);
    if (out == NULL)
        return NULL;
    const unsigned char *s = (const unsigned char *)p;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return out;
}
