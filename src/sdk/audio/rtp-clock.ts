/** Opus carries a 48 kHz RTP clock whatever the PCM rate (RFC 7587). */
export const OPUS_RTP_CLOCK = 48_000;

/** RTP timestamp ticks of `ms` of Opus audio. */
export function opusTicks(ms: number): number {
  return Math.round((ms * OPUS_RTP_CLOCK) / 1000);
}
