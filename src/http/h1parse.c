/*
 * h1parse.c - HTTP/1.x response head and chunked decoding (h1parse.h). The head is parsed only once
 * its empty line is in the buffer (a scan for CRLFCRLF first), so a head split over reads costs one
 * scan per read and one parse.
 */
#include "h1parse.h"
#include "../common/codec.h"
#include "../common/err.h"

#include <string.h>
#include <strings.h>

#define LINE_MAX_EXT 4096u

/* RFC 9110 tchar: alphanumerics and !#$%&'*+-.^_`|~ */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,  ['0'] = 1, ['1'] = 1, ['2'] = 1,
    ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,  ['9'] = 1, ['A'] = 1, ['B'] = 1,
    ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,  ['I'] = 1, ['J'] = 1, ['K'] = 1,
    ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,  ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,  ['a'] = 1, ['b'] = 1, ['c'] = 1,
    ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,  ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,  ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* 1 when name[0..nl) equals lower (lowercase ASCII) ignoring case. */
static int name_is(const char *name, size_t nl, const char *lower)
{
    return strlen(lower) == nl && strncasecmp(name, lower, nl) == 0;
}

/* 1 when the comma-separated list v[0..vl) holds the token tok (case-insensitive). */
static int list_has(const char *v, size_t vl, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = v, *end = v + vl;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

/* The "timeout=N" parameter of a Keep-Alive value (RFC 2068 19.7.1.1, what servers still send), in
 * seconds; -1 when absent or not a number. */
static long keep_alive_timeout(const char *v, size_t vl)
{
    for (size_t i = 0; i + 8 <= vl; i++) {
        if ((i == 0 || v[i - 1] == ' ' || v[i - 1] == ',' || v[i - 1] == '\t') &&
            strncasecmp(v + i, "timeout=", 8) == 0) {
            long n = 0;
            size_t j = i + 8, d = 0;
            for (; j < vl && v[j] >= '0' && v[j] <= '9' && d < 9; j++, d++)
                n = n * 10 + (v[j] - '0');
            return d > 0 ? n : -1;
        }
    }
    return -1;
}

static long fail(const char **why, const char *text)
{
    *why = text;
    return MG_EIO;
}

long mg_h1_head_parse(const char *buf, size_t len, size_t max, mg_h1_head_t *out, const char **why)
{
    static const char bad_status[] = "the response does not start with an HTTP/1.x status line";
    /* the end of the head: the first CRLFCRLF */
    const char *end = NULL;
    for (const char *p = buf; len >= 4 && p + 4 <= buf + len; p++) {
        p = memchr(p, '\r', (size_t)(buf + len - p));
        if (p == NULL || p + 4 > buf + len)
            break;
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            end = p + 4;
            break;
        }
    }
    if (end == NULL) {
        if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
            return fail(why, bad_status);
        return len >= max ? MG_ETOOBIG : 0;
    }
    if ((size_t)(end - buf) > max)
        return MG_ETOOBIG;
    /* "HTTP/1.x SSS reason\r\n" */
    if (end - buf < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ')
        return fail(why, bad_status);
    const char *s = buf + 9;
    if (s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' ||
        (s[3] != ' ' && s[3] != '\r'))
        return fail(why, "the response's status code is not three digits from 100 to 599");
    mg_h1_head_t h = {.minor = buf[7] - '0',
                      .status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0'),
                      .content_length = -1,
                      .keep_alive_s = -1};
    const char *p = s + 3;
    for (; *p != '\r'; p++) /* the reason phrase: HTAB, SP, VCHAR, obs-text */
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return fail(why, "the response's status line holds a control character");
    if (p[1] != '\n')
        return fail(why, "the response's status line does not end in CRLF");
    p += 2;
    h.lines = p;
    h.lines_len = (size_t)(end - 2 - p);
    int te = 0, cl_seen = 0;
    while (p < end - 2) {
        const char *eol = p;
        while (*eol != '\r')
            eol++;
        if (eol[1] != '\n')
            return fail(why, "a response header line does not end in CRLF");
        const char *c = p;
        while (c < eol && tchar[(unsigned char)*c])
            c++;
        if (c == p || c == eol || *c != ':')
            return fail(why, "a response header line is not a token name, a colon and a value");
        size_t nl = (size_t)(c - p);
        const char *v = c + 1, *ve = eol;
        for (const char *q = v; q < eol; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return fail(why, "a response header value holds a control character");
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (name_is(p, nl, "content-length")) {
            if (vl == 0 || vl > 18)
                return fail(why, "the response's Content-Length is not a number");
            int64_t n = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return fail(why, "the response's Content-Length is not a number");
                n = n * 10 + (v[i] - '0');
            }
            if (cl_seen && n != h.content_length)
                return fail(why, "the response has two Content-Length headers that disagree");
            cl_seen = 1;
            h.content_length = n;
        } else if (name_is(p, nl, "transfer-encoding")) {
            if (te || vl != 7 || strncasecmp(v, "chunked", 7) != 0)
                return fail(why, "the response's Transfer-Encoding is not chunked alone");
            te = 1;
        } else if (name_is(p, nl, "connection")) {
            if (list_has(v, vl, "close"))
                h.close = 1;
        } else if (name_is(p, nl, "keep-alive")) {
            h.keep_alive_s = keep_alive_timeout(v, vl);
        }
        p = eol + 2;
    }
    if (te && cl_seen)
        return fail(why, "the response has both Content-Length and Transfer-Encoding");
    h.chunked = te;
    if (h.minor == 0)
        h.close = 1;
    *out = h;
    return (long)(end - buf);
}

/* ---- chunked ---- */

enum {
    C_SIZE = 0,
    C_EXT,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER_START,
    C_TRAILER,
    C_END_LF,
    C_TRAILER_LF,
    C_DONE
};

void mg_h1_chunks_init(mg_h1_chunks_t *d)
{
    memset(d, 0, sizeof *d);
}

long mg_h1_chunks_next(mg_h1_chunks_t *d, const char *in, size_t len, const char **data, size_t *dlen,
                       const char **why)
{
    size_t i = 0;
    *data = NULL;
    *dlen = 0;
    while (i < len && d->state != C_DONE) {
        char ch = in[i];
        switch (d->state) {
        case C_SIZE: {
            int v = mg_hex_digit(ch);
            if (v >= 0) {
                if (++d->ndig > 15)
                    return fail(why, "a chunk size of the response is too large");
                d->left = d->left * 16 + (uint64_t)v;
                i++;
                break;
            }
            if (d->ndig == 0)
                return fail(why, "a chunk of the response does not start with its size in hex");
            if (ch == ';' || ch == ' ' || ch == '\t') {
                d->state = C_EXT;
                d->linelen = 0;
            } else if (ch == '\r') {
                d->state = C_SIZE_LF;
            } else {
                return fail(why, "a chunk size line of the response is malformed");
            }
            i++;
            break;
        }
        case C_EXT: /* chunk extensions: ignored, bounded */
            if (ch == '\r')
                d->state = C_SIZE_LF;
            else if (((unsigned char)ch < 0x20 && ch != '\t') || ++d->linelen > LINE_MAX_EXT)
                return fail(why, "a chunk extension of the response is malformed or too long");
            i++;
            break;
        case C_SIZE_LF:
            if (ch != '\n')
                return fail(why, "a chunk size line of the response does not end in CRLF");
            i++;
            d->ndig = 0;
            d->state = d->left == 0 ? C_TRAILER_START : C_DATA;
            break;
        case C_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > d->left)
                n = (size_t)d->left;
            *data = in + i;
            *dlen = n;
            d->left -= n;
            i += n;
            if (d->left == 0)
                d->state = C_DATA_CR;
            return (long)i;
        }
        case C_DATA_CR:
            if (ch != '\r')
                return fail(why, "a chunk of the response is longer than its size");
            d->state = C_DATA_LF;
            i++;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                return fail(why, "a chunk of the response does not end in CRLF");
            d->state = C_SIZE;
            i++;
            break;
        case C_TRAILER_START:
            if (ch == '\r') {
                d->state = C_END_LF;
            } else {
                d->state = C_TRAILER;
                d->linelen = 0;
                continue;
            }
            i++;
            break;
        case C_TRAILER: /* trailer fields: ignored, bounded */
            if (ch == '\r')
                d->state = C_TRAILER_LF;
            else if (((unsigned char)ch < 0x20 && ch != '\t') || ++d->linelen > LINE_MAX_EXT)
                return fail(why, "a trailer of the response is malformed or too long");
            i++;
            break;
        case C_TRAILER_LF:
            if (ch != '\n')
                return fail(why, "a trailer of the response does not end in CRLF");
            d->state = C_TRAILER_START;
            i++;
            break;
        case C_END_LF:
            if (ch != '\n')
                return fail(why, "the last chunk of the response does not end in CRLF");
            d->state = C_DONE;
            d->done = 1;
            i++;
            break;
        }
    }
    return (long)i;
}
