/*
 * journal_verify.c - checks a journal's chain (journal.h, "Line format"): every line parses, seq
 * counts up by one across files, prev is the SHA-256 of the line before, checkpoints carry the
 * right HMAC when a key is given. Reports the first broken line and stops there.
 * Used by `mcpgate journal verify` (cli/journal_cmd.c) and test/unit/test_journal.c.
 * Read next: journal.c (the writer).
 */
#include "journal.h"
#include "../common/codec.h"
#include "../common/str.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

void mg_journal_checkpoint_mac(const unsigned char *key, size_t keylen, uint64_t seq, const char *prev_hex,
                               char out[65])
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "mcpgate-journal-v1\n%" PRIu64 "\n%s", seq, prev_hex);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, (size_t)n, md, &mdlen);
    mg_hex_encode(md, 32, out);
    OPENSSL_cleanse(md, sizeof md);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The seqs of path's rotated siblings, ascending (NEW array, *n entries). */
static uint64_t *rotated_seqs(const char *path, size_t *n)
{
    char dbuf[PATH_MAX], bbuf[PATH_MAX];
    mg_strlcpy(dbuf, sizeof dbuf, path);
    mg_strlcpy(bbuf, sizeof bbuf, path);
    const char *dir = dirname(dbuf), *base = basename(bbuf);
    size_t blen = strlen(base), cap = 0;
    uint64_t *v = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, blen) != 0 || nm[blen] != '.' || nm[blen + 1] == '\0' ||
            strspn(nm + blen + 1, "0123456789") != strlen(nm + blen + 1))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *g = realloc(v, cap * sizeof *v);
            if (g == NULL)
                break;
            v = g;
        }
        v[(*n)++] = strtoull(nm + blen + 1, NULL, 10);
    }
    closedir(d);
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_u64);
    return v;
}

typedef struct vstate {
    const mg_journal_verify_opts_t *o;
    uint64_t lines, seq, checkpoints, macs_ok, gaps, dropped, since_cp;
    char prev[MG_SHA256_HEX];
    char prev_where[PATH_MAX + 32];
    int started;
    const char *last_kind;
} vstate_t;

/* One file. Returns 0 (go on), 1 (broken: reported) or 2 (unreadable). */
static int verify_file(vstate_t *v, const char *file)
{
    FILE *f = fopen(file, "re");
    if (f == NULL) {
        fprintf(v->o->out, "%s: cannot read: %s\n", file, strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        FILE *out = v->o->out;
        if (line[n - 1] != '\n') {
            fprintf(out,
                    "%s:%" PRIu64 ": broken: the line is cut short (no newline at the end of the file): the "
                    "file was truncated, or the gateway stopped while writing it\n",
                    file, lineno);
            rc = 1;
            break;
        }
        size_t len = (size_t)n - 1;
        json_error_t jerr;
        json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        json_t *jseq = json_object_get(rec, "seq");
        const char *prev = json_string_value(json_object_get(rec, "prev"));
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        if (!json_is_object(rec) || !json_is_integer(jseq) || json_integer_value(jseq) <= 0 || prev == NULL ||
            strlen(prev) != 64 || kind == NULL) {
            fprintf(out,
                    "%s:%" PRIu64
                    ": broken: not a journal line (a JSON object with seq, prev and kind)%s%s\n",
                    file, lineno, rec == NULL ? ": " : "", rec == NULL ? jerr.text : "");
            json_decref(rec);
            rc = 1;
            break;
        }
        uint64_t seq = (uint64_t)json_integer_value(jseq);
        if (!v->started) {
            static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";
            if (!v->o->partial && (seq != 1 || strcmp(prev, zeros) != 0)) {
                fprintf(out,
                        "%s:%" PRIu64 ": broken: the journal starts at seq %" PRIu64
                        " (not 1): earlier lines or files are missing; pass --partial if older files were "
                        "deleted on purpose\n",
                        file, lineno, seq);
                json_decref(rec);
                rc = 1;
                break;
            }
            v->started = 1;
        } else if (strcmp(prev, v->prev) != 0) {
            fprintf(
                out,
                "%s:%" PRIu64 ": broken: seq %" PRIu64
                " does not chain to the line before it (%s): that line was changed, or lines between them "
                "were removed or reordered\n",
                file, lineno, seq, v->prev_where);
            json_decref(rec);
            rc = 1;
            break;
        } else if (seq != v->seq + 1) {
            fprintf(out, "%s:%" PRIu64 ": broken: seq %" PRIu64 " follows seq %" PRIu64 "\n", file, lineno,
                    seq, v->seq);
            json_decref(rec);
            rc = 1;
            break;
        }
        if (strcmp(kind, "checkpoint") == 0) {
            const char *mac = json_string_value(json_object_get(rec, "hmac"));
            v->checkpoints++;
            if (v->o->key != NULL) {
                char want[65];
                mg_journal_checkpoint_mac(v->o->key, v->o->keylen, seq, prev, want);
                if (mac == NULL || CRYPTO_memcmp(want, mac, 64) != 0 || strlen(mac) != 64) {
                    fprintf(out,
                            "%s:%" PRIu64 ": broken: checkpoint seq %" PRIu64
                            " %s: the lines before it were rewritten, or the key is not the journal's\n",
                            file, lineno, seq, mac == NULL ? "has no HMAC" : "has a wrong HMAC");
                    json_decref(rec);
                    rc = 1;
                    break;
                }
                v->macs_ok++;
            }
            v->since_cp = 0;
        } else {
            v->since_cp++;
        }
        if (strcmp(kind, "gap") == 0) {
            json_int_t d = json_integer_value(json_object_get(rec, "dropped"));
            v->gaps++;
            v->dropped += d > 0 ? (uint64_t)d : 0;
            fprintf(out,
                    "%s:%" PRIu64 ": warning: %" PRId64 " record(s) were dropped before seq %" PRIu64
                    " (the write queue was full)\n",
                    file, lineno, (int64_t)d, seq);
        }
        v->last_kind = strcmp(kind, "checkpoint") == 0 ? "checkpoint" : "other";
        json_decref(rec);
        mg_sha256_hex(line, len, v->prev);
        snprintf(v->prev_where, sizeof v->prev_where, "%s:%" PRIu64, file, lineno);
        v->seq = seq;
        v->lines++;
    }
    free(line);
    fclose(f);
    return rc;
}

int mg_journal_verify(const char *path, const mg_journal_verify_opts_t *o)
{
    vstate_t v;
    memset(&v, 0, sizeof v);
    v.o = o;
    size_t nrot = 0;
    uint64_t *rot = o->single ? NULL : rotated_seqs(path, &nrot);
    size_t files = 0;
    int rc = 0;
    for (size_t i = 0; i < nrot && rc == 0; i++) {
        char name[PATH_MAX];
        snprintf(name, sizeof name, "%s.%012" PRIu64, path, rot[i]);
        rc = verify_file(&v, name);
        files++;
        /* a rotated file starts at the seq in its name: the end of the one before it is missing */
        if (rc == 0 && i + 1 < nrot && v.seq + 1 != rot[i + 1]) {
            fprintf(o->out,
                    "%s.%012" PRIu64 ":1: broken: the file before it (%s) ends at seq %" PRIu64
                    ": lines at its end are missing\n",
                    path, rot[i + 1], name, v.seq);
            rc = 1;
        }
    }
    free(rot);
    if (rc == 0) {
        FILE *f = fopen(path, "re");
        if (f != NULL || files == 0) {
            if (f != NULL)
                fclose(f);
            rc = verify_file(&v, path);
            files++;
        }
    }
    if (rc != 0)
        return rc;
    if (v.lines == 0) {
        fprintf(o->out, "%s: empty journal\n", path);
        return 0;
    }
    if (v.since_cp > 0)
        fprintf(o->out,
                "%s: warning: the last %" PRIu64
                " line(s) follow the last checkpoint: their removal could not be detected (normal while the "
                "gateway runs; a gateway that stopped cleanly ends with a checkpoint)\n",
                path, v.since_cp);
    fprintf(o->out,
            "%s: intact: %" PRIu64 " lines in %zu file(s), seq up to %" PRIu64 ", %" PRIu64
            " checkpoint(s)%s%s",
            path, v.lines, files, v.seq, v.checkpoints,
            o->key != NULL ? ", every HMAC verified" : ", HMACs not checked (no --key given)",
            v.gaps ? "" : "\n");
    if (v.gaps)
        fprintf(o->out, ", %" PRIu64 " gap(s) totalling %" PRIu64 " dropped record(s)\n", v.gaps, v.dropped);
    return 0;
}
