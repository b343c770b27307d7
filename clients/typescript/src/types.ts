/**
 * The API's JSON, as the server sends and takes it (field names as on the wire, snake_case).
 *
 * These mirror the OpenAPI schemas of the server (`GET /openapi.json`, the pydantic models in
 * `somafractalmemory.schemas`, `history_schemas`, `item_schemas` and `webhook_schemas`).
 * Timestamps are RFC 3339 strings; a `Date` is accepted wherever the client sends one.
 */

import type { Scopes, ScopesPublic } from "./conversation_types.js";

export type * from "./conversation_types.js";

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
  /** Only results at least this relevant, in [0, 1] (default: none; see the README's scores). */
  min_score?: number | null;
  /** Keys sent in the body as they are, for options newer servers accept. */
  extra?: JsonObject;
}

/** Ranks of a result in each signal (null: not found by that signal), link depth, and each
 * signal's raw score (cosine similarity; PostgreSQL `ts_rank_cd`). */
export interface SearchSignals {
  vector?: number | null;
  keyword?: number | null;
  link?: number | null;
  vector_score?: number | null;
  keyword_score?: number | null;
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
  /** Rank and raw score in each signal that found it. */
  signals?: SearchSignals;
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
