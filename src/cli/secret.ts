import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The secret for a relay started without one: for a SQLite store, kept beside the database
 * (mode 0600) so tokens stay valid across restarts; for memory, a fresh random one.
 */
export function defaultSecret(store: string): { secret: string; source: string } {
  if (!store.startsWith('sqlite:')) return { secret: randomBytes(24).toString('base64url'), source: 'generated for this run' };
  const file = join(dirname(resolve(store.slice('sqlite:'.length))), 'secret');
  if (existsSync(file)) return { secret: readFileSync(file, 'utf8').trim(), source: file };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return { secret: readFileSync(file, 'utf8').trim(), source: `${file} (new)` };
}
