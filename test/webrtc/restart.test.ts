import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, wsTransport } from '../../src/sdk/index.js';
import type { LifelineSession, StateChange } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { LOOPBACK } from '../support/rtc.js';
import { waitFor, within } from '../support/wait.js';

const TOKENS = 2000;

/** Reads `n` text tokens from the stream, returning their texts in arrival order. */
async function readTokens(session: LifelineSession, n: number): Promise<{ texts: string[]; offsets: number[] }> {
  const texts: string[] = [];
  const offsets: number[] = [];
  for await (const e of session.stream) {
    if (e.kind !== 'text.delta') continue;
    texts.push((e.data as { text: string }).text);
    offsets.push(Number(e.offset));
    if (texts.length === n) break;
  }
  return { texts, offsets };
}

function expectExactlyOnceInOrder(got: { texts: string[]; offsets: number[] }, n: number): void {
  expect(got.texts).toEqual(Array.from({ length: n }, (_, i) => `t${i}`));
  for (let i = 1; i < got.offsets.length; i++) expect(got.offsets[i]).toBe(got.offsets[i - 1]! + 1);
}

describe('ICE restart on the living peer connection', () => {
  let r: TestRelay;
  let sid: string;
  const sessions: LifelineSession[] = [];

  beforeEach(async () => {
    r = await startRelay({ rtcIceHosts: LOOPBACK });
    sid = await r.createSession();
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await r.close();
  });

  async function user(): Promise<LifelineSession> {
    const s = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), transport: webrtcTransport({ iceHosts: LOOPBACK }) });
    sessions.push(s);
    return s;
  }

  /** Streams TOKENS tokens at ~2,000/s (a fast LLM is ~100/s), with `midway` halfway through. */
  async function stream(agent: LifelineSession, midway: () => void): Promise<void> {
    for (let i = 0; i < TOKENS; i++) {
      void agent.sendText(`t${i}`);
      if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 10));
      if (i === TOKENS / 2) midway();
    }
    await agent.flush();
  }

  for (const side of ['client', 'relay'] as const) {
    it(`heals a restart started by the ${side} mid-stream: every token once, same peer connection, still present`, async () => {
      const u = await user();
      const states: StateChange[] = [];
      u.on('state', (s) => {
        states.push(s);
        if (process.env['DEBUG_RTC']) console.error(s.state, s.mode, s.reason, s.downMs, Date.now() % 100000);
      });
      const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent'), resume: 'now' });
      sessions.push(agent);
      const peer = [...r.relay.rtc.peers.values()][0]!;
      const pc = peer.pc;
      const reading = readTokens(u, TOKENS);
      await stream(agent, () => (side === 'client' ? u.recover('test') : peer.requestRestart('test')));
      expectExactlyOnceInOrder(await within(reading, 20_000, 'all tokens'), TOKENS);
      await waitFor(() => states.some((s) => s.state === 'restarted'), { message: 'restarted event' });
      // The client's `restarted` comes with the first frame after the restart began (frames keep
      // flowing on the old pair), while the relay counts a restart only once the client's new offer
      // (PATCH) has reached it; a heartbeat-called restart may also still be under way. Wait until
      // every restart begun has healed and been answered (if that never happens, the expectations
      // below say what is wrong), then check them all.
      await waitFor(() => states.length % 2 === 0 && peer.restarts === states.length / 2, {
        message: 'every restart healed on the client and answered by the relay',
      }).catch(() => undefined);
      // Under this burst a heartbeat may also call a restart of its own; what must hold is that
      // every recovery was an in-place restart, never a new peer connection.
      expect(states.length % 2).toBe(0);
      states.forEach((s, i) => {
        expect(s.state).toBe(i % 2 === 0 ? 'reconnecting' : 'restarted');
        if (i % 2 === 0) expect(s.mode).toBe('restart');
      });
      expect(states.some((s) => s.reason === (side === 'client' ? 'test' : 'relay asked: test'))).toBe(true);
      expect(peer.restarts).toBe(states.length / 2);
      expect(r.relay.rtc.peers.get(peer.id)).toBe(peer);
      expect(peer.pc).toBe(pc);
      expect(pc.connectionState).toBe('connected');
      const info = (await (await fetch(`${r.url}/v1/sessions/${sid}`, { headers: { authorization: `Bearer ${r.adminToken}` } })).json()) as {
        participants: { participant: string }[];
      };
      expect(info.participants.map((p) => p.participant).sort()).toEqual(['alice', 'bot']);
    });
  }

  it('keeps an agent on WebRTC exactly-once across its own restart', async () => {
    const u = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user') });
    sessions.push(u);
    const agent = await connect({
      url: r.url,
      token: await r.token(sid, 'bot', 'agent'),
      resume: 'now',
      transport: webrtcTransport({ iceHosts: LOOPBACK }),
    });
    sessions.push(agent);
    const reading = readTokens(u, TOKENS);
    await stream(agent, () => agent.recover('test'));
    expectExactlyOnceInOrder(await within(reading, 20_000, 'all tokens'), TOKENS);
    const head = await r.relay.timeline.head(sid);
    expect(head).toBe(TOKENS);
  });

  it('falls back to WebSocket when WebRTC cannot connect, losing nothing', async () => {
    const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent') });
    sessions.push(agent);
    for (let i = 0; i < 20; i++) void agent.sendText(`t${i}`);
    await agent.flush();
    const states: StateChange[] = [];
    // The client only pairs from 127.0.0.2; the relay only from 127.0.0.1: ICE never connects,
    // as when UDP is blocked.
    const u = await connect({
      url: r.url,
      token: await r.token(sid, 'alice', 'user'),
      transport: [webrtcTransport({ iceHosts: ['127.0.0.2'] }), wsTransport()],
      fallbackAfterFailures: 1,
      connectTimeoutMs: 1500,
      reconnect: { nextRetryDelayMs: () => 10 },
    }).then((s) => {
      sessions.push(s);
      return s;
    });
    u.on('state', (s) => states.push(s));
    expect(u.transport).toBe('ws');
    expectExactlyOnceInOrder(await within(readTokens(u, 20), 10_000, 'history'), 20);
    await waitFor(() => r.relay.rtc.peers.size === 0, { message: 'abandoned WebRTC attempts removed' });
  });
});
