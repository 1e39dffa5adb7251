/*
 * commands.c - the table of extra subcommands (cli.h). Add one line per command; keep the
 * implementation in its module's own file.
 */
#include "cli.h"
#include "../audit/audit.h"
#include "../auth/auth.h"
#include "../policy/policy.h"
#include "../toolsearch/toolsearch.h"

#include <stddef.h>

const mg_cli_command_t mg_cli_commands[] = {
    {"token", "create a static bearer token (prints it once) and its gateway.auth.tokens entry",
     mg_cli_token},
    {"tools", "list every upstream's tools with their estimated token cost (table or --json)", mg_cli_tools},
    {"lock", "pin each upstream's tools, prompts, templates, instructions in CONFIG.lock (--diff, --update)",
     mg_cli_lock},
    {"audit", "run the production checklist against an MCP endpoint URL or a config (table, --json, --sarif)",
     mg_cli_audit},
    {"store", "create or upgrade the PostgreSQL session store's schema (store migrate)", mg_cli_store},
    {"journal", "verify the call journal's hash chain and HMAC checkpoints (journal verify FILE)",
     mg_cli_journal},
    {"reload", "ask the running gateway to re-read its config (SIGHUP; --pid-file FILE or --listen ADDR)",
     mg_cli_reload},
    {NULL, NULL, NULL},
};
