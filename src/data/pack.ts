/**
 * Sample packing: whole samples are bin-packed into rows of `sequence_len` tokens by best-fit
 * decreasing (each sample, longest first, goes into the fullest row that still has room for it;
 * a new row when none has). Equal lengths are ordered by a seeded shuffle, so the rows are a pure
 * function of (lengths, capacity, seed). Best-fit decreasing uses at most 11/9 OPT + 6/9 rows.
 *
 * Finding "the row with the least room >= len" is a query on a segment tree over room values
 * 0..capacity holding how many rows have each room: O(log capacity) per sample.
 */
import { mixSeed, Rng } from '../util/index.js';

/** Count of rows per remaining room, with "smallest room >= x that some row has" queries. */
class RoomTree {
  private readonly size: number;
  private readonly tree: Int32Array;

  constructor(capacity: number) {
    let size = 1;
    while (size < capacity + 1) size *= 2;
    this.size = size;
    this.tree = new Int32Array(2 * size);
  }

  add(room: number, delta: number): void {
    let i = room + this.size;
    while (i >= 1) {
      this.tree[i]! += delta;
      i >>= 1;
    }
  }

  /** The smallest room >= x with a non-zero count, or -1. */
  smallestAtLeast(x: number): number {
    return this.search(1, 0, this.size - 1, x);
  }

  private search(node: number, lo: number, hi: number, x: number): number {
    if (hi < x || this.tree[node] === 0) return -1;
    if (lo === hi) return lo;
    const mid = (lo + hi) >> 1;
    const left = this.search(2 * node, lo, mid, x);
    return left >= 0 ? left : this.search(2 * node + 1, mid + 1, hi, x);
  }
}

/**
 * Pack samples of the given lengths into rows of `capacity` tokens.
 * @param lengths token count of each sample, each 1..capacity
 * @returns rows, each the list of sample indices it holds (in placement order)
 * @example
 *   packBestFitDecreasing([6, 3, 4, 2], 8, 0); // [[0, 3], [2, 1]]: 6+2 and 4+3
 */
export function packBestFitDecreasing(
  lengths: ArrayLike<number>,
  capacity: number,
  seed: number,
): number[][] {
  const order = new Rng(seed).shuffle(Array.from({ length: lengths.length }, (_, i) => i));
  order.sort((a, b) => lengths[b]! - lengths[a]!); // stable: ties keep the seeded order
  const rows: number[][] = [];
  const rowsByRoom: number[][] = Array.from({ length: capacity + 1 }, () => []);
  const tree = new RoomTree(capacity);
  for (const sample of order) {
    const len = lengths[sample]!;
    if (!(len >= 1 && len <= capacity)) {
      throw new Error(`packBestFitDecreasing: sample ${sample} has length ${len}, outside 1..${capacity}`);
    }
    const room = tree.smallestAtLeast(len);
    let row: number;
    if (room < 0) {
      row = rows.length;
      rows.push([sample]);
    } else {
      row = rowsByRoom[room]!.pop()!;
      tree.add(room, -1);
      rows[row]!.push(sample);
    }
    const left = (room < 0 ? capacity : room) - len;
    if (left > 0) {
      rowsByRoom[left]!.push(row);
      tree.add(left, 1);
    }
  }
  return rows;
}

// Stream id of the packing draws in `mixSeed(seed, PACK_STREAM, split)`.
const PACK_STREAM = 0x50434b;

/** How a split is laid out in rows. */
export interface SplitRowsOptions {
  readonly seqLen: number;
  /** `sample_packing`: best-fit decreasing; false: one sample per row. */
  readonly packing: boolean;
  /** The task seed. */
  readonly seed: number;
  readonly split: 'train' | 'validation';
}

/**
 * The rows of a split, as sample indices: the layout the trainer uses, and the one `mft eval
 * --rows` rebuilds to evaluate the trainer's rows.
 * @param lengths token count of each sample of the split, in reading order
 * @example splitRows([6, 3, 4, 2], { seqLen: 8, packing: true, seed: 42, split: 'validation' });
 */
export function splitRows(lengths: readonly number[], opts: SplitRowsOptions): number[][] {
  if (!opts.packing) return lengths.map((_, i) => [i]);
  const seed = mixSeed(opts.seed, PACK_STREAM, opts.split === 'train' ? 0 : 1);
  return packBestFitDecreasing(lengths, opts.seqLen, seed);
}
