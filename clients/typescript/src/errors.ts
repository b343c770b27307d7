/**
 * The errors the client throws, one class per kind of answer the API gives; the same names
 * and tree as the Python client's (`somafractalmemory.client.errors`).
 *
 * The API answers every error as `{"error": "<ErrorClass>", "detail": "<what and why>"}`.
 * The class is chosen by the HTTP status (the server's error names all map through their
 * status, so the name adds nothing to the choice); `error` keeps the server's name.
 *
 *     SFMClientError                   any failure; `statusCode` is null when nothing answered
 *     ├── InvalidInput (422)           a field is wrong; `detail` names it
 *     │   └── BadRequest (400)         the body was not the JSON object the endpoint expects
 *     ├── Unauthorized (401)           missing, unknown or revoked API key
 *     ├── NotFound (404)               no such memory, link or path for this key's tenant
 *     ├── Conflict (409)
 *     ├── PayloadTooLarge (413)
 *     ├── RateLimited (429)            over the key's budget; `retryAfter` says how long to wait
 *     ├── ServerError (5xx)            the server failed, or answered something unreadable
 *     │   └── StoreUnavailable (503)   a store is down; `detail` names it and its address
 *     └── ConnectionFailed             no answer: refused, timed out, connection dropped
 *
 * Other statuses (403, say) are a plain `SFMClientError` with their `statusCode`.
 */

export interface ErrorOptions {
  statusCode?: number | null;
  /** The server's error name (`NotFoundError`, ...); the class name when not given. */
  error?: string | null;
  attempts?: number;
  cause?: unknown;
}

/** Base of every error the client throws. */
export class SFMClientError extends Error {
  static readonly defaultStatus: number | null = null;
  /** The answer's HTTP status; null when nothing answered. */
  readonly statusCode: number | null;
  /** The server's error name, or this class's name. */
  readonly error: string;
  /** What went wrong, as the server said it. */
  readonly detail: string;
  /** How many times the request was sent before the client gave up. */
  attempts: number;
  /** Seconds the server asked the caller to wait (its `Retry-After` header), if any. */
  retryAfter: number | null = null;

  constructor(detail: string, options: ErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    const own = this.constructor as typeof SFMClientError;
    this.name = own.name;
    this.statusCode = options.statusCode ?? own.defaultStatus;
    this.error = options.error || own.name;
    this.detail = detail;
    this.attempts = options.attempts ?? 1;
  }

  /** `"NotFoundError (404): no memory at 1,2,3 [after 2 attempts]"`, as Python's `str()`. */
  override toString(): string {
    const status = this.statusCode === null ? "" : ` (${this.statusCode})`;
    const tries = this.attempts > 1 ? ` [after ${this.attempts} attempts]` : "";
    return `${this.error}${status}: ${this.detail}${tries}`;
  }
}

/** A field of the request is not acceptable (422); `detail` names the field. */
export class InvalidInput extends SFMClientError {
  static override readonly defaultStatus: number | null = 422;
}

/** The body could not be read as the JSON object the endpoint expects (400). */
export class BadRequest extends InvalidInput {
  static override readonly defaultStatus: number | null = 400;
}

/** No valid API key came with the request (401). */
export class Unauthorized extends SFMClientError {
  static override readonly defaultStatus: number | null = 401;
}

/** The key's tenant has no such memory, link or path (404). */
export class NotFound extends SFMClientError {
  static override readonly defaultStatus: number | null = 404;
}

/** The request contradicts what is stored (409). */
export class Conflict extends SFMClientError {
  static override readonly defaultStatus: number | null = 409;
}

/** The body is over the server's `SOMA_MAX_BODY_BYTES` (413). */
export class PayloadTooLarge extends SFMClientError {
  static override readonly defaultStatus: number | null = 413;
}

/** Too many requests (429); never retried by the client. */
export class RateLimited extends SFMClientError {
  static override readonly defaultStatus: number | null = 429;
}

/** The server failed (5xx) or answered something the client cannot read. */
export class ServerError extends SFMClientError {
  static override readonly defaultStatus: number | null = 500;
}

/** A store behind the API is down (503); `detail` names it and its address. */
export class StoreUnavailable extends ServerError {
  static override readonly defaultStatus: number | null = 503;
}

/**
 * Nothing answered: the connection was refused, timed out or dropped.
 *
 * `maybeApplied` is false when the request certainly never reached the server (the
 * connection could not be opened), true when it may have been processed before the failure
 * (and whenever the runtime does not say which: a browser's `fetch` never does).
 */
export class ConnectionFailed extends SFMClientError {
  readonly maybeApplied: boolean;

  constructor(detail: string, options: ErrorOptions & { maybeApplied: boolean }) {
    super(detail, { ...options, statusCode: null });
    this.maybeApplied = options.maybeApplied;
  }
}

const BY_STATUS: ReadonlyMap<number, typeof SFMClientError> = new Map<
  number,
  typeof SFMClientError
>([
  [400, BadRequest],
  [401, Unauthorized],
  [404, NotFound],
  [409, Conflict],
  [413, PayloadTooLarge],
  [422, InvalidInput],
  [429, RateLimited],
  [503, StoreUnavailable],
]);

/** The client class for an HTTP status. */
export function classForStatus(status: number): typeof SFMClientError {
  return BY_STATUS.get(status) ?? (status >= 500 ? ServerError : SFMClientError);
}

/**
 * The error for an error answer. `retryAfter` is the answer's `Retry-After` header
 * (seconds; an HTTP date is ignored).
 */
export function errorFor(
  status: number,
  name: string | null,
  detail: string,
  retryAfter: string | null = null,
): SFMClientError {
  const Class = classForStatus(status);
  const error = new Class(detail, { statusCode: status, error: name });
  const seconds = retryAfter?.trim() ?? "";
  if (/^\d+$/.test(seconds)) {
    error.retryAfter = Number(seconds);
  }
  return error;
}

// Error codes of Node's fetch (undici) meaning the connection was never opened: the request
// certainly did not reach the server.
const NEVER_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function codeOf(error: unknown): string | null {
  if (typeof error !== "object" || error === null) {
    return null;
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    return code;
  }
  // Node 20 wraps the per-address failures of one connect in an AggregateError.
  const inner = (error as { errors?: unknown }).errors;
  return Array.isArray(inner) && inner.length > 0 ? codeOf(inner[0]) : null;
}

/**
 * Translate a failure of `fetch` itself (no answer) into `ConnectionFailed`: the one place
 * that knows how runtimes report them. `timedOut` says the client's own timeout aborted it.
 */
export function transportError(error: unknown, where: string, timedOut: boolean): ConnectionFailed {
  if (timedOut) {
    return new ConnectionFailed(`${where}: timed out`, { maybeApplied: true, cause: error });
  }
  const cause = (error as { cause?: unknown } | null)?.cause;
  const code = codeOf(cause) ?? codeOf(error);
  const reason =
    (cause instanceof Error && cause.message) ||
    (error instanceof Error && error.message) ||
    String(error);
  const label = code ?? (error instanceof Error ? error.name : "Error");
  return new ConnectionFailed(`${where}: ${label}: ${reason || "no reason given"}`, {
    maybeApplied: code === null || !NEVER_SENT.has(code),
    cause: error,
  });
}
