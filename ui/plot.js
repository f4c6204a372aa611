import { $, el } from './dom.js';

// The window's plot: events per second by channel over the last 60 s, stacked, busiest channels first.
// Counted from the events the window receives, bucketed by their hub timestamp (so a resume after a pause fills
// the seconds it missed). One small map per second; the canvas is redrawn at most a few times a second.
const PLOT_SECONDS = 60;
const PLOT_SERIES = 5; // the busiest channels; the rest are summed as "other"
const PLOT_COLORS = ['#3b5bdb', '#2f9e44', '#e8590c', '#7048e8', '#0c8599', '#868e96'];
const perSecond = new Map(); // unix second -> Map(channel -> count)
let plotQueued = false;

export function countForPlot(e) {
  const now = Math.floor(Date.now() / 1000);
  let s = Math.floor(Date.parse(e.ts) / 1000);
  if (!(s <= now)) s = now; // unparsable, or a clock ahead of ours
  if (s <= now - PLOT_SECONDS) return;
  let bucket = perSecond.get(s);
  if (!bucket) perSecond.set(s, (bucket = new Map()));
  bucket.set(e.channel, (bucket.get(e.channel) || 0) + 1);
  if (!plotQueued) {
    plotQueued = true;
    setTimeout(drawPlot, 250);
  }
}

export function drawPlot() {
  plotQueued = false;
  const now = Math.floor(Date.now() / 1000);
  const first = now - PLOT_SECONDS + 1;
  const totals = new Map();
  for (const [s, bucket] of perSecond) {
    if (s < first) perSecond.delete(s);
    else for (const [c, n] of bucket) totals.set(c, (totals.get(c) || 0) + n);
  }
  const ranked = [...totals].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const top = ranked.slice(0, PLOT_SERIES).map(([c]) => c);
  const series = ranked.length > PLOT_SERIES ? [...top, 'other'] : top;
  const counts = series.map(() => new Array(PLOT_SECONDS).fill(0));
  for (const [s, bucket] of perSecond) {
    for (const [c, n] of bucket) {
      const i = top.indexOf(c);
      counts[i < 0 ? top.length : i][s - first] += n;
    }
  }
  let peak = 0;
  for (let x = 0; x < PLOT_SECONDS; x++) peak = Math.max(peak, counts.reduce((sum, row) => sum + row[x], 0));
  const total = ranked.reduce((sum, [, n]) => sum + n, 0);

  // What the chart shows, readable without pixels: counts per channel in the window.
  const plot = $('plot');
  plot.dataset.total = total;
  plot.dataset.series = JSON.stringify(Object.fromEntries(ranked));
  $('plot-peak').textContent = total ? `peak ${peak}/s · ${total} in 60 s` : 'no events in the last 60 s';
  $('plot-legend').replaceChildren(
    ...series.map((name, i) => {
      const n = name === 'other' ? ranked.slice(PLOT_SERIES).reduce((sum, [, v]) => sum + v, 0) : totals.get(name);
      const swatch = el('i');
      swatch.style.background = PLOT_COLORS[i]; // through the CSSOM: the desktop CSP allows no inline style attribute
      return el('span', { title: name, dataset: { channel: name } }, swatch, name, el('b', { textContent: n }));
    }),
  );

  const canvas = $('plot-canvas');
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return; // another tab is showing
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const pad = { left: 34, right: 4, top: 7, bottom: 14 };
  const pw = w - pad.left - pad.right;
  const ph = h - pad.top - pad.bottom;
  // A round top for the scale (1, 2, 4, 6, 8, 10, 20, …), so the gridlines read as whole numbers.
  let scale = 1;
  for (let unit = 1; scale < peak; unit *= 10) scale = [1, 2, 4, 6, 8, 10].map((m) => m * unit).find((v) => v >= peak) ?? scale;
  const X = (i) => pad.left + (i / (PLOT_SECONDS - 1)) * pw;
  const Y = (v) => pad.top + ph - (v / scale) * ph;

  g.font = '10px system-ui, sans-serif';
  g.fillStyle = css.getPropertyValue('--muted');
  g.strokeStyle = css.getPropertyValue('--line');
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const v of [0, scale / 2, scale]) {
    g.beginPath();
    g.moveTo(pad.left, Math.round(Y(v)) + 0.5);
    g.lineTo(w - pad.right, Math.round(Y(v)) + 0.5);
    g.stroke();
    g.fillText(v % 1 ? v.toFixed(1) : String(v), pad.left - 5, Y(v));
  }
  g.textBaseline = 'alphabetic';
  g.textAlign = 'left';
  g.fillText('60 s ago', pad.left, h - 2);
  g.textAlign = 'right';
  g.fillText('now', w - pad.right, h - 2);

  // Stacked areas, bottom series first; then each area's top edge as a line, the bottom series' last, so no fill
  // hides a line and where edges meet (at zero) the busiest channel shows.
  const edges = [new Array(PLOT_SECONDS).fill(0)];
  for (const row of counts) edges.push(edges.at(-1).map((b, x) => b + row[x]));
  const edge = (k) => {
    g.beginPath();
    for (let x = 0; x < PLOT_SECONDS; x++) g.lineTo(X(x), Y(edges[k + 1][x]));
  };
  g.globalAlpha = 0.35;
  series.forEach((_, k) => {
    edge(k);
    for (let x = PLOT_SECONDS - 1; x >= 0; x--) g.lineTo(X(x), Y(edges[k][x]));
    g.closePath();
    g.fillStyle = PLOT_COLORS[k];
    g.fill();
  });
  g.globalAlpha = 1;
  g.lineWidth = 1.5;
  for (let k = series.length - 1; k >= 0; k--) {
    edge(k);
    g.strokeStyle = PLOT_COLORS[k];
    g.stroke();
  }
}
setInterval(drawPlot, 1000); // the window slides even when nothing arrives
window.addEventListener('resize', drawPlot);
