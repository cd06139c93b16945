/**
 * Kaiming-uniform initialisation of `lora_A`, as HF PEFT does it:
 * `nn.init.kaiming_uniform_(lora_A.weight, a=math.sqrt(5))`
 * (peft/tuners/lora/layer.py `reset_lora_parameters`, torch/nn/init.py `kaiming_uniform_`).
 *
 * torch's definition, for a weight `[out, in]` with fan_in = in and leaky-ReLU slope `a`:
 *   gain  = sqrt(2 / (1 + a^2))
 *   bound = gain * sqrt(3 / fan_in)
 *   w ~ U(-bound, bound)
 * With a = sqrt(5): gain = sqrt(1/3), so bound = 1 / sqrt(fan_in).
 */
import { Rng } from '../util/index.js';

/** The leaky-ReLU slope PEFT passes to `kaiming_uniform_` for `lora_A`. */
export const KAIMING_A = Math.sqrt(5);

/**
 * Half-width of torch's Kaiming-uniform interval.
 * @param fanIn number of inputs of the weight (`in` of a `[out, in]` matrix), > 0
 * @param a leaky-ReLU slope (default sqrt(5), as PEFT)
 * @example kaimingUniformBound(64) // 0.125 = 1 / sqrt(64)
 */
export function kaimingUniformBound(fanIn: number, a: number = KAIMING_A): number {
  if (!(fanIn > 0))
    throw new Error(`Argument 'fanIn' passed to 'kaimingUniformBound' must be > 0, got ${fanIn}`);
  const gain = Math.sqrt(2 / (1 + a * a));
  return gain * Math.sqrt(3 / fanIn);
}

/**
 * A `[rows, fanIn]` row-major matrix drawn from U(-bound, bound), bound = kaimingUniformBound(fanIn, a).
 * @param rows output rows (`r` for `lora_A`)
 * @param fanIn inputs per row
 * @param seed seed of the `Rng` the values come from (same seed, same matrix)
 * @example const a = kaimingUniform(8, 64, mixSeed(runSeed, layer, module)); // lora_A [8, 64]
 */
export function kaimingUniform(
  rows: number,
  fanIn: number,
  seed: number,
  a: number = KAIMING_A,
): Float32Array {
  const bound = kaimingUniformBound(fanIn, a);
  const rng = new Rng(seed);
  const out = new Float32Array(rows * fanIn);
  for (let i = 0; i < out.length; i++) out[i] = (2 * rng.next() - 1) * bound;
  return out;
}
