/*
 * test_auth.c - the auth module's pure parts (src/auth/): gateway.auth parsing, static tokens,
 * JWT validation against keys generated here (RS256, PS256, ES256, EdDSA) including every refusal
 * the issue lists, scopes, policy rules and globs, the failure rate limiter, URL rules; then the
 * runtime on a loop: discovery and JWKS against a small IdP served here, with every jansson block
 * counted (json_set_alloc_funcs in main) so a leaked document fails without LeakSanitizer too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jose/b64.h>
#include <jose/jwk.h>
#include <jose/jws.h>
#include <openssl/evp.h>
#include <arpa/inet.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_int.h"
#include "common/codec.h"
#include "common/glob.h"
#include "common/err.h"

/* ---------------------------------------------------------------- helpers */

static char errbuf[4096];
static void collect_err(void *ctx, const char *msg)
{
    (void)ctx;
    strncat(errbuf, msg, sizeof errbuf - strlen(errbuf) - 2);
    strcat(errbuf, "\n");
}

static mg_auth_config_t *parse(const char *text)
{
    errbuf[0] = '\0';
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    mg_auth_config_ops_t ops = {NULL, collect_err, NULL};
    mg_auth_config_t *c = mg_auth_config_parse(v, &ops);
    json_decref(v);
    return c;
}

static char *b64(const void *data, size_t len)
{
    size_t n = jose_b64_enc_buf(data, len, NULL, 0);
    char *out = calloc(1, n + 1);
    jose_b64_enc_buf(data, len, out, n);
    return out;
}

/* Compact JWS of payload signed with jwk; hdr is the protected header (borrowed). */
static char *sign(const json_t *hdr, const json_t *payload, const json_t *jwk)
{
    char *ps = json_dumps(payload, JSON_COMPACT);
    json_t *jws = json_pack("{s:o}", "payload", jose_b64_enc(ps, strlen(ps)));
    free(ps);
    json_t *sig = json_pack("{s:O}", "protected", hdr);
    assert_true(jose_jws_sig(NULL, jws, sig, jwk));
    json_decref(sig);
    const char *p = json_string_value(json_object_get(jws, "protected"));
    const char *pl = json_string_value(json_object_get(jws, "payload"));
    const char *s = json_string_value(json_object_get(jws, "signature"));
    size_t n = strlen(p) + strlen(pl) + strlen(s) + 3;
    char *out = malloc(n);
    snprintf(out, n, "%s.%s.%s", p, pl, s);
    json_decref(jws);
    return out;
}

static json_t *gen_key(const char *alg, const char *kid)
{
    json_t *k = json_pack("{s:s}", "alg", alg);
    if (strcmp(alg, "RS256") == 0 || strcmp(alg, "PS256") == 0)
        json_object_set_new(k, "bits", json_integer(2048));
    assert_true(jose_jwk_gen(NULL, k));
    json_object_set_new(k, "kid", json_string(kid));
    return k;
}

static json_t *pub_of(const json_t *k)
{
    json_t *p = json_deep_copy(k);
    assert_true(jose_jwk_pub(NULL, p));
    return p;
}

static json_t *set_of(const json_t *a, const json_t *b)
{
    json_t *keys = json_array();
    if (a)
        json_array_append_new(keys, pub_of(a));
    if (b)
        json_array_append_new(keys, pub_of(b));
    return json_pack("{s:o}", "keys", keys);
}

static const char *const AUDS[] = {"https://mcp.example.com/mcp"};

static mg_jwt_rules_t rules(void)
{
    mg_jwt_rules_t r = {"https://idp.example", AUDS, 1, MG_AUTH_ALG_ALL, 60, 0, (int64_t)time(NULL)};
    return r;
}

static json_t *claims_ok(void)
{
    time_t now = time(NULL);
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "iss", "https://idp.example", "aud",
                     "https://mcp.example.com/mcp", "sub", "alice", "iat", (json_int_t)now, "exp",
                     (json_int_t)now + 600, "scope", "mcp tools");
}

static int validate(const char *tok, const json_t *set, const mg_jwt_rules_t *r, const char **why)
{
    json_t *claims = NULL;
    int rc = mg__jwt_validate(tok, strlen(tok), set, r, &claims, why);
    json_decref(claims);
    return rc;
}

/* ---------------------------------------------------------------- config */

static void test_config_valid(void **state)
{
    mg_auth_config_t *c =
        parse("{\"tokens\": [{\"name\": \"ci\", \"sha256\": "
              "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\", \"tenant\": \"acme\", "
              "\"scopes\": [\"tools\"]}],"
              " \"oauth\": {\"issuer\": \"https://idp.example\", \"audience\": \"https://mcp.example/mcp\","
              " \"required_scopes\": [\"mcp\"], \"max_token_lifetime_s\": 3600, \"algorithms\": [\"RS256\", "
              "\"ES256\"]},"
              " \"rules\": [{\"tenant\": \"acme\", \"allow\": [\"github\", \"fs/read_*\"], \"deny\": "
              "[\"github/delete_*\"]}],"
              " \"failure_limit\": {\"max\": 5, \"window_s\": 10, \"block_s\": 30}}");
    assert_non_null(c);
    assert_string_equal(errbuf, "");
    assert_int_equal(c->ntokens, 1);
    assert_string_equal(c->tokens[0].tenant, "acme");
    assert_int_equal(c->tokens[0].sha256[0], 0x9f);
    assert_string_equal(c->resource, "https://mcp.example/mcp"); /* defaults to the audience */
    assert_int_equal(c->oauth->algorithms, MG_AUTH_ALG_RS256 | MG_AUTH_ALG_ES256);
    assert_int_equal(c->oauth->max_lifetime_s, 3600);
    assert_int_equal(c->nscopes_supported, 1);
    assert_int_equal(c->fail_max, 5);
    mg_auth_config_free(c);
}

static void test_config_refusals(void **state)
{
    struct {
        const char *json, *expect;
    } cases[] = {
        {"{}", "non-empty object"},
        {"{\"tokens\": [{\"name\": \"ci\", \"token\": \"secret-value\"}]}",
         "plaintext tokens are never accepted"},
        {"{\"tokens\": [{\"name\": \"ci\", \"sha256\": \"abc\"}]}", "64 hex digits"},
        {"{\"tokens\": [{\"name\": \"a b\", \"sha256\": "
         "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}]}",
         "1 to 64 characters"},
        {"{\"oauth\": {\"issuer\": \"http://idp.example\", \"audience\": \"https://m/mcp\"}}",
         "must be https"},
        {"{\"oauth\": {\"issuer\": \"https://idp.example\", \"audience\": \"https://m/mcp\", \"algorithms\": "
         "[\"HS256\"]}}",
         "never accepted"},
        {"{\"oauth\": {\"issuer\": \"https://idp.example\", \"audience\": \"https://m/mcp\", \"algorithms\": "
         "[\"none\"]}}",
         "never accepted"},
        {"{\"oauth\": {\"audience\": \"https://m/mcp\"}}", "\"issuer\" is required"},
        {"{\"oauth\": {\"issuer\": \"https://idp.example\"}}", "needs \"audience\" or \"resource\""},
        {"{\"oauth\": {\"issuer\": \"https://idp.example\", \"audience\": \"api://default\"}}",
         "gateway.auth.resource: required"},
        {"{\"tokenz\": []}", "unknown key"},
        {"{\"rules\": [{\"allow\": [\"/x\"]}], \"tokens\": []}", "is not a pattern"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mg_auth_config_t *c = parse(cases[i].json);
        if (c != NULL || strstr(errbuf, cases[i].expect) == NULL)
            fail_msg("case %zu: expected refusal with \"%s\", got: %s", i, cases[i].expect, errbuf);
        /* never echo secrets */
        assert_null(strstr(errbuf, "secret-value"));
    }
    /* loopback http is accepted (tests, sidecars) */
    mg_auth_config_t *c = parse("{\"oauth\": {\"issuer\": \"http://127.0.0.1:9/\", \"audience\": "
                                "\"http://127.0.0.1:8/mcp\"}}");
    assert_non_null(c);
    mg_auth_config_free(c);
}

static void test_url_rules(void **state)
{
    char why[160];
    assert_int_equal(mg_auth_url_check("https://idp.example/x", why, sizeof why), 0);
    assert_int_equal(mg_auth_url_check("http://localhost:8080/x", why, sizeof why), 0);
    assert_int_equal(mg_auth_url_check("http://[::1]:8080/x", why, sizeof why), 0);
    assert_int_not_equal(mg_auth_url_check("http://10.0.0.1/x", why, sizeof why), 0);
    assert_int_not_equal(mg_auth_url_check("http://127.0.0.1.evil.example/", why, sizeof why), 0);
    assert_int_not_equal(mg_auth_url_check("https://user@idp.example/", why, sizeof why), 0);
    assert_int_not_equal(mg_auth_url_check("ftp://idp.example/", why, sizeof why), 0);
    assert_int_not_equal(mg_auth_url_check("idp.example", why, sizeof why), 0);
    assert_true(mg__auth_uri_equal("HTTPS://MCP.example.com/mcp/", "https://mcp.example.com/mcp"));
    assert_false(mg__auth_uri_equal("https://mcp.example.com/MCP", "https://mcp.example.com/mcp"));
    assert_false(mg__auth_uri_equal("https://mcp.example.com/mcp2", "https://mcp.example.com/mcp"));
    assert_true(mg__auth_uri_equal("api://default", "api://default"));
    assert_false(mg__auth_uri_equal("00000000-1111", "00000000-1112"));
}

/* ---------------------------------------------------------------- static tokens */

static void test_static_tokens(void **state)
{
    char hex[65];
    mg_sha256_hex("test", 4, hex);
    assert_string_equal(hex, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    mg_auth_config_t *c =
        parse("{\"tokens\": [{\"name\": \"a\", \"sha256\": "
              "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\", \"tenant\": "
              "\"acme\"}, {\"name\": \"b\", \"sha256\": "
              "\"60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752\"}]}");
    assert_non_null(c);
    const mg_auth_token_config_t *t = mg__auth_token_find(c, "test", 4);
    assert_non_null(t);
    assert_string_equal(t->name, "a");
    t = mg__auth_token_find(c, "test2", 5); /* sha256("test2"), configured in upper case */
    assert_non_null(t);
    assert_string_equal(t->name, "b");
    assert_string_equal(t->tenant, "default");
    assert_null(mg__auth_token_find(c, "test3", 5));
    assert_null(mg__auth_token_find(c, "tes", 3));
    mg_auth_config_free(c);
}

static void test_principals(void **state)
{
    const char *sc[] = {"x"};
    mg_principal_t *a = mg_principal_new("jwt", "https://i", "acme", "alice", NULL, sc, 1);
    mg_principal_t *b = mg_principal_new("jwt", "https://i", "acme", "alice", "client", NULL, 0);
    mg_principal_t *c = mg_principal_new("jwt", "https://i", "acm", "ealice", NULL, NULL, 0);
    mg_principal_t *d = mg_principal_new("token", "https://i", "acme", "alice", NULL, NULL, 0);
    assert_true(mg_principal_same(a, b));
    assert_false(mg_principal_same(a, c)); /* fields are length-prefixed */
    assert_false(mg_principal_same(a, d));
    assert_false(mg_principal_same(a, NULL));
    assert_true(mg_principal_same(NULL, NULL));
    assert_true(mg_principal_has_scope(a, "x"));
    assert_false(mg_principal_has_scope(b, "x"));
    mg_principal_unref(a);
    mg_principal_unref(b);
    mg_principal_unref(c);
    mg_principal_unref(d);
}

/* ---------------------------------------------------------------- JWT */

static void test_jwt_accepts(void **state)
{
    const char *algs[] = {"RS256", "PS256", "ES256"};
    for (size_t i = 0; i < 3; i++) {
        json_t *k = gen_key(algs[i], "k1");
        json_t *set = set_of(k, NULL);
        json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", algs[i], "kid", "k1", "typ", "at+jwt");
        json_t *cl = claims_ok();
        char *tok = sign(hdr, cl, k);
        mg_jwt_rules_t r = rules();
        const char *why = NULL;
        json_t *claims = NULL;
        int rc = mg__jwt_validate(tok, strlen(tok), set, &r, &claims, &why);
        if (rc != 0)
            fail_msg("%s: %s", algs[i], why);
        assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");
        size_t n = 0;
        char **scopes = mg__jwt_scopes(claims, NULL, &n);
        assert_int_equal(n, 2);
        assert_string_equal(scopes[1], "tools");
        for (size_t s = 0; s < n; s++)
            free(scopes[s]);
        free(scopes);
        /* an algorithm not in the configured list is refused */
        r.algorithms = MG_AUTH_ALG_EDDSA;
        assert_int_equal(validate(tok, set, &r, &why), MG_EINVAL);
        json_decref(claims);
        free(tok);
        json_decref(cl);
        json_decref(hdr);
        json_decref(set);
        json_decref(k);
    }
}

static void test_jwt_eddsa(void **state)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(pk);
    unsigned char pub[32];
    size_t publen = sizeof pub;
    assert_int_equal(EVP_PKEY_get_raw_public_key(pk, pub, &publen), 1);
    char *x = b64(pub, publen);
    json_t *set =
        json_pack("{s:[{s:s,s:s,s:s,s:s}]}", "keys", "kty", "OKP", "crv", "Ed25519", "x", x, "kid", "ed");
    json_t *hdr = json_pack("{s:s,s:s}", "alg", "EdDSA", "kid", "ed");
    json_t *cl = claims_ok();
    char *hs = json_dumps(hdr, JSON_COMPACT), *ps = json_dumps(cl, JSON_COMPACT);
    char *h64 = b64(hs, strlen(hs)), *p64 = b64(ps, strlen(ps));
    char input[4096];
    snprintf(input, sizeof input, "%s.%s", h64, p64);
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input)), 1);
    char *s64 = b64(sig, siglen);
    char tok[4096];
    snprintf(tok, sizeof tok, "%s.%s", input, s64);
    mg_jwt_rules_t r = rules();
    const char *why = NULL;
    assert_int_equal(validate(tok, set, &r, &why), 0);
    /* tampered signature */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(validate(tok, set, &r, &why), MG_EINVAL);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    free(x);
    free(hs);
    free(ps);
    free(h64);
    free(p64);
    free(s64);
    json_decref(set);
    json_decref(hdr);
    json_decref(cl);
}

static void expect_refused(const char *tok, const json_t *set, const mg_jwt_rules_t *r, int code,
                           const char *why_part)
{
    const char *why = NULL;
    int rc = validate(tok, set, r, &why);
    if (rc != code || why == NULL || strstr(why, why_part) == NULL)
        fail_msg("expected %d (%s), got %d (%s)", code, why_part, rc, why ? why : "-");
}

static void test_jwt_refusals(void **state)
{
    json_t *k = gen_key("RS256", "k1");
    json_t *other = gen_key("RS256", "k2");
    json_t *set = set_of(k, NULL);
    json_t *hdr = json_pack("{s:s,s:s}", "alg", "RS256", "kid", "k1");
    mg_jwt_rules_t r = rules();
    time_t now = time(NULL);
    char *tok;

#define WITH(claim, value, code, part)                                                                       \
    do {                                                                                                     \
        json_t *cl = claims_ok();                                                                            \
        json_object_set_new(cl, claim, value);                                                               \
        tok = sign(hdr, cl, k);                                                                              \
        expect_refused(tok, set, &r, code, part);                                                            \
        free(tok);                                                                                           \
        json_decref(cl);                                                                                     \
    } while (0)

    WITH("exp", json_integer(now - 120), MG_EINVAL, "expired");
    WITH("nbf", json_integer(now + 600), MG_EINVAL, "not yet valid");
    WITH("iss", json_string("https://evil.example"), MG_EINVAL, "issuer");
    WITH("aud", json_string("https://other.example.com/mcp"), MG_EINVAL, "audience");
    WITH("aud", json_pack("[s,s]", "a", "b"), MG_EINVAL, "audience");
    WITH("iat", json_integer(now + 3600), MG_EINVAL, "future");
    /* skew: expired 30 s ago is still fine with 60 s leeway */
    {
        json_t *cl = claims_ok();
        json_object_set_new(cl, "exp", json_integer(now - 30));
        json_object_set_new(cl, "aud", json_pack("[s,s]", "x", "https://MCP.example.com/mcp/"));
        tok = sign(hdr, cl, k);
        const char *why = NULL;
        assert_int_equal(validate(tok, set, &r, &why), 0);
        free(tok);
        json_decref(cl);
    }
    /* no exp at all */
    {
        json_t *cl = claims_ok();
        json_object_del(cl, "exp");
        tok = sign(hdr, cl, k);
        expect_refused(tok, set, &r, MG_EINVAL, "no expiry");
        free(tok);
        json_decref(cl);
    }
    /* maximum lifetime */
    {
        mg_jwt_rules_t r2 = r;
        r2.max_lifetime_s = 300;
        json_t *cl = claims_ok(); /* 600 s */
        tok = sign(hdr, cl, k);
        expect_refused(tok, set, &r2, MG_EINVAL, "lifetime");
        free(tok);
        json_object_del(cl, "iat");
        tok = sign(hdr, cl, k);
        expect_refused(tok, set, &r2, MG_EINVAL, "iat");
        free(tok);
        json_decref(cl);
    }
    /* unknown kid: signed with another key */
    {
        json_t *h2 = json_pack("{s:s,s:s}", "alg", "RS256", "kid", "k2");
        json_t *cl = claims_ok();
        tok = sign(h2, cl, other);
        expect_refused(tok, set, &r, MG_ENOTFOUND, "unknown key");
        free(tok);
        /* key named by the token itself (jwk / jku / x5u) is never used */
        json_t *h3 = json_pack("{s:s,s:s,s:o,s:s,s:s}", "alg", "RS256", "kid", "k1", "jwk", pub_of(other),
                               "jku", "https://evil.example/jwks", "x5u", "https://evil.example/cert");
        tok = sign(h3, cl, other);
        expect_refused(tok, set, &r, MG_EINVAL, "signature is invalid");
        free(tok);
        json_decref(h3);
        json_decref(h2);
        json_decref(cl);
    }
    /* tampered payload */
    {
        json_t *cl = claims_ok();
        tok = sign(hdr, cl, k);
        json_t *evil = claims_ok();
        json_object_set_new(evil, "sub", json_string("admin"));
        char *es = json_dumps(evil, JSON_COMPACT);
        char *e64 = b64(es, strlen(es));
        char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
        char forged[8192];
        snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, e64, d2);
        expect_refused(forged, set, &r, MG_EINVAL, "signature is invalid");
        free(es);
        free(e64);
        free(tok);
        json_decref(evil);
        json_decref(cl);
    }
    /* alg none */
    {
        json_t *cl = claims_ok();
        char *ps = json_dumps(cl, JSON_COMPACT);
        char *p64 = b64(ps, strlen(ps));
        const char *hn = "{\"alg\":\"none\",\"kid\":\"k1\"}";
        char *h64 = b64(hn, strlen(hn));
        char t1[4096];
        snprintf(t1, sizeof t1, "%s.%s.", h64, p64); /* empty signature */
        expect_refused(t1, set, &r, MG_EINVAL, "malformed");
        snprintf(t1, sizeof t1, "%s.%s.AAAA", h64, p64);
        expect_refused(t1, set, &r, MG_EINVAL, "none and HMAC");
        /* HS256 with the RSA public key as the HMAC secret (algorithm confusion) */
        const char *hh = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
        char *hh64 = b64(hh, strlen(hh));
        json_t *pub = pub_of(k);
        char *pubtext = json_dumps(pub, JSON_COMPACT);
        char input[4096];
        snprintf(input, sizeof input, "%s.%s", hh64, p64);
        unsigned char mac[32];
        unsigned maclen = 0;
        HMAC(EVP_sha256(), pubtext, (int)strlen(pubtext), (unsigned char *)input, strlen(input), mac,
             &maclen);
        char *m64 = b64(mac, maclen);
        snprintf(t1, sizeof t1, "%s.%s", input, m64);
        expect_refused(t1, set, &r, MG_EINVAL, "none and HMAC");
        /* crit and a foreign typ */
        json_t *hc = json_pack("{s:s,s:s,s:[s]}", "alg", "RS256", "kid", "k1", "crit", "exp");
        tok = sign(hc, cl, k);
        expect_refused(tok, set, &r, MG_EINVAL, "crit");
        free(tok);
        json_t *ht = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "kid", "k1", "typ", "dpop+jwt");
        tok = sign(ht, cl, k);
        expect_refused(tok, set, &r, MG_EINVAL, "typ");
        free(tok);
        json_decref(hc);
        json_decref(ht);
        free(m64);
        free(pubtext);
        json_decref(pub);
        free(hh64);
        free(h64);
        free(p64);
        free(ps);
        json_decref(cl);
    }
    /* a key of the wrong type under the right kid (EC key, RS256 header) */
    {
        json_t *ec = gen_key("ES256", "k1");
        json_t *ecset = set_of(ec, NULL);
        json_t *cl = claims_ok();
        tok = sign(hdr, cl, k);
        expect_refused(tok, ecset, &r, MG_EINVAL, "signature is invalid");
        free(tok);
        json_decref(cl);
        json_decref(ecset);
        json_decref(ec);
    }
    /* garbage */
    expect_refused("abc", set, &r, MG_EINVAL, "malformed");
    expect_refused("a.b.c", set, &r, MG_EINVAL, "header");
    expect_refused("a b.c.d", set, &r, MG_EINVAL, "malformed");
    json_decref(hdr);
    json_decref(set);
    json_decref(other);
    json_decref(k);
#undef WITH
}

static void test_jwt_rotation(void **state)
{
    json_t *k1 = gen_key("ES256", "old");
    json_t *k2 = gen_key("ES256", "new");
    json_t *both = set_of(k1, k2);
    json_t *only_new = set_of(k2, NULL);
    json_t *cl = claims_ok();
    json_t *h1 = json_pack("{s:s,s:s}", "alg", "ES256", "kid", "old");
    json_t *h2 = json_pack("{s:s,s:s}", "alg", "ES256", "kid", "new");
    char *t1 = sign(h1, cl, k1), *t2 = sign(h2, cl, k2);
    mg_jwt_rules_t r = rules();
    const char *why;
    assert_int_equal(validate(t1, both, &r, &why), 0);
    assert_int_equal(validate(t2, both, &r, &why), 0);
    assert_int_equal(validate(t1, only_new, &r, &why), MG_ENOTFOUND);
    assert_int_equal(validate(t2, only_new, &r, &why), 0);
    assert_int_equal(validate(t2, NULL, &r, &why), MG_ENOTFOUND);
    free(t1);
    free(t2);
    json_decref(h1);
    json_decref(h2);
    json_decref(cl);
    json_decref(both);
    json_decref(only_new);
    json_decref(k1);
    json_decref(k2);
}

static void test_scopes(void **state)
{
    json_t *c = json_pack("{s:s,s:[s,s],s:s}", "scope", "  a  b ", "scp", "x", "y", "roles", "r1 r2");
    size_t n;
    char **s = mg__jwt_scopes(c, NULL, &n);
    assert_int_equal(n, 2);
    assert_string_equal(s[0], "a");
    assert_string_equal(s[1], "b");
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
    json_object_del(c, "scope");
    s = mg__jwt_scopes(c, NULL, &n); /* Entra: scp */
    assert_int_equal(n, 2);
    assert_string_equal(s[1], "y");
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
    s = mg__jwt_scopes(c, "roles", &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
    json_decref(c);
}

/* ---------------------------------------------------------------- policy */

static void test_glob(void **state)
{
    assert_true(mg_glob_match("*", ""));
    assert_true(mg_glob_match("read_*", "read_file"));
    assert_false(mg_glob_match("read_*", "write_file"));
    assert_true(mg_glob_match("*_file", "read_file"));
    assert_true(mg_glob_match("r?ad*e", "read_file"));
    assert_true(mg_glob_match("file:///pub/*", "file:///pub/a/b"));
    assert_false(mg_glob_match("file:///pub/*", "file:///private/a"));
    assert_false(mg_glob_match("abc", "abcd"));
}

static void test_policy(void **state)
{
    mg_auth_config_t *c = parse("{\"tokens\": [], \"rules\": ["
                                "{\"tenant\": \"acme\", \"allow\": [\"github\", \"fs/read_*\"], \"deny\": "
                                "[\"github/delete_*\"]},"
                                "{\"scope\": \"admin\", \"allow\": [\"*\"]},"
                                "{\"tenant\": \"globex\", \"allow\": [\"fs/file:///pub/*\"]}]}");
    assert_non_null(c);
    const char *admin[] = {"admin"};
    mg_principal_t *acme = mg_principal_new("token", NULL, "acme", "ci", "ci", NULL, 0);
    mg_principal_t *acme_admin = mg_principal_new("token", NULL, "acme", "root", "root", admin, 1);
    mg_principal_t *globex = mg_principal_new("token", NULL, "globex", "x", "x", NULL, 0);
    mg_principal_t *nobody = mg_principal_new("token", NULL, "initech", "y", "y", NULL, 0);
    assert_true(mg_auth_policy_allows(c, acme, "github", "create_issue"));
    assert_false(mg_auth_policy_allows(c, acme, "github", "delete_repo"));
    assert_true(mg_auth_policy_allows(c, acme, "fs", "read_file"));
    assert_false(mg_auth_policy_allows(c, acme, "fs", "write_file"));
    /* deny wins even over a broader allow from another rule */
    assert_false(mg_auth_policy_allows(c, acme_admin, "github", "delete_repo"));
    assert_true(mg_auth_policy_allows(c, acme_admin, "fs", "write_file"));
    assert_true(mg_auth_policy_allows(c, globex, "fs", "file:///pub/readme"));
    assert_false(mg_auth_policy_allows(c, globex, "fs", "file:///etc/passwd"));
    assert_false(mg_auth_policy_allows(c, globex, "github", "create_issue"));
    /* no rule applies: default deny */
    assert_false(mg_auth_policy_allows(c, nobody, "fs", "read_file"));
    assert_false(mg_auth_policy_allows(c, NULL, "fs", "read_file"));
    /* no rules: everything */
    assert_true(mg_auth_policy_allows(NULL, NULL, "fs", "x"));
    /* which servers a principal can see anything of (a reload's list_changed targeting) */
    assert_true(mg_auth_policy_may_see(c, acme, "github"));
    assert_true(mg_auth_policy_may_see(c, acme, "fs")); /* "fs/read_*" allows part of it */
    assert_false(mg_auth_policy_may_see(c, acme, "slack"));
    assert_true(mg_auth_policy_may_see(c, globex, "fs"));
    assert_false(mg_auth_policy_may_see(c, globex, "github"));
    assert_true(mg_auth_policy_may_see(c, acme_admin, "slack")); /* "*" */
    assert_false(mg_auth_policy_may_see(c, nobody, "fs"));
    assert_false(mg_auth_policy_may_see(c, NULL, "fs"));
    assert_true(mg_auth_policy_may_see(NULL, NULL, "fs"));
    assert_true(mg_auth_policy_rule_applies(&c->rules[0], acme));
    assert_false(mg_auth_policy_rule_applies(&c->rules[0], globex));
    assert_false(mg_auth_policy_rule_applies(&c->rules[1], acme));
    assert_true(mg_auth_policy_rule_applies(&c->rules[1], acme_admin));
    mg_auth_config_t *d = parse("{\"tokens\": [], \"rules\": [{\"allow\": [\"*\"], \"deny\": [\"vault/*\", "
                                "\"db/drop_*\"]}]}");
    assert_non_null(d);
    assert_false(mg_auth_policy_may_see(d, acme, "vault")); /* denied as a whole */
    assert_true(mg_auth_policy_may_see(d, acme, "db"));     /* denied in part only */
    mg_auth_config_free(d);
    mg_principal_unref(acme);
    mg_principal_unref(acme_admin);
    mg_principal_unref(globex);
    mg_principal_unref(nobody);
    mg_auth_config_free(c);
}

/* ---------------------------------------------------------------- rate limit */

static void test_rate_limit(void **state)
{
    mg_auth_rate_t r;
    assert_int_equal(mg__rate_init(&r, 64), 0);
    uint64_t t = 1000000;
    for (int i = 0; i < 4; i++)
        assert_int_equal(mg__rate_fail(&r, "10.0.0.1", t + i, 5, 60000, 30000), 0);
    assert_int_equal(mg__rate_blocked(&r, "10.0.0.1", t + 10), 0);
    assert_int_equal(mg__rate_fail(&r, "10.0.0.1", t + 10, 5, 60000, 30000), 1);
    assert_int_equal(mg__rate_blocked(&r, "10.0.0.1", t + 10), 30);
    assert_int_equal(mg__rate_blocked(&r, "10.0.0.2", t + 10), 0);
    assert_int_equal(mg__rate_blocked(&r, "10.0.0.1", t + 30010), 0);
    /* failures spread beyond the window never block */
    for (int i = 0; i < 10; i++)
        assert_int_equal(mg__rate_fail(&r, "10.0.0.3", t + (uint64_t)i * 70000, 2, 60000, 30000), 0);
    /* many addresses: the table stays bounded and keeps the blocked one */
    for (int i = 0; i < 1000; i++) {
        char a[32];
        snprintf(a, sizeof a, "192.168.%d.%d", i / 256, i % 256);
        mg__rate_fail(&r, a, t + 20, 5, 60000, 30000);
    }
    assert_true(r.used <= r.cap);
    mg__rate_fail(&r, "10.0.0.9", t + 30, 1, 60000, 30000);
    assert_true(mg__rate_blocked(&r, "10.0.0.9", t + 40) > 0);
    mg__rate_dispose(&r);
}

/* ---------------------------------------------------------------- runtime on a loop */

static void stop_cb(uv_timer_t *t)
{
    mg_auth_t *a = t->data;
    /* the IdP (a closed port) failed at least once: no keys, a retry is scheduled */
    assert_null(a->keys);
    assert_true(a->failures >= 1);
    assert_false(a->fetching);
    mg_auth_free(a);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_runtime_loop_closes(void **state)
{
    /* Discovery against a closed loopback port fails asynchronously; stop and free mid-backoff,
     * then the loop must close with nothing left (STYLE: clean loop close). */
    mg_auth_config_t *c = parse("{\"oauth\": {\"issuer\": \"http://127.0.0.1:1/realms/x\", \"audience\": "
                                "\"http://127.0.0.1:2/mcp\"}}");
    assert_non_null(c);
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_auth_t *a = NULL;
    assert_int_equal(mg_auth_new(&loop, c, &a), 0);
    mg_auth_start(a);
    assert_true(a->fetching); /* never synchronous: the callback comes from the loop */
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = a;
    uv_timer_start(&t, stop_cb, 500, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    mg_auth_config_free(c);
}

static void test_generations_share_family_and_retire(void **state)
{
    /* A reload's next generation shares the family (request principals, failed-credential table);
     * the old one is retired when its last reference goes, released from a close callback; the loop
     * closes clean after the last generation is freed. */
    mg_auth_config_t *c1 = parse("{\"tokens\": [{\"name\": \"a\", \"sha256\": "
                                 "\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"}]}");
    mg_auth_config_t *c2 = parse("{\"oauth\": {\"issuer\": \"http://127.0.0.1:1/realms/x\", \"audience\": "
                                 "\"http://127.0.0.1:2/mcp\"}}");
    assert_non_null(c1);
    assert_non_null(c2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_auth_t *a = NULL, *b = NULL;
    assert_int_equal(mg_auth_new(&loop, c1, &a), 0);
    assert_int_equal(mg_auth_next(&loop, a, c2, &b), 0);
    assert_ptr_equal(a->family, b->family);
    assert_int_equal(b->family->ngens, 2);
    assert_ptr_equal(b->family->gens, b); /* newest first */
    mg_auth_start(b);
    /* a request still holds the old generation: unref by the gateway does not retire it */
    mg_auth_ref(a);
    mg_auth_unref(a);
    assert_false(a->retired);
    mg_auth_unref(a); /* the request ended */
    assert_true(a->retired);
    assert_ptr_equal(b->family->gens, b);
    assert_null(b->gen_next);
    uv_run(&loop, UV_RUN_NOWAIT); /* a's close callback: released */
    assert_int_equal(b->family->ngens, 1);
    mg_auth_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    mg_auth_config_free(c1);
    mg_auth_config_free(c2);
}

/* ---------------------------------------------------------------- discovery against a local IdP */

/* jansson blocks allocated and not yet freed: main() installs these before any JSON exists. */
static long json_live;
static void *counting_malloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        json_live++;
    return p;
}
static void counting_free(void *p)
{
    if (p != NULL)
        json_live--;
    free(p);
}

/* A one-request-per-connection HTTP/1.0 IdP on the test loop: the OIDC path answers a JSON array
 * (not metadata: discovery falls back to RFC 8414), the RFC 8414 path the metadata, /jwks a key. */
typedef struct idp {
    uv_tcp_t srv;
    int port;
    int metadata_hits, jwks_hits;
} idp_t;

typedef struct idp_conn {
    uv_tcp_t tcp;
    idp_t *idp;
    char buf[2048];
    size_t len;
    uv_write_t wr;
    char *out;
} idp_conn_t;

static void idp_conn_closed_cb(uv_handle_t *h)
{
    idp_conn_t *c = h->data;
    free(c->out);
    free(c);
}

static void idp_written_cb(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->handle, idp_conn_closed_cb);
}

static void idp_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    idp_conn_t *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void idp_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    idp_conn_t *c = s->data;
    if (n < 0 || (n == 0 && c->len == sizeof c->buf - 1)) {
        uv_close((uv_handle_t *)s, idp_conn_closed_cb);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf, "\r\n\r\n") == NULL)
        return;
    uv_read_stop(s);
    char body[1024];
    int port = c->idp->port;
    if (strncmp(c->buf, "GET /.well-known/openid-configuration ", 38) == 0) {
        c->idp->metadata_hits++;
        snprintf(body, sizeof body, "[\"not\", \"metadata\"]");
    } else if (strncmp(c->buf, "GET /.well-known/oauth-authorization-server ", 44) == 0) {
        c->idp->metadata_hits++;
        snprintf(body, sizeof body,
                 "{\"issuer\": \"http://127.0.0.1:%d\", \"jwks_uri\": \"http://127.0.0.1:%d/jwks\", "
                 "\"token_endpoint\": \"http://127.0.0.1:%d/token\", \"response_types_supported\": "
                 "[\"code\"], \"grant_types_supported\": [\"authorization_code\", \"refresh_token\"]}",
                 port, port, port);
    } else if (strncmp(c->buf, "GET /jwks ", 10) == 0) {
        c->idp->jwks_hits++;
        snprintf(body, sizeof body,
                 "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"k1\", \"x\": \"AA\", "
                 "\"y\": \"AA\"}, {\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}");
    } else {
        snprintf(body, sizeof body, "{}");
    }
    size_t cap = strlen(body) + 200;
    c->out = malloc(cap);
    int len = snprintf(c->out, cap,
                       "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       strlen(body), body);
    uv_buf_t out = uv_buf_init(c->out, (unsigned)len);
    if (uv_write(&c->wr, s, &out, 1, idp_written_cb) != 0)
        uv_close((uv_handle_t *)s, idp_conn_closed_cb);
}

static void idp_connection_cb(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    idp_conn_t *c = calloc(1, sizeof *c);
    c->idp = srv->data;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, idp_alloc_cb, idp_read_cb) != 0)
        uv_close((uv_handle_t *)&c->tcp, idp_conn_closed_cb);
}

static void idp_start(uv_loop_t *loop, idp_t *idp)
{
    memset(idp, 0, sizeof *idp);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_init(loop, &idp->srv), 0);
    idp->srv.data = idp;
    assert_int_equal(uv_tcp_bind(&idp->srv, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&idp->srv, 16, idp_connection_cb), 0);
    struct sockaddr_in bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&idp->srv, (struct sockaddr *)&bound, &blen);
    idp->port = ntohs(bound.sin_port);
}

typedef struct discovery {
    mg_auth_t *a;
    idp_t *idp;
    uv_timer_t timer;
    int ticks;
} discovery_t;

static void discovery_tick_cb(uv_timer_t *t)
{
    discovery_t *d = t->data;
    if (d->a->keys == NULL && ++d->ticks < 500) /* up to 5 s */
        return;
    assert_non_null(d->a->keys);     /* the JWKS arrived: discovery went all the way */
    assert_non_null(d->a->metadata); /* the RFC 8414 document, kept for 2025-03-26 clients */
    assert_int_equal(json_array_size(json_object_get(d->a->keys, "keys")), 1); /* secret key dropped */
    mg_auth_free(d->a);
    d->a = NULL;
    uv_close((uv_handle_t *)&d->idp->srv, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_discovery_frees(void **state)
{
    /* Regression: metadata_cb parsed the issuer's metadata twice (json_is_object(m = json_loadb())
     * evaluates its argument twice) and leaked the first copy: LeakSanitizer failed every
     * auth-oauth e2e test. Every jansson block discovery allocates must be gone after free. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    idp_t idp;
    idp_start(&loop, &idp);
    char cfg[300];
    snprintf(cfg, sizeof cfg,
             "{\"oauth\": {\"issuer\": \"http://127.0.0.1:%d\", \"audience\": \"http://127.0.0.1:2/mcp\"}}",
             idp.port);
    mg_auth_config_t *c = parse(cfg);
    assert_non_null(c);
    long before = json_live;
    discovery_t d = {.idp = &idp};
    assert_int_equal(mg_auth_new(&loop, c, &d.a), 0);
    mg_auth_start(d.a);
    uv_timer_init(&loop, &d.timer);
    d.timer.data = &d;
    uv_timer_start(&d.timer, discovery_tick_cb, 10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(idp.metadata_hits, 2); /* the OIDC path (an array), then RFC 8414 */
    assert_int_equal(idp.jwks_hits, 1);
    assert_int_equal(json_live - before, 0);
    mg_auth_config_free(c);
}

/* The WWW-Authenticate value of a refusal, from the decision's parameters (the gateway writes it). */
static void test_challenge_format(void **state)
{
    mg_auth_decision_t d;
    memset(&d, 0, sizeof d);
    char h[2048];
    d.challenge = 1;
    mg_auth_challenge(&d, h, sizeof h); /* no credentials: no error code (RFC 6750 3.1) */
    assert_string_equal(h, "Bearer realm=\"mcpgate\"");
    snprintf(d.error_description, sizeof d.error_description, "%s", "token expired");
    mg_auth_challenge(&d, h, sizeof h); /* a description only goes with an error code */
    assert_string_equal(h, "Bearer realm=\"mcpgate\"");
    d.error = "invalid_token";
    snprintf(d.resource_metadata, sizeof d.resource_metadata, "%s",
             "https://mcp.example/.well-known/oauth-protected-resource/mcp");
    snprintf(d.scope, sizeof d.scope, "%s", "mcp:read mcp:write");
    mg_auth_challenge(&d, h, sizeof h);
    assert_string_equal(h, "Bearer realm=\"mcpgate\", error=\"invalid_token\", error_description=\"token "
                           "expired\", resource_metadata=\"https://mcp.example/.well-known/"
                           "oauth-protected-resource/mcp\", scope=\"mcp:read mcp:write\"");
    char small[30];
    mg_auth_challenge(&d, small, sizeof small); /* cut, still terminated */
    assert_int_equal(strlen(small), sizeof small - 1);
}

int main(void)
{
    json_set_alloc_funcs(counting_malloc, counting_free); /* test_discovery_frees */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_valid),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_url_rules),
        cmocka_unit_test(test_static_tokens),
        cmocka_unit_test(test_principals),
        cmocka_unit_test(test_jwt_accepts),
        cmocka_unit_test(test_jwt_eddsa),
        cmocka_unit_test(test_jwt_refusals),
        cmocka_unit_test(test_jwt_rotation),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_runtime_loop_closes),
        cmocka_unit_test(test_generations_share_family_and_retire),
        cmocka_unit_test(test_discovery_frees),
        cmocka_unit_test(test_challenge_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
