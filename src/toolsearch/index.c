/*
 * index.c - the tool search index (toolsearch.h): BM25F over the fields of tool definitions, in
 * memory, with Snowball stemming, query analysis and thesaurus expansion (query.c, thesaurus.c),
 * server narrowing and a fallback that never leaves a query without an answer.
 *
 * Build: each tool is cut into fields (below), each field into stemmed words (toolsearch_int.h).
 * For each term, a posting list holds per tool the field-weighted, length-normalised frequency
 *     tf~ = sum over fields f of  w_f * tf_f / (1 - b + b * len_f / avglen_f)
 * Search: score(tool) = sum over query terms t of  q_t * idf(t) * tf~ (k1 + 1) / (tf~ + k1), where
 * q_t is the term's weight from the query analysis (typed word 1, context clause or path less,
 * thesaurus expansion less), idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)).
 * Server narrowing: a query naming a server ("in slack", "on github", "maps:") multiplies the
 * scores of that server's tools by 1 + SERVER_BOOST. A server is named by its whole name, its
 * words in order ("google maps"), or one of its words that (nearly) only its tools use.
 * Fallback, when no term matches: words close in spelling to the index's vocabulary (a shared
 * prefix of 4+ letters, or one edit for words of 5+), then, if still nothing, a sample of each
 * server's tools; the caller is told which (mg_toolsearch_how_t) and gives the user a hint.
 * The index is immutable once built; searches keep their state on the stack and the heap, but
 * share the index's stemmer: one search at a time per index (the gateway's loop is one thread).
 * Read next: query.c (query analysis), runtime.c (when indexes are built and reused).
 */
#include "toolsearch.h"
#include "toolsearch_int.h"
#include "../common/err.h"

#include <libstemmer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fields and their BM25F weights. */
enum { F_NAME, F_SERVER, F_TITLE, F_DHEAD, F_DREST, F_PNAME, F_PDESC, NFIELDS };
static const float field_weight[NFIELDS] = {3.0f, 1.0f, 2.0f, 1.5f, 0.4f, 0.6f, 0.25f};
static const float field_b[NFIELDS] = {0.5f, 0.0f, 0.5f, 0.75f, 0.75f, 0.5f, 0.75f};
mg__ts_parts_t mg__ts_parts = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
#define K1           1.2f
#define SERVER_BOOST 1.0f
/* A description's first sentence, cut at this many bytes, is its own field (what a tool does). */
#define HEAD_MAX 240
/* Share of a word's tools that must belong to one server for the word alone to name the server. */
#define SERVER_WORD_SHARE 0.8f
#define FUZZY_WEIGHT      0.5f
/* The fallback looks at most at this many typed words, and adds at most this many per word. */
#define FUZZY_WORDS    8
#define FUZZY_PER_WORD 4
#define PRF_DOCS       3
#define PRF_WEIGHT     0.3f
/* A typed word's exact form, on top of its stem. */
#define EXACT_WEIGHT 0.5f

typedef struct posting {
    uint32_t doc;
    float tf; /* tf~ above */
} posting_t;

typedef struct term {
    char *stem;    /* in the arena; NULL = empty slot */
    uint32_t hash; /* low bits of the stem's hash: most probes end without strcmp */
    uint32_t off;  /* first posting */
    uint32_t df;   /* postings (tools containing the term) */
} term_t;

typedef struct server {
    char name[MG__TS_WORD_MAX];
    char words[4][MG__TS_WORD_MAX]; /* stems of the name's words */
    size_t nwords;
    uint32_t tools;
} server_t;

struct mg_toolsearch_index {
    size_t count; /* tools */
    term_t *terms;
    size_t nslots; /* power of two */
    size_t nterms;
    posting_t *post;
    size_t npost;
    char *arena;
    size_t arena_len, arena_cap;
    uint16_t *doc_server; /* server of each tool, UINT16_MAX = none */
    server_t *servers;
    size_t nservers;
    struct sb_stemmer *st;
    mg__ts_thesaurus_t *th;
    uint32_t *name_off;   /* tool i's name terms are name_terms[name_off[i] .. name_off[i + 1]) */
    uint32_t *name_terms; /* slots of the stems of each tool's name (pseudo-relevance feedback) */
    uint32_t *spelled;    /* slots of the "=word" terms (the words as written), for the fuzzy fallback */
    size_t nspelled;
    size_t bytes;
};

/* ---- building ---- */

static int isalnum_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static uint64_t hash_bytes(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static term_t *slot_of(const mg_toolsearch_index_t *ix, const char *stem)
{
    uint64_t h = hash_bytes(stem);
    size_t mask = ix->nslots - 1, i = (size_t)h & mask;
    while (ix->terms[i].stem != NULL &&
           (ix->terms[i].hash != (uint32_t)h || strcmp(ix->terms[i].stem, stem) != 0))
        i = (i + 1) & mask;
    return &ix->terms[i];
}

static const term_t *term_find(const mg_toolsearch_index_t *ix, const char *stem)
{
    if (ix->nslots == 0)
        return NULL;
    const term_t *t = slot_of(ix, stem);
    return t->stem != NULL ? t : NULL;
}

/* One occurrence of a term in a field of the tool being read. */
typedef struct occ {
    uint32_t term;
    uint8_t field;
} occ_t;

typedef struct builder {
    mg_toolsearch_index_t *ix;
    size_t nids; /* terms interned: ids 0..nids-1 (a slot's off holds its id until the end) */
    occ_t *occ;  /* the current tool's occurrences */
    size_t nocc, occ_cap;
    int field, oom;
    struct seen *seen; /* words already stemmed */
    size_t nseen, nseen_slots;
    char *words;
    size_t words_len, words_cap;
} builder_t;

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *g = realloc(*p, c * size);
    if (g == NULL)
        return -1;
    *p = g;
    *cap = c;
    return 0;
}

static int rehash(mg_toolsearch_index_t *ix, size_t nslots)
{
    term_t *old = ix->terms;
    size_t oldn = ix->nslots;
    ix->terms = calloc(nslots, sizeof *ix->terms);
    if (ix->terms == NULL) {
        ix->terms = old;
        return -1;
    }
    ix->nslots = nslots;
    for (size_t i = 0; i < oldn; i++)
        if (old[i].stem != NULL)
            *slot_of(ix, old[i].stem) = old[i];
    free(old);
    return 0;
}

/* The id of stem, interned. UINT32_MAX when out of memory. */
static uint32_t intern(builder_t *b, const char *stem)
{
    mg_toolsearch_index_t *ix = b->ix;
    if ((ix->nterms + 1) * 2 > ix->nslots && rehash(ix, ix->nslots ? ix->nslots * 2 : 1024) != 0)
        return UINT32_MAX;
    term_t *t = slot_of(ix, stem);
    if (t->stem != NULL)
        return t->off; /* during the build, off holds the term's id */
    size_t n = strlen(stem) + 1;
    if (ix->arena_len + n > ix->arena_cap) {
        /* Terms point into the arena: it is allocated once, large enough for any vocabulary of the
         * catalog (the builder sized it from the text it indexes), and never moves. */
        return UINT32_MAX;
    }
    t->stem = ix->arena + ix->arena_len;
    t->hash = (uint32_t)hash_bytes(stem);
    memcpy(t->stem, stem, n);
    ix->arena_len += n;
    t->off = (uint32_t)b->nids;
    b->nids++;
    ix->nterms++;
    return t->off;
}

/* A word already seen in this build and its two term ids (stemming is the build's main cost):
 * open addressing over the words, kept in the builder's own buffer. */
typedef struct seen {
    uint64_t hash; /* 0 = empty slot */
    uint32_t word; /* offset in builder.words */
    uint32_t stem, exact;
} seen_t;

static int seen_grow(builder_t *b)
{
    size_t n = b->nseen_slots ? b->nseen_slots * 2 : 4096;
    seen_t *g = calloc(n, sizeof *g);
    if (g == NULL)
        return -1;
    for (size_t i = 0; i < b->nseen_slots; i++)
        if (b->seen[i].hash != 0) {
            size_t k = (size_t)b->seen[i].hash & (n - 1);
            while (g[k].hash != 0)
                k = (k + 1) & (n - 1);
            g[k] = b->seen[i];
        }
    free(b->seen);
    b->seen = g;
    b->nseen_slots = n;
    return 0;
}

static int word_cb(void *arg, const char *word, size_t n)
{
    builder_t *b = arg;
    if (n < 2 && !(word[0] >= '0' && word[0] <= '9'))
        return 0;
    if ((b->nseen + 1) * 2 > b->nseen_slots && seen_grow(b) != 0) {
        b->oom = 1;
        return 1;
    }
    uint64_t h = hash_bytes(word) | 1;
    size_t mask = b->nseen_slots - 1, i = (size_t)h & mask;
    while (b->seen[i].hash != 0 && (b->seen[i].hash != h || strcmp(b->words + b->seen[i].word, word) != 0))
        i = (i + 1) & mask;
    seen_t *e = &b->seen[i];
    if (e->hash == 0) {
        char stem[MG__TS_WORD_MAX], exact[MG__TS_WORD_MAX + 1];
        mg__ts_stem(b->ix->st, word, n, stem);
        snprintf(exact, sizeof exact, "=%s", word);
        if (grow((void **)&b->words, &b->words_cap, b->words_len + n + 1, 1) != 0) {
            b->oom = 1;
            return 1;
        }
        memcpy(b->words + b->words_len, word, n + 1);
        e->word = (uint32_t)b->words_len;
        b->words_len += n + 1;
        e->hash = h;
        e->stem = intern(b, stem);
        e->exact = mg__ts_parts.exact ? intern(b, exact) : e->stem;
        b->nseen++;
    }
    if (e->stem == UINT32_MAX || e->exact == UINT32_MAX ||
        grow((void **)&b->occ, &b->occ_cap, b->nocc + 2, sizeof *b->occ) != 0) {
        b->oom = 1;
        return 1;
    }
    b->occ[b->nocc++] = (occ_t){e->stem, (uint8_t)b->field};
    if (e->exact != e->stem)
        b->occ[b->nocc++] = (occ_t){e->exact, (uint8_t)b->field};
    return 0;
}

static void add_text(builder_t *b, int field, const char *s, size_t n)
{
    if (s != NULL && !b->oom) {
        b->field = field;
        mg__ts_words(s, n, word_cb, b);
    }
}

static void add_str(builder_t *b, int field, const json_t *v)
{
    const char *s = json_string_value(v);
    if (s != NULL)
        add_text(b, field, s, strlen(s));
}

/* The description: its first sentence (what the tool does) apart from the rest. */
static void add_description(builder_t *b, const char *d)
{
    if (d == NULL)
        return;
    size_t len = strlen(d), head = 0;
    while (head < len && head < HEAD_MAX) {
        if ((d[head] == '.' || d[head] == '\n') &&
            (head + 1 >= len || d[head + 1] == ' ' || d[head + 1] == '\n'))
            break;
        head++;
    }
    if (!mg__ts_parts.fields)
        head = len; /* one description field */
    add_text(b, F_DHEAD, d, head);
    if (head < len)
        add_text(b, F_DREST, d + head, len - head);
}

static void add_params(builder_t *b, const json_t *schema, int depth)
{
    if (!json_is_object(schema) || depth > 8)
        return;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), k, sub)
    {
        add_text(b, F_PNAME, k, strlen(k));
        add_str(b, F_PDESC, json_object_get(sub, "description"));
        add_str(b, F_PDESC, json_object_get(sub, "title"));
        add_params(b, sub, depth + 1);
        add_params(b, json_object_get(sub, "items"), depth + 1);
    }
}

/* Bytes of the text an index of schema's parameters reads. */
static size_t params_bytes(const json_t *schema, int depth)
{
    size_t n = 0;
    if (!json_is_object(schema) || depth > 8)
        return 0;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), k, sub)
    {
        n += strlen(k) + 1 + json_string_length(json_object_get(sub, "description")) + 1 +
             json_string_length(json_object_get(sub, "title")) + 1;
        n += params_bytes(sub, depth + 1) + params_bytes(json_object_get(sub, "items"), depth + 1);
    }
    return n;
}

/* Bytes of the text an index of tools reads (bounds the vocabulary's size). */
static size_t text_bytes(const json_t *tools, const json_t *servers)
{
    size_t n = 0, i;
    json_t *t;
    json_array_foreach((json_t *)tools, i, t)
    {
        n += json_string_length(json_object_get(t, "name")) +
             json_string_length(json_object_get(t, "title")) +
             json_string_length(json_object_get(json_object_get(t, "annotations"), "title")) +
             json_string_length(json_object_get(t, "description")) + 8;
        n += params_bytes(json_object_get(t, "inputSchema"), 0);
        n += json_string_length(json_array_get(servers, i)) + 1;
    }
    return n;
}

/* Accumulated per (tool, term) during the build, before normalisation. */
typedef struct raw {
    uint32_t doc, term;
    uint16_t tf[NFIELDS];
} raw_t;

static const char *server_of(const json_t *servers, size_t i)
{
    return json_string_value(json_array_get(servers, i));
}

static int server_words_cb(void *arg, const char *word, size_t n)
{
    server_t *s = arg;
    (void)n;
    if (s->nwords < 4)
        snprintf(s->words[s->nwords++], MG__TS_WORD_MAX, "%s", word);
    return 0;
}

static int servers_build(mg_toolsearch_index_t *ix, const json_t *servers, size_t count)
{
    ix->doc_server = malloc((count ? count : 1) * sizeof *ix->doc_server);
    ix->servers = calloc(count ? count : 1, sizeof *ix->servers);
    if (ix->doc_server == NULL || ix->servers == NULL)
        return MG_ENOMEM;
    ix->bytes += count * (sizeof *ix->doc_server + sizeof *ix->servers);
    for (size_t i = 0; i < count; i++) {
        const char *name = server_of(servers, i);
        ix->doc_server[i] = UINT16_MAX;
        if (name == NULL)
            continue;
        size_t k = 0;
        while (k < ix->nservers && strcmp(ix->servers[k].name, name) != 0)
            k++;
        if (k == ix->nservers) {
            if (k >= UINT16_MAX)
                continue;
            server_t *s = &ix->servers[ix->nservers++];
            snprintf(s->name, sizeof s->name, "%s", name);
            mg__ts_words(name, strlen(name), server_words_cb, s);
            for (size_t w = 0; w < s->nwords; w++) {
                char stem[MG__TS_WORD_MAX];
                mg__ts_stem(ix->st, s->words[w], strlen(s->words[w]), stem);
                memcpy(s->words[w], stem, sizeof stem);
            }
        }
        ix->servers[k].tools++;
        ix->doc_server[i] = (uint16_t)k;
    }
    return 0;
}

/* The parsed thesaurus, shared by every index (parsing stems ~2,000 words): made by the first
 * index, freed with the last. Not locked: indexes are built and freed on the gateway's one loop. */
static mg__ts_thesaurus_t *shared_th;
static size_t shared_th_refs, shared_th_bytes;
static int shared_th_stemmed;

static mg__ts_thesaurus_t *thesaurus_ref(size_t *bytes)
{
    if (shared_th != NULL && shared_th_stemmed != mg__ts_parts.stem && shared_th_refs == 0) {
        mg__ts_thesaurus_free(shared_th); /* ablation runs switch stemming between builds */
        shared_th = NULL;
    }
    if (shared_th == NULL) {
        struct sb_stemmer *st = mg__ts_parts.stem ? sb_stemmer_new("english", "UTF_8") : NULL;
        if (st == NULL && mg__ts_parts.stem)
            return NULL;
        shared_th = mg__ts_thesaurus_new(st, &shared_th_bytes);
        shared_th_stemmed = mg__ts_parts.stem;
        if (st != NULL)
            sb_stemmer_delete(st);
        if (shared_th == NULL)
            return NULL;
    }
    shared_th_refs++;
    *bytes = shared_th_bytes;
    return shared_th;
}

static void thesaurus_unref(mg__ts_thesaurus_t *th)
{
    if (th == NULL || th != shared_th || --shared_th_refs > 0)
        return;
    mg__ts_thesaurus_free(shared_th);
    shared_th = NULL;
}

int mg_toolsearch_index_new(const json_t *tools, const json_t *servers, mg_toolsearch_index_t **out)
{
    *out = NULL;
    mg_toolsearch_index_t *ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        return MG_ENOMEM;
    size_t count = json_array_size(tools), thbytes = 0;
    builder_t b = {0};
    b.ix = ix;
    raw_t *raw = NULL;
    size_t nraw = 0, raw_cap = 0;
    uint32_t *len = NULL; /* per tool per field */
    size_t *where = NULL, where_cap = 0, where_len = 0;
    int rc = 0;
    ix->st = mg__ts_parts.stem ? sb_stemmer_new("english", "UTF_8") : NULL;
    ix->th = thesaurus_ref(&thbytes);
    /* A word of n bytes adds at most two terms (its stem, "=word"): 2n + 3 bytes, 3.5 per byte. */
    ix->arena_cap = 4 * text_bytes(tools, servers) + 64;
    ix->arena = malloc(ix->arena_cap);
    len = calloc(count * NFIELDS + 1, sizeof *len);
    if ((ix->st == NULL && mg__ts_parts.stem) || ix->th == NULL || seen_grow(&b) != 0 || ix->arena == NULL ||
        len == NULL || servers_build(ix, servers, count) != 0) {
        rc = MG_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < count && rc == 0; i++) {
        const json_t *tool = json_array_get(tools, i);
        const char *name = json_string_value(json_object_get(tool, "name"));
        b.nocc = 0;
        if (name != NULL) {
            /* The server's part of an exposed name ("github__") is the server field, not the name. */
            const char *srv = ix->doc_server[i] != UINT16_MAX ? ix->servers[ix->doc_server[i]].name : NULL;
            size_t sl = srv ? strlen(srv) : 0;
            const char *own = name;
            if (srv != NULL && strncmp(name, srv, sl) == 0 && name[sl] != '\0' && !isalnum_ascii(name[sl]))
                own = name + sl;
            add_text(&b, F_NAME, own, strlen(own));
            if (srv != NULL)
                add_text(&b, F_SERVER, srv, sl);
        }
        add_str(&b, F_TITLE, json_object_get(tool, "title"));
        add_str(&b, F_TITLE, json_object_get(json_object_get(tool, "annotations"), "title"));
        add_description(&b, json_string_value(json_object_get(tool, "description")));
        add_params(&b, json_object_get(tool, "inputSchema"), 0);
        if (b.oom) {
            rc = MG_ENOMEM;
            break;
        }
        /* One raw row per (tool, term): where[term] is the term's row when it was already seen in
         * this tool (rows of this tool start at first). */
        if (grow((void **)&where, &where_cap, b.nids, sizeof *where) != 0) {
            rc = MG_ENOMEM;
            break;
        }
        for (; where_len < b.nids; where_len++)
            where[where_len] = SIZE_MAX;
        size_t first = nraw;
        for (size_t k = 0; k < b.nocc; k++) {
            uint32_t term = b.occ[k].term;
            len[i * NFIELDS + b.occ[k].field]++;
            size_t row = where[term];
            if (row < first || row >= nraw || raw[row].term != term) {
                if (grow((void **)&raw, &raw_cap, nraw + 1, sizeof *raw) != 0) {
                    rc = MG_ENOMEM;
                    break;
                }
                memset(&raw[nraw], 0, sizeof *raw);
                raw[nraw].doc = (uint32_t)i;
                raw[nraw].term = term;
                row = where[term] = nraw++;
            }
            if (raw[row].tf[b.occ[k].field] < UINT16_MAX)
                raw[row].tf[b.occ[k].field]++;
        }
    }
    if (rc != 0)
        goto done;
    /* Average field lengths, then postings grouped by term (a counting sort on the term id). */
    double avg[NFIELDS] = {0};
    for (int f = 0; f < NFIELDS; f++) {
        size_t sum = 0, with = 0;
        for (size_t i = 0; i < count; i++) {
            sum += len[i * NFIELDS + f];
            with += len[i * NFIELDS + f] > 0;
        }
        avg[f] = with ? (double)sum / (double)with : 1.0;
    }
    uint32_t *start = calloc(b.nids + 1, sizeof *start);
    ix->post = malloc((nraw ? nraw : 1) * sizeof *ix->post);
    if (start == NULL || ix->post == NULL) {
        free(start);
        rc = MG_ENOMEM;
        goto done;
    }
    for (size_t r = 0; r < nraw; r++)
        start[raw[r].term + 1]++;
    for (size_t t = 0; t < b.nids; t++)
        start[t + 1] += start[t];
    uint32_t *id_slot = malloc((b.nids ? b.nids : 1) * sizeof *id_slot);
    ix->name_off = calloc(count + 1, sizeof *ix->name_off);
    ix->name_terms = malloc((nraw ? nraw : 1) * sizeof *ix->name_terms);
    if (id_slot == NULL || ix->name_off == NULL || ix->name_terms == NULL) {
        free(id_slot);
        free(start);
        rc = MG_ENOMEM;
        goto done;
    }
    for (size_t t = 0; t < ix->nslots; t++) /* id -> first posting and df */
        if (ix->terms[t].stem != NULL) {
            uint32_t id = ix->terms[t].off;
            id_slot[id] = (uint32_t)t;
            ix->terms[t].off = start[id];
            ix->terms[t].df = start[id + 1] - start[id];
        }
    size_t nnames = 0;
    for (size_t r = 0; r < nraw; r++) { /* the stems in each tool's name, in tool order */
        const term_t *t = &ix->terms[id_slot[raw[r].term]];
        if (raw[r].tf[F_NAME] > 0 && t->stem[0] != '=')
            ix->name_terms[nnames++] = id_slot[raw[r].term];
        ix->name_off[raw[r].doc + 1] = (uint32_t)nnames;
    }
    for (size_t d = 1; d <= count; d++)
        if (ix->name_off[d] < ix->name_off[d - 1])
            ix->name_off[d] = ix->name_off[d - 1];
    ix->bytes += (count + 1 + nnames) * sizeof(uint32_t);
    free(id_slot);
    for (size_t r = 0; r < nraw; r++) { /* raw is in tool order, so each list is too */
        double tf = 0;
        for (int f = 0; f < NFIELDS; f++)
            if (raw[r].tf[f] > 0) {
                double l = len[raw[r].doc * NFIELDS + f];
                double w = mg__ts_parts.fields ? field_weight[f] : 1.0,
                       bf = mg__ts_parts.fields ? field_b[f] : 0.75;
                tf += w * raw[r].tf[f] / (1.0 - bf + bf * l / avg[f]);
            }
        ix->post[start[raw[r].term]++] = (posting_t){raw[r].doc, (float)tf};
    }
    free(start);
    /* The arena was sized for the worst case (the whole text); keep only the vocabulary. */
    char *small = malloc(ix->arena_len ? ix->arena_len : 1);
    if (small != NULL) {
        memcpy(small, ix->arena, ix->arena_len);
        for (size_t t = 0; t < ix->nslots; t++)
            if (ix->terms[t].stem != NULL)
                ix->terms[t].stem = small + (ix->terms[t].stem - ix->arena);
        free(ix->arena);
        ix->arena = small;
        ix->arena_cap = ix->arena_len;
    }
    ix->spelled = malloc((ix->nterms ? ix->nterms : 1) * sizeof *ix->spelled);
    if (ix->spelled == NULL) {
        rc = MG_ENOMEM;
        goto done;
    }
    for (size_t t = 0; t < ix->nslots; t++)
        if (ix->terms[t].stem != NULL && ix->terms[t].stem[0] == '=')
            ix->spelled[ix->nspelled++] = (uint32_t)t;
    ix->bytes += ix->nterms * sizeof *ix->spelled;
    ix->npost = nraw;
    ix->count = count;
    ix->bytes +=
        sizeof *ix + ix->nslots * sizeof *ix->terms + nraw * sizeof *ix->post + ix->arena_cap + thbytes;
done:
    free(b.occ);
    free(b.seen);
    free(b.words);
    free(raw);
    free(len);
    free(where);
    if (rc != 0) {
        mg_toolsearch_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

/* ---- searching ---- */

typedef struct scored {
    float score;
    uint64_t matched; /* bit i: query term i matched (first 63 terms) */
    uint8_t server;   /* tool of a server the query names */
} scored_t;

static int has_word(const mg__ts_query_t *q, const char *stem)
{
    for (size_t i = 0; i < q->nwords; i++)
        if (strcmp(q->words[i], stem) == 0)
            return 1;
    return 0;
}

/* Servers the query names, as flags (1 per server of ix->servers). */
static size_t named_servers(const mg_toolsearch_index_t *ix, const mg__ts_query_t *q, unsigned char *named)
{
    size_t n = 0;
    for (size_t s = 0; s < ix->nservers; s++) {
        const server_t *sv = &ix->servers[s];
        int all = sv->nwords > 0, one = 0;
        for (size_t w = 0; w < sv->nwords; w++) {
            if (!has_word(q, sv->words[w])) {
                all = 0;
                continue;
            }
            /* One word alone names the server when the tools using it are nearly all this server's. */
            const term_t *t = term_find(ix, sv->words[w]);
            if (t == NULL || sv->nwords == 1) {
                one |= sv->nwords == 1;
                continue;
            }
            uint32_t mine = 0;
            for (uint32_t p = t->off; p < t->off + t->df; p++)
                mine += ix->doc_server[ix->post[p].doc] == s;
            one |= (float)mine >= SERVER_WORD_SHARE * (float)t->df;
        }
        named[s] = (unsigned char)(all || one);
        n += named[s];
    }
    return n;
}

static float idf(const mg_toolsearch_index_t *ix, uint32_t df)
{
    double n = (double)ix->count;
    return (float)log(1.0 + (n - df + 0.5) / (df + 0.5));
}

static size_t score_terms(const mg_toolsearch_index_t *ix, const mg__ts_query_t *q, scored_t *sc)
{
    size_t touched = 0;
    for (size_t i = 0; i < 2 * q->n; i++) {
        /* Each term by its stem, then a typed word once more by its exact form: "issues" finds
         * create_issue, and list_issues first. */
        const mg__ts_qterm_t *qt = &q->t[i / 2];
        char exact[MG__TS_WORD_MAX + 1];
        if (i % 2 == 1 && (qt->expanded || !mg__ts_parts.exact))
            continue;
        if (i % 2 == 1)
            snprintf(exact, sizeof exact, "=%s", qt->word);
        const term_t *t = term_find(ix, i % 2 ? exact : qt->stem);
        if (t == NULL)
            continue;
        float w = (i % 2 ? EXACT_WEIGHT : 1.0f) * qt->weight * idf(ix, t->df);
        for (uint32_t p = t->off; p < t->off + t->df; p++) {
            scored_t *s = &sc[ix->post[p].doc];
            float tf = ix->post[p].tf;
            touched += s->score == 0;
            s->score += w * tf * (K1 + 1) / (tf + K1);
            if (i / 2 < 63)
                s->matched |= 1ull << (i / 2);
        }
    }
    return touched;
}

/* Edit distance of at most one (substitution, insertion or deletion). */
static int one_edit(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la < lb) {
        const char *t = a;
        a = b;
        b = t;
        size_t tl = la;
        la = lb;
        lb = tl;
    }
    if (la - lb > 1)
        return 0;
    size_t i = 0, j = 0, edits = 0;
    while (i < la && j < lb) {
        if (a[i] == b[j]) {
            i++;
            j++;
            continue;
        }
        if (++edits > 1)
            return 0;
        if (la == lb)
            j++;
        i++;
    }
    return edits + (la - i) <= 1;
}

/* Fallback 1: the index's words close in spelling to the words typed, added to q: a shared prefix
 * of 4+ letters covering the shorter word ("navig" / "navigate"), or one edit for words of 5+
 * letters ("drections"). Compared on the words as written (the "=word" terms). */
static void fuzzy_terms(const mg_toolsearch_index_t *ix, mg__ts_query_t *q)
{
    size_t typed = q->n, tried = 0;
    for (size_t w = 0; w < typed && tried < FUZZY_WORDS; w++) {
        if (q->t[w].expanded)
            continue;
        char word[MG__TS_WORD_MAX];
        snprintf(word, sizeof word, "%s", q->t[w].word);
        size_t lw = strlen(word), added = 0;
        if (lw < 4)
            continue;
        tried++;
        for (size_t k = 0; k < ix->nspelled && added < FUZZY_PER_WORD && q->n < MG__TS_QTERMS_MAX; k++) {
            const char *v = ix->terms[ix->spelled[k]].stem + 1;
            int prefix = strncmp(v, word, 4) == 0; /* word has 4+ letters: so has v then */
            if (!prefix && lw < 5)
                continue;
            size_t lv = strlen(v);
            if (lv == lw && memcmp(v, word, lw) == 0)
                continue;
            size_t common = 0;
            if (prefix)
                while (common < lw && common < lv && word[common] == v[common])
                    common++;
            int close = prefix && (common == lw || common == lv);
            if (!close && lw >= 5 && lv >= 4 && (lv > lw ? lv - lw : lw - lv) <= 1)
                close = one_edit(word, v);
            if (!close)
                continue;
            mg__ts_qterm_t *t = &q->t[q->n++];
            snprintf(t->stem, sizeof t->stem, "=%s", v);
            snprintf(t->word, sizeof t->word, "%.23s~%.23s", word, v);
            t->weight = FUZZY_WEIGHT;
            t->expanded = 1;
            added++;
        }
    }
}

static void explain(const mg_toolsearch_index_t *ix, const mg__ts_query_t *q, const scored_t *s, size_t doc,
                    char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < q->n && i < 63 && o + 1 < cap; i++) {
        if (!(s->matched & (1ull << i)))
            continue;
        const char *w = q->t[i].word;
        const char *gt = strchr(w, '>'), *tl = strchr(w, '~');
        int r;
        if (gt != NULL)
            r = snprintf(out + o, cap - o, "%s%.*s\xe2\x86\x92%s", o ? ", " : "", (int)(gt - w), w, gt + 1);
        else if (tl != NULL)
            r = snprintf(out + o, cap - o, "%s%.*s~%s", o ? ", " : "", (int)(tl - w), w, tl + 1);
        else
            r = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", w);
        if (r < 0 || (size_t)r >= cap - o) {
            out[o] = '\0';
            break;
        }
        o += (size_t)r;
    }
    if (s->server && o + 1 < cap && ix->doc_server[doc] != UINT16_MAX)
        snprintf(out + o, cap - o, "%sserver %s", o ? ", " : "", ix->servers[ix->doc_server[doc]].name);
}

/* The best cap tools by score (ties: catalog order) into hits; returns how many. */
static size_t top(const mg_toolsearch_index_t *ix, const mg__ts_query_t *q, const scored_t *sc,
                  mg_toolsearch_hit_t *hits, size_t cap)
{
    size_t n = 0;
    for (size_t d = 0; d < ix->count; d++) {
        if (sc[d].score <= 0)
            continue;
        size_t at = n < cap ? n : cap;
        while (at > 0 && sc[hits[at - 1].pos].score < sc[d].score)
            at--;
        if (at >= cap)
            continue;
        size_t last = n < cap ? n : cap - 1;
        memmove(&hits[at + 1], &hits[at], (last - at) * sizeof *hits);
        hits[at].pos = d;
        if (n < cap)
            n++;
    }
    for (size_t i = 0; i < n; i++) {
        hits[i].score = sc[hits[i].pos].score;
        explain(ix, q, &sc[hits[i].pos], hits[i].pos, hits[i].matched, sizeof hits[i].matched);
    }
    return n;
}

/* Pseudo-relevance feedback (measured, off: docs/tool-search.md): the stems of the names of the
 * best PRF_DOCS tools that at least two of them share are added at PRF_WEIGHT, then rescored. */
static void feedback(const mg_toolsearch_index_t *ix, mg__ts_query_t *q, scored_t *sc,
                     mg_toolsearch_hit_t *hits, size_t cap)
{
    size_t k = top(ix, q, sc, hits, cap < PRF_DOCS ? cap : PRF_DOCS);
    size_t added = 0;
    for (size_t i = 0; i < k; i++)
        for (uint32_t a = ix->name_off[hits[i].pos]; a < ix->name_off[hits[i].pos + 1]; a++) {
            const char *stem = ix->terms[ix->name_terms[a]].stem;
            size_t shared = 0;
            for (size_t j = 0; j < k; j++)
                for (uint32_t c = ix->name_off[hits[j].pos]; c < ix->name_off[hits[j].pos + 1]; c++)
                    shared += ix->name_terms[c] == ix->name_terms[a];
            int have = 0;
            for (size_t t = 0; t < q->n; t++)
                have |= strcmp(q->t[t].stem, stem) == 0;
            if (shared < 2 || have || q->n >= MG__TS_QTERMS_MAX)
                continue;
            mg__ts_qterm_t *t = &q->t[q->n++];
            snprintf(t->stem, sizeof t->stem, "%s", stem);
            snprintf(t->word, sizeof t->word, "related>%.30s", stem);
            t->weight = PRF_WEIGHT;
            t->expanded = 1;
            added++;
        }
    if (added > 0) {
        memset(sc, 0, ix->count * sizeof *sc);
        score_terms(ix, q, sc);
    }
}

int mg_toolsearch_index_find(mg_toolsearch_index_t *ix, const char *query, mg_toolsearch_hit_t *hits,
                             size_t cap, mg_toolsearch_how_t *how)
{
    if (how != NULL)
        *how = MG_TOOLSEARCH_MATCHED;
    if (ix == NULL || query == NULL || cap == 0 || ix->count == 0)
        return 0;
    mg__ts_query_t *q = malloc(sizeof *q);
    scored_t *sc = calloc(ix->count, sizeof *sc);
    unsigned char *named = calloc(ix->nservers + 1, 1);
    if (q == NULL || sc == NULL || named == NULL) {
        free(q);
        free(sc);
        free(named);
        return MG_ENOMEM;
    }
    mg__ts_query_analyse(query, ix->st, mg__ts_parts.thesaurus ? ix->th : NULL, q);
    size_t nnamed = mg__ts_parts.server ? named_servers(ix, q, named) : 0;
    size_t touched = score_terms(ix, q, sc);
    if (touched == 0 && q->nwords > 0 && mg__ts_parts.fallback) {
        fuzzy_terms(ix, q);
        memset(sc, 0, ix->count * sizeof *sc);
        touched = score_terms(ix, q, sc);
        if (touched > 0 && how != NULL)
            *how = MG_TOOLSEARCH_FUZZY;
    }
    if (mg__ts_parts.prf && touched > 0)
        feedback(ix, q, sc, hits, cap);
    if (nnamed > 0)
        for (size_t d = 0; d < ix->count; d++)
            if (ix->doc_server[d] != UINT16_MAX && named[ix->doc_server[d]]) {
                sc[d].server = 1;
                /* A named server's tools rank above the rest; with no other word, in catalog order. */
                sc[d].score =
                    sc[d].score > 0 ? sc[d].score * (1 + SERVER_BOOST) : 1e-6f * (float)(ix->count - d);
            }
    size_t n = top(ix, q, sc, hits, cap);
    if (n == 0 && mg__ts_parts.fallback) {
        /* Fallback 2: nothing matched at all. A sample of every server's tools, round robin, so the
         * caller sees what kinds of tools exist (runtime.c adds a hint). */
        if (how != NULL)
            *how = MG_TOOLSEARCH_BROWSE;
        size_t *cursor = calloc(ix->nservers + 1, sizeof *cursor);
        for (int progress = 1; cursor != NULL && progress && n < cap;) {
            progress = 0;
            for (size_t s = 0; s <= ix->nservers && n < cap; s++) {
                size_t d = cursor[s];
                while (d < ix->count &&
                       (ix->doc_server[d] == UINT16_MAX ? ix->nservers : ix->doc_server[d]) != s)
                    d++;
                cursor[s] = d < ix->count ? d + 1 : ix->count;
                if (d < ix->count) {
                    hits[n].pos = d;
                    hits[n].score = 0;
                    hits[n].matched[0] = '\0';
                    n++;
                    progress = 1;
                }
            }
        }
        free(cursor);
    }
    free(q);
    free(sc);
    free(named);
    return (int)n;
}

int mg_toolsearch_index_search(mg_toolsearch_index_t *ix, const char *query, size_t *out, size_t cap)
{
    mg_toolsearch_hit_t hits[MG_TOOLSEARCH_MAX_LIMIT];
    if (cap > MG_TOOLSEARCH_MAX_LIMIT)
        cap = MG_TOOLSEARCH_MAX_LIMIT;
    int n = mg_toolsearch_index_find(ix, query, hits, cap, NULL);
    for (int i = 0; i < n; i++)
        out[i] = hits[i].pos;
    return n;
}

size_t mg_toolsearch_index_size(const mg_toolsearch_index_t *ix)
{
    return ix ? ix->count : 0;
}

size_t mg_toolsearch_index_bytes(const mg_toolsearch_index_t *ix)
{
    return ix ? ix->bytes : 0;
}

void mg_toolsearch_index_free(mg_toolsearch_index_t *ix)
{
    if (ix == NULL)
        return;
    if (ix->st != NULL)
        sb_stemmer_delete(ix->st);
    thesaurus_unref(ix->th);
    free(ix->terms);
    free(ix->post);
    free(ix->arena);
    free(ix->doc_server);
    free(ix->servers);
    free(ix->spelled);
    free(ix->name_off);
    free(ix->name_terms);
    free(ix);
}

/* ---- the cache key ---- */

static void hash_cstr(uint64_t *h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p != '\0'; p++) {
        *h ^= *p;
        *h *= 1099511628211ull;
    }
    *h ^= 0xff; /* field separator: ("ab","c") and ("a","bc") differ */
    *h *= 1099511628211ull;
}

static void hash_str(uint64_t *h, const json_t *v)
{
    hash_cstr(h, json_string_value(v));
}

static void hash_params(uint64_t *h, const json_t *schema, int depth)
{
    if (!json_is_object(schema) || depth > 8)
        return;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), k, sub)
    {
        hash_cstr(h, k);
        hash_str(h, json_object_get(sub, "description"));
        hash_str(h, json_object_get(sub, "title"));
        hash_params(h, sub, depth + 1);
        hash_params(h, json_object_get(sub, "items"), depth + 1);
    }
}

uint64_t mg_toolsearch_index_key(const json_t *tools, const json_t *servers)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;
    json_t *tool;
    json_array_foreach((json_t *)tools, i, tool)
    {
        hash_str(&h, json_object_get(tool, "name"));
        hash_cstr(&h, server_of(servers, i));
        hash_str(&h, json_object_get(tool, "title"));
        hash_str(&h, json_object_get(json_object_get(tool, "annotations"), "title"));
        hash_str(&h, json_object_get(tool, "description"));
        hash_params(&h, json_object_get(tool, "inputSchema"), 0);
        h ^= 0xfe; /* tool separator */
        h *= 1099511628211ull;
    }
    h ^= json_array_size(tools);
    return h ? h : 1;
}
