// Copy jobs (AWS Backup's ListCopyJobs): filters by state, service, destination and creation
// time, paged by next_token, coloured by state; a FAILED job shows its status message.

import {PROJECT, get, query} from './api.js';
import {badge, card, field, fill, h, notice, select, table} from './dom.js';
import {bytes, duration, localInput, parseLocalInput, time} from './format.js';

const STATES = ['CREATED', 'RUNNING', 'COMPLETED', 'FAILED', 'PARTIAL'];
const SIZES = ['25', '50', '100', '250'];

export async function copyJobsView(ctx, _arg, params) {
  document.title = 'Copy jobs — btar console';
  const filters = {
    state: params.get('state') || '',
    service: params.get('service') || '',
    destination_region: params.get('destination_region') || '',
    created_after: params.get('created_after') || '',
    created_before: params.get('created_before') || '',
    limit: SIZES.includes(params.get('limit')) ? params.get('limit') : '25',
  };
  const [{services}, {clouds}] = await Promise.all([get(`${PROJECT}/service`), get('/v1/clouds')]);
  const names = [...new Set([...services.map(s => s.service_name), filters.service].filter(Boolean))].sort();

  const state = select([['', 'Any state'], ...STATES.map(s => [s, s])], filters.state, {name: 'state'});
  const service = select([['', 'Any service'], ...names.map(n => [n, n])], filters.service, {name: 'service'});
  const dest = select([['', 'Any destination'], ...clouds.map(c => [c.cloud_name, `${c.cloud_name} (${c.provider})`])], filters.destination_region, {name: 'destination_region'});
  const asLocal = iso => (iso ? localInput(new Date(iso)) : '');
  const after = h('input', {type: 'datetime-local', step: 1, name: 'created_after', value: asLocal(filters.created_after)});
  const before = h('input', {type: 'datetime-local', step: 1, name: 'created_before', value: asLocal(filters.created_before)});
  const size = select(SIZES.map(n => [n, `${n} per page`]), filters.limit, {name: 'limit'});
  const formError = h('div', {'aria-live': 'assertive'});
  const form = h('form', {class: 'filters', 'aria-label': 'Filter copy jobs'},
    field('State', state), field('Service', service), field('Destination', dest),
    field('Created after', after), field('Created before', before), field('Page size', size),
    h('div', {class: 'filter-actions'},
      h('button', {type: 'submit', class: 'btn btn-primary'}, 'Apply'),
      h('button', {type: 'button', class: 'btn btn-ghost', onclick: () => { location.hash = '#/copy-jobs'; }}, 'Reset')),
    formError);
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const iso = input => {
      if (!input.value) return '';
      const d = parseLocalInput(input.value);
      return d ? d.toISOString() : null;
    };
    const a = iso(after);
    const b = iso(before);
    if (a === null || b === null) {
      fill(formError, notice('error', 'Enter complete dates and times, or leave the field empty.'));
      return;
    }
    location.hash = `#/copy-jobs${query({state: state.value, service: service.value, destination_region: dest.value, created_after: a, created_before: b, limit: size.value === '25' ? '' : size.value})}`;
  });

  const results = h('div', {'aria-live': 'polite'});
  const pager = h('div', {class: 'pager'});
  const auto = h('input', {type: 'checkbox', checked: true});
  const stamp = h('span', {class: 'small muted'});
  fill(ctx.main,
    h('div', {class: 'page-head'}, h('div', {}, h('h1', {}, 'Copy jobs'),
      h('p', {class: 'muted'}, 'Each copies one backup from its primary location to an additional region. Newest first.'))),
    card('Filters', form),
    card('Jobs', h('div', {class: 'card-tools'}, h('label', {class: 'check'}, auto, ' Refresh every 5 s'), stamp), results, pager));

  // The tokens of the pages before the current one: `Newer` goes back to the previous token.
  const tokens = [];
  let current = '';
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  const load = async () => {
    clearTimeout(timer);
    let answer;
    try {
      answer = await get(`/v1/copy-jobs${query({...filters, next_token: current})}`);
    } catch (e) {
      fill(results, notice('error', e.message));
      return;
    }
    fill(stamp, 'updated ', time(new Date()));
    const jobs = answer.copy_jobs;
    fill(results, jobsTable(jobs));
    const page = tokens.length + 1;
    fill(pager,
      h('button', {type: 'button', class: 'btn btn-small', disabled: !tokens.length, onclick: () => { current = tokens.pop(); load(); }}, '← Newer'),
      h('span', {class: 'muted'}, `Page ${page} · ${jobs.length} job${jobs.length === 1 ? '' : 's'}`),
      h('button', {type: 'button', class: 'btn btn-small', disabled: !answer.next_token, onclick: () => { tokens.push(current); current = answer.next_token; load(); }}, 'Older →'));
    if (auto.checked) timer = setTimeout(load, 5000);
  };
  auto.addEventListener('change', () => (auto.checked ? load() : clearTimeout(timer)));
  await load();
}

function jobsTable(jobs) {
  return table('Copy jobs', [
    {label: 'State', cell: j => badge(j.state)},
    {label: 'Job', cell: j => h('span', {}, h('span', {class: 'mono', title: j.copy_job_id}, j.copy_job_id.slice(0, 12)), h('div', {class: 'small muted'}, j.created_by))},
    {label: 'Service', cell: j => h('a', {href: `#/service/${encodeURIComponent(j.service)}`}, j.service)},
    {label: 'From → to', cell: j => h('span', {class: 'nowrap'}, j.source_region, ' → ', h('strong', {}, j.destination_region))},
    {label: 'Backup', cell: j => h('span', {class: 'mono small'}, j.backup_name)},
    {label: 'Created', cell: j => time(j.creation_date)},
    {label: 'Completed', cell: j => (j.completion_date
      ? h('span', {}, time(j.completion_date), h('div', {class: 'small muted'}, `took ${duration((Date.parse(j.completion_date) - Date.parse(j.start_date || j.creation_date)) / 1000)}`))
      : h('span', {class: 'muted'}, '—'))},
    {label: 'Transferred', numeric: true, cell: j => transferred(j)},
  ], jobs, {
    empty: 'No copy job matches these filters.',
    rowClass: j => `row-${j.state.toLowerCase()}`,
    after: j => {
      if (!j.status_message && !j.retry_of && !j.next_attempt_at) return null;
      return h('div', {class: ['job-message', j.state === 'FAILED' && 'job-failed']},
        j.state === 'FAILED' ? h('strong', {}, 'Failed: ') : null,
        j.status_message || '',
        j.next_attempt_at ? h('span', {}, ' · next attempt ', time(j.next_attempt_at)) : null,
        j.attempts > 1 ? ` · ${j.attempts} attempts` : '',
        j.retry_of ? h('span', {}, ' · retries ', h('span', {class: 'mono'}, j.retry_of.slice(0, 12))) : null);
    },
  });
}

function transferred(j) {
  const total = j.backup_size_in_bytes;
  const text = h('span', {}, bytes(j.bytes_transferred), total ? h('span', {class: 'muted'}, ` of ${bytes(total)}`) : null);
  if (j.state !== 'RUNNING' || !j.chunks_total) return text;
  return h('span', {}, text, h('progress', {max: j.chunks_total, value: j.chunks_copied, 'aria-label': `chunks copied of ${j.copy_job_id}`}));
}
