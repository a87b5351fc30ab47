import { afterEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../native-free-bench/netsim/index.js';
import { connect, formatOffset, parseOffset } from '../../src/sdk/index.js';
import type { LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

const TOKENS = 1500;
const TABS = 5;

describe('many tabs of one user', () => {
  let r: TestRelay | undefined;
  const sessions: LifelineSession[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await r?.close();
  });

  it('five tabs attach and detach at random while an agent streams: each view, from its own resume point, matches the timeline', async () => {
    r = await startRelay({ presenceEvents: true });
    const sid = await r.createSession();
    const random = mulberry32(Number(process.env['LIFELINE_SEED'] ?? 7));
    const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent'), resume: 'now' });
    sessions.push(agent);
    const first = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), device: 'tab-0', resume: 'now' });
    sessions.push(first);

    /** Each tab incarnation: where it started reading and every event it received. */
    const views: { device: string; from: number; events: TimelineEvent[]; session: LifelineSession }[] = [];
    const track = (s: LifelineSession, from: number): void => {
      const view = { device: s.device, from, events: [] as TimelineEvent[], session: s };
      // The stream buffers from connect, so nothing that arrived before this line is missed.
      void (async () => {
        for await (const e of s.stream) view.events.push(e);
      })();
      views.push(view);
    };
    track(first, parseOffset(first.welcome!.head)!);
    const open: LifelineSession[] = [first];

    for (let i = 0; i < TOKENS; i++) {
      void agent.sendText(`t${i}`);
      if (i % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      if (i % 100 === 50) {
        // A random tab closes, or a new one attaches from a point of its choosing.
        if (open.length > 1 && random() < 0.4) {
          const k = Math.floor(random() * open.length);
          open.splice(k, 1)[0]!.close();
        } else if (open.length < TABS) {
          const head = await r.relay.timeline.head(sid);
          const from = random() < 0.5 ? 0 : Math.floor(random() * head);
          const tab = await first.attach({ device: `tab-${views.length}`, resume: formatOffset(from) });
          sessions.push(tab);
          open.push(tab);
          track(tab, from);
        }
      }
    }
    // Each tab appends once: one timeline, every producer exactly once.
    await Promise.all(open.map((t) => t.sendText(`from ${t.device}`)));
    await agent.flush();
    const head = await r.relay.timeline.head(sid);
    for (const t of open) await waitFor(() => Number(t.lastOffset) === head, { message: `${t.device} caught up` });

    const reader = await r.relay.timeline.reader(sid, 0);
    const timeline: TimelineEvent[] = [];
    while (timeline.length < head) timeline.push(...(await reader.next(1000)));
    reader.close();

    expect(views.length).toBeGreaterThan(TABS - 1);
    for (const v of views) {
      // Gap-free from its own resume point, and identical to the timeline there.
      const expected = timeline.slice(v.from, v.from + v.events.length);
      expect(v.events.map((e) => e.offset)).toEqual(expected.map((e) => e.offset));
      expect(v.events.map((e) => e.data)).toEqual(expected.map((e) => e.data));
      if (open.includes(v.session)) expect(v.from + v.events.length).toBe(head);
    }
    const texts = timeline.filter((e) => e.kind === 'text.delta').map((e) => (e.data as { text: string }).text);
    expect(texts.filter((t) => t.startsWith('t'))).toEqual(Array.from({ length: TOKENS }, (_, i) => `t${i}`));
    for (const t of open) expect(texts.filter((x) => x === `from ${t.device}`)).toHaveLength(1);
    // Nobody was kicked: every open tab is still connected, as one participant with many devices.
    const info = (await (await fetch(`${r.url}/v1/sessions/${sid}`, { headers: { authorization: `Bearer ${r.adminToken}` } })).json()) as {
      participants: { participant: string; devices: { device: string }[] }[];
    };
    const alice = info.participants.find((p) => p.participant === 'alice')!;
    expect(alice.devices.map((d) => d.device).sort()).toEqual(open.map((t) => t.device).sort());
  });
});
