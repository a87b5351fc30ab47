import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TcpProxy } from '../../native-free-bench/netsim/index.js';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession, PresenceChange } from '../../src/sdk/index.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

/**
 * Presence over real connections: a user's WebSocket runs through a netsim TCP proxy whose
 * blackhole holds every byte (no FIN, no RST: a silent drop); an agent watches with
 * onPresenceChange. Presence events are on for this suite.
 */
describe('presence', () => {
  let r: TestRelay;
  let sid: string;
  let proxy: TcpProxy;
  const sessions: LifelineSession[] = [];

  beforeEach(async () => {
    r = await startRelay({ presenceEvents: true, presenceGraceMs: 800, heartbeatMs: 100, idleTimeoutMs: 1200 });
    sid = await r.createSession();
    proxy = await TcpProxy.start({ target: { host: '127.0.0.1', port: Number(new URL(r.url).port) } });
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await r.close();
    await proxy.close();
  });

  async function agentWatching(): Promise<{ changes: PresenceChange[] }> {
    const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent'), device: 'worker-1', resume: 'now' });
    sessions.push(agent);
    const changes: PresenceChange[] = [];
    agent.onPresenceChange((c) => {
      if (c.participant !== 'bot') changes.push(c);
    });
    return { changes };
  }

  async function userViaProxy(device: string): Promise<LifelineSession> {
    const user = await connect({ url: `http://127.0.0.1:${proxy.port}`, token: await r.token(sid, 'alice', 'user'), device, reconnect: { nextRetryDelayMs: () => 50 } });
    sessions.push(user);
    return user;
  }

  const trail = (changes: PresenceChange[]): string[] => changes.map((c) => `${c.device}:${c.state}`);

  it('a silent drop is reconnecting in well under a second, then gone after the grace period', async () => {
    const { changes } = await agentWatching();
    await userViaProxy('phone');
    await waitFor(() => trail(changes).includes('phone:connected'), { message: 'connected' });
    const dropped = Date.now();
    proxy.blackhole(true);
    await waitFor(() => trail(changes).includes('phone:reconnecting'), { message: 'reconnecting' });
    const noticedMs = Date.now() - dropped;
    await waitFor(() => trail(changes).includes('phone:gone'), { timeoutMs: 10_000, message: 'gone' });
    expect(trail(changes)).toEqual(['phone:connected', 'phone:reconnecting', 'phone:gone']);
    expect(changes.at(-1)!.online).toBe(false);
    // Functional bound (2.5 heartbeats of 100 ms, plus scheduling), not a performance target.
    expect(noticedMs).toBeLessThan(1000);
  });

  it('a device back within the grace period returns to connected with no gone in between', async () => {
    const { changes } = await agentWatching();
    await userViaProxy('phone');
    await waitFor(() => trail(changes).includes('phone:connected'));
    proxy.blackhole(true);
    await waitFor(() => trail(changes).includes('phone:reconnecting'));
    proxy.blackhole(false);
    await waitFor(() => trail(changes).filter((t) => t === 'phone:connected').length === 2, { message: 'connected again' });
    await new Promise((resolve) => setTimeout(resolve, 1500)); // past the grace period
    // When the path returns, the proxy releases the old link's held frames (pings, then the
    // client's close of that link) before the client's new link: that may add one more
    // reconnecting → connected blip. What must hold: never gone, and connected at the end.
    const t = trail(changes);
    expect(t.slice(0, 3)).toEqual(['phone:connected', 'phone:reconnecting', 'phone:connected']);
    expect(t).not.toContain('phone:gone');
    expect(t.at(-1)).toBe('phone:connected');
  });

  it('a device that leaves is gone at once; its participant stays online on another device', async () => {
    const { changes } = await agentWatching();
    const phone = await userViaProxy('phone');
    // The laptop connects directly (not through the proxy): attach() keeps the participant's token.
    const laptop = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), device: 'laptop' });
    sessions.push(laptop);
    await waitFor(() => trail(changes).includes('laptop:connected'));
    phone.close();
    await waitFor(() => trail(changes).includes('phone:gone'), { message: 'phone gone' });
    expect(changes.find((c) => c.device === 'phone' && c.state === 'gone')!.online).toBe(true);
    expect(trail(changes)).not.toContain('phone:reconnecting');
    const info = (await (await fetch(`${r.url}/v1/sessions/${sid}`, { headers: { authorization: `Bearer ${r.adminToken}` } })).json()) as {
      participants: { participant: string; online: boolean; devices: { device: string; state: string }[] }[];
    };
    const alice = info.participants.find((p) => p.participant === 'alice')!;
    expect(alice).toMatchObject({ online: true, devices: [{ device: 'laptop', state: 'connected' }] });
  });

  it('presence events are in the timeline, ordered with everything else and replayable', async () => {
    const user = await userViaProxy('phone');
    await user.sendText('hello');
    user.close();
    await waitFor(async () => (await r.relay.timeline.head(sid)) >= 3);
    const late = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent'), resume: '-1' });
    sessions.push(late);
    const seen: string[] = [];
    for await (const e of late.stream) {
      seen.push(e.kind === 'presence' ? `presence:${(e.data as { device: string; state: string }).device}:${(e.data as { state: string }).state}` : e.kind);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(['presence:phone:connected', 'text.delta', 'presence:phone:gone']);
  });
});
