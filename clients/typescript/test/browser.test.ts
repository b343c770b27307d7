/**
 * The built package in a real browser: Debian's Chromium, headless, loads a page that imports
 * dist/index.js as an ES module and talks to the real SFM server through a same-origin proxy
 * (the server sends no CORS headers). The proxy also adds a consistency token to its answers,
 * to see the browser's client send it back.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { CONSISTENCY_HEADER } from "somafractalmemory";

import { SFM_API_KEY, SFM_URL, uniqueCoord } from "./support.js";

const CHROMIUM = process.env.SFM_CHROMIUM ?? "/usr/bin/chromium";
const DIST = fileURLToPath(new URL("../dist/", import.meta.url));

function page(coord: string): string {
  return `<!doctype html><html><body><pre id="out">not run</pre><script type="module">
import { SFMClient, NotFound } from "/dist/index.js";
const out = document.getElementById("out");
try {
  const sfm = new SFMClient(location.origin + "/sfm", { apiKey: ${JSON.stringify(SFM_API_KEY)} });
  const run = ${JSON.stringify(coord)};
  const stored = await sfm.store(run, { text: "stored from a browser", run });
  const found = await sfm.search("stored from a browser", { top_k: 1, filters: { run } });
  let missing = "no error";
  try { await sfm.get("0,0,0,0,1"); } catch (error) { missing = error instanceof NotFound ? "NotFound" : String(error); }
  out.textContent = JSON.stringify({ status: stored.status, top: found.results[0]?.coord, missing, token: sfm.consistencyToken });
} catch (error) {
  out.textContent = "failed: " + String(error);
}
</script></body></html>`;
}

async function body(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test("the package runs in Chromium against the real server", async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  const coord = uniqueCoord();
  const tokensSent: (string | null)[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void (async () => {
      const url = request.url ?? "/";
      if (url === "/page.html") {
        response.writeHead(200, { "Content-Type": "text/html" });
        response.end(page(coord));
      } else if (url.startsWith("/dist/") && /^[\w/.-]+\.js$/.test(url) && !url.includes("..")) {
        response.writeHead(200, { "Content-Type": "text/javascript" });
        response.end(await readFile(join(DIST, url.slice("/dist/".length))));
      } else if (url.startsWith("/sfm/")) {
        const sent = request.headers[CONSISTENCY_HEADER.toLowerCase()];
        tokensSent.push(typeof sent === "string" ? sent : null);
        const headers: Record<string, string> = {};
        for (const name of ["authorization", "content-type", "accept"]) {
          const value = request.headers[name];
          if (typeof value === "string") headers[name] = value;
        }
        const payload = await body(request);
        const upstream = await fetch(SFM_URL + url.slice("/sfm".length), {
          method: request.method ?? "GET",
          headers,
          body: payload.length > 0 ? payload.toString() : undefined,
        });
        response.writeHead(upstream.status, {
          "Content-Type": upstream.headers.get("content-type") ?? "application/json",
          [CONSISTENCY_HEADER]: String(100 + tokensSent.length),
        });
        response.end(Buffer.from(await upstream.arrayBuffer()));
      } else {
        response.writeHead(404);
        response.end();
      }
    })().catch((error: unknown) => {
      response.writeHead(502);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const profile = await mkdtemp(join(tmpdir(), "sfm-ts-chromium-"));
  try {
    const chromium = spawn(CHROMIUM, [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      "--virtual-time-budget=30000",
      "--dump-dom",
      `http://127.0.0.1:${port}/page.html`,
    ]);
    let dom = "";
    chromium.stdout.on("data", (chunk: Buffer) => (dom += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => chromium.on("close", resolve));
    assert.equal(code, 0, `chromium exited ${code}`);
    const text = /<pre id="out">([^<]*)<\/pre>/.exec(dom)?.[1]?.replace(/&quot;/g, '"') ?? dom;
    assert.ok(text.startsWith("{"), text);
    assert.deepEqual(JSON.parse(text), {
      status: "created",
      top: coord,
      missing: "NotFound",
      token: "103",
    });
    // the first request had no token; each later one sent back the one answered before
    assert.deepEqual(tokensSent, [null, "101", "102"]);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(profile, { recursive: true, force: true });
  }
});
