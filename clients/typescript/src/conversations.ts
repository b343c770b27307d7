/**
 * Conversations, end users and context: the calls of `/conversations...`, `/users/{user_id}`
 * and `POST /context`. One function per client method (see client.ts); each returns the
 * `Call` to send. Adding messages is idempotent by message id, so it retries as a write.
 */

import { type Call, readJson } from "./http.js";
import type {
  ChatMessage,
  ContextResponse,
  ConversationDeleted,
  ConversationList,
  JsonObject,
  MessageIn,
  MessagePage,
  MessageSearchResponse,
  MessagesPosted,
  Scopes,
  SearchMode,
  UserErased,
} from "./types.js";

export interface ListMessagesOptions {
  /** 1 to 1,000 (default 100). */
  limit?: number;
  cursor?: string | null;
}

export interface ListConversationsOptions extends Scopes {
  limit?: number;
  cursor?: string | null;
}

export interface SearchMessagesOptions extends Scopes {
  top_k?: number;
  mode?: SearchMode;
  /** Only this conversation's messages. */
  conversation_id?: string | null;
  /** Fields of the message that must equal these (e.g. `{ role: "user" }`). */
  filters?: JsonObject | null;
  /** Only messages at least this relevant, in [0, 1] on the calibrated scale (default: off). */
  min_score?: number | null;
}

export interface DeleteConversationOptions {
  /** Remove the messages' history too. */
  purge?: boolean;
}

/** Options of `context`; the scopes keep it to the records of those scopes. */
export interface ContextOptions extends Scopes {
  /** Keep the messages drawn on to this conversation's. */
  conversation_id?: string | null;
  /** The conversation's recent turns instead of a query (give one of the two). */
  messages?: readonly ChatMessage[] | null;
  /** The most tokens the context may hold (32 to 32,000; default 1,000). */
  budget_tokens?: number;
  /** Which records to draw on (default: every kind the server draws from). */
  include?: readonly ("memories" | "messages")[] | null;
  /** Neighbouring turns on each side of a message hit (default 1). */
  window?: number;
  format?: "text" | "messages";
  /** Which tokenizer counts the budget (default: the embedding model's). */
  tokenizer?: string | null;
  filters?: JsonObject | null;
  /** Only sources at least this relevant, in [0, 1] (the server's default: 0.3). */
  min_score?: number;
}

function segment(value: string): string {
  return encodeURIComponent(value);
}

function defined(values: Record<string, unknown>): JsonObject {
  return Object.fromEntries(
    Object.entries(values).filter(([, v]) => v !== undefined && v !== null),
  );
}

export function addMessages(
  conversationId: string,
  messages: readonly MessageIn[],
  scopes: Scopes = {},
): Call<MessagesPosted> {
  return {
    method: "POST",
    path: `/conversations/${segment(conversationId)}/messages`,
    retry: "write",
    body: { messages, ...defined({ ...scopes }) },
    read: readJson,
  };
}

export function listMessages(
  conversationId: string,
  options: ListMessagesOptions = {},
): Call<MessagePage> {
  return {
    method: "GET",
    path: `/conversations/${segment(conversationId)}/messages`,
    retry: "read",
    query: { limit: options.limit, cursor: options.cursor },
    read: readJson,
  };
}

export function listConversations(options: ListConversationsOptions = {}): Call<ConversationList> {
  const { limit, cursor, user_id, agent_id, session_id } = options;
  return {
    method: "GET",
    path: "/conversations",
    retry: "read",
    query: { limit, cursor, user_id, agent_id, session_id },
    read: readJson,
  };
}

export function deleteConversation(
  conversationId: string,
  options: DeleteConversationOptions = {},
): Call<ConversationDeleted> {
  return {
    method: "DELETE",
    path: `/conversations/${segment(conversationId)}`,
    retry: "write",
    query: { purge: options.purge ? "true" : undefined },
    read: readJson,
  };
}

export function searchMessages(
  query: string,
  options: SearchMessagesOptions = {},
): Call<MessageSearchResponse> {
  return {
    method: "POST",
    path: "/conversations/search",
    retry: "read",
    body: { query, ...defined({ ...options }) },
    read: readJson,
  };
}

export function deleteUser(userId: string): Call<UserErased> {
  return { method: "DELETE", path: `/users/${segment(userId)}`, retry: "write", read: readJson };
}

export function context(query: string | null, options: ContextOptions = {}): Call<ContextResponse> {
  return {
    method: "POST",
    path: "/context",
    retry: "read",
    body: defined({ query, ...options }),
    read: readJson,
  };
}
