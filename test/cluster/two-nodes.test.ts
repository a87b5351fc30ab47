/**
 * Two `lifeline serve` processes on one real three-node NATS cluster serve the same session: a
 * user on node A and an agent on node B exchange tokens, a tool call and audio frames live, each
 * seeing the other's events in one order with the same offsets; a late reader on either node
 * replays the same timeline.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExponentialBackoff, connect } from '../../src/sdk/index.js';
import type { LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { createSession, killAllRelays, sessionToken, spawnRelay } from '../support/relay-process.js';
import { startNatsCluster } from '../support/nats-cluster.js';
import type { NatsCluster } from '../support/nats-cluster.js';
import { waitFor } from '../support/wait.js';

let cluster: NatsCluster;
const sessions: LifelineSession[] = [];

beforeAll(async () => {
  cluster = await startNatsCluster();
});
afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  await killAllRelays();
});
afterAll(async () => {
  await cluster?.stop();
});

function collect(session: LifelineSession): TimelineEvent[] {
  const events: TimelineEvent[] = [];
  void (async () => {
    for await (const e of session.stream) events.push(e);
  })().catch(() => {});
  return events;
}

async function client(url: string, sessionId: string, participant: string, role: 'user' | 'agent'): Promise<LifelineSession> {
  const s = await connect({ url, token: await sessionToken(sessionId, participant, role), reconnect: new ExponentialBackoff({ initialMs: 20, maxMs: 200 }) });
  sessions.push(s);
  return s;
}

describe('two relay nodes on one NATS cluster', () => {
  it('a user on node A and an agent on node B exchange tokens, tool calls and audio live', async () => {
    const store = `${cluster.storeSpec}?prefix=two${process.pid}`;
    const [a, b] = await Promise.all([spawnRelay({ store }), spawnRelay({ store })]);
    const sessionId = await createSession(a.url);
    const user = await client(a.url, sessionId, 'alice', 'user');
    const agent = await client(b.url, sessionId, 'bot', 'agent');
    const userSaw = collect(user);
    const agentSaw = collect(agent);

    const question = await user.sendText('what is the weather?');
    await waitFor(() => agentSaw.some((e) => e.offset === question), { message: 'the agent on B sees the user’s text from A' });
    const call = await agent.sendToolCall({ id: 'c1', name: 'weather', arguments: { city: 'Paris' } });
    const result = await user.sendToolResult({ id: 'c1', result: { sky: 'clear' } });
    const TOKENS = 200;
    const offsets: Promise<string>[] = [];
    for (let i = 0; i < TOKENS; i++) offsets.push(agent.sendText(`tok${i}`));
    // Audio: 20 ms Opus-sized frames from the agent, as timeline events with a binary payload.
    const FRAMES = 50;
    for (let i = 0; i < FRAMES; i++) {
      const frame = new Uint8Array(160).fill(i);
      offsets.push(agent.append('audio.frame', { codec: 'opus', n: i }, { track: 'speaker', bin: frame }));
    }
    const acked = await Promise.all(offsets);
    const total = 1 + 1 + 1 + TOKENS + FRAMES;
    await waitFor(() => userSaw.length >= total && agentSaw.length >= total, { timeoutMs: 30_000, message: `both see ${total} events` });

    // One timeline: both sides saw the same events, in the same order, at the same offsets.
    const view = (events: TimelineEvent[]): string[] => events.map((e) => `${e.offset} ${e.kind} ${JSON.stringify(e.data)} ${e.bin ? Buffer.from(e.bin).toString('hex') : ''}`);
    expect(view(userSaw)).toEqual(view(agentSaw));
    const offsetsSeen = userSaw.map((e) => e.offset);
    expect(new Set(offsetsSeen).size).toBe(offsetsSeen.length);
    expect([...offsetsSeen].sort()).toEqual(offsetsSeen);
    expect(userSaw.find((e) => e.offset === call)?.kind).toBe('tool.call');
    expect(agentSaw.find((e) => e.offset === result)?.kind).toBe('tool.result');
    const tokens = userSaw.filter((e) => e.kind === 'text.delta' && e.from.role === 'agent').map((e) => (e.data as { text: string }).text);
    expect(tokens).toEqual(Array.from({ length: TOKENS }, (_, i) => `tok${i}`));
    const frames = userSaw.filter((e) => e.kind === 'audio.frame');
    expect(frames.map((e) => (e.data as { n: number }).n)).toEqual(Array.from({ length: FRAMES }, (_, i) => i));
    for (const f of frames) expect([...f.bin!].every((byte) => byte === (f.data as { n: number }).n)).toBe(true);
    // Acknowledged offsets are where the events are.
    expect(new Set(acked).size).toBe(acked.length);
    for (const o of acked) expect(offsetsSeen).toContain(o);

    // A late reader on either node replays the same timeline.
    for (const url of [a.url, b.url]) {
      const late = await client(url, sessionId, 'carol', 'user');
      const replay = collect(late);
      await waitFor(() => replay.length >= total, { timeoutMs: 30_000, message: 'replay' });
      expect(view(replay.slice(0, total))).toEqual(view(userSaw.slice(0, total)));
    }
  });
});
