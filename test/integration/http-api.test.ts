/**
 * The HTTP API against a real relay: sessions (create, describe with who is connected, delete),
 * tokens, health and metrics; SDK clients connected over real WebSockets where it matters.
 */
import { describe, expect, it } from 'vitest';
import { ANY_SESSION, formatOffset, verifyToken } from '../../src/protocol/index.js';
import type { LifelineSession, StateChange } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import { api, metric, scrape } from '../support/http.js';
import { RawClient } from '../support/raw-ws.js';
import { SECRET } from '../support/relay.js';
import { stateReached } from '../support/sdk.js';
import { waitFor } from '../support/wait.js';

interface Participant {
  participant: string;
  role: string;
  online: boolean;
  devices: { device: string; state: string }[];
}

/** Participants sorted by name, each with its connected devices' names sorted. */
function byName(list: Participant[]): { participant: string; role: string; online: boolean; devices: string[] }[] {
  return [...list]
    .map((p) => ({ ...p, devices: p.devices.filter((d) => d.state === 'connected').map((d) => d.device).sort() }))
    .sort((a, b) => a.participant.localeCompare(b.participant));
}

describe('sessions', () => {
  it('POST /v1/sessions creates a session with id, ttl and metadata', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const before = Date.now();
    const metadata = { app: 'demo', user: { plan: 'pro' }, tags: ['a', 'b'], n: 3, ok: true, none: null };
    const res = await api(relay.url, 'POST', '/v1/sessions', { token: relay.adminToken, body: { id: 'call-42', ttlSeconds: 3600, metadata } });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ id: 'call-42', metadata, head: '-1' });
    const { createdAt, expiresAt } = res.json as { createdAt: number; expiresAt: number };
    expect(createdAt).toBeGreaterThanOrEqual(before);
    expect(createdAt).toBeLessThanOrEqual(Date.now());
    expect(expiresAt).toBe(createdAt + 3600 * 1000);

    // Described the same way, by an admin and by a token of the session.
    const info = await api(relay.url, 'GET', '/v1/sessions/call-42', { token: relay.adminToken });
    expect(info.status).toBe(200);
    expect(info.json).toEqual({ id: 'call-42', createdAt, expiresAt, idleTtlMs: null, lastActiveAt: createdAt, metadata, head: '-1', participants: [] });
    const asUser = await api(relay.url, 'GET', '/v1/sessions/call-42', { token: await relay.token('call-42', 'alice', 'user') });
    expect(asUser.status).toBe(200);
    expect(asUser.json).toEqual(info.json);

    // Without id and ttl: a generated id, no expiry, empty metadata.
    const bare = await api(relay.url, 'POST', '/v1/sessions', { token: relay.adminToken });
    expect(bare.status).toBe(201);
    expect(bare.json).toMatchObject({ expiresAt: null, metadata: {}, head: '-1' });
    expect(bare.json.id).toMatch(/^[A-Za-z0-9._:@-]{8,128}$/);
    expect(bare.json.id).not.toBe('call-42');
  });

  it('GET /v1/sessions/:id shows the head and the participants with their devices while SDK clients are connected', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const sid = await relay.createSession({ id: 'live' });
    const alice = await relay.token(sid, 'alice', 'user');
    const phone = await c.sdk({ url: relay.url, token: alice, device: 'phone' });
    const laptop = await c.sdk({ url: relay.url, token: alice, device: 'laptop' });
    const bot = await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent'), device: 'worker-1' });
    await bot.sendText('hello');
    await bot.sendText(' there');
    await phone.sendText('hi');

    const describe = async () => (await api(relay.url, 'GET', `/v1/sessions/${sid}`, { token: relay.adminToken })).json;
    const info = await describe();
    expect(info.head).toBe(formatOffset(3));
    expect(byName(info.participants)).toEqual([
      { participant: 'alice', role: 'user', online: true, devices: ['laptop', 'phone'] },
      { participant: 'bot', role: 'agent', online: true, devices: ['worker-1'] },
    ]);

    // A device leaves: it disappears from the list; the participant stays while another device is on.
    laptop.close();
    await waitFor(async () => byName((await describe()).participants)[0]?.devices.length === 1, { message: 'laptop leaves' });
    expect(byName((await describe()).participants)).toEqual([
      { participant: 'alice', role: 'user', online: true, devices: ['phone'] },
      { participant: 'bot', role: 'agent', online: true, devices: ['worker-1'] },
    ]);
    phone.close();
    bot.close();
    await waitFor(async () => (await describe()).participants.length === 0, { message: 'everyone leaves' });
    expect((await describe()).head).toBe(formatOffset(3));
  });

  it('DELETE /v1/sessions/:id ends the session: connected SDK clients close with SESSION_NOT_FOUND, the timeline is gone', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const sid = await relay.createSession({ id: 'doomed' });
    const user = await c.sdk({ url: relay.url, token: await relay.token(sid, 'alice', 'user'), device: 'tab' });
    const agent = await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent'), device: 'worker' });
    await agent.sendText('soon gone');
    const ended = [user, agent].map((s: LifelineSession) => stateReached(s, 'closed'));
    const errors: string[] = [];
    const pending = agent.sendText('in flight').catch((e: { code?: string }) => errors.push(e.code ?? 'no code'));

    const forbidden = await api(relay.url, 'DELETE', `/v1/sessions/${sid}`, { token: await relay.token(sid, 'alice', 'user') });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json).toMatchObject({ error: { code: 'FORBIDDEN' } });

    const res = await api(relay.url, 'DELETE', `/v1/sessions/${sid}`, { token: relay.adminToken });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    const changes: StateChange[] = await Promise.all(ended);
    for (const change of changes) expect(change).toMatchObject({ state: 'closed', error: 'SESSION_NOT_FOUND' });
    expect(user.state).toBe('closed');
    expect(agent.state).toBe('closed');
    await pending;
    // The in-flight append either made it before the delete or was refused; never left hanging.
    expect(errors.every((e) => e === 'SESSION_NOT_FOUND' || e === 'CONNECTION_CLOSED')).toBe(true);

    expect(await relay.relay.timeline.store.getSession(sid)).toBeUndefined();
    expect(await relay.relay.timeline.store.head(sid)).toBeUndefined();
    const gone = await api(relay.url, 'GET', `/v1/sessions/${sid}`, { token: relay.adminToken });
    expect(gone.status).toBe(404);
    expect(gone.json).toMatchObject({ error: { code: 'SESSION_NOT_FOUND' } });
    const again = await api(relay.url, 'DELETE', `/v1/sessions/${sid}`, { token: relay.adminToken });
    expect(again.status).toBe(404);
    expect(again.json).toMatchObject({ error: { code: 'SESSION_NOT_FOUND' } });
    // New connections are refused the same way.
    const late = await c.raw(relay.url, sid, { token: await relay.token(sid, 'alice', 'user') });
    expect(await late.error('SESSION_NOT_FOUND')).toMatchObject({ fatal: true });
    expect((await late.closed).code).toBe(4404);
    await waitFor(() => relay.relay.connections.size === 0);

    // The id is free again: a new session by that name starts empty.
    expect((await api(relay.url, 'POST', '/v1/sessions', { token: relay.adminToken, body: { id: sid } })).status).toBe(201);
    expect((await api(relay.url, 'GET', `/v1/sessions/${sid}`, { token: relay.adminToken })).json).toMatchObject({ head: '-1' });
  });
});

describe('tokens', () => {
  it('POST /v1/sessions/:id/tokens mints a token that works for that session, participant and role', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const sid = await relay.createSession({ id: 'minted' });
    const res = await api(relay.url, 'POST', `/v1/sessions/${sid}/tokens`, {
      token: relay.adminToken,
      body: { participant: 'carol', role: 'user', ttlSeconds: 120 },
    });
    expect(res.status).toBe(200);
    const token = res.json.token as string;
    const claims = await verifyToken(SECRET, token);
    expect(claims).toMatchObject({ session: sid, participant: 'carol', role: 'user' });
    expect(claims.exp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 121);

    const carol = await c.sdk({ url: relay.url, token, device: 'carol-1' });
    expect(carol.welcome).toMatchObject({ session: sid, participant: 'carol', role: 'user', device: 'carol-1' });
    expect(await carol.sendText('minted by the relay')).toBe(formatOffset(1));
    // It works for that session only.
    const other = await relay.createSession({ id: 'elsewhere' });
    const wrong = await c.raw(relay.url, other, { token });
    expect(await wrong.error('FORBIDDEN')).toMatchObject({ fatal: true });

    const agentRes = await api(relay.url, 'POST', `/v1/sessions/${sid}/tokens`, { token: relay.adminToken, body: { participant: 'bot', role: 'agent' } });
    expect(agentRes.status).toBe(200);
    const { client, welcome } = await RawClient.connect(relay.url, sid, agentRes.json.token as string);
    c.add(() => client.close());
    expect(welcome).toMatchObject({ participant: 'bot', role: 'agent' });
  });

  it.each([
    { name: 'no token', token: 'none', body: { participant: 'x', role: 'user' }, status: 401, code: 'UNAUTHORIZED' },
    { name: 'a user token', token: 'user', body: { participant: 'x', role: 'user' }, status: 403, code: 'FORBIDDEN' },
    { name: 'an admin role', token: 'admin', body: { participant: 'x', role: 'admin' }, status: 400, code: 'BAD_REQUEST' },
    { name: 'a missing participant', token: 'admin', body: { role: 'user' }, status: 400, code: 'BAD_REQUEST' },
    { name: 'a negative ttl', token: 'admin', body: { participant: 'x', role: 'user', ttlSeconds: -1 }, status: 400, code: 'BAD_REQUEST' },
  ])('POST /v1/sessions/:id/tokens with $name → $status $code', async ({ token, body, status, code }) => {
    const c = useCleanup();
    const relay = await c.relay();
    const sid = await relay.createSession();
    const bearer = token === 'admin' ? relay.adminToken : token === 'user' ? await relay.token(sid, 'alice', 'user') : undefined;
    const res = await api(relay.url, 'POST', `/v1/sessions/${sid}/tokens`, { ...(bearer ? { token: bearer } : {}), body });
    expect(res.status).toBe(status);
    expect(res.json).toMatchObject({ error: { code } });
  });

  it('POST /v1/sessions/:id/tokens for an unknown session → 404 SESSION_NOT_FOUND', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const res = await api(relay.url, 'POST', '/v1/sessions/nobody-here/tokens', { token: relay.adminToken, body: { participant: 'x', role: 'user' } });
    expect(res.status).toBe(404);
    expect(res.json).toMatchObject({ error: { code: 'SESSION_NOT_FOUND' } });
  });

  it('an admin token opens any session over WebSocket, as the system role', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const sid = await relay.createSession();
    expect((await verifyToken(SECRET, relay.adminToken)).session).toBe(ANY_SESSION);
    const { client, welcome } = await RawClient.connect(relay.url, sid, relay.adminToken);
    c.add(() => client.close());
    expect(welcome).toMatchObject({ session: sid, participant: 'admin', role: 'system' });
  });
});

describe('health and metrics', () => {
  it('/healthz answers ok with the store kind and the open connections', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const empty = await api(relay.url, 'GET', '/healthz');
    expect(empty.status).toBe(200);
    expect(empty.json).toMatchObject({ ok: true, store: 'memory', connections: 0 });
    const sid = await relay.createSession();
    const a = await c.sdk({ url: relay.url, token: await relay.token(sid, 'alice', 'user') });
    await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent') });
    expect((await api(relay.url, 'GET', '/healthz')).json).toMatchObject({ ok: true, connections: 2 });
    a.close();
    await waitFor(async () => (await api(relay.url, 'GET', '/healthz')).json.connections === 1);
  });

  it('/healthz reports the sqlite store when the relay runs on one', async () => {
    const c = useCleanup();
    const dir = c.dir('lifeline-http-');
    const relay = await c.relay({ store: `sqlite:${dir}/relay.db` });
    expect((await api(relay.url, 'GET', '/healthz')).json).toMatchObject({ ok: true, store: 'sqlite' });
  });

  it('/metrics is Prometheus text with the relay metrics', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const sid = await relay.createSession();
    const reader = await c.sdk({ url: relay.url, token: await relay.token(sid, 'alice', 'user') });
    const agent = await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent') });
    const got: string[] = [];
    reader.on('event', (e) => got.push(e.offset));
    for (let i = 0; i < 5; i++) await agent.sendText(`t${i}`);
    await waitFor(() => got.length === 5);

    const res = await fetch(`${relay.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    // Every sample line is `name{labels} value`, every metric has HELP and TYPE.
    for (const line of text.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'))) {
      // Prometheus parses sample values like Go's ParseFloat: NaN in any case (prom-client writes `Nan`).
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|[+-]Inf)$/);
    }
    for (const name of ['lifeline_connections', 'lifeline_frames_in_total', 'lifeline_errors_total', 'lifeline_appends_total', 'lifeline_events_out_total']) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toMatch(new RegExp(`# TYPE ${name} (counter|gauge|histogram)`));
    }
    expect(metric(text, 'lifeline_connections')).toBe(2);
    expect(metric(text, 'lifeline_appends_total', { result: 'appended' })).toBe(5);
    expect(metric(text, 'lifeline_frames_in_total', { type: 'append' })).toBe(5);
    expect(metric(text, 'lifeline_frames_in_total', { type: 'hello' })).toBe(2);
    expect(metric(text, 'lifeline_events_out_total')).toBeGreaterThanOrEqual(5);
    expect(metric(text, 'lifeline_commit_batch_entries_count')).toBeGreaterThanOrEqual(1);

    reader.close();
    await waitFor(async () => metric(await scrape(relay.url), 'lifeline_connections') === 1);
  });
});
