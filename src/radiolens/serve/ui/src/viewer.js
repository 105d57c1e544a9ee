// radiolens study viewer: one Cornerstone3D stack viewport over the service's DICOMweb
// (WADO-RS metadata + uncompressed frames, bearer token on every request), with the
// model's heatmap drawn on a 2D canvas above it that follows pan and zoom, and the
// reviewer's boxes around findings (image pixel coordinates) drawn on the same canvas.
// The lung mask (the service's lungs.png) is drawn the same way on a canvas of its own,
// between the image and the heatmap: a green tint with a solid outline.
//
// Built once into ../static/viewer/viewer.js (see build.mjs); the worklist page
// (static/app.js, plain JavaScript) imports it with import() and calls createViewer().
import {
  Enums,
  RenderingEngine,
  init as coreInit,
  eventTarget,
  utilities,
} from "@cornerstonejs/core";
// init and the WADO-RS loader only (the package index also pulls in the worker's codecs)
import loaderInit from "../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/init.js";
import wadors from "@cornerstonejs/dicom-image-loader/wadors";
import {
  Enums as ToolEnums,
  PanTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  init as toolsInit,
} from "@cornerstonejs/tools";

const ENGINE_ID = "radiolens-engine";
const VIEWPORT_ID = "radiolens-stack";
const TOOL_GROUP_ID = "radiolens-tools";
const PIXEL_DATA = "7FE00010";
const ROWS = "00280010";

/** Window presets, as fractions of the image's stored pixel range [lower, upper]. */
export const PRESETS = {
  default: { label: "DICOM default", range: null },
  full: { label: "Full range", range: [0, 1] },
  contrast: { label: "High contrast", range: [0.25, 0.75] },
  bright: { label: "Dense (bone)", range: [0.45, 1] },
  soft: { label: "Lucent (lung)", range: [0, 0.6] },
};

let initialised = null;

function initOnce(authorization) {
  if (!initialised) {
    initialised = (async () => {
      coreInit();
      loaderInit({
        maxWebWorkers: 1,
        beforeSend: () => ({ Authorization: authorization() }),
      });
      toolsInit();
      addTool(WindowLevelTool);
      addTool(PanTool);
      addTool(ZoomTool);
    })();
  }
  return initialised;
}

function frameUrl(root, study, series, sop) {
  return `${root}/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}` +
    `/instances/${encodeURIComponent(sop)}`;
}

/**
 * Turn a heatmap image into what the overlay draws: a greyscale importance map (R=G=B)
 * becomes a jet-coloured layer whose alpha follows importance; a colour image (the
 * service's pre-blended RGB overlay) is drawn as it is.
 */
function overlayLayer(bitmap) {
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const d = img.data;
  let grey = true;
  for (let i = 0; i < d.length && grey; i += 4) grey = d[i] === d[i + 1] && d[i] === d[i + 2];
  if (!grey) return { canvas, kind: "rgb" };
  for (let i = 0; i < d.length; i += 4) {
    const v = d[i] / 255;
    const [r, g, b] = jet(v);
    d[i] = r; d[i + 1] = g; d[i + 2] = b; d[i + 3] = Math.round(255 * Math.min(1, v * 1.5));
  }
  ctx.putImageData(img, 0, 0);
  return { canvas, kind: "map" };
}

/** Longest side of the lung layer: the mask is drawn scaled, so its outline stays visible. */
const LUNG_LAYER_MAX = 512;
const LUNG_RGB = [26, 230, 77]; // the colour of radiolens.segment.overlay.overlay_mask
const LUNG_TINT = 0.25; // alpha inside the lungs; the outline is opaque

/**
 * Turn a lung mask image (greyscale, lung > 127) into a layer: tinted lungs with an
 * opaque outline, at most LUNG_LAYER_MAX pixels on its longest side.
 */
export function lungLayer(bitmap) {
  const scale = Math.min(1, LUNG_LAYER_MAX / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0, w, h);
  const img = ctx.getImageData(0, 0, w, h);
  const d = img.data;
  const inside = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i += 1) inside[i] = d[4 * i] > 127 ? 1 : 0;
  const lung = (x, y) => x >= 0 && y >= 0 && x < w && y < h && inside[y * w + x] === 1;
  let area = 0;
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      const i = y * w + x;
      const edge = inside[i] && !(lung(x - 1, y) && lung(x + 1, y) && lung(x, y - 1) && lung(x, y + 1));
      area += inside[i];
      d[4 * i] = LUNG_RGB[0]; d[4 * i + 1] = LUNG_RGB[1]; d[4 * i + 2] = LUNG_RGB[2];
      d[4 * i + 3] = edge ? 255 : inside[i] ? Math.round(255 * LUNG_TINT) : 0;
    }
  }
  ctx.putImageData(img, 0, 0);
  return { canvas, area: area / (w * h) };
}

/** The jet colour map (as matplotlib's), v in 0..1 -> [r, g, b] 0..255. */
export function jet(v) {
  const c = (x) => Math.round(255 * Math.max(0, Math.min(1, x)));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

/**
 * Create the viewer in `element` (an empty block with a size).
 *
 * options.authorization: () => "Bearer <token>", called for every request.
 * options.onChange(state): after each render, with {generation, imageIndex, imageCount,
 *   window, level, zoom, invert, rows, columns}.
 * options.onError(message): an image could not be loaded.
 */
export async function createViewer(element, options) {
  await initOnce(options.authorization);
  const stage = document.createElement("div");
  stage.className = "viewer-stage";
  const lungs = document.createElement("canvas");
  lungs.className = "viewer-overlay viewer-lungs";
  lungs.setAttribute("aria-hidden", "true");
  lungs.hidden = true;
  const overlay = document.createElement("canvas");
  overlay.className = "viewer-overlay";
  overlay.setAttribute("aria-hidden", "true");
  element.append(stage, lungs, overlay);
  element.addEventListener("contextmenu", (ev) => ev.preventDefault());

  const engine = new RenderingEngine(ENGINE_ID);
  engine.enableElement({
    viewportId: VIEWPORT_ID,
    type: Enums.ViewportType.STACK,
    element: stage,
    defaultOptions: { background: [0, 0, 0] },
  });
  const viewport = engine.getViewport(VIEWPORT_ID);
  const tools = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
  tools.addTool(WindowLevelTool.toolName);
  tools.addTool(PanTool.toolName);
  tools.addTool(ZoomTool.toolName);
  const { MouseBindings, KeyboardBindings } = ToolEnums;
  tools.setToolActive(WindowLevelTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Primary }],
  });
  tools.setToolActive(PanTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Auxiliary },
      { mouseButton: MouseBindings.Primary, modifierKey: KeyboardBindings.Shift }],
  });
  tools.setToolActive(ZoomTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Secondary },
      { mouseButton: MouseBindings.Wheel }],
  });
  tools.addViewport(VIEWPORT_ID, ENGINE_ID);

  const state = {
    generation: 0,
    imageIds: [],
    defaults: new Map(), // imageId -> default voiRange
    heat: null, // { canvas, kind }
    heatImageIndex: 0,
    heatVisible: false,
    heatOpacity: 0.5,
    lungs: null, // { canvas, area }: the lung mask layer
    lungImageIndex: 0,
    lungsVisible: false,
    sops: [], // the SOP Instance UID of each image shown, as imageIds
    boxes: [], // [{x, y, w, h, sop, label, draft}] in image pixels (see setBoxes)
  };

  function current() {
    return state.imageIds.length ? viewport.getCornerstoneImage() : null;
  }

  function currentSop() {
    return state.imageIds.length ? state.sops[viewport.getCurrentImageIdIndex()] || null : null;
  }

  // Image pixel coordinates (x along the columns, y down the rows; 0 is the outer edge of
  // the first pixel, `columns` that of the last) <-> canvas coordinates (CSS pixels from
  // the viewport's top left), through the world coordinates of the shown image.
  function imageToCanvas(x, y) {
    return viewport.worldToCanvas(utilities.imageToWorldCoords(viewport.getCurrentImageId(), [x, y]));
  }
  function canvasToImage(x, y) {
    return utilities.worldToImageCoords(viewport.getCurrentImageId(), viewport.canvasToWorld([x, y]));
  }

  /** Map the unit square onto the shown image (as it is panned and zoomed). */
  function imageTransform(ctx, dpr, image) {
    const { columns, rows } = image;
    const p0 = imageToCanvas(0, 0);
    const px = imageToCanvas(columns, 0);
    const py = imageToCanvas(0, rows);
    ctx.setTransform(dpr * (px[0] - p0[0]), dpr * (px[1] - p0[1]),
      dpr * (py[0] - p0[0]), dpr * (py[1] - p0[1]), dpr * p0[0], dpr * p0[1]);
  }

  function drawHeat(ctx, dpr, image) {
    if (!state.heat || !state.heatVisible
        || viewport.getCurrentImageIdIndex() !== state.heatImageIndex) return;
    imageTransform(ctx, dpr, image);
    ctx.globalAlpha = state.heatOpacity;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(state.heat.canvas, 0, 0, 1, 1);
  }

  /** The lung layer on its own canvas; hidden (and marked so) when not drawn. */
  function drawLungs(dpr, w, h, image) {
    const show = Boolean(image && state.lungs && state.lungsVisible
      && viewport.getCurrentImageIdIndex() === state.lungImageIndex);
    lungs.hidden = !show;
    element.dataset.lungs = show ? "shown" : "hidden";
    if (!show) return;
    if (lungs.width !== w || lungs.height !== h) { lungs.width = w; lungs.height = h; }
    const ctx = lungs.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    imageTransform(ctx, dpr, image);
    ctx.globalAlpha = 1;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(state.lungs.canvas, 0, 0, 1, 1);
  }

  /** The boxes of the shown image: a dark halo under a yellow line, and a label. */
  function drawBoxes(ctx, dpr) {
    const sop = currentSop();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.globalAlpha = 1;
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    for (const b of state.boxes) {
      if (b.sop && sop && b.sop !== sop) continue;
      const corners = [imageToCanvas(b.x, b.y), imageToCanvas(b.x + b.w, b.y),
        imageToCanvas(b.x + b.w, b.y + b.h), imageToCanvas(b.x, b.y + b.h)];
      ctx.beginPath();
      corners.forEach(([cx, cy], i) => (i ? ctx.lineTo(cx, cy) : ctx.moveTo(cx, cy)));
      ctx.closePath();
      ctx.setLineDash([]);
      ctx.lineWidth = 4;
      ctx.strokeStyle = "rgba(0, 0, 0, 0.75)";
      ctx.stroke();
      ctx.setLineDash(b.draft ? [6, 4] : []);
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ffd400";
      ctx.stroke();
      if (!b.label) continue;
      const left = Math.min(...corners.map((c) => c[0]));
      const top = Math.min(...corners.map((c) => c[1]));
      const width = ctx.measureText(b.label).width + 8;
      const y = top >= 18 ? top - 2 : top + 18; // inside the box when there is no room above
      ctx.setLineDash([]);
      ctx.fillStyle = "rgba(0, 0, 0, 0.75)";
      ctx.fillRect(left, y - 16, width, 16);
      ctx.fillStyle = "#ffd400";
      ctx.fillText(b.label, left + 4, y - 1);
    }
  }

  function drawOverlay() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(overlay.clientWidth * dpr);
    const h = Math.round(overlay.clientHeight * dpr);
    if (overlay.width !== w || overlay.height !== h) { overlay.width = w; overlay.height = h; }
    const ctx = overlay.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const image = current();
    drawLungs(dpr, w, h, image);
    if (!image) return;
    drawHeat(ctx, dpr, image);
    if (state.boxes.length) drawBoxes(ctx, dpr);
  }

  function report() {
    const image = current();
    if (!image) return;
    const props = viewport.getProperties();
    const voi = props.voiRange || { lower: 0, upper: 0 };
    options.onChange?.({
      generation: state.generation,
      imageIndex: viewport.getCurrentImageIdIndex(),
      imageCount: state.imageIds.length,
      window: voi.upper - voi.lower,
      level: (voi.upper + voi.lower) / 2,
      zoom: viewport.getZoom(),
      invert: Boolean(props.invert),
      rows: image.rows,
      columns: image.columns,
    });
  }

  stage.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
    const id = viewport.getCurrentImageId();
    if (id && !state.defaults.has(id)) {
      const voi = viewport.getProperties().voiRange;
      if (voi) state.defaults.set(id, { ...voi });
    }
    drawOverlay();
    report();
  });
  stage.addEventListener(Enums.Events.CAMERA_MODIFIED, drawOverlay);
  // A frame that fails to load (HTTP error) rejects inside the stack viewport without
  // settling setStack: report it from the event, and keep the loader's rejected XHR
  // from surfacing as an unhandled rejection.
  eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, (evt) => {
    const detail = evt.detail || {};
    if (!state.imageIds.includes(detail.imageId)) return;
    const status = detail.error?.status;
    options.onError?.(status ? `HTTP ${status} for its pixel data` : "its pixel data did not load");
  });
  window.addEventListener("unhandledrejection", (ev) => {
    if (ev.reason instanceof XMLHttpRequest) ev.preventDefault();
  });
  new ResizeObserver(() => {
    engine.resize(true, true);
    drawOverlay();
  }).observe(element);

  async function metadataOf(root, inst) {
    const url = `${frameUrl(root, inst.study, inst.series, inst.sop)}/metadata`;
    const response = await fetch(url, { headers: { Authorization: options.authorization() } });
    if (!response.ok) throw new Error(`metadata of ${inst.sop}: HTTP ${response.status}`);
    const items = await response.json();
    return items[0];
  }

  const api = {
    PRESETS,

    /**
     * Show a study's images. instances: [{study, series, sop}]; non-image instances (SR)
     * are skipped. Resolves to the number of images shown, or null when a later call
     * replaced this one (its result must then be ignored).
     */
    async load(root, instances) {
      const generation = ++state.generation;
      element.classList.add("loading");
      state.heat = null;
      state.lungs = null;
      drawOverlay();
      const metas = await Promise.all(instances.map((i) => metadataOf(root, i).catch(() => null)));
      if (generation !== state.generation) return null;
      const ids = [];
      const sops = [];
      metas.forEach((meta, k) => {
        if (!meta || !meta[PIXEL_DATA] || !meta[ROWS]) return; // SR, KOS, ...: no pixels
        const inst = instances[k];
        const id = `wadors:${frameUrl(root, inst.study, inst.series, inst.sop)}/frames/1`;
        wadors.metaDataManager.add(id, meta);
        ids.push(id);
        sops.push(inst.sop);
      });
      state.imageIds = ids;
      state.sops = sops;
      if (!ids.length) return 0;
      try {
        await viewport.setStack(ids, 0);
      } catch (e) {
        if (generation === state.generation) {
          options.onError?.(`the image could not be loaded (${e?.message || e?.status || e})`);
        }
        return generation === state.generation ? -1 : null;
      }
      if (generation !== state.generation) return null;
      viewport.resetCamera();
      viewport.render();
      element.classList.remove("loading");
      return ids.length;
    },

    /** Hide the current image (no study, or one without images). */
    clear() {
      state.generation += 1;
      state.imageIds = [];
      state.sops = [];
      state.heat = null;
      state.lungs = null;
      state.boxes = [];
      element.classList.add("loading");
      drawOverlay();
    },

    get generation() { return state.generation; },

    async show(index) {
      const n = state.imageIds.length;
      if (!n) return;
      await viewport.setImageIdIndex(((index % n) + n) % n);
      viewport.render();
    },
    step(delta) { return api.show(viewport.getCurrentImageIdIndex() + delta); },

    preset(name) {
      const image = current();
      if (!image || !(name in PRESETS)) return;
      let voiRange = state.defaults.get(viewport.getCurrentImageId());
      const range = PRESETS[name].range;
      if (range) {
        const lo = image.minPixelValue;
        const span = Math.max(1, image.maxPixelValue - lo);
        voiRange = { lower: lo + range[0] * span, upper: lo + range[1] * span };
      }
      if (voiRange) viewport.setProperties({ voiRange });
      viewport.render();
    },
    invert() {
      if (!current()) return;
      viewport.setProperties({ invert: !viewport.getProperties().invert });
      viewport.render();
    },
    zoom(factor) {
      if (!current()) return;
      viewport.setZoom(viewport.getZoom() * factor);
      viewport.render();
    },
    fit() {
      if (!current()) return;
      viewport.resetCamera();
      viewport.render();
    },
    /** Zoom so that one image pixel takes one screen (CSS) pixel. */
    actualSize() {
      const image = current();
      if (!image) return;
      const id = viewport.getCurrentImageId();
      const a = viewport.worldToCanvas(utilities.imageToWorldCoords(id, [0, 0]));
      const b = viewport.worldToCanvas(utilities.imageToWorldCoords(id, [image.columns, 0]));
      const shown = Math.hypot(b[0] - a[0], b[1] - a[1]);
      if (shown > 0) viewport.setZoom(viewport.getZoom() * (image.columns / shown));
      viewport.render();
    },
    reset() {
      if (!current()) return;
      viewport.resetCamera();
      viewport.resetProperties();
      const voiRange = state.defaults.get(viewport.getCurrentImageId());
      if (voiRange) viewport.setProperties({ voiRange });
      viewport.render();
    },

    /**
     * The heatmap (an ImageBitmap, or null for none), drawn over the image whose SOP
     * Instance UID is `sop` (the study's first image when not given or not found).
     */
    setHeatmap(bitmap, sop = null) {
      state.heat = bitmap ? overlayLayer(bitmap) : null;
      const key = sop ? `/instances/${encodeURIComponent(sop)}/` : null;
      state.heatImageIndex = Math.max(0, key ? state.imageIds.findIndex((id) => id.includes(key)) : 0);
      drawOverlay();
      return state.heat ? state.heat.kind : null;
    },
    setHeatmapVisible(visible) { state.heatVisible = Boolean(visible); drawOverlay(); },

    /**
     * The lung mask (an ImageBitmap of lungs.png, or null for none), drawn over the image
     * whose SOP Instance UID is `sop` (the study's first image when not given or not
     * found). Returns the share of the image the lungs cover, or null.
     */
    setLungs(bitmap, sop = null) {
      state.lungs = bitmap ? lungLayer(bitmap) : null;
      const key = sop ? `/instances/${encodeURIComponent(sop)}/` : null;
      state.lungImageIndex = Math.max(0, key ? state.imageIds.findIndex((id) => id.includes(key)) : 0);
      drawOverlay();
      return state.lungs ? state.lungs.area : null;
    },
    setLungsVisible(visible) { state.lungsVisible = Boolean(visible); drawOverlay(); },

    // -- boxes around findings, in image pixel coordinates ----------------------------

    /** The shown image: {sop, index, columns, rows}, or null when none is shown. */
    shownImage() {
      const image = current();
      if (!image) return null;
      return { sop: currentSop(), index: viewport.getCurrentImageIdIndex(),
        columns: image.columns, rows: image.rows };
    },
    /**
     * A point on the page (clientX, clientY, as in a mouse event) -> image pixel
     * coordinates of the shown image: {x, y, sop, columns, rows, inside}; null when no
     * image is shown. x and y may lie outside [0, columns] x [0, rows] (inside: false).
     */
    clientToImage(clientX, clientY) {
      const image = current();
      if (!image) return null;
      const rect = viewport.canvas.getBoundingClientRect();
      const [x, y] = canvasToImage(clientX - rect.left, clientY - rect.top);
      return { x, y, sop: currentSop(), columns: image.columns, rows: image.rows,
        inside: x >= 0 && y >= 0 && x <= image.columns && y <= image.rows };
    },
    /** Image pixel coordinates of the shown image -> a point on the page [clientX, clientY]. */
    imageToClient(x, y) {
      if (!current()) return null;
      const rect = viewport.canvas.getBoundingClientRect();
      const [cx, cy] = imageToCanvas(x, y);
      return [rect.left + cx, rect.top + cy];
    },
    /**
     * The boxes to draw over the images: [{x, y, w, h, sop, label, draft}] in image pixels
     * (x, y the top left corner); each is drawn on the image whose SOP Instance UID is
     * `sop` (on every image when sop is empty); `draft` draws it dashed (being drawn).
     */
    setBoxes(boxes) {
      state.boxes = (boxes || []).filter((b) => [b.x, b.y, b.w, b.h].every(Number.isFinite));
      drawOverlay();
    },
    /**
     * The box tool on or off: while on, a plain left drag no longer changes window and
     * level (the page draws the box); shift-drag still pans, right-drag and wheel zoom.
     */
    setBoxMode(on) {
      if (on) tools.setToolPassive(WindowLevelTool.toolName);
      else tools.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
      element.classList.toggle("drawing", Boolean(on));
    },
    setHeatmapOpacity(opacity) {
      state.heatOpacity = Math.max(0, Math.min(1, Number(opacity)));
      drawOverlay();
    },
  };
  return api;
}
