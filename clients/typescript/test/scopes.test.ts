import assert from "node:assert/strict";
import { test } from "node:test";

import { type ExportRecord, InvalidInput, type ScopeValues } from "somafractalmemory";

import { SFM_API_KEY_2, client, uniqueCoord, uniqueLabel } from "./support.js";

const sfm = client();

/** Every value of a scope, a page of `limit` at a time (other tests add values meanwhile). */
async function allValues(scope: "user_id" | "agent_id" | "session_id", limit: number) {
  const values: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages += 1) {
    const page: ScopeValues = await sfm.listScopeValues(scope, { limit, cursor });
    assert.equal(page.scope, scope);
    assert.ok(page.values.length <= limit);
    values.push(...page.values);
    if (page.next_cursor === null) return values;
    cursor = page.next_cursor;
  }
  assert.fail("the pages never ended");
}

test("memories carry their scopes; list and search keep to them", async () => {
  const user = uniqueLabel("scoped-user");
  const coord = uniqueCoord();
  const stored = await sfm.store(coord, { text: "Ann takes her coffee black" }, {
    user_id: user,
    agent_id: "barista",
    session_id: "s-1",
  });
  assert.deepEqual([stored.user_id, stored.agent_id, stored.session_id], [user, "barista", "s-1"]);
  assert.equal((await sfm.get(coord)).user_id, user);
  await sfm.store(uniqueCoord(), { text: "Bob takes his coffee with milk" });
  const listed = await sfm.list({ user_id: user });
  assert.deepEqual(
    listed.memories.map((m) => m.coord),
    [coord],
  );
  const found = await sfm.search("how does she take her coffee?", { user_id: user });
  assert.deepEqual(
    found.results.map((r) => [r.coord, r.user_id, r.session_id]),
    [[coord, user, "s-1"]],
  );
});

test("listScopeValues: the tenant's distinct values, in text order, paged by cursor", async () => {
  const label = uniqueLabel("values");
  const mine = [`${label}-a`, `${label}-b`, `${label}-c`];
  // One value on two memories: listed once; values of conversation messages count too.
  await sfm.store(uniqueCoord(), { text: "first of a" }, { user_id: mine[0] });
  await sfm.store(uniqueCoord(), { text: "second of a" }, { user_id: mine[0] });
  await sfm.addMessages(label, [{ role: "user", content: "hello from b" }], { user_id: mine[1] });
  await sfm.store(uniqueCoord(), { text: "of c" }, { user_id: mine[2], agent_id: label });

  const everything = await allValues("user_id", 1000);
  assert.deepEqual(
    everything.filter((value) => value.startsWith(label)),
    mine,
  );
  assert.deepEqual(everything, [...new Set(everything)], "a value listed twice");
  assert.deepEqual(everything, [...everything].sort(), "not in text order");
  const paged = await allValues("user_id", 2);
  assert.deepEqual(
    paged.filter((value) => value.startsWith(label)),
    mine,
  );
  assert.deepEqual(paged, [...new Set(paged)], "pages overlap");
  assert.ok((await allValues("agent_id", 1000)).includes(label));

  const other = client({ apiKey: SFM_API_KEY_2 });
  const theirs = await other.listScopeValues("user_id", { limit: 1000 });
  assert.ok(!theirs.values.some((value) => value.startsWith(label)), "another tenant's values");
});

test("listScopeValues refuses an unknown scope and a bad limit, naming them", async () => {
  await assert.rejects(
    sfm.listScopeValues("tenant_id" as "user_id"),
    (error: unknown) => error instanceof InvalidInput && /scope/.test(error.detail),
  );
  await assert.rejects(
    sfm.listScopeValues("user_id", { limit: 0 }),
    (error: unknown) => error instanceof InvalidInput && /limit/.test(error.detail),
  );
});

test("deleteMemories removes every memory of a scope, and only those", async () => {
  const user = uniqueLabel("gone-user");
  const keep = uniqueLabel("kept-user");
  const coords = [uniqueCoord(), uniqueCoord()];
  for (const coord of coords) await sfm.store(coord, { text: `memory ${coord}` }, { user_id: user });
  const kept = uniqueCoord();
  await sfm.store(kept, { text: "stays" }, { user_id: keep });

  const answer = await sfm.deleteMemories({ user_id: user });
  assert.equal(answer.deleted, 2);
  assert.equal(answer.purged_versions ?? null, null);
  assert.deepEqual((await sfm.list({ user_id: user })).memories, []);
  assert.equal((await sfm.get(kept)).user_id, keep);
  const history = await sfm.history(coords[0] ?? "");
  assert.equal(history.versions[0]?.change, "deleted");

  const purged = uniqueLabel("purged-user");
  const coord = uniqueCoord();
  await sfm.store(coord, { text: "to purge" }, { session_id: purged });
  const withPurge = await sfm.deleteMemories({ session_id: purged, purge: true });
  assert.equal(withPurge.deleted, 1);
  assert.ok((withPurge.purged_versions ?? 0) >= 1, JSON.stringify(withPurge));
  assert.deepEqual((await sfm.deleteMemories({ user_id: user })).deleted, 0);
  await assert.rejects(
    sfm.deleteMemories({}),
    (error: unknown) =>
      error instanceof InvalidInput && /user_id/.test(error.detail) && error.attempts === 1,
  );
});

test("context keeps to the scopes and the conversation given", async () => {
  const label = uniqueLabel("ctx");
  const [ann, bob] = [`${label}-ann`, `${label}-bob`];
  const text = `The boat trip ${label} leaves from pier 4`;
  await sfm.addMessages(`${label}-1`, [{ id: "1", role: "user", content: text }], {
    user_id: ann,
  });
  await sfm.addMessages(`${label}-2`, [{ id: "1", role: "user", content: text }], {
    user_id: bob,
  });
  const annsMemory = uniqueCoord();
  await sfm.store(annsMemory, { text }, { user_id: ann });

  const question = `where does the boat trip ${label} leave from?`;
  const forAnn = await sfm.context(question, { user_id: ann, budget_tokens: 500 });
  assert.deepEqual(
    forAnn.sources.map((s) => [s.kind, s.key, s.conversation_id]).sort(),
    [
      ["memory", annsMemory, null],
      ["message", "1", `${label}-1`],
    ],
  );
  const oneConversation = await sfm.context(question, {
    conversation_id: `${label}-2`,
    include: ["messages"],
    budget_tokens: 500,
  });
  assert.deepEqual(
    oneConversation.sources.map((s) => s.conversation_id),
    [`${label}-2`],
  );
});

test("export with a user_id streams only that user's records", async () => {
  const ann = uniqueLabel("export-ann");
  const bob = uniqueLabel("export-bob");
  const annsCoord = uniqueCoord();
  await sfm.store(annsCoord, { text: "Ann sketches lighthouses" }, { user_id: ann });
  await sfm.store(uniqueCoord(), { text: "Bob repairs clocks" }, { user_id: bob });
  const records: ExportRecord[] = [];
  for await (const record of sfm.export({ user_id: ann })) {
    records.push(record);
  }
  assert.deepEqual(records[0]?.scopes, { user_id: ann });
  const memories = records.filter((r) => r.kind === "memory");
  assert.deepEqual(
    memories.map((r) => [r.coord, r.user_id]),
    [[annsCoord, ann]],
  );
  assert.ok(!JSON.stringify(records).includes(bob));
});
