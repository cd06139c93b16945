import { describe, expect, test } from 'vitest';
import { TextStream } from '../../src/tokenizer/index.js';

// A byte-level "tokenizer": each id is one byte, decoded as UTF-8 the way HF decoders do (an
// incomplete sequence becomes U+FFFD).
const decode = (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids));
const bytes = (s: string) => [...new TextEncoder().encode(s)];

function run(context: string, generated: string, stops: string[] = []) {
  const stream = new TextStream(decode, bytes(context), stops);
  const deltas: string[] = [];
  let stoppedAfter = -1;
  for (const [i, id] of bytes(generated).entries()) {
    deltas.push(stream.push(id));
    if (stream.stop !== null) {
      stoppedAfter = i;
      break;
    }
  }
  deltas.push(stream.finish());
  return { deltas, text: stream.text, stop: stream.stop, stoppedAfter };
}

describe('TextStream', () => {
  test('a multi-byte character is released whole, never as U+FFFD', () => {
    const { deltas, text } = run('Say: ', 'é€😀!');
    expect(deltas.join('')).toBe('é€😀!');
    expect(text).toBe('é€😀!');
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    // '😀' is 4 bytes: nothing is released until its last one
    expect(deltas.slice(5, 8)).toEqual(['', '', '']);
    expect(deltas[8]).toBe('😀');
  });

  test('generation cut inside a character ends without the partial character', () => {
    const partial = bytes('ab€').slice(0, 4); // 'a', 'b', and 2 of the 3 bytes of '€'
    const stream = new TextStream(decode, [], []);
    const out = partial.map((id) => stream.push(id)).join('') + stream.finish();
    expect(out).toBe('ab');
  });

  test('a stop string ends the text just before it, text that may become one is held back', () => {
    const { deltas, text, stop, stoppedAfter } = run('Q: ', 'one two\n\nQ: three', ['\n\nQ:']);
    expect(text).toBe('one two');
    expect(stop).toBe('\n\nQ:');
    expect(stoppedAfter).toBe('one two\n\nQ:'.length - 1);
    // the two newlines were held back while they could start the stop string
    expect(deltas.join('')).toBe('one two');
    expect(deltas[7]).toBe('');
  });

  test('held-back text is released once it cannot be a stop string', () => {
    const { deltas, text, stop } = run('', 'a\nb', ['\n\n']);
    expect(stop).toBeNull();
    expect(text).toBe('a\nb');
    expect(deltas).toEqual(['a', '', '\nb', '']);
  });

  test('the earliest of several stop strings wins', () => {
    expect(run('', 'xx END yy STOP', ['STOP', 'END']).text).toBe('xx ');
  });
});
