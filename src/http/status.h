/*
 * status.h - HTTP status codes the gateway sends and their reason phrases (RFC 9110 §15).
 *
 * Every place that sets h2o's req->res.reason takes it from mg_http_reason(), so a status line
 * reads "HTTP/1.1 409 Conflict", never a made-up word (clients print the phrase to users).
 * Read next: http/server.c (the simple answers), gateway/era_legacy.c (the /mcp answers).
 */
#ifndef MG_HTTP_STATUS_H
#define MG_HTTP_STATUS_H

/* The standard reason phrase of status (static string). A code without one (not in RFC 9110)
 * gets the phrase of its class ("Client Error" for 4xx...), never NULL. */
const char *mg_http_reason(int status);

#endif
