import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

describe('a listener attached right after connect()', () => {
  let r: TestRelay | undefined;
  const sessions: LifelineSession[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await r?.close();
  });

  it('sees every event, including those that arrived in the same read as the welcome', async () => {
    r = await startRelay();
    const sid = await r.createSession();
    const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent') });
    sessions.push(agent);
    for (let i = 0; i < 20; i++) void agent.sendText(`t${i}`);
    await agent.flush();
    for (let round = 0; round < 20; round++) {
      const user = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user') });
      sessions.push(user);
      const seen: string[] = [];
      user.on('event', (e) => seen.push(e.offset));
      await waitFor(() => Number(user.lastOffset) === 20);
      await waitFor(() => seen.length === 20, { timeoutMs: 2000, message: `round ${round}: listener saw ${seen.length}` });
      user.close();
    }
  });
});
