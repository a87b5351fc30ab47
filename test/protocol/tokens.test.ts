import { SignJWT, UnsecuredJWT, decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { ANY_SESSION, LifelineError, TOKEN_ISSUER, mintToken, verifyToken } from '../../src/protocol/index.js';
import type { ErrorCode } from '../../src/protocol/index.js';

const SECRET = 'test-secret-0123456789abcdef';
const key = new TextEncoder().encode(SECRET);
const nowSec = (): number => Math.floor(Date.now() / 1000);

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) return undefined;
  expect(err).toBeInstanceOf(LifelineError);
  return (err as LifelineError).code;
}

/** A token built with jose directly, defaulting to one mintToken would make. */
async function craft(over: { claims?: Record<string, unknown>; exp?: number; iss?: string; sub?: string; alg?: string; secret?: string } = {}) {
  return new SignJWT({ sid: 's1', role: 'user', ...over.claims })
    .setProtectedHeader({ alg: over.alg ?? 'HS256', typ: 'JWT' })
    .setIssuer(over.iss ?? TOKEN_ISSUER)
    .setSubject(over.sub ?? 'alice')
    .setIssuedAt()
    .setExpirationTime(over.exp ?? nowSec() + 60)
    .sign(over.secret ? new TextEncoder().encode(over.secret) : key);
}

describe('tokens', () => {
  it('mint → verify round-trips the claims', async () => {
    const before = nowSec();
    const token = await mintToken(SECRET, { session: 's1', participant: 'alice', role: 'user', ttlSeconds: 120 });
    expect(token.split('.')).toHaveLength(3);
    const claims = await verifyToken(SECRET, token);
    expect(claims).toMatchObject({ session: 's1', participant: 'alice', role: 'user' });
    expect(claims.exp).toBeGreaterThanOrEqual(before + 120);
    expect(claims.exp).toBeLessThanOrEqual(nowSec() + 120);
  });

  it('defaults to a one-hour lifetime and rounds fractional ttls up', async () => {
    const d = await verifyToken(SECRET, await mintToken(SECRET, { session: 's1', participant: 'a', role: 'agent' }));
    expect(d.exp - nowSec()).toBeGreaterThanOrEqual(3599);
    expect(d.exp - nowSec()).toBeLessThanOrEqual(3600);
    // Decoded, not verified: a 1 s token may expire as the clock crosses a second boundary.
    const before = nowSec();
    const f = decodeJwt(await mintToken(SECRET, { session: 's1', participant: 'a', role: 'agent', ttlSeconds: 0.2 }));
    expect(f.exp).toBeGreaterThanOrEqual(before + 1);
    expect(f.exp).toBeLessThanOrEqual(nowSec() + 1);
  });

  it('mints admin tokens for every session only', async () => {
    const token = await mintToken(SECRET, { session: ANY_SESSION, participant: 'ops', role: 'admin' });
    expect(await verifyToken(SECRET, token)).toMatchObject({ session: '*', participant: 'ops', role: 'admin' });
    expect(await codeOf(mintToken(SECRET, { session: 's1', participant: 'ops', role: 'admin' }))).toBe('BAD_REQUEST');
  });

  it('refuses short secrets and non-positive ttls with BAD_REQUEST', async () => {
    const opts = { session: 's1', participant: 'alice', role: 'user' as const };
    expect(await codeOf(mintToken('short', opts))).toBe('BAD_REQUEST');
    expect(await codeOf(mintToken('x'.repeat(15), opts))).toBe('BAD_REQUEST');
    expect(await codeOf(mintToken('x'.repeat(16), opts))).toBeUndefined();
    for (const ttlSeconds of [0, -1, Number.NaN]) expect(await codeOf(mintToken(SECRET, { ...opts, ttlSeconds }))).toBe('BAD_REQUEST');
    const token = await mintToken(SECRET, opts);
    // verifyToken only ever answers UNAUTHORIZED | TOKEN_EXPIRED, even for a bad relay secret.
    expect(await codeOf(verifyToken('short', token))).toBe('UNAUTHORIZED');
  });

  it('verifies a hand-crafted token (so the negative cases below test one thing each)', async () => {
    expect(await verifyToken(SECRET, await craft())).toMatchObject({ session: 's1', participant: 'alice', role: 'user' });
  });

  it('rejects an expired token with TOKEN_EXPIRED', async () => {
    expect(await codeOf(verifyToken(SECRET, await craft({ exp: nowSec() - 60 })))).toBe('TOKEN_EXPIRED');
  });

  it('expires a minted token after its ttl', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Start just after a second boundary so the token (exp = floor(now) + 1) is surely valid at first.
    await sleep(1000 - (Date.now() % 1000) + 20);
    const token = await mintToken(SECRET, { session: 's1', participant: 'alice', role: 'user', ttlSeconds: 1 });
    expect(await codeOf(verifyToken(SECRET, token))).toBeUndefined();
    await sleep(1300);
    expect(await codeOf(verifyToken(SECRET, token))).toBe('TOKEN_EXPIRED');
  });

  it('rejects a token signed with another secret with UNAUTHORIZED', async () => {
    const token = await mintToken('another-secret-0123456789', { session: 's1', participant: 'alice', role: 'user' });
    expect(await codeOf(verifyToken(SECRET, token))).toBe('UNAUTHORIZED');
  });

  it('rejects garbage with UNAUTHORIZED', async () => {
    const good = await craft();
    const [h, p, s] = good.split('.') as [string, string, string];
    const tampered = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    tampered.sid = 's2';
    const garbage = [
      '',
      'garbage',
      'a.b.c',
      `${h}.${p}`,
      `${h}.${p}.`,
      `${h}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${s}`,
      `${good}x`,
    ];
    for (const token of garbage) expect(await codeOf(verifyToken(SECRET, token)), token).toBe('UNAUTHORIZED');
  });

  it('rejects unsigned, wrong-algorithm and wrong-issuer tokens with UNAUTHORIZED', async () => {
    const unsecured = new UnsecuredJWT({ sid: 's1', role: 'user' }).setIssuer(TOKEN_ISSUER).setSubject('alice').setExpirationTime('1h').encode();
    expect(await codeOf(verifyToken(SECRET, unsecured))).toBe('UNAUTHORIZED');
    expect(await codeOf(verifyToken(SECRET, await craft({ alg: 'HS512' })))).toBe('UNAUTHORIZED');
    expect(await codeOf(verifyToken(SECRET, await craft({ iss: 'someone-else' })))).toBe('UNAUTHORIZED');
  });

  it('rejects well-signed tokens with malformed claims with UNAUTHORIZED', async () => {
    const cases = [
      await craft({ claims: { sid: undefined } }),
      await craft({ claims: { sid: 'has space' } }),
      await craft({ claims: { role: 'root' } }),
      await craft({ claims: { role: undefined } }),
      await craft({ sub: 'bad/subject' }),
    ];
    for (const token of cases) expect(await codeOf(verifyToken(SECRET, token))).toBe('UNAUTHORIZED');
  });
});
