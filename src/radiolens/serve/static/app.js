// radiolens worklist UI: plain JavaScript, no build step, no external resources.
//
// Sign-in: the login form (POST /api/session) sets an HttpOnly session cookie; every
// state-changing request then carries the session's CSRF token in X-CSRF-Token (kept in
// memory only; GET /api/session gives it again after a reload). A service token (#token=
// in the address, or the "service token" form) still works: it is kept in sessionStorage
// and sent as a Bearer header. With the cookie the worklist is live (EventSource on
// /api/events); with the token, which EventSource cannot send, it is polled every 5 s.
//
// The image viewer (Cornerstone3D) is the prebuilt bundle under /static/viewer/ (sources
// and `make ui` in src/radiolens/serve/ui/), loaded with import().
//
// A study's panel is filled only from the answer to the latest selection (`state.seq`):
// a slow answer for a study the user has left is dropped. A review names the result shown
// in the panel (`state.shown.resultId`), and Sign is enabled only once the study's image
// has been drawn and every finding has a call the reviewer made (an AI suggestion counts
// only once it is confirmed).
//
// Boxes: with the Box tool (B) on, a drag on the image draws a box around the finding
// chosen in the review form; the viewer turns the pointer's page position into image
// pixels of the shown instance (and back, to draw the boxes), and the boxes are signed
// with the read as {finding, sop_instance_uid, x, y, w, h}.
//
// A study the model could not score (needs-check, failed: no result) is closed with a
// signed read without result ("not diagnostic / repeat"), once its image was displayed or
// the reviewer confirmed looking at it where it cannot be displayed.
"use strict";

const POLL_MS = 5000; // without the event stream
const LIVE_POLL_MS = 30000; // with it: only to keep the waiting times current
const PAGE_SIZE = 50;
const DICOMWEB = "/dicomweb";
const SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.";
const PRESET_KEYS = ["default", "full", "contrast", "bright", "soft"];
const CALLS = ["present", "absent", "uncertain"];
const VIEWS = ["unread", "flagged", "needs-check", "failed", "mine", "reviewed", "all"];
const EMPTY_TEXT = {
  unread: "No unread studies.", flagged: "No flagged studies.",
  "needs-check": "No study needs an image check.", failed: "No failed studies.",
  mine: "You have not signed any study yet.", reviewed: "No reviewed studies.",
  all: "No studies on the worklist yet.",
};
const STATUS_TEXT = { "needs-check": "check image", reviewed: "reviewed" };
const UNSCORABLE = ["needs-check", "failed"];
const CLOSE_TEXT = "Image not diagnostic; repeat the radiograph.";
const MIN_DRAG_PX = 4; // a shorter drag (screen pixels) is a click, not a box

const state = {
  token: "", // the service token (Bearer), or "" when signed in with the session cookie
  me: null, // {name, role, via}
  csrf: null, // the session's CSRF token
  mode: "worklist", // worklist | annotate | agreement
  view: "unread",
  query: "",
  offset: 0,
  total: null,
  masked: false,
  studies: [], // the page shown
  selected: null, // the UID selected in the worklist
  shown: null, // what the panel shows: {uid, resultId, scoredAt, scored, instancesKey, ...}
  seq: 0, // bumped by every selection; answers for an older one are dropped
  controller: null, // aborts the previous selection's requests
  imageShown: false, // the shown study's image has been rendered
  imageFailed: false, // the shown study's image cannot be displayed (error, none, no viewer)
  viewer: null, // Promise of the viewer (created on first use)
  viewerNow: null, // the viewer, once created
  viewerGen: -1, // the viewer load that belongs to the shown study
  heatmaps: {}, // finding -> URL, of the shown result
  lungsOn: false, // the Lungs layer is switched on
  lungs: null, // the shown study's lung mask: {url, sop}, or null when it has none
  heatCache: new Map(), // URL -> ImageBitmap, for the shown study
  review: null, // the form: {findings: [name], calls: {name: call}, confirmed: Set, amend,
  //               boxes: [{finding, sop_instance_uid, x, y, w, h}]}
  boxTool: false, // the Box tool is on
  drag: null, // a box being drawn: {pointerId, start: {x, y, sop, columns, rows}, client, box}
  closeEdited: false, // the close form's text was edited
  focusIndex: 0, // the finding the annotate keys act on
  signing: false,
  skipped: new Set(), // annotate mode: studies skipped with N
  alerted: new Set(), // urgent UIDs already announced
  events: null, // the EventSource
  live: false,
  refreshSeq: 0,
  timer: null,
  searchTimer: null,
};
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

// -- the address: #token=... (read once, then dropped) and #study=UID (kept) ----------

function hashParams() {
  return new URLSearchParams(window.location.hash.replace(/^#/, ""));
}

function readToken() {
  const params = hashParams();
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem("radiolens-token", token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + window.location.search +
      (rest ? "#" + rest : ""));
  }
  return sessionStorage.getItem("radiolens-token") || "";
}

function setStudyHash(uid) {
  const want = uid ? "#study=" + encodeURIComponent(uid) : "";
  if (window.location.hash !== want) {
    history.replaceState(null, "", window.location.pathname + window.location.search + want);
  }
}

// -- API ---------------------------------------------------------------------------

/** The Authorization header value: the service token, or "" (the session cookie). */
function authorization() {
  return state.token ? "Bearer " + state.token : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = authorization();
  const method = (options.method || "GET").toUpperCase();
  if (!["GET", "HEAD"].includes(method) && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options,
    { headers }));
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    let text = typeof detail === "string" ? detail : JSON.stringify(detail);
    if (response.status === 401 && !options.quiet401) {
      text = state.token ? "The service token was refused: enter the token printed by radiolens serve."
        : "You are signed out (the session expired): log in again.";
      if (state.me) signedOut(text);
    }
    const err = new Error(text);
    err.status = response.status;
    throw err;
  }
  return response;
}

async function sendJson(path, body, method = "POST") {
  return api(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** A probability as people should read it: never "100 %" nor "0 %". */
function percent(p) {
  if (p === undefined || p === null || Number.isNaN(p)) return "";
  const v = p * 100;
  if (v > 99) return ">99 %";
  if (v < 1) return "<1 %";
  return `${Math.round(v)} %`;
}

/** "12 min", "3 h 5 min", "2 d 4 h" since an ISO time. */
function waited(iso, now = Date.now()) {
  if (!iso) return "";
  const minutes = Math.max(0, Math.floor((now - new Date(iso).getTime()) / 60000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** DICOM Patient's Age ("045Y", "006M", "012W", "003D") as people write it. */
function ageText(age) {
  const m = /^(\d{1,3})([DWMY])$/i.exec((age || "").trim());
  if (!m) return age || "";
  const n = Number(m[1]);
  return `${n} ${{ D: "d", W: "wk", M: "mo", Y: "y" }[m[2].toUpperCase()]}`;
}

function sexText(sex) {
  return { M: "male", F: "female", O: "other" }[(sex || "").toUpperCase()] || "";
}

function priorityBand(p) {
  if (p >= 80) return { cls: "prio-high", text: "high" };
  if (p >= 50) return { cls: "prio-mid", text: "medium" };
  return { cls: "prio-low", text: "low" };
}

function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

// -- signing in --------------------------------------------------------------------

function showSignedIn() {
  const me = state.me;
  $("whoami").hidden = false;
  $("whoami-name").textContent = me.name;
  $("whoami-role").textContent = me.role + (me.via === "service" ? ", service token" : "");
  $("signin").hidden = true;
  $("modes").hidden = false;
  $("workspace").hidden = false;
}

function signedOut(text = "") {
  state.me = null;
  state.csrf = null;
  state.token = "";
  sessionStorage.removeItem("radiolens-token");
  stopLive();
  if (state.timer !== null) { clearInterval(state.timer); state.timer = null; }
  $("whoami").hidden = true;
  $("signin").hidden = false;
  $("modes").hidden = true;
  $("workspace").hidden = true;
  $("detail").hidden = true;
  $("worklist").tBodies[0].replaceChildren();
  state.selected = null;
  state.shown = null;
  say(text || "Log in to see the worklist.", Boolean(text));
  $("login-name").focus();
}

async function whoAmI() {
  try {
    const me = await (await api("/api/session", { quiet401: true })).json();
    return me;
  } catch (e) {
    if (e.status === 401) return null;
    if (e.status === 404 && state.token) {
      return { name: "admin", role: "admin", via: "service", csrf_token: null }; // older server
    }
    throw e;
  }
}

async function logIn(name, password) {
  state.token = "";
  sessionStorage.removeItem("radiolens-token");
  const response = await fetch("/api/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, password }),
  });
  if (response.status === 401) throw new Error("Wrong user name or password.");
  if (!response.ok) throw new Error(`Login failed (HTTP ${response.status}).`);
  return response.json();
}

async function logOut() {
  try {
    if (!state.token) await api("/api/session", { method: "DELETE" });
  } catch (e) { /* signed out anyway */ }
  signedOut();
  say("Logged out.");
}

// -- the worklist (updated in place, so focus and selection survive a refresh) -------

function flagBadges(s) {
  const span = document.createElement("span");
  for (const flag of s.flags || []) {
    const badge = document.createElement("span");
    badge.className = "badge flag";
    badge.textContent = flag;
    badge.title = `AI flag: ${flag}`;
    span.appendChild(badge);
  }
  for (const [cls, text] of lungNotes(s)) {
    const note = document.createElement("span");
    note.className = "row-note " + cls;
    note.textContent = text;
    note.title = text;
    span.appendChild(note);
  }
  return span;
}

/** What a scored study says about its lungs: [[class, text]] ("check image: ...",
 * "AI attention outside the lungs: check ..."). */
function lungNotes(s) {
  const notes = [];
  if (s.status !== "needs-check" && s.image_check) notes.push(["check", `check image: ${s.image_check}`]);
  if (s.attention_warning) notes.push(["attention", s.attention_warning]);
  return notes;
}

function topProbabilities(findings, n = 3) {
  return Object.entries(findings || {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, p]) => `${name} ${percent(p)}`)
    .join(", ");
}

/** A DICOM person name (Family^Given^Middle^Prefix^Suffix) as people write it. */
function personName(pn) {
  if (!pn) return "";
  const [family = "", given = "", middle = "", prefix = "", suffix = ""] = pn.split("=")[0].split("^");
  const first = [prefix, given, middle].filter(Boolean).join(" ");
  return [family, first].filter(Boolean).join(", ") + (suffix ? ` ${suffix}` : "");
}

function demographics(s) {
  return [ageText(s.patient_age), sexText(s.patient_sex)].filter(Boolean).join(", ");
}

/** Who the study is of, or "Patient hidden" while masking is on. */
function patientText(s) {
  if (state.masked) return "Patient hidden";
  return [s.patient_id, personName(s.patient_name)].filter(Boolean).join(" ");
}

function patientLine(s) {
  const demo = demographics(s);
  return patientText(s) + (demo ? ` · ${demo}` : "");
}

function newRow(uid) {
  const tr = document.createElement("tr");
  tr.dataset.uid = uid;
  tr.tabIndex = 0;
  for (const name of ["priority", "status", "patient", "waiting", "flags", "top"]) {
    const td = document.createElement("td");
    td.className = "col-" + name;
    tr.appendChild(td);
  }
  return tr;
}

function setCell(td, text, title = "") {
  if (td.textContent !== text) td.textContent = text;
  if (td.title !== title) td.title = title;
}

function fillRow(tr, s) {
  const [priority, status, patient, waiting, flags, top] = tr.cells;
  const band = priorityBand(s.priority);
  const by = s.priority_set_by === "person" ? " (set by a person)" : "";
  const pkey = `${s.priority}|${band.cls}`;
  if (priority.dataset.key !== pkey) {
    priority.dataset.key = pkey;
    const badge = document.createElement("span");
    badge.className = "prio " + band.cls;
    badge.textContent = `${s.priority} ${band.text}`;
    priority.replaceChildren(badge);
  }
  priority.title = `priority ${s.priority}, ${band.text}${by}`;
  tr.dataset.band = band.cls;
  const statusText = STATUS_TEXT[s.status] || s.status;
  const statusTitle = s.status === "reviewed" && s.reviewed_by
    ? `signed by ${s.reviewed_by} ${when(s.reviewed_at)}`
    : s.status === "needs-check" ? `the image needs a check: ${errorText(s)} (not a finding)`
      : s.status === "failed" ? `scoring failed: ${errorText(s)}` : "";
  setCell(status, statusText, statusTitle);
  status.className = "col-status status-" + s.status;
  const who = patientLine(s);
  setCell(patient, who, who);
  const isRead = s.status === "reviewed";
  setCell(waiting, isRead ? "read" : waited(s.received_at), `received ${when(s.received_at)}`);
  const key = [...(s.flags || []), ...lungNotes(s).map((n) => n[1])].join("\u0001");
  if (flags.dataset.key !== key) {
    flags.dataset.key = key;
    flags.replaceChildren(flagBadges(s));
  }
  const tops = topProbabilities(s.findings);
  setCell(top, tops, tops);
  tr.setAttribute("aria-selected", String(s.study_instance_uid === state.selected));
}

function rowFor(uid) {
  for (const tr of $("worklist").tBodies[0].rows) if (tr.dataset.uid === uid) return tr;
  return null;
}

function renderWorklist(studies) {
  state.studies = studies;
  const tbody = $("worklist").tBodies[0];
  const active = document.activeElement;
  const focusedUid = active && active.closest && active.closest("#worklist tbody tr")
    ? active.closest("tr").dataset.uid : null;
  const old = new Map([...tbody.rows].map((tr) => [tr.dataset.uid, tr]));
  const rows = studies.map((s) => {
    const tr = old.get(s.study_instance_uid) || newRow(s.study_instance_uid);
    old.delete(s.study_instance_uid);
    fillRow(tr, s);
    return tr;
  });
  for (const gone of old.values()) gone.remove();
  rows.forEach((tr, i) => {
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
  });
  if (focusedUid) {
    const tr = rowFor(focusedUid);
    if (tr && document.activeElement !== tr) tr.focus({ preventScroll: true });
    else if (!tr && tbody.rows.length) tbody.rows[0].focus({ preventScroll: true });
  }
  $("empty").hidden = studies.length > 0;
  $("empty").textContent = state.query ? `No study matches “${state.query}”.`
    : EMPTY_TEXT[state.view] || EMPTY_TEXT.all;
  renderPager(studies.length);
  const open = studies.find((s) => s.study_instance_uid === state.selected);
  if (open && state.shown && state.shown.uid === open.study_instance_uid
      && open.scored_at !== state.shown.scoredAt && !formTouched()) {
    selectStudy(open.study_instance_uid, { quiet: true }); // a new result for the open study
  }
}

function renderPager(shown) {
  const total = state.total;
  let text;
  if (!shown) text = total ? `none of ${formatCount(total)} on this page` : "";
  else if (total === null) text = `${formatCount(shown)} shown`;
  else {
    const first = state.offset + 1;
    const last = state.offset + shown;
    text = `${formatCount(first)}–${formatCount(last)} of ${formatCount(total)}`;
  }
  $("page-info").textContent = text;
  $("page-prev").disabled = state.offset <= 0;
  $("page-next").disabled = total === null ? shown < PAGE_SIZE : state.offset + shown >= total;
}

function listUrl() {
  const params = new URLSearchParams({ view: state.view, limit: String(PAGE_SIZE),
    offset: String(state.offset) });
  if (state.query) params.set("q", state.query);
  return "/api/studies?" + params.toString();
}

async function refresh() {
  if (!state.me) return;
  const seq = ++state.refreshSeq;
  try {
    const response = await api(listUrl());
    const studies = await response.json();
    if (seq !== state.refreshSeq) return; // a later refresh answered first
    const total = response.headers.get("X-Total-Count");
    state.total = total === null ? null : Number(total);
    if (!studies.length && state.offset > 0 && state.total !== null && state.offset >= state.total) {
      state.offset = Math.max(0, Math.floor((state.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      refresh();
      return;
    }
    renderWorklist(studies);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (seq === state.refreshSeq) say(e.message, true);
  }
}

function setView(view) {
  if (!VIEWS.includes(view)) return;
  state.view = view;
  state.offset = 0;
  sessionStorage.setItem("radiolens-view", view);
  for (const b of $("views").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b.dataset.view === view));
  }
  refresh();
}

function setMasked(on) {
  state.masked = on;
  $("mask").checked = on;
  sessionStorage.setItem("radiolens-mask", on ? "on" : "off");
  document.body.classList.toggle("masked", on);
  for (const tr of $("worklist").tBodies[0].rows) {
    const s = state.studies.find((x) => x.study_instance_uid === tr.dataset.uid);
    if (s) fillRow(tr, s);
  }
  if (state.shown && state.shown.study) renderHeader(state.shown.study);
  for (const el of document.querySelectorAll("#alerts .alert")) {
    el.querySelector(".alert-text").textContent = alertText(el._study);
  }
}

// -- live updates: the event stream (session cookie), else polling -----------------

function schedule(ms) {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = setInterval(refresh, ms);
}

function stopLive() {
  if (state.events) state.events.close();
  state.events = null;
  state.live = false;
  $("live").textContent = "";
}

function startLive() {
  stopLive();
  if (state.token || typeof EventSource === "undefined") {
    $("live").textContent = state.token ? "· refreshed every 5 s (service token)" : "";
    schedule(POLL_MS);
    return;
  }
  schedule(POLL_MS); // until the stream is open
  const es = new EventSource("/api/events");
  state.events = es;
  es.addEventListener("open", () => {
    if (state.events !== es) return;
    state.live = true;
    $("live").textContent = "· live";
    schedule(LIVE_POLL_MS);
    refresh(); // what changed while the stream was (re)connecting
  });
  es.addEventListener("studies", (ev) => {
    if (state.events !== es) return;
    let data = {};
    try { data = JSON.parse(ev.data); } catch (e) { /* a malformed event: just refresh */ }
    refresh();
    for (const uid of data.urgent || []) announceUrgent(uid);
    // the open study changed (another reviewer signed it, a new result): reload the
    // panel unless the reviewer is in the middle of a read
    const open = state.shown && state.shown.uid;
    if (open && (data.changed || []).includes(open) && !formTouched() && !state.signing) {
      selectStudy(open, { quiet: true });
    }
  });
  es.addEventListener("error", () => {
    if (state.events !== es) return;
    state.live = false;
    if (es.readyState === EventSource.CLOSED) {
      $("live").textContent = "· refreshed every 5 s (no live updates)";
      state.events = null;
    } else {
      $("live").textContent = "· reconnecting";
    }
    schedule(POLL_MS);
  });
}

function alertText(s) {
  const who = patientLine(s) || "a study";
  return `New urgent study: ${who} — priority ${s.priority}` +
    (s.flags && s.flags.length ? ` (AI flags: ${s.flags.join(", ")})` : "");
}

async function announceUrgent(uid) {
  if (state.alerted.has(uid)) return;
  state.alerted.add(uid);
  let study = { study_instance_uid: uid, priority: "", flags: [] };
  try {
    study = await (await api(`/api/studies/${encodeURIComponent(uid)}`)).json();
  } catch (e) { /* announce it anyway */ }
  const box = document.createElement("div");
  box.className = "alert";
  box.setAttribute("role", "alert");
  box.dataset.uid = uid;
  box._study = study;
  const text = document.createElement("span");
  text.className = "alert-text";
  text.textContent = alertText(study);
  const open = document.createElement("button");
  open.type = "button";
  open.textContent = "Open";
  open.addEventListener("click", () => { box.remove(); selectStudy(uid); });
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "dismiss";
  dismiss.textContent = "Dismiss";
  dismiss.setAttribute("aria-label", "Dismiss this alert");
  dismiss.addEventListener("click", () => box.remove());
  box.append(text, open, dismiss);
  $("alerts").appendChild(box);
}

// -- the study panel ---------------------------------------------------------------

function renderHeader(study) {
  $("detail-title").textContent = `${patientLine(study) || "Study"} (${STATUS_TEXT[study.status] || study.status})`;
  renderMeta(study);
}

/** Why a study was not scored, without the "check image:" prefix its status says already. */
function errorText(study) {
  return (study.error || "no reason given").replace(/^check image:\s*/i, "");
}

function renderMeta(study) {
  const dl = $("detail-meta");
  dl.replaceChildren();
  const rows = [
    ["Patient", patientText(study)],
    ["Age, sex", demographics(study)],
    ["Accession", state.masked ? (study.accession_number ? "hidden" : "") : study.accession_number || ""],
    ["Status", (STATUS_TEXT[study.status] || study.status) + (study.error ? ` — ${errorText(study)}` : "")],
    ["Image check", study.status !== "needs-check" && study.image_check ? `check image: ${study.image_check}` : ""],
    ["AI attention", study.attention_warning || ""],
    ["Heat in lungs", Object.entries(study.heat_in_lungs || {}).map(([f, v]) => `${f} ${percent(v)}`).join(", ")],
    ["Received", `${when(study.received_at)} (${waited(study.received_at)} ago)`],
    ["Priority", `${study.priority}` + (study.priority_set_by ? ` (set by ${study.priority_set_by})` : "")],
    ["Model", [study.model_name, study.model_version].filter(Boolean).join(" ")],
    ["Study UID", study.study_instance_uid],
  ];
  for (const [k, v] of rows) {
    if (!v) continue;
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }
  const failed = (study.deliveries || []).filter((d) => d.status === "failed");
  if (failed.length) {
    const dt = document.createElement("dt"); dt.textContent = "Failed sends";
    const dd = document.createElement("dd");
    dd.className = "status-failed";
    dd.textContent = failed.map((d) => `${d.kind} to ${d.destination}: ${d.last_error}`).join("; ");
    dl.append(dt, dd);
  }
}

function signedReviews(reviews) {
  return (reviews || []).filter((r) => r.action === "sign" || r.action === "amend");
}

function renderReviews(reviews) {
  const ol = $("reviews");
  ol.replaceChildren();
  const list = [...(reviews || [])].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  for (const r of list) {
    const li = document.createElement("li");
    const head = document.createElement("span");
    const version = r.version ? `version ${r.version}: ` : "";
    const extra = r.priority !== null && r.priority !== undefined ? ` → priority ${r.priority}` : "";
    head.textContent = `${version}${r.action} by ${r.reviewer} — ${when(r.created_at)}${extra}`;
    li.appendChild(head);
    if (r.calls && Object.keys(r.calls).length) {
      const calls = document.createElement("span");
      calls.className = "calls-summary";
      calls.textContent = Object.entries(r.calls).map(([f, c]) => `${f}: ${c}`).join(" · ");
      li.appendChild(calls);
    }
    if (r.boxes && r.boxes.length) {
      const boxes = document.createElement("span");
      boxes.className = "calls-summary boxes-summary";
      boxes.textContent = `${r.boxes.length === 1 ? "Box" : "Boxes"}: ` +
        r.boxes.map((b) => `${b.finding} ${boxText(b)}`).join(" · ");
      li.appendChild(boxes);
    }
    ol.appendChild(li);
  }
  if (!list.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "No reviews yet.";
    ol.appendChild(li);
  }
}

function formTouched() {
  return Boolean((state.review && (state.review.confirmed.size > 0 || state.review.edited
    || state.review.boxes.length > 0))
    || (state.closeEdited && !$("close-form").hidden) || state.drag);
}

function showLoading(uid) {
  // The panel never shows one study while another is selected.
  state.shown = null;
  state.imageShown = false;
  state.imageFailed = false;
  state.heatmaps = {};
  state.heatCache = new Map();
  state.review = null;
  state.drag = null;
  state.closeEdited = false;
  $("detail").hidden = false;
  $("detail").setAttribute("aria-busy", "true");
  $("detail").dataset.uid = uid;
  $("detail-title").textContent = "Loading study…";
  // typed into while loading, the priority would be replaced by the study's own
  $("priority").disabled = true;
  $("set-priority").disabled = true;
  $("detail-meta").replaceChildren();
  $("draft-text").textContent = "";
  $("draft-disclaimer").textContent = "";
  $("signed-line").hidden = true;
  $("amend").hidden = true;
  $("reviews").replaceChildren();
  $("overlay-controls").hidden = true;
  state.lungs = null;
  $("tool-lungs").hidden = true;
  $("viewport-info").textContent = "";
  $("viewport-note").hidden = true;
  $("review-form").hidden = true;
  $("close-form").hidden = true;
  $("calls").replaceChildren();
  $("box-list").replaceChildren();
  updateSign();
  if (state.viewer) state.viewer.then((v) => v.clear()).catch(() => {});
}

function markSelected(uid) {
  for (const tr of $("worklist").tBodies[0].rows) {
    tr.setAttribute("aria-selected", String(tr.dataset.uid === uid));
  }
}

async function selectStudy(uid, { quiet = false } = {}) {
  const seq = ++state.seq;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  state.selected = uid;
  markSelected(uid);
  setStudyHash(uid);
  if (state.mode === "agreement") setMode("worklist", { keepStudy: true });
  if (!quiet || !state.shown || state.shown.uid !== uid) showLoading(uid);
  const signal = controller.signal;
  try {
    const study = await (await api(`/api/studies/${encodeURIComponent(uid)}`, { signal })).json();
    if (seq !== state.seq) return;
    let draft = null;
    // a study closed without AI result has no draft link, but its signed report is there
    const draftUrl = (study.links && study.links.draft) || (signedReviews(study.reviews).length
      ? `/api/studies/${encodeURIComponent(study.study_instance_uid)}/draft` : null);
    if (draftUrl) draft = await (await api(draftUrl, { signal })).json();
    if (seq !== state.seq) return;
    renderStudy(study, draft);
    await showImages(study, seq);
  } catch (e) {
    if (seq !== state.seq || e.name === "AbortError") return;
    $("detail-title").textContent = "Study could not be loaded";
    $("detail").removeAttribute("aria-busy");
    say(e.message, true);
  }
}

function renderStudy(study, draft) {
  const latest = (study.results || [])[0] || null;
  const images = (study.instances || []).filter((i) => !(i.sop_class_uid || "").startsWith(SR_CLASS));
  const instancesKey = study.study_instance_uid + "|" +
    images.map((i) => i.sop_instance_uid).join(",");
  const sameImages = state.shown && state.shown.instancesKey === instancesKey;
  const signed = signedReviews(study.reviews);
  const lastSign = signed.length ? signed.reduce((a, b) => ((b.version || 0) >= (a.version || 0) ? b : a)) : null;
  const final = Boolean((draft && draft.final) || study.status === "reviewed" || lastSign);
  const keepForm = Boolean(state.review && state.shown && !state.review.amend && !final
    && state.shown.uid === study.study_instance_uid
    && state.shown.resultId === (latest ? latest.id : null));
  // an amendment being written survives a refresh of the same study, unless someone
  // signed a newer version meanwhile (then it starts again from that one)
  const keepAmend = Boolean(state.review && state.review.amend && state.shown && final
    && state.shown.uid === study.study_instance_uid
    && state.shown.resultId === (latest ? latest.id : null)
    && (state.shown.lastSign ? state.shown.lastSign.version : null)
      === (lastSign ? lastSign.version : null));
  const keepClose = Boolean(state.shown && state.shown.uid === study.study_instance_uid
    && !$("close-form").hidden);
  const prevUid = state.shown ? state.shown.uid : null;
  state.shown = {
    uid: study.study_instance_uid,
    resultId: latest ? latest.id : null,
    scoredAt: study.scored_at,
    scored: Boolean(latest && study.links && study.links.draft),
    instancesKey,
    images,
    study,
    latest,
    draft,
    final,
    lastSign,
  };
  if (!sameImages) { state.imageShown = false; state.imageFailed = false; }
  $("detail").hidden = false;
  $("detail").removeAttribute("aria-busy");
  $("detail").dataset.uid = study.study_instance_uid;
  $("detail").dataset.final = String(final);
  renderHeader(study);
  renderReviews(study.reviews);
  // a refresh of the study shown must not overwrite a priority being typed
  const sameStudy = prevUid === study.study_instance_uid;
  if (!(sameStudy && document.activeElement === $("priority"))) $("priority").value = study.priority;
  $("priority").disabled = false;
  $("set-priority").disabled = false;
  const banner = $("draft-banner");
  if (final) {
    const by = (draft && draft.signed_by) || (lastSign && lastSign.reviewer) || study.reviewed_by || "";
    const at = (draft && draft.signed_at) || (lastSign && lastSign.created_at) || study.reviewed_at;
    const version = (draft && draft.version) || (lastSign && lastSign.version) || "";
    banner.textContent = `FINAL — signed by ${by}` + (at ? ` at ${when(at)}` : "") +
      (version ? ` (version ${version})` : "");
    banner.className = "banner final";
    $("signed-line").textContent = `Signed by ${by}` + (at ? ` at ${when(at)}` : "") +
      (version ? ` (version ${version})` : "");
    $("signed-line").hidden = false;
    $("report-heading").textContent = "Final report";
  } else if (!latest && UNSCORABLE.includes(study.status)) {
    banner.textContent = "No AI result — the model could not read this image; not a finding";
    banner.className = "banner";
    $("signed-line").hidden = true;
    $("report-heading").textContent = "Why there is no AI draft";
  } else {
    banner.textContent = "AI draft — for radiologist review; not a diagnosis";
    banner.className = "banner";
    $("signed-line").hidden = true;
    $("report-heading").textContent = "Draft report";
  }
  if (draft) {
    $("draft-text").textContent = draft.text;
    $("draft-disclaimer").textContent = final ? "" : draft.disclaimer || "";
  } else if (final && lastSign) {
    $("draft-text").textContent = lastSign.text || "";
    $("draft-disclaimer").textContent = "";
  } else if (study.status === "needs-check") {
    $("draft-text").textContent = "Not scored: the image needs a check before the model can " +
      `read it (${errorText(study)}). Look at the image, then close the study below (or read ` +
      "it in the PACS viewer).";
    $("draft-disclaimer").textContent = "";
  } else if (study.status === "failed") {
    $("draft-text").textContent = `Scoring failed (${errorText(study)}). Read the study in the ` +
      "PACS viewer; an administrator can queue it again.";
    $("draft-disclaimer").textContent = "";
  } else {
    $("draft-text").textContent = "Not scored yet: the draft appears when the model has read the study.";
    $("draft-disclaimer").textContent = "";
  }
  renderOverlayControls(latest);
  renderLungControls(study);
  $("amend").hidden = !(final && latest);
  $("draft-text").hidden = false;
  $("report-heading").hidden = false;
  if (keepForm || keepAmend) { // same result: keep the reviewer's calls
    $("review-form").hidden = false;
    $("draft-text").hidden = true;
    $("report-heading").hidden = true;
  } else if (latest && !final) openReviewForm({ amend: false });
  else { state.review = null; $("review-form").hidden = true; }
  openCloseForm(keepClose);
  updateSign();
}

// -- the structured review ---------------------------------------------------------

/** Open the form: one call per finding of the shown result, the AI's suggestion (or, to
 * amend, the signed calls) pre-selected. */
function openReviewForm({ amend }) {
  const shown = state.shown;
  if (!shown || !shown.latest) return;
  const result = shown.latest;
  const findings = Object.keys(result.findings || {});
  const thresholds = result.thresholds || {};
  const previous = amend && shown.lastSign && shown.lastSign.calls ? shown.lastSign.calls : {};
  const calls = {};
  const confirmed = new Set();
  for (const f of findings) {
    if (previous[f]) { calls[f] = previous[f]; confirmed.add(f); } else {
      calls[f] = (result.flags || []).includes(f) ? "present" : "absent";
    }
  }
  const signedBoxes = amend && shown.lastSign && shown.lastSign.boxes ? shown.lastSign.boxes : [];
  state.review = { findings, calls, confirmed, amend, edited: false, ai: {},
    boxes: signedBoxes.filter((b) => findings.includes(b.finding)).map((b) => ({ ...b })) };
  for (const f of findings) state.review.ai[f] = (result.flags || []).includes(f) ? "present" : "absent";
  state.focusIndex = 0;
  const box = $("calls");
  box.replaceChildren();
  findings.forEach((f, i) => {
    const fs = document.createElement("fieldset");
    fs.className = "call";
    fs.dataset.finding = f;
    fs.dataset.index = String(i);
    const legend = document.createElement("legend");
    const name = document.createElement("span");
    name.className = "finding-name";
    name.textContent = f;
    const ai = document.createElement("span");
    ai.className = "ai-info";
    const flagged = (result.flags || []).includes(f);
    const t = thresholds[f];
    ai.textContent = ` — AI ${percent(result.findings[f])}` +
      (t !== undefined ? ` (threshold ${percent(t)})` : "") + (flagged ? ", flagged" : "");
    legend.append(name, ai);
    fs.appendChild(legend);
    CALLS.forEach((c, k) => {
      const label = document.createElement("label");
      label.className = "inline call-option";
      const input = document.createElement("input");
      input.type = "radio";
      input.name = `call-${i}`;
      input.value = c;
      input.checked = calls[f] === c;
      input.dataset.finding = f;
      input.setAttribute("aria-keyshortcuts", String(k + 1));
      label.append(input, ` ${c}`);
      fs.appendChild(label);
    });
    const tag = document.createElement("span");
    tag.className = "call-state";
    fs.appendChild(tag);
    box.appendChild(fs);
  });
  const pick = $("box-finding");
  pick.replaceChildren();
  for (const f of findings) {
    const opt = document.createElement("option");
    opt.value = f;
    opt.textContent = f + ((result.flags || []).includes(f) ? " (AI flag)" : "");
    pick.appendChild(opt);
  }
  pick.value = findings.find((f) => (result.flags || []).includes(f)) || findings[0] || "";
  $("boxes").hidden = findings.length === 0;
  renderBoxList();
  $("report-text").value = amend ? $("draft-text").textContent
    : (shown.draft ? shown.draft.text : "");
  $("report-text").scrollTop = 0;
  $("review-title").textContent = amend ? "Amend the signed read" : "Your read";
  $("sign").textContent = amend ? "Sign amendment" : "Sign";
  $("cancel-amend").hidden = !amend;
  $("review-form").hidden = false;
  $("draft-text").hidden = true; // the report is in the form's text box
  $("report-heading").hidden = true;
  renderCallStates();
  updateSign();
}

function renderCallStates() {
  const review = state.review;
  if (!review) return;
  for (const fs of $("calls").querySelectorAll("fieldset.call")) {
    const f = fs.dataset.finding;
    const mine = review.confirmed.has(f);
    fs.dataset.state = mine ? "confirmed" : "ai";
    const tag = fs.querySelector(".call-state");
    tag.textContent = mine ? (review.calls[f] === review.ai[f] ? "your call (agrees with the AI)" : "your call")
      : "AI suggestion — confirm or change";
    fs.classList.toggle("current", state.mode === "annotate" && Number(fs.dataset.index) === state.focusIndex);
  }
}

function setCall(finding, call) {
  const review = state.review;
  if (!review || !review.findings.includes(finding) || !CALLS.includes(call)) return;
  review.calls[finding] = call;
  review.confirmed.add(finding);
  const i = review.findings.indexOf(finding);
  const input = $("calls").querySelector(`input[name="call-${i}"][value="${call}"]`);
  if (input) input.checked = true;
  renderCallStates();
  updateSign();
}

function missingCalls() {
  const review = state.review;
  if (!review) return [];
  return review.findings.filter((f) => !review.confirmed.has(f));
}

function updateSign() {
  const shown = state.shown;
  const review = state.review;
  const formOpen = Boolean(review && !$("review-form").hidden);
  const ready = Boolean(shown && shown.uid === state.selected && shown.scored);
  const missing = missingCalls();
  const ok = formOpen && ready && state.imageShown && missing.length === 0 && !state.signing;
  $("sign").disabled = !ok;
  let note = "";
  if (formOpen && ready && !state.imageShown) note = "Sign is enabled once the image is displayed.";
  else if (formOpen && missing.length) {
    note = `Confirm or change ${missing.length === 1 ? "1 finding" : `${missing.length} findings`}: ` +
      missing.join(", ") + ".";
  } else if (ok) note = review.amend ? "Ready to sign the amendment." : "Ready to sign.";
  $("sign-note").textContent = note;
  updateBoxTool();
  updateClose();
}

async function sign() {
  const shown = state.shown;
  const review = state.review;
  if (!shown || !review || $("sign").disabled || state.signing) return;
  if (shown.uid !== state.selected || !state.imageShown) {
    say("The study is still loading: wait until its image is displayed.", true);
    return;
  }
  state.signing = true;
  updateSign();
  const uid = shown.uid;
  const body = {
    result_id: shown.resultId,
    calls: Object.assign({}, review.calls),
    text: $("report-text").value,
    boxes: review.boxes.map((b) => ({ finding: b.finding, sop_instance_uid: b.sop_instance_uid,
      x: b.x, y: b.y, w: b.w, h: b.h })),
    amend: Boolean(review.amend),
  };
  try {
    const out = await (await sendJson(`/api/studies/${encodeURIComponent(uid)}/review`, body)).json();
    const version = out && out.version ? ` (version ${out.version})` : "";
    const warnings = out && out.warnings && out.warnings.length
      ? ` Note: ${out.warnings.join("; ")}` : "";
    const who = patientText(shown.study) || "the study";
    const boxes = body.boxes.length ? `, ${body.boxes.length} box${body.boxes.length > 1 ? "es" : ""}` : "";
    say(`${review.amend ? "Amendment signed" : "Signed"}: ${who}${version}${boxes}.${warnings}`);
    state.review = null;
    state.signing = false;
    setBoxTool(false);
    await refresh();
    if (state.mode === "annotate") {
      await nextInQueue();
    } else if (state.selected === uid) {
      await selectStudy(uid, { quiet: true });
    }
  } catch (e) {
    state.signing = false;
    if (e.status === 409) {
      if (/amend/i.test(e.message)) {
        say(`${e.message} — the panel was reloaded; use “Amend the signed report”.`, true);
      } else {
        say(`${e.message} — a newer AI result arrived: the panel was reloaded; review it again.`, true);
      }
      if (state.selected === uid) await selectStudy(uid);
    } else {
      say(e.message, true);
    }
    updateSign();
  }
}

// -- boxes around findings --------------------------------------------------------

/** Image pixels as people read them: whole pixels. */
function boxText(b) {
  const r = (v) => Math.round(Number(v));
  return `x ${r(b.x)}, y ${r(b.y)}, w ${r(b.w)}, h ${r(b.h)}`;
}

function boxFormOpen() {
  return Boolean(state.review && !$("review-form").hidden && state.review.findings.length);
}

/** The Box tool can be used: a review form with findings, and the image on screen. */
function boxToolAvailable() {
  return Boolean(boxFormOpen() && state.imageShown && state.viewerNow && !state.signing);
}

function setBoxTool(on) {
  const want = Boolean(on) && boxToolAvailable();
  if (!want && state.drag) cancelDrag();
  if (want !== state.boxTool && state.viewerNow) state.viewerNow.setBoxMode(want);
  state.boxTool = want;
  $("tool-box").setAttribute("aria-pressed", String(want));
  $("box-help").textContent = want
    ? `Drag on the image to box ${$("box-finding").value}; press B (or Box) when done.`
    : "Press Box (B), then drag on the image.";
}

function updateBoxTool() {
  const can = boxToolAvailable();
  $("tool-box").disabled = !can;
  if (state.boxTool && !can) setBoxTool(false);
  syncBoxes();
}

/** The boxes on the image: the form's (and the one being drawn), else the signed read's. */
function syncBoxes() {
  const viewer = state.viewerNow;
  if (!viewer) return;
  const shown = state.shown;
  const list = boxFormOpen() ? state.review.boxes
    : (shown && shown.final && shown.lastSign && shown.lastSign.boxes) || [];
  const boxes = list.map((b, i) => ({ x: b.x, y: b.y, w: b.w, h: b.h,
    sop: b.sop_instance_uid || "", label: `${i + 1} ${b.finding}` }));
  if (state.drag && state.drag.box) {
    boxes.push({ ...state.drag.box, sop: state.drag.start.sop || "", draft: true,
      label: state.drag.finding });
  }
  viewer.setBoxes(boxes);
}

function imageLabel(sop) {
  const images = (state.shown && state.shown.images) || [];
  if (images.length < 2) return "";
  const i = images.findIndex((im) => im.sop_instance_uid === sop);
  return i >= 0 ? ` (image ${i + 1})` : "";
}

function renderBoxList() {
  const ol = $("box-list");
  ol.replaceChildren();
  const review = state.review;
  if (!review) return;
  review.boxes.forEach((b, i) => {
    const li = document.createElement("li");
    li.dataset.finding = b.finding;
    const text = document.createElement("span");
    text.className = "box-text";
    text.textContent = `${b.finding}: ${boxText(b)} px${imageLabel(b.sop_instance_uid)}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "box-remove";
    remove.dataset.index = String(i);
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove box ${i + 1} (${b.finding})`);
    li.append(text, remove);
    ol.appendChild(li);
  });
}

function removeBox(index) {
  const review = state.review;
  if (!review || !(index >= 0 && index < review.boxes.length)) return;
  const [gone] = review.boxes.splice(index, 1);
  renderBoxList();
  syncBoxes();
  say(`Box removed: ${gone.finding}.`);
}

/** The drag from `a` to `b` (image pixels) as a box inside the image, or null. */
function boxBetween(a, b) {
  const clamp = (v, hi) => Math.max(0, Math.min(hi, v));
  const r2 = (v) => Math.round(v * 100) / 100;
  const x0 = r2(clamp(Math.min(a.x, b.x), a.columns));
  const x1 = r2(clamp(Math.max(a.x, b.x), a.columns));
  const y0 = r2(clamp(Math.min(a.y, b.y), a.rows));
  const y1 = r2(clamp(Math.max(a.y, b.y), a.rows));
  const w = r2(x1 - x0);
  const h = r2(y1 - y0);
  return w > 0 && h > 0 ? { x: x0, y: y0, w, h } : null;
}

function cancelDrag() {
  const drag = state.drag;
  state.drag = null;
  if (drag) {
    try { $("viewport").releasePointerCapture(drag.pointerId); } catch (e) { /* released */ }
  }
  syncBoxes();
}

function onBoxPointerDown(ev) {
  if (!state.boxTool || ev.button !== 0 || ev.shiftKey || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const viewer = state.viewerNow;
  const start = viewer && viewer.clientToImage(ev.clientX, ev.clientY);
  if (!start) return;
  ev.preventDefault(); // no window/level, and no compatibility mouse events for the tools
  ev.stopPropagation();
  $("viewport").focus({ preventScroll: true });
  $("viewport").setPointerCapture(ev.pointerId);
  state.drag = { pointerId: ev.pointerId, start, client: [ev.clientX, ev.clientY], box: null,
    finding: $("box-finding").value };
}

function onBoxPointerMove(ev) {
  const drag = state.drag;
  if (!drag || ev.pointerId !== drag.pointerId) return;
  ev.preventDefault();
  const p = state.viewerNow.clientToImage(ev.clientX, ev.clientY);
  if (!p) return;
  drag.box = boxBetween(drag.start, p);
  syncBoxes();
}

function onBoxPointerUp(ev) {
  const drag = state.drag;
  if (!drag || ev.pointerId !== drag.pointerId) return;
  ev.preventDefault();
  const p = state.viewerNow.clientToImage(ev.clientX, ev.clientY);
  const dx = Math.abs(ev.clientX - drag.client[0]);
  const dy = Math.abs(ev.clientY - drag.client[1]);
  cancelDrag();
  const review = state.review;
  if (!p || !review || !boxFormOpen() || dx < MIN_DRAG_PX || dy < MIN_DRAG_PX) return;
  const box = boxBetween(drag.start, p);
  if (!box) {
    say("The box lies outside the image: draw it on the image.", true);
    return;
  }
  if (!review.findings.includes(drag.finding)) return;
  review.boxes.push({ finding: drag.finding, sop_instance_uid: drag.start.sop || "", ...box });
  renderBoxList();
  syncBoxes();
  say(`Box ${review.boxes.length} added: ${drag.finding}, ${boxText(box)} px.`);
}

// -- closing a study the model could not score ---------------------------------------

/** The study shown has no AI result and is not signed: it can be closed ("repeat"). */
function closable() {
  const shown = state.shown;
  return Boolean(shown && !shown.final && !shown.latest && UNSCORABLE.includes(shown.study.status));
}

function openCloseForm(keep) {
  const open = closable();
  $("close-form").hidden = !open;
  if (!open) { state.closeEdited = false; return; }
  if (!keep || !state.closeEdited) {
    $("close-text").value = CLOSE_TEXT;
    $("close-looked").checked = false;
    state.closeEdited = false;
  }
}

function updateClose() {
  if ($("close-form").hidden) return;
  const shown = state.shown;
  const cannotShow = state.imageFailed && !state.imageShown;
  $("close-looked-row").hidden = !cannotShow;
  const looked = cannotShow && $("close-looked").checked;
  const text = $("close-text").value.trim();
  const ready = Boolean(shown && shown.uid === state.selected);
  $("close-sign").disabled = !(ready && (state.imageShown || looked) && text && !state.signing);
  let note = "";
  if (!text) note = "Write the report you sign.";
  else if (cannotShow && !looked) note = "The image cannot be displayed here: confirm that you looked at it.";
  else if (!state.imageShown && !looked) note = "Sign is enabled once the image is displayed.";
  else if (!$("close-sign").disabled) note = "Ready to sign: the study leaves the unread list.";
  $("close-note").textContent = note;
}

async function signClose() {
  const shown = state.shown;
  if (!shown || $("close-sign").disabled || state.signing || !closable()) return;
  state.signing = true;
  updateSign();
  const uid = shown.uid;
  const body = { result_id: null, calls: {}, text: $("close-text").value };
  try {
    const out = await (await sendJson(`/api/studies/${encodeURIComponent(uid)}/review`, body)).json();
    const version = out && out.version ? ` (version ${out.version})` : "";
    const warnings = out && out.warnings && out.warnings.length
      ? ` Note: ${out.warnings.join("; ")}` : "";
    say(`Signed and closed: ${patientText(shown.study) || "the study"}${version}.${warnings}`);
    state.signing = false;
    state.closeEdited = false;
    await refresh();
    if (state.selected === uid) await selectStudy(uid, { quiet: true });
  } catch (e) {
    state.signing = false;
    say(e.message, true);
    if (e.status === 409 && state.selected === uid) await selectStudy(uid);
    updateSign();
  }
}

// -- annotate mode: the queue of unread studies, oldest first ------------------------

async function nextInQueue() {
  const params = new URLSearchParams({ view: "unread", order: "oldest", limit: String(PAGE_SIZE) });
  let studies = [];
  try {
    studies = await (await api("/api/studies?" + params.toString())).json();
  } catch (e) {
    say(e.message, true);
    return;
  }
  const next = studies.find((s) => !state.skipped.has(s.study_instance_uid)
    && s.status !== "reviewed" && s.status !== "failed" && s.scored_at);
  if (!next) {
    $("annotate-info").textContent = studies.length
      ? "every scored unread study was skipped or is still waiting for the model."
      : "the queue is empty: every study has been read.";
    say("Nothing left to annotate.");
    return;
  }
  const left = studies.filter((s) => !state.skipped.has(s.study_instance_uid) && s.scored_at).length;
  $("annotate-info").textContent = `oldest unread first; ${left}${studies.length >= PAGE_SIZE ? "+" : ""} in the queue.`;
  await selectStudy(next.study_instance_uid);
  focusFinding(0);
}

function focusFinding(index) {
  const review = state.review;
  if (!review || !review.findings.length) return;
  state.focusIndex = Math.max(0, Math.min(review.findings.length - 1, index));
  renderCallStates();
  const fs = $("calls").querySelector(`fieldset.call[data-index="${state.focusIndex}"]`);
  if (!fs) return;
  const input = fs.querySelector("input:checked") || fs.querySelector("input");
  if (input) input.focus({ preventScroll: false });
}

function setMode(mode, { keepStudy = false } = {}) {
  const previous = state.mode;
  state.mode = mode;
  for (const b of $("modes").querySelectorAll("button[data-mode]")) {
    b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  }
  document.body.classList.toggle("annotating", mode === "annotate");
  $("annotate-bar").hidden = mode !== "annotate";
  $("agreement").hidden = mode !== "agreement";
  $("worklist-section").hidden = mode === "agreement";
  if (mode === "agreement") {
    $("detail").hidden = true;
    loadAgreement();
  } else if (state.selected && previous === "agreement" && !keepStudy) {
    $("detail").hidden = false;
  }
  if (mode === "annotate") {
    state.skipped = new Set();
    nextInQueue();
  }
  renderCallStates();
}

// -- agreement ---------------------------------------------------------------------

function ciText(ci) {
  return Array.isArray(ci) && ci.length === 2 ? ` (${pct1(ci[0])}–${pct1(ci[1])})` : "";
}

function pct1(v) {
  return v === null || v === undefined ? "—" : `${Math.round(v * 100)} %`;
}

async function loadAgreement() {
  const tbody = $("agreement-table").tBodies[0];
  $("agreement-info").textContent = "Loading…";
  try {
    const data = await (await api("/api/agreement")).json();
    tbody.replaceChildren();
    for (const f of data.findings || []) {
      const tr = document.createElement("tr");
      const cells = [
        f.finding, String(f.n),
        pct1(f.sensitivity) + ciText(f.sensitivity_ci), pct1(f.card_sensitivity),
        pct1(f.specificity) + ciText(f.specificity_ci), pct1(f.card_specificity),
        f.drift ? "drift: below the model card" : "no",
      ];
      cells.forEach((text, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        cell.textContent = text;
        if (i === 6 && f.drift) cell.className = "drift";
        tr.appendChild(cell);
      });
      tbody.appendChild(tr);
    }
    if (!(data.findings || []).length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 7;
      td.textContent = "No signed reads yet.";
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    const reads = data.reviews !== undefined ? data.reviews : null;
    $("agreement-info").textContent = (reads !== null ? `${formatCount(reads)} signed reads` : "Signed reads") +
      (data.last_n ? ` (at most the last ${formatCount(data.last_n)} are counted).` : ".");
    $("agreement-warning").textContent = data.warning || "";
    $("agreement-warning").hidden = !data.warning;
    if (data.warning) $("agreement-warning").setAttribute("role", "alert");
  } catch (e) {
    $("agreement-info").textContent = `The agreement figures could not be loaded: ${e.message}`;
  }
}

// -- the viewer --------------------------------------------------------------------

function viewerNote(text) {
  $("viewport-note").textContent = text;
  $("viewport-note").hidden = !text;
}

function getViewer() {
  if (!state.viewer) {
    state.viewer = import("/static/viewer/viewer.js").then((mod) => {
      const select = $("preset");
      PRESET_KEYS.forEach((key, i) => {
        const opt = document.createElement("option");
        opt.value = key;
        opt.textContent = `${i + 1} ${mod.PRESETS[key].label}`;
        select.appendChild(opt);
      });
      return mod.createViewer($("viewport"), {
        authorization,
        onChange: onViewerChange,
        onError: (message) => {
          viewerNote(`The image could not be shown: ${message}. Review it in the PACS viewer.`);
          markImageFailed();
        },
      });
    }).then((viewer) => {
      state.viewerNow = viewer;
      return viewer;
    });
    state.viewer.catch((e) => {
      viewerNote("The image viewer could not start in this browser (" + e.message +
        "). Review the images in the PACS viewer.");
      markImageFailed();
    });
  }
  return state.viewer;
}

/** The shown study's image cannot be displayed (the close form then asks for a confirmation). */
function markImageFailed() {
  if (!state.shown || state.imageShown) return;
  state.imageFailed = true;
  updateSign();
}

function onViewerChange(v) {
  if (v.generation !== state.viewerGen || !state.shown) return;
  const round = (x) => Math.round(x * 10) / 10;
  $("viewport-info").textContent =
    `W ${round(v.window)} / L ${round(v.level)} · zoom ${v.zoom.toFixed(2)}× · ` +
    `${v.columns}×${v.rows} px${v.invert ? " · inverted" : ""}`;
  $("image-count").textContent = `Image ${v.imageIndex + 1} of ${v.imageCount}`;
  $("tool-invert").setAttribute("aria-pressed", String(v.invert));
  $("viewport").dataset.rendered = String(v.generation);
  if (!state.imageShown) {
    state.imageShown = true;
    updateSign();
  }
}

async function showImages(study, seq) {
  const shown = state.shown;
  const images = shown.images;
  let viewer;
  try {
    viewer = await getViewer();
  } catch (e) {
    return; // the note says why; Sign stays disabled
  }
  if (seq !== state.seq) return;
  if (state.imageShown && viewer.generation === state.viewerGen) {
    await refreshHeatmap(seq); // same images, already on screen: keep window and zoom
    await refreshLungs(seq);
    return;
  }
  if (!images.length) {
    viewer.clear();
    viewerNote("This study has no image the viewer can show.");
    markImageFailed();
    return;
  }
  const loading = viewer.load(DICOMWEB, images.map((i) => ({
    study: study.study_instance_uid, series: i.series_instance_uid, sop: i.sop_instance_uid,
  })));
  state.viewerGen = viewer.generation;
  const count = await loading;
  if (seq !== state.seq || count === null) return;
  if (count === 0) viewerNote("This study has no image the viewer can show.");
  if (count === 0 || count === -1) markImageFailed();
  $("image-prev").disabled = $("image-next").disabled = count < 2;
  $("image-nav").hidden = count < 2;
  await refreshHeatmap(seq);
  await refreshLungs(seq);
}

// -- the heatmap overlay -----------------------------------------------------------

function renderOverlayControls(result) {
  // prefer the greyscale importance maps (drawn in colour by the viewer), else the
  // pre-blended colour heatmaps
  const maps = result && result.heatmap_maps && Object.keys(result.heatmap_maps).length
    ? result.heatmap_maps : result ? result.heatmaps || {} : {};
  const names = Object.keys(maps);
  const select = $("overlay-finding");
  const previous = select.value;
  state.heatmaps = maps;
  state.heatmapInstances = result ? result.heatmap_instances : null;
  select.replaceChildren();
  for (const name of names) {
    const opt = document.createElement("option");
    opt.value = name;
    const p = result.findings[name];
    const flagged = result.flags.includes(name) ? " — flagged" : "";
    opt.textContent = `${name}${p !== undefined ? ` ${percent(p)}` : ""}${flagged}`;
    select.appendChild(opt);
  }
  const first = names.find((n) => result.flags.includes(n)) || names[0];
  select.value = names.includes(previous) ? previous : first || "";
  $("overlay-controls").hidden = names.length === 0;
}

async function refreshHeatmap(seq) {
  const viewer = await getViewer();
  const finding = $("overlay-finding").value;
  const url = state.heatmaps[finding];
  viewer.setHeatmapOpacity(Number($("overlay-opacity").value) / 100);
  viewer.setHeatmapVisible($("overlay-toggle").checked);
  if (!url) { viewer.setHeatmap(null); return; }
  let bitmap = state.heatCache.get(url);
  if (!bitmap) {
    try {
      const blob = await (await api(url)).blob();
      bitmap = await createImageBitmap(blob);
    } catch (e) {
      if (seq === state.seq && e.status !== 404) say(e.message, true);
      return;
    }
    if (seq !== state.seq) return;
    state.heatCache.set(url, bitmap);
  }
  // which image the heatmap was made on: the result may name it (heatmap_instances)
  const sop = (state.heatmapInstances || {})[finding] || null;
  const kind = viewer.setHeatmap(bitmap, sop);
  $("overlay-legend").dataset.kind = kind || "";
  $("overlay-caption").textContent = `Grad-CAM for ${finding}: where the model looked; ` +
    "not a finding or a diagnosis.";
}

function setOpacity(value) {
  const v = Math.max(0, Math.min(100, value));
  $("overlay-opacity").value = String(v);
  $("overlay-opacity-value").textContent = `${v}%`;
  sessionStorage.setItem("radiolens-overlay-opacity", String(v));
  if (state.viewer) state.viewer.then((viewer) => viewer.setHeatmapOpacity(v / 100));
}

function setOverlayVisible(on) {
  $("overlay-toggle").checked = on;
  sessionStorage.setItem("radiolens-overlay", on ? "on" : "off");
  if (state.viewer) state.viewer.then((viewer) => viewer.setHeatmapVisible(on));
}

// -- the lung mask layer -----------------------------------------------------------

function renderLungControls(study) {
  const url = study.links && study.links.lungs;
  state.lungs = url ? { url, sop: study.lung_instance || null } : null;
  const button = $("tool-lungs");
  button.hidden = !url;
  button.disabled = !url;
  button.setAttribute("aria-pressed", String(state.lungsOn));
  const q = study.lung_quality;
  button.title = "Lungs (L): the AI lung segmentation, outlined on the image" +
    (q ? ` (lungs cover ${percent(q.lung_fraction)} of the image${q.ok ? "" : "; check image"})` : "");
}

async function refreshLungs(seq) {
  const viewer = await getViewer();
  if (seq !== state.seq) return; // another study was selected meanwhile
  viewer.setLungsVisible(state.lungsOn);
  const lungs = state.lungs;
  if (!lungs) { viewer.setLungs(null); return; }
  let bitmap = state.heatCache.get(lungs.url);
  if (!bitmap) {
    try {
      bitmap = await createImageBitmap(await (await api(lungs.url)).blob());
    } catch (e) {
      if (seq !== state.seq) return;
      viewer.setLungs(null);
      $("tool-lungs").disabled = true;
      $("tool-lungs").title = `No lung mask to show: ${e.message}`;
      return;
    }
    if (seq !== state.seq) return;
    state.heatCache.set(lungs.url, bitmap);
  }
  viewer.setLungs(bitmap, lungs.sop);
}

function setLungsVisible(on) {
  state.lungsOn = Boolean(on);
  $("tool-lungs").setAttribute("aria-pressed", String(state.lungsOn));
  sessionStorage.setItem("radiolens-lungs", state.lungsOn ? "on" : "off");
  if (state.viewer) state.viewer.then((viewer) => viewer.setLungsVisible(state.lungsOn));
}

// -- keyboard ----------------------------------------------------------------------

function moveRow(delta) {
  const rows = [...$("worklist").tBodies[0].rows];
  if (!rows.length) return;
  const active = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("#worklist tbody tr") : null;
  let index = active ? rows.indexOf(active) : rows.indexOf(rowFor(state.selected));
  index = index < 0 ? (delta > 0 ? 0 : rows.length - 1)
    : Math.max(0, Math.min(rows.length - 1, index + delta));
  rows[index].focus();
}

function withViewer(fn) {
  if ($("detail").hidden || !state.viewer) return;
  state.viewer.then(fn).catch(() => {});
}

function annotateKey(ev) {
  // 1/2/3: the highlighted finding's call; up/down: the finding; Enter: sign; N: skip
  const key = ev.key;
  const handled = (fn) => { ev.preventDefault(); fn(); return true; };
  const review = state.review;
  if (key === "Escape") return handled(() => setMode("worklist"));
  if (key === "n" || key === "N") return handled(() => skip());
  if (!review || $("review-form").hidden) return false;
  const call = { 1: "present", 2: "absent", 3: "uncertain" }[key];
  if (call) {
    return handled(() => {
      setCall(review.findings[state.focusIndex], call);
      if (state.focusIndex < review.findings.length - 1) focusFinding(state.focusIndex + 1);
      else focusFinding(state.focusIndex);
    });
  }
  if (key === "ArrowDown") return handled(() => focusFinding(state.focusIndex + 1));
  if (key === "ArrowUp") return handled(() => focusFinding(state.focusIndex - 1));
  const tag = ev.target && ev.target.tagName;
  if (key === "Enter" && !["BUTTON", "A", "SUMMARY"].includes(tag)) return handled(() => sign());
  return false;
}

async function skip() {
  if (state.mode !== "annotate") return;
  if (state.selected) state.skipped.add(state.selected);
  await nextInQueue();
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
  if (!state.me) return;
  const t = ev.target;
  const tag = t && t.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable)) return;
  const isRadio = tag === "INPUT" && t.type === "radio";
  if (tag === "INPUT" && !["checkbox", "button", "radio"].includes(t.type)) return;
  if ($("help").open) return;
  if (state.mode === "annotate" && !$("detail").hidden && annotateKey(ev)) return;
  const key = ev.key;
  // outside annotate mode the arrows (and digits) act within the radio group
  if (isRadio && (key.startsWith("Arrow") || /^[0-9 ]$/.test(key))) return;
  const handled = (fn) => { ev.preventDefault(); fn(); };
  if (key === "?") return handled(() => $("help").showModal());
  if (key === "/") return handled(() => $("search").focus());
  if (key === "A" && ev.shiftKey) return handled(() => setMode("annotate"));
  if (key === "m" || key === "M") return handled(() => setMasked(!state.masked));
  if (state.mode !== "agreement") {
    if (key === "ArrowDown") return handled(() => moveRow(1));
    if (key === "ArrowUp") return handled(() => moveRow(-1));
  }
  if ($("detail").hidden) return;
  if (key === "ArrowRight") return handled(() => withViewer((v) => v.step(1)));
  if (key === "ArrowLeft") return handled(() => withViewer((v) => v.step(-1)));
  const preset = "12345".indexOf(key);
  if (key.length === 1 && preset >= 0) {
    return handled(() => {
      $("preset").value = PRESET_KEYS[preset];
      withViewer((v) => v.preset(PRESET_KEYS[preset]));
    });
  }
  switch (key.toLowerCase()) {
    case "+": case "=": return handled(() => withViewer((v) => v.zoom(1.25)));
    case "-": case "_": return handled(() => withViewer((v) => v.zoom(0.8)));
    case "f": return handled(() => withViewer((v) => v.fit()));
    case "a": return handled(() => withViewer((v) => v.actualSize()));
    case "i": return handled(() => withViewer((v) => v.invert()));
    case "r": return handled(() => withViewer((v) => v.reset()));
    case "b":
      if ($("tool-box").disabled) return;
      return handled(() => setBoxTool(!state.boxTool));
    case "l":
      if ($("tool-lungs").hidden || $("tool-lungs").disabled) return;
      return handled(() => setLungsVisible(!state.lungsOn));
    case "h":
      if ($("overlay-controls").hidden) return;
      return handled(() => setOverlayVisible(!$("overlay-toggle").checked));
    case "[": return handled(() => setOpacity(Number($("overlay-opacity").value) - 10));
    case "]": return handled(() => setOpacity(Number($("overlay-opacity").value) + 10));
    default: return;
  }
}

// -- wiring ------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("login-name").value.trim();
    const password = $("login-password").value;
    try {
      const me = await logIn(name, password);
      $("login-password").value = "";
      state.me = me;
      state.csrf = me.csrf_token || null;
      say("");
      await start();
    } catch (e) {
      $("login-password").value = "";
      say(e.message, true);
      $("login-password").focus();
    }
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("radiolens-token", state.token);
    $("token").value = "";
    say("Service token saved for this browser tab.");
    boot();
  });
  $("logout").addEventListener("click", () => logOut());
  const tbody = $("worklist").tBodies[0];
  tbody.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr) selectStudy(tr.dataset.uid);
  });
  tbody.addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      selectStudy(tr.dataset.uid);
    }
  });
  $("views").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-view]");
    if (b) setView(b.dataset.view);
  });
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearTimeout(state.searchTimer);
    state.query = $("search").value.trim();
    state.offset = 0;
    refresh();
  });
  $("search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => {
      const q = $("search").value.trim();
      if (q === state.query) return;
      state.query = q;
      state.offset = 0;
      refresh();
    }, 300);
  });
  $("page-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    refresh();
  });
  $("page-next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    refresh();
  });
  $("mask").addEventListener("change", () => setMasked($("mask").checked));
  $("modes").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-mode]");
    if (b) setMode(b.dataset.mode);
  });
  $("annotate-skip").addEventListener("click", () => skip());
  $("annotate-exit").addEventListener("click", () => setMode("worklist"));

  // the review form: a click on a radio (even the pre-selected one) is the reviewer's call
  $("calls").addEventListener("click", (ev) => {
    const input = ev.target.closest("input[type=radio]");
    if (!input) return;
    const fs = input.closest("fieldset.call");
    if (fs) state.focusIndex = Number(fs.dataset.index);
    setCall(input.dataset.finding, input.value);
  });
  $("calls").addEventListener("change", (ev) => {
    const input = ev.target.closest("input[type=radio]");
    if (input && input.checked) setCall(input.dataset.finding, input.value);
  });
  $("report-text").addEventListener("input", () => { if (state.review) state.review.edited = true; });
  $("tool-box").addEventListener("click", () => setBoxTool(!state.boxTool));
  $("box-finding").addEventListener("change", () => { if (state.boxTool) setBoxTool(true); });
  $("box-list").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.box-remove");
    if (b) removeBox(Number(b.dataset.index));
  });
  const vp = $("viewport");
  vp.addEventListener("pointerdown", onBoxPointerDown, true);
  vp.addEventListener("pointermove", onBoxPointerMove, true);
  vp.addEventListener("pointerup", onBoxPointerUp, true);
  vp.addEventListener("pointercancel", () => cancelDrag());
  vp.addEventListener("lostpointercapture", () => { if (state.drag) cancelDrag(); });
  $("close-form").addEventListener("submit", (ev) => { ev.preventDefault(); signClose(); });
  $("close-text").addEventListener("input", () => { state.closeEdited = true; updateClose(); });
  $("close-looked").addEventListener("change", () => updateClose());
  $("review-form").addEventListener("submit", (ev) => { ev.preventDefault(); sign(); });
  $("amend").addEventListener("click", () => {
    openReviewForm({ amend: true });
    $("report-text").focus();
  });
  $("cancel-amend").addEventListener("click", () => {
    state.review = null;
    setBoxTool(false);
    $("review-form").hidden = true;
    $("draft-text").hidden = false;
    $("report-heading").hidden = false;
    updateSign();
  });
  $("set-priority").addEventListener("click", async () => {
    const value = Number($("priority").value);
    if (!Number.isInteger(value) || value < 0 || value > 100) {
      say("Priority must be a whole number from 0 to 100.", true);
      return;
    }
    const uid = state.shown ? state.shown.uid : null;
    if (!uid) return;
    const path = `/api/studies/${encodeURIComponent(uid)}/priority`;
    try {
      try {
        await sendJson(path, { priority: value });
      } catch (e) { // a server that still wants the reviewer's name in the body
        if (e.status !== 422 || !/reviewer/.test(e.message)) throw e;
        await sendJson(path, { priority: value, reviewer: state.me.name });
      }
      say(`Priority set to ${value}.`);
      await refresh();
      if (state.selected === uid) await selectStudy(uid, { quiet: true });
    } catch (e) {
      say(e.message, true);
    }
  });
  $("preset").addEventListener("change", () => withViewer((v) => v.preset($("preset").value)));
  $("tool-zoom-in").addEventListener("click", () => withViewer((v) => v.zoom(1.25)));
  $("tool-zoom-out").addEventListener("click", () => withViewer((v) => v.zoom(0.8)));
  $("tool-fit").addEventListener("click", () => withViewer((v) => v.fit()));
  $("tool-actual").addEventListener("click", () => withViewer((v) => v.actualSize()));
  $("tool-invert").addEventListener("click", () => withViewer((v) => v.invert()));
  $("tool-reset").addEventListener("click", () => withViewer((v) => v.reset()));
  $("tool-lungs").addEventListener("click", () => setLungsVisible(!state.lungsOn));
  $("image-prev").addEventListener("click", () => withViewer((v) => v.step(-1)));
  $("image-next").addEventListener("click", () => withViewer((v) => v.step(1)));
  $("overlay-toggle").addEventListener("change", () => setOverlayVisible($("overlay-toggle").checked));
  $("overlay-opacity").addEventListener("input", () => setOpacity(Number($("overlay-opacity").value)));
  $("overlay-finding").addEventListener("change", () => refreshHeatmap(state.seq));
  $("show-help").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", () => {
    const uid = hashParams().get("study");
    if (uid && uid !== state.selected && state.me) selectStudy(uid);
  });
}

/** Who is signed in (cookie or service token)? Then the worklist, or the login form. */
async function boot() {
  let me = null;
  try {
    me = await whoAmI();
  } catch (e) {
    say(e.message, true);
  }
  if (!me) {
    if (state.token) {
      signedOut("The service token was refused: enter the token printed by radiolens serve.");
    } else {
      signedOut();
    }
    return;
  }
  state.me = me;
  state.csrf = me.csrf_token || null;
  await start();
}

async function start() {
  showSignedIn();
  try {
    const info = await (await api("/api/info")).json();
    const dicom = info.dicom_port ? ` — send DICOM to ${info.ae_title} port ${info.dicom_port}` : "";
    $("service-info").textContent = `radiolens ${info.version}` +
      (info.model_name ? `, model ${info.model_name}` : "") + dicom;
  } catch (e) {
    say(e.message, true);
    return;
  }
  await refresh();
  startLive();
  const linked = hashParams().get("study");
  if (linked && linked !== state.selected) selectStudy(linked);
}

document.addEventListener("DOMContentLoaded", () => {
  $("overlay-toggle").checked = sessionStorage.getItem("radiolens-overlay") === "on";
  state.lungsOn = sessionStorage.getItem("radiolens-lungs") === "on";
  const opacity = Number(sessionStorage.getItem("radiolens-overlay-opacity") || "50");
  $("overlay-opacity").value = String(opacity);
  $("overlay-opacity-value").textContent = `${opacity}%`;
  state.masked = sessionStorage.getItem("radiolens-mask") === "on";
  $("mask").checked = state.masked;
  document.body.classList.toggle("masked", state.masked);
  const view = sessionStorage.getItem("radiolens-view");
  if (VIEWS.includes(view)) {
    state.view = view;
    for (const b of $("views").querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.dataset.view === view));
    }
  }
  state.token = readToken();
  wire();
  boot();
});
