/**
 * Scope calls: the distinct `user_id`, `agent_id` and `session_id` values of the tenant's
 * records (memories, items and conversation messages). One function per client method (see
 * client.ts); each returns the `Call` to send.
 */

import { type Call, readJson } from "./http.js";
import type { ScopeName, ScopeValues } from "./types.js";

export interface ScopeValuesOptions {
  /** Page size, 1 to 1,000 (default 100). */
  limit?: number;
  /** The `next_cursor` of the page before. */
  cursor?: string | null;
}

export function listScopeValues(
  scope: ScopeName,
  options: ScopeValuesOptions = {},
): Call<ScopeValues> {
  return {
    method: "GET",
    path: `/scopes/${encodeURIComponent(scope)}`,
    retry: "read",
    query: { limit: options.limit, cursor: options.cursor },
    read: readJson,
  };
}
