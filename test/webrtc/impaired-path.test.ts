import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession, StateChange, TimelineEvent } from '../../src/sdk/index.js';
import { proxiedRtc } from '../support/proxied-rtc.js';
import type { ProxiedRtc } from '../support/proxied-rtc.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { LOOPBACK } from '../support/rtc.js';
import { waitFor, within } from '../support/wait.js';

/**
 * WebRTC through a netsim UDP proxy that can blackhole or switch the path, as a real network
 * blip would. Signaling (HTTP) goes direct. Timing bounds here are functional, not performance
 * targets: "well under a second" separates our recovery from SCTP's 1 s retransmission timer.
 */
describe('WebRTC over an impaired path', () => {
  let r: TestRelay;
  let sid: string;
  let net: ProxiedRtc;
  const sessions: LifelineSession[] = [];

  beforeEach(async () => {
    r = await startRelay({ rtcIceHosts: LOOPBACK });
    sid = await r.createSession();
    net = proxiedRtc();
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await r.close();
    await net.close();
  });

  async function join(participant: string, role: 'user' | 'agent', transport?: 'rtc'): Promise<{ s: LifelineSession; states: StateChange[]; events: TimelineEvent[] }> {
    const s = await connect({
      url: r.url,
      token: await r.token(sid, participant, role),
      ...(transport ? { transport: net.transport, restartTimeoutMs: 1500 } : {}),
      reconnect: { nextRetryDelayMs: () => 50 },
    });
    sessions.push(s);
    const states: StateChange[] = [];
    const events: TimelineEvent[] = [];
    s.on('state', (c) => states.push(c));
    s.on('event', (e) => events.push(e));
    return { s, states, events };
  }

  const texts = (events: TimelineEvent[]): string[] => events.filter((e) => e.kind === 'text.delta').map((e) => (e.data as { text: string }).text);

  it('heals a blackhole mid-stream by ICE restart: every token once, in order', async () => {
    const user = await join('alice', 'user', 'rtc');
    const agent = await join('bot', 'agent');
    const N = 300;
    const sent: string[] = [];
    for (let i = 0; i < N; i++) {
      sent.push(`t${i}`);
      void agent.s.sendText(`t${i}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (i === 100) net.blackhole(true);
      if (i === 200) net.blackhole(false);
    }
    await agent.s.flush();
    await waitFor(() => texts(user.events).length >= N, { message: 'all tokens after the blackhole' });
    expect(texts(user.events)).toEqual(sent);
    const modes = user.states.filter((c) => c.state === 'reconnecting').map((c) => c.mode);
    expect(modes.length).toBeGreaterThan(0);
    expect(modes.every((m) => m === 'restart')).toBe(true);
    expect(user.states.some((c) => c.state === 'restarted')).toBe(true);
    expect(user.states.some((c) => c.state === 'resumed')).toBe(false);
    expect(r.relay.rtc.peers.size).toBe(1);
  });

  it('delivers a single frame sent into the gap well under a second after the path returns (both directions)', async () => {
    const user = await join('alice', 'user', 'rtc');
    const agent = await join('bot', 'agent');
    await agent.s.sendText('before');
    await waitFor(() => texts(user.events).includes('before'));
    net.blackhole(true);
    // Both frames are sent while the path is dead and nothing else follows them.
    void agent.s.sendText('into the gap');
    const appended = user.s.sendText('from the user, into the gap');
    await waitFor(() => user.states.some((c) => c.state === 'reconnecting'), { message: 'loss detected' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const restoredAt = Date.now();
    net.blackhole(false);
    await waitFor(() => texts(user.events).includes('into the gap'), { timeoutMs: 5000 });
    const downstreamMs = Date.now() - restoredAt;
    await within(appended, 5000, 'user append acknowledged');
    const upstreamMs = Date.now() - restoredAt;
    expect(downstreamMs).toBeLessThan(900);
    expect(upstreamMs).toBeLessThan(900);
    // The acknowledgement goes back to the user over the data channel while the agent's copy
    // travels its own WebSocket: either may land first, so wait for the agent's rather than race.
    await waitFor(() => texts(agent.events).includes('from the user, into the gap'), { timeoutMs: 2000, message: "the agent's copy" });
    expect(texts(agent.events).filter((t) => t === 'from the user, into the gap')).toHaveLength(1);
  });

  it('heals a path switch (new source port, as Wi-Fi → cellular) without a new peer connection', async () => {
    const user = await join('alice', 'user', 'rtc');
    const agent = await join('bot', 'agent');
    const peer = [...r.relay.rtc.peers.values()][0]!;
    const sent: string[] = [];
    for (let i = 0; i < 200; i++) {
      sent.push(`t${i}`);
      void agent.s.sendText(`t${i}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (i === 80) await net.pathSwitch();
    }
    await agent.s.flush();
    await waitFor(() => texts(user.events).length >= 200, { message: 'all tokens after the switch' });
    expect(texts(user.events)).toEqual(sent);
    expect(user.states.some((c) => c.state === 'resumed')).toBe(false);
    expect(r.relay.rtc.peers.get(peer.id)).toBe(peer);
  });

  it('falls back to a full reconnect when the restart cannot succeed, losing nothing', async () => {
    const user = await join('alice', 'user', 'rtc');
    const agent = await join('bot', 'agent');
    const sent: string[] = [];
    const first = [...r.relay.rtc.peers.values()][0]!;
    net.blackhole(true);
    for (let i = 0; i < 50; i++) {
      sent.push(`t${i}`);
      void agent.s.sendText(`t${i}`);
    }
    await agent.s.flush();
    // The restart times out (1.5 s) while the path is still dead: the client gives up on the
    // peer connection and starts a new one.
    await waitFor(() => user.states.some((c) => c.state === 'reconnecting' && c.mode === 'reconnect'), { timeoutMs: 10_000, message: 'full reconnect' });
    net.blackhole(false);
    await waitFor(() => user.states.some((c) => c.state === 'resumed'), { timeoutMs: 15_000, message: 'resumed on a new peer connection' });
    await waitFor(() => texts(user.events).length >= 50, { message: 'all tokens' });
    expect(texts(user.events)).toEqual(sent);
    await waitFor(() => !r.relay.rtc.peers.has(first.id), { timeoutMs: 10_000, message: 'old peer reaped' });
  });
});
