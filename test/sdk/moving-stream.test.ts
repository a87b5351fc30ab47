import { describe, expect, it } from 'vitest';
import type { TimelineEvent } from '../../src/protocol/index.js';
import type { LifelineSession, SessionOptions } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import { RawClient } from '../support/raw-ws.js';
import type { TestRelay } from '../support/relay.js';
import { controllableTransport, stateReached } from '../support/sdk.js';
import { waitFor } from '../support/wait.js';

/**
 * Moving the read position while events flow: `stream.resume(lastEventId)` backwards, and a change
 * of the kind filter. Events the relay sent under the old position or filter are still on the wire
 * when it moves; none of them may take the place of the moved stream's own events.
 */
describe('moving the read position while events flow', () => {
  /** A relay and a session with an agent in it (all closed when the test ends); `join` adds a user device. */
  async function pair(): Promise<{ r: TestRelay; id: string; agent: LifelineSession; join: (opts?: Partial<SessionOptions>) => Promise<LifelineSession> }> {
    const c = useCleanup();
    const r = await c.relay();
    const id = await r.createSession();
    const agent = await c.sdk({ url: r.url, token: await r.token(id, 'bot', 'agent'), device: 'bot-1', resume: 'now' });
    const join = async (opts: Partial<SessionOptions> = {}): Promise<LifelineSession> => c.sdk({ url: r.url, token: await r.token(id, 'alice', 'user'), ...opts });
    return { r, id, agent, join };
  }

  /** Appends `n` text deltas `t0…`, 16 per macrotask, so that events are always in flight. */
  async function stream(agent: LifelineSession, n: number, prefix = 't'): Promise<string[]> {
    const pending: Promise<string>[] = [];
    for (let i = 0; i < n; i += 16) {
      for (let k = i; k < Math.min(i + 16, n); k++) pending.push(agent.append('text.delta', { text: `${prefix}${k}` }));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    return Promise.all(pending);
  }

  const text = (e: TimelineEvent): string => String((e.data as { text?: string }).text ?? e.kind);

  it('stream.resume(lastEventId) backwards mid-stream yields every later event once, in order', async () => {
    const { agent, join } = await pair();
    const user = await join({ window: 64 });
    const N = 1500;
    const sent = stream(agent, N);
    for (let round = 0; round < 5; round++) {
      // Read a while, then go back to an offset already read and read on from there.
      const read: TimelineEvent[] = [];
      for await (const e of user.stream) {
        read.push(e);
        if (read.length === 120) break;
      }
      const back = read[40 + round * 10]!;
      const again: TimelineEvent[] = [];
      for await (const e of user.stream.resume(back.offset)) {
        again.push(e);
        if (again.length === 150) break;
      }
      const first = Number(back.offset);
      expect(again.map((e) => Number(e.offset)), `round ${round}`).toEqual(Array.from({ length: 150 }, (_, k) => first + 1 + k));
      user.stream.resume(again.at(-1)!.offset);
    }
    await sent;
  });
  /** Interleaves audio frames and text deltas (3 audio, then 1 text), 16 per macrotask. */
  async function voice(agent: LifelineSession, n: number): Promise<{ kind: string; offset: string }[]> {
    const pending: Promise<{ kind: string; offset: string }>[] = [];
    for (let i = 0; i < n; i++) {
      const kind = i % 4 === 3 ? 'text.delta' : 'audio.frame';
      pending.push(
        (kind === 'text.delta'
          ? agent.append('text.delta', { text: `w${i}` })
          : agent.append('audio.frame', { codec: 'opus' }, { track: 'speech', bin: new Uint8Array([i & 0xff, 1, 2]) })
        ).then((offset) => ({ kind, offset })),
      );
      if (i % 16 === 15) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    return Promise.all(pending);
  }

  it('kinds: a device reads only the kinds it asked for, and the skipped events never hold its window', async () => {
    const { agent, join } = await pair();
    const everything = await join({ device: 'laptop' });
    const textOnly = await join({ device: 'phone', kinds: ['text.delta', 'text.done'], window: 8 });
    const got: TimelineEvent[] = [];
    const all: TimelineEvent[] = [];
    textOnly.on('event', (e) => got.push(e));
    everything.on('event', (e) => all.push(e));
    // 300 audio frames and 100 deltas: the audio alone is 37 windows of 8.
    const sent = await voice(agent, 400);
    await agent.sendText('done');
    const texts = sent.filter((s) => s.kind === 'text.delta').map((s) => s.offset);
    await waitFor(() => got.some((e) => text(e) === 'done'), { message: 'the last delta on the filtered device' });
    expect(got.map((e) => e.offset)).toEqual([...texts, got.at(-1)!.offset]);
    expect(got.every((e) => e.kind === 'text.delta')).toBe(true);
    expect(textOnly.kinds).toEqual(['text.delta', 'text.done']);
    // The other device of the same participant still reads every event.
    await waitFor(() => all.length === 401, { message: 'every event on the unfiltered device' });
    expect(all.map((e) => e.offset)).toEqual([...sent.map((s) => s.offset), got.at(-1)!.offset]);
  });

  it('setKinds() mid-stream: from the newest event read on, every event of the new filter once, in order', async () => {
    const { agent, join } = await pair();
    const user = await join({ kinds: ['text.delta'], window: 32 });
    const got: TimelineEvent[] = [];
    user.on('event', (e) => got.push(e));
    const sending = voice(agent, 1200);
    await waitFor(() => got.length >= 40, { message: 'some deltas first' });
    const switchedAt = Number(user.lastOffset);
    user.setKinds(undefined);
    expect(user.kinds).toBeUndefined();
    const sent = await sending;
    const last = Number(sent.at(-1)!.offset);
    await waitFor(() => Number(got.at(-1)!.offset) === last, { message: 'the last event after the switch' });
    const before = got.filter((e) => Number(e.offset) <= switchedAt);
    const after = got.filter((e) => Number(e.offset) > switchedAt);
    expect(before.every((e) => e.kind === 'text.delta')).toBe(true);
    // After the switch: audio too, gap-free from the switch point, nothing twice.
    expect(after.map((e) => Number(e.offset))).toEqual(Array.from({ length: last - switchedAt }, (_, k) => switchedAt + 1 + k));
    expect(after.some((e) => e.kind === 'audio.frame')).toBe(true);
  });

  it('keeps the filter across a reconnect, set before or after connecting', async () => {
    const { agent, join } = await pair();
    const transport = controllableTransport();
    const user = await join({ transport, kinds: ['audio.frame'] });
    user.setKinds(['text.delta']);
    const got: TimelineEvent[] = [];
    user.on('event', (e) => got.push(e));
    await voice(agent, 40);
    await waitFor(() => got.length === 10, { message: 'the first 10 deltas' });
    transport.drop();
    await stateReached(user, 'resumed');
    await voice(agent, 40);
    await waitFor(() => got.length === 20, { message: '10 more deltas after the reconnect' });
    expect(got.every((e) => e.kind === 'text.delta')).toBe(true);
    expect(transport.opened).toBe(2);
  });

  it('refuses malformed filters at the edge, and answers subscribe with subscribed to clients that ask', async () => {
    const { r, id } = await pair();
    const token = await r.token(id, 'alice', 'user');
    for (const kinds of [[], ['text.delta', 'text.delta'], ['nope'], 'text.delta']) {
      const c = await RawClient.open(r.url, id, { token });
      c.send(JSON.stringify({ type: 'hello', v: 1, resume: '-1', kinds }));
      expect((await c.error()).code, JSON.stringify(kinds)).toBe('BAD_FRAME');
      await c.close();
    }
    // A subscribe the relay cannot apply ends the connection: the client would wait for an answer.
    const bogus = (await RawClient.connect(r.url, id, token, { resume: 'now', features: ['subscribed'] })).client;
    bogus.send(JSON.stringify({ type: 'subscribe', from: 'now', kinds: ['bogus'] }));
    const refused = await bogus.error();
    expect([refused.code, refused.fatal]).toEqual(['BAD_FRAME', true]);
    await bogus.closed;
    // Answered only to clients that say they understand the answer (older clients do not).
    const { client, welcome } = await RawClient.connect(r.url, id, token, { resume: 'now', features: ['subscribed', 'something-newer'] });
    expect(welcome.features).toEqual(['subscribed', 'kinds']);
    client.sendFrame({ type: 'subscribe', from: 'now', kinds: ['control'] });
    const moved = await client.take((f) => f.type === 'subscribed', 'subscribed');
    expect(moved).toEqual({ type: 'subscribed', from: '-1' });
    expect(client.undecodable).toEqual([]);
    const older = (await RawClient.connect(r.url, id, token, { resume: 'now' })).client;
    older.sendFrame({ type: 'subscribe', from: 'now' });
    await older.ping();
    expect(older.received.filter((f) => f.type === 'subscribed')).toEqual([]);
    await older.close();
    await client.close();
  });
  it('stream.resume() beyond the head closes the session with OFFSET_OUT_OF_RANGE instead of skipping ahead', async () => {
    const { agent, join } = await pair();
    const user = await join();
    await agent.sendText('only one');
    const closed = stateReached(user, 'closed');
    user.stream.resume('0000000000000050');
    // Retrying would succeed once the head had passed 50, and the events up to it would be skipped.
    expect((await closed).error).toBe('OFFSET_OUT_OF_RANGE');
  });
});
