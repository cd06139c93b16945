import { describe, expect, test } from 'vitest';
import { barFormat, barProgress } from '../../src/train/progress.js';

/** A terminal stand-in `columns` wide that records what is drawn, ANSI sequences stripped. */
function fakeTty(columns: number) {
  let text = '';
  const stream = {
    isTTY: true,
    columns,
    rows: 24,
    write(chunk: string) {
      text += chunk;
      return true;
    },
    cursorTo() {
      text += '\n';
      return true;
    },
    moveCursor: () => true,
    clearLine: () => true,
    clearScreenDown: () => true,
    on: () => stream,
    removeListener: () => stream,
  };
  const lines = () =>
    text
      .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '')
      .split('\n')
      .filter((l) => l.startsWith('step'));
  return { stream: stream as unknown as NodeJS.WriteStream, lines };
}

function draw(columns: number, totalSteps: number): string[] {
  const tty = fakeTty(columns);
  const p = barProgress(tty.stream);
  p.start(totalSteps, 0);
  p.eval(0, 7.2374);
  for (const step of [1, 2, 3]) {
    p.step(
      { step, totalSteps, epoch: 0.01 * step, loss: 6.5, lr: 2e-4, gradNorm: 1, tokensPerSecond: 123456 },
      true,
    );
  }
  p.stop();
  return tty.lines();
}

describe('the progress bar', () => {
  test('labels its loss as a moving average and keeps the ETA within 80 and 60 columns', () => {
    for (const columns of [80, 60]) {
      const lines = draw(columns, 10_000);
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line.length, line).toBeLessThan(columns);
        expect(line).toMatch(/eta \S+/);
        expect(line).toMatch(/ema loss \d\.\d{4}/);
      }
    }
  });

  test('a wide terminal shows every field', () => {
    const [line] = draw(160, 10_000);
    for (const field of ['epoch', 'ema loss', 'lr', 'tok/s', 'eta', 'eval 7.2374'])
      expect(line).toContain(field);
    expect(barFormat(160, 10_000).barsize).toBe(24);
  });
});
