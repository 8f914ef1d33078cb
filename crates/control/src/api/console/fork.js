// Fork & restore (Aiven's): a new service restored from the chosen location — the primary or a
// secondary region — to the latest point or a time inside that location's recoverable window. The
// server answers once the fork runs; until then the dialog shows the restore in progress.

import {PROJECT, api} from './api.js';
import {dialog, fill, h, notice} from './dom.js';
import {duration, localInput, localText, parseLocalInput, time, utcText, zoneName} from './format.js';

const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** A conninfo with any password hidden. */
const masked = conninfo => String(conninfo || '').replace(/(password\s*=\s*)('[^']*'|\S+)/gi, '$1••••');

export function openFork(page) {
  const svc = page.svc;
  const pitr = page.backups.pitr;
  const locations = [{...pitr.primary_region, role: 'primary'}, ...pitr.additional_regions.map(r => ({...r, role: 'secondary'}))];
  const usable = l => l.pitr_range_start && l.pitr_range_end && !l.error;
  const firstUsable = locations.find(usable);

  const radios = locations.map(l => h('input', {type: 'radio', name: 'location', value: l.region, disabled: !usable(l), checked: l === firstUsable}));
  const latest = h('input', {type: 'radio', name: 'target', value: 'latest', checked: true});
  const atTime = h('input', {type: 'radio', name: 'target', value: 'time'});
  const when = h('input', {type: 'datetime-local', step: 1, name: 'recovery_target_time', disabled: true, 'aria-label': `Recovery target time, local time (${zoneName()})`});
  const whenHint = h('div', {class: 'hint', id: 'fork-when-hint', 'aria-live': 'polite'});
  when.setAttribute('aria-describedby', whenHint.id);
  const name = h('input', {type: 'text', name: 'service_name', required: true, value: `${svc.service_name}-fork`, maxlength: 128, autocomplete: 'off', spellcheck: 'false'});
  const nameHint = h('div', {class: 'hint', id: 'fork-name-hint'}, 'Letters, digits, “-”, “_” and “.”, not starting with “.”; at most 128.');
  name.setAttribute('aria-describedby', nameHint.id);
  name.id = 'fork-name';
  const errors = h('div', {'aria-live': 'assertive'});
  const progress = h('div', {'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'btn btn-primary'}, 'Fork & restore');
  const cancel = h('button', {type: 'button', class: 'btn btn-ghost'}, 'Cancel');

  const chosen = () => locations.find(l => l.region === (radios.find(r => r.checked) || {}).value);
  const note = h('p', {class: 'small muted'});

  /** Window of the chosen location into the time field's bounds and hint; returns an error or null. */
  const check = () => {
    const loc = chosen();
    atTime.disabled = !loc;
    when.disabled = !loc || !atTime.checked;
    if (!loc) return 'No location holds a backup of this service yet: take one first.';
    const start = new Date(loc.pitr_range_start);
    const end = new Date(loc.pitr_range_end);
    when.min = localInput(start);
    when.max = localInput(end);
    fill(note, `The fork is created in ${loc.region} (the region of this location) with the plan of ${svc.service_name}, and started on the btar server's host. Its own backups live in ${loc.region}.`);
    if (!atTime.checked) {
      fill(whenHint, `Latest: ${localText(end)} local (${utcText(end)}).`);
      return null;
    }
    const t = parseLocalInput(when.value);
    if (!t) {
      fill(whenHint, `Local time (${zoneName()}), between ${localText(start)} and ${localText(end)}.`);
      return 'Enter the time to restore to (or choose the latest point).';
    }
    fill(whenHint, `= ${utcText(t)}. ${loc.region} can reach ${localText(start)} to ${localText(end)} local.`);
    if (t < start || t > end) {
      return `${localText(t)} is outside the recoverable window of ${loc.region} (${localText(start)} to ${localText(end)}). Choose a time inside it, or another location.`;
    }
    return null;
  };
  const nameError = () => (NAME.test(name.value) ? null : `“${name.value}” is not a valid service name.`);
  const validate = () => {
    const problems = [check(), nameError()].filter(Boolean);
    when.setAttribute('aria-invalid', String(atTime.checked && Boolean(check())));
    name.setAttribute('aria-invalid', String(Boolean(nameError())));
    fill(errors, problems.length ? notice('error', h('ul', {class: 'plain'}, problems.map(p => h('li', {}, p)))) : null);
    return !problems.length;
  };
  const onChange = () => {
    if (atTime.checked && !when.value && chosen()) when.value = localInput(new Date(chosen().pitr_range_end));
    check();
    if (errors.childNodes.length) validate();
  };
  [...radios, latest, atTime].forEach(r => r.addEventListener('change', onChange));
  when.addEventListener('input', onChange);
  name.addEventListener('input', onChange);

  const form = h('form', {class: 'form', novalidate: true},
    h('fieldset', {class: 'choices'}, h('legend', {}, 'Restore from'),
      locations.map((l, i) => h('label', {class: ['choice', !usable(l) && 'choice-disabled']}, radios[i],
        h('span', {}, h('strong', {}, l.region), ` — ${l.role === 'primary' ? 'primary (home region)' : 'secondary'}`,
          h('span', {class: 'small muted block'}, usable(l)
            ? h('span', {}, 'recoverable ', time(l.pitr_range_start), ' → ', time(l.pitr_range_end))
            : l.error || 'no backup here yet'))))),
    h('fieldset', {class: 'choices'}, h('legend', {}, 'Recovery target'),
      h('label', {class: 'choice'}, latest, h('span', {}, 'Latest recoverable point')),
      h('label', {class: 'choice'}, atTime, h('span', {}, 'A point in time')),
      h('div', {class: 'field indent'}, when, whenHint)),
    h('div', {class: 'field'}, h('label', {for: name.id}, 'New service name'), name, nameHint),
    note, errors, progress,
    h('div', {class: 'actions'}, submit, cancel));

  const dlg = dialog(`Fork & restore ${svc.service_name}`, form);
  let busy = false;
  // A restore in flight keeps the dialog open: its answer is the only way to learn the outcome.
  dlg.addEventListener('cancel', ev => { if (busy) ev.preventDefault(); });
  cancel.addEventListener('click', () => { if (!busy) dlg.close(); });
  check();

  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    if (!validate()) return;
    const loc = chosen();
    const target = atTime.checked ? parseLocalInput(when.value) : null;
    const body = {
      service_name: name.value,
      service_type: svc.service_type,
      cloud: loc.region,
      user_config: {service_to_fork_from: svc.service_name},
    };
    if (target) body.user_config.recovery_target_time = target.toISOString();
    busy = true;
    form.querySelectorAll('input, button').forEach(el => { el.disabled = true; });
    const started = Date.now();
    const bar = h('progress', {'aria-label': 'Restore in progress'});
    const text = h('span');
    const tick = () => fill(text, `Restoring ${svc.service_name} from ${loc.region} to ${target ? localText(target) : 'the latest point'}… ${duration(Math.round((Date.now() - started) / 1000))}`);
    tick();
    const timer = setInterval(tick, 1000);
    fill(progress, h('div', {class: 'progress'}, bar, text));
    try {
      const answer = await api('POST', `${PROJECT}/service`, body);
      const s = answer.service;
      const f = s.fork || {};
      const reached = f.reached || {};
      fill(progress, notice('info',
        h('p', {}, h('strong', {}, `Fork ${s.service_name} is running`), ` in ${s.cloud_name}.`),
        h('dl', {class: 'facts'},
          h('dt', {}, 'Restored'), h('dd', {}, `backup ${f.backup_name || '—'} from the ${f.source_location || ''} location ${loc.region}`),
          h('dt', {}, 'Reached'), h('dd', {}, reached.last_commit_time ? h('span', {}, 'last commit ', time(reached.last_commit_time)) : '—', reached.lsn ? ` (LSN ${reached.lsn})` : ''),
          h('dt', {}, 'Took'), h('dd', {}, duration(f.seconds)),
          h('dt', {}, 'Connect'), h('dd', {}, h('code', {class: 'conninfo'}, masked(f.conninfo)))),
        h('p', {}, h('a', {class: 'btn btn-primary', href: `#/service/${encodeURIComponent(s.service_name)}`, onclick: () => { busy = false; dlg.close(); }}, `Open ${s.service_name}`))));
    } catch (e) {
      fill(progress, notice('error', h('strong', {}, 'The fork was not created. '), e.message));
      form.querySelectorAll('input, button').forEach(el => { el.disabled = false; });
      check();
    } finally {
      clearInterval(timer);
      busy = false;
    }
  });
}
