/**
 * `SFMClient`: one method per endpoint of the SomaFractalMemory HTTP API, named as the
 * Python client's methods (in camelCase). Requests and answers are the API's JSON, field
 * names as on the wire (see types.ts). Every method returns a promise and throws an
 * `SFMClientError` (errors.ts) for an error answer or when nothing answered.
 */

import * as conversations from "./conversations.js";
import * as graph from "./graph.js";
import { type Call, type ClientOptions, Transport } from "./http.js";
import * as items from "./items.js";
import * as memories from "./memories.js";
import * as ops from "./ops.js";
import * as scopes from "./scopes.js";
import type * as T from "./types.js";
import * as webhooks from "./webhooks.js";

export class SFMClient {
  readonly #transport: Transport;

  /**
   * @param baseUrl where the server is, e.g. `http://127.0.0.1:9595`
   * @param options the API key, timeout, retries and backoff, extra headers, a `fetch`
   */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.#transport = new Transport(baseUrl, options);
  }

  /** The server's base URL, without a trailing slash. */
  get baseUrl(): string {
    return this.#transport.baseUrl;
  }

  /**
   * The newest `SFM-Consistency-Token` the server sent; sent back with every later request,
   * so reads see this client's writes. Set it to carry a token over from another client.
   */
  get consistencyToken(): string | null {
    return this.#transport.consistencyToken;
  }

  set consistencyToken(token: string | null) {
    this.#transport.consistencyToken = token;
  }

  /** Send a call built by one of the endpoint modules (for endpoints added later). */
  send<R>(call: Call<R>): Promise<R> {
    return this.#transport.send(call);
  }

  // -- memories ----------------------------------------------------------------------------

  /**
   * Store a memory at `coord`, replacing the one there (`POST /memories`). The text embedded
   * is `payload.text`, else the payload as JSON. The answer says what happened (`status`).
   */
  store(
    coord: string,
    payload: T.JsonObject,
    options?: memories.StoreOptions,
  ): Promise<T.MemoryWritten> {
    return this.send(memories.store(coord, payload, options));
  }

  /** Store up to 1,000 memories as one unit: all of them or none. */
  storeBatch(batch: readonly T.MemoryCreate[]): Promise<T.BatchResponse> {
    return this.send(memories.storeBatch(batch));
  }

  /** The memory at `coord` (or the version current `as_of`); `NotFound` if there is none. */
  get(coord: string, options?: memories.GetOptions): Promise<T.MemoryPublic> {
    return this.send(memories.get(coord, options));
  }

  /** Delete the memory at `coord` and its links (with `purge`, its history too). */
  delete(coord: string, options?: memories.DeleteOptions): Promise<T.DeleteResponse> {
    return this.send(memories.remove(coord, options));
  }

  /**
   * Delete every memory of the given scopes (at least one; else `InvalidInput` naming
   * `user_id`) from every store; with `purge`, their history too (`DELETE /memories`).
   */
  deleteMemories(options: memories.DeleteMemoriesOptions): Promise<T.ScopeDeleted> {
    return this.send(memories.removeOfScopes(options));
  }

  /** One page of memories; pass `next_cursor` back as `cursor` for the next. */
  list(options?: memories.ListOptions): Promise<T.MemoryList> {
    return this.send(memories.list(options));
  }

  /** Every memory of the tenant, fetching pages of `limit` (default 100) as it goes. */
  async *iterMemories(options: memories.ListOptions = {}): AsyncGenerator<T.MemoryPublic> {
    let cursor = options.cursor;
    for (;;) {
      const page = await this.list({ ...options, cursor });
      yield* page.memories;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  /**
   * Recall memories, best first (`mode` hybrid by default). Pass `query: null` with
   * `options.vector` to search by your own embedding.
   */
  search(query: string | null, options?: T.SearchOptions): Promise<T.SearchResponse> {
    return this.send(memories.search(query, options));
  }

  /** The versions of the memory at `coord`, newest first (kept after a delete until purge). */
  history(coord: string, options?: memories.PageOptions): Promise<T.HistoryResponse> {
    return this.send(memories.history(coord, options));
  }

  /** The tenant's changes in commit order after the cursor `after`; resume with `next_cursor`. */
  changes(options?: memories.ChangesOptions): Promise<T.ChangesResponse> {
    return this.send(memories.changes(options));
  }

  // -- graph -------------------------------------------------------------------------------

  /** Link two existing memories; linking again updates strength and metadata. */
  link(from: string, to: string, options?: graph.LinkOptions): Promise<T.LinkPublic> {
    return this.send(graph.link(from, to, options));
  }

  /** Memories up to `k_hop` links away, nearest first. */
  neighbors(coord: string, options?: graph.NeighborsOptions): Promise<T.NeighborsResponse> {
    return this.send(graph.neighbors(coord, options));
  }

  /** A shortest path of links; `NotFound` when there is none. */
  path(from: string, to: string, options?: graph.PathOptions): Promise<T.PathResponse> {
    return this.send(graph.path(from, to, options));
  }

  // -- items, namespaces, spaces -----------------------------------------------------------

  /** Store an item at `namespace` + `key`, replacing the one there. */
  putItem(
    namespace: readonly string[],
    key: string,
    value: T.JsonObject,
    options?: items.PutItemOptions,
  ): Promise<T.ItemPublic> {
    return this.send(items.putItem(namespace, key, value, options));
  }

  /** The item, or null when there is none (or it expired). */
  getItem(
    namespace: readonly string[],
    key: string,
    options?: items.GetItemOptions,
  ): Promise<T.ItemPublic | null> {
    return this.send(items.getItem(namespace, key, options));
  }

  /** Delete the item; false when there was none. */
  deleteItem(namespace: readonly string[], key: string): Promise<boolean> {
    return this.send(items.deleteItem(namespace, key));
  }

  /** Items under the prefix that pass `filter`: by meaning with `query`, else newest first. */
  searchItems(
    namespacePrefix?: readonly string[],
    options?: items.SearchItemsOptions,
  ): Promise<T.ItemSearchResponse> {
    return this.send(items.searchItems(namespacePrefix, options));
  }

  /** Namespaces matching the prefix and suffix (`*` = any one label). */
  listNamespaces(options?: items.ListNamespacesOptions): Promise<T.NamespacesResponse> {
    return this.send(items.listNamespaces(options));
  }

  /** The versions of an item, newest first. */
  itemHistory(
    namespace: readonly string[],
    key: string,
    options?: memories.PageOptions,
  ): Promise<T.HistoryResponse> {
    return this.send(items.itemHistory(namespace, key, options));
  }

  /** Delete your expired items now; how many went. */
  sweepItems(): Promise<number> {
    return this.send(items.sweepItems());
  }

  /** Register an embedding space for your own vectors (idempotent for the same shape). */
  createSpace(name: string, dimension: number, metric?: T.SpaceMetric): Promise<T.SpacePublic> {
    return this.send(items.createSpace(name, dimension, metric));
  }

  /** The default space and your registered ones. */
  listSpaces(): Promise<T.SpacesResponse> {
    return this.send(items.listSpaces());
  }

  /** Drop a space and the items that had vectors in it. */
  deleteSpace(name: string): Promise<T.SpaceDeleted> {
    return this.send(items.deleteSpace(name));
  }

  // -- conversations, end users, context --------------------------------------------------

  /**
   * Add messages to a conversation, with the scopes they all belong to. Idempotent by
   * message id (`unchanged`); the same id with other content is a `Conflict`.
   */
  addMessages(
    conversationId: string,
    messages: readonly T.MessageIn[],
    scopes?: T.Scopes,
  ): Promise<T.MessagesPosted> {
    return this.send(conversations.addMessages(conversationId, messages, scopes));
  }

  /** One page of a conversation's messages in conversation order. */
  listMessages(
    conversationId: string,
    options?: conversations.ListMessagesOptions,
  ): Promise<T.MessagePage> {
    return this.send(conversations.listMessages(conversationId, options));
  }

  /** Every message of a conversation, in order, fetching pages as it goes. */
  async *iterMessages(
    conversationId: string,
    options: conversations.ListMessagesOptions = {},
  ): AsyncGenerator<T.MessagePublic> {
    let cursor = options.cursor;
    for (;;) {
      const page = await this.listMessages(conversationId, { ...options, cursor });
      yield* page.messages;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  /** The conversations with messages of these scopes, newest last message first. */
  listConversations(
    options?: conversations.ListConversationsOptions,
  ): Promise<T.ConversationList> {
    return this.send(conversations.listConversations(options));
  }

  /** Delete every message of a conversation; `NotFound` when it has none. */
  deleteConversation(
    conversationId: string,
    options?: conversations.DeleteConversationOptions,
  ): Promise<T.ConversationDeleted> {
    return this.send(conversations.deleteConversation(conversationId, options));
  }

  /** Recall messages (one hit per message), best first. */
  searchMessages(
    query: string,
    options?: conversations.SearchMessagesOptions,
  ): Promise<T.MessageSearchResponse> {
    return this.send(conversations.searchMessages(query, options));
  }

  /** Erase all of one end user's data in the tenant; what went. */
  deleteUser(userId: string): Promise<T.UserErased> {
    return this.send(conversations.deleteUser(userId));
  }

  /**
   * A prompt-ready context for `query` (or, with `query: null`, for `options.messages`, the
   * conversation's recent turns) within `budget_tokens` (`POST /context`).
   */
  context(query: string | null, options?: conversations.ContextOptions): Promise<T.ContextResponse> {
    return this.send(conversations.context(query, options));
  }

  /**
   * The distinct values of one scope that the tenant's records carry (memories, items and
   * messages), in text order; pass `next_cursor` back as `cursor` for the next page.
   */
  listScopeValues(
    scope: T.ScopeName,
    options?: scopes.ScopeValuesOptions,
  ): Promise<T.ScopeValues> {
    return this.send(scopes.listScopeValues(scope, options));
  }

  // -- webhooks ----------------------------------------------------------------------------

  /** Register an endpoint to be POSTed the tenant's changes, signed with `secret`. */
  createWebhook(
    url: string,
    secret: string,
    options?: webhooks.CreateWebhookOptions,
  ): Promise<T.WebhookPublic> {
    return this.send(webhooks.createWebhook(url, secret, options));
  }

  /** The tenant's webhooks and how far each has been delivered. */
  listWebhooks(): Promise<T.WebhooksResponse> {
    return this.send(webhooks.listWebhooks());
  }

  /** Stop delivering to a webhook; `NotFound` when the tenant has no such one. */
  deleteWebhook(id: number): Promise<T.WebhookDeleted> {
    return this.send(webhooks.deleteWebhook(id));
  }

  // -- operations --------------------------------------------------------------------------

  /** Counts for the key's tenant. */
  stats(): Promise<T.StatsResponse> {
    return this.send(ops.stats());
  }

  /** Each store's state; returned for 200 and 503 alike (check `status`). */
  health(): Promise<T.HealthResponse> {
    return this.send(ops.health());
  }

  /** Readiness (PostgreSQL and Milvus); returned for 200 and 503 alike. */
  ready(): Promise<T.HealthResponse> {
    return this.send(ops.ready());
  }

  /** Liveness: answers while the server process runs. */
  live(): Promise<{ status: string }> {
    return this.send(ops.live());
  }

  /** The Prometheus metrics, as text. */
  metrics(): Promise<string> {
    return this.send(ops.metrics());
  }

  /** The tenant's data in the export format, one record at a time (the header line first). */
  async *export(options?: ops.ExportOptions): AsyncGenerator<T.ExportRecord> {
    yield* await this.send(ops.exportData(options));
  }
}
