/*
 * toolsearch_int.h - internals shared by the search index (index.c), the query analysis (query.c)
 * and the thesaurus (thesaurus.c). Not for other modules: toolsearch.h is the contract.
 *
 * Text becomes terms the same way on both sides: split at anything not a letter or digit and at
 * camelCase humps, lower-cased, Snowball English stem (libstemmer). A query becomes a list of
 * weighted terms (mg__ts_query_t): the words typed, weighed by where they stand (a context clause,
 * a path), plus thesaurus expansions that weigh less; index.c scores tools with BM25F over them.
 * Read next: query.c, then index.c.
 */
#ifndef MG_TOOLSEARCH_INT_H
#define MG_TOOLSEARCH_INT_H

#include <stddef.h>

#define MG__TS_WORD_MAX   48 /* longer words are cut (stems compare on the cut form) */
#define MG__TS_QTERMS_MAX 96 /* terms of one analysed query, expansions included */

struct sb_stemmer;

/* One weighted term of a query. */
typedef struct mg__ts_qterm {
    char stem[MG__TS_WORD_MAX];
    char word[MG__TS_WORD_MAX]; /* the query's word this term comes from (for "matched") */
    float weight;
    unsigned char expanded; /* 1 when it comes from the thesaurus, not typed */
} mg__ts_qterm_t;

typedef struct mg__ts_query {
    mg__ts_qterm_t t[MG__TS_QTERMS_MAX];
    size_t n;
    /* The typed content words, stemmed, in order (server-name detection in index.c). */
    char words[32][MG__TS_WORD_MAX];
    size_t nwords;
} mg__ts_query_t;

/*
 * Calls cb for each word of text[0..len): runs of ASCII letters and digits (other bytes split),
 * split at camelCase humps, lower-cased and cut to MG__TS_WORD_MAX - 1 bytes. Stops early when cb
 * returns non-zero and returns that value; 0 otherwise.
 */
int mg__ts_words(const char *text, size_t len, int (*cb)(void *arg, const char *word, size_t n), void *arg);

/* Snowball English stem of word (n bytes, lower case) into out (MG__TS_WORD_MAX); st may be NULL
 * (no stemming: the word is copied). Returns the stem's length. */
size_t mg__ts_stem(struct sb_stemmer *st, const char *word, size_t n, char *out);

/* 1 for words that never say which tool is wanted ("the", "please", "tool"). */
int mg__ts_stop(const char *word);

/*
 * Analyses a query (see query.c for the rules) into q. th is the parsed thesaurus
 * (mg__ts_thesaurus_new); st the stemmer (may be NULL). Never fails: a query without content words
 * gives q->n == 0.
 */
typedef struct mg__ts_thesaurus mg__ts_thesaurus_t;
void mg__ts_query_analyse(const char *query, struct sb_stemmer *st, const mg__ts_thesaurus_t *th,
                          mg__ts_query_t *q);

/* The curated table of thesaurus.c: NULL-terminated lines "[$]key words = expansion words". */
const char *const *mg__ts_thesaurus_lines(void);
/* The table parsed and stemmed with st (NULL when out of memory); *bytes gets its size. */
mg__ts_thesaurus_t *mg__ts_thesaurus_new(struct sb_stemmer *st, size_t *bytes);
void mg__ts_thesaurus_free(mg__ts_thesaurus_t *th);

/*
 * Switches for measuring what each part of the search contributes (mcpgate-searchbench --without
 * NAME, --with NAME). The gateway never changes them: every part is on but `prf`.
 */
typedef struct mg__ts_parts {
    int stem;      /* Snowball stemming (off: words as typed) */
    int thesaurus; /* thesaurus expansion */
    int fields;    /* field weights (off: every field 1, b 0.75, the description one field) */
    int server;    /* server narrowing */
    int clauses;   /* context clauses weigh less */
    int shell;     /* flags, paths, redirections and "$" shell entries */
    int fallback;  /* spelling and browse fallbacks */
    int exact;     /* a typed word's exact form counts on top of its stem */
    int quotes;    /* quoted words weigh as little as paths */
    int questions; /* a question adds reading verbs */
    int phrases;   /* the words of a two-word thesaurus idiom weigh as expansions */
    int prf;       /* pseudo-relevance feedback from the best tools' names (measured; off) */
} mg__ts_parts_t;
extern mg__ts_parts_t mg__ts_parts;

/* Weight of a thesaurus expansion relative to the word it expands (query.c; searchbench tunes it
 * through MG_TOOLSEARCH_TUNE only in builds made for that, never at run time). */
#define MG__TS_EXPANSION_WEIGHT 0.6f
/* Weight of the words of a clause that only gives context ("the save button crashes, file a bug"). */
#define MG__TS_CONTEXT_WEIGHT 0.2f
/* Weight of the words inside a path or file name ("notes.md"). */
#define MG__TS_PATH_WEIGHT 0.3f
/* Weight of the reading verbs a question adds ("what did people say in #random"). */
#define MG__TS_QUESTION_WEIGHT 0.3f

#endif
