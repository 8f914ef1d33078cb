//! The console: one static "Backups page". It holds no data and no secret; it asks for the API
//! token (kept in the tab's sessionStorage) and calls the API from the browser. Everything shown is
//! inserted as text, never as HTML, so names from the catalog cannot inject markup.

use axum::http::header;
use axum::response::IntoResponse;

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page only talks to its own origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        PAGE,
    )
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>btar — backups</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.err{color:#b00}h2{margin-top:1.5em}
</style></head><body>
<h1>btar — backups</h1>
<form id="f"><label>API token <input id="token" type="password" size="40" autocomplete="off"></label>
<button>Load</button> <span id="status"></span></form>
<div id="out"></div>
<script>
const $ = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); return e; };
const tokenInput = document.getElementById('token');
// A link may carry the token in its fragment (never sent to a server); it is moved out of the URL.
const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromLink) { sessionStorage.setItem('btar-token', fromLink); history.replaceState(null, '', location.pathname); }
tokenInput.value = sessionStorage.getItem('btar-token') || '';
async function api(path, body) {
  const opts = {headers: {'Authorization': 'Bearer ' + tokenInput.value}};
  if (body !== undefined) { opts.method = 'POST'; opts.body = JSON.stringify(body); opts.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(path, opts);
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(r.status + ': ' + (j.message || r.statusText));
  return j;
}
function table(cols, rows) {
  const t = $('table'), h = t.insertRow();
  cols.forEach(c => h.appendChild($('th', c)));
  rows.forEach(r => { const tr = t.insertRow(); r.forEach(v => tr.insertCell().textContent = v ?? ''); });
  return t;
}
const last = s => (s && s.length) ? s[s.length - 1][1] : '';
async function load() {
  const out = document.getElementById('out'), status = document.getElementById('status');
  sessionStorage.setItem('btar-token', tokenInput.value);
  out.replaceChildren(); status.textContent = 'loading…'; status.className = '';
  try {
    const {services} = await api('/v1/project/default/service');
    out.appendChild($('h2', 'Services'));
    out.appendChild(table(['service', 'type', 'home region', 'plan', 'additional regions', 'next region change'],
      services.map(s => [s.service_name, s.service_type, s.cloud_name, s.plan,
        (s.user_config.additional_backup_regions || []).join(', '), s.next_regions_change_at || 'now'])));
    for (const s of services) {
      const base = '/v1/project/default/service/' + encodeURIComponent(s.service_name);
      out.appendChild($('h2', 'Backups of ' + s.service_name));
      try {
        const v = await api(base + '/backups');
        out.appendChild(table(['backup', 'time', 'size', 'primary', 'additional regions'],
          v.backups.map(b => [b.backup_name, b.backup_time, b.data_size, b.storage_location,
            b.additional_regions.map(a => a.region + ': ' + a.status).join(', ')])));
        const p = v.pitr;
        out.appendChild(table(['location', 'recoverable from', 'to'],
          [p.primary_region].concat(p.additional_regions).map(r => [r.region, r.pitr_range_start, r.pitr_range_end])));
      } catch (e) { out.appendChild($('p', e.message)).className = 'err'; }
      const rep = await api(base + '/backup_to_another_region/report', {period: 'hour'});
      out.appendChild($('h3', 'Lag (latest in the last hour)'));
      out.appendChild(table(['destination', 'backup lag s', 'WAL lag s', 'bytes pending', 'latest recoverable'],
        Object.entries(rep.metrics).map(([r, m]) => [r, last(m.backup_lag_seconds), last(m.wal_lag_seconds),
          last(m.bytes_pending), m.latest_recoverable_time.length ? new Date(last(m.latest_recoverable_time) * 1000).toISOString() : ''])));
    }
    const {copy_jobs} = await api('/v1/copy-jobs?limit=50');
    out.appendChild($('h2', 'Copy jobs (latest 50)'));
    out.appendChild(table(['id', 'service', 'from', 'to', 'backup', 'state', 'created', 'completed', 'bytes', 'message'],
      copy_jobs.map(j => [j.copy_job_id, j.service, j.source_region, j.destination_region, j.backup_name,
        j.state, j.creation_date, j.completion_date, j.bytes_transferred, j.status_message])));
    status.textContent = 'loaded ' + new Date().toLocaleTimeString();
  } catch (e) { status.textContent = e.message; status.className = 'err'; }
}
document.getElementById('f').addEventListener('submit', ev => { ev.preventDefault(); load(); });
if (tokenInput.value) load();
</script></body></html>
"#;
