/* Conversations (/ui/conversations): the tenant's conversations, newest last message first,
 * filtered by scope; one conversation (/ui/conversation?id=): its messages in conversation
 * order, a page at a time. */
(() => {
  "use strict";

  const { $, api, el, when, cell, link, labelRow, uiUrl, scopeChips, scopeCell } = window.SFMUI;
  const PAGE = 50;

  const conversationUrl = (id, message) => uiUrl("/ui/conversation", { id, message });
  const clip = (text, length = 200) => (text.length > length ? `${text.slice(0, length - 3)}…` : text);

  let listCursor = null;
  let listings = 0; // a newer listing's answer wins over an older one's that comes later

  async function loadConversations(filters, more) {
    const status = $("conversations-status");
    const table = $("conversations");
    const rows = table.tBodies[0];
    const mine = ++listings;
    status.textContent = "Loading…";
    const params = { limit: PAGE, ...filters };
    if (more && listCursor) params.cursor = listCursor;
    const found = await api("GET", "/conversations", { params });
    if (mine !== listings) return;
    if (!more) rows.replaceChildren();
    for (const conversation of found.conversations) {
      const row = el("tr");
      row.dataset.conversation = conversation.conversation_id;
      row.append(
        cell("", link(conversation.conversation_id, conversationUrl(conversation.conversation_id), "coord")),
        el("td", conversation.messages, "num"),
        scopeCell(conversation, "/ui/conversations"),
        cell("", when(conversation.first_at)),
        cell("", when(conversation.last_at)),
      );
      rows.append(labelRow(table, row));
    }
    listCursor = found.next_cursor;
    $("conversations-more").hidden = !listCursor;
    table.hidden = rows.children.length === 0;
    const shown = rows.children.length;
    const noun = shown === 1 ? "conversation" : "conversations";
    status.textContent = shown
      ? `${shown} ${noun}${listCursor ? ", more to load" : ""}`
      : "No conversations.";
  }

  let searches = 0;

  /* Messages by meaning, keywords or both (POST /conversations/search), of the chosen scopes;
   * each hit opens its conversation at that message. */
  async function searchMessages(query, mode, filters) {
    SFMUI.clearError();
    const mine = ++searches;
    const status = $("message-search-status");
    status.textContent = "Searching…";
    const started = performance.now();
    const found = await api("POST", "/conversations/search", {
      body: { query, mode, top_k: 20, ...filters },
    });
    if (mine !== searches) return;
    const ms = Math.round(performance.now() - started);
    const table = $("message-hits");
    const rows = table.tBodies[0];
    rows.replaceChildren();
    found.results.forEach((hit, index) => {
      const row = el("tr");
      row.dataset.conversation = hit.conversation_id;
      row.dataset.id = hit.id;
      row.append(
        el("td", index + 1, "num"),
        cell("", link(hit.conversation_id, conversationUrl(hit.conversation_id, hit.id), "coord")),
        el("td", hit.score.toFixed(4), "num"),
        el("td", hit.role),
        cell("", when(hit.created_at)),
        el("td", clip(hit.content), "text"),
      );
      rows.append(labelRow(table, row));
    });
    table.hidden = found.results.length === 0;
    const noun = found.results.length === 1 ? "message" : "messages";
    status.textContent = `${found.results.length} ${noun} (${mode}, ${ms} ms)`;
  }

  function conversationsPage() {
    const fail = (exc) => {
      $("conversations-status").textContent = "";
      SFMUI.showError(exc);
    };
    const search = () => {
      const query = $("message-query").value.trim();
      if (!query) return;
      searchMessages(query, $("message-mode").value, filters()).catch((exc) => {
        $("message-search-status").textContent = "";
        SFMUI.showError(exc);
      });
    };
    const filters = SFMUI.setupFilter($("conversation-filter"), (chosen) => {
      loadConversations(chosen, false).catch(fail);
      search();
    });
    $("message-search").addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });
    loadConversations(filters(), false).catch(fail);
    $("conversations-more").addEventListener("click", () =>
      loadConversations(filters(), true).catch(fail),
    );
  }

  /* ---- one conversation ---------------------------------------------------------------- */

  let messageCursor = null;

  function messageItem(message, number) {
    const item = el("li", null, `message role-${message.role}`);
    item.dataset.id = message.id;
    item.dataset.role = message.role;
    const head = el("div", null, "message-head");
    head.append(el("span", number, "muted number"), el("span", message.role, "badge role"));
    if (message.name) head.append(el("span", message.name, "name"));
    head.append(when(message.created_at), scopeChips(message, "/ui/conversations"));
    item.append(head, el("div", message.content, "content"));
    return item;
  }

  /* Load pages until the message `wanted` is shown (at most MAX_PAGES), then point at it. */
  const MAX_PAGES = 20;

  async function showMessage(id, wanted) {
    for (let page = 1; page < MAX_PAGES && messageCursor && !findMessage(wanted); page += 1) {
      await loadMessages(id, true);
    }
    const item = findMessage(wanted);
    if (!item) return;
    item.classList.add("wanted");
    item.setAttribute("aria-current", "true");
    item.scrollIntoView({ block: "center" });
  }

  const findMessage = (wanted) =>
    [...$("messages").children].find((item) => item.dataset.id === wanted);

  async function loadMessages(id, more) {
    const status = $("messages-status");
    const list = $("messages");
    status.textContent = "Loading…";
    const params = { limit: PAGE };
    if (more && messageCursor) params.cursor = messageCursor;
    const found = await api("GET", `/conversations/${encodeURIComponent(id)}/messages`, { params });
    for (const message of found.messages) {
      list.append(messageItem(message, list.children.length + 1));
    }
    messageCursor = found.next_cursor;
    $("messages-more").hidden = !messageCursor;
    const shown = list.children.length;
    status.textContent = shown
      ? `${shown} ${shown === 1 ? "message" : "messages"}, in conversation order${messageCursor ? ", more to load" : ""}`
      : "No messages in this conversation.";
  }

  function conversationPage() {
    const id = new URLSearchParams(window.location.search).get("id");
    if (!id) {
      $("messages-status").textContent = "No conversation given (open one from the list).";
      return;
    }
    $("conversation-id").textContent = id;
    document.title = `Conversation ${id} · SomaFractalMemory`;
    const fail = (exc) => {
      $("messages-status").textContent = "";
      SFMUI.showError(exc);
    };
    const wanted = new URLSearchParams(window.location.search).get("message");
    loadMessages(id, false)
      .then(() => (wanted ? showMessage(id, wanted) : undefined))
      .catch(fail);
    $("messages-more").addEventListener("click", () => loadMessages(id, true).catch(fail));
  }

  SFMUI.page("conversations", conversationsPage);
  SFMUI.page("conversation", conversationPage);
})();
