import { describe, expect, it } from 'vitest';
import type { ProducerState } from '../../src/protocol/index.js';
import { judgeProducer } from '../../src/store/index.js';
import type { ProducerVerdict } from '../../src/store/index.js';

const state = (epoch: number, seq: number): ProducerState => ({ id: 'p', epoch, seq });
const accept: ProducerVerdict = { action: 'accept' };
const duplicate: ProducerVerdict = { action: 'duplicate' };
const reject = (code: 'STALE_EPOCH' | 'SEQUENCE_GAP' | 'BAD_EPOCH_START'): ProducerVerdict => ({ action: 'reject', code });

// [description, current state, incoming epoch, incoming seq, verdict]
const TABLE: [string, ProducerState | undefined, number, number, ProducerVerdict][] = [
  ['new producer, seq 0', undefined, 0, 0, accept],
  ['new producer, any epoch at seq 0', undefined, 9, 0, accept],
  ['new producer, seq 1', undefined, 0, 1, reject('SEQUENCE_GAP')],
  ['new producer, high epoch, seq 5', undefined, 3, 5, reject('SEQUENCE_GAP')],
  ['next seq', state(0, 0), 0, 1, accept],
  ['next seq, later', state(2, 41), 2, 42, accept],
  ['same seq (retry)', state(0, 0), 0, 0, duplicate],
  ['older seq (retry)', state(1, 10), 1, 3, duplicate],
  ['seq 0 retry late in the epoch', state(1, 10), 1, 0, duplicate],
  ['skips one', state(0, 0), 0, 2, reject('SEQUENCE_GAP')],
  ['skips many', state(1, 5), 1, 100, reject('SEQUENCE_GAP')],
  ['new epoch at seq 0', state(0, 7), 1, 0, accept],
  ['new epoch jumping ahead at seq 0', state(1, 7), 50, 0, accept],
  ['new epoch at seq 1', state(0, 7), 1, 1, reject('BAD_EPOCH_START')],
  ['new epoch continuing the old seq', state(0, 7), 1, 8, reject('BAD_EPOCH_START')],
  ['older epoch, seq 0', state(2, 0), 1, 0, reject('STALE_EPOCH')],
  ['older epoch, next seq', state(2, 3), 1, 4, reject('STALE_EPOCH')],
  ['much older epoch, old seq', state(5, 3), 0, 1, reject('STALE_EPOCH')],
];

describe('judgeProducer', () => {
  it.each(TABLE)('%s', (_name, current, epoch, seq, verdict) => {
    expect(judgeProducer(current, { id: 'p', epoch, seq })).toEqual(verdict);
  });

  it('never mutates the current state', () => {
    const current = state(1, 1);
    judgeProducer(current, { id: 'p', epoch: 2, seq: 0 });
    judgeProducer(current, { id: 'p', epoch: 1, seq: 2 });
    expect(current).toEqual(state(1, 1));
  });
});
