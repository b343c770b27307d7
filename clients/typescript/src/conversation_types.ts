/**
 * The API's JSON of scopes, conversations, end users and context (field names as on the
 * wire), mirroring `somafractalmemory.scope_schemas`, `message_schemas` and
 * `context_schemas`; the rest is in types.ts, which re-exports these.
 */

import type { SearchSignals, Timestamp } from "./types.js";

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
  /** Rank and raw score (cosine, `ts_rank_cd`) in each signal that found it. */
  signals?: SearchSignals;
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
  /** Rank and raw score in each signal that found the hit, memories and messages alike. */
  signals: SearchSignals;
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
