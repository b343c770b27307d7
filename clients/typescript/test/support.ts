/**
 * What the tests share: the server under test (from the environment `make test-typescript`
 * sets), unique names, and tiny local HTTP servers standing in for a failing or token-sending
 * server (the retry and token tests; the API tests talk to the real SFM server).
 */

import assert from "node:assert/strict";
import { randomInt, randomUUID } from "node:crypto";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

import { SFMClient, type ClientOptions } from "somafractalmemory";

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run the tests with \`make test-typescript\``);
  return value;
}

export const SFM_URL = required("SFM_URL");
export const SFM_API_KEY = required("SFM_API_KEY");
/** A second tenant's key: isolation and tenant-wide counts. */
export const SFM_API_KEY_2 = required("SFM_API_KEY_2");

/** A client of the real server, for the first tenant unless `apiKey` says otherwise. */
export function client(options: ClientOptions = {}): SFMClient {
  return new SFMClient(SFM_URL, { apiKey: SFM_API_KEY, ...options });
}

/** A coordinate no other test uses. */
export function uniqueCoord(): string {
  return `${randomInt(1, 2 ** 40)},${randomInt(1, 2 ** 40)},${randomInt(1, 2 ** 40)}`;
}

/** A label no other test uses. */
export function uniqueLabel(prefix = "t"): string {
  return `${prefix}-${randomUUID().slice(0, 12)}`;
}

/** What the local server saw of one request. */
export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export type Handler = (seen: Seen, response: ServerResponse, index: number) => void;

/** A local HTTP server answering with `handler`; records every request it got. */
export async function localServer(
  handler: Handler,
): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const one: Seen = {
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(one);
      handler(one, response, seen.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** Answer JSON with `status` (and `headers`). */
export function answer(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { "Content-Type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

/** A TCP port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
