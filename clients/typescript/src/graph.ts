/**
 * Graph calls: link two memories, walk to neighbours, find a path.
 * One function per client method (see client.ts); each returns the `Call` to send.
 */

import { type Call, readJson } from "./http.js";
import type { Direction, JsonObject, LinkPublic, NeighborsResponse, PathResponse } from "./types.js";

export interface LinkOptions {
  /** Default "related". */
  link_type?: string;
  /** Default 1. */
  strength?: number;
  metadata?: JsonObject;
}

export interface NeighborsOptions {
  /** How many links away (default 1). */
  k_hop?: number;
  limit?: number;
  link_type?: string;
  /** Default "out". */
  direction?: Direction;
}

export interface PathOptions {
  /** The longest path looked for, in links (default 5). */
  max_length?: number;
  link_type?: string;
  direction?: Direction;
}

export function link(from: string, to: string, options: LinkOptions = {}): Call<LinkPublic> {
  const body = {
    from_coord: from,
    to_coord: to,
    link_type: options.link_type ?? "related",
    strength: options.strength ?? 1.0,
    metadata: options.metadata ?? {},
  };
  return { method: "POST", path: "/graph/link", retry: "write", body, read: readJson };
}

export function neighbors(coord: string, options: NeighborsOptions = {}): Call<NeighborsResponse> {
  return {
    method: "GET",
    path: "/graph/neighbors",
    retry: "read",
    query: { coord, ...options },
    read: readJson,
  };
}

export function path(from: string, to: string, options: PathOptions = {}): Call<PathResponse> {
  return {
    method: "GET",
    path: "/graph/path",
    retry: "read",
    query: { from_coord: from, to_coord: to, ...options },
    read: readJson,
  };
}
