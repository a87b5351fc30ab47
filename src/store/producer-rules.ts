import type { ProducerRef, ProducerState } from '../protocol/index.js';

export type ProducerVerdict =
  | { action: 'accept' }
  | { action: 'duplicate' }
  | { action: 'reject'; code: 'STALE_EPOCH' | 'SEQUENCE_GAP' | 'BAD_EPOCH_START' };

/**
 * The idempotent-producer rules (as in Durable Streams): a producer's first append in an epoch has
 * seq 0 and each next one seq + 1; a seq already seen in the current epoch is a retry; an older
 * epoch is fenced off. Every backend applies exactly these rules inside its append transaction.
 */
export function judgeProducer(current: ProducerState | undefined, ref: ProducerRef): ProducerVerdict {
  if (!current || ref.epoch > current.epoch) {
    return ref.seq === 0 ? { action: 'accept' } : { action: 'reject', code: current ? 'BAD_EPOCH_START' : 'SEQUENCE_GAP' };
  }
  if (ref.epoch < current.epoch) return { action: 'reject', code: 'STALE_EPOCH' };
  if (ref.seq <= current.seq) return { action: 'duplicate' };
  if (ref.seq === current.seq + 1) return { action: 'accept' };
  return { action: 'reject', code: 'SEQUENCE_GAP' };
}
