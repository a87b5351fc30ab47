import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ClientFrameSchema, ERROR_CODES, ServerFrameSchema } from '../../src/protocol/index.js';

const protocolDoc = readFileSync(fileURLToPath(new URL('../../docs/PROTOCOL.md', import.meta.url)), 'utf8');

describe('docs/PROTOCOL.md stays in sync with the code', () => {
  it('documents every error code with its HTTP status and close code', () => {
    for (const [code, { status, close }] of Object.entries(ERROR_CODES)) {
      expect(protocolDoc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\| ${close} \\|`));
    }
  });

  it('documents every frame type', () => {
    const types = [...ClientFrameSchema.options, ...ServerFrameSchema.options].map((o) => o.shape.type.value);
    expect(types).toContain('subscribed');
    for (const type of types) {
      expect(protocolDoc, type).toContain(`| \`${type}\` |`);
    }
  });
});
