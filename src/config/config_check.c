/*
 * config_check.c - the config module's pure helpers: problem collector (and the typed readers'
 * sink over it), JSONC pre-pass, and the validators for listen addresses, server names, origins and
 * hosts (message quoting and the nearest-key suggestion are in common/cfgval.c). Nothing here knows the shape
 * of the config file; config.c does. Contracts are in config_int.h. Read next: config_expand.c.
 */
#include "config_int.h"

#include "../common/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- problem collector */

static void push_msg(mg__config_ctx_t *ctx, char *msg)
{
    mg_config_errors_t *e = ctx->errs;
    char **grown = realloc(e->msgs, (e->count + 1) * sizeof *grown);
    if (grown == NULL) {
        free(msg);
        ctx->nomem = 1;
        return;
    }
    e->msgs = grown;
    e->msgs[e->count++] = msg;
}

static void reader_err(void *ctx, const char *msg)
{
    mg__config_errf(ctx, "%s", msg);
}

static int reader_expand(void *ctx, const char *in, const char *where, int lenient, char **out)
{
    return mg__config_expand(ctx, in, where, lenient, out, NULL);
}

void mg__config_ctx_init(mg__config_ctx_t *ctx)
{
    ctx->rd = (mg_cfg_t){ctx, reader_err, reader_expand, mg_cfg_quote, 0, 0};
}

void mg__config_errf(mg__config_ctx_t *ctx, const char *fmt, ...)
{
    if (ctx->errs->count >= MG__CONFIG_MAX_ERRORS) {
        ctx->dropped++;
        return;
    }
    char *body = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0) {
        ctx->nomem = 1;
        return;
    }
    char *msg = NULL;
    n = asprintf(&msg, "%s: %s", ctx->origin, body);
    free(body);
    if (n < 0) {
        ctx->nomem = 1;
        return;
    }
    push_msg(ctx, msg);
}

void mg__config_errs_finish(mg__config_ctx_t *ctx)
{
    if (ctx->dropped == 0) {
        return;
    }
    char *msg = NULL;
    if (asprintf(&msg, "%s: ... and %zu more problems not shown (fix the ones above first)", ctx->origin,
                 ctx->dropped) < 0) {
        ctx->nomem = 1;
        return;
    }
    push_msg(ctx, msg);
}

char *mg__config_strdup(mg__config_ctx_t *ctx, const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        ctx->nomem = 1;
    }
    return d;
}

/* ---------------------------------------------------------------- JSONC */

int mg__config_jsonc_strip(char *t, size_t len)
{
    int line = 1, in_string = 0;
    /* Pass 1: comments become spaces (newlines kept). */
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (c == '\n') {
            line++;
        }
        if (in_string) {
            if (c == '\\' && i + 1 < len) {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '/' && i + 1 < len && t[i + 1] == '/') {
            while (i < len && t[i] != '\n') {
                t[i++] = ' ';
            }
            if (i < len) {
                line++; /* the '\n' that ended the comment */
            }
        } else if (c == '/' && i + 1 < len && t[i + 1] == '*') {
            int start = line;
            t[i] = t[i + 1] = ' ';
            i += 2;
            while (i < len && !(t[i] == '*' && i + 1 < len && t[i + 1] == '/')) {
                if (t[i] == '\n') {
                    line++;
                } else {
                    t[i] = ' ';
                }
                i++;
            }
            if (i >= len) {
                return start;
            }
            t[i] = t[i + 1] = ' ';
            i++;
        }
    }
    /* Pass 2: a trailing comma before '}' or ']' becomes a space. */
    in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (in_string) {
            if (c == '\\' && i + 1 < len) {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == ',') {
            size_t j = i + 1;
            while (j < len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r' || t[j] == '\n')) {
                j++;
            }
            if (j < len && (t[j] == '}' || t[j] == ']')) {
                t[i] = ' ';
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- validators */

static int fail(char *why, size_t whylen, const char *text)
{
    snprintf(why, whylen, "%s", text);
    return -1;
}

/* 1..5 digits, value 1..65535. */
static int port_parse(const char *s, unsigned *out)
{
    unsigned v = 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (!isdigit((unsigned char)s[n]) || n >= 5) {
            return -1;
        }
        v = v * 10 + (unsigned)(s[n] - '0');
    }
    if (n == 0 || v < 1 || v > 65535) {
        return -1;
    }
    *out = v;
    return 0;
}

/* RFC 1123 hostname: labels of [A-Za-z0-9-] 1..63 bytes, no leading/trailing '-', total <= 253. */
static int hostname_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253) {
        return 0;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') {
                return 0;
            }
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)c) && c != '-') {
            return 0;
        }
        if (c == '-' && label == 0) {
            return 0;
        }
        if (++label > 63) {
            return 0;
        }
    }
    return label > 0 && s[n - 1] != '-';
}

static int all_digits_and_dots(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]) && s[i] != '.') {
            return 0;
        }
    }
    return 1;
}

/*
 * Splits "host[:port]" where host is a hostname, IPv4 or [IPv6]. need_port: the port is required.
 * On success host_out (if non-NULL and large enough) gets the host without brackets, *port the port
 * (0 when absent).
 */
static int hostport_check(const char *s, int need_port, char *host_out, size_t hostcap, unsigned *port,
                          char *why, size_t whylen)
{
    const char *host = s, *colon = NULL;
    size_t hlen;
    char addr[64];
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            return fail(why, whylen, "'[' opens an IPv6 address but there is no ']'");
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        if (hlen == 0 || hlen >= sizeof addr) {
            return fail(why, whylen, "the IPv6 address between [ and ] is not valid");
        }
        memcpy(addr, host, hlen);
        addr[hlen] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr, &a6) != 1) {
            return fail(why, whylen, "the IPv6 address between [ and ] is not valid");
        }
        if (close[1] == ':') {
            colon = close + 1;
        } else if (close[1] != '\0') {
            return fail(why, whylen, "only ':port' may follow ']'");
        }
    } else {
        colon = strrchr(s, ':');
        if (colon != NULL && memchr(s, ':', (size_t)(colon - s)) != NULL) {
            return fail(why, whylen, "an IPv6 address must be written in brackets, e.g. [::1]:8080");
        }
        hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
        if (hlen == 0) {
            return fail(why, whylen,
                        "the host is missing (use 127.0.0.1 for this machine only, 0.0.0.0 for "
                        "every IPv4 address)");
        }
        if (all_digits_and_dots(s, hlen)) {
            struct in_addr a4;
            if (hlen >= sizeof addr) {
                return fail(why, whylen, "the IPv4 address is not valid");
            }
            memcpy(addr, s, hlen);
            addr[hlen] = '\0';
            if (inet_pton(AF_INET, addr, &a4) != 1) {
                return fail(why, whylen,
                            "the IPv4 address is not valid (four numbers 0..255 separated by dots)");
            }
        } else if (!hostname_ok(s, hlen)) {
            return fail(why, whylen, "the host is not a valid hostname (letters, digits, '-' and '.')");
        }
    }
    unsigned p = 0;
    if (colon == NULL) {
        if (need_port) {
            return fail(why, whylen, "the port is missing (write host:port, e.g. 127.0.0.1:8080)");
        }
    } else if (port_parse(colon + 1, &p) != 0) {
        return fail(why, whylen, "the port must be a number from 1 to 65535");
    }
    if (host_out != NULL && hostcap > 0) {
        if (hlen >= hostcap) {
            return fail(why, whylen, "the host is too long");
        }
        memcpy(host_out, host, hlen);
        host_out[hlen] = '\0';
    }
    if (port != NULL) {
        *port = p;
    }
    return 0;
}

int mg__config_listen_check(const char *s, char *host, size_t hostcap, unsigned *port, char *why,
                            size_t whylen)
{
    return hostport_check(s, 1, host, hostcap, port, why, whylen);
}

int mg__config_host_check(const char *s, char *why, size_t whylen)
{
    return hostport_check(s, 0, NULL, 0, NULL, why, whylen);
}

int mg__config_origin_check(const char *s, char *why, size_t whylen)
{
    const char *rest;
    if (strncmp(s, "https://", 8) == 0) {
        rest = s + 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        rest = s + 7;
    } else {
        return fail(why, whylen, "an origin starts with http:// or https://, e.g. https://app.example.com");
    }
    if (strchr(rest, '/') != NULL || strchr(rest, '?') != NULL || strchr(rest, '#') != NULL) {
        return fail(why, whylen, "an origin has no path: write scheme://host[:port] with no trailing '/'");
    }
    char inner[128];
    if (hostport_check(rest, 0, NULL, 0, NULL, inner, sizeof inner) != 0) {
        snprintf(why, whylen, "%s", inner);
        return -1;
    }
    return 0;
}

int mg__config_name_ok(const char *name)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        unsigned char c = (unsigned char)name[n];
        if (c >= 0x80 || (!isalnum(c) && c != '_' && c != '.' && c != '-')) {
            return 0;
        }
    }
    return n >= 1 && n <= MG__CONFIG_MAX_NAME;
}

/* ---------------------------------------------------------------- files */

int mg__config_read_file(const char *path, size_t max, char **out, size_t *len, int *err_no)
{
    *out = NULL;
    *len = 0;
    *err_no = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err_no = errno;
        return MG_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err_no = errno;
        close(fd);
        return MG_EIO;
    }
    if (S_ISDIR(st.st_mode)) {
        *err_no = EISDIR;
        close(fd);
        return MG_EIO;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return MG_ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) { /* read max + 1 bytes: that is enough to know it is too big */
                free(buf);
                close(fd);
                return MG_ETOOBIG;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            if (ncap <= cap) {
                ncap = cap + 1;
            }
            char *g = realloc(buf, ncap);
            if (g == NULL) {
                free(buf);
                close(fd);
                return MG_ENOMEM;
            }
            buf = g;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *err_no = errno;
            free(buf);
            close(fd);
            return MG_EIO;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > max) {
            free(buf);
            close(fd);
            return MG_ETOOBIG;
        }
    }
    close(fd);
    char *g = realloc(buf, n + 1);
    if (g == NULL) {
        free(buf);
        return MG_ENOMEM;
    }
    g[n] = '\0';
    *out = g;
    *len = n;
    return 0;
}
