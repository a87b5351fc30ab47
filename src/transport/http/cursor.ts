/**
 * Stream cursors (Durable Streams §8): live responses carry a number that changes every interval,
 * so CDNs collapse requests of one interval into one and never serve a response twice to the same
 * client. When a client sends back a cursor that is not older than the current interval, the
 * answer moves strictly past it (plus jitter), so cursors never cycle.
 */
const INTERVAL_MS = 20_000;
const EPOCH_MS = Date.UTC(2024, 9, 9);

export function nextCursor(clientCursor: string | undefined, now = Date.now()): string {
  const current = Math.floor((now - EPOCH_MS) / INTERVAL_MS);
  const given = clientCursor !== undefined && /^\d{1,15}$/.test(clientCursor) ? Number(clientCursor) : undefined;
  if (given === undefined || given < current) return String(current);
  return String(given + 1 + Math.floor(Math.random() * 3));
}
