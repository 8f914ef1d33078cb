// The console's shell: sign-in with the API token, hash routing between the views, and the
// cleanup of a view's timers when another is shown.

import {PROJECT, ApiError, get, token} from './api.js';
import {fill, h, notice, field} from './dom.js';
import {servicesView} from './services.js';
import {serviceView} from './service.js';
import {copyJobsView} from './copy-jobs.js';
import {eventsView} from './events.js';
import {drillsView} from './drills.js';

const main = document.getElementById('main');
let cleanup = null;
let signInError = null;

// A link may carry the token in its fragment (`#token=…`, never sent to a server): keep it for this
// tab and take it out of the address bar and history at once.
const fromLink = new URLSearchParams(location.hash.replace(/^#\/?/, '')).get('token');
if (fromLink) {
  token.set(fromLink);
  history.replaceState(null, '', `${location.pathname}#/services`);
}

/** Parses `#/name/arg?k=v` into {name, arg, params}. */
function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, q] = hash.split('?');
  const [name, ...rest] = path.split('/');
  return {name: name || 'services', arg: rest.length ? decodeURIComponent(rest.join('/')) : '', params: new URLSearchParams(q || '')};
}

const VIEWS = {
  services: servicesView,
  service: serviceView,
  'copy-jobs': copyJobsView,
  events: eventsView,
  drills: drillsView,
};

function markNav(name) {
  const current = name === 'service' ? 'services' : name;
  for (const a of document.querySelectorAll('nav [data-nav]')) {
    if (a.dataset.nav === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function show() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!token.get()) {
    signIn();
    return;
  }
  document.getElementById('session').hidden = false;
  const r = route();
  const view = VIEWS[r.name];
  markNav(r.name);
  if (!view) {
    fill(main, h('h1', {}, 'Not found'), notice('error', `The console has no page “${r.name}”. `, h('a', {href: '#/services'}, 'Go to the services.')));
    return;
  }
  main.setAttribute('aria-busy', 'true');
  const ctx = {
    main,
    // A view registers what stops its timers; called when another view is shown.
    onLeave: fn => {
      const previous = cleanup;
      cleanup = () => {
        if (previous) previous();
        fn();
      };
    },
  };
  try {
    await view(ctx, r.arg, r.params);
  } catch (e) {
    if (!(e instanceof ApiError && e.authFailed)) {
      fill(main, h('h1', {}, 'Something went wrong'), notice('error', e.message || String(e)));
    }
  } finally {
    main.removeAttribute('aria-busy');
  }
}

/** The sign-in form. A refused token is said so, in words, with the server's reason. */
function signIn() {
  document.getElementById('session').hidden = true;
  markNav('');
  document.title = 'Sign in — btar console';
  const input = h('input', {type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false', size: 40});
  const status = h('div', {'aria-live': 'polite'});
  if (signInError) status.append(notice('error', signInError));
  const submit = h('button', {type: 'submit', class: 'btn btn-primary'}, 'Sign in');
  const form = h('form', {class: 'signin card', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in to btar'),
    h('p', {class: 'muted'}, 'Paste the API token of this btar server ([server] token in its config, or the one `btar up` printed). It stays in this browser tab and is sent only in the Authorization header.'),
    field('API token', input),
    h('div', {class: 'actions'}, submit),
    status);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    submit.disabled = true;
    fill(status, h('p', {class: 'muted'}, 'Checking the token…'));
    token.set(input.value.trim());
    try {
      await get(`${PROJECT}/service`);
      signInError = null;
      // Changing the hash shows the view (hashchange); otherwise show it here.
      if (location.hash.startsWith('#/') && location.hash !== '#/') show();
      else location.hash = '#/services';
    } catch (e) {
      token.clear();
      signInError = e instanceof ApiError && e.authFailed
        ? `The server refused this token — ${e.message}`
        : e.message;
      fill(status, notice('error', signInError));
      submit.disabled = false;
      input.focus();
      input.select();
    }
  });
  fill(main, form);
  input.focus();
}

// Any call refused for the token (expired, changed on the server) brings the sign-in form back.
// (During sign-in the form reports the refusal itself.)
window.addEventListener('btar-auth', ev => {
  if (document.getElementById('session').hidden) return;
  token.clear();
  signInError = `The server refused the token — ${ev.detail.message}. Sign in again.`;
  signIn();
});

document.getElementById('sign-out').addEventListener('click', () => {
  token.clear();
  signInError = null;
  signIn();
});

window.addEventListener('hashchange', () => {
  show();
  main.focus({preventScroll: true});
});

show();
