/**
 * Memory calls: store, batch, get, delete (one, or by scope), list, search, history and the
 * change feed.
 * One function per client method (see client.ts); each returns the `Call` to send.
 */

import { type Call, readJson } from "./http.js";
import type {
  BatchResponse,
  ChangesResponse,
  DeleteResponse,
  HistoryResponse,
  JsonObject,
  MemoryCreate,
  MemoryList,
  MemoryPublic,
  MemoryType,
  MemoryWritten,
  ScopeDeleted,
  Scopes,
  SearchOptions,
  SearchResponse,
  Timestamp,
} from "./types.js";

/** Options of `store`: the body of `POST /memories` beyond coordinate and payload. */
export type StoreOptions = Omit<MemoryCreate, "coord" | "payload"> & {
  /** Keys sent in the body as they are, for options newer servers accept. */
  extra?: JsonObject;
};

export interface GetOptions {
  /** The version current at this time (history). */
  as_of?: Timestamp;
}

export interface DeleteOptions {
  /** Also delete the memory's history (its versions). */
  purge?: boolean;
}

/** Options of `list`: the scopes keep it to the memories of those scopes. */
export interface ListOptions extends Scopes {
  memory_type?: MemoryType;
  /** Page size, 1 to 1,000 (the server's default when omitted: 100). */
  limit?: number;
  /** The `next_cursor` of the page before. */
  cursor?: string;
  /** Also list memories another one superseded. */
  include_superseded?: boolean;
}

/** Options of `deleteMemories`: the scopes (at least one) whose memories go. */
export interface DeleteMemoriesOptions extends Scopes {
  /** Also erase every version of them from the history. */
  purge?: boolean;
}

export interface PageOptions {
  limit?: number;
  cursor?: string;
}

export interface ChangesOptions {
  /** A cursor (a `next_cursor`): the changes after it; from the start without one. */
  after?: string;
  limit?: number;
}

/** A coordinate as a path segment ("/" and spaces escaped, commas kept). */
export function coordPath(coord: string): string {
  return encodeURIComponent(coord).replace(/%2C/gi, ",");
}

/** A time as the server reads it in a query string. */
export function iso(time: Timestamp | undefined): string | undefined {
  return time instanceof Date ? time.toISOString() : time;
}

function withoutUndefined(values: Record<string, unknown>): JsonObject {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

export function store(
  coord: string,
  payload: JsonObject,
  options: StoreOptions = {},
): Call<MemoryWritten> {
  const { extra, ...fields } = options;
  const body = { coord, payload, ...withoutUndefined(fields), ...extra };
  return { method: "POST", path: "/memories", retry: "write", body, read: readJson };
}

export function storeBatch(memories: readonly MemoryCreate[]): Call<BatchResponse> {
  return {
    method: "POST",
    path: "/memories/batch",
    retry: "write",
    body: { memories },
    read: readJson,
  };
}

export function get(coord: string, options: GetOptions = {}): Call<MemoryPublic> {
  return {
    method: "GET",
    path: `/memories/${coordPath(coord)}`,
    retry: "read",
    query: { as_of: iso(options.as_of) },
    read: readJson,
  };
}

export function remove(coord: string, options: DeleteOptions = {}): Call<DeleteResponse> {
  return {
    method: "DELETE",
    path: `/memories/${coordPath(coord)}`,
    retry: "write",
    query: { purge: options.purge ? "true" : undefined },
    read: readJson,
  };
}

export function list(options: ListOptions = {}): Call<MemoryList> {
  return {
    method: "GET",
    path: "/memories",
    retry: "read",
    query: {
      memory_type: options.memory_type,
      limit: options.limit,
      cursor: options.cursor,
      include_superseded: options.include_superseded ? "true" : undefined,
      user_id: options.user_id,
      agent_id: options.agent_id,
      session_id: options.session_id,
    },
    read: readJson,
  };
}

export function removeOfScopes(options: DeleteMemoriesOptions): Call<ScopeDeleted> {
  return {
    method: "DELETE",
    path: "/memories",
    retry: "write",
    query: {
      user_id: options.user_id,
      agent_id: options.agent_id,
      session_id: options.session_id,
      purge: options.purge ? "true" : undefined,
    },
    read: readJson,
  };
}

export function search(query: string | null, options: SearchOptions = {}): Call<SearchResponse> {
  const { extra, ...fields } = options;
  const body = { ...withoutUndefined({ query: query ?? undefined, ...fields }), ...extra };
  return { method: "POST", path: "/memories/search", retry: "read", body, read: readJson };
}

export function history(coord: string, options: PageOptions = {}): Call<HistoryResponse> {
  return {
    method: "GET",
    path: `/memories/${coordPath(coord)}/history`,
    retry: "read",
    query: { limit: options.limit, cursor: options.cursor },
    read: readJson,
  };
}

export function changes(options: ChangesOptions = {}): Call<ChangesResponse> {
  return {
    method: "GET",
    path: "/changes",
    retry: "read",
    query: { after: options.after, limit: options.limit },
    read: readJson,
  };
}
