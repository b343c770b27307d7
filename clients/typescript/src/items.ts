/**
 * Item, namespace and space calls (the LangGraph store model: a value at a namespace and
 * key). One function per client method (see client.ts); each returns the `Call` to send.
 *
 * `getItem` answers null for an absent (or expired) item and `deleteItem` false, rather than
 * throwing `NotFound`: "is it there?" is the question those calls ask (as in Python).
 */

import { type Call, readJson } from "./http.js";
import type { PageOptions } from "./memories.js";
import type {
  HistoryResponse,
  ItemPublic,
  ItemSearchResponse,
  ItemVectorIn,
  JsonObject,
  NamespacesResponse,
  SearchMode,
  SpaceDeleted,
  SpaceMetric,
  SpacePublic,
  SpacesResponse,
} from "./types.js";

export interface PutItemOptions {
  /** JSON paths of the value to embed, or false for none (default: the whole value). */
  index?: string[] | false | null;
  ttl_minutes?: number | null;
  /** A registered space, with `vectors`: your own vectors instead of the model's. */
  space?: string | null;
  vectors?: ItemVectorIn[] | null;
}

export interface GetItemOptions {
  /** Whether the read extends the item's TTL (default true). */
  refresh_ttl?: boolean;
  include_expired?: boolean;
}

export interface SearchItemsOptions {
  query?: string | null;
  vector?: number[] | null;
  mode?: SearchMode;
  space?: string | null;
  filter?: JsonObject | null;
  limit?: number;
  offset?: number;
  refresh_ttl?: boolean;
  include_expired?: boolean;
  /** Only items at least this relevant, in [0, 1] on the calibrated scale (default: off;
   * needs `query` or `vector`). */
  min_score?: number | null;
}

export interface ListNamespacesOptions {
  prefix?: string[];
  /** `*` matches any one label. */
  suffix?: string[];
  max_depth?: number;
  limit?: number;
  offset?: number;
  include_expired?: boolean;
}

function dropUndefined<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(values).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

export function putItem(
  namespace: readonly string[],
  key: string,
  value: JsonObject,
  options: PutItemOptions = {},
): Call<ItemPublic> {
  const body = { namespace, key, value, ...dropUndefined(options) };
  return { method: "PUT", path: "/items", retry: "write", body, read: readJson };
}

export function getItem(
  namespace: readonly string[],
  key: string,
  options: GetItemOptions = {},
): Call<ItemPublic | null> {
  return {
    method: "GET",
    path: "/items",
    retry: "read",
    query: { namespace, key, ...options },
    read: async (response) => {
      if (response.status === 404) {
        await response.body?.cancel();
        return null;
      }
      return readJson<ItemPublic>(response);
    },
  };
}

export function deleteItem(namespace: readonly string[], key: string): Call<boolean> {
  return {
    method: "DELETE",
    path: "/items",
    retry: "write",
    query: { namespace, key },
    read: async (response) => {
      if (response.status === 404) {
        await response.body?.cancel();
        return false;
      }
      return (await readJson<{ deleted: boolean }>(response)).deleted;
    },
  };
}

export function searchItems(
  namespacePrefix: readonly string[] = [],
  options: SearchItemsOptions = {},
): Call<ItemSearchResponse> {
  const body = { namespace_prefix: namespacePrefix, ...dropUndefined(options) };
  return { method: "POST", path: "/items/search", retry: "read", body, read: readJson };
}

export function listNamespaces(options: ListNamespacesOptions = {}): Call<NamespacesResponse> {
  return { method: "GET", path: "/namespaces", retry: "read", query: { ...options }, read: readJson };
}

export function itemHistory(
  namespace: readonly string[],
  key: string,
  options: PageOptions = {},
): Call<HistoryResponse> {
  return {
    method: "GET",
    path: "/items/history",
    retry: "read",
    query: { namespace, key, limit: options.limit, cursor: options.cursor },
    read: readJson,
  };
}

export function sweepItems(): Call<number> {
  return {
    method: "POST",
    path: "/items/sweep",
    retry: "write",
    read: async (response) => (await readJson<{ deleted: number }>(response)).deleted,
  };
}

export function createSpace(
  name: string,
  dimension: number,
  metric: SpaceMetric = "cosine",
): Call<SpacePublic> {
  const body = { name, dimension, metric };
  return { method: "POST", path: "/spaces", retry: "write", body, read: readJson };
}

export function listSpaces(): Call<SpacesResponse> {
  return { method: "GET", path: "/spaces", retry: "read", read: readJson };
}

export function deleteSpace(name: string): Call<SpaceDeleted> {
  return {
    method: "DELETE",
    path: `/spaces/${encodeURIComponent(name)}`,
    retry: "write",
    read: readJson,
  };
}
