// The board's pages: everything the server sends goes in as text (textContent), never as markup.
"use strict";
(function () {
  const REFRESH_MS = 10000;
  let me = null;
  // each load of the board and of a report is numbered: an answer that comes back after a later request was made
  // (a filter or a period changed meanwhile, a refresh) is dropped, never shown over the later one's
  let boardLoads = 0;
  let reportLoads = 0;

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
    const nav = document.getElementById("nav-reports");
    if (nav) nav.hidden = me.report_units.length === 0;
    const imports = document.getElementById("nav-import");
    if (imports) imports.hidden = !me.everything;
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
    const load = ++boardLoads;
    try {
      const params = query();
      const data = await call("/board/api/board?" + params.toString());
      if (load !== boardLoads) return;
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
        el("td", {}, r.deadline, el("small", {}, r.used_text)),
        el("td", {}, r.due, el("small", {}, r.remaining)),
        el("td", {}, r.unit, el("small", {}, r.handler || "未接单")),
        el("td", {}, r.state))));
      document.getElementById("more").hidden = !data.more;
      document.getElementById("empty").hidden = data.rows.length > 0;
      document.getElementById("updated").textContent = "更新于 " + data.at.slice(11, 19);
      showError("");
    } catch (error) {
      if (load === boardLoads) showError("刷新失败：" + error.message + "（稍后自动重试）");
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
    redispatch: ["unit"], approve_return: ["unit"], request_return: ["unit"], visit: ["result"],
  };
  const NOTE_REQUIRED = ["submit", "request_return", "reject_return", "request_exclusion", "decline_return"];

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
      el("td", {}, d.name, el("small", {}, "第" + d.cycle + "轮")), el("td", {}, d.due),
      el("td", {}, d.status, el("small", {}, d.remaining)))));
    document.getElementById("history").replaceChildren(...t.history.map((h) => el("li", {},
      el("span", { class: "at" }, h.when), h.who + " " + h.what + (h.note ? "：" + h.note : ""))));
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
    document.getElementById("l-unit-text").textContent = action.code === "request_return" ? "建议改派单位"
      : action.code === "approve_return" ? "同时改派到（选填；不选则待改派）" : "派往单位";
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

  // -- reports ----------------------------------------------------------------------------------------------
  function reportQuery() {
    const params = new URLSearchParams();
    const month = document.getElementById("r-month").value;
    params.set("period", month || document.getElementById("r-period").value);
    const unit = document.getElementById("r-unit").value;
    if (unit) params.set("unit", unit);
    return params;
  }

  function cell(c) {
    return el("td", { class: c.below ? "below" : "" }, c.rate, el("small", {}, c.count),
      el("small", {}, "环比 " + c.previous + " · 同比 " + c.year_ago));
  }

  function reportRow(r, total) {
    return el("tr", total ? { class: "total" } : {}, el("th", { scope: "row" }, (r.rank ? r.rank + ". " : "") + r.name,
      el("small", {}, "受理 " + r.received + " · 得分 " + r.score)), ...r.cells.map(cell));
  }

  async function loadReport() {
    const load = ++reportLoads;
    const params = reportQuery();
    history.replaceState(null, "", "?" + params.toString());
    document.getElementById("updated").textContent = "正在统计…";
    try {
      const data = await call("/board/api/reports?" + params.toString());
      if (load !== reportLoads) return;
      document.getElementById("report-title").textContent = data.title;
      const table = document.getElementById("report");
      table.querySelector("thead").replaceChildren(el("tr", {}, el("th", { scope: "col" }, "单位"),
        ...data.columns.map((c, i) => el("th", { scope: "col" }, c, data.targets[i] ? el("small", {}, "目标 " + data.targets[i]) : null))));
      table.querySelector("tbody").replaceChildren(...data.rows.map((r) => reportRow(r, false)));
      table.querySelector("tfoot").replaceChildren(reportRow(data.total, true));
      const image = document.getElementById("chart");
      const note = document.getElementById("chart-note");
      note.textContent = "";
      image.onerror = () => { note.textContent = "图表暂时无法生成，数据和下载不受影响。"; };
      image.src = "/board/api/reports/chart.png?" + params.toString();
      document.getElementById("dl-xlsx").href = "/board/api/reports/download?format=xlsx&" + params.toString();
      document.getElementById("dl-csv").href = "/board/api/reports/download?format=csv&" + params.toString();
      document.getElementById("updated").textContent = "统计于 " + data.generated_at;
      showError("");
    } catch (error) {
      if (load !== reportLoads) return;
      document.getElementById("updated").textContent = "";
      showError(error.message);
    }
  }

  async function reports() {
    await loadMe();
    const period = document.getElementById("r-period");
    const unit = document.getElementById("r-unit");
    if (me.everything) unit.append(el("option", { value: "" }, "全部单位"));
    else if (me.report_units.length > 1) unit.append(el("option", { value: "" }, "我负责的全部单位"));
    fill(unit, me.report_units);
    const initial = new URLSearchParams(location.search);
    fill(period, me.periods);
    const asked = initial.get("period") || "上月";
    if (/^\d{4}-\d{2}$/.test(asked)) document.getElementById("r-month").value = asked; else period.value = asked;
    if (initial.get("unit")) unit.value = initial.get("unit");
    document.getElementById("report-form").addEventListener("change", (event) => {
      if (event.target.id === "r-period") document.getElementById("r-month").value = "";
      loadReport();
    });
    await loadReport();
  }

  // -- import -----------------------------------------------------------------------------------------------
  function showReport(report) {
    document.getElementById("i-report").hidden = false;
    const facts = [["文件行数", report.total], ["新建", report.created], ["更新", report.updated],
      ["未变化", report.unchanged], ["其中已办结", report.finished], ["未导入", report.errors.length],
      ["用时", report.seconds.toFixed(1) + " 秒"]];
    if (report.dry_run) facts.unshift(["方式", "只校验，未写入"]);
    document.getElementById("i-summary").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    document.getElementById("i-unrecognised").textContent = report.unrecognised_columns && report.unrecognised_columns.length
      ? "未识别而忽略的列：" + report.unrecognised_columns.join("、") : "";
    const rows = report.errors.map((e) => el("tr", {}, el("td", {}, e.row), el("td", {}, e.ticket_no || ""), el("td", {}, e.message)));
    document.querySelector("#i-errors tbody").replaceChildren(...rows);
    document.getElementById("i-errors").hidden = rows.length === 0;
    document.getElementById("i-errors-head").hidden = rows.length === 0;
  }

  function importFile(event) {
    event.preventDefault();
    const file = document.getElementById("i-file").files[0];
    if (!file) { showError("请选择要导入的文件"); return; }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("dry_run", document.getElementById("i-dry").checked ? "true" : "false");
    const bar = document.getElementById("i-progress");
    const stage = document.getElementById("i-stage");
    const submit = document.getElementById("i-submit");
    document.getElementById("i-progress-box").hidden = false;
    document.getElementById("i-report").hidden = true;
    showError("");
    submit.disabled = true;
    bar.value = 0;
    stage.textContent = "正在上传…";
    const xhr = new XMLHttpRequest();
    let seen = 0;
    function lines() {
      const text = xhr.responseText;
      const end = text.lastIndexOf("\n");
      if (end < seen) return;
      for (const raw of text.slice(seen, end).split("\n")) {
        if (!raw.trim()) continue;
        const item = JSON.parse(raw);
        if (item.error) { showError(item.error.message); stage.textContent = "导入未完成"; }
        if (item.report) { showReport(item.report); bar.value = 100; if (!item.error) stage.textContent = "完成"; }
        else if (item.total) { bar.value = Math.round(100 * item.done / item.total); stage.textContent = "正在导入：" + item.done + " / " + item.total + " 行"; }
        else if (!item.error) stage.textContent = "正在读取文件…";
      }
      seen = end + 1;
    }
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); stage.textContent = "正在上传：" + bar.value + "%"; } };
    xhr.onprogress = lines;
    xhr.onload = () => {
      submit.disabled = false;
      const finished = /"(report|error)"/.test(xhr.responseText);
      if (xhr.status === 401) { location.href = "/board/login?next=/board/import"; return; }
      if (xhr.status !== 200) {
        let message = "导入失败（" + xhr.status + "）";
        try { message = JSON.parse(xhr.responseText).error.message; } catch (e) { /* not JSON */ }
        showError(message);
        stage.textContent = "";
        document.getElementById("i-progress-box").hidden = true;
        return;
      }
      lines();
      if (!finished) {
        showError("导入的回应中断了，导入可能仍在进行或未完成：稍后在看板上查看，或重新上传同一文件（已导入的行不会重复）");
        stage.textContent = "";
      }
    };
    xhr.onerror = () => { submit.disabled = false; showError("网络中断，导入可能未完成：可重新上传同一文件（已导入的行不会重复）"); };
    xhr.open("POST", "/board/api/imports");
    xhr.setRequestHeader("X-CSRF-Token", me.csrf);
    xhr.send(form);
  }

  async function importer() {
    await loadMe();
    document.getElementById("import-form").addEventListener("submit", importFile);
  }

  async function logout() {
    try {
      await call("/board/api/logout", { method: "POST", headers: { "X-CSRF-Token": me ? me.csrf : "" } });
    } finally {
      location.href = "/board/signed-out";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    const out = document.getElementById("logout");
    if (out) out.addEventListener("click", logout);
    const run = { ticket: ticket, reports: reports, import: importer }[page] || board;
    run().catch((error) => showError(error.message));
  });
})();
