import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openCheckpoint } from '../../src/weights/checkpoint-files.js';
import { writeSafetensors } from '../../src/weights/safetensors-writer.js';
import { errorOf } from '../helpers/error-of.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const root = fileTempDir('ckpt');

/** A two-shard checkpoint; `weightMap` may be altered to break it. */
function sharded(name: string, weightMap?: Record<string, string>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [
    { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'b', dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) },
  ]);
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), [
    { name: 'c', dtype: 'F32', shape: [1, 1], data: new Float32Array([3]) },
  ]);
  const map = weightMap ?? {
    a: 'model-00001-of-00002.safetensors',
    b: 'model-00001-of-00002.safetensors',
    c: 'model-00002-of-00002.safetensors',
  };
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 14 }, weight_map: map }),
  );
  return dir;
}

describe('openCheckpoint', () => {
  test('single file: the llama-golden model', () => {
    const ckpt = openCheckpoint('test/fixtures/llama-golden');
    expect(ckpt.files).toEqual(['model.safetensors']);
    expect(ckpt.names()).toHaveLength(20);
    expect(ckpt.info('model.embed_tokens.weight')).toEqual({
      dtype: 'F32',
      shape: [384, 64],
      byteLength: 384 * 64 * 4,
    });
    expect(ckpt.has('lm_head.weight')).toBe(false); // tied embeddings
    expect(ckpt.read('model.norm.weight').data).toHaveLength(64);
    ckpt.close();
  });

  test('shards: reads each tensor from the shard the index names', () => {
    const ckpt = openCheckpoint(sharded('ok'));
    expect(ckpt.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ckpt.names()).toEqual(['a', 'b', 'c']);
    expect([...(ckpt.read('c').data as Float32Array)]).toEqual([3]);
    expect([...(ckpt.read('b').data as Uint16Array)]).toEqual([0x3f80]);
    expect(ckpt.info('a').dtype).toBe('F32');
    expect(() => ckpt.read('zzz')).toThrow('the checkpoint has no tensor "zzz"');
    ckpt.close();
  });

  test('a missing shard is named', () => {
    const dir = sharded('missing', {
      a: 'model-00001-of-00002.safetensors',
      b: 'model-00001-of-00002.safetensors',
      c: 'model-00003-of-00002.safetensors',
    });
    expect(errorOf(() => openCheckpoint(dir))).toBe(
      `${join(dir, 'model.safetensors.index.json')}: shard model-00003-of-00002.safetensors is listed in weight_map but missing (fix: download the missing shard)`,
    );
  });

  test('a tensor mapped to the wrong shard, and a tensor the index does not list', () => {
    const dir = sharded('wrong', {
      a: 'model-00002-of-00002.safetensors',
      b: 'model-00001-of-00002.safetensors',
    });
    const msg = errorOf(() => openCheckpoint(dir));
    expect(msg).toContain(
      'tensor "a" is mapped to model-00002-of-00002.safetensors, which does not contain it',
    );
    expect(msg).toContain(
      'model-00002-of-00002.safetensors: tensor "c" is not listed in model.safetensors.index.json',
    );
  });

  test('a shard path that leaves the directory is refused', () => {
    const dir = sharded('escape', { a: '../x.safetensors' });
    expect(errorOf(() => openCheckpoint(dir))).toContain(
      'weight_map["a"]: "../x.safetensors" is not a shard file name',
    );
  });

  test('a directory without weights', () => {
    const dir = join(root, 'empty');
    mkdirSync(dir);
    expect(errorOf(() => openCheckpoint(dir))).toBe(
      `${dir}: no model.safetensors or model.safetensors.index.json in this directory (fix: point at a Hugging Face model directory with safetensors weights)`,
    );
  });

  test('a corrupt shard is reported with its path', () => {
    const dir = join(root, 'corrupt');
    mkdirSync(dir);
    copyFileSync('test/fixtures/llama-golden/config.json', join(dir, 'model.safetensors'));
    expect(errorOf(() => openCheckpoint(dir))).toMatch(
      new RegExp(`^${join(dir, 'model.safetensors')}: header length`),
    );
  });
});
