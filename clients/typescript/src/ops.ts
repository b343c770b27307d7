/**
 * Operations calls: tenant counts, health and readiness probes, liveness, metrics, export.
 * One function per client method (see client.ts); each returns the `Call` to send.
 */

import { ServerError, transportError } from "./errors.js";
import { type Call, raiseForError, readBody, readJson } from "./http.js";
import type { Scopes } from "./conversation_types.js";
import type { ExportRecord, HealthResponse, StatsResponse } from "./types.js";

export interface ExportOptions extends Scopes {
  /** Also export each record's vectors. */
  with_vectors?: boolean;
}

export function stats(): Call<StatsResponse> {
  return { method: "GET", path: "/stats", retry: "read", read: readJson };
}

function isHealth(body: unknown): body is HealthResponse {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { status?: unknown }).status === "string" &&
    typeof (body as { postgres?: unknown }).postgres === "string"
  );
}

/** A probe's answer: 503 carries the same body naming each failed part, an answer too. */
async function readHealth(response: Response): Promise<HealthResponse> {
  if (response.status === 503) {
    const text = await response.clone().text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null; // not SFM's health body (a proxy's 503, say): the error it is, below
    }
    if (isHealth(body)) {
      return body;
    }
  }
  return readJson<HealthResponse>(response);
}

export function health(): Call<HealthResponse> {
  return { method: "GET", path: "/healthz", retry: "probe", read: readHealth };
}

export function ready(): Call<HealthResponse> {
  return { method: "GET", path: "/readyz", retry: "probe", read: readHealth };
}

export function live(): Call<{ status: string }> {
  return { method: "GET", path: "/livez", retry: "probe", read: readBody };
}

export function metrics(): Call<string> {
  return {
    method: "GET",
    path: "/metrics",
    retry: "probe",
    read: async (response) => {
      await raiseForError(response);
      return response.text();
    },
  };
}

/** The lines of a JSON Lines body, parsed one by one as they arrive. */
async function* jsonLines(response: Response): AsyncGenerator<ExportRecord> {
  if (response.body === null) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (error) {
        // the connection broke off in the middle of the stream
        throw transportError(error, `GET ${response.url}`, false);
      }
      if (chunk.value !== undefined) pending += chunk.value;
      const lines = pending.split("\n");
      pending = chunk.done ? "" : (lines.pop() ?? "");
      for (const line of lines) {
        if (line.trim()) yield parseLine(line, response.status);
      }
      if (chunk.done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

function parseLine(line: string, status: number): ExportRecord {
  try {
    return JSON.parse(line) as ExportRecord;
  } catch {
    throw new ServerError(`an export line is not JSON: ${line.slice(0, 200)}`, {
      statusCode: status,
      error: "UnexpectedResponse",
    });
  }
}

export function exportData(options: ExportOptions = {}): Call<AsyncGenerator<ExportRecord>> {
  return {
    method: "GET",
    path: "/export",
    retry: "read",
    query: {
      with_vectors: options.with_vectors ? "true" : undefined,
      user_id: options.user_id ?? undefined,
      agent_id: options.agent_id ?? undefined,
      session_id: options.session_id ?? undefined,
    },
    stream: true,
    read: async (response) => {
      await raiseForError(response);
      return jsonLines(response);
    },
  };
}
