import { connect } from '../../src/sdk/index.js';
import type { ClientTransport, LifelineSession } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { OpusEncoder } from '../../src/sdk/audio/opus.js';
import type { PcmRate } from '../../src/sdk/audio/opus.js';
import { afterEach, beforeEach } from 'vitest';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { LOOPBACK } from '../support/rtc.js';

/** A sine tone, 16-bit mono PCM. */
export function tone(rate: number, hz: number, ms: number, amplitude = 0.3): Int16Array {
  const n = Math.round((rate * ms) / 1000);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * hz * i) / rate));
  return out;
}

/** Opus packets (20 ms each) of a tone. */
export function opusTone(rate: PcmRate, hz: number, ms: number, amplitude = 0.3): Uint8Array[] {
  const enc = new OpusEncoder(rate);
  try {
    return enc.encodeAll(tone(rate, hz, ms, amplitude));
  } finally {
    enc.close();
  }
}

/** Root mean square of 16-bit samples, in [0, 1]. */
export function rms(pcm: Int16Array): number {
  let sum = 0;
  for (const v of pcm) sum += (v / 32768) ** 2;
  return Math.sqrt(sum / Math.max(1, pcm.length));
}

/** Power of one frequency (Goertzel), normalised per sample. */
export function goertzel(pcm: Int16Array, rate: number, hz: number): number {
  const k = (2 * Math.PI * hz) / rate;
  const coeff = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (const v of pcm) {
    const s0 = v / 32768 + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (pcm.length * pcm.length);
}

/** The strongest frequency between lo and hi (Hz), scanned in 1 Hz steps. */
export function dominantHz(pcm: Int16Array, rate: number, lo = 100, hi = 2000): number {
  let best = lo;
  let bestPower = -1;
  for (let hz = lo; hz <= hi; hz++) {
    const p = goertzel(pcm, rate, hz);
    if (p > bestPower) {
      bestPower = p;
      best = hz;
    }
  }
  return best;
}

export function concat(chunks: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export async function rtcSession(
  r: TestRelay,
  sid: string,
  participant: string,
  role: 'user' | 'agent',
  opts: { transport?: ClientTransport; device?: string; resume?: string } = {},
): Promise<LifelineSession> {
  return connect({
    url: r.url,
    token: await r.token(sid, participant, role),
    transport: opts.transport ?? webrtcTransport({ iceHosts: LOOPBACK }),
    ...(opts.device ? { device: opts.device } : {}),
    ...(opts.resume ? { resume: opts.resume } : {}),
  });
}

/** What the audio suites share per test: an in-process relay (ICE on loopback) and one session. */
export interface RtcRelayFixture {
  readonly r: TestRelay;
  readonly sid: string;
  /** Client sessions to close after the test. */
  readonly sessions: LifelineSession[];
}

/**
 * Registers, in the calling describe block, a fresh relay and session before each test and their
 * clean-up after it (the sessions pushed to `sessions` are closed, then the relay). `extra` runs
 * right after the relay is up, its returned function right before the relay closes.
 */
export function rtcRelayPerTest(extra?: () => () => Promise<void>): RtcRelayFixture {
  const fx = { r: undefined as unknown as TestRelay, sid: '', sessions: [] as LifelineSession[] };
  let undo: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    fx.r = await startRelay({ rtcIceHosts: LOOPBACK });
    fx.sid = await fx.r.createSession();
    undo = extra?.();
  });
  afterEach(async () => {
    for (const s of fx.sessions.splice(0)) s.close();
    await undo?.();
    await fx.r.close();
  });
  return fx;
}
