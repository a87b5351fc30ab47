import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AudioPublisher } from '../../src/sdk/audio/publisher.js';
import { AudioReceiver } from '../../src/sdk/audio/receiver.js';
import type { ReceivedAudio } from '../../src/sdk/audio/receiver.js';
import { OpusEncoder, PcmDecoder } from '../../src/sdk/audio/opus.js';
import { tempDir } from '../support/relay.js';
import { waitFor } from '../support/wait.js';
import { concat, dominantHz, opusTone, rms, rtcRelayPerTest, rtcSession, tone } from './helpers.js';

/** Speech from espeak-ng (a WAV file: 16-bit mono, 22,050 Hz), resampled linearly to `rate`. */
function espeak(text: string, rate: number): Int16Array {
  const tmp = tempDir('lifeline-espeak-');
  try {
    const file = join(tmp.dir, 'speech.wav');
    execFileSync('espeak-ng', ['-w', file, text], { timeout: 20_000 });
    const wav = readFileSync(file);
    const srcRate = wav.readUInt32LE(24);
    let at = 12;
    while (wav.toString('ascii', at, at + 4) !== 'data') at += 8 + wav.readUInt32LE(at + 4);
    const len = Math.min(wav.readUInt32LE(at + 4), wav.length - at - 8) >> 1;
    const src = new Int16Array(len);
    for (let i = 0; i < len; i++) src[i] = wav.readInt16LE(at + 8 + 2 * i);
    const out = new Int16Array(Math.floor((len * rate) / srcRate));
    for (let i = 0; i < out.length; i++) {
      const x = (i * srcRate) / rate;
      const k = Math.floor(x);
      const f = x - k;
      out[i] = Math.round((src[k] ?? 0) * (1 - f) + (src[k + 1] ?? 0) * f);
    }
    return out;
  } finally {
    tmp.remove();
  }
}

/** RMS of each 20 ms frame. */
function envelope(pcm: Int16Array, rate: number): number[] {
  const n = (rate * 20) / 1000;
  const out: number[] = [];
  for (let at = 0; at + n <= pcm.length; at += n) out.push(rms(pcm.subarray(at, at + n)));
  return out;
}

function correlation(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  const ma = a.slice(0, n).reduce((x, y) => x + y, 0) / n;
  const mb = b.slice(0, n).reduce((x, y) => x + y, 0) / n;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < n; i++) {
    num += (a[i]! - ma) * (b[i]! - mb);
    da += (a[i]! - ma) ** 2;
    db += (b[i]! - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

const RATE = 16000;
const HZ = 440;
const MS = 1000;
const FRAMES = MS / 20;

/** Decodes frames in order of their sequence numbers; skips the first `skip` (codec warm-up). */
async function decode(frames: ReceivedAudio[], skip = 5): Promise<Int16Array> {
  const dec = await PcmDecoder.create(RATE);
  try {
    const sorted = [...frames].sort((a, b) => a.rtpSeq - b.rtpSeq);
    return concat(sorted.map((f) => dec.decode(f.payload)).slice(skip));
  } finally {
    dec.close();
  }
}

describe('audio through the relay (real Opus)', () => {
  const fx = rtcRelayPerTest();

  it("a user's 440 Hz tone reaches the agent by the timeline and by RTP with its frequency and energy", async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const user = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(agent, user);
    const fromTimeline: ReceivedAudio[] = [];
    const fromRtp: ReceivedAudio[] = [];
    const viaTimeline = new AudioReceiver(agent, { from: 'user' });
    const viaRtp = new AudioReceiver(agent, { from: 'user', source: 'rtp' });
    viaTimeline.onFrame((f) => fromTimeline.push(f));
    viaRtp.onFrame((f) => fromRtp.push(f));

    const packets = opusTone(RATE, HZ, MS);
    expect(packets).toHaveLength(FRAMES);
    const mic = new AudioPublisher(user);
    const firstSeq = mic.nextSeq;
    mic.pushAll(packets);
    await mic.drained();
    await waitFor(() => fromTimeline.length >= FRAMES, { message: `frames from the timeline: ${fromTimeline.length}` });
    // The live path forwards what arrives in time: on a loaded machine a stall of the relay's
    // event loop can make a few frames late (they are in the timeline, not forwarded live).
    await waitFor(() => fromRtp.length >= FRAMES, { timeoutMs: 3000 }).catch(() => undefined);

    // Every frame once, byte for byte (in arrival order: a frame the network lost and NACK
    // brought back is recorded when it arrives).
    expect(fromTimeline.map((f) => f.rtpSeq).sort((a, b) => a - b)).toEqual(Array.from({ length: FRAMES }, (_, i) => firstSeq + i));
    for (const f of fromTimeline) expect(Buffer.from(f.payload).toString('hex')).toBe(Buffer.from(packets[f.rtpSeq - firstSeq]!).toString('hex'));
    expect(fromTimeline.every((f) => f.from?.participant === 'alice' && f.track === 'mic' && f.durationMs === 20)).toBe(true);
    expect(fromRtp.length).toBeGreaterThanOrEqual(FRAMES * 0.8);
    for (const f of fromRtp) {
      const index = (f.rtpSeq - (firstSeq & 0xffff)) & 0xffff;
      expect(Buffer.from(f.payload).toString('hex')).toBe(Buffer.from(packets[index]!).toString('hex'));
    }

    // Decoded: the tone's frequency within ±1 % and its energy within ±1.5 dB of the original.
    const original = tone(RATE, HZ, MS).subarray((5 * RATE) / 50);
    for (const frames of [fromTimeline, fromRtp]) {
      const pcm = await decode(frames);
      expect(Math.abs(dominantHz(pcm, RATE) - HZ)).toBeLessThanOrEqual(HZ * 0.01);
      const db = 20 * Math.log10(rms(pcm) / rms(original));
      expect(Math.abs(db)).toBeLessThan(1.5);
    }
    viaTimeline.close();
    viaRtp.close();
    mic.close();
  });

  it('speech from espeak-ng reaches the agent with its loudness contour and energy', async () => {
    const rate = 24000;
    const speech = espeak('Hello, this is the relay. Every word you say reaches the agent.', rate);
    const encoder = new OpusEncoder(rate);
    const packets = encoder.encodeAll(speech);
    encoder.close();
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    const user = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(agent, user);
    const decoder = await PcmDecoder.create(rate);
    const decoded: Int16Array[] = [];
    const receiver = new AudioReceiver(agent, { from: 'user' });
    receiver.onPcm(decoder, (pcm) => decoded.push(pcm));
    const mic = new AudioPublisher(user);
    mic.pushAll(packets);
    await mic.drained();
    await waitFor(() => decoded.length === packets.length, { message: `decoded ${decoded.length} of ${packets.length}` });
    decoder.close();
    // Opus's decoder delay (a few ms) shifts the output: compare after aligning on the best lag.
    const original = envelope(speech, rate);
    const received = envelope(concat(decoded), rate);
    const best = Math.max(...[0, 1, 2].map((lag) => correlation(original, received.slice(lag))));
    expect(best).toBeGreaterThan(0.9);
    const db = 20 * Math.log10(rms(concat(decoded)) / rms(speech));
    expect(Math.abs(db)).toBeLessThan(2);
    receiver.close();
    mic.close();
  });
});
