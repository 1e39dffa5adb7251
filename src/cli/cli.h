/*
 * cli.h - subcommands beyond `serve` and `check` (which live in main.c).
 *
 * Each takes the arguments after the subcommand name (argv[0] is the subcommand itself) and
 * returns the process exit status: 0 success, 1 a problem found (e.g. drift, invalid config),
 * 2 a usage error. Each prints its own --help. main.c dispatches on the name; a subcommand whose
 * module is not built yet is simply absent from the table in main.c.
 * Read next: the module each command belongs to (auth/, toolsearch/, policy/, audit/).
 */
#ifndef MG_CLI_H
#define MG_CLI_H

typedef struct mg_cli_command {
    const char *name;
    const char *summary; /* one line for `mcpgate --help` */
    int (*run)(int argc, char **argv);
} mg_cli_command_t;

/* `mcpgate store migrate` (store_cmd.c): the PostgreSQL session store's schema. */
int mg_cli_store(int argc, char **argv);
/* `mcpgate journal verify` (cli/journal_cmd.c). */
int mg_cli_journal(int argc, char **argv);
/* `mcpgate reload` (cli/reload_cmd.c). */
int mg_cli_reload(int argc, char **argv);

/* NULL-terminated table of extra subcommands (src/cli/commands.c). */
extern const mg_cli_command_t mg_cli_commands[];

#endif
