/**
 * The main thread's LoRA values in shared memory, where workers read them: every variable end to
 * end in the main thread's key order. `publish` copies the current values in (workers are idle
 * between requests) and returns a new version number, so a worker re-reads only after a change.
 */
import type * as tf from '@tensorflow/tfjs';

export class LoraMirror {
  readonly keys: string[];
  readonly values: Float32Array;
  private version = 0;

  constructor(private readonly variables: ReadonlyMap<string, tf.Variable>) {
    this.keys = [...variables.keys()];
    let n = 0;
    for (const v of variables.values()) n += v.size;
    this.values = new Float32Array(new SharedArrayBuffer(4 * n));
  }

  async publish(): Promise<number> {
    let offset = 0;
    for (const v of this.variables.values()) {
      this.values.set((await v.data()) as Float32Array, offset);
      offset += v.size;
    }
    return ++this.version;
  }
}
