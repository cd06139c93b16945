/**
 * A micro-batch of packed rows, the contract between the data pipeline and the model.
 * Every array is row-major `[batchSize, seqLen]`.
 */
export interface Batch {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly inputIds: Int32Array;
  /** Target for position t (the input ids shifted left by one); -100 carries no loss. */
  readonly labels: Int32Array;
  /** Document index within the row; attention is causal AND same segment. Pads form their own segment. */
  readonly segmentIds: Int32Array;
  /** Position within the document (restarts at 0 for each packed document). */
  readonly positionIds: Int32Array;
}

/** Label value that carries no loss. */
export const IGNORE_INDEX = -100;
