/**
 * Which linear layers carry an adapter, and the PEFT tensor names they are saved under.
 *
 * PEFT wraps the HF model twice (`PeftModel.base_model` is a `LoraModel` whose `.model` is the
 * `LlamaForCausalLM`), so a LoRA weight of layer N is saved as
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   [r, in]
 *   base_model.model.model.layers.N.mlp.down_proj.lora_B.weight      [out, r]
 */
import { LINEAR_NAMES, type LinearName } from '../model/index.js';
import { MftError } from '../util/index.js';

/** `lora_target_modules` as a task file gives it. */
export type LoraTargets = readonly string[] | 'all-linear';

/** The HF submodule that owns each linear layer of a decoder layer. */
export function moduleParent(name: LinearName): 'self_attn' | 'mlp' {
  return name === 'gate_proj' || name === 'up_proj' || name === 'down_proj' ? 'mlp' : 'self_attn';
}

/** PEFT key of one LoRA matrix, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
export function loraKey(layer: number, name: LinearName, which: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${moduleParent(name)}.${name}.lora_${which}.weight`;
}

const KEY_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_(A|B)\.weight$/;

/** The (layer, module, A|B) a PEFT key names, or null when it is not a decoder-layer LoRA weight. */
export function parseLoraKey(key: string): { layer: number; name: LinearName; which: 'A' | 'B' } | null {
  const m = KEY_RE.exec(key);
  if (!m) return null;
  const name = m[3] as LinearName;
  if (!LINEAR_NAMES.includes(name) || moduleParent(name) !== m[2]) return null;
  return { layer: Number(m[1]), name, which: m[4] as 'A' | 'B' };
}

/**
 * Resolve `lora_target_modules` to module names in the canonical order (q, k, v, o, gate, up, down).
 * `all-linear` is every linear layer of the decoder but `lm_head` (as PEFT's `all-linear`).
 * PEFT-style suffixes (`self_attn.q_proj`) are accepted; anything else is an MftError listing the
 * valid names.
 * @param targets a list of module names, or 'all-linear'
 * @param where where the value came from, for the error (default `lora_target_modules`)
 * @example resolveTargets(['v_proj', 'q_proj']) // ['q_proj', 'v_proj']
 */
export function resolveTargets(targets: LoraTargets, where = 'lora_target_modules'): LinearName[] {
  if (targets === 'all-linear') return [...LINEAR_NAMES];
  const valid = `valid names: ${LINEAR_NAMES.join(', ')}, or all-linear`;
  if (!Array.isArray(targets) || targets.length === 0) {
    throw new MftError({ where, message: 'no target modules given', fix: `list at least one; ${valid}` });
  }
  const chosen = new Set<LinearName>();
  const problems: { where: string; message: string; fix: string }[] = [];
  for (const t of targets) {
    const tail = String(t).split('.').pop() as LinearName;
    const parentOk = !String(t).includes('.') || String(t) === `${moduleParent(tail)}.${tail}`;
    if (LINEAR_NAMES.includes(tail) && parentOk) {
      chosen.add(tail);
    } else if (t === 'lm_head' || t === 'embed_tokens') {
      problems.push({ where, message: `${t} cannot carry a LoRA adapter here`, fix: valid });
    } else {
      problems.push({ where, message: `the model has no linear layer named "${t}"`, fix: valid });
    }
  }
  if (problems.length > 0) throw new MftError(problems);
  return LINEAR_NAMES.filter((n) => chosen.has(n));
}
