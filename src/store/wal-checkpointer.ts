import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export interface WalCheckpointerOptions {
  /** How often the background connection checkpoints the WAL (ms). */
  intervalMs: number;
  /** The writer's `synchronous` level: the checkpoint syncs the same way. */
  synchronous: 'FULL' | 'NORMAL';
  /** The worker failed or exited before close(); the writer must checkpoint for itself again. */
  onFailure: (err: Error) => void;
}

/** What one background checkpoint did, as SQLite reports it. */
export interface CheckpointResult {
  /** WAL frames at the time of the checkpoint. */
  log: number;
  /** Frames copied into the database file so far. */
  checkpointed: number;
  /** Time the checkpoint took in the worker (ms). */
  ms: number;
}

/**
 * The worker's code, run as a CommonJS script (`eval`). It opens its own connection to the file
 * and runs PASSIVE checkpoints on a timer: they copy committed WAL frames into the database file
 * and fsync it without taking the write lock, so the writer on the main thread never waits for
 * one. The WAL is reused from its start once a checkpoint has copied all of it.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('synchronous = ' + workerData.synchronous);
const run = () => {
  const started = performance.now();
  const row = db.pragma('wal_checkpoint(PASSIVE)')[0];
  if (row.log > 0 || row.checkpointed > 0) {
    parentPort.postMessage({ log: row.log, checkpointed: row.checkpointed, ms: performance.now() - started });
  }
};
const timer = setInterval(run, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  try { run(); } finally { db.close(); parentPort.close(); }
});
`;

/**
 * Runs the WAL checkpoints of a SQLite file on a worker thread. In WAL mode SQLite checkpoints
 * inside the COMMIT that crosses `wal_autocheckpoint` pages, on the writer's thread: with
 * `synchronous=NORMAL` that stalled the relay's event loop for 4–6 ms about once a second at 500
 * commits/s. The writer sets `wal_autocheckpoint = 0` and this worker does the work instead.
 */
export class WalCheckpointer {
  readonly #worker: Worker;
  #closing = false;
  #closed: Promise<void>;
  #count = 0;
  #last: CheckpointResult | undefined;

  constructor(path: string, opts: WalCheckpointerOptions) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, path, intervalMs: opts.intervalMs, synchronous: opts.synchronous },
    });
    this.#worker.unref();
    this.#worker.on('message', (result: CheckpointResult) => {
      this.#count++;
      this.#last = result;
    });
    let failed = false;
    const fail = (err: Error): void => {
      if (failed || this.#closing) return;
      failed = true;
      opts.onFailure(err);
    };
    this.#worker.on('error', fail);
    this.#closed = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        fail(new Error(`WAL checkpoint worker exited with code ${code}`));
        resolve();
      });
    });
  }

  /** Checkpoints that found frames to copy, since start. */
  get checkpoints(): number {
    return this.#count;
  }

  get lastCheckpoint(): CheckpointResult | undefined {
    return this.#last;
  }

  /** The worker's thread id (for tests that check it is gone). */
  get threadId(): number {
    return this.#worker.threadId;
  }

  /** Runs a last checkpoint, closes the worker's connection and waits for the thread to end. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#worker.postMessage('close');
    }
    return this.#closed;
  }

  /** Ends the thread at once, as a crash would (tests of the fallback). */
  async kill(): Promise<void> {
    await this.#worker.terminate();
  }
}
