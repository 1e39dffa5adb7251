// A test identity provider on 127.0.0.1: keys generated at test time (jose), OpenID discovery,
// JWKS, RFC 7662 introspection, and helpers that mint good and deliberately bad access tokens.
//
//   const idp = await startIdp({ audience });
//   idp.issuer, idp.jwksUri, idp.metadataUrl
//   await idp.addKey('RS256' | 'ES256' | 'PS256', kid?)   -> kid (published in the JWKS)
//   idp.removeKey(kid)                                  unpublishes (the private key is kept)
//   await idp.mint({claims, alg, kid, header, expiresIn}) -> compact JWT
//   idp.algNone(claims), await idp.hs256WithPublicKey(kid, claims), idp.tamper(token, claims)
//   idp.opaque({active, sub, aud, scope, exp})          -> an opaque token known to /introspect
//   idp.down = true                                      answers 503 to everything
//   idp.jwksDelayMs = 500                                slow JWKS answers
//   idp.stats: {metadata, jwks, introspect}              request counters
//   POST /token (client_credentials, client_secret_basic) -> opaque tokens in idp.issued (Map token ->
//   {resource, scope, subject}; delete one to revoke it), idp.tokenTtl (expires_in, s), stats.tokenRequests;
//   RFC 8693 token exchange on the same endpoint (subject = the exchanged token; idp.refuseSubjects)
//   await idp.stop()
import crypto from 'node:crypto';
import http from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export async function startIdp({ audience, clientId = 'mcpgate', clientSecret = 'gateway-secret', issuerPath = '' } = {}) {
  const keys = new Map(); // kid -> {alg, privateKey, publicJwk, published}
  const opaque = new Map(); // token -> introspection answer
  const stats = { metadata: 0, jwks: 0, introspect: 0, lastIntrospectAuth: null, tokenRequests: [] };
  const state = { down: false, delayMs: 0, tokenTtl: 3600, refuseSubjects: new Set() };
  const issued = new Map(); // access token (client credentials) -> {resource, scope}
  let issuer;

  const server = http.createServer((req, res) => {
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (state.down) return send(503, { error: 'temporarily_unavailable' });
    const url = new URL(req.url, 'http://x');
    if (url.pathname === `${issuerPath}/.well-known/openid-configuration` ||
        url.pathname === `/.well-known/oauth-authorization-server${issuerPath}`) {
      stats.metadata++;
      return send(200, metadata());
    }
    if (url.pathname === '/jwks') {
      stats.jwks++;
      const body = { keys: [...keys.values()].filter((k) => k.published).map((k) => k.publicJwk) };
      if (state.delayMs) return setTimeout(() => send(200, body), state.delayMs);
      return send(200, body);
    }
    if (url.pathname === '/introspect' && req.method === 'POST') {
      stats.introspect++;
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const auth = req.headers.authorization || '';
        stats.lastIntrospectAuth = auth;
        const want = 'Basic ' + Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
        if (auth !== want) return send(401, { error: 'invalid_client' });
        const token = new URLSearchParams(body).get('token');
        const entry = opaque.get(token);
        return send(200, entry ? entry : { active: false });
      });
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      // OAuth client credentials (client_secret_basic): an opaque token, recorded with its request
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const want = 'Basic ' + Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
        const form = Object.fromEntries(new URLSearchParams(body));
        stats.tokenRequests.push({ auth: req.headers.authorization || '', ...form });
        if ((req.headers.authorization || '') !== want) return send(401, { error: 'invalid_client' });
        const exchange = form.grant_type === 'urn:ietf:params:oauth:grant-type:token-exchange';
        if (form.grant_type !== 'client_credentials' && !exchange) return send(400, { error: 'unsupported_grant_type' });
        if (exchange && (!form.subject_token || form.subject_token_type !== 'urn:ietf:params:oauth:token-type:access_token'))
          return send(400, { error: 'invalid_request' });
        if (exchange && state.refuseSubjects.has(form.subject_token)) return send(400, { error: 'invalid_grant' });
        const token = (exchange ? 'te_' : 'cc_') + crypto.randomBytes(16).toString('hex');
        issued.set(token, { resource: form.resource, scope: form.scope, subject: exchange ? form.subject_token : null });
        return send(200, { access_token: token, token_type: 'Bearer', expires_in: state.tokenTtl });
      });
      return;
    }
    send(404, { error: 'not_found' });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  issuer = base + issuerPath;

  function metadata() {
    return {
      issuer,
      authorization_endpoint: `${base}/authorize`,
      token_endpoint: `${base}/token`,
      jwks_uri: `${base}/jwks`,
      introspection_endpoint: `${base}/introspect`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
    };
  }

  const idp = {
    base,
    get issuer() {
      return issuer;
    },
    jwksUri: `${base}/jwks`,
    metadataUrl: `${issuer}/.well-known/openid-configuration`,
    clientId,
    clientSecret,
    stats,
    get down() {
      return state.down;
    },
    set down(v) {
      state.down = v;
    },
    set jwksDelayMs(v) {
      state.delayMs = v;
    },
    // client credentials (/token): lifetime of the next tokens, the live ones, revocation
    set tokenTtl(v) {
      state.tokenTtl = v;
    },
    issued,
    refuseSubjects: state.refuseSubjects, // token exchange: these subject tokens get invalid_grant
    keys,

    async addKey(alg = 'RS256', kid = `${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`) {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
      keys.set(kid, { alg, privateKey, publicJwk, published: true });
      return kid;
    },
    removeKey(kid) {
      const k = keys.get(kid);
      if (k) k.published = false;
    },

    claims(extra = {}) {
      const now = Math.floor(Date.now() / 1000);
      return { iss: issuer, aud: audience, sub: 'alice', iat: now, exp: now + 300, scope: 'mcp', ...extra };
    },

    // Signs claims (merged over the defaults) with key kid (default: the first published key).
    async mint({ claims = {}, kid, header = {}, raw = false } = {}) {
      const k = kid ? keys.get(kid) : [...keys.values()].find((x) => x.published);
      const id = kid || [...keys.entries()].find(([, x]) => x === k)[0];
      const payload = raw ? claims : idp.claims(claims);
      return new SignJWT(payload).setProtectedHeader({ alg: k.alg, kid: id, typ: 'at+jwt', ...header }).sign(k.privateKey);
    },

    algNone(claims = {}) {
      const h = b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
      const p = b64url(JSON.stringify(idp.claims(claims)));
      return `${h}.${p}.`;
    },

    // The classic algorithm-confusion forgery: HS256 with the RSA public key as the HMAC secret.
    hs256WithPublicKey(kid, claims = {}) {
      const k = keys.get(kid);
      const h = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid }));
      const p = b64url(JSON.stringify(idp.claims(claims)));
      const secret = JSON.stringify(k.publicJwk);
      const sig = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
      return `${h}.${p}.${sig}`;
    },

    // Replaces the payload of a signed token (keeps header and signature).
    tamper(token, claims = {}) {
      const [h, p, s] = token.split('.');
      const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), ...claims };
      return `${h}.${b64url(JSON.stringify(payload))}.${s}`;
    },

    opaque(answer = {}) {
      const token = 'opaque_' + crypto.randomBytes(24).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      opaque.set(token, { active: true, iss: issuer, aud: audience, sub: 'bob', scope: 'mcp', exp: now + 300, ...answer });
      return token;
    },

    stop() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(() => r()));
    },
  };
  return idp;
}
