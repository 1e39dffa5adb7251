/*
 * task_store_pg.c - task_store.h over the session store's PostgreSQL client: every replica reads
 * and writes the same task records, so tasks/get and tasks/cancel work wherever they land. The
 * PostgreSQL twin of task_store_redis.c, with the same contract.
 *
 * Table mcpgate_tasks (schema version 2, pg_schema.c): k = "<keyPrefix>t:<task>", pk =
 * "<keyPrefix>tp:<principal>", rec (the record JSON as written, text; never parsed by the database:
 * a result may hold \u0000, which its JSON types refuse), head (the record's scalar fields: what a
 * failed record of a gone owner keeps), status, owner, fin (the status is terminal:
 * mcpgate_task_final), expires (creation + the task's TTL; the sweep deletes expired rows, reads
 * ignore them). One statement per operation, each a PL/pgSQL function (its own transaction):
 *   mcpgate_task_create  takes the principal's advisory lock (1835492202, hashtext(pk)), counts its
 *                        unfinished unexpired rows and inserts only below the limit: exact under
 *                        concurrency, from any number of replicas
 *   mcpgate_task_get     an unfinished row whose owner has no live registry row (mcpgate_values,
 *                        "<keyPrefix>r:<replica>") is rewritten, under its row lock, as a failed
 *                        record (error {code, message} = MG_EREPLICA and why_gone)
 *   mcpgate_task_update  under the row lock: absent -> 0, terminal -> 2 with the stored record,
 *                        else the record is replaced (same expiry) -> 1
 * The store never sees a token: principal is the principal's key (a hash). A record is as large as
 * tasks.c lets it be (gateway.tasks.maxResultBytes); the table is bounded by the TTL, as Redis is.
 * PostgreSQL unreachable or slower than timeoutMs: the operation ends with MG_EIO.
 * Read next: task_store.h, pg_schema.c (the functions), gateway/tasks.c.
 */
#include "task_store.h"
#include "../common/err.h"
#include "../common/json.h"
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct task_pg {
    mg_task_store_t base;
    mg_pg_t *p;
} task_pg_t;

typedef struct op {
    mg_task_store_cb cb;
    void *data;
    json_t *rec; /* create/update: what was written (passed on success) */
} op_t;

static const char *field(const json_t *rec, const char *k)
{
    const char *v = json_string_value(json_object_get(rec, k));
    return v != NULL ? v : "";
}

/* The record's scalar fields (what a failed record of a gone owner keeps), as JSON; NULL when out
 * of memory. */
static char *head_of(const json_t *rec)
{
    static const char *const keys[] = {"id",    "principal",      "owner", "createdAt",
                                       "ttlMs", "pollIntervalMs", "legacy"};
    json_t *h = json_object();
    for (size_t i = 0; h != NULL && i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(rec, keys[i]);
        if (v != NULL && !json_is_object(v) && !json_is_array(v))
            json_object_set(h, keys[i], v);
    }
    char *text = h != NULL ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    return text;
}

static void op_end(op_t *o, int err, json_t *rec)
{
    o->cb(o->data, err, rec);
    json_decref(o->rec);
    free(o);
}

static json_t *parse_col(const PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col))
        return NULL;
    return json_loadb(PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col), 0, NULL);
}

/* A result of one row and n columns: 1, else the operation failed (counted). */
static int one_row(mg_pg_t *p, const PGresult *res, int n)
{
    if (!mg__pg_ok(res) || PQntuples(res) != 1 || PQnfields(res) != n) {
        p->ops_failed++;
        return 0;
    }
    p->ops_ok++;
    return 1;
}

static void create_cb(mg_pg_t *p, PGresult *res, void *data)
{
    op_t *o = data;
    if (!one_row(p, res, 1)) {
        op_end(o, MG_EIO, NULL);
        return;
    }
    int ok = PQgetvalue(res, 0, 0)[0] == 't';
    op_end(o, ok ? 0 : MG_EBUSY, ok ? o->rec : NULL);
}

static void get_cb(mg_pg_t *p, PGresult *res, void *data)
{
    op_t *o = data;
    if (!one_row(p, res, 1)) {
        op_end(o, MG_EIO, NULL);
        return;
    }
    json_t *rec = parse_col(res, 0);
    op_end(o, 0, rec);
    json_decref(rec);
}

static void update_cb(mg_pg_t *p, PGresult *res, void *data)
{
    op_t *o = data;
    if (!one_row(p, res, 2)) {
        op_end(o, MG_EIO, NULL);
        return;
    }
    int code = atoi(PQgetvalue(res, 0, 0));
    if (code == 1) {
        op_end(o, 0, o->rec);
    } else if (code == 2) {
        json_t *stored = parse_col(res, 1);
        op_end(o, MG_EBUSY, stored);
        json_decref(stored);
    } else {
        op_end(o, 0, NULL);
    }
}

static int run(task_pg_t *t, int stmt, int n, const char *const *vals, pg_result_cb fn, mg_task_store_cb cb,
               void *data, const json_t *rec)
{
    op_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return MG_ENOMEM;
    o->cb = cb;
    o->data = data;
    o->rec = rec != NULL ? mg_json_deep_copy(rec) : NULL;
    int e = mg__pg_query(t->p, stmt, n, vals, fn, o);
    if (e != 0) {
        t->p->ops_failed++;
        json_decref(o->rec);
        free(o);
    }
    return e;
}

static char *key(mg_pg_t *p, const char *kind, const char *name)
{
    size_t n = p->prefix_len + strlen(kind) + strlen(name) + 1;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s%s%s", p->prefix, kind, name);
    return k;
}

static int tp_create(mg_task_store_t *st, const json_t *record, unsigned limit, uint64_t ttl_ms,
                     mg_task_store_cb cb, void *data)
{
    task_pg_t *t = (task_pg_t *)st;
    char *text = json_dumps(record, JSON_COMPACT);
    char *k = key(t->p, "t:", field(record, "id"));
    char *pk = key(t->p, "tp:", field(record, "principal"));
    char ttl[24], lim[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    snprintf(lim, sizeof lim, "%u", limit);
    const char *status = field(record, "status");
    int e = MG_ENOMEM;
    char *head = head_of(record);
    if (text != NULL && head != NULL && k != NULL && pk != NULL) {
        const char *v[] = {k, pk, text, head, status, field(record, "owner"), ttl, lim};
        e = run(t, S_TCREATE, 8, v, create_cb, cb, data, record);
    }
    free(text);
    free(head);
    free(k);
    free(pk);
    return e;
}

static int tp_get(mg_task_store_t *st, const char *id, const char *why_gone, mg_task_store_cb cb, void *data)
{
    task_pg_t *t = (task_pg_t *)st;
    char *k = key(t->p, "t:", id);
    char *reg = key(t->p, "r:", "");
    int e = MG_ENOMEM;
    if (k != NULL && reg != NULL) {
        char code[16];
        snprintf(code, sizeof code, "%d", mg_err_jsonrpc_code(MG_EREPLICA));
        const char *v[] = {k, reg, why_gone != NULL ? why_gone : "", code};
        e = run(t, S_TGET, 4, v, get_cb, cb, data, NULL);
    }
    free(k);
    free(reg);
    return e;
}

static int tp_update(mg_task_store_t *st, const json_t *record, mg_task_store_cb cb, void *data)
{
    task_pg_t *t = (task_pg_t *)st;
    char *text = json_dumps(record, JSON_COMPACT);
    char *k = key(t->p, "t:", field(record, "id"));
    const char *status = field(record, "status");
    int e = MG_ENOMEM;
    char *head = head_of(record);
    if (text != NULL && head != NULL && k != NULL) {
        const char *v[] = {k, text, head, status, field(record, "owner")};
        e = run(t, S_TUPDATE, 5, v, update_cb, cb, data, record);
    }
    free(text);
    free(head);
    free(k);
    return e;
}

static void tp_free(mg_task_store_t *st)
{
    task_pg_t *t = (task_pg_t *)st;
    mg_pg_t *p = t->p;
    free(t);
    mg__pg_release(p);
}

static const mg_task_store_ops_t tp_ops = {tp_create, tp_get, tp_update, tp_free};

mg_task_store_t *mg_pg_task_store_new(struct mg_store *session_store)
{
    mg_pg_t *p = mg__pg_of_store(session_store);
    if (p == NULL)
        return NULL;
    task_pg_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        mg__pg_release(p);
        return NULL;
    }
    t->base.ops = &tp_ops;
    t->p = p;
    return &t->base;
}
