// The board's pages: everything the server sends goes in as text (textContent), never as markup.
"use strict";
(function () {
  const REFRESH_MS = 10000;
  let me = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function call(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (response.status === 401) {
      location.href = "/board/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("请先登录");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || ("请求失败（" + response.status + "）"));
    return body;
  }

  function showError(message) {
    const node = document.getElementById("error");
    if (node) node.textContent = message || "";
  }

  function fill(select, items) {
    for (const item of items) select.append(el("option", { value: item.code }, item.name));
  }

  async function loadMe() {
    me = await call("/board/api/me");
    document.getElementById("who").textContent = me.name;
    const office = document.getElementById("office");
    if (office) office.textContent = me.office + " · 工单看板";
    return me;
  }

  // -- the board --------------------------------------------------------------------------------------------
  function query() {
    const form = document.getElementById("filters");
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v !== "") params.set(k, v);
    return params;
  }

  async function refresh() {
    try {
      const params = query();
      const data = await call("/board/api/board?" + params.toString());
      const tiles = document.getElementById("tiles");
      tiles.replaceChildren(...data.tiles.map((t) => el("li", {
        class: t.count && (t.key === "overdue" || t.key === "warning" || t.key === "due_soon") ? "hot" : "",
        "data-key": t.key,
      }, el("span", { class: "n" }, t.count), el("span", { class: "l" }, t.label))));
      const body = document.querySelector("#rows tbody");
      body.replaceChildren(...data.rows.map((r) => el("tr", { class: "band-" + r.band, "data-ticket": r.ticket_no },
        el("td", {}, el("a", { href: "/board/ticket/" + encodeURIComponent(r.ticket_no) }, r.ticket_no),
          r.repeat ? el("span", { class: "flag" }, "重复") : null,
          r.media ? el("span", { class: "flag" }, "媒体") : null,
          el("small", {}, r.kind + " · " + r.title)),
        el("td", {}, r.deadline, el("small", {}, "已用 " + Math.round(r.used * 100) + "%")),
        el("td", {}, r.due_at.replace("T", " ").slice(5, 16), el("small", {}, r.remaining)),
        el("td", {}, r.unit, el("small", {}, r.handler || "未接单")),
        el("td", {}, r.state))));
      document.getElementById("more").hidden = !data.more;
      document.getElementById("empty").hidden = data.rows.length > 0;
      document.getElementById("updated").textContent = "更新于 " + data.at.slice(11, 19);
      showError("");
    } catch (error) {
      showError("刷新失败：" + error.message + "（稍后自动重试）");
    }
  }

  async function board() {
    await loadMe();
    fill(document.getElementById("f-unit"), me.units);
    fill(document.getElementById("f-kind"), me.kinds);
    fill(document.getElementById("f-state"), me.states);
    const form = document.getElementById("filters");
    const initial = new URLSearchParams(location.search);
    for (const [k, v] of initial.entries()) if (form.elements[k]) form.elements[k].value = v;
    form.addEventListener("change", () => {
      history.replaceState(null, "", "?" + query().toString());
      refresh();
    });
    await refresh();
    setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  }

  // -- a ticket ---------------------------------------------------------------------------------------------
  const NEEDS = {
    redispatch: ["unit"], approve_return: [], request_return: ["unit"], visit: ["result"],
    request_extension: ["days"], approve_extension: ["days"],
  };
  const NOTE_REQUIRED = ["submit", "request_return", "reject_return", "request_extension", "request_exclusion",
    "decline_return"];

  function ticketNo() {
    return decodeURIComponent(location.pathname.split("/").pop());
  }

  async function loadTicket() {
    const t = await call("/board/api/tickets/" + encodeURIComponent(ticketNo()));
    document.title = "工单 " + t.ticket_no;
    document.getElementById("ticket-no").textContent = "工单 " + t.ticket_no;
    document.getElementById("title").textContent = t.title;
    document.getElementById("content").textContent = t.content;
    document.getElementById("full-note").hidden = !t.full;
    document.getElementById("facts").replaceChildren(...t.facts.flatMap((f) => [el("dt", {}, f.label), el("dd", {}, f.value)]));
    document.querySelector("#deadlines tbody").replaceChildren(...t.deadlines.map((d) => el("tr", { class: "band-" + d.band },
      el("td", {}, d.name, el("small", {}, "第" + d.cycle + "轮")), el("td", {}, (d.due_at || "").replace("T", " ")),
      el("td", {}, d.status, el("small", {}, d.remaining)))));
    document.getElementById("history").replaceChildren(...t.history.map((h) => el("li", {},
      el("span", { class: "at" }, (h.at || "").replace("T", " ").slice(5)), h.who + " " + h.what + (h.note ? "：" + h.note : ""))));
    const section = document.getElementById("act-section");
    section.hidden = t.actions.length === 0;
    const unit = document.getElementById("a-unit");
    unit.replaceChildren(el("option", { value: "" }, "请选择"));
    fill(unit, t.units);
    const result = document.getElementById("a-result");
    result.replaceChildren();
    fill(result, t.results);
    document.getElementById("actions").replaceChildren(...t.actions.map((a) => {
      const button = el("button", { type: "button", "data-action": a.code }, a.label);
      button.addEventListener("click", () => openForm(a));
      return button;
    }));
  }

  let chosen = null;
  function openForm(action) {
    chosen = action;
    const form = document.getElementById("act-form");
    form.hidden = false;
    document.getElementById("act-title").textContent = action.label;
    const needs = NEEDS[action.code] || [];
    for (const field of ["unit", "result", "days"]) document.getElementById("l-" + field).hidden = !needs.includes(field);
    const note = document.getElementById("a-note");
    note.required = NOTE_REQUIRED.includes(action.code);
    note.placeholder = note.required ? "必填" : "选填";
    document.getElementById("act-result").textContent = "";
    (needs.length ? document.getElementById("a-" + needs[0]) : note).focus();
  }

  async function submitAction(event) {
    event.preventDefault();
    if (!chosen) return;
    const needs = NEEDS[chosen.code] || [];
    const body = { action: chosen.code, note: document.getElementById("a-note").value };
    if (needs.includes("unit") && document.getElementById("a-unit").value) body.unit = document.getElementById("a-unit").value;
    if (needs.includes("result")) body.result = document.getElementById("a-result").value;
    if (needs.includes("days")) body.days = parseInt(document.getElementById("a-days").value, 10);
    const submit = document.getElementById("a-submit");
    submit.disabled = true;
    try {
      const answer = await call("/board/api/tickets/" + encodeURIComponent(ticketNo()) + "/actions", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf },
        body: JSON.stringify(body),
      });
      document.getElementById("act-form").hidden = true;
      document.getElementById("a-note").value = "";
      document.getElementById("act-result").textContent = answer.message + "，当前状态：" + answer.state;
      showError("");
      await loadTicket();
    } catch (error) {
      showError(error.message);
    } finally {
      submit.disabled = false;
    }
  }

  async function ticket() {
    await loadMe();
    document.getElementById("act-form").addEventListener("submit", submitAction);
    document.getElementById("a-cancel").addEventListener("click", () => { document.getElementById("act-form").hidden = true; });
    try {
      await loadTicket();
    } catch (error) {
      showError(error.message);
    }
  }

  async function logout() {
    try {
      await call("/board/api/logout", { method: "POST", headers: { "X-CSRF-Token": me ? me.csrf : "" } });
    } finally {
      location.href = "/board/login";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    const out = document.getElementById("logout");
    if (out) out.addEventListener("click", logout);
    (page === "ticket" ? ticket() : board()).catch((error) => showError(error.message));
  });
})();
