/* portal.js — the やりとり履歴 page (DESIGN §2.5). It lists the person's
 * exchanges as the portal relays them from the core, and checks each one
 * itself, with WebCrypto (SHA-256, Ed25519):
 *   1. the leaf is in the log: its RFC 9162 inclusion proof leads to the
 *      root of the checkpoint (leaf hash SHA-256(0x00‖leaf), node hash
 *      SHA-256(0x01‖left‖right));
 *   2. the checkpoint is the log's: its C2SP signed-note signature verifies
 *      with the core's log key (type 0x01);
 *   3. every witness cosigned that same checkpoint: each C2SP
 *      tlog-cosignature (type 0x04) verifies with that witness's key.
 * An entry is marked verified only when all three hold; what it shows is
 * read from the leaf it verified, never from the fields beside it. The
 * keys come from GET /v1/me/keys (the portal serves network.json's); the
 * page shows their key IDs so that a person can compare them with the
 * published ones. No framework, nothing from outside. */
"use strict";

const TEXT = {
  ja: {
    title: "やりとり履歴", switch: "English", loading: "読み込んでいます…",
    intro: "あなたの個人番号に関わる特定個人情報を、どの機関が、どの事務のために、どの機関に求めたか — 提供されたもの、断られたもの、失敗したものを含めて — の記録です（番号法第23条）。新しいものから並んでいます。",
    about: "「検証済み」とは",
    about_text: "<p>「検証済み」は、この画面を開いているブラウザ自身が、次の3つをすべて確かめたことを意味します。サーバーの言うことを信じたのではありません。</p><ol><li><b>記録がログにあること</b>：この記録のデータ（葉）が、コアシステムの記録ログ（改ざんできない追記専用の木）に含まれていることを、包含証明で確かめました。</li><li><b>ログがコアシステムのものであること</b>：そのログの状態（チェックポイント）に、コアシステムのログ鍵による電子署名があることを確かめました。</li><li><b>立会人が同じものを見ていること</b>：独立した立会人（個人情報保護委員会などの監査者）全員が、同じチェックポイントに連署していることを確かめました。コアシステムが人によって違う履歴を見せることはできません。</li></ol><p>表示している内容は、確かめた記録そのものから読み取っています。記録が一文字でも書き換えられていれば「検証できません」と表示されます。「確認待ち」は、まだ立会人が連署したチェックポイントに含まれていない新しい記録です。</p><p>「不開示」は、機関が法律（個人情報保護法第78条）に基づき内容を開示しないと決めた記録です。内容は表示されませんが、その記録がログのその位置にあることは同じ方法で確かめられます。</p><p>「検証済み」は、表示された記録が本物であることを示します。あなたの記録がすべて表示されていることまでは、この画面だけでは示せません。それは、ログ全体を確かめる立会人と監査者の役割です。</p>",
    key_log: "コアシステムのログ鍵", key_witness: "立会人の鍵",
    csv: "CSVでダウンロード", json: "JSONでダウンロード", more: "さらに表示",
    col_when: "照会日時", col_requester: "照会機関", col_provider: "提供機関", col_business: "事務",
    col_item: "特定個人情報", col_outcome: "結果", col_verified: "検証",
    verified: "検証済み", failed: "検証できません", pending: "確認待ち", checking: "確認中…",
    withheld: "不開示", withheld_note: "この記録は開示されません。根拠：", until: "（{0}まで）",
    count: "{0}件のやりとり（検証済み {1}件）", none: "記録されたやりとりはありません。",
    error: "読み込めませんでした：{0}",
    footer: "この画面は外部のサーバーから何も読み込みません。検証はこのブラウザの中で行われます。",
    outcomes: {
      provided: "提供された", no_data: "該当する情報なし", not_permitted: "拒否（法令で認められていない組合せ）",
      condition_not_permitted: "拒否（認められていない条件）", pia_not_valid: "拒否（評価が有効でない）",
      code_not_yours: "拒否（不正な符号）", unknown_code: "拒否（不明な符号）", unknown_provider: "拒否（不明な提供機関）",
      provider_unavailable: "失敗（提供機関に接続できず）", provider_timeout: "失敗（提供機関が応答せず）",
      declined: "提供されなかった", held: "提供機関で保留中", withheld: "不開示の決定",
      unlawful_request: "違法な照会と判断", unlawful_provision: "違法な提供と判断", deletion_requested: "削除を要求",
      deletion_confirmed: "削除を確認", deleted: "削除された", deleted_on_request: "要求により削除された",
      disclosed: "不開示を解除",
    },
    mydata_title: "わたしの情報",
    mydata_intro: "機関があなたについて保有している情報のうち、あなた自身に提供されるもの（住民票関係情報、年金給付関係情報など）を、その機関に求めて表示します。求めるたびに、やりとり履歴に記録されます。",
    mydata_load: "わたしの情報を表示する", col_agency: "機関", col_value: "内容", col_as_of: "時点",
    mydata_none: "表示できる情報はありません。", mydata_count: "{0}件の情報",
    mydata_status: { no_data: "該当する情報なし", failed: "機関から得られませんでした", declined: "機関の判断により表示されません", not_verified: "署名を確認できません" },
  },
  en: {
    title: "Exchange history", switch: "日本語", loading: "Loading…",
    intro: "This is the record of who asked for specific personal information about you, for which business, from whom — provided, refused or failed (My Number Act, Article 23). Newest first.",
    about: "What \u201cverified\u201d means",
    about_text: "<p>\u201cVerified\u201d means that this browser itself checked all three of the following. It did not take the server's word for it.</p><ol><li><b>The record is in the log</b>: an inclusion proof shows that this record's data (the leaf) is in the core system's records log, an append-only tree that cannot be rewritten.</li><li><b>The log is the core system's</b>: the log's state (its checkpoint) carries a valid signature of the core system's log key.</li><li><b>The witnesses see the same</b>: every independent witness (auditors such as the Personal Information Protection Commission) cosigned that same checkpoint, so the core system cannot show different histories to different people.</li></ol><p>What is shown is read from the very record that was checked. A record altered by a single character shows as \u201cnot verified\u201d. \u201cPending\u201d is a new record not yet in a checkpoint the witnesses cosigned.</p><p>\u201cWithheld\u201d is a record an agency decided not to disclose under the law (Act on the Protection of Personal Information, Article 78). Its contents are not shown, but its place in the log is checked the same way.</p><p>\u201cVerified\u201d shows that the records shown are genuine. That every record of yours is shown, this page alone cannot show: that is the work of the witnesses and auditors, who check the whole log.</p>",
    key_log: "The core system's log key", key_witness: "Witness key",
    csv: "Download CSV", json: "Download JSON", more: "Show more",
    col_when: "Requested", col_requester: "Requester", col_provider: "Provider", col_business: "Business",
    col_item: "Information", col_outcome: "Outcome", col_verified: "Check",
    verified: "Verified", failed: "Not verified", pending: "Pending", checking: "Checking…",
    withheld: "Withheld", withheld_note: "This record is not disclosed. Basis: ", until: " (until {0})",
    count: "{0} exchanges ({1} verified)", none: "No exchange has been recorded.",
    error: "Could not load: {0}",
    footer: "This page loads nothing from any other server. Every check runs in this browser.",
    outcomes: {
      provided: "Provided", no_data: "No data held", not_permitted: "Refused (not a combination the law allows)",
      condition_not_permitted: "Refused (condition not allowed)", pia_not_valid: "Refused (assessment not valid)",
      code_not_yours: "Refused (misused code)", unknown_code: "Refused (unknown code)", unknown_provider: "Refused (unknown provider)",
      provider_unavailable: "Failed (provider unreachable)", provider_timeout: "Failed (provider did not answer)",
      declined: "Declined", held: "Held by the provider", withheld: "Marked not to be disclosed",
      unlawful_request: "Found an unlawful request", unlawful_provision: "Found an unlawful provision",
      deletion_requested: "Deletion requested", deletion_confirmed: "Deletion confirmed", deleted: "Deleted",
      deleted_on_request: "Deleted on request", disclosed: "Disclosed again",
    },
    mydata_title: "My information",
    mydata_intro: "Of what agencies hold about you, the items provided to you yourself (resident record, pension benefits and the like), asked of each agency now. Each ask is recorded in your exchange history.",
    mydata_load: "Show my information", col_agency: "Agency", col_value: "Value", col_as_of: "As of",
    mydata_none: "No information to show.", mydata_count: "{0} items",
    mydata_status: { no_data: "No data held", failed: "The agency did not answer", declined: "Not shown by the agency's decision", not_verified: "Signature not verified" },
  },
};

const state = { lang: "ja", keys: null, rows: [], pages: [], next: null, busy: false, mydata: null, mydataError: null };

/* ---------- bytes ---------- */

const utf8 = new TextEncoder();
const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/* ---------- RFC 9162 ---------- */

const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

/* RFC 9162 §2.1.3.2: true when the proof leads from the leaf hash at index to root. */
async function verifyInclusion(hash, index, size, proof, root) {
  if (!(index < size)) return false;
  let fn = index, sn = size - 1, r = hash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/* ---------- C2SP signed notes ---------- */

/* A vkey "<name>+<hex key ID>+<base64(type ‖ key)>", its key ID checked. */
async function parseVkey(text) {
  const [name, id, b64] = [text.slice(0, text.indexOf("+")), text.split("+")[1], text.split("+").slice(2).join("+")];
  const raw = fromB64(b64);
  const want = (await sha256(concat(utf8.encode(name + "\n"), raw))).slice(0, 4);
  if (raw.length !== 33 || id !== hex(want)) throw new Error("bad vkey " + text);
  const key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return { name, id: want, type: raw[0], key, text };
}

const ed25519 = (key, sig, msg) => crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);

/* The checkpoint opened: {ok, size, root, why}. ok only when the log's
 * signature and every witness's cosignature verify. */
async function openCheckpoint(note, keys) {
  const cut = note.indexOf("\n\n");
  if (cut < 0) return { ok: false, why: "no signature" };
  const body = note.slice(0, cut + 1), lines = body.split("\n");
  const sigs = note.slice(cut + 2).split("\n").filter((l) => l.length);
  const origin = lines[0], size = Number(lines[1]), root = fromB64(lines[2]);
  const bodyBytes = utf8.encode(body);
  const signed = (name) => sigs.filter((l) => l.startsWith("\u2014 " + name + " ")).map((l) => fromB64(l.split(" ")[2]));
  const log = keys.log;
  if (log.type !== 1 || log.name !== origin) return { ok: false, why: "the log key does not name this log" };
  let logOk = false;
  for (const raw of signed(log.name))
    if (raw.length === 68 && equal(raw.slice(0, 4), log.id) && await ed25519(log.key, raw.slice(4), bodyBytes)) logOk = true;
  if (!logOk) return { ok: false, why: "the log's signature does not verify" };
  for (const w of keys.witnesses) {
    let wOk = false;
    for (const raw of signed(w.name)) {
      if (raw.length !== 76 || w.type !== 4 || !equal(raw.slice(0, 4), w.id)) continue;
      let t = 0n;
      for (const b of raw.slice(4, 12)) t = (t << 8n) | BigInt(b);
      const msg = concat(utf8.encode("cosignature/v1\ntime " + t.toString() + "\n"), bodyBytes);
      if (await ed25519(w.key, raw.slice(12), msg)) wOk = true;
    }
    if (!wOk) return { ok: false, why: "no valid cosignature of " + w.name };
  }
  return { ok: true, size, root, origin };
}

/* ---------- an entry ---------- */

/* {status: verified|failed|pending, leaf (the parsed record, or null)}. */
async function verifyEntry(e, head) {
  if (!e.inclusion_proof) return { status: "pending", leaf: null };
  if (!head.ok) return { status: "failed", leaf: null, why: head.why };
  let hash, leaf = null;
  if (e.withheld) {
    hash = fromB64(e.leaf_hash);
  } else {
    const raw = fromB64(e.leaf);
    hash = await leafHash(raw);
    try { leaf = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw)); } catch (_) { return { status: "failed", leaf: null }; }
    for (const k of ["exchange_id", "requester", "provider", "business", "item", "outcome"])
      if (leaf[k] !== e[k]) return { status: "failed", leaf, why: k + " is not the leaf's" };
  }
  const ok = await verifyInclusion(hash, e.leaf_index, head.size, e.inclusion_proof.map(fromB64), head.root);
  return { status: ok ? "verified" : "failed", leaf };
}

/* ---------- the page ---------- */

const t = (key, ...args) => {
  let s = TEXT[state.lang][key] ?? key;
  args.forEach((a, i) => { s = s.replace("{" + i + "}", String(a)); });
  return s;
};
const $ = (sel) => document.querySelector(sel);
const el = (tag, cls, text) => {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
};

function when(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleString(state.lang === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo" });
}

function cell(name, id) {
  const td = el("td");
  td.append(el("span", null, name || id || ""));
  if (name && id) td.append(el("small", null, id));
  return td;
}

function renderRow(row) {
  const tr = el("tr");
  tr.dataset.leafIndex = row.entry.leaf_index;
  tr.dataset.verify = row.status;
  const e = row.entry, leaf = row.leaf, names = (leaf && (state.lang === "en" && e.names_en ? e.names_en : e.names)) || {};
  if (e.withheld) { /* its place in the log, and why nothing more is shown */
    tr.className = "withheld";
    const note = el("td", null, t("withheld_note") + e.withheld.basis + (e.withheld.until ? t("until", e.withheld.until) : ""));
    note.colSpan = 5;
    tr.append(el("td", null, "#" + e.leaf_index), note);
  } else if (leaf) {
    tr.append(el("td", null, when(leaf.requested_ms)), cell(names.requester, leaf.requester), cell(names.provider, leaf.provider),
      cell(names.business, leaf.business), cell(names.item, leaf.item),
      el("td", null, TEXT[state.lang].outcomes[leaf.outcome] || leaf.outcome));
  } else {
    tr.append(el("td", null, when(Date.parse(e.requested_at))), cell(null, e.requester), cell(null, e.provider),
      cell(null, e.business), cell(null, e.item), el("td", null, e.outcome || ""));
  }
  const label = e.withheld && row.status === "verified" ? t("withheld") + " / " + t("verified") : t(row.status);
  const v = el("td");
  v.append(el("span", "badge " + row.status, label));
  tr.append(v);
  return tr;
}

function render() {
  document.documentElement.lang = state.lang;
  document.title = t("title") + " — renkei";
  for (const n of document.querySelectorAll("[data-t]")) {
    const key = n.dataset.t;
    if (key === "about_text") n.innerHTML = TEXT[state.lang].about_text; /* the page's own text, no data */
    else if (key !== "loading") n.textContent = t(key);
  }
  const keys = $("#keys");
  keys.replaceChildren();
  if (state.keys) {
    keys.append(el("dt", null, t("key_log")), el("dd", null, state.keys.log.text));
    for (const w of state.keys.witnesses) keys.append(el("dt", null, t("key_witness")), el("dd", null, w.text));
  }
  const body = $("#list tbody");
  body.replaceChildren(...state.rows.map(renderRow));
  const status = $("#status");
  if (state.error) {
    status.className = "error";
    status.textContent = t("error", state.error);
  } else if (!state.busy) {
    status.className = "";
    const verified = state.rows.filter((r) => r.status === "verified").length;
    status.textContent = state.rows.length ? t("count", state.rows.length, verified) : t("none");
  } else {
    status.textContent = t("loading");
  }
  $("#more").hidden = !state.next || state.busy;
  $("#csv").disabled = $("#json").disabled = state.busy || !!state.error;
  const summary = document.body.dataset;
  summary.done = state.busy ? "0" : "1";
  summary.entries = String(state.rows.length);
  summary.verified = String(state.rows.filter((r) => r.status === "verified").length);
  renderMydata();
}

async function loadKeys() {
  const r = await fetch("/v1/me/keys", { cache: "no-store" });
  if (!r.ok) throw new Error("HTTP " + r.status);
  const k = await r.json();
  return { log: await parseVkey(k.log.vkey), witnesses: await Promise.all(k.witnesses.map((w) => parseVkey(w.vkey))) };
}

async function loadPage() {
  state.busy = true;
  render();
  try {
    if (!state.keys) state.keys = await loadKeys();
    const r = await fetch("/v1/me/exchanges?limit=50" + (state.next ? "&cursor=" + state.next : ""), { cache: "no-store" });
    const answer = await r.json();
    if (!r.ok) throw new Error((answer.error && answer.error.message) || "HTTP " + r.status);
    state.pages.push(answer);
    state.next = answer.next_cursor || null;
    const head = answer.tree_head ? await openCheckpoint(answer.tree_head.checkpoint, state.keys) : { ok: false, why: "no checkpoint" };
    if (head.ok && (head.size !== answer.tree_head.tree_size || hex(head.root) !== hex(fromB64(answer.tree_head.root_hash))))
      Object.assign(head, { ok: false, why: "tree_head is not its checkpoint" });
    for (const entry of answer.exchanges) {
      let result;
      try { result = await verifyEntry(entry, head); } catch (err) { result = { status: "failed", leaf: null, why: String(err) }; }
      state.rows.push({ entry, ...result });
    }
  } catch (err) {
    state.error = String(err.message || err);
  }
  state.busy = false;
  render();
}

/* ---------- わたしの情報 ---------- */

/* A value as plain text: an object's fields "key: value", one a line. */
function valueText(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "object") return String(v);
  return Object.entries(v).map(([k, x]) => k + ": " + (typeof x === "object" ? JSON.stringify(x) : String(x))).join("\n");
}

function renderMydata() {
  const body = $("#mydata-list tbody"), status = $("#mydata-status");
  const rows = state.mydata || [];
  body.replaceChildren(...rows.map((i) => {
    const tr = el("tr");
    const names = i.names || {};
    tr.append(cell(state.lang === "ja" ? names.item : null, i.item), cell(state.lang === "ja" ? names.provider : null, i.provider));
    const v = el("td", "value");
    if (i.status === "provided") v.textContent = valueText(i.value);
    else v.textContent = TEXT[state.lang].mydata_status[i.status] || i.status;
    tr.append(v, el("td", null, i.as_of || ""));
    return tr;
  }));
  $("#mydata-list").hidden = !rows.length;
  if (state.mydataError) { status.className = "error"; status.textContent = t("error", state.mydataError); }
  else if (state.mydata) { status.className = ""; status.textContent = rows.length ? t("mydata_count", rows.length) : t("mydata_none"); }
  else status.textContent = "";
}

async function loadMydata() {
  $("#mydata-load").disabled = true;
  state.mydataError = null;
  try {
    const r = await fetch("/v1/me/data", { cache: "no-store" });
    const answer = await r.json();
    if (!r.ok) throw new Error((answer.error && answer.error.message) || "HTTP " + r.status);
    state.mydata = answer.items;
  } catch (err) {
    state.mydataError = String(err.message || err);
  }
  $("#mydata-load").disabled = false;
  renderMydata();
  document.body.dataset.mydata = String((state.mydata || []).length);
}

/* ---------- downloads ---------- */

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const CSV_COLUMNS = ["leaf_index", "requested_at", "exchange_id", "requester", "requester_name", "provider", "provider_name",
  "business", "business_name", "item", "item_name", "outcome", "reason", "withheld_basis", "verification"];

function csvRows() {
  const q = (v) => {
    const s = v === undefined || v === null ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of state.rows) {
    const l = r.leaf || {}, n = (r.leaf && r.entry.names) || {};
    lines.push([r.entry.leaf_index, l.requested_ms ? new Date(l.requested_ms).toISOString() : "", l.exchange_id, l.requester,
      n.requester, l.provider, n.provider, l.business, n.business, l.item, n.item, l.outcome, l.reason,
      r.entry.withheld ? r.entry.withheld.basis : "", r.status].map(q).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

/* ---------- start ---------- */

document.addEventListener("DOMContentLoaded", () => {
  $("#lang").addEventListener("click", () => { state.lang = state.lang === "ja" ? "en" : "ja"; render(); });
  $("#more").addEventListener("click", () => { if (!state.busy) loadPage(); });
  $("#mydata-load").addEventListener("click", loadMydata);
  $("#csv").addEventListener("click", () => download("yaritori-rireki.csv", "text/csv", "\ufeff" + csvRows()));
  $("#json").addEventListener("click", () => download("yaritori-rireki.json", "application/json",
    JSON.stringify({ pages: state.pages, verification: state.rows.map((r) => ({ leaf_index: r.entry.leaf_index, status: r.status })) }, null, 2)));
  loadPage();
});
