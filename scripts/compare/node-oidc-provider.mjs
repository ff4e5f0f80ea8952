// node-oidc-provider as the other server of `cargo xtask load --compare` (docs/benchmarks.md, "Against another
// server"): one confidential client with client_credentials and introspection, JWT access tokens (RFC 9068)
// signed with ES256 like ours, on loopback. Usage (from this folder):
//   npm install && PORT=3000 CLIENT_SECRET=… [ACCESS_TOKEN_FORMAT=opaque] node node-oidc-provider.mjs
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const secret = process.env.CLIENT_SECRET;
if (!secret || secret.length < 32) {
  console.error('set CLIENT_SECRET (at least 32 characters)');
  process.exit(1);
}
const issuer = `http://127.0.0.1:${port}`;
const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read write',
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [{ ...signingKey, alg: 'ES256', use: 'sig', kid: 'bench-es256' }] },
  scopes: ['read', 'write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:resource-api',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read write',
        audience: 'resource-api',
        accessTokenTTL: 900,
        // JWT (RFC 9068) like ours by default; ACCESS_TOKEN_FORMAT=opaque for introspection, which oidc-provider
        // refuses for JWT access tokens.
        accessTokenFormat: process.env.ACCESS_TOKEN_FORMAT === 'opaque' ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`node-oidc-provider listening on ${issuer}`));
