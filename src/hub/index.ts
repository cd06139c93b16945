/** Models from the Hugging Face Hub, resolved through the Hugging Face cache. */
export {
  cachedHubSnapshot,
  type HubRef,
  hubCacheDir,
  hubOffline,
  parseHubRef,
  type ResolveHubOptions,
  resolveHubModel,
} from './hub-model.js';
export { resolveModelArg } from './model-arg.js';
