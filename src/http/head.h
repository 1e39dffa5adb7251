/*
 * head.h - message framing and Host rules for an HTTP/1.x request head, checked on the raw bytes
 * before any route runs (request smuggling defence, RFC 9112 §3.2, §5.2, §6.1, §6.3).
 *
 * h2o 2.2 frames a request by its last Transfer-Encoding or its first Content-Length, keeps the last
 * Host, and drops these fields from req->headers; a proxy in front may choose differently, and the
 * bytes after the body h2o saw then run as a second request. So the head as received is read again
 * (http/server.c) and a request is refused (400, connection closed) when it has:
 *   | both Content-Length and Transfer-Encoding | more than one Content-Length (or a list)       |
 *   | more than one Transfer-Encoding           | Transfer-Encoding in an HTTP/1.0 request       |
 *   | more than one Host                        | HTTP/1.1 without Host, or with an empty one    |
 *   | an obs-fold (continuation) line           |                                                |
 * HTTP/1.0 without Host is allowed (origin.h decides what a missing Host may reach).
 * Read next: http/server.c (where this runs), docs/security.md "Request smuggling".
 */
#ifndef MG_HTTP_HEAD_H
#define MG_HTTP_HEAD_H

#include <stddef.h>

/* head[0..len): the request line and header lines (CRLF or bare LF), up to and including the empty
 * line; bytes after it are ignored. http11: the request line said HTTP/1.1 (else 1.0).
 * Returns 0 when the head is unambiguous, or MG_EINVAL with *why set to a static message for the
 * client that names the field, never its value (also when no empty line ends the head). */
int mg_http_head_check(const char *head, size_t len, int http11, const char **why);

#endif
