// A third-party OIDC issuer for the end-to-end tests: npm `oauth2-mock-server` 8.x (a real
// OAuth 2 / OIDC implementation with discovery and JWKS), with a hook that copies the
// broker's claims (sub, aud, roles, tenant, member) from the token request into the token.
//   node oidc-issuer.mjs PORT   -> prints the issuer URL, then serves on 127.0.0.1:PORT
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2] ?? 0);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on('beforeTokenSigning', (token, req) => {
  const body = req.body ?? {};
  token.payload.sub = body.sub ?? 'oidc-client';
  token.payload.aud = body.aud ?? 'alliance';
  if (body.roles) token.payload.roles = String(body.roles).split(' ');
  if (body.tenant) token.payload.tenant = body.tenant;
  if (body.member) token.payload.member = body.member;
});
await server.start(port, '127.0.0.1');
console.log(server.issuer.url);
