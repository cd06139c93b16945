import * as tf from '@tensorflow/tfjs';
import type { PeftAdapter } from '../../src/lora/peft-adapter.js';
import type { LoadedModel, ModelLora } from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';

const TARGETS = ['q_proj', 'down_proj'] as const;

/** PEFT's module path of a target in layer i (the key without `.lora_A.weight`). */
const moduleKey = (i: number, name: (typeof TARGETS)[number]): string =>
  `base_model.model.model.layers.${i}.${name === 'q_proj' ? 'self_attn' : 'mlp'}.${name}`;

/**
 * A random PEFT adapter for `model` on q_proj and down_proj (r = 2, lora_alpha = 4): lora_A
 * uniform in [-0.5, 0.5), lora_B uniform in [-bScale / 2, bScale / 2), drawn layer by layer.
 * @example saveAdapter(dir, randomAdapter(model, { seed: 3, bScale: 0.2, baseModel: MODEL }));
 */
export function randomAdapter(
  model: LoadedModel,
  opts: { seed: number; bScale: number; baseModel: string },
): PeftAdapter {
  const rng = new Rng(opts.seed);
  const tensors: PeftAdapter['tensors'] = new Map();
  model.layers.forEach((layer, i) => {
    for (const name of TARGETS) {
      const [out, inp] = layer[name].shape as [number, number];
      const key = moduleKey(i, name);
      tensors.set(`${key}.lora_A.weight`, {
        shape: [2, inp],
        data: Float32Array.from({ length: 2 * inp }, () => rng.next() - 0.5),
      });
      tensors.set(`${key}.lora_B.weight`, {
        shape: [out, 2],
        data: Float32Array.from({ length: out * 2 }, () => (rng.next() - 0.5) * opts.bScale),
      });
    }
  });
  const config: PeftAdapter['config'] = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: 2,
    lora_alpha: 4,
    lora_dropout: 0,
    target_modules: [...TARGETS],
    bias: 'none',
    use_rslora: false,
    fan_in_fan_out: false,
    base_model_name_or_path: opts.baseModel,
    inference_mode: true,
  };
  return { config, tensors };
}

/**
 * The adapter's factors as tensors the model applies (scale alpha / r), read straight from its
 * tensors, not through mft's loader (the caller disposes them).
 */
export function modelLoraOf(adapter: PeftAdapter, numLayers: number): ModelLora {
  const scale = Number(adapter.config.lora_alpha) / Number(adapter.config.r);
  const factor = (key: string) => {
    const t = adapter.tensors.get(key)!;
    return tf.tensor2d(t.data, t.shape as [number, number]);
  };
  return Array.from({ length: numLayers }, (_, i) =>
    Object.fromEntries(
      TARGETS.map((name) => {
        const key = moduleKey(i, name);
        return [name, { A: factor(`${key}.lora_A.weight`), B: factor(`${key}.lora_B.weight`), scale }];
      }),
    ),
  );
}
