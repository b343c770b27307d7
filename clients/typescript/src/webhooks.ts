/**
 * Webhook calls: register an endpoint SFM POSTs the tenant's changes to, list, delete.
 * One function per client method (see client.ts); each returns the `Call` to send.
 */

import { type Call, readJson } from "./http.js";
import type { WebhookDeleted, WebhookPublic, WebhooksResponse } from "./types.js";

export interface CreateWebhookOptions {
  /** A `changes` cursor: deliver the changes after it (default: from now on). */
  after?: string;
}

export function createWebhook(
  url: string,
  secret: string,
  options: CreateWebhookOptions = {},
): Call<WebhookPublic> {
  const body = options.after === undefined ? { url, secret } : { url, secret, after: options.after };
  return { method: "POST", path: "/webhooks", retry: "write", body, read: readJson };
}

export function listWebhooks(): Call<WebhooksResponse> {
  return { method: "GET", path: "/webhooks", retry: "read", read: readJson };
}

export function deleteWebhook(id: number): Call<WebhookDeleted> {
  return { method: "DELETE", path: `/webhooks/${id}`, retry: "write", read: readJson };
}
