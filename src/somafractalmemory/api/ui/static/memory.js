/* One memory (/ui/memory?coord=): its fields and scopes, its versions, its links and
 * neighbours both ways (with their text), and delete. */
(() => {
  "use strict";

  const { $, api, el, when, cell, labelRow, memoryLink, summary, scopeChips, ApiError } =
    window.SFMUI;

  /* Neighbours both ways: two walks, so that each row says which way its link goes. */
  const NEIGHBOR_TEXTS = 25; // texts fetched for the first neighbours only (one GET each)

  async function loadNeighbors(coord) {
    const status = $("neighbors-status");
    const table = $("neighbors");
    const kHop = Number($("k-hop").value);
    status.textContent = "Loading…";
    const walk = (direction) =>
      api("GET", "/graph/neighbors", { params: { coord, k_hop: kHop, direction, limit: 100 } });
    const [outgoing, incoming] = await Promise.all([walk("out"), walk("in")]);
    const found = new Map();
    for (const [direction, answer] of [
      ["out", outgoing],
      ["in", incoming],
    ]) {
      for (const neighbor of answer.neighbors) {
        const seen = found.get(neighbor.coord);
        if (seen) seen.directions.add(direction);
        else found.set(neighbor.coord, { ...neighbor, directions: new Set([direction]) });
      }
    }
    const neighbors = [...found.values()].sort((a, b) => a.depth - b.depth);
    const body = table.tBodies[0];
    body.replaceChildren();
    neighbors.forEach((neighbor, index) => {
      const row = el("tr");
      row.dataset.coord = neighbor.coord;
      const both = neighbor.directions.size === 2;
      const out = neighbor.directions.has("out");
      row.dataset.direction = both ? "both" : out ? "out" : "in";
      const text = el("td", index < NEIGHBOR_TEXTS ? "…" : "", "text");
      row.append(
        el("td", both ? "↔ both ways" : out ? "→ links to" : "← linked from", "direction"),
        cell("", memoryLink(neighbor.coord)),
        el("td", neighbor.link_type),
        el("td", neighbor.strength.toFixed(2), "num"),
        el("td", neighbor.depth, "num"),
        text,
      );
      body.append(labelRow(table, row));
      if (index < NEIGHBOR_TEXTS) {
        api("GET", `/memories/${encodeURIComponent(neighbor.coord)}`)
          .then((memory) => {
            text.textContent = summary(memory.payload);
          })
          .catch(() => {
            text.textContent = "(not readable)";
          });
      }
    });
    table.hidden = neighbors.length === 0;
    status.textContent = neighbors.length
      ? `${neighbors.length} within ${kHop} ${kHop === 1 ? "link" : "links"}`
      : "No linked memories.";
  }

  async function loadVersions(coord) {
    const status = $("versions-status");
    const table = $("versions");
    let found;
    try {
      found = await api("GET", `/memories/${encodeURIComponent(coord)}/history`, {
        params: { limit: 50 },
      });
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) {
        status.textContent = "No history.";
        return;
      }
      throw exc;
    }
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const version of found.versions) {
      const row = el("tr");
      row.dataset.change = version.change;
      const successor = el("td");
      if (version.superseded_by) successor.append(memoryLink(version.superseded_by));
      row.append(
        el("td", version.change),
        cell("", when(version.recorded_at)),
        el("td", summary(version.payload), "text"),
        successor,
      );
      body.append(labelRow(table, row));
    }
    table.hidden = found.versions.length === 0;
    const more = found.next_cursor ? " (the 50 newest)" : "";
    const noun = found.versions.length === 1 ? "version" : "versions";
    status.textContent = `${found.versions.length} ${noun}${more}`;
  }

  function validity(memory) {
    if (!memory.valid_from && !memory.valid_to) return el("span", "always", "muted");
    const span = el("span");
    span.append(memory.valid_from ? when(memory.valid_from) : el("span", "…"), " → ");
    span.append(memory.valid_to ? when(memory.valid_to) : el("span", "…"));
    return span;
  }

  async function loadMemory(coord) {
    const status = $("memory-status");
    let memory;
    try {
      memory = await api("GET", `/memories/${encodeURIComponent(coord)}`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) {
        status.textContent = "There is no memory at this coordinate.";
        $("neighbors-card").hidden = true;
        await loadVersions(coord);
        return;
      }
      throw exc;
    }
    $("coord").textContent = memory.coord;
    document.title = `Memory ${memory.coord} · SomaFractalMemory`;
    $("memory-type").textContent = memory.memory_type;
    $("memory-importance").textContent = memory.importance.toFixed(2);
    const scopes = scopeChips(memory);
    $("memory-scopes").replaceChildren(scopes.childElementCount ? scopes : el("span", "none", "muted"));
    $("memory-created").replaceChildren(when(memory.created_at));
    $("memory-updated").replaceChildren(when(memory.updated_at));
    $("memory-valid").replaceChildren(validity(memory));
    if (memory.superseded_by) {
      $("successor").replaceChildren(memoryLink(memory.superseded_by));
      $("superseded").hidden = false;
    }
    $("payload").textContent = JSON.stringify(memory.payload, null, 2);
    status.textContent = "";
    status.hidden = true;
    $("memory-body").hidden = false;
    await Promise.all([loadNeighbors(memory.coord), loadVersions(memory.coord)]);
  }

  function setupDelete(coord) {
    const ask = $("delete");
    const confirmBox = $("delete-confirm");
    ask.addEventListener("click", () => {
      ask.hidden = true;
      confirmBox.hidden = false;
      $("delete-no").focus();
    });
    $("delete-no").addEventListener("click", () => {
      confirmBox.hidden = true;
      ask.hidden = false;
    });
    $("delete-yes").addEventListener("click", async () => {
      SFMUI.clearError();
      $("delete-yes").disabled = true;
      try {
        await api("DELETE", `/memories/${encodeURIComponent(coord)}`);
      } catch (exc) {
        $("delete-yes").disabled = false;
        SFMUI.showError(exc);
        return;
      }
      $("memory-body").hidden = true;
      $("neighbors-card").hidden = true;
      const status = $("memory-status");
      status.hidden = false;
      status.textContent = `Deleted ${coord} from PostgreSQL, Milvus and the cache.`;
      status.className = "notice";
    });
  }

  function memoryPage() {
    const coord = new URLSearchParams(window.location.search).get("coord");
    if (!coord) {
      $("memory-status").textContent = "No coordinate given (open a memory from the list).";
      $("neighbors-card").hidden = true;
      return;
    }
    $("coord").textContent = coord;
    setupDelete(coord);
    $("k-hop").addEventListener("change", () => loadNeighbors(coord).catch(SFMUI.showError));
    loadMemory(coord).catch(SFMUI.showError);
  }

  SFMUI.page("memory", memoryPage);
})();
