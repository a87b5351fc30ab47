import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { startRelay, tempDir } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

describe('sessions that live for days', () => {
  const relays: TestRelay[] = [];
  const sessions: LifelineSession[] = [];
  const dirs: (() => void)[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    for (const r of relays.splice(0)) await r.close();
    for (const d of dirs.splice(0)) d();
  });

  const adminGet = (r: TestRelay, path: string): Promise<Response> => fetch(`${r.url}${path}`, { headers: { authorization: `Bearer ${r.adminToken}` } });

  it('an idle session is reclaimed after its idle TTL; activity keeps it alive', async () => {
    const r = await startRelay({ sweepIntervalMs: 100 });
    relays.push(r);
    // The TTL leaves the busy session's gaps (150 ms plus an append's round trip, and the connect
    // before the first) over a second of slack on a loaded machine; the activity lasts twice the TTL.
    const busy = await r.createSession({ idleTtlSeconds: 1.5 });
    const idle = await r.createSession({ idleTtlSeconds: 1.5 });
    const agent = await connect({ url: r.url, token: await r.token(busy, 'bot', 'agent') });
    sessions.push(agent);
    for (let i = 0; i < 20; i++) {
      await agent.sendText(`still here ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect((await adminGet(r, `/v1/sessions/${busy}`)).status).toBe(200);
    await waitFor(async () => (await adminGet(r, `/v1/sessions/${idle}`)).status === 404, { message: 'idle session reclaimed' });
    expect(await r.relay.timeline.store.getSession(idle)).toBeUndefined();
    const info = (await (await adminGet(r, `/v1/sessions/${busy}`)).json()) as { lastActiveAt: number; createdAt: number };
    expect(info.lastActiveAt).toBeGreaterThan(info.createdAt);
  });

  it('lists sessions page by page, for admins only', async () => {
    const r = await startRelay();
    relays.push(r);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await r.createSession({ id: `s-${i}`, metadata: { n: i } }));
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const res = await adminGet(r, `/v1/sessions?limit=2${after ? `&after=${after}` : ''}`);
      const body = (await res.json()) as { sessions: { id: string; metadata: { n: number } }[]; next: string | null };
      seen.push(...body.sessions.map((s) => s.id));
      after = body.next;
      if (!after) break;
    }
    expect(seen).toEqual(ids);
    const asUser = await fetch(`${r.url}/v1/sessions`, { headers: { authorization: `Bearer ${await r.token('s-0', 'alice', 'user')}` } });
    expect(asUser.status).toBe(403);
    expect((await adminGet(r, '/v1/sessions?limit=0')).status).toBe(400);
  });

  it('a user who comes back later (after a relay restart) resumes from their own offset', async () => {
    const { dir, remove } = tempDir();
    dirs.push(remove);
    const store = `sqlite:${join(dir, 'days.db')}`;
    const r1 = await startRelay({ store });
    const sid = await r1.createSession({ ttlSeconds: 3 * 24 * 3600 });
    const agent = await connect({ url: r1.url, token: await r1.token(sid, 'bot', 'agent') });
    for (let i = 0; i < 50; i++) void agent.sendText(`t${i}`);
    await agent.flush();
    const user = await connect({ url: r1.url, token: await r1.token(sid, 'alice', 'user') });
    await waitFor(() => Number(user.lastOffset) >= 20);
    const kept = user.lastOffset; // what the app stored (e.g. in localStorage)
    user.close();
    for (let i = 50; i < 100; i++) void agent.sendText(`t${i}`);
    await agent.flush();
    agent.close();
    await r1.close();

    const r2 = await startRelay({ store });
    relays.push(r2);
    const back = await connect({ url: r2.url, token: await r2.token(sid, 'alice', 'user'), resume: kept });
    sessions.push(back);
    const got: string[] = [];
    for await (const e of back.stream) {
      got.push((e.data as { text: string }).text);
      if (Number(e.offset) === 100) break;
    }
    expect(got).toEqual(Array.from({ length: 100 - Number(kept) }, (_, i) => `t${i + Number(kept)}`));
  });
});
