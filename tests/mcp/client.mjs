// An MCP client's authorization, done by the official MCP TypeScript SDK (`@modelcontextprotocol/sdk`,
// pinned in package.json) and nothing else: this file only stores what the SDK asks it to store and hands
// the authorization URL to whoever plays the user.
//
//   node client.mjs RESOURCE_URL
//
// It calls RESOURCE_URL through the SDK's `withOAuth` fetch wrapper. The bare call gets a 401; the SDK
// reads the challenge's `resource_metadata` (RFC 9728 §5.1), the protected-resource metadata, the
// authorization server's metadata (RFC 8414), registers itself (RFC 7591) with a loopback redirect URI on
// a port of its own, and asks for the user's authorization (code + PKCE + `resource`, RFC 8707).
//
// stdout, one JSON object per line:
//   {"authorize": URL}                        the user's browser opens URL; the callback lands here
//   {"status": N, "body": …, "client_id": ID} the resource's answer after the SDK exchanged the code
// Anything going wrong: a message on stderr and exit code 1.

import http from 'node:http';
import { auth, extractWWWAuthenticateParams, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { withOAuth } from '@modelcontextprotocol/sdk/client/middleware.js';

const resourceUrl = process.argv[2];
if (!resourceUrl) {
    console.error('usage: node client.mjs RESOURCE_URL');
    process.exit(2);
}
const serverUrl = new URL(resourceUrl).origin;

// The loopback redirect (RFC 8252 §7.3) on a port the system picks, as MCP clients register it.
let receiveCode;
const codeReceived = new Promise((resolve, reject) => {
    receiveCode = { resolve, reject };
});
const callback = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://localhost');
    if (url.pathname !== '/callback') {
        response.writeHead(404).end();
        return;
    }
    const code = url.searchParams.get('code');
    response.writeHead(code ? 200 : 400, { 'content-type': 'text/plain' });
    response.end(code ? 'Signed in: you can close this window.' : 'No code.');
    if (code) {
        receiveCode.resolve(code);
    } else {
        receiveCode.reject(new Error(`the authorization failed: ${url.search}`));
    }
});
await new Promise(resolve => callback.listen(0, '127.0.0.1', resolve));
const redirectUrl = `http://localhost:${callback.address().port}/callback`;

// What an MCP host keeps between runs, kept in memory.
const stored = {};
const provider = {
    get redirectUrl() {
        return redirectUrl;
    },
    get clientMetadata() {
        return {
            client_name: 'MCP SDK end-to-end client',
            redirect_uris: [redirectUrl],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none'
        };
    },
    clientInformation: () => stored.client,
    saveClientInformation: client => {
        stored.client = client;
    },
    tokens: () => stored.tokens,
    saveTokens: tokens => {
        stored.tokens = tokens;
    },
    redirectToAuthorization: url => {
        stored.authorizing = true;
        console.log(JSON.stringify({ authorize: url.href }));
    },
    saveCodeVerifier: verifier => {
        stored.verifier = verifier;
    },
    codeVerifier: () => stored.verifier,
    saveDiscoveryState: state => {
        stored.discovery = state;
    },
    discoveryState: () => stored.discovery
};

// The challenge of the bare call, kept for the second half of the flow as the SDK's transports keep it.
let resourceMetadataUrl;
const remembering = async (input, init) => {
    const response = await fetch(input, init);
    if (response.status === 401) {
        resourceMetadataUrl = extractWWWAuthenticateParams(response).resourceMetadataUrl;
    }
    return response;
};
const authorizedFetch = withOAuth(provider, serverUrl)(remembering);

try {
    try {
        await authorizedFetch(resourceUrl);
        throw new Error('the resource answered without a token');
    } catch (error) {
        // withOAuth reports "the user must authorize" and every failure alike, as UnauthorizedError.
        if (!(error instanceof UnauthorizedError) || !stored.authorizing) {
            throw error;
        }
    }
    if (!resourceMetadataUrl) {
        throw new Error('the 401 named no resource_metadata');
    }
    const code = await codeReceived;
    const result = await auth(provider, { serverUrl, authorizationCode: code, resourceMetadataUrl });
    if (result !== 'AUTHORIZED') {
        throw new Error(`the code exchange ended ${result}`);
    }
    const response = await authorizedFetch(resourceUrl);
    const text = await response.text();
    let body;
    try {
        body = JSON.parse(text);
    } catch {
        body = text;
    }
    console.log(JSON.stringify({ status: response.status, body, client_id: stored.client?.client_id }));
} catch (error) {
    console.error(`mcp client: ${error?.stack ?? error}`);
    process.exitCode = 1;
} finally {
    callback.close();
}
