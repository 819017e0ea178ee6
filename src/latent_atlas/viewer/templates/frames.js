// latent-atlas frames: several latent spaces of the same images as one animated map.
// One self-contained page, no external code. Every string from the run (class names, frame
// labels, run names) reaches the page through textContent or a property, never through HTML.
(function () {
  "use strict";
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
  function decode(a) {
    if (!a) return null;
    const bin = atob(a.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TYPES[a.dtype](bytes.buffer, 0, a.length);
  }

  const D = JSON.parse($("la-data").textContent);
  const N = D.n, F = D.frames.length;
  const names = D.classNames.map(String);
  const classRGB = D.colors;
  const label = decode(D.label);
  const rowIndex = decode(D.index);
  const rowOf = (i) => (rowIndex ? rowIndex[i] : i);
  const frames = D.frames.map((f) => {
    const predicted = decode(f.predicted);
    let confidence = null;
    if (f.confidence) {
      const q = decode(f.confidence);
      confidence = new Float32Array(N);
      for (let i = 0; i < N; i++) confidence[i] = q[i] / 65535;
    }
    let accuracy = null;
    if (predicted && N) {
      let ok = 0;
      for (let i = 0; i < N; i++) if (predicted[i] === label[i]) ok++;
      accuracy = ok / N;
    }
    return { label: String(f.label), space: String(f.space), predicted, confidence, accuracy };
  });
  const anyPredicted = frames.some((f) => f.predicted);
  const methods = D.methods.map((m) => ({ name: String(m.name), raw: m.frames, xs: null, ys: null }));

  // each frame's coordinates, and the bounds of all frames together (the view fits those, so
  // points travelling between two frames never leave the canvas)
  function ensureMethod(m) {
    if (m.xs) return m;
    m.xs = []; m.ys = [];
    const b = [Infinity, -Infinity, Infinity, -Infinity];
    for (const raw of m.raw) {
      const [x0, x1, y0, y1] = raw.bounds;
      const qx = decode(raw.x), qy = decode(raw.y);
      const xs = new Float32Array(N), ys = new Float32Array(N);
      for (let i = 0; i < N; i++) {
        xs[i] = x0 + (qx[i] * (x1 - x0)) / 65535;
        ys[i] = y0 + (qy[i] * (y1 - y0)) / 65535;
      }
      m.xs.push(xs); m.ys.push(ys);
      b[0] = Math.min(b[0], x0); b[1] = Math.max(b[1], x1);
      b[2] = Math.min(b[2], y0); b[3] = Math.max(b[3], y1);
    }
    m.bounds = b;
    m.raw = null;
    return m;
  }

  const S = D.sample.size;
  const sampleIdx = decode(D.sample.indices);
  const slotOf = new Int32Array(N).fill(-1);
  if (sampleIdx) for (let s = 0; s < S; s++) slotOf[sampleIdx[s]] = s;
  else for (let i = 0; i < S; i++) slotOf[i] = i;

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
  const order = new Uint32Array(N);
  for (let i = 0; i < N; i++) order[i] = i;
  {
    const rand = mulberry32(D.sample.seed + 1);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = order[i]; order[i] = order[j]; order[j] = t;
    }
  }
  const counts = new Int32Array(names.length);
  for (let i = 0; i < N; i++) counts[label[i]]++;

  // ---- state ----------------------------------------------------------------------------------
  const REDUCED = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  const DURATION = REDUCED ? 0 : 600; // ms from one frame to the next
  const HOLD = 700; // ms a frame stays while playing
  const ease = (t) => (t < 0.5 ? 4 * t * t * t : 1 - Math.pow(-2 * t + 2, 3) / 2);
  const st = {
    m: 0, frame: 0, side: false, tool: "lasso", playing: false, timer: 0,
    size: N > 20000 ? 2 : N > 2000 ? 3 : 4,
    hidden: new Set(), vis: new Uint8Array(N).fill(1),
    sel: null, selMask: null, hover: -1, hoverPanel: null,
  };
  const BG = [255, 255, 255], BG32 = pack(BG);
  const colors32 = new Uint32Array(N), dim32 = new Uint32Array(N);
  for (let i = 0; i < N; i++) {
    const c = classRGB[label[i]];
    colors32[i] = pack(c);
    dim32[i] = pack(c.map((v, j) => v + (BG[j] - v) * 0.8));
  }

  // ---- panels: a map each, drawn from its own (animated) positions ---------------------------
  function makePanel(key) {
    const canvas = $(`canvas-${key}`), overlay = $(`overlay-${key}`);
    return {
      key, plot: $(`plot-${key}`), canvas, overlay, caption: $(`caption-${key}`),
      chooser: $(`frame-${key}`), ctx: canvas.getContext("2d"), ov: overlay.getContext("2d"),
      frame: 0, placed: false, animating: false, t0: 0,
      xs: new Float32Array(N), ys: new Float32Array(N),
      fromX: new Float32Array(N), fromY: new Float32Array(N),
      W: 0, H: 0, dpr: 1, k: 1, ox: 0, oy: 0, img: null, buf: null, stamp: null,
      ring: -1, pointer: null, drag: null,
    };
  }
  const A = makePanel("a"), B = makePanel("b");
  const shown = () => (st.side ? [A, B] : [A]);

  function goTo(p, frame, animate) {
    p.frame = frame;
    const m = ensureMethod(methods[st.m]);
    if (!animate || !DURATION || !p.placed) {
      p.xs.set(m.xs[frame]); p.ys.set(m.ys[frame]);
      p.placed = true; p.animating = false;
    } else {
      p.fromX.set(p.xs); p.fromY.set(p.ys);
      p.t0 = performance.now(); p.animating = true;
    }
    renderCaption(p);
    schedule(true);
  }
  function step(p, now) {
    if (!p.animating) return;
    const t = Math.min(1, (now - p.t0) / DURATION), e = ease(t);
    const m = methods[st.m], tx = m.xs[p.frame], ty = m.ys[p.frame];
    const { xs, ys, fromX, fromY } = p;
    for (let i = 0; i < N; i++) {
      xs[i] = fromX[i] + (tx[i] - fromX[i]) * e;
      ys[i] = fromY[i] + (ty[i] - fromY[i]) * e;
    }
    if (t >= 1) p.animating = false;
  }

  const PAD = { top: 56, right: 22, bottom: 22, left: 22 }; // css px kept free (the caption)
  function resize(p) {
    const r = p.plot.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(r.width)), H = Math.max(1, Math.round(r.height));
    if (W === p.W && H === p.H && dpr === p.dpr) return false;
    p.W = W; p.H = H; p.dpr = dpr;
    for (const c of [p.canvas, p.overlay]) { c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); }
    fit(p);
    return true;
  }
  function fit(p) {
    const [x0, x1, y0, y1] = ensureMethod(methods[st.m]).bounds;
    const w = Math.max(1, p.W - PAD.left - PAD.right), h = Math.max(1, p.H - PAD.top - PAD.bottom);
    p.k = Math.min(w / (x1 - x0 || 1), h / (y1 - y0 || 1));
    p.ox = PAD.left + w / 2 - ((x0 + x1) / 2) * p.k;
    p.oy = PAD.top + h / 2 + ((y0 + y1) / 2) * p.k;
  }
  const sx = (p, x) => p.ox + x * p.k;
  const sy = (p, y) => p.oy - y * p.k;
  const radius = () => st.size - 1;

  function makeStamp(W, R) {
    const offs = [], dx = [], dy = [];
    for (let y = -R; y <= R; y++) {
      for (let x = -R; x <= R; x++) {
        if (x * x + y * y <= R * R + R * 0.8) { offs.push(y * W + x); dx.push(x); dy.push(y); }
      }
    }
    return { W, R, offs: Int32Array.from(offs), dx: Int32Array.from(dx), dy: Int32Array.from(dy) };
  }
  function renderPoints(p) {
    const W = p.canvas.width, H = p.canvas.height;
    if (!p.img || p.img.width !== W || p.img.height !== H) {
      p.img = p.ctx.createImageData(W, H);
      p.buf = new Uint32Array(p.img.data.buffer);
    }
    const buf = p.buf;
    buf.fill(BG32);
    const R = Math.round(radius() * p.dpr);
    if (!p.stamp || p.stamp.W !== W || p.stamp.R !== R) p.stamp = makeStamp(W, R);
    const { offs, dx, dy } = p.stamp, T = offs.length;
    const k = p.k * p.dpr, ox = p.ox * p.dpr, oy = p.oy * p.dpr;
    const xs = p.xs, ys = p.ys, vis = st.vis, sel = st.selMask;
    const draw = (want) => {
      const colors = sel && want === 0 ? dim32 : colors32;
      for (let j = 0; j < N; j++) {
        const i = order[j];
        if (!vis[i] || (sel && sel[i] !== want)) continue;
        const px = Math.round(ox + xs[i] * k), py = Math.round(oy - ys[i] * k);
        if (px < -R || py < -R || px >= W + R || py >= H + R) continue;
        const c = colors[i];
        if (px >= R && py >= R && px < W - R && py < H - R) {
          const base = py * W + px;
          for (let t = 0; t < T; t++) buf[base + offs[t]] = c;
        } else {
          for (let t = 0; t < T; t++) {
            const qx = px + dx[t], qy = py + dy[t];
            if (qx >= 0 && qy >= 0 && qx < W && qy < H) buf[qy * W + qx] = c;
          }
        }
      }
    };
    if (sel) { draw(0); draw(1); } else draw(-1);
    p.ctx.putImageData(p.img, 0, 0);
  }

  function renderOverlay(p) {
    const ctx = p.ov;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, p.overlay.width, p.overlay.height);
    ctx.setTransform(p.dpr, 0, 0, p.dpr, 0, 0);
    const r = radius() + 3.5;
    const ring = (i, color, width, rad) => {
      ctx.beginPath();
      ctx.arc(sx(p, p.xs[i]), sy(p, p.ys[i]), rad, 0, 2 * Math.PI);
      ctx.lineWidth = width;
      ctx.strokeStyle = color;
      ctx.stroke();
    };
    if (st.sel && st.sel.length <= 40) { // a few chosen images: ringed too (many: dimming says it)
      for (const i of st.sel) if (st.vis[i]) ring(i, "rgba(20, 25, 35, 0.75)", 1.2, r - 1);
    }
    p.ring = st.hover;
    if (st.hover >= 0) {
      if (st.hoverPanel !== p) { // the same image in the other map: easy to find
        ring(st.hover, "rgba(47, 111, 223, 0.35)", 6, r + 12);
        ring(st.hover, "#2f6fdf", 1.5, r + 12);
      }
      ring(st.hover, "#fff", 4, r + 1);
      ring(st.hover, "#111", 1.6, r + 1);
    }
    const d = p.drag;
    if (d && d.moved) {
      ctx.beginPath();
      if (d.kind === "box") ctx.rect(Math.min(d.x0, d.x), Math.min(d.y0, d.y), Math.abs(d.x - d.x0), Math.abs(d.y - d.y0));
      else { ctx.moveTo(d.path[0][0], d.path[0][1]); for (const q of d.path) ctx.lineTo(q[0], q[1]); ctx.closePath(); }
      ctx.fillStyle = "rgba(47, 111, 223, 0.08)";
      ctx.fill();
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#2f6fdf";
      ctx.lineWidth = 1.2;
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
  function renderCaption(p) {
    const f = frames[p.frame], cap = p.caption;
    cap.replaceChildren(el("div", "cap-label", f.label));
    const bits = [`frame ${p.frame + 1} of ${F}`];
    if (f.space !== f.label) bits.push(`space ${f.space}`);
    if (f.accuracy !== null) bits.push(`accuracy ${f.accuracy.toFixed(3)}`);
    cap.append(el("div", "cap-sub", bits.join(" · ")));
    if (p.chooser.value !== String(p.frame) && st.side) p.chooser.value = String(p.frame);
  }

  let raf = 0, needPoints = false;
  function schedule(points) {
    if (points) needPoints = true;
    if (!raf) raf = requestAnimationFrame(tick);
  }
  function tick(now) {
    raf = 0;
    let moving = false;
    for (const p of shown()) {
      moving = moving || p.animating;
      step(p, now);
    }
    const points = needPoints || moving;
    needPoints = false;
    for (const p of shown()) {
      if (points) renderPoints(p);
      if (p.pointer && !p.drag) hoverAt(p, p.pointer); // points move under a still pointer
      renderOverlay(p);
    }
    document.body.dataset.animating = moving ? "1" : "0";
    if (moving) schedule(true);
  }

  // ---- hover ----------------------------------------------------------------------------------
  function nearest(p, x, y, maxPx) {
    let best = -1, bestD = maxPx * maxPx;
    const { xs, ys } = p;
    for (let i = 0; i < N; i++) {
      if (!st.vis[i]) continue;
      const dx = sx(p, xs[i]) - x, dy = sy(p, ys[i]) - y, d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = i; }
    }
    return best;
  }
  const hitRadius = () => radius() + 6;
  const tip = $("tooltip"), tipThumb = $("tooltip-thumb");
  function hoverAt(p, q) {
    setHover(nearest(p, q.x, q.y, hitRadius()), p);
    placeTip(q.cx, q.cy);
  }
  function predictionText(f, i) {
    if (!f.predicted) return `${f.label}: no predictions`;
    const ok = f.predicted[i] === label[i];
    const conf = f.confidence ? ` (${f.confidence[i].toFixed(2)})` : "";
    return `${f.label}: predicted ${names[f.predicted[i]]}${conf} ${ok ? "✓" : "✗"}`;
  }
  function setHover(i, p) {
    if (i === st.hover && p === st.hoverPanel && (i < 0 || !tip.hidden)) return;
    st.hover = i;
    st.hoverPanel = i < 0 ? null : p;
    if (i < 0) { tip.hidden = true; schedule(); return; }
    $("tooltip-index").textContent = `#${rowOf(i)}`;
    $("tooltip-label").textContent = `class: ${names[label[i]]}`;
    const pr = $("tooltip-pred");
    pr.replaceChildren();
    if (anyPredicted) {
      const list = st.side ? (p === B ? [B, A] : [A, B]) : [A];
      for (const q of list) {
        const f = frames[q.frame];
        pr.append(el("div", f.predicted && f.predicted[i] !== label[i] ? "tt-wrong" : null, predictionText(f, i)));
      }
    }
    const has = drawThumb(tipThumb, i);
    tipThumb.hidden = !has;
    $("tooltip-note").textContent = !D.thumbs ? "" : has ? "" : "no thumbnail (outside the sample)";
    tip.hidden = false;
    schedule();
  }
  function placeTip(cx, cy) {
    if (tip.hidden) return;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let x = cx + 16, y = cy + 16;
    if (x + w > window.innerWidth - 4) x = cx - w - 16;
    if (y + h > window.innerHeight - 4) y = cy - h - 16;
    tip.style.left = `${Math.max(4, x)}px`;
    tip.style.top = `${Math.max(4, y)}px`;
  }

  // ---- thumbnails -----------------------------------------------------------------------------
  const TH = D.thumbs;
  const sheets = TH ? TH.urls.map((url) => {
    const img = new Image();
    img.decoding = "async";
    if (typeof url === "string" && /^data:image\/(webp|png);base64,/.test(url)) img.src = url;
    return img;
  }) : [];
  const thumbsReady = Promise.all(sheets.map((img) => img.decode().catch(() => null)));
  function drawThumb(canvas, i) {
    const s = slotOf[i];
    if (!TH || s < 0) return false;
    if (canvas.width !== TH.width || canvas.height !== TH.height) {
      canvas.width = TH.width;
      canvas.height = TH.height;
    }
    const sheet = sheets[Math.floor(s / TH.perSheet)], r = s % TH.perSheet;
    const x = (r % TH.columns) * TH.cellWidth, y = Math.floor(r / TH.columns) * TH.cellHeight;
    const paint = () => {
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(sheet, x, y, TH.width, TH.height, 0, 0, TH.width, TH.height);
    };
    if (sheet.complete && sheet.naturalWidth) paint();
    else sheet.decode().then(paint, () => null);
    return true;
  }

  // ---- pointer: hover, click, Shift+click, lasso and box --------------------------------------
  function inPolygon(poly, x, y) {
    let inside = false;
    for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
      const [xa, ya] = poly[a], [xb, yb] = poly[b];
      if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
    }
    return inside;
  }
  function wire(p) {
    const local = (e) => {
      const r = p.overlay.getBoundingClientRect();
      return { x: e.clientX - r.left, y: e.clientY - r.top, cx: e.clientX, cy: e.clientY };
    };
    p.overlay.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      const q = local(e);
      p.drag = { kind: st.tool, x0: q.x, y0: q.y, x: q.x, y: q.y, moved: false, path: [[q.x, q.y]], add: e.shiftKey };
      p.overlay.setPointerCapture(e.pointerId);
      setHover(-1, p);
    });
    p.overlay.addEventListener("pointermove", (e) => {
      const q = local(e), d = p.drag;
      p.pointer = q;
      if (!d) { schedule(); return; }
      d.x = q.x; d.y = q.y;
      if (Math.hypot(q.x - d.x0, q.y - d.y0) > 3) d.moved = true;
      const last = d.path[d.path.length - 1];
      if (Math.hypot(q.x - last[0], q.y - last[1]) > 2) d.path.push([q.x, q.y]);
      schedule();
    });
    const end = (e, cancelled) => {
      const d = p.drag;
      if (!d) return;
      p.drag = null;
      if (cancelled) { schedule(); return; }
      if (!d.moved) {
        const i = nearest(p, d.x0, d.y0, hitRadius());
        if (d.add) { if (i >= 0) toggle(i); } else setSelection(i >= 0 ? [i] : null);
      } else {
        const inside = d.kind === "box"
          ? (x, y) => x >= Math.min(d.x0, d.x) && x <= Math.max(d.x0, d.x) && y >= Math.min(d.y0, d.y) && y <= Math.max(d.y0, d.y)
          : (x, y) => inPolygon(d.path, x, y);
        const out = d.add && st.sel ? Array.from(st.sel) : [];
        for (let i = 0; i < N; i++) {
          if (st.vis[i] && !(d.add && st.selMask && st.selMask[i]) && inside(sx(p, p.xs[i]), sy(p, p.ys[i]))) out.push(i);
        }
        setSelection(out.length ? out : d.add ? Array.from(st.sel || []) : null);
      }
      schedule();
    };
    p.overlay.addEventListener("pointerup", (e) => end(e, false));
    p.overlay.addEventListener("pointercancel", (e) => end(e, true));
    p.overlay.addEventListener("pointerleave", () => {
      p.pointer = null;
      if (!p.drag && st.hoverPanel === p) setHover(-1, p);
    });
    p.chooser.addEventListener("change", () => goTo(p, Number(p.chooser.value), true));
    new ResizeObserver(() => { if (resize(p)) schedule(true); }).observe(p.plot);
  }

  // ---- selection ------------------------------------------------------------------------------
  const MAX_GRID = 300;
  function toggle(i) {
    const list = st.sel ? Array.from(st.sel) : [];
    const at = list.indexOf(i);
    if (at >= 0) list.splice(at, 1); else list.push(i);
    setSelection(list.length ? list : null);
  }
  function setSelection(list) {
    if (!list || !list.length) { st.sel = null; st.selMask = null; }
    else {
      st.sel = Int32Array.from(list).sort();
      st.selMask = new Uint8Array(N);
      for (const i of st.sel) st.selMask[i] = 1;
    }
    renderSelection();
    schedule(true);
  }
  function renderSelection() {
    const sel = st.sel, table = $("selection-counts"), grid = $("selection-grid");
    table.replaceChildren(); grid.replaceChildren();
    $("clear-selection").disabled = !sel;
    $("selection-hint").hidden = !!sel;
    $("selection-title").textContent = sel ? `Selection · ${fmtInt(sel.length)} ${sel.length === 1 ? "image" : "images"}` : "Selection";
    $("selection-note").textContent = "";
    if (!sel) return;
    const per = new Int32Array(names.length);
    for (const i of sel) per[label[i]]++;
    const max = Math.max(...per);
    for (const c of [...per.keys()].filter((c) => per[c] > 0).sort((a, b) => per[b] - per[a])) {
      const tr = el("tr");
      const sw = el("span", "swatch"); sw.style.background = rgbCss(classRGB[c]);
      const td0 = el("td"); td0.append(sw);
      const bar = el("div", "barfill");
      bar.style.width = `${(100 * per[c]) / max}%`; bar.style.background = rgbCss(classRGB[c]);
      const tdBar = el("td", "bar"); tdBar.append(bar);
      const name = el("td", "name", names[c]);
      name.title = names[c];
      tr.append(td0, name, el("td", "num", fmtInt(per[c])), tdBar);
      table.append(tr);
    }
    const notes = [];
    for (const p of shown()) {
      const f = frames[p.frame];
      if (!f.predicted) continue;
      let wrong = 0;
      for (const i of sel) if (f.predicted[i] !== label[i]) wrong++;
      notes.push(`${fmtInt(wrong)} misclassified in ${f.label}`);
    }
    const withThumb = TH ? sel.filter((i) => slotOf[i] >= 0) : new Int32Array(0);
    if (!TH) notes.push("no images in this run");
    else if (withThumb.length < sel.length) notes.push(`${fmtInt(withThumb.length)} have thumbnails (sample)`);
    if (withThumb.length > MAX_GRID) notes.push(`showing the first ${MAX_GRID}`);
    $("selection-note").textContent = notes.join(" · ");
    const pred = frames[A.frame].predicted, frag = document.createDocumentFragment();
    for (const i of withThumb.slice(0, MAX_GRID)) {
      const c = el("canvas", "thumb");
      drawThumb(c, i);
      if (pred && pred[i] !== label[i]) c.classList.add("wrong");
      c.title = `#${rowOf(i)} · ${names[label[i]]}`;
      c.addEventListener("mouseenter", () => { st.hover = i; st.hoverPanel = null; schedule(); });
      c.addEventListener("mouseleave", () => { st.hover = -1; schedule(); });
      frag.append(c);
    }
    grid.append(frag);
  }

  // ---- legend ---------------------------------------------------------------------------------
  function renderLegend() {
    const box = $("legend");
    box.replaceChildren();
    names.forEach((name, c) => {
      if (!counts[c]) return;
      const b = el("button", "legend-item");
      b.type = "button";
      b.dataset.cls = String(c);
      b.setAttribute("aria-pressed", st.hidden.has(c) ? "false" : "true");
      b.title = st.hidden.has(c) ? "click to show" : "click to hide";
      const sw = el("span", "swatch");
      sw.style.background = rgbCss(classRGB[c]);
      b.append(sw, el("span", "legend-name", name), el("span", "legend-count", fmtInt(counts[c])));
      b.addEventListener("click", () => {
        if (st.hidden.has(c)) st.hidden.delete(c); else st.hidden.add(c);
        applyHidden();
      });
      box.append(b);
    });
  }
  function applyHidden() {
    for (let i = 0; i < N; i++) st.vis[i] = st.hidden.has(label[i]) ? 0 : 1;
    if (st.hover >= 0 && !st.vis[st.hover]) setHover(-1, null);
    renderLegend();
    schedule(true);
  }

  // ---- frames, methods, modes -----------------------------------------------------------------
  const slider = $("frame-slider"), playBtn = $("play");
  function setFrame(f) {
    f = Math.max(0, Math.min(F - 1, Math.round(Number(f) || 0)));
    st.frame = f;
    slider.value = String(f);
    $("frame-label").textContent = `${frames[f].label} · ${f + 1}/${F}`;
    if (!st.side && A.frame !== f) goTo(A, f, true);
  }
  function play() {
    if (st.playing || st.side) return;
    st.playing = true;
    playBtn.setAttribute("aria-pressed", "true");
    playBtn.textContent = "❚❚ Pause";
    if (st.frame === F - 1) { setFrame(0); advance(DURATION + HOLD); } // from the start again
    else advance(0);
  }
  // the next frame after `delay` ms; each then travels for DURATION and stays for HOLD
  function advance(delay) {
    clearTimeout(st.timer);
    st.timer = setTimeout(() => {
      if (!st.playing) return;
      if (st.frame >= F - 1) { pause(); return; }
      setFrame(st.frame + 1);
      if (st.frame >= F - 1) st.timer = setTimeout(pause, DURATION);
      else advance(DURATION + HOLD);
    }, delay);
  }
  function pause() {
    clearTimeout(st.timer);
    st.playing = false;
    playBtn.setAttribute("aria-pressed", "false");
    playBtn.textContent = "▶ Play";
  }
  function setMethod(mi) {
    if (mi === st.m || !methods[mi]) return;
    st.m = mi;
    $("method").value = String(mi);
    for (const p of shown()) { fit(p); goTo(p, p.frame, true); }
  }
  function setSide(on) {
    on = !!on;
    if (on === st.side) return;
    if (on) pause();
    st.side = on;
    $("views").classList.toggle("side", on);
    $("view-b").hidden = !on;
    $("side-by-side").setAttribute("aria-pressed", String(on));
    $("player").classList.toggle("disabled", on);
    slider.disabled = on; playBtn.disabled = on;
    for (const p of [A, B]) { resize(p); fit(p); }
    if (on) {
      B.placed = false;
      goTo(B, Number(B.chooser.value), false);
      goTo(A, Number(A.chooser.value), true);
    } else {
      goTo(A, st.frame, true);
    }
    setHover(-1, null);
    renderSelection();
  }
  function setTool(tool) {
    st.tool = tool;
    for (const b of document.querySelectorAll("[data-tool]")) b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
  }

  // ---- wiring ---------------------------------------------------------------------------------
  function setup() {
    const t = $("run-title");
    if (D.run.dataset) t.append(el("b", null, D.run.dataset), " · ");
    t.append(`${D.run.name} · ${fmtInt(N)} images · ${F} frames`);
    document.title = `${D.run.name} – latent-atlas frames`;
    slider.max = String(F - 1);
    for (const p of [A, B]) {
      frames.forEach((f, fi) => p.chooser.append(new Option(`${fi + 1}. ${f.label}`, String(fi))));
    }
    A.chooser.value = "0";
    B.chooser.value = String(F - 1);
    const method = $("method");
    methods.forEach((m, mi) => method.append(new Option(m.name, String(mi))));
    $("method-field").hidden = methods.length < 2;
    method.addEventListener("change", () => setMethod(Number(method.value)));
    slider.addEventListener("input", () => { pause(); setFrame(slider.value); });
    playBtn.addEventListener("click", () => (st.playing ? pause() : play()));
    $("side-by-side").addEventListener("click", () => setSide(!st.side));
    $("clear-selection").addEventListener("click", () => setSelection(null));
    $("legend-all").addEventListener("click", () => { st.hidden.clear(); applyHidden(); });
    for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
    document.addEventListener("keydown", (e) => {
      const tag = e.target && e.target.tagName;
      if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === " ") { e.preventDefault(); if (st.playing) pause(); else play(); }
      else if (e.key === "ArrowRight" && !st.side) { pause(); setFrame(st.frame + 1); }
      else if (e.key === "ArrowLeft" && !st.side) { pause(); setFrame(st.frame - 1); }
      else if (e.key === "s") setSide(!st.side);
      else if (e.key === "l") setTool("lasso");
      else if (e.key === "b") setTool("box");
      else if (e.key === "Escape") setSelection(null);
    });
    const notes = $("notes");
    for (const n of D.notes) notes.append(el("li", null, n));
    $("notes-card").hidden = !D.notes.length;
    wire(A); wire(B);
  }

  setup();
  setTool("lasso");
  renderLegend();
  renderSelection();
  resize(A);
  setFrame(0);
  goTo(A, 0, false);
  B.frame = F - 1;
  renderPoints(A);
  renderOverlay(A);
  document.body.dataset.animating = "0";

  // A small read-only handle for tests.
  const panelOf = (key) => (key === "b" ? B : A);
  window.latentFrames = Object.freeze({
    ready: true,
    n: N,
    duration: DURATION,
    thumbsReady,
    frameLabels: () => frames.map((f) => f.label),
    frame: () => st.frame,
    panelFrame: (key) => panelOf(key).frame,
    method: () => methods[st.m].name,
    methods: () => methods.map((m) => m.name),
    setFrame: (f) => { pause(); setFrame(f); },
    setPanelFrame: (key, f) => { const p = panelOf(key); p.chooser.value = String(f); goTo(p, Number(f), true); },
    setMethod: (name) => setMethod(methods.findIndex((m) => m.name === name)),
    play, pause,
    playing: () => st.playing,
    animating: () => A.animating || (st.side && B.animating),
    sideBySide: () => st.side,
    setSideBySide: (on) => setSide(on),
    hovered: () => st.hover,
    ringed: (key) => panelOf(key).ring,
    selection: () => (st.sel ? Array.from(st.sel) : []),
    select: (list) => setSelection(list),
    screenPosition: (i, key) => {
      const p = panelOf(key), r = p.overlay.getBoundingClientRect();
      return { x: r.left + sx(p, p.xs[i]), y: r.top + sy(p, p.ys[i]) };
    },
    drawnPositions: (key) => {
      const p = panelOf(key), out = new Array(2 * N);
      for (let i = 0; i < N; i++) { out[2 * i] = sx(p, p.xs[i]); out[2 * i + 1] = sy(p, p.ys[i]); }
      return out;
    },
  });
  document.body.dataset.ready = "1";
})();
