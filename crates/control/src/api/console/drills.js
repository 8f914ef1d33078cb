// Restore drills (AWS restore testing): each drill restored a backup into a scratch server, let it
// recover, ran its validation query and recorded the outcome and the time it took.

import {PROJECT, get, query} from './api.js';
import {badge, card, field, fill, h, select, table} from './dom.js';
import {duration, time} from './format.js';

export async function drillsView(ctx, _arg, params) {
  document.title = 'Restore drills — btar console';
  const wanted = params.get('service') || '';
  const [{services}, {drills}] = await Promise.all([get(`${PROJECT}/service`), get(`/v1/drills${query({service: wanted})}`)]);
  const names = [...new Set([...services.map(s => s.service_name), wanted].filter(Boolean))].sort();
  const service = select([['', 'Any service'], ...names.map(n => [n, n])], wanted, {name: 'service'});
  service.addEventListener('change', () => { location.hash = `#/drills${query({service: service.value})}`; });
  const ok = drills.filter(d => d.state === 'SUCCESSFUL').length;
  fill(ctx.main,
    h('div', {class: 'page-head'}, h('div', {}, h('h1', {}, 'Restore drills'),
      h('p', {class: 'muted'}, 'Drills run on the [[drill]] schedules of the server’s config, or with `btar drill run SERVICE`. Newest first.'))),
    card('Drills',
      h('form', {class: 'filters filters-inline', 'aria-label': 'Filter drills', onsubmit: ev => ev.preventDefault()}, field('Service', service)),
      drills.length ? h('p', {}, h('strong', {}, `${ok} of ${drills.length}`), ' drills succeeded.') : null,
      table('Restore drills', [
        {label: 'State', cell: d => badge(d.state)},
        {label: 'Started', cell: d => time(d.started_at)},
        {label: 'Service', cell: d => h('a', {href: `#/service/${encodeURIComponent(d.service)}`}, d.service)},
        {label: 'From', cell: d => d.region || h('span', {class: 'muted'}, 'home region')},
        {label: 'Backup', cell: d => h('span', {class: 'mono small'}, d.backup || '—')},
        {label: 'Restore time', numeric: true, cell: d => duration(d.duration_seconds)},
        {label: 'Reached', cell: d => reached(d.reached)},
        {label: 'Result', class: 'wide', cell: d => d.message},
      ], drills, {empty: 'No drill recorded yet.', rowClass: d => (d.state === 'SUCCESSFUL' ? undefined : 'row-failed')})));
}

function reached(r) {
  if (!r || typeof r !== 'object') return h('span', {class: 'muted'}, '—');
  if (r.last_commit_time) return h('span', {}, 'last commit ', time(r.last_commit_time));
  return r.lsn ? h('span', {class: 'mono small'}, r.lsn) : h('span', {class: 'muted'}, '—');
}
