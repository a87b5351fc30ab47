/**
 * Every error that crosses the wire has a stable code from this table. Codes are never reused or
 * renamed; each maps to one HTTP status and one WebSocket close code. Map errors by code, never by
 * message text.
 */
export const ERROR_CODES = {
  BAD_FRAME: { status: 400, close: 4400, message: 'frame is malformed or fails validation' },
  UNKNOWN_FRAME: { status: 400, close: 4400, message: 'unknown frame type' },
  BAD_REQUEST: { status: 400, close: 4400, message: 'request is malformed or fails validation' },
  HELLO_REQUIRED: { status: 400, close: 4400, message: 'the first frame must be hello' },
  PAYLOAD_TOO_LARGE: { status: 413, close: 4413, message: 'frame exceeds the size limit' },
  UNAUTHORIZED: { status: 401, close: 4401, message: 'missing or invalid token' },
  TOKEN_EXPIRED: { status: 401, close: 4401, message: 'token has expired' },
  FORBIDDEN: { status: 403, close: 4403, message: 'token does not grant this' },
  SESSION_NOT_FOUND: { status: 404, close: 4404, message: 'no such session' },
  SESSION_EXISTS: { status: 409, close: 4409, message: 'session already exists' },
  SESSION_EXPIRED: { status: 410, close: 4410, message: 'session has expired' },
  OFFSET_OUT_OF_RANGE: { status: 400, close: 4416, message: 'offset is not in this timeline' },
  STALE_EPOCH: { status: 403, close: 4403, message: 'producer epoch is older than the current one' },
  SEQUENCE_GAP: { status: 409, close: 4409, message: 'producer sequence skips a number' },
  BAD_EPOCH_START: { status: 400, close: 4400, message: 'a new producer epoch must start at seq 0' },
  OUTBOX_FULL: { status: 503, close: 4503, message: 'too many appends waiting for acknowledgement' },
  CONNECTION_CLOSED: { status: 503, close: 4503, message: 'connection closed' },
  SHUTTING_DOWN: { status: 503, close: 4503, message: 'relay is shutting down' },
  NOT_FOUND: { status: 404, close: 4404, message: 'no such route' },
  LEASE_HELD: { status: 409, close: 4409, message: 'another agent holds this role' },
  NOT_LEASE_HOLDER: { status: 403, close: 4403, message: 'this connection does not hold that lease' },
  CONNECTION_NOT_FOUND: { status: 404, close: 4404, message: 'no such connection' },
  BAD_SDP: { status: 400, close: 4400, message: 'SDP offer is malformed or unusable' },
  STREAM_CLOSED: { status: 409, close: 4409, message: 'the stream is closed; nothing more can be appended' },
  STREAM_SEQ_CONFLICT: { status: 409, close: 4409, message: 'Stream-Seq does not sort after the last one' },
  CONTENT_TYPE_MISMATCH: { status: 409, close: 4409, message: 'content type or configuration differs from the stream' },
  SESSION_GONE: { status: 410, close: 4410, message: 'session was deleted; forks still name it' },
  INTERNAL: { status: 500, close: 4500, message: 'internal error' },
} as const satisfies Record<string, { status: number; close: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** The one error type of Lifeline: a stable code, a message, optional structured detail. */
export class LifelineError extends Error {
  override readonly name = 'LifelineError';
  readonly code: ErrorCode;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, detail?: Record<string, unknown>) {
    super(message ?? ERROR_CODES[code].message);
    this.code = code;
    this.detail = detail;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get closeCode(): number {
    return ERROR_CODES[this.code].close;
  }
}

export function isLifelineError(err: unknown): err is LifelineError {
  return err instanceof LifelineError;
}
