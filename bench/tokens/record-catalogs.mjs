#!/usr/bin/env node
// Records the tools/list of real MCP servers from npm as fixtures (test/fixture/catalogs/*.json).
//
//   mkdir /tmp/mcpcat && cd /tmp/mcpcat && npm init -y && PUPPETEER_SKIP_DOWNLOAD=1 npm install \
//     @modelcontextprotocol/server-github ... (the packages listed below)
//   node bench/tokens/record-catalogs.mjs --modules /tmp/mcpcat/node_modules [server ...]
//   node bench/tokens/record-catalogs.mjs --more --modules DIR/node_modules   (the packages of moreServers)
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
let more = false;
const only = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--modules') modules = path.resolve(argv[++i]);
  else if (argv[i] === '--out') out = path.resolve(argv[++i]);
  else if (argv[i] === '--more') more = true;
  else only.push(argv[i]);
}
if (!modules) {
  console.error('usage: record-catalogs.mjs --modules DIR/node_modules [--out DIR] [--more] [server ...]');
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
  // --more servers
  SUPABASE_ACCESS_TOKEN: 'sbp_fake',
  CIRCLECI_TOKEN: 'fake',
  HEROKU_API_KEY: 'fake',
  TAVILY_API_KEY: 'tvly-fake',
  EXA_API_KEY: 'fake',
  FIRECRAWL_API_KEY: 'fc-fake',
  PRIVATE_APP_ACCESS_TOKEN: 'fake',
  MAPBOX_ACCESS_TOKEN: 'pk.fake',
  DATADOG_API_KEY: 'fake',
  DATADOG_APP_KEY: 'fake',
  ES_URL: 'http://127.0.0.1:9',
  ES_API_KEY: 'fake',
  MYSQL_HOST: '127.0.0.1',
  MYSQL_PORT: '9',
  MYSQL_USER: 'fake',
  MYSQL_DB: 'db',
  SENTRY_ACCESS_TOKEN: 'fake',
  DIGITALOCEAN_API_TOKEN: 'fake',
  AIRTABLE_API_KEY: 'patfake',
  PINECONE_API_KEY: 'fake',
  ATLASSIAN_SITE_NAME: 'fake',
  ATLASSIAN_USER_EMAIL: 'fake@example.com',
  ATLASSIAN_API_TOKEN: 'fake',
  CLOUDFLARE_API_TOKEN: 'fake',
  MCP_TRANSPORT_TYPE: 'stdio',
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

// More servers (--more; written to test/fixture/catalogs/more/): the 1,000-tool scale set of the
// search benchmark (tools/bench/searchbench.c --more). Same rules: fake credentials, list only.
const moreServers = {
  git: ['@cyanheads/git-mcp-server', 'dist/index.js'],
  'desktop-commander': ['@wonderwhy-er/desktop-commander', 'dist/index.js'],
  kubernetes: ['mcp-server-kubernetes', 'dist/index.js'],
  chart: ['@antv/mcp-server-chart', 'build/index.js'],
  'chrome-devtools': ['chrome-devtools-mcp', 'build/src/bin/chrome-devtools-mcp.js'],
  mongodb: ['mongodb-mcp-server', 'dist/esm/index.js'],
  neon: ['@neondatabase/mcp-server-neon', 'dist/index.js', 'start', 'fake'],
  stripe: ['@stripe/mcp', 'dist/index.js', '--tools=all', '--api-key=sk_test_fake'],
  sentry: ['@sentry/mcp-server', 'dist/index.js', '--access-token=fake'],
  'playwright-ea': ['@executeautomation/playwright-mcp-server', 'dist/index.js'],
  circleci: ['@circleci/mcp-server-circleci', 'dist/index.js'],
  heroku: ['@heroku/mcp-server', 'bin/heroku-mcp-server.mjs'],
  tavily: ['tavily-mcp', 'build/index.js'],
  exa: ['exa-mcp-server', 'dist/stdio.cjs'],
  firecrawl: ['firecrawl-mcp', 'dist/index.js'],
  supabase: ['@supabase/mcp-server-supabase', 'dist/cli.js', '--access-token=sbp_fake'],
  context7: ['@upstash/context7-mcp', 'dist/index.js'],
  mysql: ['@benborla29/mcp-server-mysql', 'dist/index.js'],
  elasticsearch: ['@elastic/mcp-server-elasticsearch', 'dist/index.js'],
  hubspot: ['@hubspot/mcp-server', 'dist/index.js'],
  mapbox: ['@mapbox/mcp-server', 'dist/index.js'],
  datadog: ['@winor30/mcp-server-datadog', 'build/index.js'],
  'azure-devops': ['@azure-devops/mcp', 'dist/index.js', 'fakeorg'],
  'gitlab-community': ['@zereight/mcp-gitlab', 'build/index.js'],
  digitalocean: ['@digitalocean/mcp', 'index.js'],
  upstash: ['@upstash/mcp-server', 'dist/index.js', 'run', 'fake@example.com', 'fake'],
  airtable: ['airtable-mcp-server', 'dist/main.js'],
  railway: ['@railway/mcp-server', 'index.js'],
  netlify: ['@netlify/mcp', 'dist/netlify-mcp.js'],
  'browser-tools': ['@agentdeskai/browser-tools-mcp', 'dist/mcp-server.js'],
  pinecone: ['@pinecone-database/mcp', 'dist/index.js'],
  cloudflare: ['@cloudflare/mcp-server-cloudflare', 'dist/index.js', 'run', 'fakeaccount'],
  jira: ['@aashari/mcp-server-atlassian-jira', 'dist/index.js'],
};
const recording = more ? moreServers : servers;
if (more) out = path.join(out, 'more');

// redis-server stand-in: "+OK" to every command, enough for the client to connect.
const fakeRedis = net.createServer((s) => {
  s.on('data', (d) => s.write('+OK\r\n'.repeat((d.toString().match(/\*\d+\r\n/g) || ['']).length)));
  s.on('error', () => {});
});
await new Promise((r) => fakeRedis.listen(6390, '127.0.0.1', r));

fs.mkdirSync(out, { recursive: true });
let total = 0;
for (const [name, [pkg, entry, ...args]] of Object.entries(recording)) {
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
