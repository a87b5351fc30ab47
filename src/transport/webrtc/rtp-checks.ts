/**
 * Checks on incoming RTP before the relay forwards or records it. Pure functions: no werift,
 * no timeline.
 */

/** Why a packet was dropped (the `reason` label of lifeline_rtp_dropped_total). */
export type RtpDropReason =
  | 'unknown-payload-type'
  | 'unsupported-codec'
  | 'oversized'
  | 'malformed'
  | 'duplicate'
  | 'too-old'
  | 'no-origin';

/** Opus frame durations in ms by TOC configuration number (RFC 6716 §3.1). */
function opusFrameMs(config: number): number {
  if (config < 12) return [10, 20, 40, 60][config % 4]!;
  if (config < 16) return [10, 20][config % 2]!;
  return [2.5, 5, 10, 20][config % 4]!;
}

/**
 * Validates an Opus packet's framing (RFC 6716 §3.4, rules R1–R7 as far as the TOC and frame
 * count go) and returns its duration in ms, or undefined when it is not a valid Opus packet.
 */
export function opusPacketDurationMs(p: Uint8Array): number | undefined {
  if (p.length < 1) return undefined;
  const toc = p[0]!;
  const frameMs = opusFrameMs(toc >> 3);
  const code = toc & 0x03;
  const rest = p.length - 1;
  switch (code) {
    case 0:
      return rest <= 1275 ? frameMs : undefined;
    case 1:
      return rest % 2 === 0 && rest / 2 <= 1275 ? 2 * frameMs : undefined;
    case 2: {
      if (p.length < 2) return undefined;
      const b1 = p[1]!;
      const lenBytes = b1 >= 252 ? 2 : 1;
      if (p.length < 1 + lenBytes) return undefined;
      const n1 = b1 >= 252 ? b1 + 4 * p[2]! : b1;
      const n2 = rest - lenBytes - n1;
      return n1 <= 1275 && n2 >= 0 && n2 <= 1275 ? 2 * frameMs : undefined;
    }
    default: {
      if (p.length < 2) return undefined;
      const frames = p[1]! & 0x3f;
      if (frames < 1 || frames * frameMs > 120) return undefined;
      return frames * frameMs;
    }
  }
}

/** Sequence numbers remembered per source for duplicate detection (≈ 40 s of 20 ms frames). */
export const SEQUENCE_WINDOW = 2048;

export type SequenceVerdict =
  | { ok: true; extended: number; late: boolean }
  | { ok: false; reason: 'duplicate' | 'too-old' };

/**
 * One source's RTP sequence numbers: extends the 16-bit numbers to a counter that never wraps,
 * refuses numbers already seen (retransmissions, a client's resend after a blip) and numbers
 * older than the window, and calls a packet `late` when a newer one has already arrived.
 */
export class SequenceTracker {
  #highest: number | undefined;
  readonly #seen = new Float64Array(SEQUENCE_WINDOW).fill(-1);

  /** The highest extended sequence number seen, if any. */
  get highest(): number | undefined {
    return this.#highest;
  }

  /** Extends a 16-bit sequence number to the value nearest the highest one seen. */
  extend(seq: number): number {
    const h = this.#highest;
    if (h === undefined) return seq;
    let ext = (h - (h & 0xffff)) + seq;
    if (ext - h > 32768) ext -= 65536;
    else if (h - ext > 32768) ext += 65536;
    return ext;
  }

  accept(seq: number): SequenceVerdict {
    const ext = this.extend(seq);
    const h = this.#highest;
    if (ext < 0 || (h !== undefined && h - ext >= SEQUENCE_WINDOW)) return { ok: false, reason: 'too-old' };
    const slot = ext % SEQUENCE_WINDOW;
    if (this.#seen[slot] === ext) return { ok: false, reason: 'duplicate' };
    this.#seen[slot] = ext;
    const late = h !== undefined && ext < h;
    if (h === undefined || ext > h) this.#highest = ext;
    return { ok: true, extended: ext, late };
  }
}

/** Packets per block of the sliding minimum (the reference spans the last 64–128 on-time packets). */
const CLOCK_BLOCK = 64;
/** Late packets in a row, all delayed alike, after which their delay is the new normal. */
const SHIFT_AFTER = 128;

/**
 * How late packets of one source arrive, from their RTP timestamps: the offset between arrival
 * time and media time is smallest for packets that came straight through. The reference is the
 * smallest offset among the last 64–128 on-time packets (a sliding minimum, so slow clock drift
 * and small changes of delay are followed); a packet is `late` when its offset exceeds the
 * reference by more than `lateAfterMs`.
 *
 * A burst after a blip — frames held by the client, sent at once — arrives with offsets spread
 * over the length of the outage (the oldest frame the most delayed): late, every one. A lasting
 * change of delay (a slower path, a busy relay) makes every packet late by about the same
 * amount: after 128 such packets in a row, that delay becomes the new reference.
 */
export class ArrivalClock {
  readonly #lateAfterMs: number;
  #refRaw: number | undefined;
  #refExt = 0;
  #prevBlockMin = Infinity;
  #blockMin = Infinity;
  #inBlock = 0;
  #lateRun = { count: 0, min: Infinity, max: -Infinity };

  constructor(lateAfterMs = 200) {
    this.#lateAfterMs = lateAfterMs;
  }

  /** Milliseconds this packet arrived after the earliest arrival its timestamp allows. */
  judge(timestamp: number, clockRate: number, nowMs: number): { lateMs: number; late: boolean } {
    const raw = timestamp >>> 0;
    if (this.#refRaw === undefined) {
      this.#refRaw = raw;
      this.#refExt = raw;
    }
    // Timestamps are extended around the newest seen, so they survive the 2^32 wrap.
    const ext = this.#refExt + ((raw - this.#refRaw) | 0);
    if (ext > this.#refExt) {
      this.#refExt = ext;
      this.#refRaw = raw;
    }
    const offset = nowMs - (ext / clockRate) * 1000;
    const reference = Math.min(this.#prevBlockMin, this.#blockMin);
    const lateMs = reference === Infinity ? 0 : offset - reference;
    const late = lateMs > this.#lateAfterMs;
    if (late) {
      const run = this.#lateRun;
      run.count++;
      run.min = Math.min(run.min, offset);
      run.max = Math.max(run.max, offset);
      if (run.count >= SHIFT_AFTER && run.max - run.min < this.#lateAfterMs / 2) {
        this.#prevBlockMin = run.min;
        this.#blockMin = Infinity;
        this.#inBlock = 0;
        this.#lateRun = { count: 0, min: Infinity, max: -Infinity };
      }
      return { lateMs, late };
    }
    this.#lateRun = { count: 0, min: Infinity, max: -Infinity };
    this.#blockMin = Math.min(this.#blockMin, offset);
    if (++this.#inBlock === CLOCK_BLOCK) {
      this.#prevBlockMin = this.#blockMin;
      this.#blockMin = Infinity;
      this.#inBlock = 0;
    }
    return { lateMs: Math.max(0, lateMs), late };
  }
}
