/**
 * Greedy continuation of a prompt for the generation-based metrics: temperature 0, stopping at
 * EOS, after `maxNewTokens`, or (for line completion) at the first newline of the text.
 */
import { generate, type LoadedModel, type ModelLora } from '../model/index.js';
import type { MftTokenizer } from '../tokenizer/index.js';

/** Options of `greedyContinuation`. */
export interface GreedyOptions {
  maxNewTokens: number;
  lora?: ModelLora;
  /** Stop as soon as the continuation's text holds a newline; the text is cut before it. */
  stopAtNewline?: boolean;
}

// Thrown from `generate`'s onToken to end the generation early; generate's finally blocks free the
// KV cache and weights on the way out.
class StopGeneration extends Error {}

/** Prompt tokens decoded ahead of the continuation so that its first token is spelled as in context. */
const CONTEXT_TOKENS = 8;

/**
 * The text that `ids` add after `promptIds`. Decoding the continuation alone can differ from its
 * text in context (a SentencePiece decoder drops the leading space of the first token), so the
 * last prompt tokens are decoded with it and their text removed.
 */
export function continuationText(
  tok: MftTokenizer,
  promptIds: readonly number[],
  ids: readonly number[],
): string {
  const context = promptIds.slice(Math.max(0, promptIds.length - CONTEXT_TOKENS));
  const before = tok.decode([...context], { skipSpecialTokens: true });
  const all = tok.decode([...context, ...ids], { skipSpecialTokens: true });
  return all.startsWith(before)
    ? all.slice(before.length)
    : tok.decode([...ids], { skipSpecialTokens: true });
}

/**
 * Greedily continue `promptIds`.
 * @param promptIds the prompt, already within the model's context minus `maxNewTokens`
 * @returns the generated ids (without EOS) and their text (cut at the first newline with `stopAtNewline`)
 * @example
 *   const { text } = await greedyContinuation(model, tok, tok.encode('def f():\n'), { maxNewTokens: 64, stopAtNewline: true });
 */
export async function greedyContinuation(
  model: LoadedModel,
  tok: MftTokenizer,
  promptIds: readonly number[],
  opts: GreedyOptions,
): Promise<{ ids: number[]; text: string }> {
  const ids: number[] = [];
  const onToken = opts.stopAtNewline
    ? (id: number) => {
        ids.push(id);
        if (continuationText(tok, promptIds, ids).includes('\n')) throw new StopGeneration();
      }
    : (id: number) => {
        ids.push(id);
      };
  try {
    await generate(model, tok, [...promptIds], {
      maxNewTokens: opts.maxNewTokens,
      temperature: 0,
      topP: 1,
      seed: 0,
      lora: opts.lora,
      onToken,
    });
  } catch (e) {
    if (!(e instanceof StopGeneration)) throw e;
  }
  let text = continuationText(tok, promptIds, ids);
  if (opts.stopAtNewline) {
    const nl = text.indexOf('\n');
    if (nl >= 0) text = text.slice(0, nl);
  }
  return { ids, text };
}

/**
 * The prompt ids that leave room for `maxNewTokens` in a context of `maxPositions`: the last ones,
 * with BOS kept first when the prompt starts with it.
 */
export function fitPrompt(
  promptIds: readonly number[],
  maxPositions: number,
  maxNewTokens: number,
  bos: number | null,
): number[] {
  const room = Math.max(1, maxPositions - maxNewTokens);
  if (promptIds.length <= room) return [...promptIds];
  const keepBos = bos !== null && promptIds[0] === bos && room > 1;
  const tail = promptIds.slice(promptIds.length - (keepBos ? room - 1 : room));
  return keepBos ? [bos, ...tail] : tail;
}
