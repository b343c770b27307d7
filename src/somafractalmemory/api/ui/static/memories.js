/* The overview (/ui): the tenant's stats, the stack's health, and its memories, browsed a
 * page at a time or searched, filtered by type and by scope (user, agent, session). */
(() => {
  "use strict";

  const { $, api, request, el, when, cell, labelRow, memoryLink, summary, scopeCell } =
    window.SFMUI;
  const LAST_SEARCH = "sfm.lastSearch";
  const BROWSE_PAGE = 25;

  async function loadStats() {
    const stats = await api("GET", "/stats");
    const list = $("stats");
    list.replaceChildren();
    const figures = [["memories", stats.memories]];
    for (const [type, count] of Object.entries(stats.by_type).sort()) figures.push([type, count]);
    figures.push(["links", stats.links], ["vectors (Milvus)", stats.vectors]);
    figures.push(["items", stats.items], ["item vectors (Milvus)", stats.item_vectors]);
    for (const [name, value] of figures) list.append(el("dt", name), el("dd", value));
  }

  async function loadHealth() {
    const { status, data } = await request("GET", "/healthz", { key: null });
    const badge = $("health-status");
    const list = $("health");
    list.replaceChildren();
    if (!data || !data.status) {
      badge.textContent = `HTTP ${status}`;
      badge.className = "badge down";
      return;
    }
    badge.textContent = data.status;
    badge.className = `badge ${data.status}`;
    for (const part of ["postgres", "milvus", "redis"]) {
      const item = el("li");
      item.append(el("span", part, "part"), el("span", data[part], `badge ${data[part]}`));
      if (data.errors && data.errors[part]) item.append(el("span", data.errors[part], "muted"));
      list.append(item);
    }
  }

  function signalChips(signals) {
    const chips = el("span");
    if (signals.vector !== null) chips.append(el("span", `vector #${signals.vector}`, "chip vector"));
    if (signals.keyword !== null) chips.append(el("span", `keyword #${signals.keyword}`, "chip keyword"));
    if (signals.link !== null) chips.append(el("span", `link depth ${signals.link}`, "chip link"));
    return cell("signals", chips);
  }

  /* "episodic memories of user ann": what the filters select, for the status lines. */
  function describe(filters, noun) {
    const kind = filters.memory_type ? `${filters.memory_type} ` : "";
    const of = [
      ["user_id", "user"],
      ["agent_id", "agent"],
      ["session_id", "session"],
    ]
      .filter(([field]) => filters[field])
      .map(([field, label]) => `${label} ${filters[field]}`);
    return `${kind}${noun}${of.length ? ` of ${of.join(", ")}` : ""}`;
  }

  let searches = 0; // a newer search's (or listing's) answer wins over an older one's
  let listings = 0;

  async function runSearch(query, mode, topK, filters) {
    SFMUI.clearError();
    const mine = ++searches;
    const status = $("search-status");
    const table = $("results");
    status.textContent = "Searching…";
    const started = performance.now();
    const found = await api("POST", "/memories/search", {
      body: { query, mode, top_k: topK, ...filters },
    });
    if (mine !== searches) return;
    const ms = Math.round(performance.now() - started);
    sessionStorage.setItem(LAST_SEARCH, JSON.stringify({ query, mode, topK }));
    const rows = table.tBodies[0];
    rows.replaceChildren();
    found.results.forEach((hit, index) => {
      const row = el("tr");
      row.dataset.coord = hit.coord;
      row.append(
        el("td", index + 1, "num"),
        cell("", memoryLink(hit.coord)),
        el("td", hit.score.toFixed(4), "num"),
        signalChips(hit.signals),
        el("td", hit.memory_type),
        scopeCell(hit),
        el("td", summary(hit.payload), "text"),
      );
      rows.append(labelRow(table, row));
    });
    table.hidden = found.results.length === 0;
    const noun = found.results.length === 1 ? "result" : "results";
    status.textContent = `${found.results.length} ${describe(filters, noun)} (${mode}, ${ms} ms)`;
  }

  /* Browse without a query: the tenant's memories a page at a time (GET /memories). */
  let browseCursor = null;

  async function browse(filters, more) {
    const status = $("browse-status");
    const table = $("memories");
    const rows = table.tBodies[0];
    const mine = ++listings;
    status.textContent = "Loading…";
    const params = { limit: BROWSE_PAGE, ...filters };
    if (more && browseCursor) params.cursor = browseCursor;
    const found = await api("GET", "/memories", { params });
    if (mine !== listings) return;
    if (!more) rows.replaceChildren();
    for (const memory of found.memories) {
      const row = el("tr");
      row.dataset.coord = memory.coord;
      row.append(
        cell("", memoryLink(memory.coord)),
        el("td", memory.memory_type),
        scopeCell(memory),
        el("td", memory.importance.toFixed(2), "num"),
        cell("", when(memory.created_at)),
        el("td", summary(memory.payload), "text"),
      );
      rows.append(labelRow(table, row));
    }
    browseCursor = found.next_cursor;
    $("browse-more").hidden = !browseCursor;
    table.hidden = rows.children.length === 0;
    const shown = rows.children.length;
    const noun = describe(filters, shown === 1 ? "memory" : "memories");
    status.textContent = shown
      ? `${shown} ${noun}${browseCursor ? ", more to load" : ""}`
      : `No ${noun}.`;
  }

  function overviewPage() {
    const fail = (id) => (exc) => {
      $(id).textContent = "";
      SFMUI.showError(exc);
    };
    loadHealth().catch(SFMUI.showError);
    loadStats().catch(SFMUI.showError);
    const search = () => {
      const query = $("query").value.trim();
      if (!query) return;
      runSearch(query, $("mode").value, Number($("top-k").value), filters()).catch(
        fail("search-status"),
      );
    };
    const filters = SFMUI.setupFilter($("filter-form"), (chosen) => {
      browse(chosen, false).catch(fail("browse-status"));
      search();
    });
    browse(filters(), false).catch(fail("browse-status"));
    $("browse-more").addEventListener("click", () =>
      browse(filters(), true).catch(fail("browse-status")),
    );
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });
    const last = sessionStorage.getItem(LAST_SEARCH);
    if (last) {
      try {
        const { query, mode, topK } = JSON.parse(last);
        $("query").value = query;
        $("mode").value = mode;
        $("top-k").value = String(topK);
        search();
      } catch {
        sessionStorage.removeItem(LAST_SEARCH);
      }
    }
  }

  SFMUI.page("overview", overviewPage);
})();
