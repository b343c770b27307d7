import assert from "node:assert/strict";
import { test } from "node:test";

import { Conflict, InvalidInput, NotFound } from "somafractalmemory";

import { client, uniqueCoord, uniqueLabel } from "./support.js";

const sfm = client();

test("store creates, then replaces; get reads it back", async () => {
  const coord = uniqueCoord();
  const first = await sfm.store(coord, { text: "The user prefers green tea" }, { importance: 0.8 });
  assert.equal(first.status, "created");
  assert.equal(first.coord, coord);
  assert.equal(first.importance, 0.8);
  const second = await sfm.store(coord, { text: "The user prefers black coffee" }, {
    memory_type: "semantic",
  });
  assert.equal(second.status, "replaced");
  const got = await sfm.get(coord);
  assert.deepEqual(got.payload, { text: "The user prefers black coffee" });
  assert.equal(got.memory_type, "semantic");
});

test("get as_of reads the version current then; history lists versions newest first", async () => {
  const coord = uniqueCoord();
  await sfm.store(coord, { text: "version one" });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const between = new Date();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await sfm.store(coord, { text: "version two" });
  assert.deepEqual((await sfm.get(coord, { as_of: between })).payload, { text: "version one" });
  assert.deepEqual((await sfm.get(coord)).payload, { text: "version two" });
  const history = await sfm.history(coord);
  assert.deepEqual(
    history.versions.map((v) => [v.change, v.payload.text]),
    [
      ["replaced", "version two"],
      ["created", "version one"],
    ],
  );
  const page = await sfm.history(coord, { limit: 1 });
  assert.equal(page.versions.length, 1);
  assert.ok(page.next_cursor);
  const older = await sfm.history(coord, { limit: 1, cursor: page.next_cursor });
  assert.equal(older.versions[0]?.payload.text, "version one");
});

test("delete removes the memory, keeps its history until purge", async () => {
  const coord = uniqueCoord();
  await sfm.store(coord, { text: "to be forgotten" });
  assert.equal((await sfm.delete(coord)).deleted, true);
  await assert.rejects(sfm.get(coord), (error: unknown) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.statusCode, 404);
    assert.equal(error.error, "NotFoundError");
    assert.equal(error.attempts, 1);
    return true;
  });
  const history = await sfm.history(coord);
  assert.deepEqual(
    history.versions.map((v) => v.change),
    ["deleted", "created"],
  );
  const again = uniqueCoord();
  await sfm.store(again, { text: "purged" });
  const purged = await sfm.delete(again, { purge: true });
  assert.equal(purged.deleted, true);
  assert.ok((purged.purged_versions ?? 0) >= 1, `purged_versions: ${purged.purged_versions}`);
  const left = await sfm.history(again).then(
    (answer) => answer.versions.length,
    (error: unknown) => (error instanceof NotFound ? 0 : Promise.reject(error)),
  );
  assert.equal(left, 0);
  await assert.rejects(sfm.delete(again), NotFound);
});

test("if_absent on an existing memory is a Conflict (409)", async () => {
  const coord = uniqueCoord();
  await sfm.store(coord, { text: "already here" });
  await assert.rejects(
    sfm.store(coord, { text: "again" }, { if_absent: true }),
    (error: unknown) => error instanceof Conflict && error.statusCode === 409,
  );
});

test("a bad coordinate is InvalidInput (422) naming the field, sent once", async () => {
  await assert.rejects(sfm.store("not a coordinate", { text: "x" }), (error: unknown) => {
    assert.ok(error instanceof InvalidInput);
    assert.equal(error.statusCode, 422);
    assert.match(error.detail, /coord/);
    assert.equal(error.attempts, 1);
    return true;
  });
});

test("storeBatch stores every memory as one unit", async () => {
  const coords = [uniqueCoord(), uniqueCoord(), uniqueCoord()];
  const answer = await sfm.storeBatch(
    coords.map((coord, i) => ({ coord, payload: { text: `batch memory ${i}` } })),
  );
  assert.deepEqual(
    answer.results.map((r) => [r.coord, r.status]),
    coords.map((coord) => [coord, "created"]),
  );
  assert.deepEqual((await sfm.get(coords[2] ?? "")).payload, { text: "batch memory 2" });
  // one bad entry: nothing of the batch is stored
  const more = [uniqueCoord(), "1"];
  await assert.rejects(
    sfm.storeBatch(more.map((coord) => ({ coord, payload: { text: "never" } }))),
    InvalidInput,
  );
  await assert.rejects(sfm.get(more[0] ?? ""), NotFound);
});

test("search finds by meaning and by keyword, within filters, best first", async () => {
  const run = uniqueLabel("search");
  const texts = {
    tea: "The user drinks green tea every morning",
    bike: "The user rides a red bicycle to work",
    piano: "The user practises piano scales on Sundays",
  };
  const coords: Record<string, string> = {};
  for (const [name, text] of Object.entries(texts)) {
    coords[name] = uniqueCoord();
    await sfm.store(coords[name] ?? "", { text, run }, {
      memory_type: name === "piano" ? "semantic" : "episodic",
    });
  }
  for (const mode of ["hybrid", "vector", "keyword"] as const) {
    const query = mode === "keyword" ? "bicycle" : "which vehicle does the user ride?";
    const { results } = await sfm.search(query, { mode, filters: { run }, top_k: 3 });
    assert.equal(results[0]?.coord, coords.bike, `${mode}: ${JSON.stringify(results)}`);
    for (const result of results) {
      assert.ok(result.score >= 0 && result.score <= 1, `${mode} score ${result.score}`);
      assert.equal(result.payload.run, run);
    }
    const scores = results.map((r) => r.score);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
  }
  const semantic = await sfm.search("the user", { filters: { run }, memory_type: "semantic" });
  assert.deepEqual(
    semantic.results.map((r) => r.coord),
    [coords.piano],
  );
  const hybrid = await sfm.search("green tea", { filters: { run }, top_k: 1 });
  assert.equal(hybrid.results.length, 1);
  assert.ok(hybrid.results[0]?.signals.vector !== undefined);
  assert.equal(typeof hybrid.results[0]?.signals.vector_score, "number");
  const offTopic = { filters: { run }, min_score: 0.45 };
  assert.deepEqual((await sfm.search("the capital of Japan", offTopic)).results, []);
  const onTopic = await sfm.search("green tea every morning", { ...offTopic, top_k: 1 });
  assert.equal(onTopic.results[0]?.coord, coords.tea);
  await assert.rejects(sfm.search("x", { top_k: 0 }), (error: unknown) => {
    return error instanceof InvalidInput && /top_k/.test(error.detail);
  });
  await assert.rejects(sfm.search("x", { min_score: 1.5 }), (error: unknown) => {
    return error instanceof InvalidInput && /min_score/.test(error.detail);
  });
});

test("a memory with its own vector is found by that vector", async () => {
  const { spaces } = await sfm.listSpaces();
  const dimension = spaces.find((space) => space.name === "default")?.dimension;
  assert.ok(dimension, `no default space in ${JSON.stringify(spaces)}`);
  const run = uniqueLabel("vector");
  const mine = Array.from({ length: dimension }, (_, i) => (i === 7 ? 1 : 0));
  const coord = uniqueCoord();
  await sfm.store(coord, { text: "carries its own vector", run }, { vector: mine });
  await sfm.store(uniqueCoord(), { text: "embedded by the model", run });
  const { results } = await sfm.search(null, { vector: mine, mode: "vector", filters: { run } });
  assert.equal(results[0]?.coord, coord);
});

test("superseding hides the old memory from search unless include_superseded", async () => {
  const run = uniqueLabel("super");
  const old = uniqueCoord();
  const fresh = uniqueCoord();
  await sfm.store(old, { text: "The user lives in Lisbon", run });
  await sfm.store(fresh, { text: "The user lives in Porto", run }, { supersedes: [old] });
  const current = await sfm.search("where does the user live?", { filters: { run } });
  assert.deepEqual(
    current.results.map((r) => r.coord),
    [fresh],
  );
  const all = await sfm.search("where does the user live?", {
    filters: { run },
    include_superseded: true,
  });
  const marked = all.results.find((r) => r.coord === old);
  assert.equal(marked?.superseded_by, fresh);
  assert.equal((await sfm.get(old)).superseded_by, fresh);
});
