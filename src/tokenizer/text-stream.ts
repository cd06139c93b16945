/**
 * Generated text as it grows, token by token, for streaming: only whole characters are released
 * (a byte-fallback or byte-level token may end inside a UTF-8 sequence, which decodes to U+FFFD
 * until the rest arrives), and text that could still turn into a stop string is held back until it
 * does or cannot. When a stop string appears the text ends just before it.
 *
 * The whole sequence (context + generated) is decoded each time: SentencePiece-style decoders
 * drop or keep a leading space depending on what precedes a token, so decoding the generated ids
 * alone could differ from their text in context.
 */

export class TextStream {
  private readonly ids: number[];
  private readonly contextText: string;
  /** Generated text released so far. */
  private released = '';
  private stoppedAt: string | null = null;

  /**
   * @param decode text of ids (special tokens as the caller wants them)
   * @param context ids before the generated ones (the prompt); their text is not part of the stream
   * @param stops stop strings (empty strings are ignored)
   */
  constructor(
    private readonly decode: (ids: number[]) => string,
    context: readonly number[],
    private readonly stops: readonly string[] = [],
  ) {
    this.ids = [...context];
    this.contextText = decode(this.ids);
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** The stop string that ended the text, or null. */
  get stop(): string | null {
    return this.stoppedAt;
  }

  /** All text released so far. */
  get text(): string {
    return this.released;
  }

  /** Add a generated id; returns the newly releasable text ('' when held back or stopped). */
  push(id: number): string {
    if (this.stoppedAt !== null) return '';
    this.ids.push(id);
    return this.release(false);
  }

  /** No more ids: release what was held back (except an incomplete character). */
  finish(): string {
    if (this.stoppedAt !== null) return '';
    return this.release(true);
  }

  private release(final: boolean): string {
    let text = this.generated();
    let first = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) {
        first = at;
        this.stoppedAt = s;
      }
    }
    if (first >= 0) text = text.slice(0, first);
    if (this.stoppedAt === null) {
      // An incomplete UTF-8 sequence at the end decodes to U+FFFD: wait for its other bytes.
      text = text.replace(/\uFFFD+$/, '');
      if (!final) text = text.slice(0, text.length - this.stopPrefixLength(text));
    }
    if (!text.startsWith(this.released)) {
      // The decoder rewrote released text (rare); release nothing new rather than repeat it.
      return '';
    }
    const delta = text.slice(this.released.length);
    this.released = text;
    return delta;
  }

  /** Text of the generated ids (the whole decode minus the context's text). */
  private generated(): string {
    const all = this.decode(this.ids);
    return all.startsWith(this.contextText) ? all.slice(this.contextText.length) : all;
  }

  /** Length of the longest end of `text` that is the start of a stop string. */
  private stopPrefixLength(text: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
        if (text.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
