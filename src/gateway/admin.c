/*
 * admin.c - who may read /metrics and /status, and answering them.
 *
 * With gateway.auth: the same auth phase as /mcp (auth/auth.h: 401 challenge, 429, 503 the same),
 * and then the principal must hold the scope "mcpgate:admin" (403 insufficient_scope otherwise).
 * Without auth: the client's address must be loopback (127.0.0.0/8, ::1, ::ffff:127.x), whatever
 * the listener (403 otherwise), so a gateway bound to 0.0.0.0 with --allow-unauthenticated does not
 * hand its catalog and errors to the network. gateway.metrics.listen moves both routes to a
 * listener of their own (http/server.h routes); the rule is the same there.
 * Read next: status.c (the page), http/server.c (the routes).
 */
#include "gateway_int.h"
#include "../common/log.h"
#include "../obs/metrics.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_SCOPE "mcpgate:admin"

static int peer_is_loopback(h2o_req_t *req)
{
    if (req->conn == NULL || req->conn->callbacks == NULL || req->conn->callbacks->get_peername == NULL)
        return 0;
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (n == 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static int path_is(h2o_req_t *req, const char *p)
{
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return n == strlen(p) && memcmp(req->path.base, p, n) == 0;
}

static void refuse(h2o_req_t *req, const char *why)
{
    char peer[64];
    mg__req_peer(req, peer, sizeof peer);
    mg_log_json(
        MG_LOG_INFO, "admin route refused",
        json_pack("{s:s%,s:s,s:s}", "path", req->path.base, req->path.len, "peer", peer, "reason", why));
    char body[400];
    snprintf(body, sizeof body, "{\"error\":\"forbidden\",\"message\":\"%s\"}\n", why);
    mg__http_send_body(req, 403, "application/json", body, strlen(body), NULL, 0);
}

static void answer(mg_gateway_t *gw, h2o_req_t *req)
{
    if (path_is(req, "/metrics")) {
        size_t len = 0;
        char *text = mg_metrics_render(&len);
        if (text == NULL) {
            mg__http_send_body(req, 500, "text/plain", "out of memory\n", 14, NULL, 0);
            return;
        }
        mg__http_send_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, 0);
        free(text);
        return;
    }
    char csp[400];
    size_t len = 0;
    char *html = mg__status_html(gw, &len, csp, sizeof csp);
    if (html == NULL) {
        mg__http_send_body(req, 500, "text/plain", "status page too large or out of memory\n", 39, NULL, 0);
        return;
    }
    const char *hdrs[] = {"content-security-policy", csp,           "x-content-type-options", "nosniff",
                          "referrer-policy",         "no-referrer", "x-frame-options",        "DENY",
                          "cache-control",           "no-store"};
    mg__http_send_body(req, 200, "text/html; charset=utf-8", html, len, hdrs, 5);
    free(html);
}

static void authed_cb(void *data, h2o_req_t *req, const mg_auth_decision_t *d)
{
    mg_gateway_t *gw = data;
    if (d->err != 0) { /* the auth phase refused: its answer, as on /mcp */
        mg__http_refuse(gw, req, d);
        return;
    }
    const mg_principal_t *p = d->principal;
    if (p == NULL || !mg_principal_has_scope(p, ADMIN_SCOPE)) {
        mg__http_add_header(req, "www-authenticate",
                            "Bearer error=\"insufficient_scope\", scope=\"" ADMIN_SCOPE "\", "
                            "error_description=\"/metrics and /status need the " ADMIN_SCOPE " scope\"");
        refuse(req, "this route needs a token with the scope " ADMIN_SCOPE);
        return;
    }
    answer(gw, req);
}

int mg_gateway_handle_admin(mg_gateway_t *gw, h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        const char *h[] = {"allow", "GET, HEAD"};
        mg__http_send_body(req, 405, "application/json", "{\"error\":\"method not allowed\"}\n", 31, h, 1);
        return 0;
    }
    if (gw->auth != NULL) {
        mg_auth_phase(gw->auth, req, authed_cb, gw); /* a refusal comes back to authed_cb */
        return 0;
    }
    if (!peer_is_loopback(req)) {
        refuse(req, "without gateway.auth, /metrics and /status answer loopback clients only; configure "
                    "gateway.auth (scope " ADMIN_SCOPE ") or scrape from this host");
        return 0;
    }
    answer(gw, req);
    return 0;
}
