import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

const N = 1500;

describe('session.stream consumed late or not at all', () => {
  let r: TestRelay;
  let sid: string;
  const sessions: LifelineSession[] = [];

  beforeEach(async () => {
    r = await startRelay();
    sid = await r.createSession();
    const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent') });
    sessions.push(agent);
    for (let i = 0; i < N; i++) void agent.sendText(String(i));
    await agent.flush();
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await r.close();
  });

  it('an iterator started long after connect still gets every event (the relay waits instead)', async () => {
    const user = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), window: 256 });
    sessions.push(user);
    // Let the early buffer fill: the relay must stop at the window, not the client drop events.
    await waitFor(() => Number(user.lastOffset) >= 256, { message: 'first window arrived' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Number(user.lastOffset)).toBeLessThan(N);
    const got: number[] = [];
    for await (const e of user.stream) {
      got.push(Number((e.data as { text: string }).text));
      if (got.length === N) break;
    }
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
  });

  it('a client that only listens is never stalled by the unclaimed stream', async () => {
    const user = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), window: 256 });
    sessions.push(user);
    // The listener comes late: the unclaimed stream has filled and held the acknowledgements.
    await waitFor(() => Number(user.lastOffset) >= 256, { message: 'first window arrived' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const seen: string[] = [];
    user.on('event', (e) => seen.push(e.offset));
    await waitFor(() => Number(user.lastOffset) === N, { message: 'every event reached the listener' });
    // Events before the listener was added were delivered before it existed; the ones after all arrived.
    expect(new Set(seen).size).toBe(seen.length);
  });
});
