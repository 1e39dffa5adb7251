// Raw HTTP/1.1 over node:net, for requests fetch and http.request refuse to send: broken framing,
// invalid header bytes, duplicated or huge headers, slow drips, abrupt disconnects.
import fs from 'node:fs';
import net from 'node:net';

/*
 * Sends `bytes` (string: latin1, or Buffer) on a new connection and reads one response.
 * Resolves {status, headers (lower-case names; arrays when repeated), body (string), json,
 * closed (the server closed the connection), ms}. status 0 = the connection closed (or was reset)
 * before a complete response head; -1 = no response within `timeout`. For an SSE response the
 * body is what arrived within `sseMs` (default 300). The socket is always destroyed at the end.
 * opts: timeout (ms, default 5000), sseMs, chunks (array of [bytes, delayMs] written in turn
 * instead of `bytes`), keepOpen (do not destroy: resolve with .socket for the caller).
 */
export function rawRequest(port, bytes, opts = {}) {
  const timeout = opts.timeout ?? 5000;
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    let head = null;
    let sseTimer = null;
    const finish = (extra) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(sseTimer);
      const r = { ms: Date.now() - t0, ...(head || { status: 0, headers: {} }), ...extra };
      if (head) {
        r.body = buf.subarray(head.bodyStart).toString('utf8');
        try {
          r.json = JSON.parse(r.body);
        } catch {
          r.json = undefined;
        }
      }
      delete r.bodyStart;
      if (opts.keepOpen && !r.closed) r.socket = sock;
      else sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ status: head ? head.status : -1, timedOut: true }), timeout);
    sock.on('error', () => {});
    sock.on('close', () => finish({ closed: true }));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!head) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          const k = l.slice(0, i).trim().toLowerCase();
          const v = l.slice(i + 1).trim();
          headers[k] = k in headers ? [].concat(headers[k], v) : v;
        }
        head = { status: m ? Number(m[1]) : 0, headers, bodyStart: end + 4 };
        if (Number(head.status) === 100) {
          // interim response: drop it and wait for the final one
          buf = buf.subarray(end + 4);
          head = null;
          return;
        }
        if (String(headers['content-type'] || '').includes('text/event-stream')) {
          sseTimer = setTimeout(() => finish({}), opts.sseMs ?? 300);
        }
      }
      if (head && head.headers['content-length'] !== undefined) {
        if (buf.length - head.bodyStart >= Number(head.headers['content-length'])) finish({});
      }
    });
    sock.on('connect', async () => {
      if (opts.chunks) {
        for (const [b, delay] of opts.chunks) {
          if (done || sock.destroyed) return;
          sock.write(typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
          if (delay) await new Promise((r) => setTimeout(r, delay));
        }
      } else {
        sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
      }
    });
  });
}

// "POST /mcp HTTP/1.1" with the usual headers; `headers` (object, or array of [name, value] for
// repeats) replaces or adds; a value of null drops a default header. body: string/Buffer/object.
export function buildPost(body, headers = {}, { path = '/mcp', method = 'POST' } = {}) {
  const b =
    body === undefined
      ? Buffer.alloc(0)
      : Buffer.isBuffer(body)
        ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const h = new Map([
    ['Host', 'localhost'],
    ['Content-Type', 'application/json'],
    ['Accept', 'application/json, text/event-stream'],
  ]);
  const extra = [];
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  for (const [k, v] of list) {
    const key = [...h.keys()].find((x) => x.toLowerCase() === k.toLowerCase());
    if (Array.isArray(headers)) extra.push([k, v]);
    else if (v === null) h.delete(key ?? k);
    else h.set(key ?? k, v);
  }
  if (!list.some(([k]) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) {
    h.set('Content-Length', String(b.length));
  }
  let s = `${method} ${path} HTTP/1.1\r\n`;
  for (const [k, v] of [...h.entries(), ...extra]) s += `${k}: ${v}\r\n`;
  return Buffer.concat([Buffer.from(s + '\r\n', 'latin1'), b]);
}

// Opens n connections that send nothing. Resolves with the sockets once all are connected.
export async function idleConnections(port, n) {
  const socks = [];
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve) => {
          const s = net.connect(port, '127.0.0.1');
          s.closedAt = null;
          s.on('error', () => {});
          s.on('close', () => {
            s.closedAt = Date.now();
          });
          s.on('connect', resolve);
          s.on('close', resolve);
          socks.push(s);
        }),
    ),
  );
  return socks;
}

// Resident set size of a process, KiB (VmRSS of /proc/<pid>/status).
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

// An RSS growth bound in KiB, plus MG_E2E_RSS_SLACK_KIB: sanitizer builds keep freed memory in
// quarantine and allocator caches (scripts/test.sh sets the slack for its ASan run).
export function rssBound(kib) {
  return kib + (Number(process.env.MG_E2E_RSS_SLACK_KIB) || 0);
}

/*
 * Sends `bytes` on a new connection and reads every response that comes back until the server
 * closes the connection or `timeout` ms pass (default 2000): for pipelined and smuggled requests.
 * Resolves {responses: [{status, statusLine, headers, body}], closed (by the server, before the
 * timeout), trailing (bytes after the last complete response)}. Responses are delimited by their
 * Content-Length (every non-streaming answer of the gateway has one). `max`: resolve as soon as that
 * many responses are complete (closed is then false unless the server had already closed).
 */
export function rawResponses(port, bytes, { timeout = 2000, max = Infinity } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const parse = () => {
      const responses = [];
      let at = 0;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n', at);
        if (end < 0) break;
        const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          const k = l.slice(0, i).trim().toLowerCase();
          const v = l.slice(i + 1).trim();
          headers[k] = k in headers ? [].concat(headers[k], v) : v;
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length < end + 4 + len) break;
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
        responses.push({
          status: m ? Number(m[1]) : 0,
          statusLine: lines[0],
          headers,
          body: buf.subarray(end + 4, end + 4 + len).toString('utf8'),
        });
        at = end + 4 + len;
      }
      return { responses, trailing: buf.subarray(at).toString('latin1') };
    };
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parse(), closed });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on('error', () => {});
    sock.on('close', () => finish(true));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (max !== Infinity && parse().responses.length >= max) finish(false);
    });
    sock.on('connect', () => sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes));
  });
}
