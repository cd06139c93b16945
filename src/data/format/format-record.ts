/**
 * Recipe formatting: a record (a plain object from any source) becomes text segments that carry
 * loss or not, a fill-in-the-middle cut, or pre-tokenized ids. Pure: the same record, recipe and
 * seed always give the same result.
 *
 *   text             `text`                                      all trained
 *   completion       `prompt` + `completion` (verbatim, no separator)   completion trained
 *   alpaca           Alpaca prompt from `instruction`, optional `input`; `output`   output trained
 *   instruct         `messages` (or one turn from `system`?, `user`, `assistant` columns)
 *                    through the chat template                   assistant turns trained
 *   code_completion  `text` (or `content`), FIM with probability `fim_rate`   all trained
 *
 * Any record with `input_ids` (and optional `labels`) is pre-tokenized and used verbatim.
 */
import { mixSeed, Rng } from '../../util/index.js';
import { describeValue, RecordError } from '../record-error.js';
import type { DataRecipe, FormattedRecord, TextSegment } from '../types.js';
import { type ChatMessage, type ChatRenderer, parseMessages } from './chat-template.js';

/** The Alpaca prompt (tatsu-lab/stanford_alpaca, `PROMPT_DICT`), with and without an input. */
export const ALPACA_PROMPT_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/** Everything `formatRecord` needs besides the record. */
export interface FormatContext {
  recipe: DataRecipe;
  /** Recipe field -> dataset column (the recipe's defaults with the task's `fields` on top). */
  fields: Readonly<Record<string, string>>;
  /** Renders `messages` (instruct recipes only). */
  chat: ChatRenderer | null;
  /** Probability of a fill-in-the-middle cut (code_completion only). */
  fimRate: number;
  seed: number;
}

// Stream id of the FIM draws in `mixSeed(seed, FIM_STREAM, recordIndex)`.
const FIM_STREAM = 0x46494d;

function columnOf(ctx: FormatContext, field: string): string {
  return ctx.fields[field] ?? ctx.recipe.fields[field] ?? field;
}

function fieldFix(field: string, column: string): string {
  return `map the field in the task file: fields: {${field}: <column>} (now "${column}")`;
}

/** A string field; `optional` fields may be missing or null (-> null); `allowEmpty` accepts "". */
function readString(
  record: Record<string, unknown>,
  ctx: FormatContext,
  field: string,
  opts: { optional?: boolean; allowEmpty?: boolean } = {},
): string | null {
  const column = columnOf(ctx, field);
  const value = record[column];
  if (value === undefined || value === null) {
    if (opts.optional) return null;
    if (value === null) throw new RecordError(`${column}: expected a string, got null`);
    const have = Object.keys(record).slice(0, 12).join(', ');
    throw new RecordError(
      `${column}: missing field (the record has: ${have || 'no fields'})`,
      fieldFix(field, column),
    );
  }
  if (typeof value !== 'string')
    throw new RecordError(`${column}: expected a string, got ${describeValue(value)}`);
  if (!opts.allowEmpty && value.trim() === '') throw new RecordError(`${column}: empty text`);
  return value;
}

function readIntList(name: string, value: unknown, opts: { allowIgnore: boolean }): number[] {
  const { allowIgnore } = opts;
  if (!Array.isArray(value))
    throw new RecordError(`${name}: expected a list of integers, got ${describeValue(value)}`);
  return value.map((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || (v < 0 && !(allowIgnore && v === -100))) {
      throw new RecordError(`${name}[${i}]: expected a token id, got ${describeValue(v)}`);
    }
    return v;
  });
}

function preTokenized(record: Record<string, unknown>): FormattedRecord {
  const inputIds = readIntList('input_ids', record.input_ids, { allowIgnore: false });
  if (inputIds.length === 0) throw new RecordError('input_ids: empty list');
  const labels =
    record.labels === undefined || record.labels === null
      ? null
      : readIntList('labels', record.labels, { allowIgnore: true });
  if (labels && labels.length !== inputIds.length) {
    throw new RecordError(
      `labels: ${labels.length} labels for ${inputIds.length} input_ids`,
      'give one label per input id',
    );
  }
  return { kind: 'tokens', inputIds, labels };
}

/** Cut `text` at two points drawn uniformly (never inside a surrogate pair), StarCoder-style. */
function fimCut(text: string, rng: Rng): { prefix: string; middle: string; suffix: string } {
  const fix = (i: number) => {
    const c = text.charCodeAt(i);
    return c >= 0xdc00 && c <= 0xdfff ? i - 1 : i;
  };
  let a = fix(rng.int(text.length + 1));
  let b = fix(rng.int(text.length + 1));
  if (a > b) [a, b] = [b, a];
  return { prefix: text.slice(0, a), middle: text.slice(a, b), suffix: text.slice(b) };
}

/**
 * Format one record for the recipe.
 * @param recordIndex the record's index in its split, which seeds its FIM draw
 * @throws RecordError naming the field when the record does not fit the recipe
 * @example
 *   formatRecord({prompt: 'Q: 1+1?\nA:', completion: ' 2'}, ctx, 0);
 *   // {kind: 'segments', segments: [{text: 'Q: 1+1?\nA:', trained: false}, {text: ' 2', trained: true}], chat: false}
 */
export function formatRecord(
  record: Record<string, unknown>,
  ctx: FormatContext,
  recordIndex: number,
): FormattedRecord {
  if (record.input_ids !== undefined) return preTokenized(record);
  const trainAll = ctx.recipe.train_on === 'all';
  const seg = (text: string, trained: boolean): TextSegment => ({ text, trained: trained || trainAll });
  switch (ctx.recipe.format) {
    case 'text':
      return { kind: 'segments', segments: [seg(readString(record, ctx, 'text')!, true)], chat: false };
    case 'completion': {
      const prompt = readString(record, ctx, 'prompt', { allowEmpty: true })!;
      const completion = readString(record, ctx, 'completion')!;
      return { kind: 'segments', segments: [seg(prompt, false), seg(completion, true)], chat: false };
    }
    case 'alpaca': {
      const instruction = readString(record, ctx, 'instruction')!;
      const input = readString(record, ctx, 'input', { optional: true, allowEmpty: true });
      const output = readString(record, ctx, 'output')!;
      const prompt = (input ? ALPACA_PROMPT_WITH_INPUT : ALPACA_PROMPT_NO_INPUT)
        .replace('{instruction}', instruction)
        .replace('{input}', input ?? '');
      return { kind: 'segments', segments: [seg(prompt, false), seg(output, true)], chat: false };
    }
    case 'instruct': {
      if (!ctx.chat) throw new Error('formatRecord: the instruct recipe needs a ChatRenderer');
      const column = columnOf(ctx, 'messages');
      let messages: ChatMessage[];
      if (record[column] === undefined && record[columnOf(ctx, 'user')] !== undefined) {
        // One turn from columns: optional system, user, assistant.
        const system = readString(record, ctx, 'system', { optional: true, allowEmpty: true });
        messages = [
          ...(system ? [{ role: 'system' as const, content: system }] : []),
          { role: 'user', content: readString(record, ctx, 'user', { allowEmpty: true })! },
          { role: 'assistant', content: readString(record, ctx, 'assistant')! },
        ];
      } else {
        if (record[column] === undefined) readString(record, ctx, 'messages'); // throws "missing field"
        messages = parseMessages(column, record[column]);
      }
      return { kind: 'segments', segments: ctx.chat.segments(messages, trainAll), chat: true };
    }
    case 'code_completion': {
      // `text` by default, `content` (The Stack's name) when the record has no `text`.
      const useContent =
        columnOf(ctx, 'text') === 'text' && record.text === undefined && record.content !== undefined;
      const text = useContent
        ? readString(record, { ...ctx, fields: { text: 'content' } }, 'text')!
        : readString(record, ctx, 'text')!;
      if (ctx.fimRate > 0) {
        const rng = new Rng(mixSeed(ctx.seed, FIM_STREAM, recordIndex));
        if (rng.next() < ctx.fimRate) return { kind: 'fim', ...fimCut(text, rng) };
      }
      return { kind: 'segments', segments: [seg(text, true)], chat: false };
    }
  }
}
