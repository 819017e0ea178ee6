// latent-atlas viewer: drawing points into a pixel buffer (opaque, or by density) and drawing
// the images themselves when zoomed in. No DOM and no data of its own: viewer.js calls it.
const LARender = (function () {
  "use strict";
  const pack = (r, g, b) => ((255 << 24) | ((b & 255) << 16) | ((g & 255) << 8) | (r & 255)) >>> 0;

  // the pixel offsets of a disc of radius R in a buffer W pixels wide
  function makeStamp(W, R) {
    const offs = [], dx = [], dy = [];
    for (let y = -R; y <= R; y++) {
      for (let x = -R; x <= R; x++) {
        if (x * x + y * y <= R * R + R * 0.8) { offs.push(y * W + x); dx.push(x); dy.push(y); }
      }
    }
    return { W, R, offs: Int32Array.from(offs), dx: Int32Array.from(dx), dy: Int32Array.from(dy) };
  }

  // The points to draw, in draw order, gathered once per change of order, colours,
  // visibility or selection so that each redraw reads memory in sequence: every visible
  // point (the unselected ones dimmed and first when there is a selection).
  function gather(order, xs, ys, vis, sel, colors, dim) {
    const N = order.length, x = new Float32Array(N), y = new Float32Array(N);
    const c = new Uint32Array(N);
    let n = 0;
    for (const want of sel ? [0, 1] : [-1]) {
      const from = want === 0 ? dim : colors;
      for (let j = 0; j < N; j++) {
        const i = order[j];
        if (!vis[i] || (want >= 0 && sel[i] !== want)) continue;
        x[n] = xs[i]; y[n] = ys[i]; c[n] = from[i]; n++;
      }
    }
    return { n, x, y, c };
  }

  // Every gathered point as a disc, painted over each other in order (the last one shows).
  // With `counts`, each pixel also counts the points on it (for density()). One loop, no
  // closures: it runs over a million points per redraw.
  function paint(P, G, counts) {
    const { W, H, buf, k, ox, oy, stamp } = P;
    const { offs, dx, dy, R } = stamp, T = offs.length, { n, x, y, c } = G;
    for (let j = 0; j < n; j++) {
      const px = Math.round(ox + x[j] * k), py = Math.round(oy - y[j] * k);
      if (px < -R || py < -R || px >= W + R || py >= H + R) continue;
      const col = c[j];
      if (px >= R && py >= R && px < W - R && py < H - R) {
        const base = py * W + px;
        if (counts) for (let t = 0; t < T; t++) { buf[base + offs[t]] = col; counts[base + offs[t]]++; }
        else for (let t = 0; t < T; t++) buf[base + offs[t]] = col;
      } else {
        for (let t = 0; t < T; t++) {
          const qx = px + dx[t], qy = py + dy[t];
          if (qx >= 0 && qy >= 0 && qx < W && qy < H) {
            buf[qy * W + qx] = col;
            if (counts) counts[qy * W + qx]++;
          }
        }
      }
    }
  }

  // Density-aware opacity: each pixel shows the colour of the last point drawn on it (a
  // seeded random one of them) with an opacity that grows with their number, scaled so that
  // the densest tenth of the covered pixels is nearly opaque and a lone point still shows.
  // Returns the count at that 90th percentile (1: no overplotting).
  let counts = null;
  const TOP = 1024;
  function density(P, G, bg) {
    const n = P.W * P.H, buf = P.buf;
    if (!counts || counts.length !== n) counts = new Uint32Array(n); else counts.fill(0);
    paint(P, G, counts);
    const p90 = percentile(counts, 0.9), lut = alphaTable(p90);
    const [br, bgG, bb] = bg;
    for (let q = 0; q < n; q++) {
      const m = counts[q];
      if (!m) continue;
      const a = lut[m < TOP ? m : TOP], col = buf[q];
      buf[q] = pack(br + ((col & 255) - br) * a, bgG + (((col >>> 8) & 255) - bgG) * a,
        bb + (((col >>> 16) & 255) - bb) * a);
    }
    return p90;
  }
  function percentile(cnt, f) {
    const hist = new Uint32Array(TOP + 1);
    let occupied = 0;
    for (let q = 0; q < cnt.length; q++) {
      const c = cnt[q];
      if (c) { hist[c < TOP ? c : TOP]++; occupied++; }
    }
    let seen = 0;
    for (let c = 1; c <= TOP; c++) {
      seen += hist[c];
      if (seen >= f * occupied) return c;
    }
    return TOP;
  }
  function alphaTable(p90) {
    const a0 = 1 - Math.pow(0.08, 1 / Math.max(1, p90)), lut = new Float32Array(TOP + 1);
    for (let c = 1; c <= TOP; c++) lut[c] = Math.max(0.35, 1 - Math.pow(1 - a0, c));
    return lut;
  }

  // The images themselves at their points, framed in the point's colour, when there is room: at most `most` images and
  // their squares (side px) covering at most `cover` of the view. Returns how many were drawn
  // (0: zoomed out too far, or the sheets are not decoded yet).
  function images(ctx, V, most, cover) {
    const { slots, pointOf, xs, ys, vis, k, ox, oy, W, H, side, TH, sheets, colors, dpr } = V;
    const inView = [];
    const h = side / 2;
    for (let s = 0; s < slots; s++) {
      const i = pointOf(s);
      if (!vis[i]) continue;
      const px = ox + xs[i] * k, py = oy - ys[i] * k;
      if (px < -h || py < -h || px > W + h || py > H + h) continue;
      inView.push(s);
      if (inView.length > most) return 0;
    }
    if (!inView.length || inView.length * side * side > cover * W * H) return 0;
    for (const img of sheets) if (!(img.complete && img.naturalWidth)) return 0;
    ctx.imageSmoothingEnabled = side < TH.width;
    for (const s of inView) {
      const i = pointOf(s), r = s % TH.perSheet;
      const sx = (r % TH.columns) * TH.cellWidth, sy = Math.floor(r / TH.columns) * TH.cellHeight;
      const px = ox + xs[i] * k, py = oy - ys[i] * k, c = colors[i], f = Math.max(1, Math.round(2 * dpr));
      ctx.fillStyle = `rgb(${c & 255}, ${(c >>> 8) & 255}, ${(c >>> 16) & 255})`; // the point's colour
      ctx.fillRect(Math.round(px - h) - f, Math.round(py - h) - f, side + 2 * f, side + 2 * f);
      ctx.drawImage(sheets[Math.floor(s / TH.perSheet)], sx, sy, TH.width, TH.height,
        Math.round(px - h), Math.round(py - h), side, side);
    }
    return inView.length;
  }

  return Object.freeze({ makeStamp, gather, paint, density, images, pack });
})();
