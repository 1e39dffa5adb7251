// Issue #8: token cost of tool catalogs. Lazy mode (search_tools, per-session additions with
// list_changed, direct calls), tool filters (server, gateway, profile), compaction, /metrics and
// `mcpgate tools`, on catalogs recorded from real npm servers (test/fixture/catalogs/) served by
// mcpgate-testserver --catalog. Client: the official SDK.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connect, textOf } from './lib/client.mjs';
import { MG_BINARY, REPO_DIR, testserver, writeConfig } from './lib/gateway.mjs';
import { test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, request, rpc } from './lib/http.mjs';

const CATALOGS = path.join(REPO_DIR, 'test/fixture/catalogs');
const recorded = (name) => testserver(['--name', name, '--catalog', path.join(CATALOGS, `${name}.json`)]);

function config(tools = {}, servers = {}) {
  return {
    mcpServers: {
      github: { ...recorded('github'), ...(servers.github || {}) },
      slack: { ...recorded('slack'), ...(servers.slack || {}) },
      filesystem: { ...recorded('filesystem'), ...(servers.filesystem || {}) },
    },
    gateway: { tools },
  };
}

const names = (tools) => tools.map((t) => t.name);

// The definitions a search_tools result carries: content[1], a JSON array (content[0] is the
// summary: one line per match; a fallback "browse" answer has no definitions).
function found(result) {
  return result.content.length > 1 ? JSON.parse(result.content[1].text) : [];
}

async function connectWatching(url, opts = {}) {
  const changes = [];
  const c = await connect(url, {
    ...opts,
    setup: (client) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => changes.push(Date.now())),
  });
  return { ...c, changes };
}

test('lazy mode: the first tools/list is search_tools plus the always-on tools', async (t) => {
  const gw = await t.gateway({ config: config({ mode: 'lazy', always: ['slack__slack_post_message'] }) });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const { tools } = await c.client.listTools();
  assert.deepEqual(names(tools), ['search_tools', 'slack__slack_post_message']);
  const search = tools[0];
  assert.equal(search._meta['anthropic/alwaysLoad'], true);
  assert.equal(search.annotations.readOnlyHint, true);
  assert.deepEqual(search.inputSchema.required, ['query']);
  assert.match(search.description, /github \(26\)/);
  assert.equal(tools[1]._meta['anthropic/alwaysLoad'], true);
});

test('lazy mode: a search adds its matches to this session only, then list_changed', async (t) => {
  const gw = await t.gateway({ config: config({ mode: 'lazy' }) });
  const a = await connectWatching(gw.url);
  t.defer(() => a.close());
  const b = await connectWatching(gw.url);
  t.defer(() => b.close());
  const r = await a.client.callTool({ name: 'search_tools', arguments: { query: 'open an issue in a GitHub repository', limit: 3 } });
  assert.ok(!r.isError, JSON.stringify(r));
  const defs = found(r);
  assert.equal(defs.length, 3);
  assert.ok(names(defs).includes('github__create_issue'), names(defs).join(', '));
  assert.ok(defs[0].inputSchema && defs[0].description, 'results carry full definitions');
  await waitFor(() => a.changes.length > 0, { what: 'notifications/tools/list_changed on the GET stream' });
  const { tools } = await a.client.listTools();
  assert.deepEqual(names(tools).slice(1).sort(), names(defs).sort());
  const added = tools.find((x) => x.name === 'github__create_issue');
  assert.equal(added._meta['io.mcpgate/foundBy'], 'search_tools');
  assert.equal(added._meta['anthropic/alwaysLoad'], true);
  // The other session saw nothing of it.
  assert.deepEqual(names((await b.client.listTools()).tools), ['search_tools']);
  assert.equal(b.changes.length, 0);
  // Searching again for what is listed already adds nothing and sends nothing.
  const before = a.changes.length;
  await a.client.callTool({ name: 'search_tools', arguments: { query: 'open an issue in a GitHub repository', limit: 3 } });
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(a.changes.length, before);
});

test('lazy mode: any allowed tool can be called directly, listed or not', async (t) => {
  const gw = await t.gateway({ config: config({ mode: 'lazy' }) });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const r = await c.client.callTool({ name: 'github__list_commits', arguments: { owner: 'o', repo: 'r' } });
  assert.equal(textOf(r), 'called list_commits with {"owner":"o","repo":"r"}');
  const bad = await c.client.callTool({ name: 'search_tools', arguments: {} });
  assert.equal(bad.isError, true);
  const none = await c.client.callTool({ name: 'search_tools', arguments: { query: 'zzzqqq xyzzy' } });
  assert.match(textOf(none), /No tool matches/);
});

// Issue #15: what a search answers, in both eras: name, title, one line and why it matched; a query
// that matches nothing still gets candidates (never an empty answer), with a hint, and adds nothing.
test('search_tools: summaries with matched terms, the same in both eras; a fallback instead of nothing', async (t) => {
  const gw = await t.gateway({ config: config({ mode: 'lazy' }) });
  const c = await connectWatching(gw.url);
  t.defer(() => c.close());
  const q = { query: 'the save button crashes when I click it twice, file a ticket on github', limit: 3 };
  const r = await c.client.callTool({ name: 'search_tools', arguments: q });
  const sum = r.structuredContent;
  assert.equal(sum.match, 'words');
  assert.equal(sum.tools[0].name, 'github__create_issue', JSON.stringify(sum.tools));
  assert.match(sum.tools[0].matched, /ticket→issue/);
  assert.match(sum.tools[0].matched, /server github/);
  for (const x of sum.tools) {
    assert.ok(x.description.length > 0 && x.description.length <= 170 && !x.description.includes('\n'), x.description);
  }
  const lines = textOf(r).split('\n');
  assert.match(lines[1], /^- github__create_issue: Create a new issue in a GitHub repository \[matched: .*ticket→issue.*\]$/);
  assert.deepEqual(names(found(r)), names(sum.tools), 'the definitions follow, in the same order');
  // Shell idioms and synonyms reach the right tool.
  const ls = await c.client.callTool({ name: 'search_tools', arguments: { query: 'ls -l ~/projects/app', limit: 3 } });
  assert.match(ls.structuredContent.tools[0].name, /^filesystem__list_directory/, JSON.stringify(ls.structuredContent));
  const title = ls.structuredContent.tools[0].title; // the filesystem server titles its tools
  assert.ok(title, JSON.stringify(ls.structuredContent.tools[0]));
  assert.ok(textOf(ls).split('\n')[1].startsWith(`- ${ls.structuredContent.tools[0].name} (${title}): `), textOf(ls));
  // The 2026-07-28 path runs the same search.
  const m = await modern(gw.url, 'tools/call', { name: 'search_tools', arguments: q });
  assert.deepEqual(m.result.structuredContent.tools, sum.tools);
  // Nothing matches: a sample of each server's tools and a hint; nothing added, no definitions.
  await waitFor(() => c.changes.length > 0, { what: 'list_changed after the first search' });
  const seen = c.changes.length;
  const listed = names((await c.client.listTools()).tools);
  const none = await c.client.callTool({ name: 'search_tools', arguments: { query: 'qqqxz zzvvk' } });
  assert.ok(!none.isError);
  assert.equal(none.structuredContent.match, 'none');
  const servers = new Set(none.structuredContent.tools.map((x) => x.name.split('__')[0]));
  assert.deepEqual([...servers].sort(), ['filesystem', 'github', 'slack'], 'one of each server first');
  assert.match(textOf(none), /No tool matches "qqqxz zzvvk"\. Some of the \d+ tools.*search again with the action and the service/);
  assert.equal(none.content.length, 1, 'no definitions for a browse answer');
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(c.changes.length, seen);
  assert.deepEqual(names((await c.client.listTools()).tools), listed);
  // A long query echoed in the hint is cut between UTF-8 characters, not inside one.
  const wide = await c.client.callTool({ name: 'search_tools', arguments: { query: 'a' + 'é'.repeat(200) } });
  assert.ok(!wide.isError, textOf(wide));
  assert.match(textOf(wide), /^No tool matches "aé+"\. /);
  // A typo is corrected by spelling.
  const typo = await c.client.callTool({ name: 'search_tools', arguments: { query: 'drectory', limit: 3 } });
  assert.equal(typo.structuredContent.match, 'spelling');
  assert.match(typo.structuredContent.tools[0].name, /directory/);
});

// One stateless 2026-07-28 request (no session): _meta carries version, capabilities and our hints.
async function modern(url, method, params = {}, metaExtra = {}) {
  const V = '2026-07-28';
  const body = rpc(method, {
    ...params,
    _meta: {
      'io.modelcontextprotocol/protocolVersion': V,
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'e2e-tools-lazy', version: '1' },
      ...metaExtra,
    },
  });
  const headers = { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': method };
  if (method === 'tools/call') headers['Mcp-Name'] = params.name;
  const r = await request(url, { headers, body });
  const msgs = await r.messages({ timeout: 10000 });
  return msgs.find((m) => m && m.id === body.id);
}

test('lazy mode for 2026-07-28 clients: per-request loaded tools and profile, private caching, no shared state', async (t) => {
  const gw = await t.gateway({ config: config({ mode: 'lazy', profiles: { chat: { allow: ['slack__*'] } } }) });
  const first = await modern(gw.url, 'tools/list');
  assert.deepEqual(names(first.result.tools), ['search_tools']);
  assert.equal(first.result.cacheScope, 'public', 'the same for every caller');
  const s = await modern(gw.url, 'tools/call', { name: 'search_tools', arguments: { query: 'create a github issue', limit: 2 } });
  const defs = found(s.result);
  assert.ok(names(defs).includes('github__create_issue'), names(defs).join(', '));
  assert.match(textOf(s.result), /call them by name with the definitions that follow/);
  // Nothing was added to any shared list: the next request still sees only the search tool...
  assert.deepEqual(names((await modern(gw.url, 'tools/list')).result.tools), ['search_tools']);
  // ...unless it names the tools it holds; such a list is private to that request.
  const mine = await modern(gw.url, 'tools/list', {}, { 'io.mcpgate/loadedTools': ['github__create_issue', 'nope'] });
  assert.deepEqual(names(mine.result.tools), ['search_tools', 'github__create_issue']);
  assert.equal(mine.result.cacheScope, 'private');
  assert.equal(mine.result.ttlMs, 0);
  // A profile per request; an unknown one sees nothing rather than everything.
  const chat = await modern(gw.url, 'tools/call', { name: 'search_tools', arguments: { query: 'create a github issue' } }, { 'io.mcpgate/profile': 'chat' });
  assert.ok(names(found(chat.result)).every((n) => n.startsWith('slack__')));
  const unknown = await modern(gw.url, 'tools/call', { name: 'github__get_issue', arguments: {} }, { 'io.mcpgate/profile': 'nope' });
  assert.equal(unknown.error.code, -32602);
  const direct = await modern(gw.url, 'tools/call', { name: 'github__get_issue', arguments: { owner: 'o' } });
  assert.equal(textOf(direct.result), 'called get_issue with {"owner":"o"}');
});

test('filters: server and gateway globs hide tools from lists and searches and refuse calls', async (t) => {
  const cfg = config(
    { mode: 'lazy', deny: ['slack__*reaction*'], always: ['github__*'] },
    { github: { tools: { deny: ['create_*', 'merge_*'] } }, filesystem: { tools: { allow: ['read_*', 'list_*'] } } },
  );
  const gw = await t.gateway({ config: cfg });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const listed = names((await c.client.listTools()).tools);
  assert.ok(listed.includes('github__get_issue'), listed.join(', '));
  for (const hidden of ['github__create_issue', 'github__merge_pull_request', 'github__create_branch'])
    assert.ok(!listed.includes(hidden), `${hidden} listed`);
  const hits = names(found(await c.client.callTool({ name: 'search_tools', arguments: { query: 'add a reaction emoji to a slack message', limit: 10 } })));
  assert.ok(!hits.includes('slack__slack_add_reaction'), hits.join(', '));
  assert.ok(hits.includes('slack__slack_post_message') || hits.length > 0);
  const fs = names(found(await c.client.callTool({ name: 'search_tools', arguments: { query: 'write or edit a file', limit: 20 } })));
  assert.ok(fs.every((n) => !n.startsWith('filesystem__') || /__(read|list)_/.test(n)), fs.join(', '));
  for (const name of ['github__create_issue', 'slack__slack_add_reaction', 'filesystem__write_file']) {
    await assert.rejects(c.client.callTool({ name, arguments: {} }), (e) => e.code === -32602 && /unknown tool/.test(e.message), name);
  }
  assert.equal(textOf(await c.client.callTool({ name: 'filesystem__list_directory', arguments: { path: '/' } })), 'called list_directory with {"path":"/"}');
});

test('profiles: chosen with ?profile= or the Mcpgate-Profile header; unknown profiles are refused', async (t) => {
  const cfg = config({
    mode: 'lazy',
    profiles: { readonly: { mode: 'all', deny: ['*create*', '*post*', '*push*', '*merge*', '*write*', '*edit*', '*move*'] }, chat: { allow: ['slack__*'], always: ['slack__*'] } },
  });
  const gw = await t.gateway({ config: cfg });
  const ro = await connect(`${gw.url}?profile=readonly`);
  t.defer(() => ro.close());
  const listed = names((await ro.client.listTools()).tools);
  assert.ok(!listed.includes('search_tools'), 'profile mode "all" lists everything, no search tool');
  assert.ok(listed.includes('github__get_issue') && listed.includes('filesystem__read_text_file'));
  assert.ok(!listed.some((n) => /create|post|write|merge/.test(n)), listed.join(', '));
  await assert.rejects(ro.client.callTool({ name: 'slack__slack_post_message', arguments: {} }), /unknown tool/);
  const chat = await connect(gw.url, { requestInit: { headers: { 'Mcpgate-Profile': 'chat' } } });
  t.defer(() => chat.close());
  const chatList = names((await chat.client.listTools()).tools);
  assert.equal(chatList[0], 'search_tools');
  assert.equal(chatList.length, 1 + 8, chatList.join(', ')); // every slack tool is always-on in "chat"
  assert.ok(chatList.slice(1).every((n) => n.startsWith('slack__')), chatList.join(', '));
  await assert.rejects(chat.client.callTool({ name: 'github__get_issue', arguments: {} }), /unknown tool/);
  await assert.rejects(connect(`${gw.url}?profile=nope`), /unknown tool profile 'nope'|400/);
});

test('compaction: fewer tokens, same names, required arguments and types', async (t) => {
  const plain = await t.gateway({ config: config({}) });
  const small = await t.gateway({ config: config({ compact: true }) });
  const a = await connect(plain.url);
  t.defer(() => a.close());
  const b = await connect(small.url);
  t.defer(() => b.close());
  const ta = (await a.client.listTools()).tools;
  const tb = (await b.client.listTools()).tools;
  assert.deepEqual(names(tb), names(ta));
  assert.ok(JSON.stringify(tb).length < JSON.stringify(ta).length);
  for (let i = 0; i < ta.length; i++) {
    assert.deepEqual(tb[i].inputSchema.required ?? [], ta[i].inputSchema.required ?? [], ta[i].name);
    assert.deepEqual(Object.keys(tb[i].inputSchema.properties ?? {}), Object.keys(ta[i].inputSchema.properties ?? {}));
    for (const [k, v] of Object.entries(ta[i].inputSchema.properties ?? {})) assert.deepEqual(tb[i].inputSchema.properties[k].type, v.type);
    assert.equal(tb[i].inputSchema.$schema, undefined);
  }
  assert.ok(ta.some((x) => x.inputSchema.$schema), 'the recorded github tools carry $schema');
});

test('/metrics: per-upstream and per-tool token figures', async (t) => {
  const gw = await t.gateway({ config: config({ mode: 'lazy' }) });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  await c.client.listTools();
  await c.client.callTool({ name: 'search_tools', arguments: { query: 'post a slack message' } });
  const text = await waitFor(async () => {
    const r = await fetch(`${gw.base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    const body = await r.text();
    return /mcpgate_upstream_tools\{upstream="filesystem"\} 14/.test(body) && body;
  }, { what: 'the three upstreams in /metrics' });
  assert.match(text, /mcpgate_tool_tokens\{upstream="github",tool="create_issue"\} \d+/);
  assert.match(text, /mcpgate_upstream_tools\{upstream="github"\} 26/);
  const all = Number(text.match(/mcpgate_tools_list_tokens\{mode="all"\} (\d+)/)[1]);
  const lazy = Number(text.match(/mcpgate_tools_list_tokens\{mode="lazy"\} (\d+)/)[1]);
  assert.ok(lazy > 0 && lazy * 10 < all, `lazy ${lazy} vs all ${all}`);
  assert.match(text, /mcpgate_tool_searches_total 1/);
});

test('mcpgate tools --json: per-server and per-tool costs, totals, lazy figure, warnings', async (t) => {
  const cfg = writeConfig(config({}, { github: { tools: { deny: ['fork_*'] } } }));
  t.defer(() => cfg.remove());
  const out = await new Promise((resolve, reject) =>
    execFile(MG_BINARY, ['tools', '--config', cfg.file, '--json'], (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  const doc = JSON.parse(out);
  assert.deepEqual(doc.servers.map((s) => s.name), ['github', 'slack', 'filesystem']);
  const gh = doc.servers[0];
  assert.equal(gh.toolCount, 25);
  assert.equal(gh.hidden, 1);
  const fork = gh.tools.find((x) => x.name === 'fork_repository');
  assert.equal(fork.hidden, true);
  assert.equal(fork.exposed, 'github__fork_repository');
  const issue = gh.tools.find((x) => x.name === 'create_issue');
  assert.ok(issue.tokens > issue.schemaTokens && issue.schemaTokens > 0 && issue.descriptionTokens > 0);
  assert.equal(doc.totals.tools, 25 + 8 + 14);
  assert.ok(doc.lazy.tokens < doc.totals.tokens / 10);
  assert.ok(doc.warnings.some((w) => /catalog: 47 tools \(over 30\)/.test(w)), doc.warnings.join('\n'));
  const table = await new Promise((resolve, reject) =>
    execFile(MG_BINARY, ['tools', '--config', cfg.file], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  assert.match(table, /TOTAL: 47 tools from 3 servers \(1 hidden by filters\)/);
  assert.match(table, /github__fork_repository \(hidden\)/);
});
