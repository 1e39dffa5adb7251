/*
 * commands.c - the table of extra subcommands (cli.h). Add one line per command; keep the
 * implementation in its module's own file.
 */
#include "cli.h"

#include <stddef.h>

const mg_cli_command_t mg_cli_commands[] = {
    {NULL, NULL, NULL},
};
