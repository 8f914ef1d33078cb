// Enable, change or disable a service's additional backup regions (Aiven's
// `user_config.additional_backup_regions`). The rules are shown before the user submits; the server
// still decides, and its refusal (409 for the 24-hour rule, 400 for a region rule) is shown as said.

import {ApiError, api} from './api.js';
import {dialog, fill, h, notice, toast} from './dom.js';
import {relative, time} from './format.js';

export function openRegions(page) {
  const svc = page.svc;
  const home = svc.cloud_name;
  const homeProvider = page.provider(home);
  const current = svc.user_config.additional_backup_regions || [];
  const crossAllowed = Boolean(svc.user_config.allow_cross_provider);
  const candidates = page.clouds.filter(c => c.cloud_name !== home);
  const next = svc.next_regions_change_at && new Date(svc.next_regions_change_at) > new Date() ? svc.next_regions_change_at : null;

  const boxes = candidates.map(c => h('input', {type: 'checkbox', name: 'region', value: c.cloud_name, checked: current.includes(c.cloud_name)}));
  const cross = h('input', {type: 'checkbox', name: 'allow_cross_provider', checked: crossAllowed});
  const warnings = h('ul', {class: 'warnings', 'aria-live': 'polite'});
  const result = h('div');
  const save = h('button', {type: 'submit', class: 'btn btn-primary'}, 'Save');
  const cancel = h('button', {type: 'button', class: 'btn btn-ghost'}, 'Cancel');

  const chosen = () => boxes.filter(b => b.checked).map(b => b.value);
  const update = () => {
    const picked = chosen();
    const items = [];
    if (next) {
      items.push(h('li', {class: 'warn'}, 'The 24-hour rule: these regions changed less than a day ago, so the server will refuse a change before ', time(next), ` (${relative(next)}).`));
    }
    for (const r of picked) {
      const p = (candidates.find(c => c.cloud_name === r) || {}).provider;
      if (p && p !== homeProvider && !cross.checked) {
        items.push(h('li', {class: 'warn'}, `${r} is on provider ${p}, the home region ${home} on ${homeProvider}: the server refuses copies across providers unless “Allow copies to other providers” is ticked.`));
      }
    }
    for (const r of picked.filter(r => !current.includes(r))) {
      items.push(h('li', {}, `Enabling ${r}: new backups and the log archive are copied there; without a backup from the last 24 hours a full backup starts at once.`));
    }
    for (const r of current.filter(r => !picked.includes(r))) {
      items.push(h('li', {}, `Disabling ${r}: no new copies go there; the backups already there stay until their retention ends, and can still be restored.`));
    }
    fill(warnings, items);
    save.textContent = picked.length ? 'Save regions' : current.length ? 'Disable backup to another region' : 'Save';
  };
  boxes.forEach(b => b.addEventListener('change', update));
  cross.addEventListener('change', update);

  const form = h('form', {class: 'form', method: 'dialog'},
    h('p', {}, `Copies of ${svc.service_name}'s backups and log archive go to each region ticked below; each copy can be restored on its own if ${home} is lost.`),
    h('ul', {class: 'rules'},
      h('li', {}, h('strong', {}, 'Once per 24 hours. '), 'The list of additional regions may change at most once a day per service. ',
        next ? h('span', {}, 'Next change allowed ', time(next), '.') : 'A change is allowed now.'),
      h('li', {}, h('strong', {}, 'Same provider. '), `A destination must be another region on the home region's provider (${homeProvider || 'unknown'}), unless copies to other providers are allowed.`)),
    h('fieldset', {class: 'checks'}, h('legend', {}, 'Additional backup regions'),
      candidates.length ? candidates.map((c, i) => h('label', {class: 'check'}, boxes[i], ` ${c.cloud_name} `,
        h('span', {class: ['provider', c.provider !== homeProvider && 'provider-other']}, c.provider)))
        : h('p', {class: 'muted'}, 'No other region is configured on this server.')),
    h('label', {class: 'check'}, cross, ' Allow copies to other providers (allow_cross_provider)'),
    warnings, result,
    h('div', {class: 'actions'}, save, cancel));

  const dlg = dialog(`Backup to another region — ${svc.service_name}`, form);
  cancel.addEventListener('click', () => dlg.close());
  update();

  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const userConfig = {additional_backup_regions: chosen()};
    if (cross.checked !== crossAllowed) userConfig.allow_cross_provider = cross.checked;
    save.disabled = true;
    fill(result, h('p', {class: 'muted'}, 'Saving…'));
    try {
      await api('PUT', page.base, {user_config: userConfig});
      dlg.close();
      toast(userConfig.additional_backup_regions.length
        ? `Backup regions of ${svc.service_name}: ${userConfig.additional_backup_regions.join(', ')}`
        : `Backup to another region disabled for ${svc.service_name}`);
      await page.refresh(true);
    } catch (e) {
      const when = e instanceof ApiError && e.body.next_allowed_at;
      fill(result, notice('error', h('strong', {}, e.status === 409 ? 'The server refused the change. ' : 'The change was not saved. '),
        /[.!?]$/.test(e.message) ? e.message : `${e.message}.`,
        when ? h('span', {}, ' In your time: ', time(when), ` (${relative(when)}).`) : null));
      save.disabled = false;
    }
  });
}
