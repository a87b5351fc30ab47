import { LifelineError } from '../protocol/index.js';
import { MemoryStore } from './memory-store.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /** SQLite's fsync policy (default `normal`, see SqliteStoreOptions.synchronous). */
  sqliteSynchronous?: 'full' | 'normal';
  /** Background WAL checkpoint (and fsync) period, ms (default 200). */
  sqliteCheckpointMs?: number;
  /** SQLite's background WAL checkpointer failed; the store checkpoints inline from then on. */
  onSqliteCheckpointFailure?: (err: Error) => void;
  /**
   * The previous run may have lost its last appends (it never closed and the machine restarted
   * since); every timeline skipped RECOVERY_SEQ_SKIP offsets.
   */
  onSqliteRecovery?: (skipped: number) => void;
}

/**
 * The one way to get a Store: `memory`, `sqlite:PATH` or `nats://host:port[,host:port…]`. The SQLite backend (a native module) is
 * loaded only when asked for, so memory-only users stay native-free.
 */
export async function openStore(spec: string, opts: OpenStoreOptions = {}): Promise<Store> {
  if (spec === 'memory') return new MemoryStore();
  if (spec.startsWith('sqlite:')) {
    const path = spec.slice('sqlite:'.length);
    if (!path) throw new LifelineError('BAD_REQUEST', 'sqlite store needs a path: sqlite:PATH');
    const { SqliteStore, RECOVERY_SEQ_SKIP } = await import('./sqlite-store.js');
    const store = new SqliteStore(path, {
      synchronous: opts.sqliteSynchronous ?? 'normal',
      ...(opts.sqliteCheckpointMs !== undefined ? { checkpointIntervalMs: opts.sqliteCheckpointMs } : {}),
      ...(opts.onSqliteCheckpointFailure ? { onCheckpointFailure: opts.onSqliteCheckpointFailure } : {}),
    });
    if (store.recoveredFromPossibleLoss) opts.onSqliteRecovery?.(RECOVERY_SEQ_SKIP);
    return store;
  }
  if (spec.startsWith('nats://')) {
    const { NatsStore, parseNatsSpec } = await import('./nats/index.js');
    return NatsStore.open(parseNatsSpec(spec));
  }
  throw new LifelineError('BAD_REQUEST', `unknown store "${spec}" (use memory, sqlite:PATH or nats://host:port[,host:port…])`);
}
