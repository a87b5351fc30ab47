/**
 * Errors of the network simulator. Like the rest of Lifeline, each has a stable code that is never
 * reused; callers branch on `code`, never on message text.
 */
export const NETSIM_ERRORS = {
  /** The target (or listen address) is not an IPv4 loopback literal in 127.0.0.0/8. */
  NETSIM_ERR_NOT_LOOPBACK: 'netsim only talks to IPv4 loopback addresses (127.0.0.0/8)',
  /** A port, delay, rate, probability or limit is out of range or not a number. */
  NETSIM_ERR_BAD_OPTION: 'option is out of range',
  /** The proxy has been closed; it cannot be reconfigured or rebound. */
  NETSIM_ERR_CLOSED: 'proxy is closed',
} as const;

export type NetsimErrorCode = keyof typeof NETSIM_ERRORS;

export class NetsimError extends Error {
  override readonly name = 'NetsimError';
  readonly code: NetsimErrorCode;

  constructor(code: NetsimErrorCode, detail?: string) {
    super(detail ? `${NETSIM_ERRORS[code]}: ${detail}` : NETSIM_ERRORS[code]);
    this.code = code;
  }
}

export function isNetsimError(err: unknown, code?: NetsimErrorCode): err is NetsimError {
  return err instanceof NetsimError && (code === undefined || err.code === code);
}
