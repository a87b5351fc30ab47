import { describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { RtpFrame } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { metric, scrape } from '../support/http.js';
import { LOOPBACK } from '../support/rtc.js';
import { waitFor } from '../support/wait.js';
import { rtcRelayPerTest } from './helpers.js';

/** A VP8 RTP payload: descriptor (S=1, PID 0) and the start of a key frame (the relay never looks inside). */
function vp8Payload(i: number, size = 900): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x10;
  p[1] = 0x50; // key frame, version 0, show_frame
  p[2] = 0x00;
  p[3] = 0x00;
  p[4] = 0x9d;
  p[5] = 0x01;
  p[6] = 0x2a;
  for (let k = 10; k < size; k++) p[k] = (i * 31 + k) & 0xff;
  return p;
}

describe('video pass-through', () => {
  const fx = rtcRelayPerTest();

  it("a user's VP8 reaches the agent untouched, and the agent's keyframe requests reach the user; nothing is recorded", async () => {
    const transport = webrtcTransport({ iceHosts: LOOPBACK, video: true });
    const agent = await connect({ url: fx.r.url, token: await fx.r.token(fx.sid, 'bot', 'agent'), transport });
    const user = await connect({ url: fx.r.url, token: await fx.r.token(fx.sid, 'alice', 'user'), transport });
    fx.sessions.push(agent, user);
    const got: RtpFrame[] = [];
    agent.media!.onPacket((kind, p) => kind === 'video' && got.push(p));
    let keyframeRequests = 0;
    user.media!.onKeyframeRequest(() => keyframeRequests++);

    const sent: RtpFrame[] = [];
    for (let i = 0; i < 30; i++) {
      const frame = { sequenceNumber: 500 + i, timestamp: 90_000 + i * 3000, marker: true, payload: vp8Payload(i) };
      sent.push(frame);
      expect(user.media!.send('video', frame)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(() => got.length === sent.length, { message: `video packets ${got.length}` });
    expect(got.map((p) => [p.sequenceNumber, p.timestamp, Buffer.from(p.payload).toString('hex')])).toEqual(
      sent.map((p) => [p.sequenceNumber, p.timestamp, Buffer.from(p.payload).toString('hex')]),
    );

    expect(agent.media!.requestKeyframe()).toBe(true);
    await waitFor(() => keyframeRequests >= 1, { message: 'PLI forwarded to the user' });

    // Video is not recorded: the timeline holds no media events.
    const stored = await fx.r.relay.timeline.store.read(fx.sid, 0, 1000);
    expect(stored.filter((e) => e.kind === 'audio.frame')).toHaveLength(0);
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_forwarded_total', { kind: 'video' })).toBe(sent.length);
  });
});
