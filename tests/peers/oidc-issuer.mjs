// A third-party OIDC issuer for the end-to-end tests: npm `oauth2-mock-server` 8.x (a real
// OAuth 2 / OIDC implementation with discovery and JWKS), with a hook that copies the
// broker's claims (sub, aud, roles, tenant, member) from the token request into the token.
// For the authorization code flow (the console's sign-in) the "user" is named by the
// authorize request's `login_hint`, `ROLE@TENANT` or `ROLE`: its code then yields tokens
// with that role and tenant (the mock auto-approves every authorization).
//   node oidc-issuer.mjs PORT   -> prints the issuer URL, then serves on 127.0.0.1:PORT
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2] ?? 0);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
const logins = new Map();
server.service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  if (code && req.query.login_hint) logins.set(code, String(req.query.login_hint));
});
server.service.on('beforeTokenSigning', (token, req) => {
  const body = req.body ?? {};
  if (body.grant_type === 'authorization_code' && logins.has(body.code)) {
    const [role, tenant] = logins.get(body.code).split('@');
    token.payload.sub = `oidc-${logins.get(body.code)}`;
    token.payload.aud = 'alliance';
    token.payload.roles = [role];
    if (tenant) token.payload.tenant = tenant;
    return;
  }
  token.payload.sub = body.sub ?? 'oidc-client';
  token.payload.aud = body.aud ?? 'alliance';
  if (body.roles) token.payload.roles = String(body.roles).split(' ');
  if (body.tenant) token.payload.tenant = body.tenant;
  if (body.member) token.payload.member = body.member;
});
await server.start(port, '127.0.0.1');
console.log(server.issuer.url);
