/* Items, LangGraph's store model (/ui/items): the tenant's namespaces, its items newest
 * first or searched under a prefix; one item (/ui/item?namespace=&key=) with its whole value.
 * Browsing never extends an item's TTL (refresh_ttl false). */
(() => {
  "use strict";

  const { $, api, el, when, cell, link, labelRow, summary, uiUrl, ApiError } = window.SFMUI;
  const CONVERSATIONS = "conversations"; // the first label of a conversation's namespace

  const itemUrl = (namespace, key) => uiUrl("/ui/item", { namespace, key });

  function labels(text) {
    return text
      .split(/[/.]/)
      .map((label) => label.trim())
      .filter((label) => label);
  }

  async function loadNamespaces(search) {
    const found = await api("GET", "/namespaces", { params: { max_depth: "3", limit: "200" } });
    const list = $("namespaces");
    list.replaceChildren();
    for (const namespace of found.namespaces) {
      const item = el("li");
      const pick = el("button", namespace.join("/"), "link");
      pick.type = "button";
      pick.addEventListener("click", () => {
        $("prefix").value = namespace.join("/");
        $("item-query").value = "";
        search();
      });
      item.append(pick);
      if (namespace[0] === CONVERSATIONS && namespace.length === 2) {
        item.append(link("as a conversation", uiUrl("/ui/conversation", { id: namespace[1] }), "muted"));
      }
      list.append(item);
    }
    $("namespaces-status").textContent = found.namespaces.length ? "" : "No items yet.";
  }

  let searches = 0; // a newer search's answer wins over an older one's that comes later

  async function runItemSearch() {
    SFMUI.clearError();
    const mine = ++searches;
    const query = $("item-query").value.trim();
    const mode = $("item-mode").value;
    const prefix = labels($("prefix").value);
    const body = { namespace_prefix: prefix, limit: 50, refresh_ttl: false };
    if (query) Object.assign(body, { query, mode });
    $("items-status").textContent = "Searching…";
    const started = performance.now();
    const found = await api("POST", "/items/search", { body });
    if (mine !== searches) return;
    const ms = Math.round(performance.now() - started);
    const table = $("items");
    const rows = table.tBodies[0];
    rows.replaceChildren();
    found.items.forEach((item, index) => {
      const row = el("tr");
      row.dataset.key = item.key;
      row.dataset.namespace = item.namespace.join("/");
      row.append(
        el("td", index + 1, "num"),
        el("td", item.namespace.join("/")),
        cell("", link(item.key, itemUrl(item.namespace, item.key), "coord")),
        el("td", item.score === null ? "" : item.score.toFixed(4), "num"),
        cell("", when(item.updated_at)),
        el("td", summary(item.value), "text"),
      );
      rows.append(labelRow(table, row));
    });
    table.hidden = found.items.length === 0;
    const noun = found.items.length === 1 ? "item" : "items";
    const under = prefix.length ? ` under ${prefix.join("/")}` : "";
    $("items-status").textContent =
      `${found.items.length} ${noun}${under} (${query ? mode : "newest first"}, ${ms} ms)`;
  }

  function itemsPage() {
    const search = () =>
      runItemSearch().catch((exc) => {
        $("items-status").textContent = "";
        SFMUI.showError(exc);
      });
    loadNamespaces(search).catch(SFMUI.showError);
    $("items-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });
    search(); // no query: the newest items of every namespace
  }

  /* ---- one item ------------------------------------------------------------------------ */

  async function loadItem(namespace, key) {
    const status = $("item-status");
    let item;
    try {
      item = await api("GET", "/items", {
        params: { namespace, key, refresh_ttl: false, include_expired: true },
      });
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) {
        status.textContent = "There is no item with this namespace and key.";
        return;
      }
      throw exc;
    }
    $("item-created").replaceChildren(when(item.created_at));
    $("item-updated").replaceChildren(when(item.updated_at));
    $("item-space").textContent = item.space || "default";
    $("item-ttl").replaceChildren(
      item.ttl_minutes === null
        ? el("span", "none", "muted")
        : el("span", `${item.ttl_minutes} min`),
    );
    if (item.expires_at) $("item-ttl").append(" · expires ", when(item.expires_at));
    $("value").textContent = JSON.stringify(item.value, null, 2);
    status.hidden = true;
    $("item-body").hidden = false;
  }

  function itemPage() {
    const query = new URLSearchParams(window.location.search);
    const namespace = query.getAll("namespace");
    const key = query.get("key");
    if (!namespace.length || !key) {
      $("item-status").textContent = "No namespace and key given (open an item from the list).";
      return;
    }
    const path = $("item-namespace");
    namespace.forEach((label, index) => {
      if (index) path.append("/");
      // each prefix of the namespace lists its items
      path.append(link(label, uiUrl("/ui/items", { prefix: namespace.slice(0, index + 1).join("/") })));
    });
    $("item-key").textContent = key;
    document.title = `Item ${namespace.join("/")} ${key} · SomaFractalMemory`;
    if (namespace[0] === CONVERSATIONS && namespace.length === 2) {
      const open = $("item-conversation");
      open.href = uiUrl("/ui/conversation", { id: namespace[1] });
      open.hidden = false;
    }
    loadItem(namespace, key).catch(SFMUI.showError);
  }

  SFMUI.page("items", () => {
    const prefix = new URLSearchParams(window.location.search).get("prefix");
    if (prefix) $("prefix").value = prefix;
    itemsPage();
  });
  SFMUI.page("item", itemPage);
})();
