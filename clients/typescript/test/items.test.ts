import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidInput } from "somafractalmemory";

import { client, uniqueLabel } from "./support.js";

const sfm = client();

test("putItem, getItem, itemHistory and deleteItem", async () => {
  const namespace = [uniqueLabel("ns"), "prefs"];
  const put = await sfm.putItem(namespace, "drink", { text: "green tea", strength: 3 });
  assert.deepEqual([put.namespace, put.key, put.value], [namespace, "drink", { text: "green tea", strength: 3 }]);
  await sfm.putItem(namespace, "drink", { text: "black coffee" });
  const got = await sfm.getItem(namespace, "drink");
  assert.deepEqual(got?.value, { text: "black coffee" });
  assert.equal(await sfm.getItem(namespace, "food"), null);

  const history = await sfm.itemHistory(namespace, "drink");
  assert.deepEqual(
    history.versions.map((v) => [v.change, v.payload.text]),
    [
      ["replaced", "black coffee"],
      ["created", "green tea"],
    ],
  );

  assert.equal(await sfm.deleteItem(namespace, "drink"), true);
  assert.equal(await sfm.deleteItem(namespace, "drink"), false);
  assert.equal(await sfm.getItem(namespace, "drink"), null);
});

test("searchItems by prefix, filter and meaning; listNamespaces", async () => {
  const root = uniqueLabel("docs");
  await sfm.putItem([root, "a"], "tea", { text: "Green tea is brewed at 80 degrees", lang: "en" });
  await sfm.putItem([root, "a"], "bike", { text: "Bicycles have two wheels", lang: "en" });
  await sfm.putItem([root, "b"], "thé", { text: "Le thé vert", lang: "fr" });

  const meaning = await sfm.searchItems([root], { query: "how hot should the water be?", limit: 1 });
  assert.deepEqual(
    meaning.items.map((i) => i.key),
    ["tea"],
  );
  assert.equal(typeof meaning.items[0]?.score, "number");
  assert.equal(meaning.items[0]?.signals?.vector, 1);
  const offTopic = await sfm.searchItems([root], {
    query: "what is the capital of Japan?",
    mode: "hybrid",
    min_score: 0.5,
  });
  assert.deepEqual(offTopic.items, [], "nothing off-topic reaches min_score 0.5");
  const filtered = await sfm.searchItems([root], { filter: { lang: "fr" } });
  assert.deepEqual(
    filtered.items.map((i) => [i.namespace, i.key]),
    [[[root, "b"], "thé"]],
  );
  const keyword = await sfm.searchItems([root, "a"], { query: "wheels", mode: "keyword" });
  assert.deepEqual(
    keyword.items.map((i) => i.key),
    ["bike"],
  );

  const { namespaces } = await sfm.listNamespaces({ prefix: [root] });
  assert.deepEqual(
    [...namespaces].sort(),
    [
      [root, "a"],
      [root, "b"],
    ],
  );
  const shallow = await sfm.listNamespaces({ prefix: [root], max_depth: 1 });
  assert.deepEqual(shallow.namespaces, [[root]]);
  await assert.rejects(sfm.searchItems([root], { limit: 0 }), InvalidInput);
});

test("spaces: own vectors in a registered space, found by vector", async () => {
  const name = uniqueLabel("space").replace(/-/g, "_");
  const space = await sfm.createSpace(name, 3);
  assert.deepEqual([space.name, space.dimension, space.metric], [name, 3, "cosine"]);
  assert.ok((await sfm.listSpaces()).spaces.some((s) => s.name === name));
  const namespace = [uniqueLabel("vec")];
  await sfm.putItem(namespace, "x", { text: "x axis" }, { space: name, vectors: [{ vector: [1, 0, 0] }] });
  await sfm.putItem(namespace, "y", { text: "y axis" }, { space: name, vectors: [{ vector: [0, 1, 0] }] });
  const found = await sfm.searchItems(namespace, { space: name, vector: [0.1, 0.9, 0], limit: 1 });
  assert.deepEqual(
    found.items.map((i) => i.key),
    ["y"],
  );
  const dropped = await sfm.deleteSpace(name);
  assert.deepEqual(dropped, { deleted: true, items_deleted: 2 });
  assert.equal(await sfm.getItem(namespace, "x"), null);
});

test("an expired item is gone after sweepItems", async () => {
  const namespace = [uniqueLabel("ttl")];
  await sfm.putItem(namespace, "soon", { text: "short-lived" }, { ttl_minutes: 0.002 });
  await new Promise((resolve) => setTimeout(resolve, 400));
  assert.equal(await sfm.getItem(namespace, "soon"), null);
  assert.ok(await sfm.getItem(namespace, "soon", { include_expired: true, refresh_ttl: false }));
  assert.ok((await sfm.sweepItems()) >= 1);
  assert.equal(await sfm.getItem(namespace, "soon", { include_expired: true }), null);
});
