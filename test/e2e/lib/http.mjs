// Raw HTTP for protocol-level tests: full control of headers (Host, Origin, Accept...), streaming
// bodies, and an SSE parser that also reports events without data (priming events).
import http from 'node:http';

export const ACCEPT_BOTH = 'application/json, text/event-stream';
export const PROTOCOL_VERSIONS = ['2025-03-26', '2025-06-18', '2025-11-25'];
export const LATEST = '2025-11-25';

let nextId = 1;
export function rpc(method, params, id = nextId++) {
  const m = { jsonrpc: '2.0', id, method };
  if (params !== undefined) m.params = params;
  return m;
}
export function notification(method, params) {
  const m = { jsonrpc: '2.0', method };
  if (params !== undefined) m.params = params;
  return m;
}

// Incremental SSE parser (WHATWG rules, except that blocks with an id but no data are reported
// too, with hasData=false: those are the priming events the tests look for).
export class SSEParser {
  constructor() {
    this.buf = '';
    this.reset();
  }
  reset() {
    this.ev = { id: undefined, event: undefined, data: [], retry: undefined, hasData: false, any: false };
  }
  // Feeds text; returns completed events [{id, event, data, retry, hasData}].
  push(text) {
    this.buf += text;
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (line === '') {
        if (this.ev.any) {
          out.push({
            id: this.ev.id,
            event: this.ev.event,
            data: this.ev.data.join('\n'),
            retry: this.ev.retry,
            hasData: this.ev.hasData,
          });
        }
        this.reset();
        continue;
      }
      if (line.startsWith(':')) continue; // comment / keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      this.ev.any = true;
      if (field === 'data') {
        this.ev.data.push(value);
        this.ev.hasData = true;
      } else if (field === 'id') this.ev.id = value;
      else if (field === 'event') this.ev.event = value;
      else if (field === 'retry') this.ev.retry = Number(value);
    }
    return out;
  }
}

// Parses an event's data as JSON; undefined when empty or not JSON.
export function eventJson(ev) {
  if (!ev || !ev.data) return undefined;
  try {
    return JSON.parse(ev.data);
  } catch {
    return undefined;
  }
}

/*
 * Sends one request. Resolves when the response headers arrive with
 *   {status, headers, contentType, isSSE, res, text(), json(), events(), next(ms), close()}
 * where the body is consumed lazily: text()/json() read it all; for SSE, next(ms) returns the
 * next event (or null at end of stream; throws on timeout), events({until, timeout}) collects.
 * body: object/array (JSON-encoded), string or Buffer.
 */
export function request(url, { method = 'POST', headers = {}, body, timeout = 10000, expectContinue = false } = {}) {
  const u = new URL(url);
  let payload;
  const h = { ...headers };
  if (body !== undefined) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    h['Content-Length'] = Buffer.byteLength(payload);
  }
  for (const k of Object.keys(h)) if (h[k] === undefined || h[k] === null) delete h[k];
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent: false },
      (res) => {
        req.setTimeout(0);
        resolve(wrapResponse(req, res));
      },
    );
    req.setTimeout(timeout, () => req.destroy(new Error(`no response headers within ${timeout} ms`)));
    req.on('error', reject);
    if (payload !== undefined && expectContinue) {
      // Send the body only after "100 Continue"; a final status may come first instead.
      req.setHeader('Expect', '100-continue');
      req.on('continue', () => req.end(payload));
      req.flushHeaders();
    } else if (payload !== undefined) req.end(payload);
    else req.end();
  });
}

function wrapResponse(req, res) {
  const contentType = res.headers['content-type'] || '';
  const isSSE = contentType.includes('text/event-stream');
  const parser = new SSEParser();
  const queue = [];
  const waiters = [];
  let ended = false;
  let error = null;
  let raw = '';
  res.setEncoding('utf8');
  const wake = () => {
    while (waiters.length) waiters.shift()();
  };
  res.on('data', (chunk) => {
    raw += chunk;
    if (isSSE) queue.push(...parser.push(chunk));
    wake();
  });
  res.on('end', () => {
    ended = true;
    wake();
  });
  res.on('error', (e) => {
    error = e;
    ended = true;
    wake();
  });
  res.on('close', () => {
    ended = true;
    wake();
  });
  const waitChange = (ms) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no SSE event within ${ms} ms`)), ms);
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });

  const r = {
    status: res.statusCode,
    headers: res.headers,
    contentType,
    isSSE,
    res,
    sessionId: res.headers['mcp-session-id'],
    async text() {
      while (!ended) await new Promise((ok) => waiters.push(ok));
      return raw;
    },
    async json() {
      const t = await r.text();
      try {
        return JSON.parse(t);
      } catch {
        throw new Error(`response body is not JSON (status ${res.statusCode}, type ${contentType}): ${t.slice(0, 300)}`);
      }
    },
    // Next SSE event, or null when the stream ended.
    async next(ms = 10000) {
      const end = Date.now() + ms;
      while (!queue.length && !ended) await waitChange(Math.max(1, end - Date.now()));
      if (queue.length) return queue.shift();
      if (error && error.code !== 'ECONNRESET') throw error;
      return null;
    },
    // Collects SSE events until the stream ends, until(ev) is true (then closes), or timeout.
    async events({ until, timeout = 10000, close = true } = {}) {
      const out = [];
      const end = Date.now() + timeout;
      for (;;) {
        const left = end - Date.now();
        if (left <= 0) throw new Error(`SSE stream not finished within ${timeout} ms; got ${JSON.stringify(out)}`);
        const ev = await r.next(left);
        if (ev === null) return out;
        out.push(ev);
        if (until && until(ev, out)) {
          if (close) r.close();
          return out;
        }
      }
    },
    // All JSON-RPC messages of the body: a JSON object/array, or the JSON data of SSE events.
    async messages(opts = {}) {
      if (isSSE) {
        const evs = await r.events(opts);
        return evs.map(eventJson).filter((m) => m !== undefined);
      }
      const t = await r.text();
      if (!t) return [];
      const j = JSON.parse(t);
      return Array.isArray(j) ? j : [j];
    },
    close() {
      req.destroy();
      res.destroy();
    },
  };
  return r;
}

// Headers for a request inside a session.
export function sessionHeaders(sess, extra = {}) {
  const h = { Accept: ACCEPT_BOTH };
  if (sess?.sessionId) h['Mcp-Session-Id'] = sess.sessionId;
  if (sess?.protocolVersion && sess.protocolVersion !== '2025-03-26') h['MCP-Protocol-Version'] = sess.protocolVersion;
  return { ...h, ...extra };
}

// POSTs one JSON-RPC request in a session and returns its response message (JSON or SSE), plus
// the other messages that came on the same stream.
export async function call(url, sess, method, params, { headers = {}, timeout = 10000 } = {}) {
  const msg = rpc(method, params);
  const r = await request(url, { headers: sessionHeaders(sess, headers), body: msg, timeout });
  if (r.status !== 200) {
    const t = await r.text();
    throw new Error(`${method}: HTTP ${r.status}: ${t.slice(0, 300)}`);
  }
  const msgs = await r.messages({ timeout, until: (ev) => eventJson(ev)?.id === msg.id });
  const response = msgs.find((m) => m.id === msg.id && ('result' in m || 'error' in m));
  if (!response) throw new Error(`${method}: no response in ${JSON.stringify(msgs)}`);
  return { response, others: msgs.filter((m) => m !== response), http: r };
}

/*
 * Runs initialize (+ notifications/initialized) over raw HTTP.
 * Returns {sessionId, protocolVersion, result, initResponse}.
 */
export async function initSession(url, { protocolVersion = LATEST, capabilities = {}, headers = {} } = {}) {
  const init = rpc('initialize', {
    protocolVersion,
    capabilities,
    clientInfo: { name: 'mcpgate-e2e-raw', version: '1.0.0' },
  });
  const r = await request(url, { headers: { Accept: ACCEPT_BOTH, ...headers }, body: init });
  if (r.status !== 200) throw new Error(`initialize: HTTP ${r.status}: ${(await r.text()).slice(0, 300)}`);
  const msgs = await r.messages({ until: (ev) => eventJson(ev)?.id === init.id });
  const resp = msgs.find((m) => m.id === init.id);
  if (!resp || !resp.result) throw new Error(`initialize failed: ${JSON.stringify(msgs)}`);
  const sess = { sessionId: r.sessionId, protocolVersion: resp.result.protocolVersion, result: resp.result, initResponse: r };
  const n = await request(url, {
    headers: sessionHeaders(sess, headers),
    body: notification('notifications/initialized'),
  });
  await n.text();
  if (n.status !== 202) throw new Error(`notifications/initialized: expected 202, got HTTP ${n.status}`);
  return sess;
}

export async function deleteSession(url, sess) {
  const r = await request(url, { method: 'DELETE', headers: sessionHeaders(sess) });
  await r.text();
  return r.status;
}

// Every notification method the GET stream brings, in order, until stop().
export function collectMethods(get, slice = 500) {
  const got = [];
  let stopped = false;
  (async () => {
    while (!stopped) {
      let ev;
      try {
        ev = await get.next(slice);
      } catch {
        continue; // no event within the slice: look again
      }
      if (ev === null) return;
      const m = eventJson(ev);
      if (m?.method) got.push(m.method);
    }
  })();
  return {
    got,
    stop() {
      stopped = true;
      get.close();
    },
  };
}
