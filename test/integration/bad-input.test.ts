/**
 * Every bad input gets a clear, typed error and changes nothing, and the relay keeps serving
 * everyone else. Real relay, real loopback WebSockets; malformed frames are sent with a raw `ws`
 * client, the healthy bystanders are SDK sessions.
 */
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { BINARY_FORMAT, TOKEN_ISSUER, encodeFrame } from '../../src/protocol/index.js';
import type { ErrorCode, ErrorFrame, TimelineEvent } from '../../src/protocol/index.js';
import type { LifelineSession, StateChange } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import type { Cleanup } from '../support/fixture.js';
import { api, errorCount, headOf, metric, scrape } from '../support/http.js';
import { RawClient } from '../support/raw-ws.js';
import { openWithFrames } from '../support/raw-tcp.js';
import { SECRET } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

const MAX_FRAME = 2048;

interface Ctx {
  c: Cleanup;
  relay: TestRelay;
  sid: string;
  userToken: string;
  agent: LifelineSession;
  watcher: LifelineSession;
  /** States the watcher went through after connecting (must stay empty: it never lost its link). */
  watcherStates: StateChange[];
  seen: TimelineEvent[];
  /** A raw client of user `mallory`, welcomed. */
  mallory(): Promise<RawClient>;
  /** A raw client opened with these options, not yet welcomed. */
  raw(opts?: Parameters<Cleanup['raw']>[2], session?: string): Promise<RawClient>;
  /** The healthy bystanders still stream: the agent appends, the watcher receives it. */
  expectOthersServed(): Promise<void>;
}

let alive = 0;

/** A relay with a small frame limit, one session, an agent streaming to a watcher. */
async function setup(): Promise<Ctx> {
  const c = useCleanup();
  // idleTimeoutMs is long so raw clients need not ping.
  const relay = await c.relay({ maxFrameBytes: MAX_FRAME, idleTimeoutMs: 60_000 });
  const sid = await relay.createSession({ id: `s-${Math.random().toString(36).slice(2, 8)}` });
  const userToken = await relay.token(sid, 'mallory', 'user');
  const agent = await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent'), device: 'bot-1' });
  const watcher = await c.sdk({ url: relay.url, token: await relay.token(sid, 'watcher', 'user'), device: 'watch-1' });
  const seen: TimelineEvent[] = [];
  const watcherStates: StateChange[] = [];
  watcher.on('event', (e) => seen.push(e));
  watcher.on('state', (s) => watcherStates.push(s));
  const ctx: Ctx = {
    c,
    relay,
    sid,
    userToken,
    agent,
    watcher,
    watcherStates,
    seen,
    async mallory() {
      const client = await c.raw(relay.url, sid, { token: userToken });
      await client.hello({ device: 'm-1', resume: '-1', producers: ['p'] });
      return client;
    },
    raw: (opts = {}, session = sid) => c.raw(relay.url, session, opts),
    async expectOthersServed() {
      const text = `alive-${++alive}`;
      const offset = await agent.sendText(text);
      await waitFor(() => seen.some((e) => e.offset === offset && (e.data as { text?: string }).text === text), {
        message: `watcher receives ${text}`,
      });
      expect(watcherStates).toEqual([]);
      expect(watcher.state).toBe('connected');
    },
  };
  // Something in the timeline already, so "nothing written" is not just "still empty".
  await agent.sendText('before');
  await waitFor(() => seen.length === 1);
  return ctx;
}

/** A raw error frame as the relay must send it. */
function expectError(f: ErrorFrame, code: ErrorCode, fatal: boolean): void {
  expect(f).toMatchObject({ type: 'error', code, fatal });
  expect(f.message.length).toBeGreaterThan(0);
}

/** The connection is still usable: ping → pong, and a well-formed append is committed. */
async function expectUsable(client: RawClient, seq = 0): Promise<string> {
  await client.ping();
  const answer = await client.append({ producer: { id: 'p', epoch: 0, seq }, kind: 'text.delta', data: { text: 'fine' } });
  expect(answer.type).toBe('appended');
  return (answer as { offset: string }).offset;
}

function binary(header: object | string, payload: Uint8Array = new Uint8Array([1, 2, 3])): Uint8Array {
  const head = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(5 + head.length + payload.length);
  out[0] = BINARY_FORMAT;
  new DataView(out.buffer).setUint32(1, head.length, false);
  out.set(head, 5);
  out.set(payload, 5 + head.length);
  return out;
}

describe('bad frames on an open connection: typed error, nothing written, connection usable', () => {
  const cases: { name: string; raw: () => string | Uint8Array; code: ErrorCode }[] = [
    { name: 'malformed JSON', raw: () => '{"type":"append","producer":', code: 'BAD_FRAME' },
    { name: 'not JSON at all', raw: () => 'hello relay', code: 'BAD_FRAME' },
    { name: 'JSON without type', raw: () => JSON.stringify({ producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'text.delta', data: { text: 'x' } }), code: 'BAD_FRAME' },
    { name: 'JSON that is not an object', raw: () => '42', code: 'BAD_FRAME' },
    { name: 'a JSON string', raw: () => '"append"', code: 'BAD_FRAME' },
    { name: 'an empty JSON array', raw: () => '[]', code: 'BAD_FRAME' },
    { name: 'JSON null', raw: () => 'null', code: 'BAD_FRAME' },
    { name: 'type that is not a string', raw: () => JSON.stringify({ type: 7 }), code: 'BAD_FRAME' },
    { name: 'unknown frame type', raw: () => JSON.stringify({ type: 'teleport', to: 'mars' }), code: 'UNKNOWN_FRAME' },
    { name: 'server frame type from a client', raw: () => JSON.stringify({ type: 'welcome' }), code: 'UNKNOWN_FRAME' },
    {
      name: 'append failing the schema (negative seq)',
      raw: () => JSON.stringify({ type: 'append', producer: { id: 'p', epoch: 0, seq: -1 }, kind: 'text.delta', data: { text: 'x' } }),
      code: 'BAD_FRAME',
    },
    {
      name: 'append with an unknown kind',
      raw: () => JSON.stringify({ type: 'append', producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'hologram', data: {} }),
      code: 'BAD_FRAME',
    },
    {
      name: 'append with a bad producer id',
      raw: () => JSON.stringify({ type: 'append', producer: { id: 'no spaces!', epoch: 0, seq: 0 }, kind: 'text.delta', data: { text: 'x' } }),
      code: 'BAD_FRAME',
    },
    { name: 'ping with a string id', raw: () => JSON.stringify({ type: 'ping', id: 'one' }), code: 'BAD_FRAME' },
    { name: 'ack with a non-offset', raw: () => JSON.stringify({ type: 'ack', offset: 'yesterday' }), code: 'BAD_FRAME' },
    { name: 'a second hello', raw: () => JSON.stringify({ type: 'hello', v: 1 }), code: 'BAD_FRAME' },
    { name: 'binary frame with a wrong format byte', raw: () => Uint8Array.from([0x02, 0, 0, 0, 2, 0x7b, 0x7d]), code: 'BAD_FRAME' },
    { name: 'binary frame shorter than its prefix', raw: () => Uint8Array.from([BINARY_FORMAT, 0, 0]), code: 'BAD_FRAME' },
    {
      name: 'binary frame whose header length overruns',
      raw: () => {
        const b = binary({ type: 'append' });
        new DataView(b.buffer).setUint32(1, 10_000, false);
        return b;
      },
      code: 'BAD_FRAME',
    },
    { name: 'binary frame whose header is not JSON', raw: () => binary('{"type":"append",'), code: 'BAD_FRAME' },
    {
      name: 'binary frame whose header is not UTF-8',
      raw: () => {
        const b = binary('xx');
        b[5] = 0xff;
        b[6] = 0xfe;
        return b;
      },
      code: 'BAD_FRAME',
    },
    { name: 'binary payload on a frame that takes none', raw: () => binary({ type: 'ping', id: 1 }), code: 'BAD_FRAME' },
    {
      name: 'binary append failing the schema',
      raw: () => binary({ type: 'append', producer: { id: 'p', epoch: 'zero', seq: 0 }, kind: 'audio.frame', data: { codec: 'opus' } }),
      code: 'BAD_FRAME',
    },
  ];

  it.each(cases)('$name → $code', async ({ raw, code }) => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    client.send(raw());
    expectError(await client.error(), code, false);
    expect(client.received.filter((f) => f.type === 'error'), JSON.stringify(client.received)).toHaveLength(1);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    expect(await errorCount(ctx.relay.url, code)).toBe(1);
    // The connection lives on, and producer p starts cleanly at seq 0: nothing was recorded for it.
    const offset = await expectUsable(client);
    expect(offset > head).toBe(true);
    await ctx.expectOthersServed();
    expect(client.undecodable).toEqual([]);
  });

  const badData: { name: string; kind: string; data: unknown; bin?: Uint8Array }[] = [
    { name: 'tool.call without name', kind: 'tool.call', data: { id: 'call-1', arguments: {} } },
    { name: 'tool.call without id', kind: 'tool.call', data: { name: 'lookup', arguments: {} } },
    { name: 'tool.result without id', kind: 'tool.result', data: { result: 42 } },
    { name: 'text.delta without text', kind: 'text.delta', data: { id: 'm1' } },
    { name: 'text.delta whose data is a string', kind: 'text.delta', data: 'hello' },
    { name: 'control without action', kind: 'control', data: {} },
    { name: 'audio.frame with an unknown codec', kind: 'audio.frame', data: { codec: 'mp3' }, bin: new Uint8Array([1, 2]) },
    { name: 'audio.frame without its binary payload', kind: 'audio.frame', data: { codec: 'opus' } },
    { name: 'text.delta with a binary payload', kind: 'text.delta', data: { text: 'x' }, bin: new Uint8Array([1, 2]) },
  ];

  it.each(badData)('append whose data does not fit its kind: $name → BAD_FRAME for that append', async ({ kind, data, bin }) => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    const producer = { id: 'p', epoch: 0, seq: 0 };
    const frame = { type: 'append', producer, kind, data, ...(bin ? { bin } : {}) };
    client.send(encodeFrame(frame as Parameters<typeof encodeFrame>[0]));
    const err = await client.error('BAD_FRAME');
    expectError(err, 'BAD_FRAME', false);
    expect(err.producer).toEqual(producer);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    // The refused append left no producer state: seq 0 is still the next one.
    await expectUsable(client, 0);
    await ctx.expectOthersServed();
  });

  it('a user appending presence → FORBIDDEN for that append, nothing written', async () => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    const answer = await client.append({ producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'presence', data: { state: 'gone' } });
    expect(answer).toMatchObject({ type: 'error', code: 'FORBIDDEN', fatal: false, producer: { id: 'p', epoch: 0, seq: 0 } });
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    expect(ctx.seen.filter((e) => e.kind === 'presence' && e.from.participant === 'mallory')).toEqual([]);
    expect(await errorCount(ctx.relay.url, 'FORBIDDEN')).toBe(1);
    await expectUsable(client, 0);
    await ctx.expectOthersServed();
  });

  it('oversized frame above maxFrameBytes → PAYLOAD_TOO_LARGE, nothing written, connection stays usable', async () => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    const welcome = client.received.find((f) => f.type === 'welcome');
    expect(welcome).toMatchObject({ maxFrameBytes: MAX_FRAME });

    // A text append just over the limit, and a binary one (audio) well over it but under 4×.
    const text = encodeFrame({ type: 'append', producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'text.delta', data: { text: 'x'.repeat(MAX_FRAME) } });
    expect(Buffer.byteLength(text as string)).toBeGreaterThan(MAX_FRAME);
    client.send(text);
    expectError(await client.error(), 'PAYLOAD_TOO_LARGE', false);
    const audio = encodeFrame({
      type: 'append',
      producer: { id: 'p', epoch: 0, seq: 0 },
      kind: 'audio.frame',
      data: { codec: 'opus' },
      bin: new Uint8Array(3 * MAX_FRAME),
    });
    client.send(audio);
    expectError(await client.error(), 'PAYLOAD_TOO_LARGE', false);

    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    expect(await errorCount(ctx.relay.url, 'PAYLOAD_TOO_LARGE')).toBe(2);
    expect(client.isOpen).toBe(true);
    await expectUsable(client, 0);
    // A frame right at the limit is still accepted.
    const producer = { id: 'p', epoch: 0, seq: 1 };
    const base = Buffer.byteLength(JSON.stringify({ type: 'append', producer, kind: 'text.delta', data: { text: '' } }));
    const atLimit = JSON.stringify({ type: 'append', producer, kind: 'text.delta', data: { text: 'y'.repeat(MAX_FRAME - base) } });
    expect(Buffer.byteLength(atLimit)).toBe(MAX_FRAME);
    client.send(atLimit);
    await client.take((f) => f.type === 'appended' && f.producer.seq === 1, 'appended at the limit');
    await ctx.expectOthersServed();
  });

  it('a frame far above the limit (> 4×) → the WebSocket closes with 1009; the relay still serves others', async () => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    client.send(encodeFrame({ type: 'append', producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'text.delta', data: { text: 'z'.repeat(5 * MAX_FRAME) } }));
    const closed = await client.closed;
    expect(closed.code).toBe(1009);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    await ctx.expectOthersServed();
    // The dead connection is gone from the registry; a new one is welcomed.
    await waitFor(() => !ctx.relay.relay.connections.connections(ctx.sid).some((c) => c.origin?.participant === 'mallory'));
    const again = await ctx.mallory();
    await expectUsable(again, 0);
  });
});

describe('protocol order', () => {
  it('append before hello → HELLO_REQUIRED, fatal, close 4400, nothing written', async () => {
    const ctx = await setup();
    const client = await ctx.raw({ token: ctx.userToken });
    const head = await headOf(ctx.relay, ctx.sid);
    client.sendFrame({ type: 'append', producer: { id: 'p', epoch: 0, seq: 0 }, kind: 'text.delta', data: { text: 'too early' } });
    expectError(await client.error(), 'HELLO_REQUIRED', true);
    expect((await client.closed).code).toBe(4400);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    expect(await errorCount(ctx.relay.url, 'HELLO_REQUIRED')).toBe(1);
    await ctx.expectOthersServed();
  });

  it('a malformed frame before hello is refused without ending the connection; hello still works', async () => {
    const ctx = await setup();
    const client = await ctx.raw({ token: ctx.userToken });
    client.send('{not json');
    expectError(await client.error(), 'BAD_FRAME', false);
    await client.hello({ resume: 'now' });
    await expectUsable(client, 0);
  });

  it('hello resuming beyond the head → OFFSET_OUT_OF_RANGE, fatal, close 4416', async () => {
    const ctx = await setup();
    const head = await headOf(ctx.relay, ctx.sid);
    const client = await ctx.raw({ token: ctx.userToken });
    client.sendFrame({ type: 'hello', v: 1, resume: '0000000000000099' });
    expectError(await client.error(), 'OFFSET_OUT_OF_RANGE', true);
    expect((await client.closed).code).toBe(4416);
    expect(client.received.some((f) => f.type === 'welcome')).toBe(false);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    expect(await errorCount(ctx.relay.url, 'OFFSET_OUT_OF_RANGE')).toBe(1);
    await ctx.expectOthersServed();
  });

  // A client that moved its stream drops events until the relay answers the move (`subscribed`):
  // a subscribe the relay cannot apply must not leave it waiting, so it ends the connection.
  it.each([
    ['a bad offset string', { type: 'subscribe', from: '12' }],
    ['a non-numeric offset', { type: 'subscribe', from: 'abcdefghijklmnop' }],
    ['an unknown kind', { type: 'subscribe', from: 'now', kinds: ['hologram'] }],
    ['an empty kind filter', { type: 'subscribe', from: 'now', kinds: [] }],
  ])('subscribe with %s → BAD_FRAME, fatal, nothing written', async (_what, frame) => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    client.send(JSON.stringify(frame));
    expectError(await client.error(), 'BAD_FRAME', true);
    await client.closed;
    expect(client.received.some((f) => f.type === 'subscribed')).toBe(false);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    await ctx.expectOthersServed();
  });

  it('subscribe beyond the head → OFFSET_OUT_OF_RANGE (close 4416), nothing written', async () => {
    const ctx = await setup();
    const client = await ctx.mallory();
    const head = await headOf(ctx.relay, ctx.sid);
    client.sendFrame({ type: 'subscribe', from: '0000000000000099' });
    const err = await client.error('OFFSET_OUT_OF_RANGE');
    expect(err.fatal).toBe(true);
    expect((await client.closed).code).toBe(4416);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    await ctx.expectOthersServed();
  });

  // The frames ride in the same TCP write as the upgrade request, so all of them arrive while the
  // relay is still verifying the token: the window in which early frames must be kept.
  it('frames sent with the upgrade request, before authorization completes, are all answered, none lost', async () => {
    const ctx = await setup();
    const head = await headOf(ctx.relay, ctx.sid);
    const n = 300;
    const frames = [JSON.stringify({ type: 'hello', v: 1, device: 'pipelined' })];
    for (let seq = 0; seq < n; seq++) {
      frames.push(JSON.stringify({ type: 'append', producer: { id: 'p', epoch: 0, seq }, kind: 'text.delta', data: { text: `t${seq}` } }));
    }
    const tcp = openWithFrames(ctx.relay.url, `/v1/sessions/${ctx.sid}/ws`, { authorization: `Bearer ${ctx.userToken}` }, frames);
    ctx.c.add(() => tcp.destroy());
    await tcp.upgraded;
    await tcp.waitFor((m) => m.includes('"appended"') && m.includes(`"seq":${n - 1}}`));
    const answers = tcp.messages.map((m) => JSON.parse(m) as { type: string; offset?: string });
    expect(answers[0]!.type).toBe('welcome');
    const appended = answers.filter((f) => f.type === 'appended' || f.type === 'error');
    expect(appended.map((f) => f.type)).toEqual(Array(n).fill('appended'));
    const first = Number(head) + 1;
    expect(appended.map((f) => f.offset)).toEqual(Array.from({ length: n }, (_, i) => String(first + i).padStart(16, '0')));
    expect(await headOf(ctx.relay, ctx.sid)).toBe(String(first + n - 1).padStart(16, '0'));
  });

  it('frames sent with the upgrade request behind a bad token are dropped, and the refusal still comes at once', async () => {
    const ctx = await setup();
    const head = await headOf(ctx.relay, ctx.sid);
    const frames = [JSON.stringify({ type: 'hello', v: 1 })];
    for (let seq = 0; seq < 100; seq++) frames.push(JSON.stringify({ type: 'append', producer: { id: 'p', epoch: 0, seq }, kind: 'text.delta', data: { text: 'x' } }));
    const tcp = openWithFrames(ctx.relay.url, `/v1/sessions/${ctx.sid}/ws`, { authorization: 'Bearer garbage' }, frames);
    ctx.c.add(() => tcp.destroy());
    await tcp.upgraded;
    expect(await tcp.closed).toBe(4401);
    expect(tcp.messages.map((m) => JSON.parse(m) as unknown)).toEqual([expect.objectContaining({ type: 'error', code: 'UNAUTHORIZED', fatal: true })]);
    expect(await headOf(ctx.relay, ctx.sid)).toBe(head);
    await ctx.expectOthersServed();
  });

  it('hello with an unsupported protocol version → BAD_FRAME', async () => {
    const ctx = await setup();
    const client = await ctx.raw({ token: ctx.userToken });
    client.send(JSON.stringify({ type: 'hello', v: 2 }));
    expectError(await client.error(), 'BAD_FRAME', false);
    await ctx.expectOthersServed();
  });
});

describe('authentication and session checks on connect: fatal typed error and close code', () => {
  async function expectRefused(client: RawClient, code: ErrorCode, close: number): Promise<void> {
    expectError(await client.error(code), code, true);
    expect((await client.closed).code).toBe(close);
    expect(client.received.map((f) => f.type)).toEqual(['error']);
  }

  it('missing token → UNAUTHORIZED, 4401', async () => {
    const ctx = await setup();
    await expectRefused(await ctx.raw({}), 'UNAUTHORIZED', 4401);
    await ctx.expectOthersServed();
  });

  it.each([
    { via: 'header' as const, token: 'garbage' },
    { via: 'query' as const, token: 'garbage' },
    { via: 'header' as const, token: 'a.b.c' },
  ])('garbage token in the $via ("$token") → UNAUTHORIZED, 4401', async ({ via, token }) => {
    const ctx = await setup();
    await expectRefused(await ctx.raw({ token, via }), 'UNAUTHORIZED', 4401);
    expect(await errorCount(ctx.relay.url, 'UNAUTHORIZED')).toBe(1);
    await ctx.expectOthersServed();
  });

  it('a token signed with another secret → UNAUTHORIZED, 4401', async () => {
    const ctx = await setup();
    const forged = await new SignJWT({ sid: ctx.sid, role: 'agent' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setSubject('bot')
      .setExpirationTime(Math.floor(Date.now() / 1000) + 60)
      .sign(new TextEncoder().encode('not-the-relay-secret-at-all'));
    await expectRefused(await ctx.raw({ token: forged }), 'UNAUTHORIZED', 4401);
    await ctx.expectOthersServed();
  });

  it('an expired token → TOKEN_EXPIRED, 4401 (header and query)', async () => {
    const ctx = await setup();
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ sid: ctx.sid, role: 'user' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setSubject('mallory')
      .setIssuedAt(now - 120)
      .setExpirationTime(now - 60)
      .sign(new TextEncoder().encode(SECRET));
    await expectRefused(await ctx.raw({ token: expired }), 'TOKEN_EXPIRED', 4401);
    await expectRefused(await ctx.raw({ token: expired, via: 'query' }), 'TOKEN_EXPIRED', 4401);
    expect(await errorCount(ctx.relay.url, 'TOKEN_EXPIRED')).toBe(2);
    await ctx.expectOthersServed();
  });

  it('a token for another session → FORBIDDEN, 4403', async () => {
    const ctx = await setup();
    const other = await ctx.relay.createSession();
    const token = await ctx.relay.token(other, 'mallory', 'user');
    await expectRefused(await ctx.raw({ token }), 'FORBIDDEN', 4403);
    await ctx.expectOthersServed();
  });

  it('an unknown session → SESSION_NOT_FOUND, 4404', async () => {
    const ctx = await setup();
    const token = await ctx.relay.token('no-such-session', 'mallory', 'user');
    await expectRefused(await ctx.raw({ token }, 'no-such-session'), 'SESSION_NOT_FOUND', 4404);
    expect(await errorCount(ctx.relay.url, 'SESSION_NOT_FOUND')).toBe(1);
    await ctx.expectOthersServed();
  });
});

describe('HTTP API errors: status and { error: { code } }', () => {
  it('POST /v1/sessions without a token → 401 UNAUTHORIZED, with a user token → 403 FORBIDDEN', async () => {
    const ctx = await setup();
    const none = await api(ctx.relay.url, 'POST', '/v1/sessions', { body: { id: 'made-without-token' } });
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    const garbage = await api(ctx.relay.url, 'POST', '/v1/sessions', { token: 'garbage', body: { id: 'made-with-garbage' } });
    expect(garbage.status).toBe(401);
    expect(garbage.json).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    const user = await api(ctx.relay.url, 'POST', '/v1/sessions', { token: ctx.userToken, body: { id: 'made-by-user' } });
    expect(user.status).toBe(403);
    expect(user.json).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const store = ctx.relay.relay.timeline.store;
    for (const id of ['made-without-token', 'made-with-garbage', 'made-by-user']) expect(await store.getSession(id)).toBeUndefined();
  });

  it.each([
    { name: 'negative ttl', body: { id: 'bad-1', ttlSeconds: -5 } },
    { name: 'ttl of the wrong type', body: { id: 'bad-2', ttlSeconds: 'soon' } },
    { name: 'id with forbidden characters', body: { id: 'no spaces allowed' } },
    { name: 'metadata that is not an object', body: { id: 'bad-3', metadata: [1, 2] } },
    { name: 'a body that is not an object', body: 42 },
  ])('POST /v1/sessions with an invalid body ($name) → 400 BAD_REQUEST, nothing created', async ({ body }) => {
    const ctx = await setup();
    const res = await api(ctx.relay.url, 'POST', '/v1/sessions', { token: ctx.relay.adminToken, body });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect(typeof res.json.error.message).toBe('string');
    const id = (body as { id?: string }).id;
    if (id) expect(await ctx.relay.relay.timeline.store.getSession(id)).toBeUndefined();
  });

  it('POST /v1/sessions with invalid JSON → 400 BAD_REQUEST', async () => {
    const ctx = await setup();
    const res = await api(ctx.relay.url, 'POST', '/v1/sessions', { token: ctx.relay.adminToken, rawBody: '{"id": "half' });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    const empty = await api(ctx.relay.url, 'POST', '/v1/sessions', { token: ctx.relay.adminToken, rawBody: '' });
    expect(empty.status).toBe(400);
    expect(empty.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
  });

  it('POST /v1/sessions with a duplicate id → 409 SESSION_EXISTS, the original untouched', async () => {
    const ctx = await setup();
    const head = await headOf(ctx.relay, ctx.sid);
    const res = await api(ctx.relay.url, 'POST', '/v1/sessions', { token: ctx.relay.adminToken, body: { id: ctx.sid, metadata: { hijack: true } } });
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ error: { code: 'SESSION_EXISTS' } });
    const info = await api(ctx.relay.url, 'GET', `/v1/sessions/${ctx.sid}`, { token: ctx.relay.adminToken });
    expect(info.json).toMatchObject({ id: ctx.sid, head, metadata: {} });
    await ctx.expectOthersServed();
  });

  it('GET an unknown session → 404 SESSION_NOT_FOUND; an unknown route → 404 NOT_FOUND', async () => {
    const ctx = await setup();
    const unknown = await api(ctx.relay.url, 'GET', '/v1/sessions/no-such-session', { token: ctx.relay.adminToken });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ error: { code: 'SESSION_NOT_FOUND' } });
    for (const [method, path] of [
      ['GET', '/v2/everything'],
      ['POST', '/v1/sessions/x/y/z'],
      ['PUT', '/v1/sessions'],
    ] as const) {
      const res = await api(ctx.relay.url, method, path, { token: ctx.relay.adminToken });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.json).toMatchObject({ error: { code: 'NOT_FOUND' } });
    }
  });

  it('GET a session with a token for another session → 403 FORBIDDEN; with none → 401', async () => {
    const ctx = await setup();
    const other = await ctx.relay.createSession();
    const token = await ctx.relay.token(other, 'mallory', 'user');
    const res = await api(ctx.relay.url, 'GET', `/v1/sessions/${ctx.sid}`, { token });
    expect(res.status).toBe(403);
    expect(res.json).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const none = await api(ctx.relay.url, 'GET', `/v1/sessions/${ctx.sid}`);
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
  });
});

describe('/metrics counts the errors', () => {
  it('lifeline_errors_total{code} counts each error frame sent', async () => {
    const ctx = await setup();
    const before = await scrape(ctx.relay.url);
    for (const code of ['BAD_FRAME', 'UNKNOWN_FRAME', 'UNAUTHORIZED', 'PAYLOAD_TOO_LARGE'])
      expect(metric(before, 'lifeline_errors_total', { code })).toBe(0);

    const client = await ctx.mallory();
    client.send('{');
    await client.error('BAD_FRAME');
    client.send(JSON.stringify({ type: 'nope' }));
    await client.error('UNKNOWN_FRAME');
    client.send(JSON.stringify({ type: 'ping' }));
    await client.error('BAD_FRAME');
    client.send('x'.repeat(MAX_FRAME + 1));
    await client.error('PAYLOAD_TOO_LARGE');
    const anonymous = await ctx.raw({});
    await anonymous.error('UNAUTHORIZED');

    const after = await scrape(ctx.relay.url);
    expect(metric(after, 'lifeline_errors_total', { code: 'BAD_FRAME' })).toBe(2);
    expect(metric(after, 'lifeline_errors_total', { code: 'UNKNOWN_FRAME' })).toBe(1);
    expect(metric(after, 'lifeline_errors_total', { code: 'PAYLOAD_TOO_LARGE' })).toBe(1);
    expect(metric(after, 'lifeline_errors_total', { code: 'UNAUTHORIZED' })).toBe(1);
    expect(metric(after, 'lifeline_frames_in_total', { type: 'invalid' })).toBe(3);
    expect(metric(after, 'lifeline_frames_in_total', { type: 'oversized' })).toBe(1);
  });
});
