/*
 * status.c - reason phrases (status.h). Unit-tested in test/unit/test_http.c.
 */
#include "status.h"

/* X(code, phrase): every final status of RFC 9110 §15 (and 429 from RFC 6585). */
#define MG_HTTP_STATUS_MAP(X)                                                                                \
    X(100, "Continue")                                                                                       \
    X(101, "Switching Protocols")                                                                            \
    X(200, "OK")                                                                                             \
    X(201, "Created")                                                                                        \
    X(202, "Accepted")                                                                                       \
    X(203, "Non-Authoritative Information")                                                                  \
    X(204, "No Content")                                                                                     \
    X(205, "Reset Content")                                                                                  \
    X(206, "Partial Content")                                                                                \
    X(300, "Multiple Choices")                                                                               \
    X(301, "Moved Permanently")                                                                              \
    X(302, "Found")                                                                                          \
    X(303, "See Other")                                                                                      \
    X(304, "Not Modified")                                                                                   \
    X(307, "Temporary Redirect")                                                                             \
    X(308, "Permanent Redirect")                                                                             \
    X(400, "Bad Request")                                                                                    \
    X(401, "Unauthorized")                                                                                   \
    X(402, "Payment Required")                                                                               \
    X(403, "Forbidden")                                                                                      \
    X(404, "Not Found")                                                                                      \
    X(405, "Method Not Allowed")                                                                             \
    X(406, "Not Acceptable")                                                                                 \
    X(407, "Proxy Authentication Required")                                                                  \
    X(408, "Request Timeout")                                                                                \
    X(409, "Conflict")                                                                                       \
    X(410, "Gone")                                                                                           \
    X(411, "Length Required")                                                                                \
    X(412, "Precondition Failed")                                                                            \
    X(413, "Payload Too Large")                                                                              \
    X(414, "URI Too Long")                                                                                   \
    X(415, "Unsupported Media Type")                                                                         \
    X(416, "Range Not Satisfiable")                                                                          \
    X(417, "Expectation Failed")                                                                             \
    X(421, "Misdirected Request")                                                                            \
    X(422, "Unprocessable Content")                                                                          \
    X(426, "Upgrade Required")                                                                               \
    X(428, "Precondition Required")                                                                          \
    X(429, "Too Many Requests")                                                                              \
    X(431, "Request Header Fields Too Large")                                                                \
    X(500, "Internal Server Error")                                                                          \
    X(501, "Not Implemented")                                                                                \
    X(502, "Bad Gateway")                                                                                    \
    X(503, "Service Unavailable")                                                                            \
    X(504, "Gateway Timeout")                                                                                \
    X(505, "HTTP Version Not Supported")

const char *mg_http_reason(int status)
{
    switch (status) {
#define X(code, phrase)                                                                                      \
    case code:                                                                                               \
        return phrase;
        MG_HTTP_STATUS_MAP(X)
#undef X
    default:
        break;
    }
    switch (status / 100) {
    case 1:
        return "Informational";
    case 2:
        return "Success";
    case 3:
        return "Redirection";
    case 4:
        return "Client Error";
    default:
        return "Server Error";
    }
}
