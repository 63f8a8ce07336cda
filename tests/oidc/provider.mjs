// A real OpenID Connect provider (the certified `oidc-provider` package) for modelyard's OIDC
// login tests: authorization code + PKCE for the console, the device flow for the CLI.
//
//   node tests/oidc/provider.mjs --port 0 --users '{"alice": {...}}' \
//        --client-id modelyard --client-secret S --redirect-uri http://127.0.0.1:9/cb \
//        --public-client-id modelyard-cli
//
// It listens on 127.0.0.1 (port 0: any free one) and prints one line on stdout once it serves:
//
//   oidc provider ready: http://127.0.0.1:PORT
//
// Everything lives in memory and is gone when the process ends. The login and consent pages
// are served here (not by the package's devInteractions, whose form takes any name and no
// password), so only the users given, with their passwords, can log in. Next to what the
// package does itself, one thing is added: a device code polled again before its interval
// has passed is answered `slow_down` (RFC 8628, section 3.5), which the package leaves out.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { parse as parseQuery } from 'node:querystring';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const DEVICE_INTERVAL_S = 5;
const MAX_BODY = 64 * 1024;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    users: { type: 'string' },
    'client-id': { type: 'string', default: 'modelyard' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'public-client-id': { type: 'string', default: 'modelyard-cli' },
  },
});

if (!args.users || !args['client-secret'] || args['redirect-uri'].length === 0) {
  process.stderr.write('provider.mjs needs --users, --client-secret and --redirect-uri\n');
  process.exit(2);
}

/** name -> { password, email, name, groups } */
const users = JSON.parse(args.users);

function passwordMatches(user, given) {
  const a = Buffer.from(String(user.password));
  const b = Buffer.from(String(given ?? ''));
  return a.length === b.length && timingSafeEqual(a, b);
}

function account(id) {
  const user = Object.hasOwn(users, id) ? users[id] : undefined;
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        preferred_username: id,
        name: user.name ?? id,
        email: user.email,
        email_verified: true,
        groups: user.groups ?? [],
      };
    },
  };
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

function configuration() {
  return {
    clients: [
      {
        client_id: args['client-id'],
        client_secret: args['client-secret'],
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: args['redirect-uri'],
        grant_types: ['authorization_code', DEVICE_GRANT],
        response_types: ['code'],
      },
      {
        client_id: args['public-client-id'],
        token_endpoint_auth_method: 'none',
        redirect_uris: [],
        grant_types: [DEVICE_GRANT],
        response_types: [],
      },
    ],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    findAccount: async (ctx, id) => account(id),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [signingKey()] },
    pkce: { required: () => true },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      DeviceCode: 600,
      Grant: 600,
      IdToken: 600,
      Interaction: 600,
      Session: 600,
    },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
      userinfo: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
  };
}

// -- the login and consent pages ------------------------------------------------------------

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, title, body, status = 200) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`);
}

function loginPage(res, uid, message) {
  page(res, 'Sign-in', `${message ? `<p class="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <input type="text" name="login" required autofocus>
  <input type="password" name="password" required>
  <button type="submit">Sign-in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>`);
}

function consentPage(res, uid, clientId, scopes) {
  page(res, 'Authorize', `<p>${escape(clientId)} asks for: ${scopes.map(escape).join(', ')}</p>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button type="submit">Continue</button></form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Deny</button></form>`);
}

async function readForm(req) {
  let size = 0;
  const chunks = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return parseQuery(Buffer.concat(chunks).toString('utf8'));
}

async function confirmConsent(provider, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  return { consent: { grantId: await grant.save() } };
}

async function interaction(provider, req, res, path) {
  const [, uid, action] = path.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/) ?? [];
  if (!uid) return page(res, 'Not found', '', 404);
  const details = await provider.interactionDetails(req, res);
  const finish = (result, merge) => provider.interactionFinished(req, res, result, { mergeWithLastSubmission: merge });
  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'login') return loginPage(res, uid);
    const scopes = String(details.params.scope ?? '').split(' ').filter(Boolean);
    return consentPage(res, uid, details.params.client_id, scopes);
  }
  if (req.method !== 'POST') return page(res, 'Method not allowed', '', 405);
  if (action === 'abort') {
    return finish({ error: 'access_denied', error_description: 'the user denied the request' }, false);
  }
  if (action === 'login' && details.prompt.name === 'login') {
    const form = await readForm(req);
    const user = Object.hasOwn(users, form.login) ? users[form.login] : undefined;
    if (!user || !passwordMatches(user, form.password)) {
      return loginPage(res, uid, 'wrong login or password');
    }
    return finish({ login: { accountId: form.login } }, false);
  }
  if (action === 'confirm' && details.prompt.name === 'consent') {
    return finish(await confirmConsent(provider, details), true);
  }
  return page(res, 'Bad request', '<p>this step does not match the interaction</p>', 400);
}

// -- slow_down for device codes polled too fast ---------------------------------------------

function enforceDeviceInterval(provider) {
  const lastPoll = new Map();
  provider.use(async (ctx, next) => {
    await next();
    const deviceCode = ctx.oidc?.params?.device_code;
    if (ctx.oidc?.route !== 'token' || ctx.oidc.params.grant_type !== DEVICE_GRANT || !deviceCode) return;
    const now = Date.now();
    const previous = lastPoll.get(deviceCode);
    lastPoll.set(deviceCode, now);
    if (ctx.status === 400 && ctx.body?.error === 'authorization_pending'
        && previous !== undefined && now - previous < DEVICE_INTERVAL_S * 1000) {
      ctx.body = { error: 'slow_down', error_description: 'polled before the interval passed' };
    }
  });
}

// -- serving ---------------------------------------------------------------------------------

let provider;
let handle;
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://local').pathname;
  if (!path.startsWith('/interaction/')) return handle(req, res);
  interaction(provider, req, res, path).catch((error) => {
    process.stderr.write(`interaction failed: ${error}\n`);
    if (!res.headersSent) page(res, 'Error', `<p>${escape(error.message ?? error)}</p>`, 400);
  });
  return undefined;
});

server.listen(Number(args.port), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = new Provider(issuer, configuration());
  enforceDeviceInterval(provider);
  handle = provider.callback();
  process.stdout.write(`oidc provider ready: ${issuer}\n`);
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
