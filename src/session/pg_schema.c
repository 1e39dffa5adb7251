/*
 * pg_schema.c - the SQL of the PostgreSQL store: the versioned schema (tables and functions), the
 * prepared statements every command connection prepares, and `mcpgate store migrate`.
 *
 * Tables (the keys carry gateway.sessions.keyPrefix; pick a schema with the spec's
 * options=-csearch_path=NAME to keep several deployments apart):
 *
 *   | table            | key       | content                                                     |
 *   |------------------|-----------|-------------------------------------------------------------|
 *   | mcpgate_schema   | version   | one row per migration applied                               |
 *   | mcpgate_sessions | k         | rec (record JSON minus the fields below), log_level, subs   |
 *   |                  |           | (jsonb uri -> server index), owner, expires (idle TTL)      |
 *   | mcpgate_values   | k         | val, expires (NULL = never): replica registry, stream meta  |
 *   | mcpgate_logs     | k         | n (seq counter of a log with several writers), expires      |
 *   | mcpgate_events   | k, seq    | data, fin: the SSE event logs, trimmed to maxlen per append |
 *   | mcpgate_payloads | id        | NOTIFY messages too long to send inline (kept 2 minutes)    |
 *   | mcpgate_buckets  | k         | rate-limit bucket: units, t (database ms), rule, expires    |
 *   | mcpgate_tasks    | k         | task record (rec; head: its scalar fields), pk (principal's |
 *   |                  |           | key), status, owner, fin (terminal), expires (the task's    |
 *   |                  |           | TTL); since version 2                                       |
 *
 * Every multi-step change is one statement (a function runs in its statement's transaction):
 * mcpgate_load (owner liveness + claim + expiry, touching the row only when something changes or
 * the expiry moved by more than a tenth of the TTL, at most 10 s), mcpgate_owner_cas, mcpgate_append
 * (counter, event, trim, NOTIFY), mcpgate_rl_take (advisory locks on the buckets in key order, then
 * the bucket math of ratelimit.c with clock_timestamp()), mcpgate_sweep (expiry: any replica calls
 * it every 10 s; pg_try_advisory_xact_lock lets one at a time work, in batches).
 * mcpgate_task_create/get/update (version 2, task_store_pg.c): the task records.
 * Advisory lock keys: (1835492200, 0) migrations, (1835492200, 1) the sweep, (1835492201, hash)
 * rate-limit buckets, (1835492202, hash) a principal's tasks.
 * A new schema version: append a migration below, raise PG_SCHEMA_LATEST (pg_int.h); never edit one
 * that shipped. Read next: store_pg.c.
 */
#include "pg_int.h"
#include "../common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mg__pg_notice_cb(void *arg, const char *message)
{
}

const char mg__pg_schema_begin[] = "BEGIN;\n"
                                   "SELECT pg_advisory_xact_lock(1835492200, 0);\n"
                                   "CREATE TABLE IF NOT EXISTS mcpgate_schema (version int PRIMARY KEY,"
                                   " applied timestamptz NOT NULL DEFAULT now());\n"
                                   "SELECT max(version) FROM mcpgate_schema";

const char mg__pg_schema_check[] = "SELECT max(version) FROM mcpgate_schema";

static const char migration_1[] =
    "CREATE TABLE mcpgate_sessions (k text PRIMARY KEY, rec text NOT NULL, log_level int,"
    " subs jsonb NOT NULL DEFAULT '{}', owner text, expires timestamptz NOT NULL);\n"
    "CREATE INDEX mcpgate_sessions_expires ON mcpgate_sessions (expires);\n"
    "CREATE TABLE mcpgate_values (k text PRIMARY KEY, val text NOT NULL, expires timestamptz);\n"
    "CREATE INDEX mcpgate_values_expires ON mcpgate_values (expires) WHERE expires IS NOT NULL;\n"
    "CREATE TABLE mcpgate_logs (k text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, expires timestamptz);\n"
    "CREATE INDEX mcpgate_logs_expires ON mcpgate_logs (expires) WHERE expires IS NOT NULL;\n"
    "CREATE TABLE mcpgate_events (k text NOT NULL, seq bigint NOT NULL, data text NOT NULL,"
    " fin boolean NOT NULL DEFAULT false, PRIMARY KEY (k, seq));\n"
    "CREATE TABLE mcpgate_payloads (id bigserial PRIMARY KEY, data text NOT NULL,"
    " created timestamptz NOT NULL DEFAULT now());\n"
    "CREATE INDEX mcpgate_payloads_created ON mcpgate_payloads (created);\n"
    "CREATE TABLE mcpgate_buckets (k text PRIMARY KEY, units bigint NOT NULL, t bigint NOT NULL,"
    " rule text NOT NULL, expires timestamptz NOT NULL);\n"
    "CREATE INDEX mcpgate_buckets_expires ON mcpgate_buckets (expires);\n"
    /* the owner a load leaves: "!" + a dead owner, or me when claiming an unowned record */
    "CREATE FUNCTION mcpgate_owner_next(o text, me text, reg text, claim boolean) RETURNS text\n"
    "LANGUAGE plpgsql STABLE AS $f$\n"
    "BEGIN\n"
    "  IF me = '' THEN RETURN o; END IF;\n"
    "  IF o IS NOT NULL AND o <> me AND left(o, 1) <> '!' AND NOT EXISTS (SELECT 1 FROM mcpgate_values v\n"
    "      WHERE v.k = reg || o AND (v.expires IS NULL OR v.expires > now())) THEN\n"
    "    RETURN '!' || o;\n"
    "  END IF;\n"
    "  IF o IS NULL AND claim THEN RETURN me; END IF;\n"
    "  RETURN o;\n"
    "END $f$;\n"
    "CREATE FUNCTION mcpgate_load(p_k text, p_ttl bigint, p_me text, p_reg text, p_claim boolean)\n"
    "RETURNS TABLE (r_rec text, r_log_level int, r_subs jsonb, r_owner text)\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE s mcpgate_sessions%ROWTYPE; o text;\n"
    "BEGIN\n"
    "  SELECT * INTO s FROM mcpgate_sessions x WHERE x.k = p_k AND x.expires > now();\n"
    "  IF NOT FOUND THEN RETURN; END IF;\n"
    "  o := mcpgate_owner_next(s.owner, p_me, p_reg, p_claim);\n"
    "  IF o IS DISTINCT FROM s.owner THEN\n"
    "    SELECT * INTO s FROM mcpgate_sessions x WHERE x.k = p_k AND x.expires > now() FOR UPDATE;\n"
    "    IF NOT FOUND THEN RETURN; END IF;\n"
    "    o := mcpgate_owner_next(s.owner, p_me, p_reg, p_claim);\n"
    "    UPDATE mcpgate_sessions x SET owner = o, expires = CASE WHEN p_ttl > 0\n"
    "      THEN now() + p_ttl * interval '1 millisecond' ELSE x.expires END WHERE x.k = p_k;\n"
    "    s.owner := o;\n"
    "  ELSIF p_ttl > 0 AND s.expires < now() + (p_ttl - least(p_ttl / 10, 10000)) * interval '1 millisecond'"
    " THEN\n"
    "    UPDATE mcpgate_sessions x SET expires = now() + p_ttl * interval '1 millisecond' WHERE x.k = p_k;\n"
    "  END IF;\n"
    "  r_rec := s.rec; r_log_level := s.log_level; r_subs := s.subs; r_owner := s.owner;\n"
    "  RETURN NEXT;\n"
    "END $f$;\n"
    /* -1 no record, 0 the owner is something else, 1 swapped */
    "CREATE FUNCTION mcpgate_owner_cas(p_k text, p_expect text, p_value text) RETURNS int\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE o text;\n"
    "BEGIN\n"
    "  SELECT coalesce(x.owner, '') INTO o FROM mcpgate_sessions x\n"
    "    WHERE x.k = p_k AND x.expires > now() FOR UPDATE;\n"
    "  IF NOT FOUND THEN RETURN -1; END IF;\n"
    "  IF o <> p_expect THEN RETURN 0; END IF;\n"
    "  UPDATE mcpgate_sessions x SET owner = nullif(p_value, '') WHERE x.k = p_k;\n"
    "  RETURN 1;\n"
    "END $f$;\n"
    "CREATE FUNCTION mcpgate_publish(p_ch text, p_msg text) RETURNS void\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE i bigint;\n"
    "BEGIN\n"
    "  IF octet_length(p_msg) > 7900 THEN\n"
    "    INSERT INTO mcpgate_payloads (data) VALUES (p_msg) RETURNING id INTO i;\n"
    "    PERFORM pg_notify(p_ch, '@' || i);\n"
    "  ELSE\n"
    "    PERFORM pg_notify(p_ch, '=' || p_msg);\n"
    "  END IF;\n"
    "END $f$;\n"
    "CREATE FUNCTION mcpgate_append(p_k text, p_ch text, p_seq bigint, p_data text, p_end boolean,\n"
    "  p_maxlen int, p_ttl bigint) RETURNS bigint\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE s bigint := p_seq; e timestamptz; old timestamptz;\n"
    "BEGIN\n"
    "  IF p_ttl > 0 THEN e := now() + p_ttl * interval '1 millisecond'; END IF;\n"
    "  SELECT l.expires INTO old FROM mcpgate_logs l WHERE l.k = p_k;\n"
    "  IF old IS NOT NULL AND old <= now() THEN\n" /* expired, not swept yet: starts afresh */
    "    DELETE FROM mcpgate_events x WHERE x.k = p_k;\n"
    "    DELETE FROM mcpgate_logs l WHERE l.k = p_k;\n"
    "  END IF;\n"
    "  IF s = 0 THEN\n"
    "    INSERT INTO mcpgate_logs AS l (k, n, expires) VALUES (p_k, 1, e)\n"
    "      ON CONFLICT (k) DO UPDATE SET n = l.n + 1, expires = e RETURNING l.n INTO s;\n"
    "  ELSIF p_maxlen > 0 THEN\n"
    "    INSERT INTO mcpgate_logs AS l (k, n, expires) VALUES (p_k, 0, e)\n"
    "      ON CONFLICT (k) DO UPDATE SET expires = e;\n"
    "  END IF;\n"
    "  IF p_maxlen > 0 THEN\n"
    "    INSERT INTO mcpgate_events AS x (k, seq, data, fin) VALUES (p_k, s, p_data, p_end)\n"
    "      ON CONFLICT (k, seq) DO UPDATE SET data = excluded.data, fin = excluded.fin;\n"
    "    DELETE FROM mcpgate_events x WHERE x.k = p_k AND x.seq <= s - p_maxlen;\n"
    "  END IF;\n"
    "  PERFORM mcpgate_publish(p_ch, s || ' ' || CASE WHEN p_end THEN 'e' ELSE 'd' END || E'\\n' || "
    "p_data);\n"
    "  RETURN s;\n"
    "END $f$;\n"
    "CREATE FUNCTION mcpgate_rl_take(p jsonb, OUT r_allowed boolean, OUT r_limiting int,\n"
    "  OUT r_remaining bigint, OUT r_retry bigint, OUT r_reset bigint)\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  n int := jsonb_array_length(p);\n"
    "  ks text[]; rq bigint[]; pr bigint[]; bu bigint[]; u bigint[]; sg text[];\n"
    "  nowms bigint; cap bigint; units bigint; last bigint; miss bigint; el bigint;\n"
    "  deny int := 0; dwait bigint := 0; w bigint; fl bigint; lf bigint; kk text;\n"
    "  b_units bigint; b_t bigint; b_rule text;\n"
    "BEGIN\n"
    "  FOR i IN 1..n LOOP\n"
    "    ks[i] := p->(i - 1)->>0; rq[i] := (p->(i - 1)->>1)::bigint;\n"
    "    pr[i] := (p->(i - 1)->>2)::bigint; bu[i] := (p->(i - 1)->>3)::bigint;\n"
    "    sg[i] := rq[i] || '/' || pr[i] || '/' || bu[i];\n"
    "  END LOOP;\n"
    "  FOR kk IN SELECT DISTINCT x FROM unnest(ks) AS x ORDER BY 1 LOOP\n"
    "    PERFORM pg_advisory_xact_lock(1835492201, hashtext(kk));\n"
    "  END LOOP;\n"
    "  nowms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;\n"
    "  FOR i IN 1..n LOOP\n"
    "    cap := bu[i] * pr[i];\n"
    "    SELECT x.units, x.t, x.rule INTO b_units, b_t, b_rule FROM mcpgate_buckets x WHERE x.k = ks[i];\n"
    "    IF b_units IS NULL OR b_rule IS DISTINCT FROM sg[i] THEN units := cap; last := nowms;\n"
    "    ELSE units := b_units; last := b_t; END IF;\n"
    "    IF nowms > last AND units < cap THEN\n"
    "      miss := cap - units; el := nowms - last;\n"
    "      IF el >= miss / rq[i] + 1 THEN units := cap;\n"
    "      ELSIF el * rq[i] >= miss THEN units := cap;\n"
    "      ELSE units := units + el * rq[i]; END IF;\n"
    "    END IF;\n"
    "    u[i] := units;\n"
    "    IF units < pr[i] THEN\n"
    "      w := (pr[i] - units + rq[i] - 1) / rq[i];\n"
    "      IF deny = 0 OR w > dwait THEN deny := i; dwait := w; END IF;\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  IF deny > 0 THEN\n"
    "    r_allowed := false; r_limiting := deny - 1; r_remaining := 0; r_retry := dwait;\n"
    "    r_reset := (bu[deny] * pr[deny] - u[deny] + rq[deny] - 1) / rq[deny];\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  r_allowed := true; r_limiting := 0; r_remaining := -1; r_retry := 0; r_reset := 0;\n"
    "  FOR i IN 1..n LOOP\n"
    "    cap := bu[i] * pr[i]; units := u[i] - pr[i];\n"
    "    fl := (cap - units + rq[i] - 1) / rq[i];\n"
    "    INSERT INTO mcpgate_buckets AS x (k, units, t, rule, expires)\n"
    "      VALUES (ks[i], units, nowms, sg[i], to_timestamp((nowms + fl + 1000) / 1000.0))\n"
    "      ON CONFLICT (k) DO UPDATE SET units = excluded.units, t = excluded.t, rule = excluded.rule,\n"
    "        expires = excluded.expires;\n"
    "    lf := units / pr[i];\n"
    "    IF r_remaining < 0 OR lf < r_remaining THEN r_limiting := i - 1; r_remaining := lf; r_reset := fl; "
    "END IF;\n"
    "  END LOOP;\n"
    "END $f$;\n"
    /* rows removed, or -1 when another replica is sweeping */
    "CREATE FUNCTION mcpgate_sweep() RETURNS int\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE n int := 0; m int;\n"
    "BEGIN\n"
    "  IF NOT pg_try_advisory_xact_lock(1835492200, 1) THEN RETURN -1; END IF;\n"
    "  DELETE FROM mcpgate_sessions WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_sessions x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_values WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_values x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  WITH d AS (DELETE FROM mcpgate_logs WHERE k IN\n"
    "      (SELECT x.k FROM mcpgate_logs x WHERE x.expires <= now() LIMIT 2000) RETURNING k)\n"
    "    DELETE FROM mcpgate_events e USING d WHERE e.k = d.k;\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_buckets WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_buckets x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_payloads WHERE created < now() - interval '2 minutes';\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  RETURN n;\n"
    "END $f$";

/* Version 2: the task records (task_store_pg.c); the sweep learns the new table. */
static const char migration_2[] =
    "CREATE TABLE mcpgate_tasks (k text PRIMARY KEY, pk text NOT NULL, rec text NOT NULL,"
    " head text NOT NULL, status text NOT NULL, owner text NOT NULL DEFAULT '', fin boolean NOT NULL,"
    " expires timestamptz NOT NULL);\n"
    "CREATE INDEX mcpgate_tasks_expires ON mcpgate_tasks (expires);\n"
    "CREATE INDEX mcpgate_tasks_unfinished ON mcpgate_tasks (pk) WHERE NOT fin;\n"
    /* true for the terminal statuses (task_store.h) */
    "CREATE FUNCTION mcpgate_task_final(s text) RETURNS boolean\n"
    "LANGUAGE sql IMMUTABLE AS $f$ SELECT s IN ('completed', 'failed', 'cancelled') $f$;\n"
    /* true: the owner replica has a live registry row (or the task has no owner) */
    "CREATE FUNCTION mcpgate_task_owner_alive(o text, reg text) RETURNS boolean\n"
    "LANGUAGE sql STABLE AS $f$\n"
    "  SELECT o = '' OR EXISTS (SELECT 1 FROM mcpgate_values v\n"
    "    WHERE v.k = reg || o AND (v.expires IS NULL OR v.expires > now()))\n"
    "$f$;\n"
    /* false at the limit: the principal's advisory lock makes count-then-insert exact */
    "CREATE FUNCTION mcpgate_task_create(p_k text, p_pk text, p_rec text, p_head text, p_status text,\n"
    "  p_owner text, p_ttl bigint, p_limit int) RETURNS boolean\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE n bigint;\n"
    "BEGIN\n"
    "  PERFORM pg_advisory_xact_lock(1835492202, hashtext(p_pk));\n"
    "  SELECT count(*) INTO n FROM mcpgate_tasks x\n"
    "    WHERE x.pk = p_pk AND NOT x.fin AND x.expires > now();\n"
    "  IF n >= p_limit THEN RETURN false; END IF;\n"
    "  INSERT INTO mcpgate_tasks AS x (k, pk, rec, head, status, owner, fin, expires)\n"
    "    VALUES (p_k, p_pk, p_rec, p_head, p_status, p_owner, mcpgate_task_final(p_status),\n"
    "      now() + p_ttl * interval '1 millisecond')\n"
    "    ON CONFLICT (k) DO UPDATE SET pk = excluded.pk, rec = excluded.rec, head = excluded.head,\n"
    "      status = excluded.status, owner = excluded.owner, fin = excluded.fin,\n"
    "      expires = excluded.expires;\n"
    "  RETURN true;\n"
    "END $f$;\n"
    /* the record (NULL: absent or expired); an unfinished one of a gone owner becomes failed, built
     * from head (the record's scalar fields): rec is never parsed here, since a result may hold
     * \u0000, which PostgreSQL's JSON functions refuse */
    "CREATE FUNCTION mcpgate_task_get(p_k text, p_reg text, p_why text, p_code int) RETURNS text\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE t mcpgate_tasks%ROWTYPE; d jsonb; v text;\n"
    "BEGIN\n"
    "  SELECT * INTO t FROM mcpgate_tasks x WHERE x.k = p_k AND x.expires > now();\n"
    "  IF NOT FOUND THEN RETURN NULL; END IF;\n"
    "  IF t.fin OR mcpgate_task_owner_alive(t.owner, p_reg) THEN RETURN t.rec; END IF;\n"
    "  SELECT * INTO t FROM mcpgate_tasks x WHERE x.k = p_k AND x.expires > now() FOR UPDATE;\n"
    "  IF NOT FOUND THEN RETURN NULL; END IF;\n"
    "  IF t.fin OR mcpgate_task_owner_alive(t.owner, p_reg) THEN RETURN t.rec; END IF;\n"
    "  d := t.head::jsonb;\n"
    "  v := jsonb_strip_nulls(jsonb_build_object('id', d->'id', 'principal', d->'principal',\n"
    "    'owner', d->'owner', 'status', 'failed', 'statusMessage', p_why, 'createdAt', d->'createdAt',\n"
    "    'updatedAt', floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, 'ttlMs', d->'ttlMs',\n"
    "    'pollIntervalMs', d->'pollIntervalMs', 'legacy', d->'legacy',\n"
    "    'error', jsonb_build_object('code', p_code, 'message', p_why)))::text;\n"
    "  UPDATE mcpgate_tasks x SET rec = v, status = 'failed', fin = true WHERE x.k = p_k;\n"
    "  RETURN v;\n"
    "END $f$;\n"
    /* r_code 1 replaced, 0 absent, 2 the stored record (r_rec) is terminal */
    "CREATE FUNCTION mcpgate_task_update(p_k text, p_rec text, p_head text, p_status text, p_owner text,\n"
    "  OUT r_code int, OUT r_rec text)\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE f boolean; old text;\n"
    "BEGIN\n"
    "  SELECT x.fin, x.rec INTO f, old FROM mcpgate_tasks x\n"
    "    WHERE x.k = p_k AND x.expires > now() FOR UPDATE;\n"
    "  IF NOT FOUND THEN r_code := 0; RETURN; END IF;\n"
    "  IF f THEN r_code := 2; r_rec := old; RETURN; END IF;\n"
    "  UPDATE mcpgate_tasks x SET rec = p_rec, head = p_head, status = p_status, owner = p_owner,\n"
    "    fin = mcpgate_task_final(p_status) WHERE x.k = p_k;\n"
    "  r_code := 1;\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION mcpgate_sweep() RETURNS int\n"
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE n int := 0; m int;\n"
    "BEGIN\n"
    "  IF NOT pg_try_advisory_xact_lock(1835492200, 1) THEN RETURN -1; END IF;\n"
    "  DELETE FROM mcpgate_sessions WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_sessions x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_values WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_values x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  WITH d AS (DELETE FROM mcpgate_logs WHERE k IN\n"
    "      (SELECT x.k FROM mcpgate_logs x WHERE x.expires <= now() LIMIT 2000) RETURNING k)\n"
    "    DELETE FROM mcpgate_events e USING d WHERE e.k = d.k;\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_buckets WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_buckets x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_tasks WHERE k IN\n"
    "    (SELECT x.k FROM mcpgate_tasks x WHERE x.expires <= now() LIMIT 10000);\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  DELETE FROM mcpgate_payloads WHERE created < now() - interval '2 minutes';\n"
    "  GET DIAGNOSTICS m = ROW_COUNT; n := n + m;\n"
    "  RETURN n;\n"
    "END $f$";

const char *const mg__pg_migrations[PG_SCHEMA_LATEST + 1] = {NULL, migration_1, migration_2};

#define MS "* interval '1 millisecond'"

const char *const mg__pg_stmt_sql[S_COUNT] = {
    [S_PUT] = "INSERT INTO mcpgate_sessions AS x (k, rec, log_level, subs, owner, expires)"
              " VALUES ($1, $2, $3::int, coalesce($4::jsonb, '{}'), $5, now() + $6::bigint " MS ")"
              " ON CONFLICT (k) DO UPDATE SET rec = excluded.rec, log_level = excluded.log_level,"
              " subs = excluded.subs, owner = excluded.owner, expires = excluded.expires",
    [S_GET] = "SELECT rec, log_level, subs, owner FROM mcpgate_sessions WHERE k = $1 AND expires > now()",
    [S_TOUCH] =
        "UPDATE mcpgate_sessions SET expires = now() + $2::bigint " MS " WHERE k = $1 AND expires > now()",
    [S_DEL] = "DELETE FROM mcpgate_sessions WHERE k = $1",
    [S_LOAD] = "SELECT * FROM mcpgate_load($1, $2::bigint, $3, $4, $5::boolean)",
    [S_PATCH] = "UPDATE mcpgate_sessions SET log_level = coalesce($2::int, log_level),"
                " subs = (subs || coalesce($3::jsonb, '{}'))"
                " - ARRAY(SELECT jsonb_array_elements_text(coalesce($4::jsonb, '[]')))"
                " WHERE k = $1 AND expires > now()",
    [S_CAS] = "SELECT mcpgate_owner_cas($1, $2, $3)",
    [S_PUBLISH] = "SELECT mcpgate_publish($1, $2)",
    [S_APPEND] = "SELECT mcpgate_append($1, $2, $3::bigint, $4, $5::boolean, $6::int, $7::bigint)",
    [S_RANGE] = "SELECT e.seq, e.data, e.fin FROM mcpgate_events e WHERE e.k = $1 AND e.seq > $2::bigint"
                " AND EXISTS (SELECT 1 FROM mcpgate_logs l WHERE l.k = $1"
                " AND (l.expires IS NULL OR l.expires > now())) ORDER BY e.seq LIMIT $3::bigint",
    [S_LAST] = "SELECT greatest(l.n, coalesce((SELECT max(e.seq) FROM mcpgate_events e WHERE e.k = l.k), 0))"
               " FROM mcpgate_logs l WHERE l.k = $1 AND (l.expires IS NULL OR l.expires > now())",
    [S_SET] = "INSERT INTO mcpgate_values AS x (k, val, expires) VALUES ($1, $2,"
              " CASE WHEN $3::bigint > 0 THEN now() + $3::bigint " MS " END)"
              " ON CONFLICT (k) DO UPDATE SET val = excluded.val, expires = excluded.expires",
    [S_GETV] = "SELECT val FROM mcpgate_values WHERE k = $1 AND (expires IS NULL OR expires > now())",
    [S_DELKEYS] = "WITH ks AS (SELECT jsonb_array_elements_text($1::jsonb) AS k),"
                  " a AS (DELETE FROM mcpgate_values v USING ks WHERE v.k = ks.k),"
                  " b AS (DELETE FROM mcpgate_events e USING ks WHERE e.k = ks.k),"
                  " c AS (DELETE FROM mcpgate_logs l USING ks WHERE l.k = ks.k) SELECT 1",
    [S_PAYLOAD] = "SELECT data FROM mcpgate_payloads WHERE id = $1::bigint",
    [S_RLTAKE] = "SELECT * FROM mcpgate_rl_take($1::jsonb)",
    [S_SWEEP] = "SELECT mcpgate_sweep()",
    [S_TCREATE] = "SELECT mcpgate_task_create($1, $2, $3, $4, $5, $6, $7::bigint, $8::int)",
    [S_TGET] = "SELECT mcpgate_task_get($1, $2, $3, $4::int)",
    [S_TUPDATE] = "SELECT * FROM mcpgate_task_update($1, $2, $3, $4, $5)",
};

/* ---- mcpgate store migrate (blocking: a command, not the loop) ---- */

static void first_line(const char *in, char *out, size_t n)
{
    snprintf(out, n, "%s", in ? in : "");
    char *nl = strpbrk(out, "\r\n");
    if (nl != NULL)
        *nl = '\0';
}

int mg_pg_migrate(const char *spec, const char *password, char *out, size_t outlen, char *why, size_t whylen)
{
    const char *keys[4], *vals[4];
    int k = 0;
    if (strcmp(spec, "postgres") != 0) {
        keys[k] = "dbname";
        vals[k++] = spec;
    }
    if (password != NULL) {
        keys[k] = "password";
        vals[k++] = password;
    }
    keys[k] = "fallback_application_name";
    vals[k++] = "mcpgate-migrate";
    keys[k] = NULL;
    vals[k] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char e[200];
        first_line(c ? PQerrorMessage(c) : "out of memory", e, sizeof e);
        snprintf(why, whylen, "cannot connect to PostgreSQL: %s", e);
        PQfinish(c);
        return MG_EIO;
    }
    PQsetNoticeProcessor(c, mg__pg_notice_cb, NULL);
    int rc = MG_EIO;
    PGresult *r = PQexec(c, mg__pg_schema_begin);
    if (!mg__pg_ok(r)) {
        char e[200];
        first_line(PQresultErrorMessage(r), e, sizeof e);
        snprintf(why, whylen, "cannot read the schema version: %s", e);
        goto done;
    }
    int v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    r = NULL;
    if (v > PG_SCHEMA_LATEST) {
        snprintf(why, whylen,
                 "the database's mcpgate schema is at version %d, newer than this mcpgate knows (%d)", v,
                 PG_SCHEMA_LATEST);
        goto done;
    }
    for (int i = v + 1; i <= PG_SCHEMA_LATEST; i++) {
        r = PQexec(c, mg__pg_migrations[i]);
        if (!mg__pg_ok(r)) {
            char e[200];
            first_line(PQresultErrorMessage(r), e, sizeof e);
            snprintf(why, whylen, "migration %d failed: %s", i, e);
            goto done;
        }
        PQclear(r);
        char ins[80];
        snprintf(ins, sizeof ins, "INSERT INTO mcpgate_schema (version) VALUES (%d)", i);
        r = PQexec(c, ins);
        if (!mg__pg_ok(r)) {
            snprintf(why, whylen, "cannot record migration %d", i);
            goto done;
        }
        PQclear(r);
    }
    r = PQexec(c, "COMMIT");
    if (!mg__pg_ok(r)) {
        snprintf(why, whylen, "cannot commit the migration");
        goto done;
    }
    if (v == PG_SCHEMA_LATEST)
        snprintf(out, outlen, "schema at version %d (up to date)", v);
    else
        snprintf(out, outlen, "schema at version %d (was %d)", PG_SCHEMA_LATEST, v);
    rc = 0;
done:
    PQclear(r);
    PQfinish(c); /* an open transaction is rolled back */
    return rc;
}
