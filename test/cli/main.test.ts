import { describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

const names = async (...args: string[]) =>
  (await buildProgram(['node', 'mft', ...args])).commands.map((c) => c.name());

describe('buildProgram', () => {
  test('registers only the command argv names, so light commands load no tfjs', async () => {
    expect(await names('tokenize', '--text', 'hi')).toEqual(['tokenize']);
    expect(await names('--debug', 'config', 'check', 'x.yaml')).toEqual(['config']);
  });

  test('every command for help or an unknown name (so commander can list and suggest them)', async () => {
    // the workflow's order: train first, the tools after
    const all = [
      'train',
      'eval',
      'generate',
      'serve',
      'merge',
      'export',
      'data',
      'config',
      'tokenize',
      'convert',
      'doctor',
    ];
    expect(await names()).toEqual(all);
    expect(await names('--help')).toEqual(all);
    expect(await names('trian')).toEqual(all);
    expect(await names('help', 'train')).toEqual(all);
  });

  test('none for --version', async () => {
    expect(await names('--version')).toEqual([]);
  });
});
