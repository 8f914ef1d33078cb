// The replication lag chart of one destination region (uPlot, vendored from npm): backup lag and
// log lag in seconds on the left axis, bytes pending on the right, over the report's period. The
// canvas has a text twin: the newest values in words and every point in a table.

import uPlot from './uPlot.esm.js';
import {h, table} from './dom.js';
import {bytes, duration, localText, relative, time} from './format.js';

const SERIES = [
  {key: 'backup_lag_seconds', label: 'Backup lag', stroke: '#0969da', scale: 's', fmt: duration},
  {key: 'wal_lag_seconds', label: 'Log lag', stroke: '#bc4c00', scale: 's', fmt: duration},
  {key: 'bytes_pending', label: 'Bytes pending', stroke: '#8250df', scale: 'b', fmt: bytes, dash: [6, 4]},
];

/** The x values (bucket starts) of every series, and each series aligned on them (null = no point). */
function align(metrics) {
  const xs = [...new Set(SERIES.flatMap(s => (metrics[s.key] || []).map(p => p[0])))].sort((a, b) => a - b);
  const ys = SERIES.map(s => {
    const at = new Map((metrics[s.key] || []).map(p => [p[0], p[1]]));
    return xs.map(x => (at.has(x) ? at.get(x) : null));
  });
  return [xs, ...ys];
}

/** A 24-hour x-axis label: the time of day, or the date at midnight and for steps of days. */
function timeTick(v, incr) {
  const text = localText(new Date(v * 1000));
  const clock = text.slice(11, 16);
  return incr >= 86400 || clock === '00:00' ? text.slice(5, 10) : clock;
}

const last = series => (series && series.length ? series[series.length - 1] : null);

/**
 * Words for the newest point of each series, and, when a WAL streamer runs (`btar log-stream`),
 * how far the region's streamed log is behind the server now.
 */
export function lagSummary(metrics, streamed) {
  const parts = SERIES.map(s => {
    const p = last(metrics[s.key]);
    return h('span', {class: 'stat'}, h('span', {class: 'stat-label'}, s.label), p ? s.fmt(p[1]) : '—');
  });
  const rec = last(metrics.latest_recoverable_time);
  parts.push(h('span', {class: 'stat'}, h('span', {class: 'stat-label'}, 'Latest recoverable'),
    rec ? time(new Date(rec[1] * 1000)) : '—'));
  if (streamed) {
    const behind = streamed.error
      ? `store failing: ${streamed.error}`
      : `${duration(streamed.seconds_behind)} behind (${bytes(streamed.bytes_behind)})`;
    parts.push(h('span', {class: 'stat', title: `last reported by the streamer: ${relative(streamed.updated_at)}`},
      h('span', {class: 'stat-label'}, 'Streamed WAL'), behind));
  }
  return h('div', {class: 'stats'}, parts);
}

/**
 * Draws the chart into `box` for report `report` and region `region`; returns a function that
 * removes it (and its resize observer).
 */
export function lagChart(box, report, region) {
  const metrics = report.metrics[region] || {};
  const data = align(metrics);
  const start = Date.parse(report.start) / 1000;
  const end = Date.parse(report.end) / 1000;
  const chartBox = h('div', {class: 'chart', role: 'img',
    'aria-label': `Replication lag to ${region} over the last ${report.period}: backup lag, log lag and bytes pending`});
  const rows = data[0].map((x, i) => ({x, values: SERIES.map((_, j) => data[j + 1][i])}));
  const details = h('details', {class: 'chart-data'}, h('summary', {}, `Data points (${rows.length})`),
    table(`Lag samples for ${region}`, [
      {label: 'Bucket start', cell: r => time(new Date(r.x * 1000))},
      ...SERIES.map((s, j) => ({label: s.label, numeric: true, cell: r => (r.values[j] === null ? '—' : s.fmt(r.values[j]))})),
    ], rows, {empty: 'No samples in this period.'}));
  box.append(chartBox, details);
  if (!rows.length) {
    chartBox.classList.add('chart-empty');
    chartBox.append(h('p', {class: 'muted'}, `No lag samples for ${region} in the last ${report.period}. Samples are recorded as backups and logs are copied.`));
    return () => {};
  }
  const axis = {stroke: '#3d4650', grid: {stroke: '#e6e9ed', width: 1}, ticks: {stroke: '#c9d1d9', width: 1}, font: '12px system-ui, sans-serif'};
  const opts = {
    width: Math.max(chartBox.clientWidth || box.clientWidth || 600, 300),
    height: 220,
    cursor: {drag: {x: true, y: false}},
    scales: {
      x: {time: true, range: () => [start, end]},
      s: {range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.1]},
      b: {range: (u, min, max) => [0, Math.max(max || 0, 1024) * 1.1]},
    },
    series: [
      {value: (u, v) => (v === null ? '—' : localText(new Date(v * 1000)))},
      ...SERIES.map(s => ({
        label: s.label, scale: s.scale, stroke: s.stroke, width: 2, dash: s.dash, spanGaps: true,
        points: {show: true, size: 5, fill: s.stroke},
        value: (u, v) => (v === null || v === undefined ? '—' : s.fmt(v)),
      })),
    ],
    axes: [
      {...axis, values: (u, splits, _i, _space, incr) => splits.map(v => timeTick(v, incr))},
      {...axis, scale: 's', size: 72, values: (u, splits) => splits.map(v => duration(v))},
      {...axis, scale: 'b', side: 1, size: 78, grid: {show: false}, values: (u, splits) => splits.map(v => bytes(v))},
    ],
  };
  const plot = new uPlot(opts, data, chartBox);
  const resize = new ResizeObserver(() => {
    const w = chartBox.clientWidth;
    if (w > 0 && Math.abs(w - plot.width) > 2) plot.setSize({width: w, height: 220});
  });
  resize.observe(chartBox);
  return () => {
    resize.disconnect();
    plot.destroy();
  };
}
