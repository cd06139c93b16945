import { existsSync } from 'node:fs';
import { parseHubRef, resolveHubModel } from './hub-model.js';

/**
 * A `--model` value as a local folder: an existing path stays as it is; otherwise `org/name[@rev]`
 * resolves through the Hugging Face cache (downloading what is missing). Anything else is returned
 * unchanged, for the model loader to report.
 */
export async function resolveModelArg(value: string, source = '--model'): Promise<string> {
  if (existsSync(value)) return value;
  const ref = parseHubRef(value);
  if (!ref) return value;
  return resolveHubModel(ref, { source, log: (line) => process.stderr.write(`mft: ${line}\n`) });
}
