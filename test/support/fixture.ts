import { onTestFinished } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession, SessionOptions } from '../../src/sdk/index.js';
import { RawClient } from './raw-ws.js';
import type { RawOpenOptions } from './raw-ws.js';
import { startRelay, tempDir } from './relay.js';
import type { TestRelay } from './relay.js';
import type { RelayConfigInput } from '../../src/relay/index.js';

/**
 * Everything a test opened, closed when the test finishes (pass or fail) in reverse order of
 * opening: clients before the relay they talk to, the relay before its temp directory.
 */
export class Cleanup {
  readonly #steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.#steps.length > 0) {
      const step = this.#steps.pop()!;
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }

  relay(config: Partial<RelayConfigInput> = {}): Promise<TestRelay> {
    return startRelay(config).then((r) => {
      this.add(() => r.close());
      return r;
    });
  }

  /** A temporary directory, removed at the end. */
  dir(prefix?: string): string {
    const t = tempDir(prefix);
    this.add(t.remove);
    return t.dir;
  }

  async sdk(opts: Omit<SessionOptions, 'transport'> & { transport?: SessionOptions['transport'] }): Promise<LifelineSession> {
    const s = await connect(opts);
    this.add(() => s.close());
    return s;
  }

  async raw(baseUrl: string, sessionId: string, opts: RawOpenOptions = {}): Promise<RawClient> {
    const c = await RawClient.open(baseUrl, sessionId, opts);
    this.add(() => c.close());
    return c;
  }
}

/** A Cleanup bound to the running test. */
export function useCleanup(): Cleanup {
  const c = new Cleanup();
  onTestFinished(() => c.run());
  return c;
}
