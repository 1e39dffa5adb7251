/*
 * view.h - what a session is listed, as a fingerprint of its inputs (view.c): which reload
 * (reload.c) tells each session's list_changed by. A session's tools, prompts and resources lists
 * follow from the servers it can see (live slots that gateway.auth.rules leave something of for its
 * principal, their entries, pins and tool-name prefixes), the rules that apply to its principal,
 * and for tools the parts of gateway.tools that reach it (filters, mode, always, its profile, its
 * tenant's and scopes' entries); a server counts for a kind unless its running pool declared no
 * such capability. The fingerprint hashes these inputs, not the lists (which would
 * need every upstream asked), so a change it sees may leave a list as it was: such a session is
 * notified anyway (a spare list_changed costs a tools/list; a missing one leaves a stale catalog).
 * Read next: view.c, reload.c (mg_gateway_reload), docs/operations.md (Reload).
 */
#ifndef MG_GATEWAY_VIEW_H
#define MG_GATEWAY_VIEW_H

#include "gateway_int.h"

/* The sessions of this replica and their fingerprints, taken before a reload changes anything. */
typedef struct mg_view_snap mg_view_snap_t;

/* Fingerprints every session of gw->sessions under the running configuration. NEW snapshot (give
 * it to mg__view_snap_notify), or NULL when out of memory (the caller then notifies every session). */
mg_view_snap_t *mg__view_snap_take(mg_gateway_t *gw);

/*
 * After the reload: fingerprints the sessions again, now with changed[i] set for every slot i
 * whose entry or pins changed (NULL = none), and sends list_changed of each kind whose inputs
 * differ to that session only (mg__catalog_list_changed_to). A session the snapshot does not know
 * (or any, when snap is NULL or memory runs out) gets every kind. Frees snap. Returns the number of
 * sessions notified.
 */
size_t mg__view_snap_notify(mg_gateway_t *gw, mg_view_snap_t *snap, const unsigned char *changed);

#endif
