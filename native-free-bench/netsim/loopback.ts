/**
 * Address checks. netsim is a test harness: it listens on 127.0.0.1 and forwards only to IPv4
 * loopback literals, so a misconfigured benchmark can never spray traffic at a real network.
 * Hostnames are refused too (no DNS: `localhost` may well resolve to ::1).
 */
import { NetsimError } from './errors.js';

/** Where a proxy forwards to. */
export interface Target {
  host: string;
  port: number;
}

/** Every proxy listens here. */
export const LOOPBACK = '127.0.0.1';

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isLoopbackIPv4(host: string): boolean {
  const m = IPV4.exec(host);
  if (!m) return false;
  const octets = m.slice(1).map(Number);
  return octets[0] === 127 && octets.every((o) => o <= 255);
}

export function checkPort(port: unknown, what: string, allowZero: boolean): number {
  const min = allowZero ? 0 : 1;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    throw new NetsimError('NETSIM_ERR_BAD_OPTION', `${what} must be an integer in ${min}..65535, got ${String(port)}`);
  }
  return port;
}

/** Validates a target and returns a frozen copy; throws NETSIM_ERR_NOT_LOOPBACK for anything else. */
export function checkTarget(target: Target): Readonly<Target> {
  if (typeof target !== 'object' || target === null) {
    throw new NetsimError('NETSIM_ERR_BAD_OPTION', 'target must be { host, port }');
  }
  if (typeof target.host !== 'string' || !isLoopbackIPv4(target.host)) {
    throw new NetsimError('NETSIM_ERR_NOT_LOOPBACK', `refusing target host ${JSON.stringify(target.host)}`);
  }
  return Object.freeze({ host: target.host, port: checkPort(target.port, 'target port', false) });
}
