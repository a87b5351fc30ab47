/**
 * Never lose a token: three users read one session over real WebSockets while an agent streams
 * thousands of tokens, and each user's link is forced down at random moments (seeded, so a failure
 * can be replayed), from the relay's side (the connection's link is cut without a close frame) or
 * from the client's (its socket is closed). Every user must end with the same gap-free sequence,
 * equal to what the agent sent, in the agent's order.
 */
import { describe, expect, it } from 'vitest';
import { formatOffset } from '../../src/protocol/index.js';
import type { TimelineEvent } from '../../src/protocol/index.js';
import { ExponentialBackoff } from '../../src/sdk/index.js';
import type { LifelineSession, StateChange } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import type { TestRelay } from '../support/relay.js';
import { controllableTransport } from '../support/sdk.js';
import type { ControllableTransport } from '../support/sdk.js';
import { seededRandom, waitFor, within } from '../support/wait.js';

const TOKENS = 3000;
const CHUNK = 20;
const USERS = 3;
/** Drops per user, at random points of its own stream, plus drops at random points of the agent's sending. */
const DROPS_PER_USER = 4;
const DROPS_BY_AGENT_PROGRESS = 6;

type How = 'relay-side' | 'client-side';

interface User {
  name: string;
  session: LifelineSession;
  transport: ControllableTransport;
  states: StateChange[];
  /** Drops that found a live link to cut. */
  drops: { at: number; how: How }[];
}

/** Cuts the user's link; returns whether there was one to cut. */
function drop(relay: TestRelay, sid: string, user: User, how: How): boolean {
  if (how === 'client-side') return user.transport.drop();
  const conns = relay.relay.connections.connections(sid).filter((c) => c.origin?.device === user.session.device && c.state === 'open');
  for (const c of conns) c.linkLost();
  return conns.length > 0;
}

const seeds = process.env['LIFELINE_SEED'] ? [Number(process.env['LIFELINE_SEED'])] : [1, 2, 3];

describe('many readers, forced disconnects, one agent streaming', () => {
  it.each(seeds)('seed %i: every reader ends with the same gap-free sequence, equal to what the agent sent', async (seed) => {
    const c = useCleanup();
    const random = seededRandom(seed);
    const relay = await c.relay();
    const sid = await relay.createSession();

    const agent = await c.sdk({ url: relay.url, token: await relay.token(sid, 'bot', 'agent'), device: 'agent-1' });
    const users: User[] = [];
    for (let i = 0; i < USERS; i++) {
      const transport = controllableTransport();
      const session = await c.sdk({
        url: relay.url,
        token: await relay.token(sid, `user-${i}`, 'user'),
        device: `user-${i}-dev`,
        transport,
        reconnect: new ExponentialBackoff({ initialMs: 5, maxMs: 40, random }),
      });
      const user: User = { name: `user-${i}`, session, transport, states: [], drops: [] };
      session.on('state', (s) => user.states.push(s));
      users.push(user);
    }

    // Where each user's link goes down: after it has received these many events.
    const plans = users.map(() =>
      Array.from({ length: DROPS_PER_USER }, () => ({
        at: 1 + Math.floor(random() * (TOKENS - 1)),
        how: (random() < 0.5 ? 'relay-side' : 'client-side') as How,
      })).sort((a, b) => a.at - b.at),
    );
    // And when the agent's progress takes someone down (a user may be mid-stream or idle then).
    const agentPlan = new Map<number, { user: number; how: How }>();
    while (agentPlan.size < DROPS_BY_AGENT_PROGRESS) {
      const chunk = Math.floor(random() * (TOKENS / CHUNK)) * CHUNK;
      agentPlan.set(chunk, { user: Math.floor(random() * USERS), how: random() < 0.5 ? 'relay-side' : 'client-side' });
    }

    // Each user reads its stream until the agent's closing text.done.
    const readers = users.map(async (user, i) => {
      const got: TimelineEvent[] = [];
      const plan = plans[i]!;
      for await (const event of user.session.stream) {
        got.push(event);
        while (plan.length > 0 && got.length >= plan[0]!.at) {
          const step = plan.shift()!;
          if (drop(relay, sid, user, step.how)) user.drops.push({ at: got.length, how: step.how });
        }
        if (event.kind === 'text.done' && event.from.participant === 'bot') break;
      }
      return got;
    });

    const sent: string[] = [];
    const offsets: string[] = [];
    for (let i = 0; i < TOKENS; i += CHUNK) {
      const batch: Promise<string>[] = [];
      for (let j = i; j < Math.min(TOKENS, i + CHUNK); j++) {
        const text = `tok-${j} `;
        sent.push(text);
        batch.push(agent.sendText(text, { id: 'answer-1' }));
      }
      offsets.push(...(await Promise.all(batch)));
      const step = agentPlan.get(i);
      if (step) {
        const user = users[step.user]!;
        if (drop(relay, sid, user, step.how)) user.drops.push({ at: -i, how: step.how });
      }
    }
    offsets.push(await agent.sendTextDone({ id: 'answer-1' }));
    // The agent's own appends were committed in its order, each once.
    expect(offsets).toEqual(Array.from({ length: TOKENS + 1 }, (_, k) => formatOffset(k + 1)));

    const results = await within(Promise.all(readers), 30_000, 'every reader to reach the end of the answer');

    const expected = [...sent.map((text, k) => ({ offset: offsets[k]!, kind: 'text.delta', text })), { offset: offsets[TOKENS]!, kind: 'text.done', text: undefined }];
    for (const [i, got] of results.entries()) {
      const user = users[i]!;
      const label = `${user.name} (seed ${seed}, drops ${JSON.stringify(user.drops)})`;
      // Gap-free and strictly increasing by one from the first offset.
      const seqs = got.map((e) => Number(e.offset));
      expect(seqs, label).toEqual(Array.from({ length: got.length }, (_, k) => k + 1));
      // Exactly what the agent sent, in its order (nothing else was written to this session).
      expect(
        got.map((e) => ({ offset: e.offset, kind: e.kind, text: (e.data as { text?: string }).text })),
        label,
      ).toEqual(expected);
      expect(got.every((e) => e.from.participant === 'bot' && e.from.device === 'agent-1'), label).toBe(true);
      // The drops really happened, and each one was healed by a resume.
      expect(user.drops.length, label).toBeGreaterThanOrEqual(2);
      expect(user.states.filter((s) => s.state === 'resumed').length, label).toBeGreaterThanOrEqual(user.drops.length > 0 ? 1 : 0);
      expect(user.states.some((s) => s.state === 'closed'), label).toBe(false);
    }
    // The three sequences are identical event for event (offsets, origins, timestamps, data).
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);

    // No connection outlived its link: one per user and the agent, once everyone has settled.
    await waitFor(() => users.every((u) => u.session.state === 'connected' || u.session.state === 'resumed'));
    await waitFor(() => relay.relay.connections.size === USERS + 1, { message: `registry holds ${USERS + 1} connections` });
    const devices = relay.relay.connections.connections(sid).map((c) => c.origin!.device).sort();
    expect(devices).toEqual(['agent-1', ...users.map((u) => u.session.device)].sort());
  });
});
