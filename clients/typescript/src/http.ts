/**
 * How a call is sent: URL and headers, one attempt under a timeout, retries with bounded
 * exponential backoff and jitter, error answers read into the error tree, and the
 * consistency token carried from answers to later requests.
 *
 * Each endpoint module builds a `Call` (method, path, query, body, how to read the answer,
 * its retry policy); `Transport.send` is the only code that touches `fetch`.
 */

import {
  ConnectionFailed,
  SFMClientError,
  ServerError,
  StoreUnavailable,
  errorFor,
  transportError,
} from "./errors.js";

/** The header a write answer carries and a later request sends back. */
export const CONSISTENCY_HEADER = "SFM-Consistency-Token";

/**
 * When a failed call is sent again (with backoff, up to `retries` more times); the same
 * policies as the Python client's `Retry`. 4xx answers are never retried, whatever the policy.
 *
 * - `read` (GET, search, stats): on any connection failure and on 503.
 * - `write` (store, batch, link, delete, items, ...; all idempotent): on 503, and on a
 *   connection failure only when the request certainly never reached the server (refused,
 *   connect timeout); a write that timed out while the server worked on it is not sent again.
 * - `probe` (health, readiness): on connection failures; a 503 is an answer, not a failure.
 */
export type RetryPolicy = "read" | "write" | "probe";

/** Whether `error`, thrown by one attempt of a call under `policy`, is worth another. */
export function shouldRetry(policy: RetryPolicy, error: unknown): boolean {
  if (error instanceof ConnectionFailed) {
    return policy !== "write" || !error.maybeApplied;
  }
  return error instanceof StoreUnavailable && policy !== "probe";
}

export type QueryValue = string | number | boolean | readonly string[] | null | undefined;

/** One request and how to read its answer. */
export interface Call<T> {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  retry: RetryPolicy;
  /** Omitted (undefined or null) values are not sent; arrays are repeated parameters. */
  query?: Record<string, QueryValue>;
  /** Sent as JSON (a `Date` as its ISO string). */
  body?: unknown;
  /** Read the answer: return the value, or throw (`raiseForError`) for an error answer. */
  read: (response: Response) => Promise<T>;
  /** The answer is streamed: the timeout covers only the wait for its headers. */
  stream?: boolean;
}

export interface ClientOptions {
  /** The API key (`Authorization: Bearer <key>`); not needed for health probes. */
  apiKey?: string | null;
  /** Milliseconds one attempt may take (default 30,000). */
  timeout?: number;
  /** How many more times a failed call is sent (default 3; 0 sends each call once). */
  retries?: number;
  /** Milliseconds of the first wait between attempts, doubled each time (default 250). */
  backoff?: number;
  /** The longest wait between attempts, before jitter, in milliseconds (default 4,000). */
  maxBackoff?: number;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** A consistency token to start with (from another client, say). */
  consistencyToken?: string | null;
}

export const DEFAULT_TIMEOUT = 30_000;
export const DEFAULT_RETRIES = 3;
export const DEFAULT_BACKOFF = 250;
export const DEFAULT_MAX_BACKOFF = 4_000;

/**
 * Milliseconds to wait after failed attempt `attempt` (1-based): `backoff`, `2 * backoff`,
 * `4 * backoff` ... capped at `maxBackoff`, plus up to `backoff` of random jitter so that
 * many clients do not retry in step (as the Python client's tenacity schedule).
 */
export function backoffDelay(
  attempt: number,
  backoff: number,
  maxBackoff: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(backoff * 2 ** (attempt - 1), maxBackoff);
  return base + random() * backoff;
}

/**
 * Which of two consistency tokens to keep. Tokens are opaque to the client; when both are
 * unsigned decimal integers (a timestamp) the greater one is the newer, so answers arriving
 * out of order do not move the token back; otherwise the one received last wins.
 */
export function newerToken(kept: string | null, received: string): string {
  if (kept !== null && /^\d+$/.test(kept) && /^\d+$/.test(received)) {
    return BigInt(received) >= BigInt(kept) ? received : kept;
  }
  return received;
}

/** Read an error answer into the error tree and throw it; do nothing for 1xx-3xx. */
export async function raiseForError(response: Response): Promise<void> {
  if (response.status < 400) {
    return;
  }
  const text = await response.text();
  let name: string | null = null;
  let detail = text.slice(0, 1000) || response.statusText || `HTTP ${response.status}`;
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null; // not JSON (a proxy's page, say): the text is the detail
  }
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    const fields = body as { error?: unknown; detail?: unknown };
    name = typeof fields.error === "string" ? fields.error : null;
    if (fields.detail !== undefined && fields.detail !== null) {
      detail = typeof fields.detail === "string" ? fields.detail : JSON.stringify(fields.detail);
    }
  }
  throw errorFor(response.status, name, detail, response.headers.get("Retry-After"));
}

/** Read a 2xx answer's JSON object; anything else is an error. */
export async function readJson<T>(response: Response): Promise<T> {
  await raiseForError(response);
  return readBody<T>(response);
}

/** The answer's JSON object whatever its status; `ServerError` when it is not one. */
export async function readBody<T>(response: Response): Promise<T> {
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ServerError(
      `${response.url || "the server"} answered ${response.status} with a body that is not ` +
        `a JSON object: ${text.slice(0, 200)}`,
      { statusCode: response.status, error: "UnexpectedResponse" },
    );
  }
  return body as T;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One server, one API key, and how patiently to talk to it. */
export class Transport {
  readonly baseUrl: string;
  readonly timeout: number;
  readonly retries: number;
  readonly backoff: number;
  readonly maxBackoff: number;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  #token: string | null;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    if (!/^https?:\/\//.test(baseUrl)) {
      throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(baseUrl)}`);
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.maxBackoff = options.maxBackoff ?? DEFAULT_MAX_BACKOFF;
    if (!(this.timeout > 0)) throw new RangeError("timeout must be positive");
    if (!Number.isInteger(this.retries) || this.retries < 0) {
      throw new RangeError("retries must be an integer, 0 or more");
    }
    if (!(this.backoff >= 0) || !(this.maxBackoff >= 0)) {
      throw new RangeError("backoff and maxBackoff must be 0 or more");
    }
    this.#headers = { Accept: "application/json", ...options.headers };
    if (options.apiKey) {
      this.#headers.Authorization = `Bearer ${options.apiKey}`;
    }
    const given = options.fetch ?? globalThis.fetch;
    if (typeof given !== "function") {
      throw new TypeError("no fetch: pass options.fetch on a runtime without a global fetch");
    }
    // called as a plain function: a browser's fetch throws "Illegal invocation" when called
    // as a method of another object
    this.#fetch = (input, init) => given(input, init);
    this.#token = options.consistencyToken ?? null;
  }

  /** The newest consistency token the server sent (sent back with every request). */
  get consistencyToken(): string | null {
    return this.#token;
  }

  set consistencyToken(token: string | null) {
    this.#token = token;
  }

  url(call: Call<unknown>): string {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value === undefined || value === null) continue;
      if (Array.isArray(value)) {
        for (const one of value) search.append(name, String(one));
      } else {
        search.append(name, String(value));
      }
    }
    const query = search.toString();
    return `${this.baseUrl}${call.path}${query ? `?${query}` : ""}`;
  }

  /** Send `call`, retrying as its policy says; the value its `read` gives. */
  async send<T>(call: Call<T>): Promise<T> {
    let attempt = 0;
    for (;;) {
      attempt += 1;
      try {
        return await this.#attempt(call);
      } catch (error) {
        if (error instanceof SFMClientError) {
          error.attempts = attempt;
        }
        if (attempt > this.retries || !shouldRetry(call.retry, error)) {
          throw error;
        }
      }
      await sleep(backoffDelay(attempt, this.backoff, this.maxBackoff));
    }
  }

  async #attempt<T>(call: Call<T>): Promise<T> {
    const url = this.url(call);
    const headers: Record<string, string> = { ...this.#headers };
    if (this.#token !== null) {
      headers[CONSISTENCY_HEADER] = this.#token;
    }
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.body); // a Date becomes its ISO 8601 string (toJSON)
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeout);
    try {
      let response: Response;
      try {
        response = await this.#fetch(url, {
          method: call.method,
          headers,
          body,
          signal: controller.signal,
        });
      } catch (error) {
        throw transportError(error, `${call.method} ${url}`, timedOut);
      }
      const token = response.headers.get(CONSISTENCY_HEADER);
      if (token) {
        this.#token = newerToken(this.#token, token);
      }
      if (call.stream) {
        clearTimeout(timer);
      }
      try {
        return await call.read(response);
      } catch (error) {
        if (error instanceof SFMClientError) throw error;
        // the body broke off (or timed out) while it was being read
        throw transportError(error, `${call.method} ${url}`, timedOut);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
