export * from './offsets.js';
export * from './errors.js';
export * from './events.js';
export * from './frames.js';
export * from './codec.js';
export * from './tokens.js';
export * from './sdp.js';
export * from './coalescer.js';
