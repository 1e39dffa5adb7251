/*
 * test_toolsearch.c - src/toolsearch/: the token estimator, the tool policy (server,
 * gateway, profile, tenant, scopes), BM25 ranking over SQLite FTS5, description compaction, and
 * the gateway.tools / server "tools" config keys (src/config/config_tools.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "config/config.h"
#include "toolsearch/runtime.h"
#include "toolsearch/toolsearch.h"
#include "toolsearch/toolsearch_int.h"

static size_t est(const char *s)
{
    return mg_toolsearch_tokens_text(s, strlen(s));
}

/* ---------------------------------------------------------------- estimator */

static void test_tokens_text(void **state)
{
    assert_int_equal(est(""), 0);
    assert_int_equal(est("   "), 0);
    assert_int_equal(est("hello world"), 2);               /* one token per common word, spaces free */
    assert_int_equal(est("inputSchema"), 2);               /* camelCase humps */
    assert_int_equal(est("GitHub"), 2);                    /* Git|Hub */
    assert_int_equal(est("create_or_update_file"), 4);     /* create|_or|_update|_file */
    assert_int_equal(est("API-post-search"), 3);           /* API|-post|-search */
    assert_int_equal(est("internationalization"), 2);      /* 20 letters: 2 tokens */
    assert_int_equal(est("12345"), 2);                     /* digits by threes */
    assert_int_equal(est("{\"a\":\"b\"}"), 2 + 1 + 1 + 1); /* {" a ":" b "} */
    assert_int_equal(est("line\\nnext"), 3);               /* an escaped newline is one token */
    assert_int_equal(est("h\xc3\xa9llo"), 3);              /* h é llo: one per code point */
    assert_int_equal(est("\xf0\x9f\x98\x80"), 1);          /* one emoji, four bytes */
    /* Never reads past len. */
    assert_int_equal(mg_toolsearch_tokens_text("abc_", 3), 1);
    assert_int_equal(mg_toolsearch_tokens_text("a\\", 2), 2);
}

static void test_tokens_tool(void **state)
{
    json_t *tool =
        json_pack("{s:s,s:s,s:{s:s,s:{s:{s:s,s:s}},s:[s]}}", "name", "create_issue", "description",
                  "Create a new issue in a GitHub repository", "inputSchema", "type", "object", "properties",
                  "title", "type", "string", "description", "Issue title", "required", "title");
    mg_toolsearch_cost_t c;
    mg_toolsearch_tokens_tool(tool, &c);
    assert_int_equal(c.name, est("\"create_issue\""));
    assert_int_equal(c.description, est("\"Create a new issue in a GitHub repository\""));
    assert_int_equal(c.desc_chars, strlen("Create a new issue in a GitHub repository"));
    assert_true(c.schema > 10);
    assert_int_equal(c.total, mg_toolsearch_tokens_json(tool));
    assert_true(c.total >= c.name + c.description + c.schema - 3);
    json_decref(tool);
    mg_toolsearch_tokens_tool(NULL, &c);
    assert_int_equal(c.total, 0);
    assert_int_equal(mg_toolsearch_tokens_json(NULL), 0);
}

/* ---------------------------------------------------------------- config + policy */

static int parse(const char *json, mg_config_t *cfg, mg_config_errors_t *errs)
{
    return mg_config_parse(json, "t.json", "/x", cfg, errs);
}

static void test_config_tools(void **state)
{
    mg_config_t cfg;
    mg_config_errors_t errs;
    const char *json =
        "{\"mcpServers\": {"
        "  \"gh\": {\"command\": \"x\", \"tools\": {\"allow\": [\"get_*\", \"list_*\"], \"deny\": "
        "[\"*secret*\"]}},"
        "  \"fs\": {\"command\": \"x\", \"includeTools\": [\"read_file\"], \"excludeTools\": [\"rm\"],"
        "          \"disabledTools\": [\"write_*\"]}},"
        " \"gateway\": {\"tools\": {\"mode\": \"lazy\", \"always\": [\"gh__get_me\"], \"deny\": "
        "[\"*delete*\"],"
        "   \"compact\": true, \"searchLimit\": 7,"
        "   \"profiles\": {\"ro\": {\"deny\": [\"*write*\"], \"mode\": \"all\"}, \"chat\": {\"always\": []}},"
        "   \"defaultProfile\": \"ro\","
        "   \"tenants\": {\"acme\": {\"allow\": [\"gh__*\"]}, \"*\": {\"deny\": [\"fs__*\"]}},"
        "   \"scopes\": {\"tools:gh\": {\"allow\": [\"gh__*\"]}}}}}";
    assert_int_equal(parse(json, &cfg, &errs), 0);
    const mg_tools_config_t *t = &cfg.tools;
    assert_int_equal(t->mode, MG_TOOLS_LAZY);
    assert_int_equal(t->nalways, 1);
    assert_string_equal(t->always[0], "gh__get_me");
    assert_int_equal(t->filter.ndeny, 1);
    assert_true(t->compact);
    assert_int_equal(t->search_limit, 7);
    assert_int_equal(t->nprofiles, 2);
    assert_string_equal(t->default_profile, "ro");
    const mg_tool_profile_t *ro = mg_toolsearch_profile_find(t, "ro");
    assert_non_null(ro);
    assert_int_equal(ro->mode, MG_TOOLS_ALL);
    assert_int_equal(mg_toolsearch_mode(t, ro), MG_TOOLS_ALL);
    const mg_tool_profile_t *chat = mg_toolsearch_profile_find(t, "chat");
    assert_int_equal(chat->mode, MG_TOOLS_INHERIT);
    assert_int_equal(mg_toolsearch_mode(t, chat), MG_TOOLS_LAZY);
    assert_true(chat->has_always);
    assert_false(mg_toolsearch_always(t, chat, "gh__get_me")); /* the profile's (empty) list replaces it */
    assert_true(mg_toolsearch_always(t, NULL, "gh__get_me"));
    assert_null(mg_toolsearch_profile_find(t, "nope"));
    assert_int_equal(cfg.servers[0].tools.nallow, 2);
    assert_int_equal(cfg.servers[1].tools.nallow, 1);
    assert_int_equal(cfg.servers[1].tools.ndeny, 2);
    assert_int_equal(t->ntenants, 2);
    assert_int_equal(t->nscopes, 1);

    const mg_server_config_t *gh = &cfg.servers[0], *fs = &cfg.servers[1];
    /* Server filter on original names, gateway filter on exposed names. */
    assert_true(mg_toolsearch_policy_allows(t, gh, NULL, NULL, "get_issue", "gh__get_issue"));
    assert_false(mg_toolsearch_policy_allows(t, gh, NULL, NULL, "create_issue", "gh__create_issue"));
    assert_false(mg_toolsearch_policy_allows(t, gh, NULL, NULL, "get_secret", "gh__get_secret"));
    assert_false(mg_toolsearch_policy_allows(t, gh, NULL, NULL, "list_deleted", "gh__list_delete_me"));
    assert_true(mg_toolsearch_policy_allows(t, fs, NULL, NULL, "read_file", "fs__read_file"));
    assert_false(mg_toolsearch_policy_allows(t, fs, NULL, NULL, "write_file", "fs__write_file"));
    /* Profile. */
    json_t *dummy = NULL;
    (void)dummy;
    mg_config_t cfg2;
    assert_int_equal(parse("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"tools\": {"
                           "\"profiles\": {\"ro\": {\"deny\": [\"*write*\"]}}}}}",
                           &cfg2, &errs),
                     0);
    const mg_tool_profile_t *p2 = mg_toolsearch_profile_find(&cfg2.tools, "ro");
    assert_true(mg_toolsearch_policy_allows(&cfg2.tools, &cfg2.servers[0], NULL, NULL, "write", "write"));
    assert_false(mg_toolsearch_policy_allows(&cfg2.tools, &cfg2.servers[0], p2, NULL, "write", "write"));
    assert_true(mg_toolsearch_policy_allows(&cfg2.tools, &cfg2.servers[0], p2, NULL, "read", "read"));
    /* Tenants: its own rule, else "*"; scopes: one granting scope needed once scope rules exist. */
    const char *gh_scope[] = {"tools:gh"}, *other_scope[] = {"other"};
    mg_toolsearch_principal_t acme = {"acme", gh_scope, 1}, beta = {"beta", gh_scope, 1},
                              noscope = {"acme", other_scope, 1};
    assert_true(mg_toolsearch_policy_allows(t, gh, NULL, &acme, "get_issue", "gh__get_issue"));
    assert_false(
        mg_toolsearch_policy_allows(t, fs, NULL, &acme, "read_file", "fs__read_file")); /* allow gh__* */
    assert_false(
        mg_toolsearch_policy_allows(t, fs, NULL, &beta, "read_file", "fs__read_file")); /* "*" denies */
    assert_true(mg_toolsearch_policy_allows(t, gh, NULL, &beta, "get_issue", "gh__get_issue"));
    assert_false(mg_toolsearch_policy_allows(t, gh, NULL, &noscope, "get_issue", "gh__get_issue"));
    mg_config_dispose(&cfg2);
    mg_config_dispose(&cfg);
}

static void test_config_tools_errors(void **state)
{
    mg_config_t cfg;
    mg_config_errors_t errs;
    const char *json =
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"tools\": {\"alow\": []}, \"excludeTools\": \"rm\"}},"
        " \"gateway\": {\"tools\": {\"mode\": \"smart\", \"always\": [\"\", 3], \"searchLimit\": 0,"
        " \"defaultProfile\": \"ghost\", \"profiles\": {\"bad name\": {}, \"p\": {\"allow\": \"x\"}},"
        " \"tenants\": [], \"modes\": 1}}}";
    assert_int_equal(parse(json, &cfg, &errs), MG_ECONFIG);
    const char *want[] = {
        "server 'a': tools: unknown key \"alow\"; did you mean \"allow\"?",
        "server 'a': excludeTools: must be an array of tool-name globs",
        "gateway.tools.mode: must be \"all\"",
        "gateway.tools.always[0]: must be a glob",
        "gateway.tools.always[1]: must be a glob",
        "gateway.tools.searchLimit: must be a whole number from 1 to 50",
        "gateway.tools.profiles.bad name: a profile name must be",
        "gateway.tools.profiles.p.allow: must be an array",
        "gateway.tools.tenants: must be an object",
        "gateway.tools: unknown key \"modes\"; did you mean \"mode\"?",
        "gateway.tools.defaultProfile: 'ghost' is not one of gateway.tools.profiles",
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (size_t i = 0; i < errs.count; i++)
            found |= strstr(errs.msgs[i], want[w]) != NULL;
        if (!found) {
            for (size_t i = 0; i < errs.count; i++)
                fprintf(stderr, "  got: %s\n", errs.msgs[i]);
            fail_msg("missing problem: %s", want[w]);
        }
    }
    assert_int_equal(errs.count, sizeof want / sizeof want[0]);
    mg_config_errors_dispose(&errs);
}

/* ---------------------------------------------------------------- ranking */

static json_t *tool(const char *name, const char *desc, const char *param, const char *pdesc)
{
    return json_pack("{s:s,s:s,s:{s:s,s:{s:{s:s,s:s}}}}", "name", name, "description", desc, "inputSchema",
                     "type", "object", "properties", param, "type", "string", "description", pdesc);
}

static json_t *sample_tools(void)
{
    json_t *a = json_array();
    json_array_append_new(
        a, tool("github__create_issue", "Create a new issue in a GitHub repository", "title", "Issue title"));
    json_array_append_new(a, tool("github__list_issues",
                                  "List issues in a GitHub repository with filtering options", "state",
                                  "open or closed"));
    json_array_append_new(a, tool("slack__slack_post_message", "Post a new message to a Slack channel",
                                  "channel_id", "The ID of the channel"));
    json_array_append_new(a,
                          tool("filesystem__read_text_file", "Read the complete contents of a file as text",
                               "path", "Where the file is"));
    json_array_append_new(a, tool("maps__getDirections", "Get directions between two points", "travelMode",
                                  "driving, walking, bicycling or transit"));
    json_array_append_new(a, tool("redis__set", "Set a Redis key-value pair", "expireSeconds", "Expiration"));
    json_array_append_new(a, tool("playwright__browser_click", "Perform click on a button of a web page",
                                  "element", "The button to click"));
    json_array_append_new(a, tool("alpha__make_report", "Make a report", "text", "Report text"));
    json_array_append_new(a, tool("beta__make_report", "Make a report", "text", "Report text"));
    return a;
}

static json_t *sample_servers(void)
{
    return json_pack("[s,s,s,s,s,s,s,s,s]", "github", "github", "slack", "filesystem", "maps", "redis",
                     "playwright", "alpha", "beta");
}

static int rank(mg_toolsearch_index_t *ix, const char *q, size_t *pos, size_t cap)
{
    return mg_toolsearch_index_search(ix, q, pos, cap);
}

/* Position of the first hit of query, or -1; *how and the hit's matched terms for checks. */
static long first(mg_toolsearch_index_t *ix, const char *q, mg_toolsearch_how_t *how, char *why,
                  size_t whylen)
{
    mg_toolsearch_hit_t hits[5];
    int n = mg_toolsearch_index_find(ix, q, hits, 5, how);
    if (n <= 0)
        return -1;
    if (why != NULL)
        snprintf(why, whylen, "%s", hits[0].matched);
    return (long)hits[0].pos;
}

static void test_index_ranking(void **state)
{
    json_t *tools = sample_tools(), *servers = sample_servers();
    mg_toolsearch_index_t *ix = NULL;
    assert_int_equal(mg_toolsearch_index_new(tools, servers, &ix), 0);
    assert_int_equal(mg_toolsearch_index_size(ix), 9);
    assert_true(mg_toolsearch_index_bytes(ix) > 0);
    size_t pos[10];
    /* Name words weigh most; words are OR-ed. */
    assert_true(rank(ix, "create an issue", pos, 10) >= 1);
    assert_int_equal(pos[0], 0);
    /* Stemming, and the exact form on top: "issues listing" finds list_issues first. */
    assert_true(rank(ix, "listing the issues", pos, 10) >= 2);
    assert_int_equal(pos[0], 1);
    /* Description words. */
    assert_true(rank(ix, "send something to a Slack channel", pos, 10) >= 1);
    assert_int_equal(pos[0], 2);
    /* camelCase is split in names and parameter names. */
    assert_true(rank(ix, "directions", pos, 10) >= 1);
    assert_int_equal(pos[0], 4);
    assert_true(rank(ix, "travel mode", pos, 10) >= 1);
    assert_int_equal(pos[0], 4);
    /* Parameter names count ("expire"). */
    assert_true(rank(ix, "expire seconds", pos, 10) >= 1);
    assert_int_equal(pos[0], 5);
    /* Limits; punctuation and quotes are never syntax. */
    assert_int_equal(rank(ix, "issue", pos, 1), 1);
    assert_true(rank(ix, "\"file\" AND (NEAR OR * ^:", pos, 10) >= 1);
    assert_int_equal(pos[0], 3);
    mg_toolsearch_index_free(ix);
    /* An empty catalog is a valid index that finds nothing. */
    json_t *none = json_array();
    assert_int_equal(mg_toolsearch_index_new(none, NULL, &ix), 0);
    assert_int_equal(rank(ix, "anything", pos, 10), 0);
    mg_toolsearch_index_free(ix);
    json_decref(none);
    json_decref(tools);
    json_decref(servers);
}

/* The ways people ask: synonyms, shell idioms, context clauses, the server named, typos, nothing. */
static void test_index_phrasings(void **state)
{
    json_t *tools = sample_tools(), *servers = sample_servers();
    mg_toolsearch_index_t *ix = NULL;
    assert_int_equal(mg_toolsearch_index_new(tools, servers, &ix), 0);
    mg_toolsearch_how_t how;
    char why[160];
    /* Thesaurus: "ticket" is an issue, and the answer says so. */
    assert_int_equal(first(ix, "raise a ticket", &how, why, sizeof why), 0);
    assert_int_equal(how, MG_TOOLSEARCH_MATCHED);
    assert_non_null(strstr(why, "ticket\xe2\x86\x92issue"));
    /* Shell idioms: a command line reads as what it does. */
    assert_int_equal(first(ix, "cat notes.md", &how, NULL, 0), 3);
    /* ... but "cat" in a sentence is a cat. */
    assert_int_not_equal(first(ix, "post a photo of my cat in the team channel", &how, NULL, 0), 3);
    /* Context clause: the request is "file a bug", not the button or the click. */
    assert_int_equal(first(ix, "the save button crashes when I click it twice, file a bug", &how, NULL, 0),
                     0);
    /* Without the clause rule the click tool would win: the rule is what this checks. */
    assert_int_equal(first(ix, "the save button crashes when I click it twice and a bug", &how, NULL, 0), 6);
    /* The server named narrows: equal tools, the named server's first. */
    assert_int_equal(first(ix, "make a report", &how, NULL, 0), 7);
    assert_int_equal(first(ix, "make a report in beta", &how, why, sizeof why), 8);
    assert_non_null(strstr(why, "server beta"));
    /* A typo: close in spelling. */
    assert_int_equal(first(ix, "drections", &how, why, sizeof why), 4);
    assert_int_equal(how, MG_TOOLSEARCH_FUZZY);
    /* Nothing matches: never an empty answer; a sample, one tool per server first. */
    mg_toolsearch_hit_t hits[5];
    int n = mg_toolsearch_index_find(ix, "zzzz qqqq", hits, 5, &how);
    assert_int_equal(n, 5);
    assert_int_equal(how, MG_TOOLSEARCH_BROWSE);
    assert_int_equal(hits[0].pos, 0); /* github */
    assert_int_equal(hits[1].pos, 2); /* slack: github's second tool waits for the next round */
    assert_string_equal(hits[0].matched, "");
    assert_int_equal(mg_toolsearch_index_find(ix, "the a of to", hits, 5, &how), 5);
    assert_int_equal(how, MG_TOOLSEARCH_BROWSE);
    mg_toolsearch_index_free(ix);
    /* The cache key covers the servers. */
    json_t *other = json_pack("[s,s,s,s,s,s,s,s,s]", "x", "github", "slack", "filesystem", "maps", "redis",
                              "playwright", "alpha", "beta");
    assert_true(mg_toolsearch_index_key(tools, servers) != mg_toolsearch_index_key(tools, other));
    assert_true(mg_toolsearch_index_key(tools, servers) == mg_toolsearch_index_key(tools, servers));
    json_decref(other);
    json_decref(tools);
    json_decref(servers);
}

/* Every thesaurus line parses: a key of one or two words, one to six expansion words, lower case. */
static void test_thesaurus_lines(void **state)
{
    const char *const *lines = mg__ts_thesaurus_lines();
    size_t n = 0;
    for (; lines[n] != NULL; n++) {
        const char *l = lines[n], *eq = strchr(l, '=');
        assert_non_null(eq);
        size_t keys = 0, exps = 0;
        int in = 0;
        for (const char *p = l[0] == '$' ? l + 1 : l; *p != '\0'; p++) {
            if (*p >= 'A' && *p <= 'Z')
                fail_msg("upper case in thesaurus line \"%s\"", l);
            int alnum = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
            if (alnum && !in)
                *(p < eq ? &keys : &exps) += 1;
            in = alnum;
        }
        if (keys < 1 || keys > 2 || exps < 1 || exps > 6)
            fail_msg("thesaurus line \"%s\": %zu key words, %zu expansions", l, keys, exps);
    }
    assert_true(n > 500);
    size_t bytes = 0;
    mg__ts_thesaurus_t *th = mg__ts_thesaurus_new(NULL, &bytes);
    assert_non_null(th);
    assert_true(bytes > 0);
    mg__ts_thesaurus_free(th);
}

/* ---------------------------------------------------------------- compaction */

static void test_compact_text(void **state)
{
    const char *desc = "  Reads a file.   Use it   for text.\t \r\n\r\n\r\n\r\n"
                       "Example: read_file {\"path\": \"/tmp/a\"}\n\n"
                       "More text   here.  \n\n"
                       "Example:  read_file {\"path\": \"/tmp/a\"}\n"
                       "\n    indented   code\n\n\n";
    json_t *t = json_pack("{s:s,s:s,s:{s:s}}", "name", "read_file", "description", desc, "inputSchema",
                          "type", "object");
    json_t *c = mg_toolsearch_compact_tool(t);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "description")),
                        "Reads a file. Use it for text.\n\n"
                        "Example: read_file {\"path\": \"/tmp/a\"}\n\n"
                        "More text here.\n\n"
                        "    indented code");
    /* The original is untouched. */
    assert_string_equal(json_string_value(json_object_get(t, "description")), desc);
    assert_true(mg_toolsearch_tokens_json(c) < mg_toolsearch_tokens_json(t));
    json_decref(c);
    json_decref(t);
}

static void test_compact_schema(void **state)
{
    const char *schema =
        "{\"type\":\"object\",\"$schema\":\"http://json-schema.org/draft-07/"
        "schema#\",\"title\":\"read_fileArguments\","
        "\"additionalProperties\":false,"
        "\"properties\":{"
        "  \"path\":{\"type\":\"string\",\"title\":\"Path\",\"description\":\"Where\"},"
        "  \"$schema\":{\"type\":\"string\",\"title\":\"Dollar schema\"},"
        "  \"title\":{\"type\":\"string\",\"title\":\"Document "
        "title\",\"default\":\"x\",\"enum\":[\"x\",\"y\"]},"
        "  \"opts\":{\"type\":\"object\",\"additionalProperties\":true,\"required\":[],"
        "           \"properties\":{\"deep\":{\"type\":\"integer\",\"title\":\"deep\",\"minimum\":1}}},"
        "  "
        "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"$schema\":\"x\",\"properties\":{}}},"
        "  \"dup\":{\"type\":\"string\",\"description\":\"Reads the complete contents of a file.\"}"
        "},\"required\":[\"path\"]}";
    json_t *in =
        json_pack("{s:s,s:s,s:o}", "name", "read_file", "description",
                  "Reads the complete contents of a file.", "inputSchema", json_loads(schema, 0, NULL));
    json_t *out = mg_toolsearch_compact_tool(in);
    json_t *s = json_object_get(out, "inputSchema");
    assert_null(json_object_get(s, "$schema"));
    assert_null(json_object_get(s, "title")); /* "read_fileArguments" restates the tool name */
    assert_true(json_is_false(json_object_get(s, "additionalProperties"))); /* a constraint: kept */
    json_t *props = json_object_get(s, "properties");
    assert_int_equal(json_object_size(props), 6); /* no property removed, including "$schema" and "title" */
    assert_null(json_object_get(json_object_get(props, "path"), "title"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(props, "path"), "description")),
                        "Where");
    assert_string_equal(json_string_value(json_object_get(json_object_get(props, "$schema"), "title")),
                        "Dollar schema");
    json_t *title = json_object_get(props, "title");
    assert_string_equal(json_string_value(json_object_get(title, "title")), "Document title");
    assert_int_equal(json_array_size(json_object_get(title, "enum")), 2);
    assert_string_equal(json_string_value(json_object_get(title, "default")), "x");
    json_t *opts = json_object_get(props, "opts");
    assert_null(json_object_get(opts, "additionalProperties"));
    assert_null(json_object_get(opts, "required"));
    json_t *deep = json_object_get(json_object_get(opts, "properties"), "deep");
    assert_null(json_object_get(deep, "title"));
    assert_int_equal(json_integer_value(json_object_get(deep, "minimum")), 1);
    assert_null(json_object_get(json_object_get(json_object_get(props, "items"), "items"), "$schema"));
    assert_null(json_object_get(json_object_get(props, "dup"), "description"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "required"), 0)), "path");
    assert_true(mg_toolsearch_tokens_json(out) < mg_toolsearch_tokens_json(in));
    /* Idempotent. */
    json_t *again = mg_toolsearch_compact_tool(out);
    assert_true(json_equal(again, out));
    json_decref(again);
    json_decref(out);
    json_decref(in);
    /* Not an object: copied as is. */
    json_t *str = json_string("x");
    json_t *copy = mg_toolsearch_compact_tool(str);
    assert_true(json_equal(copy, str));
    json_decref(copy);
    json_decref(str);
}

/* The search tool the lazy mode lists first: small, and naming the servers. */
static void test_search_tool_def(void **state)
{
    json_t *servers =
        json_pack("[{s:s,s:i},{s:s,s:i}]", "name", "github", "tools", 26, "name", "slack", "tools", 8);
    json_t *def = mg_toolsearch_tool_def(servers, 34);
    assert_string_equal(json_string_value(json_object_get(def, "name")), MG_TOOLSEARCH_TOOL_NAME);
    assert_non_null(strstr(json_string_value(json_object_get(def, "description")), "github (26), slack (8)"));
    assert_true(json_is_true(json_object_get(json_object_get(def, "_meta"), "anthropic/alwaysLoad")));
    assert_true(mg_toolsearch_tokens_json(def) < 300);
    json_decref(def);
    json_decref(servers);
}

/* toolsearch/runtime.h on plain data: a session's profile and added set, the search tool's answer
 * from a list and its servers, and the lazy tools/list view. */
static void test_runtime_plain_data(void **state)
{
    mg_config_t cfg;
    mg_config_errors_t errs;
    assert_int_equal(parse("{\"mcpServers\": {\"gh\": {\"command\": \"x\"}},"
                           " \"gateway\": {\"tools\": {\"mode\": \"lazy\", \"always\": [\"gh__get_me\"],"
                           "   \"profiles\": {\"ro\": {\"mode\": \"all\"}}}}}",
                           &cfg, &errs),
                     0);
    const mg_tools_config_t *tc = &cfg.tools;
    char prof[72], why[300];
    assert_int_equal(mg_toolsearch_profile_select(tc, "ro", 2, NULL, 0, prof, sizeof prof, why, sizeof why),
                     0);
    assert_string_equal(prof, "ro");
    assert_int_equal(
        mg_toolsearch_profile_select(tc, NULL, 0, "profile=nope", 12, prof, sizeof prof, why, sizeof why),
        MG_ENOTFOUND);
    assert_non_null(strstr(why, "unknown tool profile 'nope'"));

    mg_toolsearch_t *ts = mg_toolsearch_new();
    mg_toolsearch_session_t *st = mg_toolsearch_session_new(tc, "");
    assert_null(mg_toolsearch_session_profile(st));
    assert_null(mg_toolsearch_session_added(st));
    json_t *tools = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "gh__create_issue", "description",
                              "Create a new issue in a GitHub repository.", "name", "gh__get_me",
                              "description", "Get the authenticated user.", "name", "gh__list_commits",
                              "description", "List commits of a branch.");
    json_t *servers = json_pack("[s,s,s]", "gh", "gh", "gh");

    mg_toolsearch_search_info_t info;
    json_t *args = json_pack("{s:s,s:i}", "query", "create an issue", "limit", 1);
    json_t *r = mg_toolsearch_search(ts, tc, args, tools, servers, st, &info);
    assert_int_equal(info.results, 1);
    assert_string_equal(info.match, "words");
    assert_int_equal(info.added, 1);
    assert_non_null(json_object_get(mg_toolsearch_session_added(st), "gh__create_issue"));
    assert_null(json_object_get(r, "isError"));
    json_decref(r);
    json_decref(args);
    args = json_pack("{s:s}", "query", ""); /* a bad query: an error result, nothing added */
    r = mg_toolsearch_search(ts, tc, args, tools, servers, st, &info);
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_int_equal(info.added, 0);
    json_decref(r);
    json_decref(args);

    /* lazy view: the search tool, the "always" tool and what the session added */
    assert_true(mg_toolsearch_lazy(tc, NULL));
    json_t *counts = json_pack("[{s:s,s:i}]", "name", "gh", "tools", 3);
    json_t *view = mg_toolsearch_list(tc, NULL, json_incref(tools), mg_toolsearch_session_added(st), counts);
    assert_int_equal(json_array_size(view), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(view, 0), "name")),
                        MG_TOOLSEARCH_TOOL_NAME);
    assert_string_equal(json_string_value(json_object_get(json_array_get(view, 1), "name")),
                        "gh__create_issue");
    assert_string_equal(json_string_value(json_object_get(json_array_get(view, 2), "name")), "gh__get_me");
    json_decref(view);
    /* 2026-07-28: the request's loaded set instead of a session's */
    json_t *names = json_pack("[s,i]", "gh__list_commits", 7);
    json_t *loaded = mg_toolsearch_loaded_set(names);
    assert_int_equal(json_object_size(loaded), 1);
    view = mg_toolsearch_list(tc, NULL, json_incref(tools), loaded, counts);
    assert_int_equal(json_array_size(view), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(view, 2), "name")),
                        "gh__list_commits");
    json_decref(view);
    /* profile "ro" is mode all: every tool, no search tool */
    const mg_tool_profile_t *ro = mg_toolsearch_profile_find(tc, "ro");
    assert_false(mg_toolsearch_lazy(tc, ro));
    view = mg_toolsearch_list(tc, ro, json_incref(tools), NULL, NULL);
    assert_int_equal(json_array_size(view), 3);
    json_decref(view);

    json_decref(loaded);
    json_decref(names);
    json_decref(counts);
    json_decref(servers);
    json_decref(tools);
    mg_toolsearch_session_free(st);
    mg_toolsearch_free(ts);
    mg_config_dispose(&cfg);
    mg_config_errors_dispose(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_text),        cmocka_unit_test(test_tokens_tool),
        cmocka_unit_test(test_config_tools),       cmocka_unit_test(test_config_tools_errors),
        cmocka_unit_test(test_index_ranking),      cmocka_unit_test(test_index_phrasings),
        cmocka_unit_test(test_thesaurus_lines),    cmocka_unit_test(test_compact_text),
        cmocka_unit_test(test_compact_schema),     cmocka_unit_test(test_search_tool_def),
        cmocka_unit_test(test_runtime_plain_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
