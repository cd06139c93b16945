// A tiny deterministic tokenizer for data tests: one id per character (16 + code point), special
// tokens written literally in the text (`<s>`, `</s>`, FIM tokens) become their ids, and optional
// multi-character "merges" are matched greedily first (to build tokens that straddle a boundary).
import type { MftTokenizer } from '../../src/tokenizer/index.js';

export interface CharTokenizerOptions {
  addsBos?: boolean;
  addsEos?: boolean;
  chatTemplate?: string | null;
  fim?: boolean;
  merges?: string[];
  padId?: number | null;
  dir?: string;
}

const BASE = 16;

export function charTokenizer(opts: CharTokenizerOptions = {}): MftTokenizer {
  const specials = new Map<string, number>([
    ['<pad>', 0],
    ['<s>', 1],
    ['</s>', 2],
  ]);
  if (opts.fim) {
    specials.set('<fim_prefix>', 3);
    specials.set('<fim_middle>', 4);
    specials.set('<fim_suffix>', 5);
  }
  const merges = opts.merges ?? [];
  const mergeId = (i: number) => BASE + 0x110000 + i;
  const byId = new Map<number, string>();
  for (const [s, id] of specials) byId.set(id, s);
  merges.forEach((m, i) => {
    byId.set(mergeId(i), m);
  });
  const addsBos = opts.addsBos ?? true;
  const addsEos = opts.addsEos ?? false;
  return {
    encode(text, o = {}) {
      const ids: number[] = [];
      const withSpecials = o.addSpecialTokens ?? true;
      if (withSpecials && addsBos) ids.push(1);
      let i = 0;
      outer: while (i < text.length) {
        for (const [s, id] of specials) {
          if (text.startsWith(s, i)) {
            ids.push(id);
            i += s.length;
            continue outer;
          }
        }
        for (let m = 0; m < merges.length; m++) {
          if (text.startsWith(merges[m]!, i)) {
            ids.push(mergeId(m));
            i += merges[m]!.length;
            continue outer;
          }
        }
        const cp = text.codePointAt(i)!;
        ids.push(BASE + cp);
        i += cp > 0xffff ? 2 : 1;
      }
      if (withSpecials && addsEos) ids.push(2);
      return ids;
    },
    decode(ids, o = {}) {
      let out = '';
      for (const id of ids) {
        const s = byId.get(id);
        if (s !== undefined) {
          if (!(o.skipSpecialTokens && id < BASE)) out += s;
        } else out += String.fromCodePoint(id - BASE);
      }
      return out;
    },
    vocabSize: BASE + 0x110000 + merges.length,
    bosId: 1,
    eosId: 2,
    padId: opts.padId === undefined ? 0 : opts.padId,
    addsBos,
    addsEos,
    chatTemplate: opts.chatTemplate ?? null,
    tokenToId(token) {
      return specials.get(token) ?? null;
    },
    dir: opts.dir ?? '/nonexistent/char-tokenizer',
  };
}

/** Ids of plain text under charTokenizer (no specials, no merges). */
export function charIds(text: string): number[] {
  return Array.from(text, (c) => BASE + c.codePointAt(0)!);
}
