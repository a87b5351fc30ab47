import { readFileSync } from 'node:fs';

/**
 * The kernel's count of UDP datagrams dropped because a socket's receive buffer was full
 * (`Udp: RcvbufErrors` in /proc/net/snmp), or undefined where there is no such file (not Linux).
 * System-wide: other processes' drops count too, so it is a diagnostic, not a measurement. werift
 * uses the default socket buffer (net.core.rmem_default, typically 208 KiB) and recovers a dropped
 * SCTP chunk slowly, so a rise here explains stalls on WebRTC paths.
 */
export function udpReceiveBufferErrors(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    if (lines.length < 2) return undefined;
    const names = lines[0]!.trim().split(/\s+/);
    const values = lines[1]!.trim().split(/\s+/);
    const i = names.indexOf('RcvbufErrors');
    const n = i > 0 ? Number(values[i]) : NaN;
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `fn` and returns its result with the rise of `udpReceiveBufferErrors()` meanwhile. */
export async function countingUdpDrops<T>(fn: () => Promise<T>): Promise<{ result: T; udpDrops: number | undefined }> {
  const before = udpReceiveBufferErrors();
  const result = await fn();
  const after = udpReceiveBufferErrors();
  return { result, udpDrops: before !== undefined && after !== undefined ? after - before : undefined };
}
