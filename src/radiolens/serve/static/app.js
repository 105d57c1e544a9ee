// radiolens worklist UI: plain JavaScript, no build step, no external resources.
// The API token comes from the URL fragment (#token=...) or the form, and is kept in
// sessionStorage only. Every request sends it as a Bearer header; images are fetched
// with the header. The image viewer (Cornerstone3D) is the prebuilt bundle under
// /static/viewer/ (sources and `make ui` in src/radiolens/serve/ui/), loaded with import().
//
// A study's panel is filled only from the answer to the latest selection (`state.seq`):
// a slow answer for a study the user has left is dropped. Reviews name the study and the
// result shown in the panel (`state.shown`), and Accept is enabled only once the study's
// image has been drawn on screen.
"use strict";

const REFRESH_MS = 5000;
const DICOMWEB = "/dicomweb";
const SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.";
const PRESET_KEYS = ["default", "full", "contrast", "bright", "soft"];
const state = {
  token: "",
  selected: null, // the UID selected in the worklist
  shown: null, // what the panel shows: {uid, resultId, scoredAt, scored, instancesKey}
  seq: 0, // bumped by every selection; answers for an older one are dropped
  controller: null, // aborts the previous selection's requests
  imageShown: false, // the shown study's image has been rendered
  viewer: null, // Promise of the viewer (created on first use)
  viewerGen: -1, // the viewer load that belongs to the shown study
  heatmaps: {}, // finding -> URL, of the shown result
  heatCache: new Map(), // URL -> ImageBitmap, for the shown study
  refreshSeq: 0,
  timer: null,
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

function authorization() {
  return "Bearer " + state.token;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, { Authorization: authorization() });
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

// -- the worklist (updated in place, so focus and selection survive a refresh) -------

function flagBadges(flags) {
  const span = document.createElement("span");
  for (const flag of flags) {
    const badge = document.createElement("span");
    badge.className = "badge flag";
    badge.textContent = flag;
    badge.title = flag;
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

/** A DICOM person name (Family^Given^Middle^Prefix^Suffix) as people write it. */
function personName(pn) {
  if (!pn) return "";
  const [family = "", given = "", middle = "", prefix = "", suffix = ""] = pn.split("=")[0].split("^");
  const first = [prefix, given, middle].filter(Boolean).join(" ");
  return [family, first].filter(Boolean).join(", ") + (suffix ? ` ${suffix}` : "");
}

function patientText(s) {
  return [s.patient_id, personName(s.patient_name)].filter(Boolean).join(" ");
}

function newRow(uid) {
  const tr = document.createElement("tr");
  tr.dataset.uid = uid;
  tr.tabIndex = 0;
  for (const name of ["priority", "status", "patient", "received", "flags", "top"]) {
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
  const [priority, status, patient, received, flags, top] = tr.cells;
  const by = s.priority_set_by === "person" ? " (set by a person)" : "";
  setCell(priority, String(s.priority), "priority" + by);
  setCell(status, s.status);
  status.className = "col-status status-" + s.status;
  const who = patientText(s);
  setCell(patient, who, who);
  setCell(received, when(s.received_at));
  const key = s.flags.join("\u0001");
  if (flags.dataset.key !== key) {
    flags.dataset.key = key;
    flags.replaceChildren(flagBadges(s.flags));
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
  }
  $("empty").hidden = studies.length > 0;
  const open = studies.find((s) => s.study_instance_uid === state.selected);
  if (open && state.shown && state.shown.uid === open.study_instance_uid
      && open.scored_at !== state.shown.scoredAt && $("correct-form").hidden) {
    selectStudy(open.study_instance_uid, { quiet: true }); // a new result for the open study
  }
}

async function refresh() {
  if (!state.token) return;
  const seq = ++state.refreshSeq;
  try {
    const studies = await (await api("/api/studies?limit=200")).json();
    if (seq !== state.refreshSeq) return; // a later refresh answered first
    renderWorklist(studies);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    say(e.message, true);
  }
}

// -- the study panel ---------------------------------------------------------------

function renderMeta(study) {
  const dl = $("detail-meta");
  dl.replaceChildren();
  const rows = [
    ["Patient", patientText(study)],
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

function updateActions() {
  const shown = state.shown;
  const ready = Boolean(shown && shown.uid === state.selected && shown.scored && state.imageShown);
  $("accept").disabled = !ready;
  $("correct").disabled = !ready;
  let note = "";
  if (shown && shown.scored && !state.imageShown) {
    note = "Accept and Correct are enabled once the image is displayed.";
  }
  $("accept-note").textContent = note;
}

function showLoading(uid) {
  // The panel never shows one study while another is selected.
  state.shown = null;
  state.imageShown = false;
  state.heatmaps = {};
  state.heatCache = new Map();
  $("detail").hidden = false;
  $("detail").setAttribute("aria-busy", "true");
  $("detail").dataset.uid = uid;
  $("detail-title").textContent = "Loading study…";
  $("detail-meta").replaceChildren();
  $("draft-text").textContent = "";
  $("draft-disclaimer").textContent = "";
  $("reviews").replaceChildren();
  $("overlay-controls").hidden = true;
  $("viewport-info").textContent = "";
  $("viewport-note").hidden = true;
  $("correct-form").hidden = true;
  updateActions();
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
  if (!quiet || !state.shown || state.shown.uid !== uid) showLoading(uid);
  const signal = controller.signal;
  try {
    const study = await (await api(`/api/studies/${encodeURIComponent(uid)}`, { signal })).json();
    if (seq !== state.seq) return;
    let draft = null;
    if (study.links.draft) draft = await (await api(study.links.draft, { signal })).json();
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
  const latest = study.results[0] || null;
  const images = study.instances.filter((i) => !(i.sop_class_uid || "").startsWith(SR_CLASS));
  const instancesKey = study.study_instance_uid + "|" +
    images.map((i) => i.sop_instance_uid).join(",");
  const sameImages = state.shown && state.shown.instancesKey === instancesKey;
  state.shown = {
    uid: study.study_instance_uid,
    resultId: latest ? latest.id : null,
    scoredAt: study.scored_at,
    scored: Boolean(study.links.draft),
    instancesKey,
    images,
  };
  if (!sameImages) state.imageShown = false;
  $("detail").hidden = false;
  $("detail").removeAttribute("aria-busy");
  $("detail").dataset.uid = study.study_instance_uid;
  $("detail-title").textContent = `${patientText(study) || "Study"} (${study.status})`;
  renderMeta(study);
  renderReviews(study.reviews);
  $("priority").value = study.priority;
  $("correct-form").hidden = true;
  if (draft) {
    $("draft-text").textContent = draft.text;
    $("draft-disclaimer").textContent = draft.disclaimer;
  } else {
    $("draft-text").textContent = "Not scored yet: the draft appears when the model has read the study.";
    $("draft-disclaimer").textContent = "";
  }
  renderOverlayControls(latest);
  updateActions();
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
        onError: (message) => viewerNote(`The image could not be shown: ${message}. ` +
          "Review it in the PACS viewer."),
      });
    });
    state.viewer.catch((e) => {
      viewerNote("The image viewer could not start in this browser (" + e.message +
        "). Review the images in the PACS viewer.");
    });
  }
  return state.viewer;
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
    updateActions();
  }
}

async function showImages(study, seq) {
  const shown = state.shown;
  const images = shown.images;
  let viewer;
  try {
    viewer = await getViewer();
  } catch (e) {
    return; // the note says why; Accept stays disabled
  }
  if (seq !== state.seq) return;
  if (state.imageShown && viewer.generation === state.viewerGen) {
    await refreshHeatmap(seq); // same images, already on screen: keep window and zoom
    return;
  }
  if (!images.length) {
    viewer.clear();
    viewerNote("This study has no image the viewer can show.");
    return;
  }
  const loading = viewer.load(DICOMWEB, images.map((i) => ({
    study: study.study_instance_uid, series: i.series_instance_uid, sop: i.sop_instance_uid,
  })));
  state.viewerGen = viewer.generation;
  const count = await loading;
  if (seq !== state.seq || count === null) return;
  if (count === 0) viewerNote("This study has no image the viewer can show.");
  $("image-prev").disabled = $("image-next").disabled = count < 2;
  $("image-nav").hidden = count < 2;
  await refreshHeatmap(seq);
}

// -- the heatmap overlay -----------------------------------------------------------

function renderOverlayControls(result) {
  const heatmaps = result ? result.heatmaps : {};
  const names = Object.keys(heatmaps);
  const select = $("overlay-finding");
  const previous = select.value;
  state.heatmaps = heatmaps;
  state.heatmapInstances = result ? result.heatmap_instances : null;
  select.replaceChildren();
  for (const name of names) {
    const opt = document.createElement("option");
    opt.value = name;
    const p = result.findings[name];
    const flagged = result.flags.includes(name) ? " — flagged" : "";
    opt.textContent = `${name}${p !== undefined ? ` ${(p * 100).toFixed(0)}%` : ""}${flagged}`;
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

// -- reviews -----------------------------------------------------------------------

function reviewer() {
  const name = $("reviewer").value.trim() || "radiologist";
  sessionStorage.setItem("radiolens-reviewer", name);
  return name;
}

async function postReview(body) {
  const shown = state.shown;
  if (!shown || shown.uid !== state.selected || !state.imageShown) {
    throw new Error("The study is still loading: wait until its image is displayed.");
  }
  const path = `/api/studies/${encodeURIComponent(shown.uid)}/review`;
  const full = Object.assign({}, body, { result_id: shown.resultId });
  try {
    return await postJson(path, full);
  } catch (e) {
    if (e.status === 409) {
      const err = new Error("A newer AI result arrived for this study: the panel was " +
        "reloaded; review it again.");
      err.reload = true;
      throw err;
    }
    // Until the server knows `result_id` (ReviewIn forbids unknown fields), check the
    // latest result here and send the review without it.
    if (e.status === 422 && /result_id/.test(e.message)) {
      const study = await (await api(`/api/studies/${encodeURIComponent(shown.uid)}`)).json();
      const latest = study.results[0] ? study.results[0].id : null;
      if (latest !== shown.resultId) {
        const err = new Error("A newer AI result arrived for this study: the panel was " +
          "reloaded; review it again.");
        err.reload = true;
        throw err;
      }
      return postJson(path, body);
    }
    throw e;
  }
}

async function act(label, fn) {
  try {
    await fn();
    say(label);
    await refresh();
    if (state.selected) await selectStudy(state.selected, { quiet: true });
  } catch (e) {
    say(e.message, true);
    if (e.reload && state.selected) await selectStudy(state.selected);
  }
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

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
  const t = ev.target;
  const tag = t && t.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable)) return;
  if (tag === "INPUT" && !["checkbox", "button"].includes(t.type)) return;
  if ($("help").open) return;
  const key = ev.key;
  const handled = (fn) => { ev.preventDefault(); fn(); };
  if (key === "?") return handled(() => $("help").showModal());
  if (key === "ArrowDown") return handled(() => moveRow(1));
  if (key === "ArrowUp") return handled(() => moveRow(-1));
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
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("radiolens-token", state.token);
    $("token").value = "";
    say("Token saved for this browser tab.");
    start();
  });
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
  $("accept").addEventListener("click", () => act("Draft accepted.", () =>
    postReview({ action: "accept", reviewer: reviewer() })));
  $("correct").addEventListener("click", () => {
    $("correction").value = $("draft-text").textContent;
    $("correct-form").hidden = false;
    $("correction").focus();
  });
  $("cancel-correct").addEventListener("click", () => { $("correct-form").hidden = true; });
  $("correct-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("Correction saved.", () =>
      postReview({ action: "correct", text: $("correction").value, reviewer: reviewer() }));
  });
  $("set-priority").addEventListener("click", () => {
    const value = Number($("priority").value);
    if (!Number.isInteger(value) || value < 0 || value > 100) {
      say("Priority must be a whole number from 0 to 100.", true);
      return;
    }
    const uid = state.shown ? state.shown.uid : null;
    if (!uid) return;
    act(`Priority set to ${value}.`, () =>
      postJson(`/api/studies/${encodeURIComponent(uid)}/priority`,
        { priority: value, reviewer: reviewer() }));
  });
  $("preset").addEventListener("change", () => withViewer((v) => v.preset($("preset").value)));
  $("tool-zoom-in").addEventListener("click", () => withViewer((v) => v.zoom(1.25)));
  $("tool-zoom-out").addEventListener("click", () => withViewer((v) => v.zoom(0.8)));
  $("tool-fit").addEventListener("click", () => withViewer((v) => v.fit()));
  $("tool-actual").addEventListener("click", () => withViewer((v) => v.actualSize()));
  $("tool-invert").addEventListener("click", () => withViewer((v) => v.invert()));
  $("tool-reset").addEventListener("click", () => withViewer((v) => v.reset()));
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
    if (uid && uid !== state.selected && state.token) selectStudy(uid);
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
  const linked = hashParams().get("study");
  if (linked && linked !== state.selected) selectStudy(linked);
  if (state.timer === null) state.timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("reviewer").value = sessionStorage.getItem("radiolens-reviewer") || $("reviewer").value;
  $("overlay-toggle").checked = sessionStorage.getItem("radiolens-overlay") === "on";
  const opacity = Number(sessionStorage.getItem("radiolens-overlay-opacity") || "50");
  $("overlay-opacity").value = String(opacity);
  $("overlay-opacity-value").textContent = `${opacity}%`;
  state.token = readToken();
  wire();
  start();
});
