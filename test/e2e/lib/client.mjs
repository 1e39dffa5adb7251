// SDK client helper: @modelcontextprotocol/sdk Client over StreamableHTTPClientTransport.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export { Client, StreamableHTTPClientTransport };

/*
 * Connects (initialize + initialized) and returns {client, transport, sessionId, close()}.
 * opts: name, capabilities (client capabilities, e.g. {sampling: {}, elicitation: {}}),
 *       setup(client) (called before connect: register request/notification handlers there),
 *       requestInit (fetch options, e.g. headers), protocolVersion (forces the version offered).
 * close() sends DELETE for the session (errors ignored) and closes the client.
 */
export async function connect(url, opts = {}) {
  const client = new Client(
    { name: opts.name || 'mcpgate-e2e', version: '1.0.0' },
    { capabilities: opts.capabilities || {} },
  );
  if (opts.protocolVersion) {
    // The SDK always offers LATEST_PROTOCOL_VERSION; override the initialize request's version.
    const orig = client.request.bind(client);
    client.request = (req, ...rest) => {
      if (req.method === 'initialize') req = { ...req, params: { ...req.params, protocolVersion: opts.protocolVersion } };
      return orig(req, ...rest);
    };
  }
  opts.setup?.(client);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: opts.requestInit,
    reconnectionOptions: opts.reconnectionOptions,
  });
  await client.connect(transport, opts.connectOptions);
  let closed = false;
  return {
    client,
    transport,
    sessionId: transport.sessionId,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await transport.terminateSession();
      } catch {
        /* session may already be gone */
      }
      await client.close().catch(() => {});
    },
  };
}

// The text of the first text content block of a tools/call result.
export function textOf(result) {
  const c = (result?.content || []).find((b) => b.type === 'text');
  return c ? c.text : undefined;
}
