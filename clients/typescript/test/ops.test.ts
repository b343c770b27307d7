import assert from "node:assert/strict";
import { test } from "node:test";

import { Unauthorized } from "somafractalmemory";

import { SFM_URL, client } from "./support.js";

test("health answers each store's state", async () => {
  const health = await client().health();
  assert.deepEqual(
    { status: health.status, postgres: health.postgres, milvus: health.milvus, redis: health.redis },
    { status: "ok", postgres: "up", milvus: "up", redis: "up" },
  );
});

test("a wrong key is Unauthorized (401), sent once", async () => {
  const sfm = client({ apiKey: "not-a-key" });
  await assert.rejects(sfm.stats(), (error: unknown) => {
    assert.ok(error instanceof Unauthorized);
    assert.equal(error.statusCode, 401);
    assert.equal(error.attempts, 1);
    assert.match(String(error), /\(401\)/);
    return true;
  });
  assert.ok(SFM_URL.startsWith("http://"));
});

test("ready, live and metrics answer", async () => {
  const sfm = client({ apiKey: null });
  assert.equal((await sfm.ready()).status, "ok");
  assert.deepEqual(await sfm.live(), { status: "alive" });
  assert.match(await sfm.metrics(), /^api_requests_total\{/m);
});
