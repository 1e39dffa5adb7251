/*
 * instant.c - build/mcpgate-instant: a stdio MCP server that answers as fast as a process can, to
 * measure the gateway's own ceiling (mcpgate fronting an upstream that costs next to nothing).
 *
 * Contract: newline-delimited JSON-RPC on stdin/stdout, blocking reads, one write per batch of
 * lines read. No JSON parser: a scanner finds the top-level "id" and "method" (string and depth
 * aware) and, for tools/call, the first "message" string, copied verbatim (it is already JSON).
 * Answers initialize (tools capability only), tools/list (one tool: echo {message}), tools/call
 * echo ({"content":[{"type":"text","text":<message>}]}), ping ({}); notifications are ignored;
 * any other request gets -32601. Not a conformant server: a benchmark fixture only. EOF: exit 0.
 *     {"mcpServers": {"i": {"command": "build/mcpgate-instant"}}}
 * Read next: bench/profile.sh (which uses it for the "gateway -> instant" ceiling).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct span {
    const char *p;
    size_t n;
} span_t;

/* Returns the raw value of member `key` of the outermost object (depth 1), or the first member
 * named `key` at any depth when anywhere != 0. A string value's span includes its quotes. */
static span_t find_member(const char *s, size_t n, const char *key, int anywhere)
{
    span_t none = {NULL, 0};
    size_t klen = strlen(key);
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '"') {
            size_t start = i + 1, j = start;
            while (j < n && s[j] != '"')
                j += s[j] == '\\' ? 2 : 1;
            size_t k = j + 1;
            while (k < n && (s[k] == ' ' || s[k] == '\t'))
                k++;
            int is_key = k < n && s[k] == ':';
            if (is_key && (depth == 1 || anywhere) && j - start == klen &&
                memcmp(s + start, key, klen) == 0) {
                k++;
                while (k < n && (s[k] == ' ' || s[k] == '\t'))
                    k++;
                size_t v = k;
                if (k < n && s[k] == '"') {
                    k++;
                    while (k < n && s[k] != '"')
                        k += s[k] == '\\' ? 2 : 1;
                    k++;
                } else {
                    while (k < n && s[k] != ',' && s[k] != '}' && s[k] != ']' && s[k] != ' ')
                        k++;
                }
                span_t r = {s + v, (k < n ? k : n) - v};
                return r;
            }
            i = j;
        }
    }
    return none;
}

static char *out;
static size_t out_len, out_cap;

static void put(const char *p, size_t n)
{
    if (out_len + n > out_cap) {
        while (out_len + n > out_cap)
            out_cap = out_cap ? out_cap * 2 : 65536;
        out = realloc(out, out_cap);
        if (out == NULL)
            exit(1);
    }
    memcpy(out + out_len, p, n);
    out_len += n;
}

#define PUTS(s) put(s, sizeof(s) - 1)

static void answer(span_t id, const char *result_head, span_t mid, const char *result_tail)
{
    PUTS("{\"jsonrpc\":\"2.0\",\"id\":");
    put(id.p, id.n);
    put(result_head, strlen(result_head));
    if (mid.p != NULL)
        put(mid.p, mid.n);
    put(result_tail, strlen(result_tail));
    PUTS("\n");
}

static void on_line(const char *s, size_t n)
{
    span_t id = find_member(s, n, "id", 0);
    span_t method = find_member(s, n, "method", 0);
    span_t none = {NULL, 0};
    if (id.p == NULL || method.p == NULL)
        return; /* a notification or a response */
#define IS(m) (method.n == sizeof("\"" m "\"") - 1 && memcmp(method.p, "\"" m "\"", method.n) == 0)
    if (IS("tools/call")) {
        span_t msg = find_member(s, n, "message", 1);
        if (msg.p == NULL || msg.p[0] != '"') {
            span_t empty = {"\"\"", 2};
            msg = empty;
        }
        answer(id, ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":", msg, "}]}}");
    } else if (IS("initialize")) {
        answer(id,
               ",\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"tools\":{}},"
               "\"serverInfo\":{\"name\":\"instant\",\"version\":\"0.1.0\"}}}",
               none, "");
    } else if (IS("tools/list")) {
        answer(id,
               ",\"result\":{\"tools\":[{\"name\":\"echo\",\"description\":\"Echoes message\","
               "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"}},"
               "\"required\":[\"message\"]}}]}}",
               none, "");
    } else if (IS("ping")) {
        answer(id, ",\"result\":{}}", none, "");
    } else {
        answer(id, ",\"error\":{\"code\":-32601,\"message\":\"method not found\"}}", none, "");
    }
#undef IS
}

int main(void)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return 1;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (buf == NULL)
                return 1;
        }
        ssize_t r = read(0, buf + len, cap - len);
        if (r <= 0)
            return 0;
        len += (size_t)r;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', len - start);
            if (nl == NULL)
                break;
            on_line(buf + start, (size_t)(nl - (buf + start)));
            start = (size_t)(nl - buf) + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        for (size_t off = 0; off < out_len;) {
            ssize_t w = write(1, out + off, out_len - off);
            if (w <= 0)
                return 1;
            off += (size_t)w;
        }
        out_len = 0;
    }
}
