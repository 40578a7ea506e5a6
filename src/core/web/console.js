/* console.js — the network operator's console (core/console.h). Every
 * action goes through the core's API with the operator's own certificate
 * (the browser presents it): GET /v1/network, GET and POST /v1/incidents,
 * GET /v1/records, GET /v1/catalog. No framework, nothing from outside;
 * text is put in the page as text, never as markup. */
"use strict";

const $ = (id) => document.getElementById(id);

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (cls) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text == null ? "" : String(text);
  }
  row.appendChild(td);
  return td;
}

function say(id, text, error) {
  $(id).textContent = text;
  $(id).classList.toggle("error", !!error);
}

async function api(method, path, body) {
  const init = { method, headers: { "Accept": "application/json" }, credentials: "include" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (!r.ok) {
    const err = j && j.error ? `${j.error.code}: ${j.error.message}` : `HTTP ${r.status}`;
    throw new Error(err);
  }
  return j;
}

/* ---------- nodes and the registry ---------- */

async function loadNetwork() {
  try {
    const n = await api("GET", "/v1/network");
    $("network").textContent = `${n.network} — ${n.served_by}`;
    const body = $("node-list").tBodies[0], reg = $("registry-list").tBodies[0];
    body.replaceChildren();
    reg.replaceChildren();
    const counts = { ok: 0, degraded: 0, down: 0, unknown: 0 };
    for (const node of n.nodes) {
      const r = document.createElement("tr");
      cell(r, node.id); cell(r, node.role); cell(r, node.agency); cell(r, node.kind); cell(r, node.url);
      reg.appendChild(r);
      if (!node.health) continue;
      counts[node.health.state] = (counts[node.health.state] || 0) + 1;
      const h = document.createElement("tr");
      h.dataset.node = node.id;
      cell(h, node.id); cell(h, node.role); cell(h, node.agency);
      cell(h, node.health.state, `state ${node.health.state}`);
      cell(h, node.health.checked_at || "");
      body.appendChild(h);
    }
    say("nodes-status", `正常 ${counts.ok}・低下 ${counts.degraded}・停止 ${counts.down}・未確認 ${counts.unknown}` +
        ` （${n.health_sweep_s} 秒ごとに確認）`);
    say("registry-status", `${n.nodes.length} 件の登録`);
  } catch (e) {
    say("nodes-status", `読み込めませんでした：${e.message}`, true);
    say("registry-status", `読み込めませんでした：${e.message}`, true);
  }
}

/* ---------- incidents ---------- */

let incidents = [];
let editing = null;

async function loadIncidents() {
  const kind = $("incident-kind").value;
  try {
    const j = await api("GET", "/v1/incidents" + (kind ? `?kind=${encodeURIComponent(kind)}` : ""));
    incidents = j.incidents;
    const body = $("incident-list").tBodies[0];
    body.replaceChildren();
    for (const inc of incidents) {
      const r = document.createElement("tr");
      r.dataset.incident = inc.incident_id;
      cell(r, inc.detected_at); cell(r, inc.kind); cell(r, inc.node); cell(r, inc.summary);
      cell(r, inc.actions); cell(r, inc.cause); cell(r, inc.prevention);
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "報告";
      b.className = "edit";
      b.addEventListener("click", () => edit(inc));
      cell(r, "").appendChild(b);
      body.appendChild(r);
    }
    say("incidents-status", `${incidents.length} 件`);
  } catch (e) {
    say("incidents-status", `読み込めませんでした：${e.message}`, true);
  }
}

function edit(inc) {
  editing = inc;
  $("report-id").textContent = inc.incident_id;
  $("report-actions").value = inc.actions || "";
  $("report-cause").value = inc.cause || "";
  $("report-prevention").value = inc.prevention || "";
  $("incident-report").hidden = false;
  $("report-cause").focus();
}

async function saveReport(ev) {
  ev.preventDefault();
  if (!editing) return;
  /* a later POST with the same incident_id updates the report (node/incidents.h) */
  const body = {
    incident_id: editing.incident_id, kind: editing.kind, node: editing.node, summary: editing.summary,
    details: editing.details || "", actions: $("report-actions").value, cause: $("report-cause").value,
    prevention: $("report-prevention").value,
  };
  try {
    await api("POST", "/v1/incidents", body);
    say("incidents-status", `${editing.incident_id} を更新しました`);
    $("incident-report").hidden = true;
    editing = null;
    await loadIncidents();
    say("incidents-status", `更新しました（${incidents.length} 件）`);
  } catch (e) {
    say("incidents-status", `保存できませんでした：${e.message}`, true);
  }
}

/* ---------- records ---------- */

let recordQuery = "", nextBefore = 0;

async function searchRecords(more) {
  if (!more) {
    const p = new URLSearchParams();
    const put = (k, v) => { if (v) p.set(k, v); };
    put("exchange_id", $("rec-exchange").value.trim());
    put("agency", $("rec-agency").value.trim());
    put("outcome", $("rec-outcome").value.trim());
    put("since", $("rec-since").value);
    put("until", $("rec-until").value);
    recordQuery = p.toString();
    say("records-status", "検索しています…");
    nextBefore = 0;
    $("record-list").tBodies[0].replaceChildren();
  }
  const q = recordQuery + (nextBefore ? `${recordQuery ? "&" : ""}before=${nextBefore}` : "");
  try {
    const j = await api("GET", "/v1/records" + (q ? `?${q}` : ""));
    const body = $("record-list").tBodies[0];
    for (const rec of j.records) {
      const r = document.createElement("tr");
      r.dataset.exchange = rec.exchange_id;
      cell(r, rec.requested_at); cell(r, rec.exchange_id); cell(r, rec.side); cell(r, rec.requester);
      cell(r, rec.provider); cell(r, rec.business); cell(r, rec.item); cell(r, rec.outcome); cell(r, rec.reason);
      body.appendChild(r);
    }
    nextBefore = j.next_before || 0;
    $("records-more").hidden = !nextBefore;
    say("records-status", `${body.rows.length} 件${nextBefore ? "（続きがあります）" : ""}`);
  } catch (e) {
    say("records-status", `検索できませんでした：${e.message}`, true);
  }
}

/* ---------- the permission table ---------- */

async function loadPermissions() {
  try {
    const j = await api("GET", "/v1/catalog");
    const doc = j.document || j;
    const rows = doc.permissions || doc.rows || [];
    const body = $("permission-list").tBodies[0];
    body.replaceChildren();
    for (const p of rows) {
      const r = document.createElement("tr");
      cell(r, p.requester_kind); cell(r, p.business); cell(r, p.provider_kind); cell(r, p.item);
      cell(r, Array.isArray(p.conditions) ? p.conditions.join(", ") : (p.conditions || ""));
      body.appendChild(r);
    }
    const version = doc.catalog_version != null ? `第 ${doc.catalog_version} 版` : "";
    const from = doc.effective_from ? `（${doc.effective_from} 施行）` : "";
    say("permissions-status", `${version}${from} ${rows.length} 行`);
  } catch (e) {
    say("permissions-status", `読み込めませんでした：${e.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("incident-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadIncidents(); });
  $("incident-report").addEventListener("submit", saveReport);
  $("report-cancel").addEventListener("click", () => { $("incident-report").hidden = true; editing = null; });
  $("record-search").addEventListener("submit", (ev) => { ev.preventDefault(); searchRecords(false); });
  $("records-more").addEventListener("click", () => searchRecords(true));
  loadNetwork();
  loadIncidents();
  searchRecords(false);
  loadPermissions();
});
