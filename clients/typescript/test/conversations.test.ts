import assert from "node:assert/strict";
import { test } from "node:test";

import { Conflict, InvalidInput, NotFound } from "somafractalmemory";

import { client, uniqueCoord, uniqueLabel } from "./support.js";

const sfm = client();

test("addMessages is idempotent by id; listMessages and iterMessages in conversation order", async () => {
  const conversation = uniqueLabel("chat");
  const user = uniqueLabel("user");
  const posted = await sfm.addMessages(
    conversation,
    [
      { id: "1", role: "user", content: "I am moving to Lisbon in May", name: "Ann" },
      { id: "2", role: "assistant", content: "Exciting! Do you need a flat?" },
      { id: "3", role: "user", content: "Yes, near the river" },
      // Said earlier than the others: it sorts first (conversation order is time, then posting).
      { id: "0", role: "system", content: "Be brief", created_at: new Date("2020-01-01T00:00:00Z") },
    ],
    { user_id: user, session_id: "s1" },
  );
  assert.deepEqual(
    posted.messages.map((m) => [m.id, m.status]),
    [
      ["1", "created"],
      ["2", "created"],
      ["3", "created"],
      ["0", "created"],
    ],
  );
  const again = await sfm.addMessages(
    conversation,
    [{ id: "1", role: "user", content: "I am moving to Lisbon in May", name: "Ann" }],
    { user_id: user, session_id: "s1" },
  );
  assert.deepEqual(again.messages, [{ id: "1", status: "unchanged" }]);
  await assert.rejects(
    sfm.addMessages(conversation, [{ id: "1", role: "user", content: "changed" }]),
    Conflict,
  );

  const page = await sfm.listMessages(conversation, { limit: 2 });
  assert.deepEqual(
    page.messages.map((m) => [m.id, m.role, m.name, m.user_id, m.session_id]),
    [
      ["0", "system", null, user, "s1"],
      ["1", "user", "Ann", user, "s1"],
    ],
  );
  assert.notEqual(page.next_cursor, null);
  const all = [];
  for await (const message of sfm.iterMessages(conversation, { limit: 1 })) all.push(message.id);
  assert.deepEqual(all, ["0", "1", "2", "3"]);

  const { conversations } = await sfm.listConversations({ user_id: user });
  assert.deepEqual(
    conversations.map((c) => [c.conversation_id, c.messages, c.user_id]),
    [[conversation, 4, user]],
  );
});

test("searchMessages by meaning within a conversation and a scope; a blank query names the field", async () => {
  const conversation = uniqueLabel("chat");
  const user = uniqueLabel("user");
  await sfm.addMessages(
    conversation,
    [
      { role: "user", content: "My sister Ana plays the cello" },
      { role: "user", content: "The train leaves at nine" },
    ],
    { user_id: user },
  );
  const { results } = await sfm.searchMessages("which instrument does she play?", {
    conversation_id: conversation,
    user_id: user,
    top_k: 1,
  });
  assert.deepEqual(
    results.map((r) => [r.content, r.conversation_id]),
    [["My sister Ana plays the cello", conversation]],
  );
  assert.equal(typeof results[0]?.score, "number");
  assert.equal(typeof results[0]?.signals?.vector_score, "number", "the raw cosine");
  assert.ok(results[0]?.id.startsWith("#"), "a message without an id gets #<sequence>");
  const offTopic = await sfm.searchMessages("what is the capital of Japan?", {
    conversation_id: conversation,
    min_score: 0.5,
  });
  assert.deepEqual(offTopic.results, [], "nothing off-topic reaches min_score 0.5");
  await assert.rejects(sfm.searchMessages("cello", { min_score: 2 }), (error: unknown) => {
    assert.ok(error instanceof InvalidInput);
    assert.match(error.message, /min_score/);
    return true;
  });
  const other = await sfm.searchMessages("cello", { user_id: uniqueLabel("nobody") });
  assert.deepEqual(other.results, []);
  await assert.rejects(sfm.searchMessages("   "), (error: unknown) => {
    assert.ok(error instanceof InvalidInput);
    assert.match(error.message, /query/);
    return true;
  });
});

test("deleteConversation, then NotFound; deleteUser erases the user's messages and memories", async () => {
  const conversation = uniqueLabel("chat");
  const user = uniqueLabel("user");
  await sfm.addMessages(conversation, [{ role: "user", content: "delete me" }], { user_id: user });
  assert.deepEqual(await sfm.deleteConversation(conversation, { purge: true }), { deleted: 1 });
  await assert.rejects(sfm.deleteConversation(conversation), NotFound);
  assert.deepEqual((await sfm.listMessages(conversation)).messages, []);

  await sfm.addMessages(uniqueLabel("chat"), [{ role: "user", content: "one" }], { user_id: user });
  await sfm.addMessages(uniqueLabel("chat"), [{ role: "user", content: "two" }], { user_id: user });
  const erased = await sfm.deleteUser(user);
  assert.equal(erased.user_id, user);
  assert.equal(erased.messages, 2);
  assert.deepEqual((await sfm.listConversations({ user_id: user })).conversations, []);
});

test("context packs the relevant memories within the budget, as text or chat messages", async () => {
  const marker = uniqueLabel("kw");
  const coord = uniqueCoord();
  await sfm.store(coord, { text: `The dentist appointment ${marker} is on Tuesday at 10` });
  // Memories only: the filter narrows memories, and other tests' messages in this tenant
  // would otherwise join the block (include is both by default).
  const text = await sfm.context(`when is the dentist appointment ${marker}?`, {
    budget_tokens: 200,
    filters: { text: `The dentist appointment ${marker} is on Tuesday at 10` },
    include: ["memories"],
  });
  assert.equal(typeof text.context, "string");
  assert.ok(text.tokens <= 200 && text.tokens > 0);
  assert.equal(text.budget_tokens, 200);
  assert.deepEqual(
    text.sources.map((s) => [s.kind, s.key]),
    [["memory", coord]],
  );
  assert.equal(typeof text.sources[0]?.signals.vector_score, "number", "raw scores in signals");
  assert.match(text.context as string, new RegExp(marker));

  const chat = await sfm.context(null, {
    messages: [{ role: "user", content: `remind me about the dentist ${marker}` }],
    format: "messages",
    budget_tokens: 300,
  });
  assert.ok(Array.isArray(chat.context));
  assert.ok(chat.sources.some((s) => s.key === coord), JSON.stringify(chat.sources));
  await assert.rejects(sfm.context(null), (error: unknown) => {
    assert.ok(error instanceof InvalidInput);
    assert.match(error.message, /query/);
    return true;
  });
});
