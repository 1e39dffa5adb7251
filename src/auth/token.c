/*
 * token.c - static bearer tokens and principals, and `mcpgate token`.
 *
 * A static token is configured only as its SHA-256. A presented token is hashed once and compared
 * with EVERY configured hash by CRYPTO_memcmp (no early exit), so timing tells nothing about which
 * hash, or how much of one, matched. Tokens printed by `token new` are "mgt_" + 43 base64url
 * characters (256 bits from the CSPRNG). Read next: auth.c (where they are checked).
 */
#include "auth_int.h"
#include "../common/codec.h"
#include "../common/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const mg_auth_token_config_t *mg__auth_token_find(const mg_auth_config_t *cfg, const char *token, size_t len)
{
    if (cfg == NULL || cfg->ntokens == 0)
        return NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(token, len, md, &n, EVP_sha256(), NULL);
    const mg_auth_token_config_t *found = NULL;
    for (size_t i = 0; i < cfg->ntokens; i++) {
        int eq = CRYPTO_memcmp(md, cfg->tokens[i].sha256, 32) == 0;
        /* No early exit and no data-dependent branch on the secret comparison's position. */
        found = eq ? &cfg->tokens[i] : found;
    }
    OPENSSL_cleanse(md, sizeof md);
    return found;
}

/* ---- principals ---- */

mg_principal_t *mg_principal_new(const char *source, const char *issuer, const char *tenant,
                                 const char *subject, const char *name, const char *const *scopes,
                                 size_t nscopes)
{
    mg_principal_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->refs = 1;
    p->source = source;
    p->tenant = strdup(tenant ? tenant : "default");
    p->subject = strdup(subject ? subject : "");
    p->name = name ? strdup(name) : NULL;
    p->scopes = calloc(nscopes + 1, sizeof *p->scopes);
    if (p->tenant == NULL || p->subject == NULL || p->scopes == NULL) {
        mg_principal_unref(p);
        return NULL;
    }
    for (size_t i = 0; i < nscopes; i++)
        if ((p->scopes[p->nscopes] = strdup(scopes[i])) != NULL)
            p->nscopes++;
    /* Length-prefixed fields: no two different tuples hash alike. */
    size_t cap = strlen(source) + (issuer ? strlen(issuer) : 0) + strlen(p->tenant) + strlen(p->subject) + 64;
    char *buf = malloc(cap);
    if (buf == NULL) {
        mg_principal_unref(p);
        return NULL;
    }
    int len =
        snprintf(buf, cap, "%zu:%s%zu:%s%zu:%s%zu:%s", strlen(source), source, issuer ? strlen(issuer) : 0,
                 issuer ? issuer : "", strlen(p->tenant), p->tenant, strlen(p->subject), p->subject);
    mg_sha256_hex(buf, (size_t)len, p->key);
    free(buf);
    return p;
}

mg_principal_t *mg_principal_ref(mg_principal_t *p)
{
    if (p != NULL)
        p->refs++;
    return p;
}

void mg_principal_unref(mg_principal_t *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    free(p->tenant);
    free(p->subject);
    free(p->name);
    for (size_t i = 0; p->scopes != NULL && i < p->nscopes; i++)
        free(p->scopes[i]);
    free(p->scopes);
    free(p);
}

int mg_principal_same(const mg_principal_t *a, const mg_principal_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return CRYPTO_memcmp(a->key, b->key, 64) == 0;
}

int mg_principal_has_scope(const mg_principal_t *p, const char *scope)
{
    for (size_t i = 0; p != NULL && i < p->nscopes; i++)
        if (strcmp(p->scopes[i], scope) == 0)
            return 1;
    return 0;
}

/* ---- mcpgate token ---- */

static const char token_usage[] =
    "Usage:\n"
    "  mcpgate token new --tenant TENANT [--scope SCOPE]... [--name NAME]\n"
    "  mcpgate token hash            (reads a token on stdin, prints its sha256)\n"
    "\n"
    "new   Prints a fresh random bearer token ONCE, then the entry to paste into\n"
    "      gateway.auth.tokens. Only the token's SHA-256 goes into the config; store the token\n"
    "      itself in the client's secret store. It cannot be shown again.\n"
    "hash  Prints the sha256 of an existing token read from stdin (for rotating into the config).\n";

static int valid_name(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    return n > 0 && n <= 64 && s[n] == '\0';
}

static int token_new(int argc, char **argv)
{
    const char *tenant = NULL, *name = NULL;
    json_t *scopes = json_array();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        const char *flags[] = {"--tenant", "--scope", "--name"};
        int k;
        for (k = 0; k < 3; k++) {
            size_t n = strlen(flags[k]);
            if (strncmp(a, flags[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                v = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
                break;
            }
        }
        if (k == 3 || v == NULL) {
            fprintf(stderr, "mcpgate token new: %s '%s'\n%s",
                    k == 3 ? "unknown argument" : "missing value for", a, token_usage);
            json_decref(scopes);
            return 2;
        }
        if (k == 0)
            tenant = v;
        else if (k == 2)
            name = v;
        else {
            /* --scope "a b" and repeated --scope both work. */
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, " ,", &save); t != NULL; t = strtok_r(NULL, " ,", &save))
                json_array_append_new(scopes, json_string(t));
            free(copy);
        }
    }
    if (tenant == NULL || !valid_name(tenant)) {
        fprintf(stderr,
                "mcpgate token new: --tenant is required: 1 to 64 characters from A-Z a-z 0-9 _ . -\n");
        json_decref(scopes);
        return 2;
    }
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        fprintf(stderr, "mcpgate token new: the system's random generator failed\n");
        json_decref(scopes);
        return 1;
    }
    char token[64] = "mgt_";
    size_t o = 4 + mg_base64url_encode(raw, sizeof raw, token + 4);
    OPENSSL_cleanse(raw, sizeof raw);
    char hex[65];
    mg_sha256_hex(token, o, hex);
    char autoname[32];
    if (name == NULL) {
        snprintf(autoname, sizeof autoname, "%s-%.8s", tenant, hex);
        name = autoname;
    } else if (!valid_name(name)) {
        fprintf(stderr, "mcpgate token new: --name: 1 to 64 characters from A-Z a-z 0-9 _ . -\n");
        json_decref(scopes);
        OPENSSL_cleanse(token, sizeof token);
        return 2;
    }
    json_t *entry =
        json_pack("{s:s,s:s,s:s,s:O}", "name", name, "sha256", hex, "tenant", tenant, "scopes", scopes);
    char *text = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("token: %s\n", token);
    printf("(shown once: store it in the client's secret store; the gateway keeps only its hash)\n\n");
    printf("Add to gateway.auth.tokens:\n%s\n", text ? text : "");
    fflush(stdout);
    free(text);
    json_decref(entry);
    json_decref(scopes);
    OPENSSL_cleanse(token, sizeof token);
    return 0;
}

static int token_hash(void)
{
    char buf[MG_AUTH_MAX_TOKEN + 2];
    size_t n = fread(buf, 1, sizeof buf - 1, stdin);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0 || n > MG_AUTH_MAX_TOKEN) {
        fprintf(stderr, "mcpgate token hash: give the token on stdin (at most %d bytes)\n",
                MG_AUTH_MAX_TOKEN);
        return 2;
    }
    char hex[65];
    mg_sha256_hex(buf, n, hex);
    OPENSSL_cleanse(buf, sizeof buf);
    printf("%s\n", hex);
    return 0;
}

int mg_cli_token(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(token_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "new") == 0)
        return token_new(argc - 1, argv + 1);
    if (strcmp(argv[1], "hash") == 0)
        return token_hash();
    fprintf(stderr, "mcpgate token: unknown subcommand '%s'\n%s", argv[1], token_usage);
    return 2;
}
