import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

/**
 * A WebSocket client written straight onto TCP, for the one thing `ws` cannot do: put frames in
 * the same write as the upgrade request, so they reach the relay before it has even looked at
 * the token. Text frames only; the relay's text messages and its close code are collected.
 */
export interface TcpWsClient {
  socket: Socket;
  /** Text messages received, in order. */
  messages: string[];
  /** Resolves once the upgrade was answered with 101. */
  upgraded: Promise<void>;
  /** Resolves with the close code of the relay's close frame (or 1006 if the TCP closed without one). */
  closed: Promise<number>;
  /** Resolves when a message satisfying `match` has arrived. */
  waitFor(match: (message: string) => boolean, timeoutMs?: number): Promise<string>;
  destroy(): void;
}

function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + 4);
  head[0] = 0x80 | opcode;
  if (ext === 0) head[1] = 0x80 | len;
  else if (ext === 2) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = randomBytes(4);
  mask.copy(head, 2 + ext);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i & 3]!;
  return Buffer.concat([head, body]);
}

export function openWithFrames(baseUrl: string, path: string, headers: Record<string, string>, texts: string[]): TcpWsClient {
  const url = new URL(baseUrl);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  const messages: string[] = [];
  const listeners = new Set<() => void>();
  let buffer = Buffer.alloc(0);
  let gotHeaders = false;
  let resolveUpgraded!: () => void;
  let rejectUpgraded!: (err: Error) => void;
  const upgraded = new Promise<void>((resolve, reject) => {
    resolveUpgraded = resolve;
    rejectUpgraded = reject;
  });
  upgraded.catch(() => {});
  let closeCode: number | undefined;
  let resolveClosed!: (code: number) => void;
  const closed = new Promise<number>((resolve) => (resolveClosed = resolve));

  const parse = (): void => {
    if (!gotHeaders) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = buffer.subarray(0, buffer.indexOf('\r\n')).toString();
      buffer = buffer.subarray(end + 4);
      gotHeaders = true;
      if (!/^HTTP\/1\.1 101/.test(status)) {
        rejectUpgraded(new Error(`upgrade refused: ${status}`));
        return;
      }
      resolveUpgraded();
    }
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0]! & 0x0f;
      let len = buffer[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buffer.length < 4) return;
        len = buffer.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buffer.length < 10) return;
        len = Number(buffer.readBigUInt64BE(2));
        at = 10;
      }
      if (buffer.length < at + len) return;
      const payload = buffer.subarray(at, at + len);
      buffer = buffer.subarray(at + len);
      if (opcode === 0x1) messages.push(payload.toString('utf8'));
      else if (opcode === 0x8 && closeCode === undefined) {
        closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        // Complete the closing handshake, as any client would.
        socket.end(maskedFrame(0x8, payload.subarray(0, 2)));
      }
      for (const l of [...listeners]) l();
    }
  };

  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    parse();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    rejectUpgraded(new Error('socket closed before the upgrade'));
    resolveClosed(closeCode ?? 1006);
    for (const l of [...listeners]) l();
  });

  const request =
    `GET ${path} HTTP/1.1\r\n` +
    `Host: ${url.host}\r\n` +
    'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
    Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('') +
    '\r\n';
  // One write: the upgrade request and every frame behind it.
  socket.write(Buffer.concat([Buffer.from(request), ...texts.map((t) => maskedFrame(0x1, Buffer.from(t)))]));

  return {
    socket,
    messages,
    upgraded,
    closed,
    waitFor(match, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = messages.find(match);
          if (found !== undefined) {
            done();
            resolve(found);
          } else if (socket.destroyed) {
            done();
            reject(new Error('connection closed while waiting for a message'));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for a message`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    destroy() {
      socket.destroy();
    },
  };
}
