import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFound } from "somafractalmemory";

import { client, uniqueCoord } from "./support.js";

const sfm = client();

test("link, neighbors and path walk the graph; no path is NotFound", async () => {
  const [a, b, c] = [uniqueCoord(), uniqueCoord(), uniqueCoord()];
  for (const coord of [a, b, c]) {
    await sfm.store(coord, { text: `node ${coord}` });
  }
  const link = await sfm.link(a, b, { link_type: "causes", strength: 0.5, metadata: { why: "t" } });
  assert.deepEqual(link, {
    from_coord: a,
    to_coord: b,
    link_type: "causes",
    strength: 0.5,
    metadata: { why: "t" },
  });
  await sfm.link(b, c);

  const near = await sfm.neighbors(a, { k_hop: 2 });
  assert.deepEqual(
    near.neighbors.map((n) => [n.coord, n.depth]),
    [
      [b, 1],
      [c, 2],
    ],
  );
  const typed = await sfm.neighbors(a, { k_hop: 2, link_type: "causes" });
  assert.deepEqual(
    typed.neighbors.map((n) => n.coord),
    [b],
  );
  const incoming = await sfm.neighbors(c, { direction: "in" });
  assert.deepEqual(
    incoming.neighbors.map((n) => n.coord),
    [b],
  );

  assert.deepEqual((await sfm.path(a, c)).path, [a, b, c]);
  assert.deepEqual((await sfm.path(c, a, { direction: "both" })).path, [c, b, a]);
  await assert.rejects(sfm.path(c, a), NotFound);
  await assert.rejects(sfm.path(a, c, { max_length: 1 }), NotFound);
});

test("linking to a memory that does not exist is NotFound", async () => {
  const a = uniqueCoord();
  await sfm.store(a, { text: "lonely" });
  await assert.rejects(sfm.link(a, uniqueCoord()), (error: unknown) => {
    return error instanceof NotFound && error.statusCode === 404 && error.attempts === 1;
  });
});
