/* SomaFractalMemory memory browser: what every page shares. Plain JavaScript, no build step.
 *
 * The API key lives in this tab's sessionStorage only. It is sent to the JSON API as an
 * `Authorization: Bearer` header by fetch(), never in a URL, a cookie or a form field the
 * browser could submit. Everything shown comes from the authenticated JSON API and is put
 * into the page with textContent (never innerHTML), so stored payloads cannot inject markup.
 *
 * Each page's script registers itself with SFMUI.page(name, start); once the document is
 * parsed (all scripts are deferred, so they have all run by then) the page named by
 * <body data-page> starts.
 */
(() => {
  "use strict";

  const KEY = "sfm.apiKey";
  const FLASH = "sfm.flash";
  const root = document.body.dataset.root || "";
  const $ = (id) => document.getElementById(id);
  const pages = {};

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

  /* A path of the browser with query parameters: an array value repeats the parameter,
   * an empty or missing one is left out. */
  function uiUrl(path, params = {}) {
    const url = new URL(`${root}${path}`, window.location.origin);
    for (const [name, value] of Object.entries(params)) {
      for (const one of Array.isArray(value) ? value : [value]) {
        if (one !== undefined && one !== null && one !== "") url.searchParams.append(name, one);
      }
    }
    return url.pathname + url.search;
  }

  /* One JSON request; `key` null means no Authorization header. Answers {status, ok, data}. */
  async function request(method, path, { params, body, key = getKey() } = {}) {
    const url = new URL(`${root}${path}`, window.location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      for (const one of Array.isArray(value) ? value : [value]) {
        url.searchParams.append(name, String(one));
      }
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
    box.textContent =
      exc instanceof ApiError ? `${exc.name} (${exc.status}): ${exc.detail}` : String(exc);
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

  function link(text, href, className) {
    const node = el("a", text, className);
    node.href = href;
    return node;
  }

  const memoryLink = (coord) => link(coord, uiUrl("/ui/memory", { coord }), "coord");

  function summary(payload, length = 160) {
    const text = typeof payload.text === "string" ? payload.text : JSON.stringify(payload);
    return text.length > length ? `${text.slice(0, length - 3)}…` : text;
  }

  /* A table cell holding `nodes` (elements or text). */
  function cell(className, ...nodes) {
    const node = el("td", null, className);
    node.append(...nodes);
    return node;
  }

  /* Label each cell of `row` with its column's heading: on a narrow screen a table row is
   * shown as a card, one "heading: value" line per cell (see ui.css). */
  function labelRow(table, row) {
    const headings = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
    [...row.cells].forEach((td, index) => {
      td.dataset.label = headings[index] || "";
    });
    return row;
  }

  /* ---- scopes: filters and chips ------------------------------------------------------- */

  const SCOPES = [
    ["user_id", "user"],
    ["agent_id", "agent"],
    ["session_id", "session"],
  ];

  /* Chips naming a record's scopes, each a link to `page` filtered by that scope. */
  function scopeChips(record, page = "/ui") {
    const node = el("span", null, "scopes");
    for (const [field, label] of SCOPES) {
      if (record[field]) {
        const chip = link(`${label} ${record[field]}`, uiUrl(page, { [field]: record[field] }));
        chip.className = `chip scope ${label}`;
        chip.dataset.scope = field;
        node.append(chip);
      }
    }
    return node;
  }

  /* A table cell with a record's scope chips (empty when it has none). */
  function scopeCell(record, page) {
    const chips = scopeChips(record, page);
    return chips.childElementCount ? cell("", chips) : el("td");
  }

  /* Fill the scope inputs' suggestion lists with the tenant's scope values (GET /scopes). */
  async function suggestScopes() {
    await Promise.all(
      SCOPES.map(async ([field]) => {
        const list = $(`${field}-values`);
        if (!list) return;
        const found = await api("GET", `/scopes/${field}`, { params: { limit: 200 } });
        list.replaceChildren(
          ...found.values.map((value) => {
            const option = el("option");
            option.value = value;
            return option;
          }),
        );
      }),
    );
  }

  /* A filter form (a type, scopes...): its named fields start from the URL; submitting it
   * puts them in the URL (so a filtered view can be bookmarked, and reloading keeps it) and
   * calls `apply` with them. Answers a function that reads the chosen filters. */
  function setupFilter(form, apply) {
    const fields = [...form.elements].filter((field) => field.name);
    const query = new URLSearchParams(window.location.search);
    for (const field of fields) {
      const value = query.get(field.name);
      if (value) field.value = value;
    }
    const current = () => {
      const chosen = {};
      for (const field of fields) {
        const value = field.value.trim();
        if (value) chosen[field.name] = value;
      }
      return chosen;
    };
    const update = () => {
      const next = new URLSearchParams(window.location.search);
      const chosen = current();
      for (const field of fields) {
        if (chosen[field.name]) next.set(field.name, chosen[field.name]);
        else next.delete(field.name);
      }
      const search = next.toString();
      window.history.replaceState(null, "", window.location.pathname + (search ? `?${search}` : ""));
      apply(chosen);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      update();
    });
    for (const select of form.querySelectorAll("select[name]")) {
      select.addEventListener("change", update);
    }
    const clear = form.querySelector(".clear");
    if (clear) {
      clear.addEventListener("click", () => {
        for (const field of fields) field.value = field.tagName === "SELECT" ? field.options[0].value : "";
        update();
      });
    }
    if (form.querySelector("datalist")) suggestScopes().catch(showError);
    return current;
  }

  /* ---- the page chrome and sign-in ------------------------------------------------------ */

  function setupChrome() {
    const key = getKey();
    // A detail page belongs to its list's section of the navigation.
    const sections = { memory: "overview", item: "items", conversation: "conversations" };
    const current = sections[document.body.dataset.page] || document.body.dataset.page;
    for (const a of document.querySelectorAll(".topbar nav a")) {
      if (a.dataset.page === current) a.setAttribute("aria-current", "page");
    }
    if (!key) return;
    const note = $("tenant-note");
    note.textContent = `signed in · key ${key.slice(0, 10)}…`;
    note.hidden = false;
    const out = $("sign-out");
    out.hidden = false;
    out.addEventListener("click", () => {
      sessionStorage.clear();
      goSignIn("Signed out.");
    });
  }

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

  /* A page that needs a key: without one, go and sign in. */
  function signedIn(start) {
    return () => {
      if (!getKey()) {
        goSignIn();
        return;
      }
      start();
    };
  }

  window.SFMUI = {
    ApiError,
    $,
    api,
    request,
    showError,
    clearError,
    el,
    when,
    link,
    cell,
    labelRow,
    memoryLink,
    summary,
    uiUrl,
    scopeChips,
    scopeCell,
    setupFilter,
    page(name, start, { open = false } = {}) {
      pages[name] = open ? start : signedIn(start);
    },
  };
  window.SFMUI.page("signin", signInPage, { open: true });

  document.addEventListener("DOMContentLoaded", () => {
    setupChrome();
    const start = pages[document.body.dataset.page];
    if (start) start();
  });
})();
