// The public API, called with the token in the Authorization header. The token lives in this tab's
// sessionStorage only: it is never put in a URL the browser sends (a link may carry it in the
// fragment, which browsers do not send; app.js moves it out of the address at once).

const KEY = 'btar-token';

/** The console works in Aiven's project namespace; btar has a single project. */
export const PROJECT = '/v1/project/default';

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: t => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An API refusal or a transport failure, with a message meant for a person. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }

  get authFailed() {
    return this.status === 401 || this.status === 403;
  }
}

const REASONS = {
  400: 'Bad request', 401: 'Not signed in', 403: 'Token refused', 404: 'Not found',
  405: 'Method not allowed', 409: 'Conflict', 413: 'Too large', 429: 'Too many requests',
  500: 'Server error', 502: 'Bad gateway', 503: 'Unavailable',
};

/** Calls `method path` with an optional JSON body; resolves to the parsed answer. */
export async function api(method, path, body) {
  const headers = {Authorization: `Bearer ${token.get()}`, Accept: 'application/json'};
  const init = {method, headers, cache: 'no-store', credentials: 'omit'};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `Cannot reach the btar server (${e.message}). Is it running?`);
  }
  const text = await r.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = {message: text.slice(0, 300)};
  }
  if (!r.ok) {
    const reason = REASONS[r.status] || r.statusText || 'Error';
    const message = json.message || r.statusText || 'no details';
    const err = new ApiError(r.status, `${reason} (${r.status}): ${message}`, json);
    if (err.authFailed) window.dispatchEvent(new CustomEvent('btar-auth', {detail: err}));
    throw err;
  }
  return json;
}

export const get = path => api('GET', path);

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

export const servicePath = name => `${PROJECT}/service/${encodeURIComponent(name)}`;
