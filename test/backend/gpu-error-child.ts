// Child process of webgpu.test.ts: start webgpu as the CLI does, then ask the device for a buffer
// past its limit; the watcher must end the process (exit 2, one line), not leave it running.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';

await initBackend('webgpu');
const { device } = tf.backend() as unknown as {
  device: { createBuffer(d: { size: number; usage: number }): unknown };
};
device.createBuffer({ size: 2 ** 40, usage: 0x80 /* STORAGE */ });
await new Promise((resolve) => setTimeout(resolve, 10_000));
process.stdout.write('still running\n');
