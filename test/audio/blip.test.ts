import { describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { StateChange } from '../../src/sdk/index.js';
import { AudioPublisher } from '../../src/sdk/audio/publisher.js';
import { AudioReceiver } from '../../src/sdk/audio/receiver.js';
import type { ReceivedAudio } from '../../src/sdk/audio/receiver.js';
import { proxiedRtc } from '../support/proxied-rtc.js';
import type { ProxiedRtc } from '../support/proxied-rtc.js';
import { metric, scrape } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { opusTone, rtcRelayPerTest, rtcSession } from './helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('audio spoken during a blackhole of the path', () => {
  let path: ProxiedRtc;
  const fx = rtcRelayPerTest(() => {
    path = proxiedRtc();
    return () => path.close();
  });

  it('a lossy path (3 % of datagrams dropped each way) loses no frame: the relay asks for gaps again (NACK)', async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const user = await connect({ url: fx.r.url, token: await fx.r.token(fx.sid, 'alice', 'user'), transport: path.transport });
    fx.sessions.push(agent, user);
    const heard: ReceivedAudio[] = [];
    new AudioReceiver(agent, { from: 'user' }).onFrame((f) => heard.push(f));
    for (const proxy of path.proxies) proxy.impair({ loss: 0.03 });
    const packets = opusTone(16000, 440, 3000);
    const mic = new AudioPublisher(user);
    const firstSeq = mic.nextSeq;
    mic.pushAll(packets);
    await mic.drained();
    await waitFor(() => heard.length >= packets.length, { timeoutMs: 15_000, message: `heard ${heard.length} of ${packets.length}` });
    const seqs = heard.map((f) => f.rtpSeq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: packets.length }, (_, i) => firstSeq + i));
    const dropped = path.proxies.reduce((n, p) => n + p.stats().upstream.dropped.loss, 0);
    expect(dropped).toBeGreaterThan(0);
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_missing_total')).toBeGreaterThan(0);
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_lost_total')).toBe(0);
    mic.close();
  });

  for (const blip of [
    { name: 'healed by an ICE restart', outageMs: 600, healed: 'restarted' as const },
    { name: 'healed by a full reconnect', outageMs: 2500, healed: 'resumed' as const },
  ]) {
    it(`reaches the agent after recovery, late, each frame once (${blip.name})`, async () => {
      const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
      const user = await connect({ url: fx.r.url, token: await fx.r.token(fx.sid, 'alice', 'user'), transport: path.transport, restartTimeoutMs: 1500 });
      fx.sessions.push(agent, user);
      const states: StateChange[] = [];
      user.on('state', (c) => states.push(c));
      const heard: ReceivedAudio[] = [];
      new AudioReceiver(agent, { from: 'user' }).onFrame((f) => heard.push(f));

      const packets = opusTone(16000, 440, 2000 + blip.outageMs + 1000);
      const mic = new AudioPublisher(user);
      const firstSeq = mic.nextSeq;
      mic.pushAll(packets);
      await waitFor(() => heard.length >= 25, { message: 'audio flowing before the blip' });
      const maxBefore = Math.max(...heard.map((f) => f.rtpSeq));
      path.blackhole(true);
      await waitFor(() => states.some((c) => c.state === 'reconnecting'), { message: 'loss noticed' });
      // Keep talking into the outage (the publisher is paced in real time).
      await new Promise((resolve) => setTimeout(resolve, blip.outageMs));
      path.blackhole(false);
      await waitFor(() => states.some((c) => c.state === blip.healed), { timeoutMs: 15_000, message: `${blip.healed} after the blip` });
      const seqAtHeal = mic.nextSeq;
      await mic.drained();
      await waitFor(() => heard.length >= packets.length, { timeoutMs: 15_000, message: `heard ${heard.length} of ${packets.length}` });

      // Every frame exactly once (nothing lost, nothing duplicated), byte for byte.
      const seqs = heard.map((f) => f.rtpSeq);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: packets.length }, (_, i) => firstSeq + i));
      for (const f of heard) expect(hex(f.payload)).toBe(hex(packets[f.rtpSeq - firstSeq]!));
      // What was said while the path was down (at least 300 ms before it came back, so it could
      // not have arrived in time) arrived after recovery, marked late.
      const outage = heard.filter((f) => f.rtpSeq > maxBefore && f.rtpSeq < seqAtHeal - 15);
      expect(outage.length).toBeGreaterThan(0);
      expect(outage.filter((f) => !f.late).map((f) => f.rtpSeq - maxBefore)).toEqual([]);
      // Before the blip, frames came in time (a stall of this shared machine may delay a few).
      const before = heard.filter((f) => f.rtpSeq <= maxBefore);
      expect(before.filter((f) => !f.late).length).toBeGreaterThanOrEqual(before.length * 0.8);
      expect(mic.stats.resent).toBeGreaterThanOrEqual(outage.length);
      // The relay dropped the resent frames it already had as duplicates, not as anything else.
      expect(metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total', { reason: 'malformed' })).toBe(0);
      mic.close();
    });
  }
});
