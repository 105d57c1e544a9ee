// radiolens worklist UI: plain JavaScript, no build step, no external resources.
// The API token comes from the URL fragment (#token=...) or the form, and is kept in
// sessionStorage only. Every request sends it as a Bearer header; images are fetched
// with the header and shown through blob URLs.
"use strict";

const REFRESH_MS = 5000;
const state = { token: "", selected: null, scoredAt: null, heatmapUrl: null, timer: null };
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function readToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem("radiolens-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem("radiolens-token") || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, {
    Authorization: "Bearer " + state.token,
  });
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    throw new Error("The API token was refused: enter the token printed by radiolens serve.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    const err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    err.status = response.status;
    throw err;
  }
  return response;
}

async function postJson(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  row.appendChild(td);
  return td;
}

function flagBadges(flags) {
  const span = document.createElement("span");
  for (const flag of flags) {
    const badge = document.createElement("span");
    badge.className = "badge flag";
    badge.textContent = flag;
    span.appendChild(badge);
  }
  return span;
}

function topProbabilities(findings, n = 3) {
  return Object.entries(findings)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, p]) => `${name} ${(p * 100).toFixed(0)}%`)
    .join(", ");
}

function renderWorklist(studies) {
  const tbody = $("worklist").querySelector("tbody");
  tbody.replaceChildren();
  $("empty").hidden = studies.length > 0;
  for (const s of studies) {
    const tr = document.createElement("tr");
    tr.dataset.uid = s.study_instance_uid;
    tr.tabIndex = 0;
    tr.setAttribute("aria-selected", String(s.study_instance_uid === state.selected));
    const by = s.priority_set_by === "person" ? " (set by a person)" : "";
    cell(tr, String(s.priority)).title = "priority" + by;
    cell(tr, s.status).className = "status-" + s.status;
    cell(tr, s.patient_name ? `${s.patient_id || ""} ${s.patient_name}` : s.patient_id || "");
    cell(tr, when(s.received_at));
    cell(tr, flagBadges(s.flags));
    cell(tr, topProbabilities(s.findings));
    tr.addEventListener("click", () => selectStudy(s.study_instance_uid));
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectStudy(s.study_instance_uid); }
    });
    tbody.appendChild(tr);
    if (s.study_instance_uid === state.selected && s.scored_at !== state.scoredAt
        && $("correct-form").hidden) {
      selectStudy(s.study_instance_uid);  // a new result arrived for the open study
    }
  }
}

async function refresh() {
  if (!state.token) return;
  try {
    const studies = await (await api("/api/studies?limit=200")).json();
    renderWorklist(studies);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    say(e.message, true);
  }
}

function renderMeta(study) {
  const dl = $("detail-meta");
  dl.replaceChildren();
  const rows = [
    ["Patient", [study.patient_id, study.patient_name].filter(Boolean).join(" ")],
    ["Accession", study.accession_number || ""],
    ["Status", study.status + (study.error ? ` — ${study.error}` : "")],
    ["Priority", `${study.priority}` + (study.priority_set_by ? ` (set by ${study.priority_set_by})` : "")],
    ["Model", [study.model_name, study.model_version].filter(Boolean).join(" ")],
    ["Study UID", study.study_instance_uid],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }
  const failed = study.deliveries.filter((d) => d.status === "failed");
  if (failed.length) {
    const dt = document.createElement("dt"); dt.textContent = "Failed sends";
    const dd = document.createElement("dd");
    dd.className = "status-failed";
    dd.textContent = failed.map((d) => `${d.kind} to ${d.destination}: ${d.last_error}`).join("; ");
    dl.append(dt, dd);
  }
}

function renderReviews(reviews) {
  const ul = $("reviews");
  ul.replaceChildren();
  for (const r of reviews) {
    const li = document.createElement("li");
    const extra = r.priority !== null ? ` → priority ${r.priority}` : "";
    li.textContent = `${when(r.created_at)} — ${r.reviewer}: ${r.action}${extra}`;
    ul.appendChild(li);
  }
  if (!reviews.length) {
    const li = document.createElement("li"); li.textContent = "No reviews yet."; ul.appendChild(li);
  }
}

async function showHeatmap(study) {
  const figure = $("heatmap-figure");
  if (state.heatmapUrl) { URL.revokeObjectURL(state.heatmapUrl); state.heatmapUrl = null; }
  figure.hidden = true;
  if (!study.links.heatmap) return;
  try {
    const blob = await (await api(study.links.heatmap)).blob();
    state.heatmapUrl = URL.createObjectURL(blob);
    const img = $("heatmap");
    img.src = state.heatmapUrl;
    const shown = study.flags[0] || Object.keys(study.findings)[0] || "";
    img.alt = `AI heatmap (Grad-CAM) for ${shown}: where the model looked; not a diagnosis`;
    $("heatmap-caption").textContent = `Heatmap: ${shown}`;
    figure.hidden = false;
  } catch (e) {
    if (e.status !== 404) say(e.message, true);
  }
}

async function selectStudy(uid) {
  state.selected = uid;
  for (const tr of $("worklist").querySelectorAll("tbody tr")) {
    tr.setAttribute("aria-selected", String(tr.dataset.uid === uid));
  }
  try {
    const study = await (await api(`/api/studies/${encodeURIComponent(uid)}`)).json();
    state.scoredAt = study.scored_at;
    $("detail").hidden = false;
    $("detail-title").textContent = `Study ${study.patient_id || ""} (${study.status})`;
    renderMeta(study);
    renderReviews(study.reviews);
    $("priority").value = study.priority;
    $("correct-form").hidden = true;
    const scored = Boolean(study.links.draft);
    $("accept").disabled = !scored;
    $("correct").disabled = !scored;
    if (scored) {
      const draft = await (await api(study.links.draft)).json();
      $("draft-text").textContent = draft.text;
      $("draft-disclaimer").textContent = draft.disclaimer;
    } else {
      $("draft-text").textContent = "Not scored yet: the draft appears when the model has read the study.";
      $("draft-disclaimer").textContent = "";
    }
    await showHeatmap(study);
  } catch (e) {
    say(e.message, true);
  }
}

function reviewer() {
  const name = $("reviewer").value.trim() || "radiologist";
  sessionStorage.setItem("radiolens-reviewer", name);
  return name;
}

async function act(label, fn) {
  try {
    await fn();
    say(label);
    await refresh();
    if (state.selected) await selectStudy(state.selected);
  } catch (e) {
    say(e.message, true);
  }
}

function wire() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("radiolens-token", state.token);
    $("token").value = "";
    say("Token saved for this browser tab.");
    start();
  });
  $("accept").addEventListener("click", () => act("Draft accepted.", () =>
    postJson(`/api/studies/${encodeURIComponent(state.selected)}/review`,
      { action: "accept", reviewer: reviewer() })));
  $("correct").addEventListener("click", () => {
    $("correction").value = $("draft-text").textContent;
    $("correct-form").hidden = false;
    $("correction").focus();
  });
  $("cancel-correct").addEventListener("click", () => { $("correct-form").hidden = true; });
  $("correct-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("Correction saved.", () =>
      postJson(`/api/studies/${encodeURIComponent(state.selected)}/review`,
        { action: "correct", text: $("correction").value, reviewer: reviewer() }));
  });
  $("set-priority").addEventListener("click", () => {
    const value = Number($("priority").value);
    if (!Number.isInteger(value) || value < 0 || value > 100) {
      say("Priority must be a whole number from 0 to 100.", true);
      return;
    }
    act(`Priority set to ${value}.`, () =>
      postJson(`/api/studies/${encodeURIComponent(state.selected)}/priority`,
        { priority: value, reviewer: reviewer() }));
  });
}

async function start() {
  if (!state.token) { say("Enter the API token to see the worklist."); return; }
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
  if (state.timer === null) state.timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("reviewer").value = sessionStorage.getItem("radiolens-reviewer") || $("reviewer").value;
  state.token = readToken();
  wire();
  start();
});
