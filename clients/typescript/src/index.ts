/**
 * The TypeScript client of SomaFractalMemory.
 *
 *     import { SFMClient } from "somafractalmemory";
 *
 *     const sfm = new SFMClient("http://127.0.0.1:9595", { apiKey: process.env.SFM_API_KEY });
 *     await sfm.store("1,2,3", { text: "The user prefers green tea" });
 *     const { results } = await sfm.search("what does the user drink?");
 *
 * No dependency beyond the runtime's `fetch` (Node.js 20+, browsers, Deno, Bun).
 */

export { SFMClient } from "./client.js";
export {
  BadRequest,
  Conflict,
  ConnectionFailed,
  InvalidInput,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  SFMClientError,
  ServerError,
  StoreUnavailable,
  Unauthorized,
  classForStatus,
  errorFor,
  type ErrorOptions,
} from "./errors.js";
export {
  CONSISTENCY_HEADER,
  DEFAULT_BACKOFF,
  DEFAULT_MAX_BACKOFF,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT,
  backoffDelay,
  newerToken,
  readJson,
  raiseForError,
  shouldRetry,
  type Call,
  type ClientOptions,
  type QueryValue,
  type RetryPolicy,
} from "./http.js";
export type {
  ContextOptions,
  DeleteConversationOptions,
  ListConversationsOptions,
  ListMessagesOptions,
  SearchMessagesOptions,
} from "./conversations.js";
export type { LinkOptions, NeighborsOptions, PathOptions } from "./graph.js";
export type {
  GetItemOptions,
  ListNamespacesOptions,
  PutItemOptions,
  SearchItemsOptions,
} from "./items.js";
export type {
  ChangesOptions,
  DeleteMemoriesOptions,
  DeleteOptions,
  GetOptions,
  ListOptions,
  PageOptions,
  StoreOptions,
} from "./memories.js";
export type { ExportOptions } from "./ops.js";
export type { ScopeValuesOptions } from "./scopes.js";
export type { CreateWebhookOptions } from "./webhooks.js";
export type * from "./types.js";
