// Services: every live service with its home region and where its copies go; the newest backup
// and the state of its copies are filled in as each service's backup list arrives.

import {PROJECT, get, servicePath} from './api.js';
import {badge, card, fill, h, notice, table} from './dom.js';
import {ENGINES, bytes, relative, time} from './format.js';

export async function servicesView({main}) {
  document.title = 'Services — btar console';
  const [{services}, {clouds}] = await Promise.all([get(`${PROJECT}/service`), get('/v1/clouds')]);
  const provider = Object.fromEntries(clouds.map(c => [c.cloud_name, c.provider]));
  const latest = new Map(services.map(s => [s.service_name, h('span', {class: 'muted'}, 'loading…')]));
  const copies = new Map(services.map(s => [s.service_name, h('span')]));
  const region = name => h('span', {class: 'region'}, name, provider[name] ? h('span', {class: 'provider'}, provider[name]) : null);

  const list = table('Services', [
    {label: 'Service', cell: s => h('span', {}, h('a', {href: `#/service/${encodeURIComponent(s.service_name)}`, class: 'strong'}, s.service_name),
      s.user_config.service_to_fork_from ? h('div', {class: 'small muted'}, `fork of ${s.user_config.service_to_fork_from}`) : null)},
    {label: 'Engine', cell: s => ENGINES[s.service_type] || s.service_type},
    {label: 'Home region', cell: s => region(s.cloud_name)},
    {label: 'Backup to another region', cell: s => {
      const extra = s.user_config.additional_backup_regions || [];
      return extra.length ? h('span', {class: 'chips'}, extra.map(region)) : h('span', {class: 'muted'}, 'disabled');
    }},
    {label: 'Plan', cell: s => s.plan || h('span', {class: 'muted'}, 'none')},
    {label: 'Latest backup', cell: s => latest.get(s.service_name)},
    {label: 'Its copies', cell: s => copies.get(s.service_name)},
  ], services, {empty: 'No services yet. Declare one in the config or create one with `btar service create`.'});

  fill(main,
    h('div', {class: 'page-head'}, h('div', {}, h('h1', {}, 'Services'),
      h('p', {class: 'muted'}, `${services.length} service${services.length === 1 ? '' : 's'}; open one for its backups, regions, lag and Fork & restore.`))),
    card('All services', list));

  // Newest backup per service, without holding the page up.
  for (const s of services) {
    get(`${servicePath(s.service_name)}/backups`).then(v => {
      const newest = v.backups.reduce((a, b) => (!a || new Date(b.backup_time) > new Date(a.backup_time) ? b : a), null);
      if (!newest) {
        fill(latest.get(s.service_name), 'none yet');
        return;
      }
      fill(latest.get(s.service_name), time(newest.backup_time), ' ',
        h('span', {class: 'muted'}, `(${relative(newest.backup_time)}, ${bytes(newest.data_size)})`));
      latest.get(s.service_name).classList.remove('muted');
      fill(copies.get(s.service_name), newest.additional_regions.length
        ? newest.additional_regions.map(a => h('span', {class: 'copy-state'}, `${a.region} `, badge(a.status, a.reason)))
        : h('span', {class: 'muted'}, '—'));
    }).catch(e => fill(latest.get(s.service_name), notice('error', e.message)));
  }
}
