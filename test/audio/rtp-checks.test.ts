import { describe, expect, it } from 'vitest';
import { ArrivalClock, SEQUENCE_WINDOW, SequenceTracker, opusPacketDurationMs } from '../../src/transport/webrtc/rtp-checks.js';
import { opusTone } from './helpers.js';

describe('Opus framing check', () => {
  it('accepts what libopus produces, at every PCM rate, with the right duration', () => {
    for (const rate of [16000, 24000, 48000] as const) {
      for (const p of opusTone(rate, 440, 200)) expect(opusPacketDurationMs(p)).toBe(20);
    }
  });

  it('refuses packets that break RFC 6716 §3.4', () => {
    expect(opusPacketDurationMs(new Uint8Array(0))).toBeUndefined(); // R1: empty
    expect(opusPacketDurationMs(new Uint8Array(1 + 1276).fill(0))).toBeUndefined(); // code 0 over 1275 bytes
    expect(opusPacketDurationMs(new Uint8Array([0x01, 0xaa]))).toBeUndefined(); // code 1, odd remainder
    expect(opusPacketDurationMs(new Uint8Array([0x02]))).toBeUndefined(); // code 2 without a length
    expect(opusPacketDurationMs(new Uint8Array([0x02, 0x05, 0x01]))).toBeUndefined(); // code 2, first frame overruns
    expect(opusPacketDurationMs(new Uint8Array([0x03, 0x00]))).toBeUndefined(); // code 3, zero frames
    expect(opusPacketDurationMs(new Uint8Array([0xfb, 0x07]))).toBeUndefined(); // code 3, 7 × 20 ms > 120 ms
    expect(opusPacketDurationMs(new Uint8Array([0xfb, 0x06, 0, 0]))).toBe(120); // code 3, 6 × 20 ms
    expect(opusPacketDurationMs(new Uint8Array([0xf9, 1, 2]))).toBe(40); // code 1, two 20 ms frames
  });
});

describe('SequenceTracker', () => {
  it('extends across the 16-bit wrap, refuses duplicates and numbers older than the window, marks late ones', () => {
    const t = new SequenceTracker();
    expect(t.accept(65534)).toEqual({ ok: true, extended: 65534, late: false });
    expect(t.accept(65535)).toEqual({ ok: true, extended: 65535, late: false });
    expect(t.accept(1)).toEqual({ ok: true, extended: 65537, late: false });
    expect(t.accept(0)).toEqual({ ok: true, extended: 65536, late: true });
    expect(t.accept(0)).toEqual({ ok: false, reason: 'duplicate' });
    expect(t.accept(65535)).toEqual({ ok: false, reason: 'duplicate' });
    for (let s = 2; s < 2 + SEQUENCE_WINDOW; s++) expect(t.accept(s).ok).toBe(true);
    expect(t.accept(1)).toEqual({ ok: false, reason: 'too-old' });
  });
});

describe('ArrivalClock', () => {
  it('calls a packet late when it arrives later than its timestamp allows, and follows on-time packets', () => {
    const c = new ArrivalClock(200);
    let now = 1000;
    for (let k = 0; k < 50; k++, now += 20) expect(c.judge(k * 960, 48000, now + (k % 3))).toMatchObject({ late: false });
    // 50 frames held for 1 s (a blip), then delivered at once: the oldest are late.
    const burst = Array.from({ length: 50 }, (_, i) => c.judge((50 + i) * 960, 48000, now + 1000).late);
    expect(burst.slice(0, 35).every(Boolean)).toBe(true);
    expect(burst.at(-1)).toBe(false);
    // A long blip: 300 frames (6 s) delivered at once are all late but the last few, however many.
    const long = new ArrivalClock(200);
    for (let k = 0; k < 50; k++) long.judge(k * 960, 48000, k * 20);
    const held = Array.from({ length: 300 }, (_, i) => long.judge((50 + i) * 960, 48000, 7000).late);
    expect(held.slice(0, 285).every(Boolean)).toBe(true);
    // A lasting extra delay (a slower path) becomes the new normal within 128 packets.
    const d = new ArrivalClock(200);
    let t = 0;
    for (let k = 0; k < 50; k++, t += 20) d.judge(k * 960, 48000, t);
    const after = Array.from({ length: 200 }, (_, i) => d.judge((50 + i) * 960, 48000, t + i * 20 + 300).late);
    expect(after[0]).toBe(true);
    expect(after.slice(128).some(Boolean)).toBe(false);
    // Timestamps wrap around 2^32 without a false alarm.
    const w = new ArrivalClock(200);
    expect(w.judge(0xffffff00, 48000, 0).late).toBe(false);
    expect(w.judge(0x00000100, 48000, 10).late).toBe(false);
  });
});
