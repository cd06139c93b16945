/** Hugging Face tokenizers behind the small `MftTokenizer` interface the rest of mft uses. */

export { TextStream } from './text-stream.js';
export { loadTokenizer, type MftTokenizer, TOKENIZER_FILES } from './tokenizer.js';
