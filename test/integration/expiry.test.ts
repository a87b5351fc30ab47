/**
 * Session TTL end to end: once a session's time has passed it refuses appends and connections
 * with SESSION_EXPIRED, the sweeper reclaims its storage, and readers connected at that moment are
 * told why their stream ended.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LifelineError, formatOffset } from '../../src/protocol/index.js';
import { connect } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import { api, metric, scrape } from '../support/http.js';
import { stateReached } from '../support/sdk.js';
import { waitFor, within } from '../support/wait.js';

/** Waits (by polling the clock, not a fixed sleep) until `expiresAt` has passed. */
async function expiryPassed(expiresAt: number): Promise<void> {
  await waitFor(() => Date.now() > expiresAt, { timeoutMs: 10_000, intervalMs: 20, message: 'the session TTL to pass' });
}

/**
 * The TTL the tests give their session: everything before the expiry (connections, appends, the
 * checks that the session is still whole) must fit in it, so it leaves a loaded machine seconds,
 * not a few hundred milliseconds, while the tests stay short.
 */
const TTL_SECONDS = 4;

async function createWithTtl(url: string, adminToken: string, id: string, ttlSeconds: number): Promise<number> {
  const res = await api(url, 'POST', '/v1/sessions', { token: adminToken, body: { id, ttlSeconds } });
  expect(res.status).toBe(201);
  return res.json.expiresAt as number;
}

describe('an expired session refuses everything with SESSION_EXPIRED', () => {
  it('appends, connections and HTTP calls after the TTL get SESSION_EXPIRED (WS close 4410), nothing written', async () => {
    const c = useCleanup();
    // The sweeper is far away here, so the expired session is still on record.
    const relay = await c.relay({ sweepIntervalMs: 600_000, idleTimeoutMs: 60_000 });
    const expiresAt = await createWithTtl(relay.url, relay.adminToken, 'short', TTL_SECONDS);
    const sid = 'short';
    const agentToken = await relay.token(sid, 'bot', 'agent');
    const writer = await c.raw(relay.url, sid, { token: agentToken });
    await writer.hello({ device: 'raw-writer' });
    const agent = await c.sdk({ url: relay.url, token: agentToken, device: 'sdk-writer' });
    expect(await agent.sendText('before the end')).toBe(formatOffset(1));
    const store = relay.relay.timeline.store;
    expect(await store.head(sid)).toBe(1);

    await expiryPassed(expiresAt);

    // A raw append on a connection opened before expiry: refused, fatal, close 4410.
    writer.sendFrame({ type: 'append', producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'text.delta', data: { text: 'too late' } });
    expect(await writer.error('SESSION_EXPIRED')).toMatchObject({ fatal: true });
    expect((await writer.closed).code).toBe(4410);

    // The SDK's append is refused and the session ends with the final error.
    const closed = stateReached(agent, 'closed');
    await expect(agent.sendText('also too late')).rejects.toMatchObject({ code: 'SESSION_EXPIRED' });
    expect(await closed).toMatchObject({ state: 'closed', error: 'SESSION_EXPIRED' });
    expect(await store.head(sid)).toBe(1);

    // New connections: raw and SDK.
    const late = await c.raw(relay.url, sid, { token: await relay.token(sid, 'alice', 'user') });
    expect(await late.error('SESSION_EXPIRED')).toMatchObject({ fatal: true });
    expect((await late.closed).code).toBe(4410);
    const refused = await connect({ url: relay.url, token: await relay.token(sid, 'alice', 'user') }).then(
      (s) => {
        s.close();
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(LifelineError);
    expect((refused as LifelineError).code).toBe('SESSION_EXPIRED');

    // HTTP: describe and token minting answer 410.
    const info = await api(relay.url, 'GET', `/v1/sessions/${sid}`, { token: relay.adminToken });
    expect(info.status).toBe(410);
    expect(info.json).toMatchObject({ error: { code: 'SESSION_EXPIRED' } });
    const mint = await api(relay.url, 'POST', `/v1/sessions/${sid}/tokens`, { token: relay.adminToken, body: { participant: 'x', role: 'user' } });
    expect(mint.status).toBe(410);
    expect(mint.json).toMatchObject({ error: { code: 'SESSION_EXPIRED' } });
    expect(metric(await scrape(relay.url), 'lifeline_errors_total', { code: 'SESSION_EXPIRED' })).toBeGreaterThanOrEqual(3);
    expect(await store.head(sid)).toBe(1);
  });
});

describe('the sweeper reclaims expired sessions', () => {
  it.each(['memory', 'sqlite'] as const)('%s store: readers connected at expiry get SESSION_EXPIRED, then the session and its storage are gone', async (kind) => {
    const c = useCleanup();
    const store = kind === 'memory' ? 'memory' : `sqlite:${join(c.dir('lifeline-expiry-'), 'relay.db')}`;
    const relay = await c.relay({ store, sweepIntervalMs: 200, idleTimeoutMs: 60_000 });
    const expiresAt = await createWithTtl(relay.url, relay.adminToken, 'brief', TTL_SECONDS);
    const sid = 'brief';
    const keeper = await relay.createSession({ id: 'keeper' });
    const longer = await relay.createSession({ id: 'longer', ttlSeconds: 3600 });

    const agent = await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent'), device: 'bot-1', producer: 'brain' });
    const reader = await c.sdk({ url: relay.url, token: await relay.token(sid, 'alice', 'user'), device: 'tab' });
    const raw = await c.raw(relay.url, sid, { token: await relay.token(sid, 'carol', 'user') });
    await raw.hello({ resume: '-1' });
    const received: string[] = [];
    reader.on('event', (e) => received.push(e.offset));
    for (const t of ['a', 'b', 'c']) await agent.sendText(t);
    await waitFor(() => received.length === 3);
    const other = await c.sdk({ url: relay.url, token: await relay.token(keeper, 'dave', 'user'), device: 'dave-1' });
    const otherAgent = await c.sdk({ url: relay.url, token: await relay.token(keeper, 'bot', 'agent') });
    const backing = relay.relay.timeline.store;
    expect(await backing.head(sid)).toBe(3);
    expect(await backing.producer(sid, 'bot/brain')).toMatchObject({ epoch: 0, seq: 2 });
    const readerEnded = stateReached(reader, 'closed');
    const agentEnded = stateReached(agent, 'closed');

    // The sweeper runs every 200 ms: soon after the TTL, every reader of the session is told.
    const end = await within(readerEnded, 10_000, 'the reader to be ended by the sweeper');
    expect(end).toMatchObject({ state: 'closed', error: 'SESSION_EXPIRED' });
    expect(Date.now()).toBeGreaterThan(expiresAt);
    expect(await within(agentEnded, 5_000, 'the agent to be ended')).toMatchObject({ error: 'SESSION_EXPIRED' });
    expect(await raw.error('SESSION_EXPIRED')).toMatchObject({ fatal: true });
    expect((await raw.closed).code).toBe(4410);
    expect(raw.events.map((e) => e.offset)).toEqual([1, 2, 3].map(formatOffset));

    // Storage reclaimed: record, events and producer state.
    await waitFor(async () => (await backing.getSession(sid)) === undefined, { message: 'the session record to be deleted' });
    expect(await backing.head(sid)).toBeUndefined();
    expect(await backing.read(sid, 0, 100)).toEqual([]);
    expect(await backing.producer(sid, 'bot/brain')).toBeUndefined();
    expect(await backing.expiredSessions(Date.now(), 10)).toEqual([]);
    expect(metric(await scrape(relay.url), 'lifeline_sessions_expired_total')).toBe(1);
    await waitFor(() => relay.relay.connections.connections(sid).length === 0, { message: 'no connection left on the expired session' });

    // Once reclaimed, the relay no longer knows the session at all.
    const gone = await api(relay.url, 'GET', `/v1/sessions/${sid}`, { token: relay.adminToken });
    expect(gone.status).toBe(404);
    expect(gone.json).toMatchObject({ error: { code: 'SESSION_NOT_FOUND' } });
    const late = await c.raw(relay.url, sid, { token: await relay.token(sid, 'alice', 'user') });
    expect(await late.error()).toMatchObject({ code: 'SESSION_NOT_FOUND', fatal: true });

    // Sessions without a TTL, or with time left, are untouched and keep serving.
    expect(await backing.getSession(keeper)).toBeDefined();
    expect(await backing.getSession(longer)).toBeDefined();
    expect(other.state).toBe('connected');
    const seen: string[] = [];
    other.on('event', (e) => seen.push((e.data as { text: string }).text));
    await otherAgent.sendText('still here');
    await waitFor(() => seen.includes('still here'));
  });
});
