// latent-atlas viewer: one self-contained page, no external code.
// Every string from the run (class names, file names, run names) reaches the page through
// textContent or a property, never through HTML parsing.
(function () {
  "use strict";
  const T0 = performance.now();
  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const fmtInt = (n) => Number(n).toLocaleString("en-US");
  const rgbCss = (c) => `rgb(${c[0] | 0}, ${c[1] | 0}, ${c[2] | 0})`;
  const pack = (c) => ((255 << 24) | ((c[2] & 255) << 16) | ((c[1] & 255) << 8) | (c[0] & 255)) >>> 0;

  // ---- data -----------------------------------------------------------------------------------
  const TYPES = {
    uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, int32: Int32Array,
    float32: Float32Array,
  };
  const fromBase64 = typeof Uint8Array.fromBase64 === "function"
    ? (b64) => Uint8Array.fromBase64(b64) // (native, several times faster than atob)
    : (b64) => {
      const bin = atob(b64), n = bin.length, bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = bin.charCodeAt(i);
      return bytes;
    };
  function decode(a) {
    if (!a) return null;
    const bytes = fromBase64(a.b64);
    return new TYPES[a.dtype](bytes.buffer, bytes.byteOffset, a.length);
  }

  const D = JSON.parse($("la-data").textContent);
  const T_PARSED = performance.now();
  const N = D.n;
  const names = D.classNames.map(String);
  const classRGB = D.colors;
  const label = decode(D.label);
  const predicted = decode(D.predicted);
  let confidence = null;
  if (D.confidence) {
    const q = decode(D.confidence);
    confidence = new Float32Array(N);
    for (let i = 0; i < N; i++) confidence[i] = q[i] / 65535;
  }
  const rowIndex = decode(D.index);
  const rowOf = (i) => (rowIndex ? rowIndex[i] : i);
  const sampleIdx = decode(D.sample.indices);
  const S = D.sample.size;
  const slotOf = new Int32Array(N).fill(-1);
  if (sampleIdx) for (let s = 0; s < S; s++) slotOf[sampleIdx[s]] = s;
  else for (let i = 0; i < S; i++) slotOf[i] = i;
  const pointOfSlot = (s) => (sampleIdx ? sampleIdx[s] : s);
  // thumbnails, neighbour lists and atlases come from the block after this script, read once
  // the document is parsed (loadExtra), so that the first render never waits for them
  let NB = null, TH = null, ATLASES = [], sheets = [], extraLoaded = false;
  let thumbsDone = null;
  const thumbsReady = new Promise((resolve) => { thumbsDone = resolve; });
  const methods = D.methods.map((m) => ({ name: String(m.name), bounds: m.bounds, raw: m }));

  function ensureMethod(m) {
    if (m.xs) return m;
    const [x0, x1, y0, y1] = m.bounds;
    const qx = decode(m.raw.x), qy = decode(m.raw.y);
    const sx = (x1 - x0) / 65535, sy = (y1 - y0) / 65535;
    m.xs = new Float32Array(N);
    m.ys = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      m.xs[i] = x0 + qx[i] * sx;
      m.ys[i] = y0 + qy[i] * sy;
    }
    m.grid = null; // (built on the first hover or click: gridOf)
    m.raw = null;
    return m;
  }

  // A uniform grid over the map's bounds: hover and click look only at nearby cells.
  function buildGrid(m) {
    const [x0, x1, y0, y1] = m.bounds;
    const G = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(N / 4))));
    const cw = (x1 - x0 || 1) / G, ch = (y1 - y0 || 1) / G;
    const cellOf = new Int32Array(N);
    const start = new Int32Array(G * G + 1);
    for (let i = 0; i < N; i++) {
      const cx = Math.min(G - 1, Math.max(0, Math.floor((m.xs[i] - x0) / cw)));
      const cy = Math.min(G - 1, Math.max(0, Math.floor((m.ys[i] - y0) / ch)));
      const c = cy * G + cx;
      cellOf[i] = c;
      start[c + 1]++;
    }
    for (let c = 0; c < G * G; c++) start[c + 1] += start[c];
    const fill = start.slice(0, G * G);
    const items = new Int32Array(N);
    for (let i = 0; i < N; i++) items[fill[cellOf[i]]++] = i;
    return { G, x0, y0, cw, ch, start, items };
  }

  // ---- colour modes ---------------------------------------------------------------------------
  const VIRIDIS = [
    [68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140],
    [40, 174, 128], [94, 201, 98], [173, 220, 48], [253, 231, 37],
  ];
  function viridis(t) {
    const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
    const a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
  }
  const CONF_BINS = 5;
  const MODES = {};
  MODES.label = {
    cats: names.map((name, c) => ({ name, rgb: classRGB[c] })),
    catOf: label,
  };
  if (predicted) {
    MODES.predicted = { cats: MODES.label.cats, catOf: predicted };
    const wrong = new Uint8Array(N);
    for (let i = 0; i < N; i++) wrong[i] = predicted[i] !== label[i] ? 1 : 0;
    MODES.correct = {
      cats: [{ name: "correct", rgb: [150, 165, 182] }, { name: "wrong", rgb: [214, 39, 40] }],
      catOf: wrong,
    };
  }
  if (confidence) {
    const bins = new Uint8Array(N);
    for (let i = 0; i < N; i++) bins[i] = Math.min(CONF_BINS - 1, Math.floor(confidence[i] * CONF_BINS));
    const cats = [];
    for (let b = 0; b < CONF_BINS; b++) {
      const lo = b / CONF_BINS, hi = (b + 1) / CONF_BINS;
      cats.push({ name: `confidence ${lo.toFixed(1)}–${hi.toFixed(1)}`, rgb: viridis((lo + hi) / 2) });
    }
    MODES.confidence = { cats, catOf: bins, value: confidence };
  }
  for (const mode of Object.values(MODES)) countCats(mode);
  function countCats(mode) {
    mode.counts = new Int32Array(mode.cats.length);
    for (let i = 0; i < N; i++) mode.counts[mode.catOf[i]]++;
  }

  // where each map can be trusted (latent_atlas.trust): modes of their own for every map
  const TR = D.trust;
  const trustSlots = TR && TR.points ? decode(TR.points) : null;
  const READING_RGB = [[160, 172, 188], [215, 48, 39], [253, 141, 60], [118, 42, 131]];
  const UNSCORED = { name: "not scored", rgb: [226, 229, 234] };
  const perMap = {};
  if (TR) {
    MODES.kept = { perMap: true, what: "neighbourhood kept" };
    MODES.reading = { perMap: true, what: "confusion reading" };
  }
  function trustOf(kind, mi) {
    const key = `${kind}:${mi}`;
    if (perMap[key]) return perMap[key];
    const t = TR.maps[methods[mi].name];
    const raw = t ? decode(kind === "kept" ? t.kept : t.reading) : new Uint8Array(0);
    const pointOf = (s) => (trustSlots ? trustSlots[s] : s);
    let mode;
    if (kind === "reading") {
      const cats = TR.readings.map((name, c) => ({ name, rgb: READING_RGB[c % 4], about: TR.about[c] }));
      const catOf = new Uint8Array(N).fill(cats.length);
      for (let s = 0; s < raw.length; s++) catOf[pointOf(s)] = raw[s];
      mode = { cats: [...cats, UNSCORED], catOf, scored: raw.length };
    } else {
      // neighbours kept, of k: one colour per count as in trust.png, the top at the 98th percentile
      const K = TR.k, shared = new Uint8Array(raw.length);
      for (let s = 0; s < raw.length; s++) { const j = raw[s] / 255; shared[s] = Math.round((2 * K * j) / (1 + j)); }
      const sorted = Uint8Array.from(shared).sort();
      const top = Math.max(1, raw.length ? sorted[Math.floor(0.98 * (raw.length - 1))] : K);
      const value = new Float32Array(N).fill(NaN), catOf = new Uint8Array(N).fill(top + 1);
      const kept = new Uint8Array(N);
      for (let s = 0; s < raw.length; s++) {
        const i = pointOf(s), c = Math.min(top, shared[s]);
        value[i] = c / top; catOf[i] = c; kept[i] = shared[s];
      }
      const cats = [];
      for (let c = 0; c <= top; c++) {
        cats.push({ name: `${c === top && top < K ? "≥ " : ""}${c} of ${K} kept`, rgb: viridis(c / top) });
      }
      mode = { cats: [...cats, UNSCORED], catOf, value, kept, scored: raw.length };
    }
    countCats(mode);
    perMap[key] = mode;
    return mode;
  }
  const modeNow = () => (MODES[st.mode].perMap ? trustOf(st.mode, st.m) : MODES[st.mode]);

  // drawing order: a seeded shuffle, so that no class always lies on top
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const baseOrder = new Uint32Array(N);
  for (let i = 0; i < N; i++) baseOrder[i] = i;
  {
    const rand = mulberry32(D.sample.seed + 1);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = baseOrder[i]; baseOrder[i] = baseOrder[j]; baseOrder[j] = t;
    }
  }
  const orders = {};
  function orderFor(name) {
    const key = MODES[name].perMap ? `${name}:${st.m}` : name;
    if (orders[key]) return orders[key];
    let order = baseOrder;
    const mode = modeNow();
    if (name === "correct") order = byRank(mode.catOf, [0, 1]); // wrong on top
    else if (name === "reading") order = byRank(mode.catOf, [mode.cats.length - 1, 0, 1, 2, 3]); // rare on top
    else if (mode.value) { // least on top, the unscored beneath
      const v = mode.value, low = (i) => (Number.isNaN(v[i]) ? 2 : v[i]);
      order = Uint32Array.from(baseOrder).sort((a, b) => low(b) - low(a));
    }
    orders[key] = order;
    return order;
  }
  function byRank(catOf, ranks) {
    const order = new Uint32Array(N);
    let p = 0;
    for (const want of ranks) for (let j = 0; j < N; j++) if (catOf[baseOrder[j]] === want) order[p++] = baseOrder[j];
    return order;
  }

  // ---- state ----------------------------------------------------------------------------------
  const st = {
    m: 0, mode: "label", tool: "pan",
    size: N > 500000 ? 1 : N > 20000 ? 2 : N > 2000 ? 3 : 4, opacity: "auto", images: true,
    hidden: {}, vis: new Uint8Array(N).fill(1), nVisible: N,
    sel: null, selMask: null, picked: -1, hover: -1,
    view: { k: 1, ox: 0, oy: 0 }, fitK: 1, W: 0, H: 0, dpr: 1, fitted: false,
    version: 0, // bumped when colours, visibility or the selection change
  };
  for (const key of Object.keys(MODES)) st.hidden[key] = new Set();
  const colors32 = new Uint32Array(N), dim32 = new Uint32Array(N);
  const BG = [255, 255, 255], BG32 = pack(BG);

  const dimmed = (c) => [c[0] + (BG[0] - c[0]) * 0.75, c[1] + (BG[1] - c[1]) * 0.75, c[2] + (BG[2] - c[2]) * 0.75];
  const RAMP = 256; // continuous values: viridis in 256 steps
  function computeColors() {
    st.version++;
    const mode = modeNow(), v = mode.value, catOf = mode.catOf;
    const cats = Uint32Array.from(mode.cats, (c) => pack(c.rgb));
    const catsDim = Uint32Array.from(mode.cats, (c) => pack(dimmed(c.rgb)));
    const ramp = new Uint32Array(RAMP), rampDim = new Uint32Array(RAMP);
    for (let r = 0; r < RAMP; r++) {
      const c = viridis(r / (RAMP - 1));
      ramp[r] = pack(c); rampDim[r] = pack(dimmed(c));
    }
    for (let i = 0; i < N; i++) {
      if (v && !Number.isNaN(v[i])) {
        const r = Math.max(0, Math.min(RAMP - 1, Math.round(v[i] * (RAMP - 1))));
        colors32[i] = ramp[r]; dim32[i] = rampDim[r];
      } else { colors32[i] = cats[catOf[i]]; dim32[i] = catsDim[catOf[i]]; }
    }
  }
  function computeVisibility() {
    st.version++;
    const mode = modeNow(), hidden = st.hidden[st.mode], catOf = mode.catOf;
    const shown = Uint8Array.from(mode.cats, (_, c) => (hidden.has(c) ? 0 : 1));
    let n = 0;
    for (let i = 0; i < N; i++) {
      const v = shown[catOf[i]];
      st.vis[i] = v;
      n += v;
    }
    st.nVisible = n;
    if (st.hover >= 0 && !st.vis[st.hover]) setHover(-1);
  }

  // ---- canvases and view ----------------------------------------------------------------------
  const plot = $("plot");
  const mapCanvas = $("map-canvas"), overlay = $("overlay-canvas");
  const mapCtx = mapCanvas.getContext("2d");
  const ovCtx = overlay.getContext("2d");
  let imgData = null, buf = null, stamp = null;

  function resize() {
    const r = plot.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(r.width)), H = Math.max(1, Math.round(r.height));
    if (W === st.W && H === st.H && dpr === st.dpr) return false;
    if (st.fitted) { // keep the centre where it was
      st.view.ox += (W - st.W) / 2;
      st.view.oy += (H - st.H) / 2;
    }
    st.W = W; st.H = H; st.dpr = dpr;
    for (const c of [mapCanvas, overlay]) {
      c.width = Math.round(W * dpr);
      c.height = Math.round(H * dpr);
    }
    if (!st.fitted && r.width > 0) fit();
    return true;
  }
  function fit() {
    const [x0, x1, y0, y1] = methods[st.m].bounds;
    const w = x1 - x0 || 1, h = y1 - y0 || 1;
    const k = Math.min(st.W / w, st.H / h) * 0.92;
    st.view.k = k;
    st.fitK = k;
    st.view.ox = st.W / 2 - ((x0 + x1) / 2) * k;
    st.view.oy = st.H / 2 + ((y0 + y1) / 2) * k;
    st.fitted = true;
  }
  const toScreenX = (x) => st.view.ox + x * st.view.k;
  const toScreenY = (y) => st.view.oy - y * st.view.k;
  const toDataX = (sx) => (sx - st.view.ox) / st.view.k;
  const toDataY = (sy) => (st.view.oy - sy) / st.view.k;
  const radiusCss = () => st.size - 1;

  const DENSITY_FROM = 30000; // "auto" opacity: by density from this many visible points
  // images as points: from this zoom (× the fitted view), at most this many, covering at most
  const IMAGES_FROM_ZOOM = 1.5, MOST_IMAGES = 4000, IMAGE_COVER = 0.7;
  const last = { density: 0, images: 0 };
  let gathered = null; // the points to draw, in order (LARender.gather), for st.version
  function renderBase() {
    const t0 = performance.now();
    const m = ensureMethod(methods[st.m]);
    const W = mapCanvas.width, H = mapCanvas.height;
    if (!imgData || imgData.width !== W || imgData.height !== H) {
      imgData = mapCtx.createImageData(W, H);
      buf = new Uint32Array(imgData.data.buffer);
    }
    buf.fill(BG32);
    const R = Math.round(radiusCss() * st.dpr);
    if (!stamp || stamp.W !== W || stamp.R !== R) stamp = LARender.makeStamp(W, R);
    const P = { W, H, buf, k: st.view.k * st.dpr, ox: st.view.ox * st.dpr, oy: st.view.oy * st.dpr, stamp };
    const key = `${st.m}|${st.mode}|${st.version}`;
    if (!gathered || gathered.key !== key) {
      gathered = LARender.gather(orderFor(st.mode), m.xs, m.ys, st.vis, st.selMask, colors32, dim32);
      gathered.key = key;
    }
    const byDensity = st.opacity === "density" || (st.opacity === "auto" && st.nVisible >= DENSITY_FROM);
    last.density = byDensity ? LARender.density(P, gathered, BG) : (LARender.paint(P, gathered, null), 0);
    mapCtx.putImageData(imgData, 0, 0);
    const zoomed = st.view.k >= st.fitK * IMAGES_FROM_ZOOM;
    last.images = st.images && TH && zoomed ? LARender.images(mapCtx, {
      slots: S, pointOf: pointOfSlot, xs: m.xs, ys: m.ys, vis: st.vis, k: P.k, ox: P.ox, oy: P.oy,
      W, H, side: Math.round(Math.max(TH.width, 24) * st.dpr), TH, sheets, colors: colors32, dpr: st.dpr,
    }, MOST_IMAGES, IMAGE_COVER) : 0;
    updateStatus();
    record(renderTimes, performance.now() - t0);
  }

  function renderOverlay() {
    const ctx = ovCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    ctx.setTransform(st.dpr, 0, 0, st.dpr, 0, 0);
    const m = ensureMethod(methods[st.m]);
    const r = radiusCss() + 3.5;
    const ring = (i, color, width, rad) => {
      ctx.beginPath();
      ctx.arc(toScreenX(m.xs[i]), toScreenY(m.ys[i]), rad, 0, 2 * Math.PI);
      ctx.lineWidth = width;
      ctx.strokeStyle = color;
      ctx.stroke();
    };
    if (st.picked >= 0) {
      const nbs = neighboursOf(st.picked) || [];
      const px = toScreenX(m.xs[st.picked]), py = toScreenY(m.ys[st.picked]);
      ctx.lineWidth = 1;
      ctx.strokeStyle = "rgba(30, 35, 45, 0.45)";
      ctx.beginPath();
      for (const j of nbs) { ctx.moveTo(px, py); ctx.lineTo(toScreenX(m.xs[j]), toScreenY(m.ys[j])); }
      ctx.stroke();
      for (const j of nbs) { ring(j, "#fff", 4, r); ring(j, "#111", 1.8, r); }
      ring(st.picked, "#fff", 5, r + 2);
      ring(st.picked, "#2f6fdf", 2.5, r + 2);
    }
    if (st.hover >= 0) { ring(st.hover, "#fff", 4, r + 1); ring(st.hover, "#111", 1.5, r + 1); }
    if (drag && drag.kind === "box" && drag.moved) {
      const x = Math.min(drag.x0, drag.x), y = Math.min(drag.y0, drag.y);
      ctx.fillStyle = "rgba(47, 111, 223, 0.08)";
      ctx.fillRect(x, y, Math.abs(drag.x - drag.x0), Math.abs(drag.y - drag.y0));
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#2f6fdf";
      ctx.lineWidth = 1.2;
      ctx.strokeRect(x, y, Math.abs(drag.x - drag.x0), Math.abs(drag.y - drag.y0));
      ctx.setLineDash([]);
    }
    if (drag && drag.kind === "lasso" && drag.path.length > 1) {
      ctx.beginPath();
      ctx.moveTo(drag.path[0][0], drag.path[0][1]);
      for (const p of drag.path) ctx.lineTo(p[0], p[1]);
      ctx.closePath();
      ctx.fillStyle = "rgba(47, 111, 223, 0.08)";
      ctx.fill();
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#2f6fdf";
      ctx.lineWidth = 1.2;
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  let raf = 0, needBase = false, hoverAt = null;
  // milliseconds: event to tooltip and overlay updated; full redraws of the points
  const hoverTimes = [], renderTimes = [];
  const record = (list, ms) => { list.push(ms); if (list.length > 500) list.shift(); };
  function schedule(base) {
    if (base) needBase = true;
    if (!raf) raf = requestAnimationFrame(frame);
  }
  function frame() {
    raf = 0;
    if (needBase) { needBase = false; renderBase(); }
    const h = hoverAt;
    hoverAt = null;
    if (h) doHover(h);
    renderOverlay();
    if (h) record(hoverTimes, performance.now() - h.t);
  }

  // ---- hit testing ----------------------------------------------------------------------------
  function nearest(sx, sy, maxPx) {
    const m = ensureMethod(methods[st.m]), g = m.grid || (m.grid = buildGrid(m));
    const X = toDataX(sx), Y = toDataY(sy), Rd = maxPx / st.view.k;
    const cx0 = Math.max(0, Math.floor((X - Rd - g.x0) / g.cw));
    const cx1 = Math.min(g.G - 1, Math.floor((X + Rd - g.x0) / g.cw));
    const cy0 = Math.max(0, Math.floor((Y - Rd - g.y0) / g.ch));
    const cy1 = Math.min(g.G - 1, Math.floor((Y + Rd - g.y0) / g.ch));
    let best = -1, bestD = Rd * Rd;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * g.G + cx;
        for (let p = g.start[c]; p < g.start[c + 1]; p++) {
          const i = g.items[p];
          if (!st.vis[i]) continue;
          const ddx = m.xs[i] - X, ddy = m.ys[i] - Y, d = ddx * ddx + ddy * ddy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
  const hitRadius = () => radiusCss() + 6;

  // ---- thumbnails -----------------------------------------------------------------------------
  function loadExtra() {
    const X = JSON.parse($("la-extra").textContent);
    NB = X.neighbours ? { k: X.neighbours.k, slots: decode(X.neighbours.slots) } : null;
    TH = X.thumbs;
    ATLASES = X.atlases || [];
    sheets = TH ? TH.urls.map((url) => {
      const img = new Image();
      img.decoding = "async";
      if (typeof url === "string" && /^data:image\/(webp|png);base64,/.test(url)) img.src = url;
      return img;
    }) : [];
    Promise.all(sheets.map((img) => img.decode().catch(() => null))).then(() => thumbsDone());
    extraLoaded = true;
    setupAtlases();
    imagesBox.disabled = !TH;
    updateSelectionPanel();
    updateStatus();
    document.body.dataset.ready = "1";
  }
  function drawThumb(canvas, i) {
    const s = slotOf[i];
    if (!TH || s < 0) return false;
    if (canvas.width !== TH.width || canvas.height !== TH.height) {
      canvas.width = TH.width;
      canvas.height = TH.height;
    }
    const sheet = sheets[Math.floor(s / TH.perSheet)], r = s % TH.perSheet;
    const sx = (r % TH.columns) * TH.cellWidth, sy = Math.floor(r / TH.columns) * TH.cellHeight;
    const paint = () => {
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(sheet, sx, sy, TH.width, TH.height, 0, 0, TH.width, TH.height);
    };
    if (sheet.complete && sheet.naturalWidth) paint();
    else sheet.decode().then(paint, () => null);
    return true;
  }
  function thumbCell(i, caption) {
    const cell = el("div", "thumb-cell");
    const c = el("canvas", "thumb");
    if (!drawThumb(c, i)) { c.width = 1; c.height = 1; }
    if (predicted && predicted[i] !== label[i]) c.classList.add("wrong");
    c.title = describe(i);
    c.addEventListener("click", () => pick(i));
    // ring the point on the map while the pointer is on its thumbnail (no tooltip)
    c.addEventListener("mouseenter", () => { setHover(-1); st.hover = i; schedule(false); });
    c.addEventListener("mouseleave", () => { st.hover = -1; schedule(false); });
    cell.append(c);
    if (caption !== undefined) cell.append(el("span", null, caption));
    return { cell, canvas: c };
  }
  function describe(i) {
    let t = `#${rowOf(i)} · ${names[label[i]]}`;
    if (predicted) t += ` · predicted ${names[predicted[i]]}`;
    if (confidence) t += ` (${confidence[i].toFixed(3)})`;
    return t;
  }

  // ---- tooltip --------------------------------------------------------------------------------
  const tip = $("tooltip"), tipThumb = $("tooltip-thumb");
  function setHover(i) {
    if (i === st.hover && (i < 0 || !tip.hidden)) return;
    st.hover = i;
    if (i < 0) { tip.hidden = true; return; }
    $("tooltip-index").textContent = `#${rowOf(i)}`;
    $("tooltip-label").textContent = `true: ${names[label[i]]}`;
    const pr = $("tooltip-pred");
    if (predicted) {
      const ok = predicted[i] === label[i];
      pr.textContent = `predicted: ${names[predicted[i]]} ${ok ? "✓" : "✗"}`;
      pr.className = ok ? "" : "tt-wrong";
    } else pr.textContent = "";
    $("tooltip-conf").textContent = confidence ? `confidence: ${confidence[i].toFixed(3)}` : "";
    $("tooltip-trust").textContent = trustText(i);
    const has = drawThumb(tipThumb, i);
    tipThumb.hidden = !has;
    $("tooltip-note").textContent = !TH ? "" : has ? "" : "no thumbnail (outside the sample)";
    tip.hidden = false;
  }
  function trustText(i) {
    if (!TR) return "";
    const r = trustOf("reading", st.m), kept = trustOf("kept", st.m);
    if (r.catOf[i] >= TR.readings.length) return `${methods[st.m].name}: not scored (outside the sample)`;
    return `${methods[st.m].name}: ${r.cats[r.catOf[i]].name} · ${kept.kept[i]} of ${TR.k} neighbours kept`;
  }
  function placeTip(clientX, clientY) {
    if (tip.hidden) return;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let x = clientX + 16, y = clientY + 16;
    if (x + w > window.innerWidth - 4) x = clientX - w - 16;
    if (y + h > window.innerHeight - 4) y = clientY - h - 16;
    tip.style.left = `${Math.max(4, x)}px`;
    tip.style.top = `${Math.max(4, y)}px`;
  }
  function doHover(h) {
    setHover(nearest(h.x, h.y, hitRadius()));
    placeTip(h.cx, h.cy);
  }

  // ---- pointer interaction --------------------------------------------------------------------
  let drag = null;
  const local = (e) => {
    const r = overlay.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  overlay.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    const [x, y] = local(e);
    const kind = e.shiftKey && st.tool === "pan" ? "box" : st.tool;
    drag = { kind, x0: x, y0: y, x, y, moved: false, path: [[x, y]], ox: st.view.ox, oy: st.view.oy };
    overlay.setPointerCapture(e.pointerId);
    setHover(-1);
  });
  overlay.addEventListener("pointermove", (e) => {
    const [x, y] = local(e);
    if (!drag) {
      hoverAt = { x, y, cx: e.clientX, cy: e.clientY, t: e.timeStamp };
      schedule(false);
      return;
    }
    drag.x = x; drag.y = y;
    if (Math.hypot(x - drag.x0, y - drag.y0) > 3) drag.moved = true;
    if (!drag.moved) return;
    if (drag.kind === "pan") {
      plot.classList.add("dragging");
      st.view.ox = drag.ox + (x - drag.x0);
      st.view.oy = drag.oy + (y - drag.y0);
      schedule(true);
    } else {
      if (drag.kind === "lasso") {
        const last = drag.path[drag.path.length - 1];
        if (Math.hypot(x - last[0], y - last[1]) > 2) drag.path.push([x, y]);
      }
      schedule(false);
    }
  });
  const endDrag = (e, cancelled) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    plot.classList.remove("dragging");
    if (cancelled) { schedule(false); return; }
    if (!d.moved) {
      pick(nearest(d.x0, d.y0, hitRadius()));
    } else if (d.kind === "box") {
      const xa = toDataX(Math.min(d.x0, d.x)), xb = toDataX(Math.max(d.x0, d.x));
      const ya = toDataY(Math.max(d.y0, d.y)), yb = toDataY(Math.min(d.y0, d.y));
      selectWhere((x, y) => x >= xa && x <= xb && y >= ya && y <= yb, [xa, xb, ya, yb]);
    } else if (d.kind === "lasso" && d.path.length > 2) {
      const poly = d.path.map((p) => [toDataX(p[0]), toDataY(p[1])]);
      const xsP = poly.map((p) => p[0]), ysP = poly.map((p) => p[1]);
      const bb = [Math.min(...xsP), Math.max(...xsP), Math.min(...ysP), Math.max(...ysP)];
      selectWhere((x, y) => inPolygon(poly, x, y), bb);
    }
    schedule(false);
  };
  overlay.addEventListener("pointerup", (e) => endDrag(e, false));
  overlay.addEventListener("pointercancel", (e) => endDrag(e, true));
  overlay.addEventListener("pointerleave", () => {
    if (!drag) { hoverAt = null; setHover(-1); schedule(false); }
  });
  overlay.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [x, y] = local(e);
    const f = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
    const X = toDataX(x), Y = toDataY(y);
    st.view.k = Math.min(st.fitK * 5000, Math.max(st.fitK / 20, st.view.k * f));
    st.view.ox = x - X * st.view.k;
    st.view.oy = y + Y * st.view.k;
    setHover(-1);
    schedule(true);
  }, { passive: false });

  function inPolygon(poly, x, y) {
    let inside = false;
    for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
      const [xa, ya] = poly[a], [xb, yb] = poly[b];
      if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
    }
    return inside;
  }

  // ---- selection ------------------------------------------------------------------------------
  const MAX_GRID = 300;
  function selectWhere(test, bb) {
    const m = ensureMethod(methods[st.m]);
    const out = [];
    for (let i = 0; i < N; i++) {
      if (!st.vis[i]) continue;
      const x = m.xs[i], y = m.ys[i];
      if (x < bb[0] || x > bb[1] || y < bb[2] || y > bb[3]) continue;
      if (test(x, y)) out.push(i);
    }
    setSelection(out);
  }
  function setSelection(list) {
    if (!list || !list.length) {
      st.sel = null; st.selMask = null;
    } else {
      st.sel = Int32Array.from(list);
      st.selMask = new Uint8Array(N);
      for (const i of st.sel) st.selMask[i] = 1;
    }
    st.version++;
    updateSelectionPanel();
    schedule(true);
  }
  function updateSelectionPanel() {
    const sel = st.sel, counts = $("selection-counts"), grid = $("selection-grid");
    counts.replaceChildren();
    grid.replaceChildren();
    $("selection-clear").hidden = !sel;
    $("selection-hint").hidden = !!sel;
    if (!sel) {
      $("selection-title").textContent = "Selection";
      $("selection-note").textContent = "";
      return;
    }
    $("selection-title").textContent = `Selection · ${fmtInt(sel.length)} points`;
    const per = new Int32Array(names.length);
    let wrong = 0;
    for (const i of sel) {
      per[label[i]]++;
      if (predicted && predicted[i] !== label[i]) wrong++;
    }
    const max = Math.max(...per);
    const byCount = [...per.keys()].filter((c) => per[c] > 0).sort((a, b) => per[b] - per[a]);
    for (const c of byCount) {
      const tr = el("tr");
      tr.dataset.cls = String(c);
      const sw = el("span", "swatch");
      sw.style.background = rgbCss(classRGB[c]);
      const td0 = el("td"); td0.append(sw);
      const bar = el("div", "barfill");
      bar.style.width = `${(100 * per[c]) / max}%`;
      bar.style.background = rgbCss(classRGB[c]);
      const tdBar = el("td", "bar"); tdBar.append(bar);
      tr.append(td0, el("td", "name", names[c]), el("td", "num", fmtInt(per[c])), tdBar);
      counts.append(tr);
    }
    const withThumb = TH ? sel.filter((i) => slotOf[i] >= 0) : new Int32Array(0);
    const shown = withThumb.slice(0, MAX_GRID);
    const notes = [];
    if (predicted) notes.push(`${fmtInt(wrong)} misclassified (${((100 * wrong) / sel.length).toFixed(1)}%)`);
    if (!TH) notes.push("no thumbnails in this run");
    else if (withThumb.length < sel.length) notes.push(`${fmtInt(withThumb.length)} have thumbnails (sample)`);
    if (shown.length < withThumb.length) notes.push(`showing the first ${fmtInt(shown.length)}`);
    $("selection-note").textContent = notes.join(" · ");
    const frag = document.createDocumentFragment();
    for (const i of shown) frag.append(thumbCell(i).canvas);
    grid.append(frag);
  }

  // ---- neighbours -----------------------------------------------------------------------------
  function neighboursOf(i) {
    if (!NB || i < 0) return null;
    const s = slotOf[i];
    if (s < 0) return null;
    const out = [];
    for (let j = 0; j < NB.k; j++) out.push(pointOfSlot(NB.slots[s * NB.k + j]));
    return out;
  }
  function pick(i) {
    st.picked = i;
    const card = $("neighbours-card");
    if (i < 0) { card.hidden = true; schedule(false); return; }
    card.hidden = false;
    $("neighbours-title").textContent = `Neighbours of #${rowOf(i)}`;
    const grid = $("neighbours-grid");
    grid.replaceChildren();
    const nbs = neighboursOf(i);
    let note;
    if (!NB) note = "This run has no latent-space neighbours (no activations.npy).";
    else if (!nbs) note = `#${rowOf(i)} is outside the ${fmtInt(S)}-point sample that has neighbours.`;
    else {
      const same = nbs.filter((j) => label[j] === label[i]).length;
      note = `${NB.k} nearest in the latent space, nearest first: ${same} of ${NB.k} share its class.`;
    }
    $("neighbours-note").textContent = note;
    const a = thumbCell(i, names[label[i]]);
    a.canvas.classList.add("anchor");
    grid.append(a.cell);
    for (const j of nbs || []) grid.append(thumbCell(j, names[label[j]]).cell);
    schedule(false);
  }

  // ---- legend, metrics, header ----------------------------------------------------------------
  function renderLegend() {
    const box = $("legend");
    box.replaceChildren();
    const mode = modeNow(), hidden = st.hidden[st.mode];
    mode.cats.forEach((cat, c) => {
      if (!mode.counts[c]) return;
      const b = el("button", "legend-item");
      b.type = "button";
      b.dataset.cat = String(c);
      b.setAttribute("aria-pressed", hidden.has(c) ? "false" : "true");
      b.title = hidden.has(c) ? "click to show" : "click to hide";
      const sw = el("span", "swatch");
      sw.style.background = rgbCss(cat.rgb);
      let count = fmtInt(mode.counts[c]);
      if (mode.scored && c < mode.cats.length - 1) count += ` · ${((100 * mode.counts[c]) / mode.scored).toFixed(1)}%`;
      if (cat.about) b.title = `${cat.about} (${b.title})`;
      b.append(sw, el("span", "legend-name", cat.name), el("span", "legend-count", count));
      b.addEventListener("click", () => {
        if (hidden.has(c)) hidden.delete(c); else hidden.add(c);
        computeVisibility();
        renderLegend();
        schedule(true);
      });
      box.append(b);
    });
  }
  const COLUMN_LABELS = {
    knn_accuracy: "kNN accuracy", knn_accuracy_2d: "kNN accuracy (2-D)",
    knn_accuracy_original: "kNN accuracy (latent)", metric_sample: "scored sample",
    n_fit: "points fitted", n_samples: "points scored", k: "neighbours k",
    fit_seconds: "fit seconds", knn_ratio: "kNN ratio",
  };
  function fmtValue(v, integer) {
    if (v === null || v === undefined) return "–";
    if (integer) return fmtInt(v);
    const a = Math.abs(v);
    return a >= 1000 ? fmtInt(Math.round(v)) : a >= 10 ? v.toFixed(2) : v.toFixed(4);
  }
  // one column per map (few), one row per score (many): fits beside the map
  function renderMetrics() {
    const table = $("metrics"), M = D.metrics;
    table.replaceChildren();
    if (!M.rows.length) {
      $("metrics-source").textContent = "No per-method scores in this run.";
      return;
    }
    const current = M.rows.map((row) => methods.findIndex((m) => m.name === row.method) === st.m);
    const head = el("tr");
    head.append(el("th", null, "score"));
    M.rows.forEach((row, r) => {
      const th = el("th", current[r] ? "current" : null, row.method);
      th.dataset.method = row.method;
      const mi = methods.findIndex((m) => m.name === row.method);
      if (mi >= 0) {
        th.classList.add("clickable");
        th.title = `show the ${row.method} map`;
        th.addEventListener("click", () => setMethod(mi));
      }
      head.append(th);
    });
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    M.columns.forEach((c, ci) => {
      const tr = el("tr", (M.aux || []).includes(c) ? "aux" : null);
      tr.dataset.score = c;
      const name = el("td", null, COLUMN_LABELS[c] || c.replaceAll("_", " "));
      name.title = c;
      tr.append(name);
      const integer = (M.integer || []).includes(c);
      M.rows.forEach((row, r) => {
        tr.append(el("td", current[r] ? "current" : null, fmtValue(row.values[ci], integer)));
      });
      tbody.append(tr);
    });
    table.append(thead, tbody);
    $("metrics-source").textContent = `from ${M.sources.join(", ")}`;
  }
  function renderHeader() {
    const R = D.run, t = $("run-title");
    t.replaceChildren();
    if (R.dataset) t.append(el("b", null, R.dataset), " · ");
    t.append(R.name);
    const bits = [`${fmtInt(N)} points`];
    if (R.nFeatures) bits.push(`${R.nFeatures}-d latent`);
    if (R.testAccuracy !== null && R.testAccuracy !== undefined) bits.push(`test acc. ${R.testAccuracy.toFixed(4)}`);
    if (R.latentKnn !== null && R.latentKnn !== undefined) bits.push(`latent kNN acc. ${R.latentKnn.toFixed(4)}`);
    t.append(` · ${bits.join(" · ")}`);
    document.title = `${R.dataset || R.name} – latent-atlas viewer`;
    const notes = $("notes");
    notes.replaceChildren();
    for (const n of D.notes) notes.append(el("li", null, n));
    $("notes-card").hidden = !D.notes.length;
  }
  function renderMethodButtons() {
    const box = $("methods");
    box.replaceChildren();
    methods.forEach((m, mi) => {
      const b = el("button", "seg", m.name);
      b.type = "button";
      b.dataset.method = m.name;
      b.setAttribute("aria-pressed", mi === st.m ? "true" : "false");
      b.addEventListener("click", () => setMethod(mi));
      box.append(b);
    });
  }
  function updateStatus() {
    const hiddenN = N - st.nVisible;
    let s = `${methods[st.m].name} · ${fmtInt(N)} points`;
    if (hiddenN) s += ` (${fmtInt(hiddenN)} hidden)`;
    if (S && S < N) s += ` · thumbnails for a sample of ${fmtInt(S)}`;
    $("status").textContent = s;
  }

  function setMethod(mi) {
    if (mi === st.m) return;
    st.m = mi;
    ensureMethod(methods[mi]);
    fit();
    setHover(-1);
    if (MODES[st.mode].perMap) { computeColors(); computeVisibility(); renderLegend(); }
    renderMethodButtons();
    renderMetrics();
    schedule(true);
  }
  function setMode(mode) {
    if (!MODES[mode]) return;
    st.mode = mode;
    computeColors();
    computeVisibility();
    renderLegend();
    schedule(true);
  }
  function setTool(tool) {
    st.tool = tool;
    for (const b of document.querySelectorAll("[data-tool]")) {
      b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
    }
    plot.classList.remove("tool-pan", "tool-box", "tool-lasso");
    plot.classList.add(`tool-${tool}`);
  }

  // ---- atlases tab ----------------------------------------------------------------------------
  function setupAtlases() {
    const list = $("atlas-list"), tab = $("tab-atlases");
    tab.textContent = `Atlases (${ATLASES.length})`;
    if (!ATLASES.length) {
      tab.disabled = true;
      tab.title = "this run has no atlas images";
      return;
    }
    const img = $("atlas-image");
    img.addEventListener("click", () => img.classList.toggle("actual"));
    const show = (a, button) => {
      for (const b of list.children) b.setAttribute("aria-pressed", b === button ? "true" : "false");
      if (/^data:image\/(png|webp);base64,/.test(a.url)) img.src = a.url;
      img.alt = a.file;
      const d = a.details || {};
      const bits = [a.file];
      for (const key of ["method", "mode", "grid", "filled", "mean_distance"]) {
        if (d[key] !== undefined) bits.push(`${key.replace("_", " ")} ${d[key]}${key === "filled" && d.cells ? ` of ${d.cells}` : ""}`);
      }
      $("atlas-caption").textContent = bits.join(" · ");
    };
    ATLASES.forEach((a, ai) => {
      const b = el("button", "atlas-item", a.name);
      b.type = "button";
      b.addEventListener("click", () => show(a, b));
      list.append(b);
      if (ai === 0) show(a, b);
    });
  }
  function setTab(name) {
    const maps = name === "maps";
    $("pane-maps").hidden = !maps;
    $("pane-atlases").hidden = maps;
    $("tab-maps").setAttribute("aria-selected", String(maps));
    $("tab-atlases").setAttribute("aria-selected", String(!maps));
    setHover(-1);
    if (maps && resize()) schedule(true);
  }

  // ---- wiring ---------------------------------------------------------------------------------
  const colorBy = $("color-by");
  for (const opt of colorBy.options) if (!MODES[opt.value]) opt.disabled = true;
  colorBy.addEventListener("change", () => setMode(colorBy.value));
  const opacityBy = $("opacity");
  opacityBy.value = st.opacity;
  opacityBy.addEventListener("change", () => { st.opacity = opacityBy.value; schedule(true); });
  const imagesBox = $("images");
  imagesBox.checked = st.images;
  imagesBox.addEventListener("change", () => { st.images = imagesBox.checked; schedule(true); });
  thumbsReady.then(() => { if (st.images) schedule(true); });
  const sizeInput = $("point-size");
  sizeInput.value = String(st.size);
  sizeInput.addEventListener("input", () => { st.size = Number(sizeInput.value); schedule(true); });
  for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("reset-view").addEventListener("click", () => { fit(); schedule(true); });
  $("legend-all").addEventListener("click", () => {
    st.hidden[st.mode].clear(); computeVisibility(); renderLegend(); schedule(true);
  });
  $("selection-clear").addEventListener("click", () => setSelection(null));
  $("neighbours-clear").addEventListener("click", () => pick(-1));
  $("tab-maps").addEventListener("click", () => setTab("maps"));
  $("tab-atlases").addEventListener("click", () => setTab("atlases"));
  document.addEventListener("keydown", (e) => {
    const tag = e.target && e.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") { setSelection(null); pick(-1); }
    else if (e.key === "r") { fit(); schedule(true); }
    else if (e.key === "p") setTool("pan");
    else if (e.key === "b") setTool("box");
    else if (e.key === "l") setTool("lasso");
  });
  new ResizeObserver(() => { if (!$("pane-maps").hidden && resize()) schedule(true); }).observe(plot);

  // ---- first render ---------------------------------------------------------------------------
  const T_DECODED = performance.now();
  renderHeader();
  renderMethodButtons();
  setTool("pan");
  computeColors();
  computeVisibility();
  renderLegend();
  renderMetrics();
  updateSelectionPanel();
  resize();
  renderBase();
  renderOverlay();
  const T_RENDERED = performance.now();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", loadExtra);
  else loadExtra();
  setTimeout(() => { const m = methods[st.m]; if (!m.grid) m.grid = buildGrid(m); }, 0); // (for hover)

  // A small read-only handle for tests and benchmarks.
  window.latentAtlas = Object.freeze({
    get ready() { return extraLoaded; }, // (the map is drawn, and thumbnails and neighbours read)
    n: N,
    timings: Object.freeze({
      scriptStart: T0, parsed: T_PARSED, decoded: T_DECODED, firstRender: T_RENDERED,
    }),
    thumbsReady,
    hoverTimes: () => hoverTimes.slice(),
    renderTimes: () => renderTimes.slice(),
    lastRender: () => ({ ...last }),
    mode: () => st.mode,
    legend: () => modeNow().cats.map((c, i) => ({ name: c.name, count: modeNow().counts[i] })),
    trust: (i) => trustText(i),
    method: () => methods[st.m].name,
    methods: () => methods.map((m) => m.name),
    visibleCount: () => st.nVisible,
    selection: () => (st.sel ? Array.from(st.sel) : []),
    picked: () => st.picked,
    hovered: () => st.hover,
    neighbours: (i) => neighboursOf(i),
    screenPosition: (i) => {
      const m = ensureMethod(methods[st.m]), r = overlay.getBoundingClientRect();
      return { x: r.left + toScreenX(m.xs[i]), y: r.top + toScreenY(m.ys[i]) };
    },
  });
})();
