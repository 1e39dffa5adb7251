/*
 * lazylib.c - libcurl and libjose, loaded on first use instead of at exec.
 *
 * Why: only some configurations use them (libcurl: the outbound HTTP client, http/client.c, for
 * gateway.auth's JWKS, metadata and introspection and for shared sessions' replica forwarding;
 * libjose: auth/jwt.c's signatures), but linked normally they cost every start: libcurl brings ~30 shared
 * libraries (GnuTLS, Kerberos, LDAP, SSH...) to map and relocate, and libjose's constructor seeds OpenSSL's
 * DRBG; together ~5 ms of the ~8 ms between exec and main() on the benchmark machine
 * (bench/results/2026-11-21-perf.md). mgcore therefore does not link them: this file defines the functions
 * the gateway calls, with the libraries' own names and prototypes, and each resolves the real one with
 * dlopen()/dlsym() on its first call (the library's SONAME, MG_CURL_SONAME / MG_JOSE_SONAME from CMake).
 *
 * Contract: same behaviour as the library when it loads. When it cannot be loaded, each function
 * fails the way the library reports failure (curl_*_init: NULL; CURLcode/CURLMcode functions:
 * CURLE_FAILED_INIT / CURLM_INTERNAL_ERROR; jose_jws_ver: false) and
 * one error line says which library and why. Variadic setopt/getinfo forward their one argument
 * by the option's type range, as the libraries read it. Single loop thread (no locking).
 * Adding a curl or jose call elsewhere: add its forwarder here, or the link fails (on purpose).
 * Read next: http/client.c, auth/jwt.c.
 */
#define CURL_DISABLE_TYPECHECK 1 /* the type-checking setopt macros would rename the definitions */
#include <curl/curl.h>
#include <jose/jws.h>

#include "log.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>

#ifndef MG_CURL_SONAME
#define MG_CURL_SONAME "libcurl.so.4"
#endif
#ifndef MG_JOSE_SONAME
#define MG_JOSE_SONAME "libjose.so.0"
#endif

typedef struct lazy_lib {
    const char *soname;
    void *handle;
    int failed; /* dlopen failed once: do not retry (and log) on every call */
} lazy_lib_t;

static lazy_lib_t curl_lib = {MG_CURL_SONAME, NULL, 0};
static lazy_lib_t jose_lib = {MG_JOSE_SONAME, NULL, 0};

/* The address of `name` in lib, or NULL (logged once per library). */
static void *sym(lazy_lib_t *lib, const char *name)
{
    if (lib->handle == NULL && !lib->failed) {
        lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        if (lib->handle == NULL) {
            lib->failed = 1;
            const char *e = dlerror();
            mg_log_json(MG_LOG_ERROR,
                        "cannot load a library needed by gateway.auth or shared sessions; install it "
                        "(scripts/install-deps.sh)",
                        json_pack("{s:s,s:s}", "library", lib->soname, "error", e ? e : "?"));
        }
    }
    if (lib->handle == NULL)
        return NULL;
    void *p = dlsym(lib->handle, name);
    if (p == NULL)
        mg_log_json(MG_LOG_ERROR, "a library needed by gateway.auth or shared sessions lacks a function",
                    json_pack("{s:s,s:s}", "library", lib->soname, "function", name));
    return p;
}

/* Declares `fn`, the real function of type `type`, resolved once; runs `fail` when unavailable. */
#define REAL(lib, type, name, fail)                                                                          \
    static __typeof__(type) fn;                                                                              \
    if (fn == NULL && (fn = (type)sym(&lib, name)) == NULL) {                                                \
        fail;                                                                                                \
    }

/* ---- libcurl ---- */

CURLcode curl_global_init(long flags)
{
    REAL(curl_lib, CURLcode(*)(long), "curl_global_init", return CURLE_FAILED_INIT);
    return fn(flags);
}

CURL *curl_easy_init(void)
{
    REAL(curl_lib, CURL * (*)(void), "curl_easy_init", return NULL);
    return fn();
}

void curl_easy_cleanup(CURL *h)
{
    REAL(curl_lib, void (*)(CURL *), "curl_easy_cleanup", return );
    fn(h);
}

void curl_easy_reset(CURL *h)
{
    REAL(curl_lib, void (*)(CURL *), "curl_easy_reset", return );
    fn(h);
}

/* One argument after the option, typed by the option's range (curl.h: CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *h, CURLoption option, ...)
{
    REAL(curl_lib, CURLcode(*)(CURL *, CURLoption, ...), "curl_easy_setopt", return CURLE_FAILED_INIT);
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT)
        rc = fn(h, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_OFF_T || option >= CURLOPTTYPE_BLOB)
        rc = fn(h, option, va_arg(ap, void *)); /* object, function and blob pointers */
    else
        rc = fn(h, option, va_arg(ap, curl_off_t));
    va_end(ap);
    return rc;
}

/* One argument after the info: always a pointer to the result. */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    REAL(curl_lib, CURLcode(*)(CURL *, CURLINFO, ...), "curl_easy_getinfo", return CURLE_FAILED_INIT);
    va_list ap;
    va_start(ap, info);
    CURLcode rc = fn(h, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

const char *curl_easy_strerror(CURLcode code)
{
    REAL(curl_lib, const char *(*)(CURLcode), "curl_easy_strerror", return "libcurl could not be loaded");
    return fn(code);
}

char *curl_easy_escape(CURL *h, const char *s, int len)
{
    REAL(curl_lib, char *(*)(CURL *, const char *, int), "curl_easy_escape", return NULL);
    return fn(h, s, len);
}

void curl_free(void *p)
{
    REAL(curl_lib, void (*)(void *), "curl_free", return );
    fn(p);
}

CURLU *curl_url(void)
{
    REAL(curl_lib, CURLU * (*)(void), "curl_url", return NULL);
    return fn();
}

void curl_url_cleanup(CURLU *u)
{
    REAL(curl_lib, void (*)(CURLU *), "curl_url_cleanup", return );
    fn(u);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
    REAL(curl_lib, CURLUcode(*)(CURLU *, CURLUPart, const char *, unsigned int), "curl_url_set",
         return CURLUE_OUT_OF_MEMORY);
    return fn(u, what, part, flags);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *s)
{
    REAL(curl_lib, struct curl_slist * (*)(struct curl_slist *, const char *), "curl_slist_append",
         return NULL);
    return fn(list, s);
}

void curl_slist_free_all(struct curl_slist *list)
{
    REAL(curl_lib, void (*)(struct curl_slist *), "curl_slist_free_all", return );
    fn(list);
}

CURLM *curl_multi_init(void)
{
    REAL(curl_lib, CURLM * (*)(void), "curl_multi_init", return NULL);
    return fn();
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
    REAL(curl_lib, CURLMcode(*)(CURLM *), "curl_multi_cleanup", return CURLM_INTERNAL_ERROR);
    return fn(m);
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *h)
{
    REAL(curl_lib, CURLMcode(*)(CURLM *, CURL *), "curl_multi_add_handle", return CURLM_INTERNAL_ERROR);
    return fn(m, h);
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h)
{
    REAL(curl_lib, CURLMcode(*)(CURLM *, CURL *), "curl_multi_remove_handle", return CURLM_INTERNAL_ERROR);
    return fn(m, h);
}

CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p)
{
    REAL(curl_lib, CURLMcode(*)(CURLM *, curl_socket_t, void *), "curl_multi_assign",
         return CURLM_INTERNAL_ERROR);
    return fn(m, s, p);
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    REAL(curl_lib, CURLMsg * (*)(CURLM *, int *), "curl_multi_info_read", return NULL);
    return fn(m, left);
}

CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev_bitmask, int *running)
{
    REAL(curl_lib, CURLMcode(*)(CURLM *, curl_socket_t, int, int *), "curl_multi_socket_action",
         return CURLM_INTERNAL_ERROR);
    return fn(m, s, ev_bitmask, running);
}

/* Same option ranges as curl_easy_setopt (multi.h: CURLMOPT_* use CURLOPTTYPE_*). */
CURLMcode curl_multi_setopt(CURLM *m, CURLMoption option, ...)
{
    REAL(curl_lib, CURLMcode(*)(CURLM *, CURLMoption, ...), "curl_multi_setopt", return CURLM_INTERNAL_ERROR);
    va_list ap;
    va_start(ap, option);
    CURLMcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT)
        rc = fn(m, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_OFF_T || option >= CURLOPTTYPE_BLOB)
        rc = fn(m, option, va_arg(ap, void *));
    else
        rc = fn(m, option, va_arg(ap, curl_off_t));
    va_end(ap);
    return rc;
}

/* ---- libjose ---- */

bool jose_jws_ver(jose_cfg_t *cfg, const json_t *jws, const json_t *sig, const json_t *jwk, bool all)
{
    REAL(jose_lib, bool (*)(jose_cfg_t *, const json_t *, const json_t *, const json_t *, bool),
         "jose_jws_ver", return false);
    return fn(cfg, jws, sig, jwk, all);
}
