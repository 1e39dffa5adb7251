/*
 * jwt.c - validation of a JWT access token (JWS compact serialization) against a JWK set.
 * Pure and synchronous: no I/O, the caller supplies the keys and the clock.
 *
 * Checks, in order (each failure names its check in *why; the token is never echoed):
 *   shape      three base64url parts, at most MG_AUTH_MAX_TOKEN bytes
 *   header     a JSON object; `alg` one of the configured asymmetric algorithms (never `none`,
 *              never HS*); no `crit`; `typ` absent, JWT or at+jwt; jku/x5u/jwk/x5c are ignored
 *   key        by `kid` from the configured set only; kty/crv must fit `alg`, `use` sig, key `alg`
 *              equal; RSA keys at least 2048 bits. Unknown kid -> MG_ENOTFOUND (refresh may help)
 *   signature  libjose (RSA, RSA-PSS, ECDSA), OpenSSL for EdDSA (Ed25519; libjose 11 has none)
 *   claims     a JSON object without duplicate keys; iss exact; aud (string or array) contains a
 *              configured audience (URIs compared canonically); exp required, exp/nbf/iat with
 *              the skew; exp - iat <= max lifetime when one is configured (iat then required)
 * Read next: jwks.c (where keys come from), auth.c (what happens with the claims).
 */
#include "auth_int.h"
#include "../common/codec.h"
#include "../common/err.h"

#include <jose/jws.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int mg__jwt_shaped(const char *t, size_t len)
{
    if (len < 5 || len > MG_AUTH_MAX_TOKEN)
        return 0;
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.')
            dots++;
        else if (strchr(b64url_chars, t[i]) == NULL || t[i] == '\0')
            return 0;
    }
    return dots == 2 && t[0] != '.';
}

/* Decodes base64url [s, s+n) into a NEW NUL-terminated buffer. */
static unsigned char *b64dec(const char *s, size_t n, size_t *outlen)
{
    size_t cap = n * 3 / 4 + 4;
    unsigned char *o = malloc(cap);
    if (o == NULL)
        return NULL;
    long r = mg_base64_decode(s, n, o, cap - 1, MG_B64_URL);
    if (r < 0) {
        free(o);
        return NULL;
    }
    o[r] = '\0';
    *outlen = (size_t)r;
    return o;
}

static json_t *b64json(const char *s, size_t n)
{
    size_t len = 0;
    unsigned char *raw = b64dec(s, n, &len);
    if (raw == NULL)
        return NULL;
    json_t *j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *key_str(const json_t *k, const char *name)
{
    return json_string_value(json_object_get(k, name));
}

/* Does key k fit algorithm alg? */
static int key_fits(const json_t *k, const char *alg)
{
    const char *kty = key_str(k, "kty");
    const char *crv = key_str(k, "crv");
    const char *use = key_str(k, "use");
    const char *kalg = key_str(k, "alg");
    if (kty == NULL)
        return 0;
    if (use != NULL && strcmp(use, "sig") != 0)
        return 0;
    if (kalg != NULL && strcmp(kalg, alg) != 0)
        return 0;
    json_t *ops = json_object_get(k, "key_ops");
    if (ops != NULL) {
        int ok = 0;
        size_t i;
        json_t *op;
        json_array_foreach(ops, i, op) ok |=
            json_is_string(op) && strcmp(json_string_value(op), "verify") == 0;
        if (!ok)
            return 0;
    }
    if (alg[0] == 'R' || alg[0] == 'P') {
        if (strcmp(kty, "RSA") != 0)
            return 0;
        const char *n = key_str(k, "n");
        return n != NULL && strlen(n) >= 342; /* 2048 bits = 256 bytes = 342 base64url chars */
    }
    if (alg[0] == 'E' && alg[1] == 'S') {
        const char *want = strcmp(alg, "ES256") == 0   ? "P-256"
                           : strcmp(alg, "ES384") == 0 ? "P-384"
                                                       : "P-521";
        return strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, want) == 0;
    }
    if (strcmp(alg, "EdDSA") == 0)
        return strcmp(kty, "OKP") == 0 && crv != NULL && strcmp(crv, "Ed25519") == 0;
    return 0;
}

static int verify_eddsa(const json_t *k, const char *signing_input, size_t silen, const char *sig_b64,
                        size_t siglen_b64)
{
    const char *x = key_str(k, "x");
    if (x == NULL)
        return 0;
    size_t xl = 0, sl = 0;
    unsigned char *pub = b64dec(x, strlen(x), &xl);
    unsigned char *sig = b64dec(sig_b64, siglen_b64, &sl);
    int ok = 0;
    if (pub != NULL && sig != NULL && xl == 32 && sl == 64) {
        EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, xl);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (pk != NULL && md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1)
            ok = EVP_DigestVerify(md, sig, sl, (const unsigned char *)signing_input, silen) == 1;
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(pk);
    }
    free(pub);
    free(sig);
    return ok;
}

static int verify_jose(const json_t *k, const char *t, size_t p0, size_t p1, size_t p2, size_t len)
{
    json_t *jws = json_pack("{s:s%,s:s%,s:s%}", "protected", t, p0, "payload", t + p0 + 1, p1, "signature",
                            t + p0 + p1 + 2, p2);
    (void)len;
    if (jws == NULL)
        return 0;
    int ok = jose_jws_ver(NULL, jws, NULL, k, false);
    json_decref(jws);
    return ok;
}

static int num(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return 1;
}

int mg__auth_uri_equal(const char *a, const char *b)
{
    const char *sa = strstr(a, "://"), *sb = strstr(b, "://");
    if (sa == NULL || sb == NULL)
        return strcmp(a, b) == 0;
    size_t la = strlen(a), lb = strlen(b);
    if (la > (size_t)(sa - a) + 3 && a[la - 1] == '/')
        la--;
    if (lb > (size_t)(sb - b) + 3 && b[lb - 1] == '/')
        lb--;
    if (la != lb)
        return 0;
    /* scheme://authority compared without case, the rest exactly */
    size_t auth_end = (size_t)(sa - a) + 3 + strcspn(sa + 3, "/?#");
    if (auth_end > la)
        auth_end = la;
    return strncasecmp(a, b, auth_end) == 0 && memcmp(a + auth_end, b + auth_end, la - auth_end) == 0;
}

static int aud_ok(const json_t *aud, const mg_jwt_rules_t *r)
{
    if (json_is_string(aud)) {
        for (size_t i = 0; i < r->naudiences; i++)
            if (mg__auth_uri_equal(json_string_value(aud), r->audiences[i]))
                return 1;
        return 0;
    }
    if (json_is_array(aud)) {
        size_t k;
        json_t *v;
        json_array_foreach(aud, k, v) if (aud_ok(v, r) && json_is_string(v)) return 1;
    }
    return 0;
}

int mg__jwt_validate(const char *t, size_t len, const json_t *jwks, const mg_jwt_rules_t *r, json_t **claims,
                     const char **why)
{
    *claims = NULL;
    if (!mg__jwt_shaped(t, len)) {
        *why = "malformed token (not a JWT)";
        return MG_EINVAL;
    }
    size_t p0 = strcspn(t, ".");
    size_t p1 = strcspn(t + p0 + 1, ".");
    size_t p2 = len - p0 - p1 - 2;
    if (p0 == 0 || p1 == 0 || p2 == 0) {
        *why = "malformed token (empty part)";
        return MG_EINVAL;
    }
    json_t *hdr = b64json(t, p0);
    if (hdr == NULL) {
        *why = "malformed token header";
        return MG_EINVAL;
    }
    const char *alg = key_str(hdr, "alg");
    const char *typ = key_str(hdr, "typ");
    const char *kid = key_str(hdr, "kid");
    int rc = MG_EINVAL;
    json_t *payload = NULL;
    unsigned bit = mg_auth_alg_bit(alg);
    if (alg == NULL || bit == 0) {
        *why = alg != NULL && (strcasecmp(alg, "none") == 0 || strncmp(alg, "HS", 2) == 0)
                   ? "token algorithm refused (none and HMAC are never accepted)"
                   : "token algorithm not supported";
        goto out;
    }
    if ((r->algorithms & bit) == 0) {
        *why = "token algorithm not allowed by gateway.auth.oauth.algorithms";
        goto out;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        *why = "token header has critical extensions (crit) this gateway does not understand";
        goto out;
    }
    if (json_object_get(hdr, "kid") != NULL && kid == NULL) {
        *why = "token header kid is not a string";
        goto out;
    }
    if (typ != NULL && strcasecmp(typ, "JWT") != 0 && strcasecmp(typ, "at+jwt") != 0 &&
        strcasecmp(typ, "application/at+jwt") != 0 && strcasecmp(typ, "application/jwt") != 0) {
        *why = "token type (typ) is not an access token";
        goto out;
    }
    /* Key selection: only keys from the configured set, never from the token (jku/x5u/jwk/x5c). */
    json_t *keys = json_object_get(jwks, "keys");
    int named = 0, verified = 0;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kkid = key_str(k, "kid");
        if (kid != NULL && (kkid == NULL || strcmp(kkid, kid) != 0))
            continue;
        named++;
        if (!key_fits(k, alg))
            continue;
        if (strcmp(alg, "EdDSA") == 0 ? verify_eddsa(k, t, p0 + 1 + p1, t + p0 + p1 + 2, p2)
                                      : verify_jose(k, t, p0, p1, p2, len)) {
            verified = 1;
            break;
        }
    }
    if (!verified) {
        if (kid != NULL && named == 0) {
            *why = "token signed with an unknown key (kid)";
            rc = MG_ENOTFOUND;
        } else {
            *why = named ? "token signature is invalid" : "no key to verify the token";
        }
        goto out;
    }
    payload = b64json(t + p0 + 1, p1);
    if (payload == NULL) {
        *why = "token claims are not a JSON object (or repeat a claim)";
        goto out;
    }
    const char *iss = key_str(payload, "iss");
    if (iss == NULL || r->issuer == NULL || strcmp(iss, r->issuer) != 0) {
        *why = "token issuer (iss) is not the configured issuer";
        goto out;
    }
    if (!aud_ok(json_object_get(payload, "aud"), r)) {
        *why = "token audience (aud) is not this gateway";
        goto out;
    }
    double exp = 0, nbf = 0, iat = 0, now = (double)r->now_s, skew = (double)r->skew_s;
    if (!num(json_object_get(payload, "exp"), &exp)) {
        *why = "token has no expiry (exp)";
        goto out;
    }
    if (now >= exp + skew) {
        *why = "token expired";
        goto out;
    }
    if (json_object_get(payload, "nbf") != NULL &&
        (!num(json_object_get(payload, "nbf"), &nbf) || now + skew < nbf)) {
        *why = "token not yet valid (nbf)";
        goto out;
    }
    int has_iat = json_object_get(payload, "iat") != NULL;
    if (has_iat && (!num(json_object_get(payload, "iat"), &iat) || iat > now + skew)) {
        *why = "token issued in the future (iat)";
        goto out;
    }
    if (r->max_lifetime_s > 0) {
        if (!has_iat) {
            *why = "token has no issue time (iat), needed for the maximum lifetime check";
            goto out;
        }
        if (exp - iat > (double)r->max_lifetime_s) {
            *why = "token lifetime (exp - iat) exceeds gateway.auth.oauth.max_token_lifetime_s";
            goto out;
        }
    }
    *claims = json_incref(payload);
    rc = 0;
out:
    json_decref(payload);
    json_decref(hdr);
    return rc;
}

char **mg__jwt_scopes(const json_t *claims, const char *scope_claim, size_t *n)
{
    const char *names[2] = {scope_claim ? scope_claim : "scope", scope_claim ? NULL : "scp"};
    *n = 0;
    for (int k = 0; k < 2; k++) {
        if (names[k] == NULL)
            continue;
        json_t *v = json_object_get(claims, names[k]);
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            char **out = calloc(strlen(s) / 2 + 2, sizeof *out);
            const char *p = s;
            while (out != NULL && *p) {
                while (*p == ' ')
                    p++;
                size_t l = strcspn(p, " ");
                if (l > 0)
                    out[(*n)++] = strndup(p, l);
                p += l;
            }
            return out;
        }
        if (json_is_array(v)) {
            char **out = calloc(json_array_size(v) + 1, sizeof *out);
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (out != NULL && json_is_string(e)) out[(*n)++] =
                strdup(json_string_value(e));
            return out;
        }
    }
    return calloc(1, sizeof(char *));
}
