/** Small node:dgram helpers for the UDP proxy: every socket is udp4 on 127.0.0.1. */
import dgram from 'node:dgram';
import { LOOPBACK } from './loopback.js';

/** An unbound udp4 socket whose kernel buffers are sized once it binds. */
export function createUdp4(bufferBytes: number): dgram.Socket {
  return dgram.createSocket({ type: 'udp4', recvBufferSize: bufferBytes, sendBufferSize: bufferBytes });
}

/** A udp4 socket bound on 127.0.0.1:`port` (0 = any), or the bind error with nothing left open. */
export function bindUdp4(port: number, bufferBytes: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = createUdp4(bufferBytes);
    const onError = (err: Error) => {
      void closeUdp4(socket);
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ address: LOOPBACK, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** Resolves once the socket is closed (at once if it already was). */
export function closeUdp4(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // ERR_SOCKET_DGRAM_NOT_RUNNING: already closed
    }
  });
}
