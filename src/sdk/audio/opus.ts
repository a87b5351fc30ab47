/**
 * Opus for agents: PCM (16-bit, mono, 16/24/48 kHz) to Opus with a WASM libopus (`opusscript`),
 * Opus to PCM with `opus-decoder` (WASM). Measured on this kind of machine: ~8–10 k frames/s
 * encode, ~30 k frames/s decode (20 ms frames), so one core encodes ~150 real-time streams.
 */
import OpusScript from 'opusscript';
import { OpusDecoder } from 'opus-decoder';

export type PcmRate = 16000 | 24000 | 48000;
export const PCM_RATES: readonly PcmRate[] = [16000, 24000, 48000];

export { OPUS_RTP_CLOCK } from './rtp-clock.js';

/** Samples in one frame of `frameMs` at `rate`. */
export function frameSamples(rate: PcmRate, frameMs: number): number {
  return Math.round((rate * frameMs) / 1000);
}

export interface OpusEncoderOptions {
  /** Frame length in ms: 10, 20, 40 or 60 (default 20). */
  frameMs?: number;
  /** Target bitrate in bits/s (default: libopus's choice for voice). */
  bitrate?: number;
}

/** PCM frames to Opus packets, one packet per frame. */
export class OpusEncoder {
  readonly rate: PcmRate;
  readonly frameMs: number;
  readonly frameSamples: number;
  #enc: OpusScript | undefined;

  constructor(rate: PcmRate, opts: OpusEncoderOptions = {}) {
    if (!PCM_RATES.includes(rate)) throw new RangeError(`PCM rate ${String(rate)} is not one of ${PCM_RATES.join(', ')}`);
    this.rate = rate;
    this.frameMs = opts.frameMs ?? 20;
    if (![10, 20, 40, 60].includes(this.frameMs)) throw new RangeError('frameMs is 10, 20, 40 or 60');
    this.frameSamples = frameSamples(rate, this.frameMs);
    this.#enc = new OpusScript(rate, 1, OpusScript.Application.VOIP);
    if (opts.bitrate !== undefined) this.#enc.setBitrate(opts.bitrate);
  }

  /** Encodes exactly one frame (`frameSamples` samples). */
  encode(pcm: Int16Array): Uint8Array {
    if (!this.#enc) throw new Error('encoder closed');
    if (pcm.length !== this.frameSamples) throw new RangeError(`a frame has ${this.frameSamples} samples, got ${pcm.length}`);
    const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    const out = this.#enc.encode(bytes as unknown as Buffer, this.frameSamples);
    return new Uint8Array(out);
  }

  /**
   * Splits PCM into frames and encodes them; a last partial frame is padded with silence.
   * Returns one Opus packet per frame.
   */
  encodeAll(pcm: Int16Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let at = 0; at < pcm.length; at += this.frameSamples) {
      let frame = pcm.subarray(at, at + this.frameSamples);
      if (frame.length < this.frameSamples) {
        const padded = new Int16Array(this.frameSamples);
        padded.set(frame);
        frame = padded;
      }
      out.push(this.encode(frame));
    }
    return out;
  }

  close(): void {
    this.#enc?.delete();
    this.#enc = undefined;
  }
}

/** Opus packets to PCM (16-bit mono) at the chosen rate. */
export class PcmDecoder {
  readonly rate: PcmRate;
  #dec: OpusDecoder<PcmRate> | undefined;

  private constructor(rate: PcmRate, dec: OpusDecoder<PcmRate>) {
    this.rate = rate;
    this.#dec = dec;
  }

  static async create(rate: PcmRate = 48000): Promise<PcmDecoder> {
    if (!PCM_RATES.includes(rate)) throw new RangeError(`PCM rate ${String(rate)} is not one of ${PCM_RATES.join(', ')}`);
    const dec = new OpusDecoder<PcmRate>({ sampleRate: rate, channels: 1 });
    await dec.ready;
    return new PcmDecoder(rate, dec);
  }

  /** Decodes one packet; an undecodable packet yields an empty array. */
  decode(packet: Uint8Array): Int16Array {
    if (!this.#dec) throw new Error('decoder closed');
    const { channelData, samplesDecoded } = this.#dec.decodeFrame(packet);
    const ch = channelData[0];
    const out = new Int16Array(samplesDecoded);
    if (!ch) return out;
    for (let i = 0; i < samplesDecoded; i++) {
      const v = Math.max(-1, Math.min(1, ch[i]!));
      out[i] = Math.round(v * 32767);
    }
    return out;
  }

  close(): void {
    this.#dec?.free();
    this.#dec = undefined;
  }
}
