// Events and alerts: the compliance check now (a recent copy in each additional region, a fresh
// primary backup, a log archive without holes), and what happened, newest first — alerts fired and
// resolved, backups committed or failed, copies, forks, drills. New events appear as they come.

import {PROJECT, get, query} from './api.js';
import {badge, card, field, fill, h, notice, select, table} from './dom.js';
import {duration, time} from './format.js';

const RULES = {
  copy_recent: 'Recent copy in the region',
  backup_fresh: 'Primary backup within the plan',
  log_gap_free: 'Log archive without holes',
};

/** Kinds that need someone's attention. */
const alarming = kind => kind === 'alert_firing' || kind.endsWith('_failed') || kind.includes('fail');

function kindBadge(kind) {
  const cls = kind === 'alert_resolved' || kind.endsWith('_committed') || kind.endsWith('_completed') || kind === 'drill_successful'
    ? 'ok'
    : alarming(kind) ? 'bad' : kind.startsWith('alert') ? 'warn' : 'muted';
  return h('span', {class: ['badge', `badge-${cls}`]}, kind);
}

/** An event's message; one recorded as JSON (a drill's result) is said in words, the JSON on hover. */
function message(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return text;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return text;
  const words = [
    v.state,
    v.region && `from ${v.region}`,
    v.backup && `backup ${v.backup}`,
    typeof v.duration_seconds === 'number' && `in ${duration(v.duration_seconds)}`,
    v.message,
  ].filter(Boolean).join(' · ');
  return h('span', {title: text}, words || text);
}

export async function eventsView(ctx, _arg, params) {
  document.title = 'Events & alerts — btar console';
  const filters = {service: params.get('service') || '', alerts: params.get('alerts') === '1'};
  const {services} = await get(`${PROJECT}/service`);
  const names = [...new Set([...services.map(s => s.service_name), filters.service].filter(Boolean))].sort();
  const service = select([['', 'Any service'], ...names.map(n => [n, n])], filters.service, {name: 'service'});
  const onlyAlerts = h('input', {type: 'checkbox', name: 'alerts', checked: filters.alerts});
  const apply = () => {
    location.hash = `#/events${query({service: service.value, alerts: onlyAlerts.checked ? '1' : ''})}`;
  };
  service.addEventListener('change', apply);
  onlyAlerts.addEventListener('change', apply);

  const checkBox = h('div', {'aria-live': 'polite'}, h('p', {class: 'muted'}, 'Running the check…'));
  const eventsBox = h('div');
  fill(ctx.main,
    h('div', {class: 'page-head'}, h('div', {}, h('h1', {}, 'Events & alerts'),
      h('p', {class: 'muted'}, 'The compliance check as of now, and every event the control plane recorded.'))),
    card('Compliance check', checkBox),
    card('Events', h('form', {class: 'filters filters-inline', 'aria-label': 'Filter events', onsubmit: ev => ev.preventDefault()},
      field('Service', service), h('label', {class: 'check'}, onlyAlerts, ' Alerts and failures only')), eventsBox));

  get(`/v1/check${query({service: filters.service})}`).then(report => {
    const failing = report.results.filter(r => r.status !== 'PASS');
    const passing = report.results.filter(r => r.status === 'PASS');
    const columns = [
      {label: 'Status', cell: r => badge(r.status)},
      {label: 'Service', cell: r => h('a', {href: `#/service/${encodeURIComponent(r.service)}`}, r.service)},
      {label: 'Rule', cell: r => RULES[r.rule] || r.rule},
      {label: 'Location', cell: r => r.region},
      {label: 'Detail', cell: r => r.detail},
    ];
    fill(checkBox,
      h('p', {}, failing.length
        ? h('strong', {class: 'bad-text'}, `${failing.length} of ${report.results.length} checks fail.`)
        : h('strong', {class: 'ok-text'}, `All ${report.results.length} checks pass.`), ' Checked ', time(report.checked_at), '.'),
      failing.length ? table('Failing checks', columns, failing, {rowClass: () => 'row-failed'}) : null,
      passing.length ? h('details', {}, h('summary', {}, `Passing checks (${passing.length})`), table('Passing checks', columns, passing)) : null);
  }).catch(e => fill(checkBox, notice('error', e.message)));

  let events = [];
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));
  const render = () => {
    const shown = filters.alerts ? events.filter(e => alarming(e.kind) || e.kind.startsWith('alert')) : events;
    fill(eventsBox, table('Events', [
      {label: 'Time', class: 'nowrap', cell: e => time(e.at)},
      {label: 'Service', class: 'nowrap', cell: e => (e.service ? h('a', {href: `#/service/${encodeURIComponent(e.service)}`}, e.service) : h('span', {class: 'muted'}, '—'))},
      {label: 'Kind', cell: e => kindBadge(e.kind)},
      {label: 'Message', class: 'wide', cell: e => message(e.message)},
    ], shown, {empty: filters.alerts ? 'No alert or failure recorded.' : 'No event recorded yet.', rowClass: e => (alarming(e.kind) ? 'row-failed' : undefined)}),
    h('p', {class: 'small muted'}, `${shown.length} event${shown.length === 1 ? '' : 's'} (the newest 200); new ones appear as they are recorded.`));
  };
  const poll = async () => {
    try {
      const after = events.length ? events[0].id : undefined;
      const answer = await get(`/v1/events${query({service: filters.service, after_id: after, limit: 200})}`);
      if (answer.events.length || !after) {
        events = [...answer.events, ...events].slice(0, 200);
        render();
      }
    } catch (e) {
      fill(eventsBox, notice('error', e.message));
    }
    timer = setTimeout(poll, 5000);
  };
  await poll();
}
