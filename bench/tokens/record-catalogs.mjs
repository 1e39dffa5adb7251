#!/usr/bin/env node
// Records the tools/list of real MCP servers from npm as fixtures (test/fixture/catalogs/*.json).
//
//   mkdir /tmp/mcpcat && cd /tmp/mcpcat && npm init -y && PUPPETEER_SKIP_DOWNLOAD=1 npm install \
//     @modelcontextprotocol/server-github ... (the packages listed below)
//   node bench/tokens/record-catalogs.mjs --modules /tmp/mcpcat/node_modules [server ...]
//
// The servers are not committed and not installed by the build; only their recorded lists are.
// Each server is started over stdio with fake credentials (they list their tools without calling
// their APIs); redis needs something that answers on 127.0.0.1:6390 (a fake RESP server is started
// here). Output: one JSON file per server, {server, package, version, serverInfo, tools}, one tool
// per line so diffs stay readable.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
let modules = null;
let out = path.resolve(HERE, '../../test/fixture/catalogs');
const only = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--modules') modules = path.resolve(argv[++i]);
  else if (argv[i] === '--out') out = path.resolve(argv[++i]);
  else only.push(argv[i]);
}
if (!modules) {
  console.error('usage: record-catalogs.mjs --modules DIR/node_modules [--out DIR] [server ...]');
  process.exit(2);
}
// The SDK client of the e2e suite (test/e2e/package.json), not whatever version the servers pulled in.
const SDK = path.resolve(HERE, '../../test/e2e/node_modules/@modelcontextprotocol/sdk/dist/esm/client');
const { Client } = await import(pathToFileURL(path.join(SDK, 'index.js')));
const { StdioClientTransport } = await import(pathToFileURL(path.join(SDK, 'stdio.js')));

const scratch = fs.mkdtempSync('/tmp/mcpgate-record-');
const gdriveCreds = path.join(scratch, 'gdrive-creds.json');
fs.writeFileSync(gdriveCreds, '{"access_token":"fake","refresh_token":"fake","token_type":"Bearer"}');
const fake = {
  GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_fake',
  GITLAB_PERSONAL_ACCESS_TOKEN: 'glpat-fake',
  GITLAB_API_URL: 'http://127.0.0.1:9/api/v4',
  SLACK_BOT_TOKEN: 'xoxb-fake',
  SLACK_TEAM_ID: 'T000',
  BRAVE_API_KEY: 'fake',
  GOOGLE_MAPS_API_KEY: 'fake',
  EVERART_API_KEY: 'fake',
  AWS_ACCESS_KEY_ID: 'fake',
  AWS_SECRET_ACCESS_KEY: 'fake',
  AWS_REGION: 'us-east-1',
  NOTION_TOKEN: 'fake',
  GDRIVE_CREDENTIALS_PATH: gdriveCreds,
};
// server -> [package, entry file inside the package, ...args]
const servers = {
  github: ['@modelcontextprotocol/server-github', 'dist/index.js'],
  gitlab: ['@modelcontextprotocol/server-gitlab', 'dist/index.js'],
  slack: ['@modelcontextprotocol/server-slack', 'dist/index.js'],
  filesystem: ['@modelcontextprotocol/server-filesystem', 'dist/index.js', '/tmp'],
  memory: ['@modelcontextprotocol/server-memory', 'dist/index.js'],
  everything: ['@modelcontextprotocol/server-everything', 'dist/index.js', 'stdio'],
  puppeteer: ['@modelcontextprotocol/server-puppeteer', 'dist/index.js'],
  postgres: ['@modelcontextprotocol/server-postgres', 'dist/index.js', 'postgresql://127.0.0.1:9/db'],
  redis: ['@modelcontextprotocol/server-redis', 'dist/index.js', 'redis://127.0.0.1:6390'],
  'brave-search': ['@modelcontextprotocol/server-brave-search', 'dist/index.js'],
  'google-maps': ['@modelcontextprotocol/server-google-maps', 'dist/index.js'],
  'sequential-thinking': ['@modelcontextprotocol/server-sequential-thinking', 'dist/index.js'],
  everart: ['@modelcontextprotocol/server-everart', 'dist/index.js'],
  'aws-kb-retrieval': ['@modelcontextprotocol/server-aws-kb-retrieval', 'dist/index.js'],
  gdrive: ['@modelcontextprotocol/server-gdrive', 'dist/index.js'],
  playwright: ['@playwright/mcp', 'cli.js'],
  notion: ['@notionhq/notion-mcp-server', 'bin/cli.mjs'],
};

// redis-server stand-in: "+OK" to every command, enough for the client to connect.
const fakeRedis = net.createServer((s) => {
  s.on('data', (d) => s.write('+OK\r\n'.repeat((d.toString().match(/\*\d+\r\n/g) || ['']).length)));
  s.on('error', () => {});
});
await new Promise((r) => fakeRedis.listen(6390, '127.0.0.1', r));

fs.mkdirSync(out, { recursive: true });
let total = 0;
for (const [name, [pkg, entry, ...args]] of Object.entries(servers)) {
  if (only.length && !only.includes(name)) continue;
  const version = JSON.parse(fs.readFileSync(path.join(modules, pkg, 'package.json'), 'utf8')).version;
  const t = new StdioClientTransport({
    command: process.execPath,
    args: [path.join(modules, pkg, entry), ...args],
    env: { ...process.env, ...fake },
    stderr: 'pipe',
  });
  const c = new Client({ name: 'mcpgate-recorder', version: '1.0.0' }, { capabilities: {} });
  try {
    await Promise.race([
      c.connect(t),
      new Promise((_, rej) => setTimeout(() => rej(new Error('connect timeout')), 20000)),
    ]);
    const tools = [];
    let cursor;
    do {
      const r = await c.listTools(cursor ? { cursor } : {});
      tools.push(...r.tools);
      cursor = r.nextCursor;
    } while (cursor);
    const head = { server: name, package: pkg, version, serverInfo: c.getServerVersion() };
    const text =
      JSON.stringify(head).slice(0, -1) + ',"tools":[\n' + tools.map((x) => JSON.stringify(x)).join(',\n') + '\n]}\n';
    fs.writeFileSync(path.join(out, `${name}.json`), text);
    total += tools.length;
    console.log(`${name}: ${tools.length} tools (${pkg}@${version})`);
  } catch (e) {
    console.log(`${name}: FAILED: ${e.message}`);
  }
  await c.close().catch(() => {});
}
console.log(`total: ${total} tools`);
fakeRedis.close();
fs.rmSync(scratch, { recursive: true, force: true });
process.exit(0);
