/*
 * memory_backends.h - in-process backends of the session store (store.h) and the bus (bus.h) for
 * the unit tests: the same contracts as the redis backend, checked by test_store.c against both.
 * The gateway itself needs neither in one process (its session table is gateway/session.c).
 */
#ifndef MG_TEST_MEMORY_BACKENDS_H
#define MG_TEST_MEMORY_BACKENDS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "session/bus.h"
#include "session/store.h"

/* Memory store: records expire lazily on get and by mg_store_memory_sweep(). now_ms supplied by
 * the caller's clock function. Owners never expire (one process: the owner is always alive). */
mg_store_t *mg_store_memory_new(uint64_t (*now_ms)(void));
/* Removes expired records; returns how many. */
size_t mg_store_memory_sweep(mg_store_t *st);

/* In-process bus on loop (messages are delivered from an idle callback, never re-entrantly).
 * now_ms: the caller's clock (expiry). */
mg_bus_t *mg_bus_memory_new(uv_loop_t *loop, uint64_t (*now_ms)(void));

#endif
