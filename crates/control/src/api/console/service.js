// A service's Backups page (Aiven's): where its backups live and in what state, the recoverable
// window of each location on one time axis, the replication lag to each additional region, and
// the actions — Back up now, backup regions, Fork & restore.

import {api, get, query, servicePath} from './api.js';
import {badge, card, fill, h, notice, table, toast} from './dom.js';
import {ENGINES, bytes, duration, localText, relative, time, utcText} from './format.js';
import {lagChart, lagSummary} from './charts.js';
import {openRegions} from './regions.js';
import {openFork} from './fork.js';

const PERIODS = ['hour', 'day', 'week', 'month', 'year'];

export async function serviceView(ctx, name, params) {
  document.title = `${name} — btar console`;
  const base = servicePath(name);
  const page = {name, base, period: PERIODS.includes(params.get('period')) ? params.get('period') : 'day'};
  let timers = [];
  let charts = [];
  ctx.onLeave(() => {
    timers.forEach(clearTimeout);
    charts.forEach(f => f());
    page.left = true;
  });

  const [svcAnswer, backups, {clouds}] = await Promise.all([get(base), get(`${base}/backups`), get('/v1/clouds')]);
  page.svc = svcAnswer.service;
  page.backups = backups;
  page.clouds = clouds;

  const meta = h('p', {class: 'muted meta'});
  const regionsBox = h('div');
  const windowBox = h('div');
  const backupsBox = h('div');
  const lagBox = h('div', {class: 'lag'});
  const activity = h('div', {class: 'activity', 'aria-live': 'polite'});
  const backupButton = h('button', {type: 'button', class: 'btn btn-primary', onclick: () => backUpNow()}, 'Back up now');
  const forkButton = h('button', {type: 'button', class: 'btn', onclick: () => openFork(page)}, 'Fork & restore…');
  const refreshButton = h('button', {type: 'button', class: 'btn btn-ghost', onclick: () => refresh(true).then(() => toast('Refreshed'))}, 'Refresh');
  const periodPicker = h('fieldset', {class: 'segmented'},
    h('legend', {class: 'sr-only'}, 'Period'),
    PERIODS.map(p => h('label', {},
      h('input', {type: 'radio', name: 'period', value: p, checked: p === page.period,
        onchange: () => { page.period = p; loadLag(); }}),
      h('span', {}, p))));

  fill(ctx.main,
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/services'}, 'Services'), ' / ', h('span', {'aria-current': 'page'}, name)),
    h('div', {class: 'page-head'},
      h('div', {}, h('h1', {}, name), meta),
      h('div', {class: 'actions'}, backupButton, forkButton, refreshButton)),
    activity,
    h('div', {class: 'grid-2'},
      card('Backup to another region', regionsBox),
      card('Recoverable window', windowBox)),
    card('Backups', backupsBox),
    card('Replication lag', h('div', {class: 'card-tools'}, h('span', {class: 'muted'}, 'Worst value per bucket, per additional region'), periodPicker), lagBox));

  page.refresh = refresh;
  page.provider = region => (clouds.find(c => c.cloud_name === region) || {}).provider;
  render();
  loadLag();

  /** Reloads the service and its backups; with `withLag`, the lag report too. */
  async function refresh(withLag) {
    const [s, b] = await Promise.all([get(base), get(`${base}/backups`)]);
    if (page.left) return;
    page.svc = s.service;
    page.backups = b;
    render();
    if (withLag) loadLag();
  }

  function render() {
    const svc = page.svc;
    fill(meta, `${ENGINES[svc.service_type] || svc.service_type} · home region `, h('strong', {}, svc.cloud_name),
      page.provider(svc.cloud_name) ? ` (${page.provider(svc.cloud_name)})` : '', ` · plan ${svc.plan || 'none'} · created `, time(svc.create_time));
    fill(regionsBox, regionsSummary(page, () => openRegions(page)));
    fill(windowBox, windows(page.backups));
    fill(backupsBox, backupsTable(page.backups));
    // While a copy is pending, the page follows it.
    const pending = page.backups.backups.some(b => b.additional_regions.some(a => a.status === 'PENDING'));
    if (pending && !page.following) {
      page.following = true;
      timers.push(setTimeout(() => {
        page.following = false;
        refresh().catch(() => {});
      }, 5000));
    }
  }

  async function loadLag() {
    charts.forEach(f => f());
    charts = [];
    fill(lagBox, h('p', {class: 'muted'}, 'Loading…'));
    let report;
    try {
      report = await api('POST', `${base}/backup_to_another_region/report`, {period: page.period});
    } catch (e) {
      fill(lagBox, notice('error', e.message));
      return;
    }
    if (page.left) return;
    const regions = Object.keys(report.metrics).sort();
    if (!regions.length) {
      fill(lagBox, h('p', {class: 'muted'}, 'No additional backup region: there is no lag to show. Enable one under “Backup to another region”.'));
      return;
    }
    fill(lagBox);
    for (const region of regions) {
      const box = h('div', {class: 'lag-region'});
      lagBox.append(h('section', {class: 'lag-block', 'aria-label': `Lag to ${region}`},
        h('h3', {}, `To ${region}`),
        lagSummary(report.metrics[region], (report.streamed || []).find(s => s.region === region)), box));
      charts.push(lagChart(box, report, region));
    }
  }

  /** POST …/backups, then follow the backup until it commits and its copies finish. */
  async function backUpNow() {
    backupButton.disabled = true;
    const known = new Set(page.backups.backups.map(b => b.backup_name));
    const steps = h('ol', {class: 'steps'});
    const step = (text, state = 'active') => {
      const li = h('li', {class: `step step-${state}`}, text);
      steps.append(li);
      return li;
    };
    fill(activity, h('div', {class: 'card activity-card'}, h('h2', {}, 'Back up now'), steps));
    const startedStep = step(`Starting a backup of ${name}…`);
    let lastEvent = 0;
    try {
      const ev = await get(`/v1/events${query({service: name, limit: 1})}`);
      lastEvent = ev.events.length ? ev.events[0].id : 0;
      const answer = await api('POST', `${base}/backups`);
      fill(startedStep, answer.message || 'Backup started.');
      startedStep.className = 'step step-done';
    } catch (e) {
      startedStep.className = 'step step-failed';
      fill(startedStep, e.message);
      backupButton.disabled = false;
      return;
    }
    const commitStep = step(`Waiting for the backup to commit in ${page.svc.cloud_name}…`);
    let copyStep = null;
    let backupName = null;
    const poll = async () => {
      if (page.left) return;
      try {
        if (!backupName) {
          const ev = await get(`/v1/events${query({service: name, after_id: lastEvent})}`);
          const failed = ev.events.find(e => e.kind === 'backup_failed');
          if (failed) {
            commitStep.className = 'step step-failed';
            fill(commitStep, `The backup failed: ${failed.message}`);
            backupButton.disabled = false;
            return;
          }
        }
        await refresh();
        const b = page.backups.backups.find(x => backupName ? x.backup_name === backupName : !known.has(x.backup_name));
        if (b) {
          if (!backupName) {
            backupName = b.backup_name;
            commitStep.className = 'step step-done';
            fill(commitStep, `Backup ${b.backup_name} committed in ${b.storage_location} (${bytes(b.data_size)}, `, time(b.backup_time), ').');
            copyStep = step('');
          }
          const regions = b.additional_regions.filter(a => !a.paused);
          if (!regions.length) {
            copyStep.className = 'step step-done';
            fill(copyStep, 'No additional backup region: nothing to copy.');
            backupButton.disabled = false;
            return;
          }
          const pending = regions.some(a => a.status === 'PENDING');
          copyStep.className = `step ${pending ? 'step-active' : regions.every(a => a.status === 'COMPLETED') ? 'step-done' : 'step-failed'}`;
          fill(copyStep, pending ? 'Copying to ' : 'Copied to ',
            regions.map(a => h('span', {class: 'copy-state'}, `${a.region} `, badge(a.status, a.reason))),
            ' — ', h('a', {href: `#/copy-jobs${query({service: name})}`}, 'see its copy jobs'));
          if (!pending) {
            backupButton.disabled = false;
            loadLag();
            return;
          }
        }
      } catch (e) {
        fill(commitStep, notice('error', e.message));
      }
      timers.push(setTimeout(poll, 1500));
    };
    timers.push(setTimeout(poll, 1000));
  }
}

/** The additional regions, the rules, and the button that changes them. */
function regionsSummary(page, onChange) {
  const svc = page.svc;
  const extra = svc.user_config.additional_backup_regions || [];
  const next = svc.next_regions_change_at && new Date(svc.next_regions_change_at) > new Date() ? svc.next_regions_change_at : null;
  return h('div', {},
    extra.length
      ? h('p', {}, 'Every backup and the log archive are copied to ',
        h('span', {class: 'chips'}, extra.map(r => h('span', {class: 'region'}, r, page.provider(r) ? h('span', {class: 'provider'}, page.provider(r)) : null))), '.')
      : h('p', {}, h('strong', {}, 'Disabled.'), ' Backups of this service live only in its home region ', h('strong', {}, svc.cloud_name), '.'),
    h('p', {class: 'muted'}, next
      ? h('span', {}, 'Regions changed recently: the next change is allowed ', time(next), ` (${relative(next)}).`)
      : 'A change is allowed now (at most one change per 24 hours).'),
    h('button', {type: 'button', class: 'btn', onclick: onChange}, extra.length ? 'Change or disable regions…' : 'Enable backup to another region…'));
}

/** Each location's recoverable window as a bar on one time axis, with its backups as dots. */
function windows(view) {
  const locs = [{...view.pitr.primary_region, role: 'primary'}, ...view.pitr.additional_regions.map(r => ({...r, role: 'secondary'}))];
  const t = iso => (iso ? Date.parse(iso) : null);
  const now = Date.now();
  const starts = locs.map(l => t(l.pitr_range_start)).filter(x => x !== null);
  const backupTimes = view.backups.map(b => t(b.backup_time));
  if (!starts.length && !backupTimes.length) {
    return h('p', {class: 'muted'}, 'No backup yet, so nothing is recoverable. Take one with “Back up now”.');
  }
  let lo = Math.min(...starts, ...backupTimes);
  let hi = Math.max(now, ...locs.map(l => t(l.pitr_range_end) || 0));
  const pad = Math.max((hi - lo) * 0.04, 30000);
  lo -= pad;
  hi += pad;
  const pct = x => `${(((x - lo) / (hi - lo)) * 100).toFixed(3)}%`;
  const place = (el, from, to) => {
    el.style.left = pct(from);
    if (to !== undefined) el.style.width = `${Math.max(((to - from) / (hi - lo)) * 100, 0.4).toFixed(3)}%`;
    return el;
  };
  const rows = locs.map(l => {
    const start = t(l.pitr_range_start);
    const end = t(l.pitr_range_end);
    const track = h('div', {class: 'track'});
    if (start !== null && end !== null) {
      const label = `${l.region}: recoverable from ${localText(new Date(start))} to ${localText(new Date(end))} (${duration((end - start) / 1000)}); UTC ${utcText(new Date(start))} to ${utcText(new Date(end))}`;
      track.append(place(h('div', {class: ['bar', `bar-${l.role}`, l.paused && 'bar-paused'], title: label, role: 'img', 'aria-label': label}), start, end));
    }
    for (const b of view.backups) {
      const st = l.role === 'primary' ? b.status : (b.additional_regions.find(a => a.region === l.region) || {}).status;
      if (st === 'COMPLETED') {
        track.append(place(h('div', {class: 'dot', title: `${b.backup_name}, ${localText(new Date(b.backup_time))}`}), t(b.backup_time)));
      }
    }
    track.append(place(h('div', {class: 'now', title: `now, ${localText(new Date(now))}`}), now));
    const detail = l.error
      ? h('span', {class: 'bad-text'}, l.error)
      : start !== null
        ? h('span', {}, time(l.pitr_range_start, {compact: true}), ' → ', time(l.pitr_range_end, {compact: true}))
        : h('span', {class: 'muted'}, 'no backup here yet');
    return h('div', {class: 'window-row'},
      h('div', {class: 'window-label'}, h('strong', {}, l.region), ' ', h('span', {class: 'muted'}, l.role), l.paused ? h('span', {class: 'muted'}, ' · paused') : null, h('div', {class: 'small'}, detail)),
      track);
  });
  return h('div', {class: 'windows'}, rows, h('div', {class: 'window-row axis-row'}, h('div'), axis(lo, hi, place)),
    h('p', {class: 'small muted'}, 'Bars: the window a Fork & restore from that location can reach. Dots: backups held there. Line: now.'));
}

/** Tick labels along the window axis. */
function axis(lo, hi, place) {
  const span = hi - lo;
  const steps = [5e3, 10e3, 15e3, 30e3, 60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3, 30 * 86400e3, 90 * 86400e3, 365 * 86400e3];
  const step = steps.find(s => span / s <= 6) || steps[steps.length - 1];
  const offset = new Date().getTimezoneOffset() * 60e3;
  const box = h('div', {class: 'axis', 'aria-hidden': 'true'});
  for (let x = Math.ceil((lo - offset) / step) * step + offset; x <= hi; x += step) {
    const d = new Date(x);
    const label = span > 2 * 86400e3 ? localText(d).slice(5, 16) : localText(d).slice(11, step < 60e3 ? 19 : 16);
    box.append(place(h('span', {class: 'tick'}, label), x));
  }
  return box;
}

/** Every backup, newest first, with its state in each location. */
function backupsTable(view) {
  const regions = [...new Set([...view.pitr.additional_regions.map(r => r.region), ...view.backups.flatMap(b => b.additional_regions.map(a => a.region))])];
  const home = view.pitr.primary_region.region;
  const rows = [...view.backups].sort((a, b) => Date.parse(b.backup_time) - Date.parse(a.backup_time));
  const state = (status, expires, reason) => h('span', {class: 'loc-state'}, badge(status, reason),
    expires ? h('span', {class: 'small muted'}, ' until ', time(expires)) : null);
  return table('Backups per location', [
    {label: 'Backup', cell: b => h('span', {}, h('span', {class: 'mono'}, b.backup_name), h('div', {class: 'small muted'}, b.incremental ? 'incremental' : 'full'))},
    {label: 'Taken', cell: b => h('span', {}, time(b.backup_time), h('div', {class: 'small muted'}, relative(b.backup_time)))},
    {label: 'Size', numeric: true, cell: b => bytes(b.data_size)},
    {label: `${home} (primary)`, cell: b => state(b.status, b.expires_at, b.reason)},
    ...regions.map(r => ({label: `${r} (secondary)`, cell: b => {
      const a = b.additional_regions.find(x => x.region === r);
      return a ? state(a.status, a.expires_at, a.reason || a.pause_reason) : badge('NOT_COPIED');
    }})),
  ], rows, {empty: 'No backup yet.'});
}
