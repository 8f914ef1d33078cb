// Human units and times. Times are shown in the browser's local time, with UTC on hover.

import {h} from './dom.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  // 1023.9 KiB would print as "1024 KiB": say "1.00 MiB".
  if (Number(v.toFixed(digits)) >= 1024 && i < UNITS.length - 1) return `${(v / 1024).toFixed(2)} ${UNITS[i + 1]}`;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

/** 3725 → "1 h 2 min"; 42.4 → "42 s"; 0.35 → "0.35 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  let s = Number(seconds);
  if (s < 0) return `−${duration(-s)}`;
  if (s === 0) return '0 s';
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s < 10 && !Number.isInteger(s) ? s.toFixed(1) : Math.round(s)} s`;
  // The largest unit and the one below it: "2 d 3 h", "1 h 0 min" → "1 h".
  const units = [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]];
  const i = units.findIndex(([, size]) => s >= size);
  const [name, size] = units[i];
  const [small, smallSize] = units[i + 1];
  const rest = Math.floor((s % size) / smallSize);
  return `${Math.floor(s / size)} ${name}${rest ? ` ${rest} ${small}` : ''}`;
}

const pad = n => String(n).padStart(2, '0');

/** A date in local time, e.g. "2026-11-30 08:15:02". */
export function localText(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The same in UTC, e.g. "2026-11-30 07:15:02 UTC". */
export function utcText(d) {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** The value of an `<input type="datetime-local" step="1">` for a date. */
export function localInput(d) {
  return localText(d).replace(' ', 'T');
}

/** A `datetime-local` value (local time) as a Date, or null when empty or malformed. */
export function parseLocalInput(v) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?$/.exec(v || '');
  if (!m) return null;
  const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * A `<time>` element: local time shown, UTC in its tooltip, ISO in `datetime`. `compact` drops
 * today's date.
 */
export function time(iso, {compact = false} = {}) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const text = localText(d);
  const today = localText(new Date()).slice(0, 10);
  return h('time', {datetime: d.toISOString(), title: utcText(d)}, compact && text.startsWith(today) ? text.slice(11) : text);
}

/** "3 min ago" / "in 2 h" relative to now. */
export function relative(iso) {
  const d = iso instanceof Date ? iso : new Date(iso);
  const secs = (d.getTime() - Date.now()) / 1000;
  if (Math.abs(secs) < 5) return 'now';
  const text = duration(Math.abs(Math.round(secs)));
  return secs < 0 ? `${text} ago` : `in ${text}`;
}

/** The browser's UTC offset as "UTC+01:00". */
export function zoneName() {
  const off = -new Date().getTimezoneOffset();
  const sign = off >= 0 ? '+' : '−';
  return `UTC${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

export const ENGINES = {pg: 'PostgreSQL', mysql: 'MySQL / MariaDB'};
