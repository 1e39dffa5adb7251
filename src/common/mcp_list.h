/*
 * mcp_list.h - the four MCP lists the gateway merges and checks (tools, prompts, resources,
 * resource templates): their kind and the key of their result array. Plain data, shared by the
 * catalog, the policy and the gateway so that none of them names another's structures.
 * Read next: gateway/catalog.c (merging), policy/hooks.h (pinning and scanning of fetched lists).
 */
#ifndef MG_COMMON_MCP_LIST_H
#define MG_COMMON_MCP_LIST_H

typedef enum mg_list_kind {
    MG_LIST_TOOLS = 0,
    MG_LIST_PROMPTS,
    MG_LIST_RESOURCES,
    MG_LIST_TEMPLATES,
    MG_LIST_COUNT
} mg_list_kind_t;

/* "tools", "prompts", "resources" or "resourceTemplates": the array of kind k's list result. */
static inline const char *mg_list_key(mg_list_kind_t k)
{
    return k == MG_LIST_TOOLS       ? "tools"
           : k == MG_LIST_PROMPTS   ? "prompts"
           : k == MG_LIST_RESOURCES ? "resources"
                                    : "resourceTemplates";
}

/* The notification that kind k's list changed (resource templates share the resources one). */
static inline const char *mg_list_changed_method(mg_list_kind_t k)
{
    return k == MG_LIST_TOOLS     ? "notifications/tools/list_changed"
           : k == MG_LIST_PROMPTS ? "notifications/prompts/list_changed"
                                  : "notifications/resources/list_changed";
}

#endif
