/* SomaFractalMemory memory browser: plain JavaScript, no build step.
 *
 * The API key lives in this tab's sessionStorage only. It is sent to the JSON API as an
 * `Authorization: Bearer` header by fetch(), never in a URL, a cookie or a form field the
 * browser could submit. Everything shown comes from the authenticated JSON API and is put
 * into the page with textContent (never innerHTML), so stored payloads cannot inject markup.
 */
(() => {
  "use strict";

  const KEY = "sfm.apiKey";
  const FLASH = "sfm.flash";
  const LAST_SEARCH = "sfm.lastSearch";
  const root = document.body.dataset.root || "";
  const page = document.body.dataset.page;
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, name, detail) {
      super(`${name}: ${detail}`);
      this.status = status;
      this.name = name;
      this.detail = detail;
    }
  }

  const getKey = () => sessionStorage.getItem(KEY);

  function goSignIn(message) {
    if (message) sessionStorage.setItem(FLASH, message);
    window.location.assign(`${root}/ui/signin`);
  }

  function uiUrl(path, coord) {
    const url = new URL(`${root}${path}`, window.location.origin);
    if (coord !== undefined) url.searchParams.set("coord", coord);
    return url.pathname + url.search;
  }

  /* One JSON request; `key` null means no Authorization header. Answers {status, ok, data}. */
  async function request(method, path, { params, body, key = getKey() } = {}) {
    const url = new URL(`${root}${path}`, window.location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      url.searchParams.set(name, String(value));
    }
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (exc) {
      throw new ApiError(0, "ConnectionFailed", `the server did not answer (${exc.message})`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { status: response.status, ok: response.ok, data };
  }

  /* An authenticated call that must succeed; a refused key sends the user to sign in. */
  async function api(method, path, options = {}) {
    if (!getKey()) {
      goSignIn("Sign in first.");
      throw new ApiError(401, "UnauthorizedError", "not signed in");
    }
    const { status, ok, data } = await request(method, path, options);
    if (status === 401) {
      sessionStorage.removeItem(KEY);
      goSignIn("The server refused the key (revoked?). Sign in again.");
    }
    if (!ok) {
      throw new ApiError(
        status,
        (data && data.error) || `HTTP ${status}`,
        (data && data.detail) || "no detail",
      );
    }
    return data;
  }

  function showError(exc) {
    const box = $("error");
    box.textContent = exc instanceof ApiError ? `${exc.name} (${exc.status}): ${exc.detail}` : String(exc);
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function when(iso) {
    const date = new Date(iso);
    const node = el("time", Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
    node.dateTime = iso;
    node.title = iso;
    return node;
  }

  function memoryLink(coord) {
    const link = el("a", coord, "coord");
    link.href = uiUrl("/ui/memory", coord);
    return link;
  }

  function summary(payload) {
    const text = typeof payload.text === "string" ? payload.text : JSON.stringify(payload);
    return text.length > 160 ? `${text.slice(0, 157)}…` : text;
  }

  function setupChrome() {
    const key = getKey();
    if (!key) return;
    const note = $("tenant-note");
    note.textContent = `signed in · key ${key.slice(0, 10)}…`;
    note.hidden = false;
    const out = $("sign-out");
    out.hidden = false;
    out.addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(LAST_SEARCH);
      goSignIn("Signed out.");
    });
  }

  /* ---- sign in ---------------------------------------------------------------------- */

  function signInPage() {
    const status = $("signin-status");
    const flash = sessionStorage.getItem(FLASH);
    if (flash) {
      status.textContent = flash;
      sessionStorage.removeItem(FLASH);
    }
    $("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError();
      const input = $("api-key");
      const key = input.value.trim();
      if (!key) return;
      status.textContent = "Checking the key…";
      try {
        const { status: code, ok, data } = await request("GET", "/stats", { key });
        if (code === 401) {
          status.textContent = "";
          throw new ApiError(401, "UnauthorizedError", (data && data.detail) || "key refused");
        }
        if (!ok) {
          throw new ApiError(code, (data && data.error) || `HTTP ${code}`, (data && data.detail) || "");
        }
        sessionStorage.setItem(KEY, key);
        input.value = "";
        window.location.assign(uiUrl("/ui"));
      } catch (exc) {
        status.textContent = "";
        showError(exc);
      }
    });
  }

  /* ---- overview: stats, health, search --------------------------------------------- */

  async function loadStats() {
    const stats = await api("GET", "/stats");
    const list = $("stats");
    list.replaceChildren();
    const figures = [["memories", stats.memories]];
    for (const [type, count] of Object.entries(stats.by_type).sort()) figures.push([type, count]);
    figures.push(["links", stats.links], ["vectors (Milvus)", stats.vectors]);
    figures.push(["items", stats.items], ["item vectors (Milvus)", stats.item_vectors]);
    for (const [name, value] of figures) {
      list.append(el("dt", name), el("dd", value));
    }
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
    const cell = el("td", null, "signals");
    if (signals.vector !== null) cell.append(el("span", `vector #${signals.vector}`, "chip vector"));
    if (signals.keyword !== null) cell.append(el("span", `keyword #${signals.keyword}`, "chip keyword"));
    if (signals.link !== null) cell.append(el("span", `link depth ${signals.link}`, "chip link"));
    return cell;
  }

  async function runSearch(query, mode, topK, memoryType = "") {
    clearError();
    const status = $("search-status");
    const table = $("results");
    status.textContent = "Searching…";
    const started = performance.now();
    const body = { query, mode, top_k: topK };
    if (memoryType) body.memory_type = memoryType;
    const found = await api("POST", "/memories/search", { body });
    const ms = Math.round(performance.now() - started);
    sessionStorage.setItem(LAST_SEARCH, JSON.stringify({ query, mode, topK, memoryType }));
    const rows = table.tBodies[0];
    rows.replaceChildren();
    found.results.forEach((hit, index) => {
      const row = el("tr");
      row.dataset.coord = hit.coord;
      const coordCell = el("td");
      coordCell.append(memoryLink(hit.coord));
      row.append(
        el("td", index + 1, "num"),
        coordCell,
        el("td", hit.score.toFixed(4), "num"),
        signalChips(hit.signals),
        el("td", hit.memory_type),
        el("td", hit.importance.toFixed(2), "num"),
        el("td", summary(hit.payload), "text"),
      );
      rows.append(row);
    });
    table.hidden = found.results.length === 0;
    const noun = found.results.length === 1 ? "result" : "results";
    status.textContent = `${found.results.length} ${noun} (${mode}, ${ms} ms)`;
  }

  /* Browse without a query: the tenant's memories a page at a time (GET /memories). */
  const BROWSE_PAGE = 25;
  let browseCursor = null;

  async function browse(more) {
    const status = $("browse-status");
    const table = $("memories");
    const rows = table.tBodies[0];
    const memoryType = $("browse-type").value;
    if (!more) {
      rows.replaceChildren();
      browseCursor = null;
    }
    status.textContent = "Loading…";
    const params = { limit: BROWSE_PAGE };
    if (memoryType) params.memory_type = memoryType;
    if (more && browseCursor) params.cursor = browseCursor;
    const found = await api("GET", "/memories", { params });
    for (const memory of found.memories) {
      const row = el("tr");
      row.dataset.coord = memory.coord;
      const coordCell = el("td");
      coordCell.append(memoryLink(memory.coord));
      const created = el("td");
      created.append(when(memory.created_at));
      row.append(
        coordCell,
        el("td", memory.memory_type),
        el("td", memory.importance.toFixed(2), "num"),
        created,
        el("td", summary(memory.payload), "text"),
      );
      rows.append(row);
    }
    browseCursor = found.next_cursor;
    $("browse-more").hidden = !browseCursor;
    table.hidden = rows.children.length === 0;
    const shown = rows.children.length;
    const kind = memoryType ? `${memoryType} ` : "";
    status.textContent = shown
      ? `${shown} ${kind}${shown === 1 ? "memory" : "memories"}${browseCursor ? ", more to load" : ""}`
      : `No ${kind}memories.`;
  }

  function overviewPage() {
    if (!getKey()) {
      goSignIn();
      return;
    }
    loadHealth().catch(showError);
    loadStats().catch(showError);
    browse(false).catch(showError);
    $("browse-type").addEventListener("change", () => browse(false).catch(showError));
    $("browse-more").addEventListener("click", () => browse(true).catch(showError));
    const form = $("search-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const query = $("query").value.trim();
      if (!query) return;
      runSearch(query, $("mode").value, Number($("top-k").value), $("search-type").value).catch((exc) => {
        $("search-status").textContent = "";
        showError(exc);
      });
    });
    const last = sessionStorage.getItem(LAST_SEARCH);
    if (last) {
      try {
        const { query, mode, topK, memoryType = "" } = JSON.parse(last);
        $("query").value = query;
        $("mode").value = mode;
        $("top-k").value = String(topK);
        $("search-type").value = memoryType;
        runSearch(query, mode, topK, memoryType).catch(showError);
      } catch {
        sessionStorage.removeItem(LAST_SEARCH);
      }
    }
  }

  /* ---- one memory: detail, neighbours, delete --------------------------------------- */

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
    for (const [direction, answer] of [["out", outgoing], ["in", incoming]]) {
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
      const coordCell = el("td");
      coordCell.append(memoryLink(neighbor.coord));
      const text = el("td", index < NEIGHBOR_TEXTS ? "…" : "", "text");
      row.append(
        el("td", both ? "↔ both ways" : out ? "→ links to" : "← linked from", "direction"),
        coordCell,
        el("td", neighbor.link_type),
        el("td", neighbor.strength.toFixed(2), "num"),
        el("td", neighbor.depth, "num"),
        text,
      );
      body.append(row);
      if (index < NEIGHBOR_TEXTS) {
        api("GET", `/memories/${encodeURIComponent(neighbor.coord)}`)
          .then((memory) => { text.textContent = summary(memory.payload); })
          .catch(() => { text.textContent = "(not readable)"; });
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
      const recorded = el("td");
      recorded.append(when(version.recorded_at));
      row.append(el("td", version.change), recorded, el("td", summary(version.payload)), successor);
      body.append(row);
    }
    table.hidden = found.versions.length === 0;
    const more = found.next_cursor ? " (the 50 newest)" : "";
    status.textContent = `${found.versions.length} ${found.versions.length === 1 ? "version" : "versions"}${more}`;
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
      clearError();
      $("delete-yes").disabled = true;
      try {
        await api("DELETE", `/memories/${encodeURIComponent(coord)}`);
      } catch (exc) {
        $("delete-yes").disabled = false;
        showError(exc);
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
    if (!getKey()) {
      goSignIn();
      return;
    }
    const coord = new URLSearchParams(window.location.search).get("coord");
    if (!coord) {
      $("memory-status").textContent = "No coordinate given (open a memory from the search).";
      $("neighbors-card").hidden = true;
      return;
    }
    $("coord").textContent = coord;
    setupDelete(coord);
    $("k-hop").addEventListener("change", () => loadNeighbors(coord).catch(showError));
    loadMemory(coord).catch(showError);
  }

  /* ---- items: namespaces and search under a prefix ----------------------------------- */

  function labels(text) {
    return text.split(/[/.]/).map((label) => label.trim()).filter((label) => label);
  }

  async function loadNamespaces() {
    const found = await api("GET", "/namespaces", { params: { max_depth: "3", limit: "200" } });
    const list = $("namespaces");
    list.replaceChildren();
    for (const namespace of found.namespaces) {
      const item = el("li");
      const pick = el("button", namespace.join("/"), "link");
      pick.type = "button";
      pick.addEventListener("click", () => {
        $("prefix").value = namespace.join("/");
        runItemSearch().catch(showError);
      });
      item.append(pick);
      list.append(item);
    }
    $("namespaces-status").textContent = found.namespaces.length ? "" : "No items yet.";
  }

  async function runItemSearch() {
    clearError();
    const query = $("item-query").value.trim();
    const mode = $("item-mode").value;
    const body = { namespace_prefix: labels($("prefix").value), limit: 50 };
    if (query) Object.assign(body, { query, mode });
    $("items-status").textContent = "Searching…";
    const started = performance.now();
    const found = await api("POST", "/items/search", { body });
    const ms = Math.round(performance.now() - started);
    const rows = $("items").tBodies[0];
    rows.replaceChildren();
    found.items.forEach((item, index) => {
      const row = el("tr");
      row.dataset.key = item.key;
      row.append(
        el("td", index + 1, "num"),
        el("td", item.namespace.join("/")),
        el("td", item.key, "coord"),
        el("td", item.score === null ? "" : item.score.toFixed(4), "num"),
      );
      const updated = el("td");
      updated.append(when(item.updated_at));
      row.append(updated, el("td", summary(item.value), "text"));
      rows.append(row);
    });
    $("items").hidden = found.items.length === 0;
    const noun = found.items.length === 1 ? "item" : "items";
    $("items-status").textContent = `${found.items.length} ${noun} (${query ? mode : "newest first"}, ${ms} ms)`;
  }

  function itemsPage() {
    if (!getKey()) {
      goSignIn();
      return;
    }
    loadNamespaces().catch(showError);
    $("items-form").addEventListener("submit", (event) => {
      event.preventDefault();
      runItemSearch().catch((exc) => {
        $("items-status").textContent = "";
        showError(exc);
      });
    });
  }

  setupChrome();
  const pages = {
    signin: signInPage,
    overview: overviewPage,
    memory: memoryPage,
    items: itemsPage,
  };
  if (pages[page]) pages[page]();
})();
