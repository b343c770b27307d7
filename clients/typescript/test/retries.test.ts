/**
 * Retries, timeouts, error mapping and the consistency token, against real sockets: a
 * closed port, and tiny local HTTP servers that answer what each test needs (503 then 200,
 * a 4xx, a dropped connection, a token header). None of these needs the SFM server.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BadRequest,
  CONSISTENCY_HEADER,
  ConnectionFailed,
  NotFound,
  RateLimited,
  SFMClient,
  SFMClientError,
  ServerError,
  StoreUnavailable,
  Unauthorized,
  backoffDelay,
} from "somafractalmemory";

import { answer, closedPort, localServer } from "./support.js";

const FAST = { retries: 3, backoff: 5, maxBackoff: 20, timeout: 2_000 };
const MEMORY = {
  coord: "1,2,3",
  payload: { text: "x" },
  memory_type: "episodic",
  importance: 0.5,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

test("a closed port: ConnectionFailed after every retry, never sent (reads and writes)", async () => {
  const sfm = new SFMClient(`http://127.0.0.1:${await closedPort()}`, FAST);
  for (const call of [() => sfm.get("1,2,3"), () => sfm.store("1,2,3", { text: "x" })]) {
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(error instanceof ConnectionFailed, String(error));
      assert.equal(error.maybeApplied, false);
      assert.equal(error.statusCode, null);
      assert.equal(error.attempts, 4);
      assert.match(error.detail, /ECONNREFUSED/);
      return true;
    });
  }
});

test("503 then 200: the call succeeds on a later attempt, after a backoff", async () => {
  let failures = 2;
  const server = await localServer((_seen, response) => {
    if (failures > 0) {
      failures -= 1;
      answer(response, 503, { error: "MilvusUnavailableError", detail: "milvus (x): down" });
    } else {
      answer(response, 200, { ...MEMORY, status: "created" });
    }
  });
  try {
    const sfm = new SFMClient(server.url, { ...FAST, apiKey: "k" });
    const started = performance.now();
    const memory = await sfm.get("1,2,3");
    assert.equal(memory.coord, "1,2,3");
    assert.equal(server.seen.length, 3);
    assert.ok(performance.now() - started >= 5 + 10, "waited between attempts");
    assert.equal(server.seen[2]?.headers.authorization, "Bearer k");
    // a write is retried on 503 too: the store was down, so it was not applied
    failures = 1;
    server.seen.length = 0;
    assert.equal((await sfm.store("1,2,3", { text: "x" })).status, "created");
    assert.deepEqual(
      server.seen.map((seen) => [seen.method, seen.url]),
      [
        ["POST", "/memories"],
        ["POST", "/memories"],
      ],
    );
  } finally {
    await server.close();
  }
});

test("503 every time: StoreUnavailable after retries + 1 attempts, naming the store", async () => {
  const server = await localServer((_seen, response) => {
    answer(response, 503, { error: "PostgresUnavailableError", detail: "postgres (db:5432): down" });
  });
  try {
    const sfm = new SFMClient(server.url, { ...FAST, retries: 2 });
    await assert.rejects(sfm.search("x"), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailable && error instanceof ServerError);
      assert.equal(error.error, "PostgresUnavailableError");
      assert.equal(error.detail, "postgres (db:5432): down");
      assert.equal(error.attempts, 3);
      assert.match(String(error), /PostgresUnavailableError \(503\): .* \[after 3 attempts\]/);
      return true;
    });
    assert.equal(server.seen.length, 3);
  } finally {
    await server.close();
  }
});

test("4xx answers are never retried, each mapped to its class", async () => {
  const cases: [number, string, typeof SFMClientError][] = [
    [400, "BadRequestError", BadRequest],
    [401, "UnauthorizedError", Unauthorized],
    [403, "ForbiddenError", SFMClientError],
    [404, "NotFoundError", NotFound],
    [429, "RateLimitedError", RateLimited],
  ];
  let status = 0;
  const server = await localServer((_seen, response) => {
    answer(response, status, { error: "x", detail: "the field 'coord' is wrong" }, {
      "Retry-After": "7",
    });
  });
  try {
    const sfm = new SFMClient(server.url, FAST);
    for (const [code, , Class] of cases) {
      status = code;
      server.seen.length = 0;
      await assert.rejects(sfm.get("1,2,3"), (error: unknown) => {
        assert.ok(error instanceof Class, `${code}: ${String(error)}`);
        assert.equal(error.statusCode, code);
        assert.equal(error.detail, "the field 'coord' is wrong");
        assert.equal(error.attempts, 1);
        assert.equal(error.retryAfter, 7);
        return true;
      });
      assert.equal(server.seen.length, 1, `${code} was sent ${server.seen.length} times`);
    }
  } finally {
    await server.close();
  }
});

test("a dropped connection retries a read, not a write (it may have been applied)", async () => {
  const server = await localServer((_seen, response) => response.socket?.destroy());
  try {
    const sfm = new SFMClient(server.url, FAST);
    await assert.rejects(sfm.store("1,2,3", { text: "x" }), (error: unknown) => {
      assert.ok(error instanceof ConnectionFailed);
      assert.equal(error.maybeApplied, true);
      assert.equal(error.attempts, 1);
      return true;
    });
    assert.equal(server.seen.length, 1);
    await assert.rejects(sfm.get("1,2,3"), ConnectionFailed);
    assert.equal(server.seen.length, 1 + 4);
  } finally {
    await server.close();
  }
});

test("a slow answer times out as ConnectionFailed (maybe applied)", async () => {
  const server = await localServer((_seen, response) => {
    setTimeout(() => answer(response, 200, MEMORY), 1_000);
  });
  try {
    const sfm = new SFMClient(server.url, { ...FAST, timeout: 100, retries: 1 });
    await assert.rejects(sfm.get("1,2,3"), (error: unknown) => {
      assert.ok(error instanceof ConnectionFailed);
      assert.equal(error.maybeApplied, true);
      assert.match(error.detail, /timed out/);
      assert.equal(error.attempts, 2);
      return true;
    });
  } finally {
    await server.close();
  }
});

test("health: a 503 with the health body is an answer, not retried", async () => {
  const down = { status: "down", postgres: "down", milvus: "up", redis: "up", errors: { postgres: "x" } };
  const server = await localServer((_seen, response) => answer(response, 503, down));
  try {
    const sfm = new SFMClient(server.url, FAST);
    assert.deepEqual(await sfm.health(), down);
    assert.equal(server.seen.length, 1);
  } finally {
    await server.close();
  }
});

test("an unreadable 2xx body is a ServerError", async () => {
  const server = await localServer((_seen, response) => {
    response.writeHead(200, { "Content-Type": "text/html" });
    response.end("<html>a proxy</html>");
  });
  try {
    await assert.rejects(new SFMClient(server.url, FAST).stats(), (error: unknown) => {
      return error instanceof ServerError && error.error === "UnexpectedResponse";
    });
  } finally {
    await server.close();
  }
});

test("the consistency token of an answer is sent back with later requests; the newest kept", async () => {
  const tokens = ["41", "45", "43", null, "opaque-token"];
  const server = await localServer((_seen, response, index) => {
    const token = tokens[index];
    answer(response, 200, MEMORY, token ? { [CONSISTENCY_HEADER]: token } : {});
  });
  try {
    const sfm = new SFMClient(server.url, FAST);
    assert.equal(sfm.consistencyToken, null);
    for (let i = 0; i < tokens.length + 1; i += 1) {
      await sfm.get("1,2,3");
    }
    const sent = server.seen.map((seen) => seen.headers[CONSISTENCY_HEADER.toLowerCase()] ?? null);
    // nothing at first; then 41; 45; 43 arrives late (older): 45 kept; none sent: 45 kept;
    // an opaque token replaces it (the last received wins when tokens are not numbers)
    assert.deepEqual(sent, [null, "41", "45", "45", "45", "opaque-token"]);
    assert.equal(sfm.consistencyToken, "opaque-token");
    const other = new SFMClient(server.url, { ...FAST, consistencyToken: sfm.consistencyToken });
    await other.get("1,2,3");
    assert.equal(server.seen.at(-1)?.headers[CONSISTENCY_HEADER.toLowerCase()], "opaque-token");
  } finally {
    await server.close();
  }
});

test("requests carry JSON bodies, repeated namespace labels and escaped coordinates", async () => {
  const server = await localServer((_seen, response) => answer(response, 200, { deleted: true }));
  try {
    const sfm = new SFMClient(server.url, FAST);
    await sfm.deleteItem(["a b", "c/d"], "k");
    await sfm.delete("1, 2/3", { purge: true });
    await sfm.search("q", { valid_at: new Date("2026-05-01T10:00:00Z"), top_k: 3 });
    const [item, memory, search] = server.seen;
    assert.equal(item?.url, "/items?namespace=a+b&namespace=c%2Fd&key=k");
    assert.equal(memory?.url, "/memories/1,%202%2F3?purge=true");
    assert.equal(search?.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(search?.body ?? ""), {
      query: "q",
      valid_at: "2026-05-01T10:00:00.000Z",
      top_k: 3,
    });
  } finally {
    await server.close();
  }
});

test("backoff doubles from backoff up to maxBackoff, plus at most backoff of jitter", () => {
  const low = [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, 250, 4_000, () => 0));
  assert.deepEqual(low, [250, 500, 1_000, 2_000, 4_000, 4_000]);
  const high = backoffDelay(6, 250, 4_000, () => 0.999);
  assert.ok(high > 4_000 && high < 4_250);
});

test("bad options are refused at construction", () => {
  assert.throws(() => new SFMClient("localhost:9595"), TypeError);
  assert.throws(() => new SFMClient("http://x", { retries: -1 }), RangeError);
  assert.throws(() => new SFMClient("http://x", { timeout: 0 }), RangeError);
});
