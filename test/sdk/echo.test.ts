import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { TimelineEvent } from '../../src/protocol/index.js';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';

/**
 * `echo: false` (hello.echo): the relay does not send a device its own live appends back. The
 * skipped events must not hold the flow-control window: an agent that streams far more tokens than
 * its window still gets every event of the others, at once.
 */
describe('echo: false', () => {
  let relay: TestRelay | undefined;
  const sessions: LifelineSession[] = [];

  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await relay?.close();
    relay = undefined;
  });

  /** What alice (the user) wrote, as the agent saw it. */
  const texts = (events: readonly TimelineEvent[]): string[] => events.filter((e) => e.from.participant === 'alice').map((e) => String((e.data as { text: string }).text));

  it('keeps an agent’s own appends off its stream, and the window open, while others’ events arrive', async () => {
    relay = await startRelay();
    const id = await relay.createSession();
    const user = await connect({ url: relay.url, token: await relay.token(id, 'alice', 'user'), device: 'phone' });
    sessions.push(user);
    await user.sendText('before the agent');
    const agent = await connect({ url: relay.url, token: await relay.token(id, 'bot', 'agent'), device: 'bot-1', resume: '-1', echo: false, window: 16 });
    sessions.push(agent);
    const seen: TimelineEvent[] = [];
    agent.on('event', (e) => seen.push(e));
    const userSeen: TimelineEvent[] = [];
    user.on('event', (e) => userSeen.push(e));

    // 10 windows' worth of own tokens: were they counted as unacknowledged, the relay would stop
    // sending after 16 and the user's next message would never reach the agent.
    await Promise.all(Array.from({ length: 160 }, (_, i) => agent.append('text.delta', { text: `t${i}` })));
    await user.sendText('after 160 tokens');
    await vi.waitUntil(() => texts(seen).includes('after 160 tokens'), { timeout: 5000, interval: 5 });
    await Promise.all(Array.from({ length: 160 }, (_, i) => agent.append('text.delta', { text: `u${i}` })));
    await user.sendText('after 320 tokens');
    await vi.waitUntil(() => texts(seen).includes('after 320 tokens'), { timeout: 5000, interval: 5 });

    // Catch-up still carried what was there at hello; nothing the agent wrote came back.
    expect(texts(seen)).toEqual(['before the agent', 'after 160 tokens', 'after 320 tokens']);
    expect(seen.filter((e) => e.from.participant === 'bot')).toEqual([]);
    // Everyone else gets every token, once, in order.
    const fromBot = (): TimelineEvent[] => userSeen.filter((e) => e.from.participant === 'bot');
    await vi.waitUntil(() => fromBot().length === 320, { timeout: 5000, interval: 5 });
    const deltas = fromBot().map((e) => (e.data as { text: string }).text);
    expect(deltas).toEqual([...Array.from({ length: 160 }, (_, i) => `t${i}`), ...Array.from({ length: 160 }, (_, i) => `u${i}`)]);
  });

  it('another device of the same agent, echo on, reads the agent’s tokens from the timeline', async () => {
    relay = await startRelay();
    const id = await relay.createSession();
    const agent = await connect({ url: relay.url, token: await relay.token(id, 'bot', 'agent'), device: 'bot-1', resume: 'now', echo: false });
    sessions.push(agent);
    const own: TimelineEvent[] = [];
    agent.on('event', (e) => own.push(e));
    const offsets = await Promise.all(['a', 'b', 'c'].map((text) => agent.append('text.delta', { text })));

    const successor = await connect({ url: relay.url, token: await relay.token(id, 'bot', 'agent'), device: 'bot-2', resume: '-1' });
    sessions.push(successor);
    const read: TimelineEvent[] = [];
    successor.on('event', (e) => read.push(e));
    await vi.waitUntil(() => read.length === 3, { timeout: 5000, interval: 5 });
    expect(read.map((e) => e.offset)).toEqual(offsets);
    expect(own).toEqual([]);
  });

  it('refuses a hello whose echo is not a boolean', async () => {
    relay = await startRelay();
    const id = await relay.createSession();
    const token = await relay.token(id, 'bot', 'agent');
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/v1/sessions/${id}/ws?token=${token}`);
    const frames: { type: string; code?: string }[] = [];
    ws.on('message', (m) => frames.push(JSON.parse(String(m)) as { type: string; code?: string }));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'hello', v: 1, resume: 'now', echo: 'no' }));
    await vi.waitUntil(() => frames.some((f) => f.type === 'error'), { timeout: 5000, interval: 5 });
    expect(frames.find((f) => f.type === 'error')?.code).toBe('BAD_FRAME');
    ws.close();
  });
});
