/**
 * Tenant-wide answers (stats, listing, the change feed, export) on the second tenant, which
 * only this file uses: its counts are exactly what these tests wrote, in this order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFound, type ChangesResponse, type ExportRecord } from "somafractalmemory";

import { SFM_API_KEY_2, client, uniqueCoord } from "./support.js";

const sfm = client({ apiKey: SFM_API_KEY_2 });
const coords = [uniqueCoord(), uniqueCoord(), uniqueCoord()];

test("stats count the tenant's memories, types, links and vectors", async () => {
  const before = await sfm.stats();
  assert.deepEqual([before.memories, before.links, before.vectors], [0, 0, 0]);
  await sfm.store(coords[0] ?? "", { text: "first memory" });
  await sfm.store(coords[1] ?? "", { text: "second memory" });
  await sfm.store(coords[2] ?? "", { text: "a general fact" }, { memory_type: "semantic" });
  await sfm.link(coords[0] ?? "", coords[1] ?? "");
  const after = await sfm.stats();
  assert.deepEqual(
    [after.memories, after.by_type, after.links, after.vectors],
    [3, { episodic: 2, semantic: 1 }, 1, 3],
  );
});

test("list pages through the memories; iterMemories yields them all", async () => {
  const first = await sfm.list({ limit: 2 });
  assert.equal(first.memories.length, 2);
  assert.ok(first.next_cursor);
  const second = await sfm.list({ limit: 2, cursor: first.next_cursor });
  assert.equal(second.memories.length, 1);
  assert.equal(second.next_cursor, null);
  const listed = [...first.memories, ...second.memories].map((m) => m.coord);
  assert.deepEqual([...listed].sort(), [...coords].sort());

  const all: string[] = [];
  for await (const memory of sfm.iterMemories({ limit: 1 })) {
    all.push(memory.coord);
  }
  assert.deepEqual(all, listed);
  const semantic = await sfm.list({ memory_type: "semantic" });
  assert.deepEqual(
    semantic.memories.map((m) => m.coord),
    [coords[2]],
  );
});

/**
 * The feed shows a change once every older transaction of the database has ended, and the
 * other test files write at the same time: poll until `count` changes are there.
 */
async function changesAfter(after: string | undefined, count: number): Promise<ChangesResponse> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const feed = await sfm.changes({ after, limit: 10 });
    if (feed.changes.length >= count || Date.now() > deadline) return feed;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("changes lists the tenant's writes in commit order and resumes after a cursor", async () => {
  const feed = await changesAfter(undefined, 3);
  assert.deepEqual(
    feed.changes.map((c) => [c.kind, c.key, c.change]),
    coords.map((coord) => ["memory", coord, "created"]),
  );
  const empty = await sfm.changes({ after: feed.next_cursor });
  assert.deepEqual(empty.changes, []);
  await sfm.delete(coords[2] ?? "");
  const next = await changesAfter(feed.next_cursor, 1);
  assert.deepEqual(
    next.changes.map((c) => [c.key, c.change]),
    [[coords[2], "deleted"]],
  );
});

test("export streams the header, then the tenant's memories and links", async () => {
  const records: ExportRecord[] = [];
  for await (const record of sfm.export()) {
    records.push(record);
  }
  assert.equal(records[0]?.format, "somafractalmemory-export");
  const kinds = records.slice(1).map((r) => r.kind);
  assert.deepEqual(kinds.filter((k) => k === "memory").length, 2);
  assert.deepEqual(kinds.filter((k) => k === "link").length, 1);
  const exported = records.filter((r) => r.kind === "memory").map((r) => r.coord);
  assert.deepEqual([...exported].sort(), [coords[0], coords[1]].sort());
});

test("another tenant does not see these memories", async () => {
  await assert.rejects(client().get(coords[0] ?? ""), NotFound);
});

test("webhooks: create, list, delete", async () => {
  const hook = await sfm.createWebhook("http://127.0.0.1:9/changes", "a-secret-of-16-chars");
  assert.equal(hook.url, "http://127.0.0.1:9/changes");
  assert.equal(hook.attempts, 0);
  const { webhooks } = await sfm.listWebhooks();
  assert.deepEqual(
    webhooks.map((w) => w.id),
    [hook.id],
  );
  assert.deepEqual(await sfm.deleteWebhook(hook.id), { deleted: true });
  await assert.rejects(sfm.deleteWebhook(hook.id), NotFound);
  assert.deepEqual((await sfm.listWebhooks()).webhooks, []);
});
