// Child process of blas-fallback.test.ts: start the wasm backend as the CLI does (the environment
// names a BLAS library), run one product large enough for the native kernel, print the status.
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeKernelStatus } from '../../src/backend/index.js';

await initBackend('wasm');
const product = tf.tidy(
  () =>
    tf
      .matMul(tf.ones([64, 128]), tf.ones([128, 32]))
      .sum()
      .dataSync()[0],
);
process.stdout.write(`${JSON.stringify({ status: nativeKernelStatus(), product })}\n`);
