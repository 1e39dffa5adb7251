/*
 * query.c - what a search_tools query asks for, as weighted terms (toolsearch_int.h).
 *
 * The rules, in order:
 *  1. The query is cut at whitespace into tokens. A flag ("-la", "--force") is dropped. A path or
 *     file name ("~/src", "notes.md", "*.ts") keeps its words at MG__TS_PATH_WEIGHT and, when it
 *     has an extension, adds "file". "#general" adds "channel"; ">" (a shell redirection) adds
 *     "write file". Numbers are dropped.
 *  2. Tokens split into words (toolsearch_int.h); stop words are kept aside for two-word phrases
 *     ("pull up") but never become terms.
 *  3. Clauses (cut at , ; : ? !): when some clause starts with an imperative verb and another does
 *     not (or starts with "while", "after", ...), the others only give context and their words weigh
 *     MG__TS_CONTEXT_WEIGHT: "the save button crashes, file a bug on github" is about filing a bug.
 *  4. The thesaurus (thesaurus.c) adds, for each word and each pair of adjacent words, the words
 *     tools use, at MG__TS_EXPANSION_WEIGHT of the word's weight. A "$" entry (a shell command that
 *     is also an English word, "cat") applies only as the first word of a command-like query.
 *  5. One term per stem, with the highest weight any rule gave it.
 * Read next: index.c (how the terms are scored).
 */
#include "toolsearch_int.h"

#include <ctype.h>
#include <libstemmer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- words and stems ---- */

int mg__ts_words(const char *text, size_t len, int (*cb)(void *arg, const char *word, size_t n), void *arg)
{
    char w[MG__TS_WORD_MAX];
    size_t i = 0;
    while (i < len) {
        while (i < len && !isalnum((unsigned char)text[i]))
            i++;
        size_t n = 0;
        while (i < len && isalnum((unsigned char)text[i])) {
            if (n > 0 && isupper((unsigned char)text[i]) && islower((unsigned char)text[i - 1]))
                break; /* camelCase hump: a new word */
            if (n + 1 < sizeof w)
                w[n++] = (char)tolower((unsigned char)text[i]);
            i++;
        }
        if (n == 0)
            continue;
        w[n] = '\0';
        int r = cb(arg, w, n);
        if (r != 0)
            return r;
    }
    return 0;
}

size_t mg__ts_stem(struct sb_stemmer *st, const char *word, size_t n, char *out)
{
    if (n >= MG__TS_WORD_MAX)
        n = MG__TS_WORD_MAX - 1;
    const sb_symbol *s = st ? sb_stemmer_stem(st, (const sb_symbol *)word, (int)n) : NULL;
    if (s == NULL) { /* no stemmer, or out of memory inside it: the word itself */
        memcpy(out, word, n);
        out[n] = '\0';
        return n;
    }
    size_t l = (size_t)sb_stemmer_length(st);
    if (l >= MG__TS_WORD_MAX)
        l = MG__TS_WORD_MAX - 1;
    memcpy(out, s, l);
    out[l] = '\0';
    return l;
}

static const char *const stop_words[] = {
    "a",     "about", "all",    "am",    "an",    "and",   "any",   "are",   "as",    "at",   "be",
    "been",  "but",   "by",     "can",   "could", "did",   "do",    "does",  "for",   "from", "had",
    "has",   "have",  "he",     "her",   "him",   "his",   "how",   "i",     "if",    "in",   "into",
    "is",    "it",    "its",    "just",  "let",   "like",  "me",    "might", "mine",  "my",   "need",
    "now",   "of",    "off",    "on",    "one",   "onto",  "or",    "our",   "out",   "over", "please",
    "s",     "she",   "should", "so",    "some",  "that",  "the",   "their", "them",  "then", "there",
    "these", "they",  "this",   "those", "to",    "tool",  "tools", "up",    "us",    "use",  "using",
    "very",  "via",   "want",   "was",   "we",    "were",  "what",  "when",  "whose", "will", "with",
    "would", "you",   "your",   "yours", "ll",    "re",    "ve",    "t",     "d",     "m",    "im",
    "ive",   "dont",  "its",    "thats", "whats", "there", "here",  "also",  "again", NULL};

int mg__ts_stop(const char *word)
{
    for (size_t i = 0; stop_words[i] != NULL; i++)
        if (strcmp(stop_words[i], word) == 0)
            return 1;
    return 0;
}

/* Imperative verbs that start the clause a request is in ("..., file a bug on github"). */
static const char *const verbs[] = {
    "accept",   "add",     "analyse", "analyze", "answer",    "append", "approve",  "archive",  "ask",
    "block",    "break",   "browse",  "bump",    "calculate", "cancel", "capture",  "cat",      "change",
    "check",    "choose",  "click",   "clone",   "close",     "commit", "compare",  "compress", "compute",
    "connect",  "convert", "copy",    "count",   "create",    "delete", "describe", "dismiss",  "download",
    "drag",     "draw",    "drop",    "dump",    "edit",      "email",  "enter",    "erase",    "evaluate",
    "execute",  "fetch",   "file",    "fill",    "find",      "fix",    "fork",     "forget",   "generate",
    "get",      "give",    "go",      "grab",    "hit",       "hover",  "inspect",  "jot",      "kill",
    "land",     "link",    "list",    "load",    "locate",    "log",    "look",     "make",     "mark",
    "merge",    "message", "modify",  "move",    "navigate",  "note",   "notify",   "nuke",     "open",
    "paint",    "pick",    "ping",    "plan",    "post",      "press",  "print",    "pull",     "push",
    "put",      "query",   "raise",   "react",   "read",      "recall", "record",   "refresh",  "reload",
    "remember", "remove",  "rename",  "reopen",  "reply",     "report", "resize",   "resolve",  "retrieve",
    "review",   "run",     "save",    "say",     "scan",      "scroll", "search",   "select",   "send",
    "set",      "share",   "ship",    "show",    "sketch",    "snap",   "sort",     "spin",     "start",
    "stash",    "stop",    "store",   "submit",  "summarize", "switch", "take",     "tell",     "think",
    "toggle",   "type",    "update",  "upload",  "view",      "visit",  "wait",     "watch",    "wipe",
    "write",    "zip",     NULL};

/* Words that may open an imperative clause before its verb. */
static const char *const fillers[] = {"please", "now",  "then", "also",   "and",     "so", "ok",
                                      "okay",   "just", "pls",  "kindly", "quickly", NULL};

/* A query opening with one of these is a question. */
static const char *const question_words[] = {
    "what", "whats", "who",  "whos", "which", "where", "wheres", "when",   "how", "hows", "is",
    "are",  "was",   "were", "do",   "does",  "did",   "any",    "anyone", "has", "have", NULL};
/* What a question asks tools to do (stems). */
static const char *const read_verbs[] = {"get", "list", "search", "read", NULL};

static int in_list(const char *const *list, const char *w)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], w) == 0)
            return 1;
    return 0;
}

/* ---- the thesaurus, parsed ---- */

typedef struct entry {
    char key[2][MG__TS_WORD_MAX]; /* stems; key[1][0] == '\0' for one word */
    unsigned char shell;
    unsigned char nexp;
    char exp[6][MG__TS_WORD_MAX];  /* expansion stems */
    char text[6][MG__TS_WORD_MAX]; /* expansion words as written (for "matched") */
} entry_t;

struct mg__ts_thesaurus {
    entry_t *e;
    size_t n;
};

typedef struct collect {
    char (*w)[MG__TS_WORD_MAX];
    size_t n, cap;
} collect_t;

static int collect_cb(void *arg, const char *word, size_t n)
{
    collect_t *c = arg;
    if (c->n < c->cap) {
        memcpy(c->w[c->n], word, n + 1);
        c->n++;
    }
    return 0;
}

mg__ts_thesaurus_t *mg__ts_thesaurus_new(struct sb_stemmer *st, size_t *bytes)
{
    const char *const *lines = mg__ts_thesaurus_lines();
    size_t count = 0;
    while (lines[count] != NULL)
        count++;
    mg__ts_thesaurus_t *th = calloc(1, sizeof *th);
    if (th == NULL || (th->e = calloc(count ? count : 1, sizeof *th->e)) == NULL) {
        free(th);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        const char *line = lines[i], *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        entry_t *e = &th->e[th->n];
        memset(e, 0, sizeof *e);
        if (*line == '$') {
            e->shell = 1;
            line++;
        }
        char words[8][MG__TS_WORD_MAX];
        collect_t c = {words, 0, 8};
        mg__ts_words(line, (size_t)(eq - line), collect_cb, &c);
        if (c.n == 0 || c.n > 2)
            continue;
        for (size_t k = 0; k < c.n; k++)
            mg__ts_stem(st, words[k], strlen(words[k]), e->key[k]);
        c.n = 0;
        c.cap = 6;
        mg__ts_words(eq + 1, strlen(eq + 1), collect_cb, &c);
        for (size_t k = 0; k < c.n; k++) {
            memcpy(e->text[k], words[k], strlen(words[k]) + 1);
            mg__ts_stem(st, words[k], strlen(words[k]), e->exp[k]);
        }
        e->nexp = (unsigned char)c.n;
        th->n++;
    }
    if (bytes != NULL)
        *bytes = sizeof *th + count * sizeof *th->e;
    return th;
}

void mg__ts_thesaurus_free(mg__ts_thesaurus_t *th)
{
    if (th != NULL) {
        free(th->e);
        free(th);
    }
}

/* ---- analysis ---- */

#define QWORDS_MAX 64

typedef struct qword {
    char word[MG__TS_WORD_MAX];
    char stem[MG__TS_WORD_MAX];
    float weight;
    unsigned char stop, clause, first;
} qword_t;

typedef struct analysis {
    qword_t w[QWORDS_MAX];
    size_t n;
    unsigned clause;
    float weight; /* of the token being split */
    int first;    /* next word is the query's first word */
    struct sb_stemmer *st;
} analysis_t;

static int word_cb(void *arg, const char *word, size_t n)
{
    analysis_t *a = arg;
    if (a->n >= QWORDS_MAX)
        return 1;
    int digits = 1;
    for (size_t i = 0; i < n; i++)
        digits &= isdigit((unsigned char)word[i]) != 0;
    if (digits)
        return 0;
    qword_t *q = &a->w[a->n++];
    memcpy(q->word, word, n + 1);
    mg__ts_stem(a->st, word, n, q->stem);
    q->weight = a->weight;
    q->stop = (unsigned char)(mg__ts_stop(word) || n < 2);
    q->clause = (unsigned char)(a->clause < 255 ? a->clause : 255);
    q->first = (unsigned char)a->first;
    a->first = 0;
    return 0;
}

static void add_term(mg__ts_query_t *q, const char *stem, const char *word, const char *text, float weight,
                     int expanded)
{
    /* Typed: the word itself. Expanded: "typed>tool word" (index.c prints it as "typed->word"). */
    char label[MG__TS_WORD_MAX];
    if (expanded)
        snprintf(label, sizeof label, "%.23s>%.23s", word, text);
    else
        snprintf(label, sizeof label, "%s", text);
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->t[i].stem, stem) == 0) {
            if (weight > q->t[i].weight) {
                q->t[i].weight = weight;
                q->t[i].expanded = (unsigned char)expanded;
                memcpy(q->t[i].word, label, sizeof label);
            }
            return;
        }
    if (q->n >= MG__TS_QTERMS_MAX)
        return;
    mg__ts_qterm_t *t = &q->t[q->n++];
    snprintf(t->stem, sizeof t->stem, "%s", stem);
    memcpy(t->word, label, sizeof label);
    t->weight = weight;
    t->expanded = (unsigned char)expanded;
}

/* A typed term's weight lowered to at most w (an idiom's word). */
static void demote(mg__ts_query_t *q, const char *stem, float w)
{
    for (size_t i = 0; i < q->n; i++)
        if (!q->t[i].expanded && strcmp(q->t[i].stem, stem) == 0 && q->t[i].weight > w)
            q->t[i].weight = w;
}

static void expand(mg__ts_query_t *q, const entry_t *e, const char *word, float weight)
{
    for (unsigned k = 0; k < e->nexp; k++)
        add_term(q, e->exp[k], word, e->text[k], weight * MG__TS_EXPANSION_WEIGHT, 1);
}

void mg__ts_query_analyse(const char *query, struct sb_stemmer *st, const mg__ts_thesaurus_t *th,
                          mg__ts_query_t *q)
{
    memset(q, 0, sizeof *q);
    analysis_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return;
    a->st = st;
    a->first = 1;
    int shellish = 0, quoted = 0;
    const char *p = query;
    while (*p != '\0') {
        while (*p != '\0' && isspace((unsigned char)*p))
            p++;
        const char *s = p;
        while (*p != '\0' && !isspace((unsigned char)*p))
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0)
            break;
        char last = s[n - 1];
        int flag = s[0] == '-' && n >= 2 && (isalpha((unsigned char)s[1]) || s[1] == '-');
        int path = 0, ext = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '/' || s[i] == '~' || s[i] == '*' || s[i] == '\\')
                path = 1;
            if (s[i] == '.' && i > 0 && i + 1 < n && isalnum((unsigned char)s[i - 1]) &&
                isalpha((unsigned char)s[i + 1]))
                path = ext = 1;
        }
        if (flag || path || memchr(s, '\'', n) || memchr(s, '"', n) || memchr(s, '`', n) ||
            memchr(s, '|', n) || memchr(s, '>', n))
            shellish = 1;
        if (!mg__ts_parts.shell)
            flag = path = ext = 0;
        if (flag) {
            a->first = 0;
            continue;
        }
        if (mg__ts_parts.shell && n == 1 && (s[0] == '>' || s[0] == '|')) {
            if (s[0] == '>') {
                add_term(q, "write", ">", "write", 1.0f, 1);
                add_term(q, "file", ">", "file", 1.0f, 1);
            }
            continue;
        }
        if (mg__ts_parts.shell && s[0] == '#' && n > 1)
            add_term(q, "channel", "#", "channel", MG__TS_EXPANSION_WEIGHT, 1);
        if (ext)
            add_term(q, "file", "path", "file", MG__TS_EXPANSION_WEIGHT, 1);
        /* Quoted text is data the tool will get ("wait until 'Done' shows"), not what is asked. An
         * apostrophe inside a word ("Dana's") opens nothing. */
        int opens = mg__ts_parts.quotes && (s[0] == '\'' || s[0] == '"' || s[0] == '`');
        int closes =
            n > 1 &&
            (last == '\'' || last == '"' || last == '`' ||
             ((last == ',' || last == '.' || last == ')') && n > 2 && (s[n - 2] == '\'' || s[n - 2] == '"')));
        if (opens)
            quoted = 1;
        a->weight = path || quoted ? MG__TS_PATH_WEIGHT : 1.0f;
        mg__ts_words(s, n, word_cb, a);
        if (closes)
            quoted = 0;
        if (last == ',' || last == ';' || last == ':' || last == '?' || last == '!' ||
            (last == '.' && *p != '\0'))
            a->clause++;
    }
    /* Clauses: context ones weigh less when another starts with a verb. */
    if (a->clause > 0 && mg__ts_parts.clauses) {
        unsigned char imperative[256] = {0}, context[256] = {0};
        for (size_t i = 0; i < a->n; i++) {
            qword_t *w = &a->w[i];
            if (i > 0 && a->w[i - 1].clause == w->clause)
                continue; /* not the clause's first word */
            /* Skip "please", "now", "then"...; a clause opening with "the", "my", "I"... is a
             * statement (context), whatever verb follows. */
            size_t j = i;
            while (j < a->n && a->w[j].clause == w->clause && in_list(fillers, a->w[j].word))
                j++;
            if (j < a->n && a->w[j].clause == w->clause) {
                if (in_list(verbs, a->w[j].word))
                    imperative[w->clause] = 1;
                else
                    context[w->clause] = 1;
            }
        }
        int any_imp = 0, any_ctx = 0;
        for (unsigned c = 0; c <= a->clause && c < 256; c++) {
            any_imp |= imperative[c];
            any_ctx |= context[c];
        }
        if (any_imp && any_ctx)
            for (size_t i = 0; i < a->n; i++)
                if (context[a->w[i].clause])
                    a->w[i].weight *= MG__TS_CONTEXT_WEIGHT;
    }
    size_t content = 0;
    for (size_t i = 0; i < a->n; i++)
        content += !a->w[i].stop;
    /* Typed words. */
    for (size_t i = 0; i < a->n; i++) {
        qword_t *w = &a->w[i];
        if (w->stop)
            continue;
        add_term(q, w->stem, w->word, w->word, w->weight, 0);
        if (q->nwords < sizeof q->words / sizeof q->words[0])
            snprintf(q->words[q->nwords++], MG__TS_WORD_MAX, "%s", w->stem);
    }
    /* A question ("what did people say", "who's in our slack", "is there ...?") asks to read:
     * the reading verbs tools use, at a low weight. */
    if (mg__ts_parts.questions && a->n > 0) {
        size_t len = strlen(query);
        while (len > 0 && isspace((unsigned char)query[len - 1]))
            len--;
        int question = len > 0 && query[len - 1] == '?';
        question |= in_list(question_words, a->w[0].word);
        if (question)
            for (size_t k = 0; read_verbs[k] != NULL; k++)
                add_term(q, read_verbs[k], "?", read_verbs[k], MG__TS_QUESTION_WEIGHT, 1);
    }
    /* Thesaurus: single words, adjacent pairs (stop words included: "pull up") and adjacent content
     * words ("file a bug" -> "file bug"). */
    for (size_t i = 0; th != NULL && i < a->n; i++) {
        const qword_t *w = &a->w[i];
        size_t next = i + 1, next_content = i + 1;
        while (next_content < a->n && a->w[next_content].stop)
            next_content++;
        for (size_t k = 0; k < th->n; k++) {
            const entry_t *e = &th->e[k];
            if (strcmp(e->key[0], w->stem) != 0)
                continue;
            if (e->key[1][0] == '\0') {
                if (w->stop)
                    continue;
                if (e->shell && !(mg__ts_parts.shell && w->first && (shellish || content <= 2)))
                    continue;
                expand(q, e, w->word, w->weight);
                continue;
            }
            const qword_t *b = NULL;
            if (next < a->n && strcmp(e->key[1], a->w[next].stem) == 0)
                b = &a->w[next];
            else if (!w->stop && next_content < a->n && strcmp(e->key[1], a->w[next_content].stem) == 0)
                b = &a->w[next_content];
            if (b != NULL && mg__ts_parts.phrases) {
                /* An idiom means something else than its words ("pull up" is not a pull request,
                 * "file a bug" not a file): its typed words weigh as much as an expansion. */
                demote(q, w->stem, w->weight * MG__TS_EXPANSION_WEIGHT);
                demote(q, b->stem, b->weight * MG__TS_EXPANSION_WEIGHT);
            }
            if (b != NULL) {
                char both[MG__TS_WORD_MAX];
                snprintf(both, sizeof both, "%.22s %.22s", w->word, b->word);
                expand(q, e, both, w->weight > b->weight ? w->weight : b->weight);
            }
        }
    }
    free(a);
}
