import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readCacheFile, writeCacheFile } from '../../src/data/cache.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const dir = fileTempDir('cache');

describe('cache files', () => {
  test('every array type comes back with its type, values and the header', () => {
    const arrays = {
      ids: Uint16Array.from([0, 1, 65535]),
      mask: Uint8Array.from([1, 0, 1, 1, 0]),
      labels: Int32Array.from([-100, 7, 2 ** 31 - 1]),
      offsets: Float64Array.from([0, 3, 2 ** 40]),
      empty: new Int32Array(0),
    };
    const path = join(dir, 'a.mftdata');
    writeCacheFile(path, { header: { key: 'k', seqLen: 8 }, arrays }, dir);
    const back = readCacheFile(path)!;
    expect(back.header).toMatchObject({ key: 'k', seqLen: 8 });
    for (const [name, a] of Object.entries(arrays)) {
      expect(back.arrays[name]!.constructor, name).toBe(a.constructor);
      expect(Array.from(back.arrays[name]!), name).toEqual(Array.from(a));
    }
  });

  test('a file naming an unknown array type reads as no cache', () => {
    const path = join(dir, 'b.mftdata');
    writeCacheFile(path, { header: {}, arrays: { ids: Uint16Array.from([1, 2]) } }, dir);
    const text = readFileSync(path, 'latin1');
    writeFileSync(path, Buffer.from(text.replace('"u16"', '"u99"'), 'latin1'));
    expect(readCacheFile(path)).toBeNull();
  });
});
