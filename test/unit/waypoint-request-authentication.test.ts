import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { authenticate, parseRequestAuthentication } from '../../src/waypoint/request-authentication.js';

const { publicKey, privateKey } = await generateKeyPair('ES256');
const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] });
const ra = (rule: Record<string, unknown> = {}) =>
  parseRequestAuthentication({ metadata: { name: 'ra', namespace: 'demo' }, spec: { targetRefs: [{ kind: 'Service', name: 'web' }], jwtRules: [{ issuer: 'https://iss', audiences: ['web'], jwks, ...rule }] } });
const token = (o: { aud?: string; exp?: string; iss?: string } = {}) =>
  new SignJWT({ scope: 'read' }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer(o.iss ?? 'https://iss').setSubject('bob').setAudience(o.aud ?? 'web').setExpirationTime(o.exp ?? '5m').sign(privateKey);
const request = (headers: Record<string, string>, query = '') => ({ header: (n: string) => headers[n], query: new URLSearchParams(query) });

test('a valid token gives the request principal iss/sub and its claims; the Authorization header is stripped unless forwarded', async () => {
  const r = await authenticate([ra()], request({ authorization: `Bearer ${await token()}` }));
  assert.equal(r.kind, 'ok');
  assert.equal(r.kind === 'ok' && r.auth.principal, 'https://iss/bob');
  assert.deepEqual(r.kind === 'ok' && r.stripHeaders, ['authorization']);
  const kept = await authenticate([ra({ forwardOriginalToken: true })], request({ authorization: `Bearer ${await token()}` }));
  assert.deepEqual(kept.kind === 'ok' && kept.stripHeaders, []);
});

test('expired, wrong audience, untrusted issuer, garbage and two different tokens are invalid (401); no token is not', async () => {
  const invalid = async (headers: Record<string, string>, query = '') => (await authenticate([ra()], request(headers, query))).kind;
  assert.equal(await invalid({ authorization: `Bearer ${await token({ exp: '-1m' })}` }), 'invalid');
  assert.equal(await invalid({ authorization: `Bearer ${await token({ aud: 'other' })}` }), 'invalid');
  assert.equal(await invalid({ authorization: `Bearer ${await token({ iss: 'https://evil' })}` }), 'invalid');
  assert.equal(await invalid({ authorization: 'Bearer abc.def.ghi' }), 'invalid');
  assert.equal(await invalid({ authorization: `Bearer ${await token()}` }, `access_token=${await token({ exp: '6m' })}`), 'invalid');
  assert.equal(await invalid({}), 'none');
  assert.equal(await invalid({}, `access_token=${await token()}`), 'ok', 'the default locations include ?access_token');
});

test('the schema is strict and names the field: jwks xor jwksUri, unknown fields, unsupported options', () => {
  const bad = (spec: unknown, field: RegExp) => assert.throws(() => parseRequestAuthentication({ metadata: { name: 'x', namespace: 'demo' }, spec }), field);
  bad({ targetRefs: [{ kind: 'Service', name: 'w' }], jwtRules: [{ issuer: 'i' }] }, /spec\.jwtRules\.0: exactly one of jwks or jwksUri must be set/);
  bad({ targetRefs: [{ kind: 'Service', name: 'w' }], jwtRules: [{ issuer: 'i', jwks: '{"keys": 5}' }] }, /spec\.jwtRules\.0\.jwks: not a JSON Web Key Set/);
  bad({ targetRefs: [{ kind: 'Service', name: 'w' }], jwtRules: [{ issuer: 'i', jwks, audience: ['x'] }] }, /spec\.jwtRules\.0: Unrecognized key/);
  bad({ jwtRules: [] }, /spec\.targetRefs: must name the waypoint Gateway or a Service/);
  bad({ targetRefs: [{ kind: 'Service', name: 'w' }], jwtRules: [{ issuer: 'i', jwks, fromCookies: ['c'] }] }, /spec\.jwtRules\.0\.fromCookies: not supported/);
});

test('an invalid RequestAuthentication rejects every token where it applies (fail closed), requests without one pass', async () => {
  const broken = { namespace: 'demo', name: 'bad', targets: [], rules: [], invalid: true };
  assert.equal((await authenticate([broken], request({ authorization: `Bearer ${await token()}` }))).kind, 'invalid');
  assert.equal((await authenticate([broken], request({}))).kind, 'none');
});
