/**
 * The API's JSON, as the server sends and takes it (field names as on the wire, snake_case).
 *
 * These mirror the OpenAPI schemas of the server (`GET /openapi.json`, the pydantic models in
 * `somafractalmemory.schemas`, `history_schemas`, `item_schemas` and `webhook_schemas`).
 * Timestamps are RFC 3339 strings; a `Date` is accepted wherever the client sends one.
 */

/** Any JSON object: a memory's payload, an item's value, a link's metadata. */
export type JsonObject = { [key: string]: unknown };

/** A lived event or a general fact. */
export type MemoryType = "episodic" | "semantic";

/** A time the client sends: a `Date` or an RFC 3339 string. */
export type Timestamp = Date | string;

/** How search ranks: by meaning, by full-text rank, or both fused (the default). */
export type SearchMode = "vector" | "keyword" | "hybrid";

/** Which way graph walks follow links. */
export type Direction = "out" | "in" | "both";

/** What one write did. */
export type WriteStatus = "created" | "replaced" | "unchanged" | "skipped";

/** What a version of a record records. */
export type ChangeKind = "created" | "replaced" | "superseded" | "deleted";

// -- scopes --------------------------------------------------------------------------------

/**
 * Whose a record is: on a write, the scopes it belongs to; on a search or listing, only the
 * records of these scopes (a scope left out matches every record). Each 1 to 256 characters.
 */
export interface Scopes {
  /** The end user (`deleteUser` erases all of theirs). */
  user_id?: string | null;
  /** The agent that wrote or owns the record. */
  agent_id?: string | null;
  /** The session (of a user with an agent) the record came from. */
  session_id?: string | null;
}

/** The scopes a stored record carries (null: none). */
export interface ScopesPublic {
  user_id?: string | null;
  agent_id?: string | null;
  session_id?: string | null;
}

/** A scope a record can carry. */
export type ScopeName = "user_id" | "agent_id" | "session_id";

/** The distinct values of one scope the tenant's records carry, in text order, a page. */
export interface ScopeValues {
  scope: ScopeName;
  values: string[];
  /** Pass as `cursor` for the next page; null after the last. */
  next_cursor: string | null;
}

/** What a delete by scope removed (and history versions, with `purge`). */
export interface ScopeDeleted {
  deleted: number;
  purged_versions?: number | null;
}

// -- memories ------------------------------------------------------------------------------

/** The body of `POST /memories` (and each entry of a batch); the scopes say whose it is. */
export interface MemoryCreate extends Scopes {
  /** 2 to 16 comma-separated finite numbers; "1,2,3" and "1.0, 2, 3" are the same memory. */
  coord: string;
  /** The text embedded is `payload.text`, else the payload as JSON. */
  payload: JsonObject;
  memory_type?: MemoryType;
  /** 0 to 1 (default 0.5). */
  importance?: number;
  /** Your own embedding (the model's dimension) instead of the local model's. */
  vector?: number[] | null;
  /** When the fact starts to hold in the world. */
  valid_from?: Timestamp | null;
  /** When the fact stops holding in the world; after `valid_from`. */
  valid_to?: Timestamp | null;
  /** Coordinates of memories this one replaces (up to 100). */
  supersedes?: string[];
  /** Create only: `Conflict` (409) when a memory exists at the coordinate. */
  if_absent?: boolean;
  /** When a current memory has the same text: store anyway, skip this write, or supersede. */
  on_duplicate?: "store" | "skip" | "supersede";
}

/** A stored memory (its scopes null when it has none). */
export interface MemoryPublic extends ScopesPublic {
  coord: string;
  payload: JsonObject;
  memory_type: MemoryType;
  importance: number;
  created_at: string;
  updated_at: string;
  valid_from?: string | null;
  valid_to?: string | null;
  superseded_by?: string | null;
  superseded_at?: string | null;
}

/** A memory close to the one written (duplicate detection). */
export interface SimilarMemory {
  coord: string;
  score: number;
}

/** The answer to `POST /memories`: the stored memory and what the write did. */
export interface MemoryWritten extends MemoryPublic {
  status: WriteStatus;
  duplicate_of?: string[];
  similar?: SimilarMemory[];
}

export interface BatchItemResult {
  coord: string;
  status: WriteStatus;
  duplicate_of?: string[];
  similar?: SimilarMemory[];
}

export interface BatchResponse {
  results: BatchItemResult[];
}

export interface MemoryList {
  memories: MemoryPublic[];
  next_cursor: string | null;
}

export interface DeleteResponse {
  deleted: boolean;
  purged_versions?: number | null;
}

/**
 * The body of `POST /memories/search` without `query` (the method's first argument); the
 * scopes keep it to the memories of those scopes.
 */
export interface SearchOptions extends Scopes {
  /** Your own query embedding (vector mode); pass `null` as the query then. */
  vector?: number[] | null;
  mode?: SearchMode;
  /** 1 to 100 (default 10). */
  top_k?: number;
  memory_type?: MemoryType | null;
  /** Top-level payload fields that must equal these values. */
  filters?: Record<string, string | number | boolean> | null;
  created_after?: Timestamp | null;
  created_before?: Timestamp | null;
  /** Also recall memories up to this many links away (0 to 3). */
  expand_links?: number;
  importance_boost?: number;
  recency_half_life_hours?: number | null;
  /** Also recall memories another one superseded (marked). */
  include_superseded?: boolean;
  /** Only facts valid at this time. */
  valid_at?: Timestamp | null;
  /** Keys sent in the body as they are, for options newer servers accept. */
  extra?: JsonObject;
}

/** Ranks of a result in each signal (null: not found by that signal). */
export interface SearchSignals {
  vector?: number | null;
  keyword?: number | null;
  link?: number | null;
}

export interface SearchResult {
  coord: string;
  /** In [0, 1], higher is more relevant. */
  score: number;
  payload: JsonObject;
  memory_type: MemoryType;
  importance: number;
  created_at: string;
  signals: SearchSignals;
  superseded_by?: string | null;
  user_id?: string | null;
  agent_id?: string | null;
  session_id?: string | null;
}

export interface SearchResponse {
  results: SearchResult[];
}

// -- history and changes -------------------------------------------------------------------

export interface VersionPublic {
  version_id: number;
  change: ChangeKind;
  recorded_at: string;
  payload: JsonObject;
  memory_type?: MemoryType | null;
  importance?: number | null;
  valid_from?: string | null;
  valid_to?: string | null;
  superseded_by?: string | null;
  api_key_id?: number | null;
}

export interface HistoryResponse {
  /** Newest first. */
  versions: VersionPublic[];
  next_cursor: string | null;
}

/** One change of the tenant's feed: a memory's (`kind` "memory") or an item's. */
export interface ChangePublic extends VersionPublic {
  kind: "memory" | "item";
  namespace: string[];
  key: string;
}

export interface ChangesResponse {
  /** In commit order. */
  changes: ChangePublic[];
  next_cursor: string;
}

// -- graph ---------------------------------------------------------------------------------

export interface LinkPublic {
  from_coord: string;
  to_coord: string;
  link_type: string;
  strength: number;
  metadata: JsonObject;
}

export interface NeighborPublic {
  coord: string;
  link_type: string;
  strength: number;
  depth: number;
}

export interface NeighborsResponse {
  neighbors: NeighborPublic[];
}

export interface PathResponse {
  path: string[];
}

// -- items, namespaces, spaces -------------------------------------------------------------

/** One of your own vectors for an item, at a JSON path of its value (default "$"). */
export interface ItemVectorIn {
  path?: string;
  vector: number[];
}

export interface ItemPublic {
  namespace: string[];
  key: string;
  value: JsonObject;
  created_at: string;
  updated_at: string;
  space?: string | null;
  ttl_minutes?: number | null;
  expires_at?: string | null;
}

export interface ItemSearchResult extends ItemPublic {
  score?: number | null;
}

export interface ItemSearchResponse {
  items: ItemSearchResult[];
}

export interface NamespacesResponse {
  namespaces: string[][];
}

export type SpaceMetric = "cosine" | "ip" | "l2";

export interface SpacePublic {
  name: string;
  dimension: number;
  metric: SpaceMetric;
  collection: string;
}

export interface SpacesResponse {
  spaces: SpacePublic[];
}

export interface SpaceDeleted {
  deleted: boolean;
  items_deleted: number;
}

// -- operations ----------------------------------------------------------------------------

export interface StatsResponse {
  memories: number;
  by_type: Record<string, number>;
  links: number;
  vectors: number;
  items?: number;
  item_vectors?: number;
}

export interface HealthResponse {
  status: "ok" | "degraded" | "down";
  postgres: "up" | "down";
  milvus: "up" | "down";
  redis: "up" | "down";
  errors?: Record<string, string>;
}

/** One line of `GET /export` after the header line: a memory, link, space or item. */
export type ExportRecord = JsonObject & { kind?: string; format?: string };

// -- webhooks ------------------------------------------------------------------------------

export interface WebhookPublic {
  id: number;
  url: string;
  created_at: string;
  cursor: string;
  attempts: number;
  next_attempt_at: string;
  last_error: string | null;
  last_delivered_at: string | null;
}

export interface WebhooksResponse {
  webhooks: WebhookPublic[];
}

export interface WebhookDeleted {
  deleted: boolean;
}

// -- conversations, end users, context -------------------------------------------------------

/** Who spoke a conversation message. */
export type Role = "user" | "assistant" | "system" | "tool";


/** A message to add to a conversation. */
export interface MessageIn {
  /** Your id (posting it again stores nothing); none: the server assigns `#<sequence>`. */
  id?: string | null;
  role: Role;
  name?: string | null;
  /** Non-blank text, up to 50,000 characters. */
  content: string;
  /** When it was said; conversation order is this time, then posting order. */
  created_at?: Timestamp | null;
}

export interface MessagesPosted {
  conversation_id: string;
  messages: { id: string; status: "created" | "unchanged" }[];
}

/** A stored message. */
export interface MessagePublic {
  id: string;
  conversation_id: string;
  role: string;
  name: string | null;
  content: string;
  created_at: string;
  user_id: string | null;
  agent_id: string | null;
  session_id: string | null;
}

/** A page of a conversation's messages in conversation order. */
export interface MessagePage {
  messages: MessagePublic[];
  next_cursor: string | null;
}

export interface ConversationPublic {
  conversation_id: string;
  messages: number;
  first_at: string;
  last_at: string;
  user_id: string | null;
  agent_id: string | null;
}

/** Conversations, newest (last message) first. */
export interface ConversationList {
  conversations: ConversationPublic[];
  next_cursor: string | null;
}

export interface ConversationDeleted {
  deleted: number;
}

export interface MessageHit extends MessagePublic {
  score: number;
}

export interface MessageSearchResponse {
  results: MessageHit[];
}

/** What erasing an end user removed. */
export interface UserErased {
  user_id: string;
  memories: number;
  messages: number;
  items: number;
  versions: number;
}

/** A chat turn: of the conversation sent to `context`, or of its `messages` answer. */
export interface ChatMessage {
  role: Role;
  content: string;
  name?: string | null;
}

export interface ContextSource {
  kind: "memory" | "message";
  /** The memory's coordinate, or the message's id. */
  key: string;
  conversation_id: string | null;
  score: number;
  signals: Record<string, number | null>;
  truncated: boolean;
}

/** A prompt-ready block (`format: "text"`) or chat messages (`"messages"`). */
export interface ContextResponse {
  context: string | ChatMessage[];
  tokens: number;
  budget_tokens: number;
  tokenizer: string;
  sources: ContextSource[];
  truncated: boolean;
}
