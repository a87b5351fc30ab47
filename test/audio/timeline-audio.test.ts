import { RtpHeader } from 'werift';
import type { RTCPeerConnection } from 'werift';
import { describe, expect, it } from 'vitest';
import { connect, wsTransport } from '../../src/sdk/index.js';
import type { ClientLink, ClientTransport, LifelineSession } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { AudioPublisher } from '../../src/sdk/audio/publisher.js';
import { AudioReceiver } from '../../src/sdk/audio/receiver.js';
import type { ReceivedAudio } from '../../src/sdk/audio/receiver.js';
import { metric, scrape } from '../support/http.js';
import { LOOPBACK } from '../support/rtc.js';
import { waitFor } from '../support/wait.js';
import { opusTone, rtcRelayPerTest, rtcSession } from './helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The WebRTC transport, keeping a handle on each link's peer connection. */
function capturingTransport(): ClientTransport & { pcs: RTCPeerConnection[] } {
  const inner = webrtcTransport({ iceHosts: LOOPBACK });
  const pcs: RTCPeerConnection[] = [];
  return {
    name: inner.name,
    heartbeatMs: inner.heartbeatMs,
    pcs,
    async connect(target, signal): Promise<ClientLink> {
      const link = await inner.connect(target, signal);
      pcs.push((link as ClientLink & { pc: RTCPeerConnection }).pc);
      return link;
    },
  };
}

describe('audio in the timeline', () => {
  const fx = rtcRelayPerTest();

  it('a replacement reader starting mid-utterance gets the audio from that point, frame-exact', async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const user = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(agent, user);
    const heard: ReceivedAudio[] = [];
    new AudioReceiver(agent, { from: 'user' }).onFrame((f) => heard.push(f));
    const packets = opusTone(48000, 300, 1000);
    const mic = new AudioPublisher(user);
    mic.pushAll(packets);
    await mic.drained();
    await waitFor(() => heard.length === packets.length);

    // The first agent handled frames 0..19 and committed the offset of frame 19; its
    // replacement (over WebSocket, to show the transport does not matter) resumes after it.
    const cut = 19;
    const replacement = await connect({ url: fx.r.url, token: await fx.r.token(fx.sid, 'bot2', 'agent'), transport: wsTransport(), resume: heard[cut]!.offset! });
    fx.sessions.push(replacement);
    const resumed: ReceivedAudio[] = [];
    new AudioReceiver(replacement, { from: 'user' }).onFrame((f) => resumed.push(f));
    await waitFor(() => resumed.length === packets.length - cut - 1);
    expect(resumed.map((f) => f.offset)).toEqual(heard.slice(cut + 1).map((f) => f.offset));
    expect(resumed.map((f) => f.rtpSeq)).toEqual(heard.slice(cut + 1).map((f) => f.rtpSeq));
    expect(resumed.map((f) => hex(f.payload))).toEqual(heard.slice(cut + 1).map((f) => hex(f.payload)));
    for (const f of resumed) expect(hex(f.payload)).toBe(hex(packets[f.rtpSeq - mic.nextSeq + packets.length]!));
    mic.close();
  });

  it('a device on WebSocket (no media) publishes its microphone as appends, each frame once', async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const user = await connect({ url: fx.r.url, token: await fx.r.token(fx.sid, 'alice', 'user'), transport: wsTransport() });
    fx.sessions.push(agent, user);
    expect(user.media).toBeUndefined();
    const heard: ReceivedAudio[] = [];
    new AudioReceiver(agent, { from: 'user' }).onFrame((f) => heard.push(f));
    const packets = opusTone(16000, 440, 400);
    const mic = new AudioPublisher(user);
    const firstSeq = mic.nextSeq;
    mic.pushAll(packets);
    await mic.drained();
    await user.flush();
    await waitFor(() => heard.length === packets.length);
    expect(heard.map((f) => f.rtpSeq)).toEqual(packets.map((_, i) => firstSeq + i));
    expect(heard.map((f) => hex(f.payload))).toEqual(packets.map(hex));
    expect(heard.every((f) => f.track === 'mic' && !f.late)).toBe(true);
    mic.close();
  });

  it("an agent's speech reaches every device of the user, live and in the timeline", async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const phone = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    const laptop = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(agent, phone, laptop);
    const got = new Map<LifelineSession, { rtp: ReceivedAudio[]; timeline: ReceivedAudio[] }>();
    for (const d of [phone, laptop]) {
      const g = { rtp: [] as ReceivedAudio[], timeline: [] as ReceivedAudio[] };
      new AudioReceiver(d, { from: 'agent', source: 'rtp' }).onFrame((f) => g.rtp.push(f));
      new AudioReceiver(d, { from: 'agent' }).onFrame((f) => g.timeline.push(f));
      got.set(d, g);
    }
    const packets = opusTone(24000, 500, 400);
    const speech = new AudioPublisher(agent, { track: 'speech' });
    speech.pushAll(packets);
    await speech.drained();
    for (const g of got.values()) {
      await waitFor(() => g.rtp.length === packets.length && g.timeline.length === packets.length);
      expect(g.rtp.map((f) => hex(f.payload))).toEqual(packets.map(hex));
      expect(g.timeline.map((f) => hex(f.payload))).toEqual(packets.map(hex));
      expect(g.timeline.every((f) => f.track === 'speech' && f.from?.role === 'agent')).toBe(true);
    }
    speech.close();
  });

  it('a session with recording off forwards audio live but writes none to the timeline', async () => {
    const quiet = await fx.r.createSession({ metadata: { recordAudio: false } });
    const agent = await rtcSession(fx.r, quiet, 'bot', 'agent');
    const user = await rtcSession(fx.r, quiet, 'alice', 'user');
    fx.sessions.push(agent, user);
    const live: ReceivedAudio[] = [];
    new AudioReceiver(agent, { from: 'user', source: 'rtp' }).onFrame((f) => live.push(f));
    const packets = opusTone(16000, 440, 200);
    const mic = new AudioPublisher(user);
    mic.pushAll(packets);
    await mic.drained();
    await waitFor(() => live.length === packets.length);
    await user.sendText('done');
    await user.flush();
    const stored = await fx.r.relay.timeline.store.read(quiet, 0, 1000);
    expect(stored.map((e) => e.kind)).toEqual(['text.delta']);
    mic.close();
  });

  it('malformed RTP, unknown payload types, oversized frames and duplicates are dropped and counted; the relay carries on', async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const transport = capturingTransport();
    const user = await rtcSession(fx.r, fx.sid, 'alice', 'user', { transport });
    fx.sessions.push(agent, user);
    const heard: ReceivedAudio[] = [];
    new AudioReceiver(agent, { from: 'user' }).onFrame((f) => heard.push(f));

    const pc = transport.pcs[0]!;
    const sender = pc.getTransceivers().find((t) => t.kind === 'audio')!.sender;
    const opusPt = pc.getTransceivers().find((t) => t.kind === 'audio')!.codecs.find((c) => c.mimeType.toLowerCase() === 'audio/opus')!.payloadType;
    let seq = 1000;
    const raw = (payloadType: number, payload: Uint8Array, sequenceNumber = seq++): Promise<number> =>
      sender.dtlsTransport.sendRtp(Buffer.from(payload), new RtpHeader({ payloadType, sequenceNumber, timestamp: sequenceNumber * 960, ssrc: sender.ssrc }));

    const good = opusTone(48000, 440, 100);
    await raw(opusPt, good[0]!); // a valid frame
    await raw(opusPt, good[1]!, 1000); // the same sequence number again: a duplicate
    await raw(77, good[2]!); // a payload type nobody negotiated
    await raw(opusPt, new Uint8Array(4000).fill(0xfc)); // oversized
    await raw(opusPt, new Uint8Array([0x03, 0x00])); // code 3 with zero frames: not Opus
    await raw(opusPt, new Uint8Array([0x01, 0x01])); // code 1 (two equal frames) with an odd length: not Opus
    await raw(opusPt, new Uint8Array(0)); // empty

    await waitFor(async () => (metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total')) >= 6, { message: 'drops counted' });
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total', { reason: 'duplicate' })).toBe(1);
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total', { reason: 'unknown-payload-type' })).toBe(1);
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total', { reason: 'oversized' })).toBe(1);
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total', { reason: 'malformed' })).toBe(3);

    // The relay carries on: real audio after the junk goes through, and only the one valid frame
    // of the junk burst was recorded.
    const mic = new AudioPublisher(user);
    mic.pushAll(good.slice(2));
    await mic.drained();
    await waitFor(() => heard.length === 1 + good.length - 2);
    expect(hex(heard[0]!.payload)).toBe(hex(good[0]!));
    expect(heard.slice(1).map((f) => hex(f.payload))).toEqual(good.slice(2).map(hex));
    expect(metric(await scrape(fx.r.url), 'lifeline_audio_frames_recorded_total')).toBe(heard.length);
    mic.close();
  });

  it("a device's new connection with fresh RTP numbering (as a browser makes after a drop) is recorded, not dropped as old", async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    fx.sessions.push(agent);
    const heard: ReceivedAudio[] = [];
    new AudioReceiver(agent, { from: 'user' }).onFrame((f) => heard.push(f));
    const frames = opusTone(48000, 440, 400); // 20 frames
    const sendRaw = async (transport: ReturnType<typeof capturingTransport>, firstSeq: number, firstTs: number, payloads: Uint8Array[]): Promise<void> => {
      const t = transport.pcs[0]!.getTransceivers().find((x) => x.kind === 'audio')!;
      const pt = t.codecs.find((c) => c.mimeType.toLowerCase() === 'audio/opus')!.payloadType;
      for (let i = 0; i < payloads.length; i++) {
        await t.sender.dtlsTransport.sendRtp(
          Buffer.from(payloads[i]!),
          new RtpHeader({ payloadType: pt, sequenceNumber: (firstSeq + i) & 0xffff, timestamp: (firstTs + i * 960) >>> 0, ssrc: t.sender.ssrc }),
        );
      }
    };
    // First connection: numbering near 40,000.
    const first = capturingTransport();
    const tab1 = await rtcSession(fx.r, fx.sid, 'alice', 'user', { transport: first, device: 'tab-1' });
    await sendRaw(first, 40_000, 1_000_000, frames.slice(0, 10));
    await waitFor(() => heard.length === 10, { message: 'first connection recorded' });
    tab1.close();
    // The same device again, on a new peer connection: a new SSRC, numbering far "behind".
    const second = capturingTransport();
    const tab1Again = await rtcSession(fx.r, fx.sid, 'alice', 'user', { transport: second, device: 'tab-1' });
    fx.sessions.push(tab1Again);
    await sendRaw(second, 100, 77_777, frames.slice(10));
    await waitFor(() => heard.length === 20, { message: 'second connection recorded too' });
    expect(heard.map((f) => hex(f.payload))).toEqual(frames.map(hex));
    expect(metric(await scrape(fx.r.url), 'lifeline_rtp_dropped_total')).toBe(0);
  });
});
