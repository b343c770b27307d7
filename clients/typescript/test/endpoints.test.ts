import assert from "node:assert/strict";
import { test } from "node:test";

import { SFMClient } from "somafractalmemory";

import { SFM_URL } from "./support.js";

/**
 * Every operation of the server's API and the client method that calls it: "one method per
 * endpoint", checked against the real server's `/openapi.json`, so an endpoint added to the
 * server without a method here (or a method named here that the client lost) fails.
 */
const METHODS: Record<string, string> = {
  "POST /memories": "store",
  "POST /memories/batch": "storeBatch",
  "GET /memories/{coord}": "get",
  "DELETE /memories/{coord}": "delete",
  "GET /memories": "list",
  "DELETE /memories": "deleteMemories",
  "POST /memories/search": "search",
  "GET /memories/{coord}/history": "history",
  "GET /changes": "changes",
  "POST /graph/link": "link",
  "GET /graph/neighbors": "neighbors",
  "GET /graph/path": "path",
  "PUT /items": "putItem",
  "GET /items": "getItem",
  "DELETE /items": "deleteItem",
  "POST /items/search": "searchItems",
  "GET /namespaces": "listNamespaces",
  "GET /items/history": "itemHistory",
  "POST /items/sweep": "sweepItems",
  "POST /spaces": "createSpace",
  "GET /spaces": "listSpaces",
  "DELETE /spaces/{name}": "deleteSpace",
  "POST /conversations/{conversation_id}/messages": "addMessages",
  "GET /conversations/{conversation_id}/messages": "listMessages",
  "GET /conversations": "listConversations",
  "DELETE /conversations/{conversation_id}": "deleteConversation",
  "POST /conversations/search": "searchMessages",
  "DELETE /users/{user_id}": "deleteUser",
  "GET /scopes/{scope}": "listScopeValues",
  "POST /context": "context",
  "POST /webhooks": "createWebhook",
  "GET /webhooks": "listWebhooks",
  "DELETE /webhooks/{webhook_id}": "deleteWebhook",
  "GET /stats": "stats",
  "GET /healthz": "health",
  "GET /readyz": "ready",
  "GET /livez": "live",
  "GET /metrics": "metrics",
  "GET /export": "export",
};

test("every operation of the server's OpenAPI has a client method", async () => {
  const response = await fetch(`${SFM_URL}/openapi.json`);
  assert.equal(response.status, 200);
  const spec = (await response.json()) as { paths: Record<string, Record<string, unknown>> };
  const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((method) => ["get", "post", "put", "delete", "patch"].includes(method))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  // (the pages of /ui and /docs are not in the OpenAPI: they are for people, not programs)
  const api = operations.sort();
  assert.ok(api.length >= 30, `only ${api.length} operations in the OpenAPI`);
  assert.deepEqual(api, Object.keys(METHODS).sort(), "operations without a method, or gone");
  const prototype = SFMClient.prototype as unknown as Record<string, unknown>;
  const missing = Object.values(METHODS).filter((name) => typeof prototype[name] !== "function");
  assert.deepEqual(missing, []);
});
