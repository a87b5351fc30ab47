import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERROR_CODE_LIST, LifelineError, isErrorCode, isLifelineError } from '../../src/protocol/index.js';

describe('error codes', () => {
  it('lists every code exactly once', () => {
    expect(ERROR_CODE_LIST).toEqual(Object.keys(ERROR_CODES));
    expect(new Set(ERROR_CODE_LIST).size).toBe(ERROR_CODE_LIST.length);
    expect(ERROR_CODE_LIST.length).toBeGreaterThan(0);
  });

  it.each(ERROR_CODE_LIST)('%s has an HTTP status, a WebSocket close code and a message', (code) => {
    const { status, close, message } = ERROR_CODES[code];
    expect(Number.isInteger(status)).toBe(true);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(600);
    // Application close codes live in 4000–4999.
    expect(Number.isInteger(close)).toBe(true);
    expect(close).toBeGreaterThanOrEqual(4000);
    expect(close).toBeLessThanOrEqual(4999);
    expect(message.length).toBeGreaterThan(0);
    expect(code).toMatch(/^[A-Z_]+$/);
  });

  it('pins the codes the rest of the system relies on', () => {
    expect(ERROR_CODES.BAD_FRAME.status).toBe(400);
    expect(ERROR_CODES.UNAUTHORIZED.status).toBe(401);
    expect(ERROR_CODES.TOKEN_EXPIRED.status).toBe(401);
    expect(ERROR_CODES.SESSION_NOT_FOUND).toMatchObject({ status: 404, close: 4404 });
    expect(ERROR_CODES.SESSION_EXISTS.status).toBe(409);
    expect(ERROR_CODES.STALE_EPOCH.status).toBe(403);
    expect(ERROR_CODES.SEQUENCE_GAP.status).toBe(409);
    expect(ERROR_CODES.INTERNAL).toMatchObject({ status: 500, close: 4500 });
  });

  it('isErrorCode accepts exactly the table keys', () => {
    for (const code of ERROR_CODE_LIST) expect(isErrorCode(code)).toBe(true);
    for (const s of ['', 'bad_frame', 'NOPE', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'BAD_FRAME ']) {
      expect(isErrorCode(s), s).toBe(false);
    }
  });
});

describe('LifelineError', () => {
  it('carries code, status, close code, default message and detail', () => {
    const err = new LifelineError('SEQUENCE_GAP', undefined, { expected: 3 });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('LifelineError');
    expect(err.code).toBe('SEQUENCE_GAP');
    expect(err.status).toBe(409);
    expect(err.closeCode).toBe(4409);
    expect(err.message).toBe(ERROR_CODES.SEQUENCE_GAP.message);
    expect(err.detail).toEqual({ expected: 3 });
    expect(isLifelineError(err)).toBe(true);
  });

  it('keeps a custom message; detail is optional', () => {
    const err = new LifelineError('BAD_REQUEST', 'nope');
    expect(err.message).toBe('nope');
    expect(err.detail).toBeUndefined();
    expect(isLifelineError(new Error('x'))).toBe(false);
    expect(isLifelineError({ code: 'BAD_REQUEST' })).toBe(false);
  });

  it.each(ERROR_CODE_LIST)('maps %s to the table', (code) => {
    const err = new LifelineError(code);
    expect(err.status).toBe(ERROR_CODES[code].status);
    expect(err.closeCode).toBe(ERROR_CODES[code].close);
  });
});
