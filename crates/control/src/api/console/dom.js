// DOM helpers. Every string becomes a text node or an attribute value: nothing from the catalog is
// ever parsed as HTML (the module has no way to do so), and event handlers are functions, never
// attribute strings.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key.startsWith('on') || key === 'style') {
      throw new Error(`refusing attribute ${key}`);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'indeterminate') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes as they are, strings and numbers as text, arrays flattened. */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** `h('a', {href: '#/x', class: 'link'}, 'text', child)`: an element with attributes and children. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A unique id for label/control pairs. */
let seq = 0;
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${seq}`;
}

/**
 * A table. `columns`: [{label, cell: row => node|string, class?, numeric?}]. `rowClass(row)` may
 * add a class; `after(row)` may return extra rows (e.g. a failure message under the row).
 */
export function table(caption, columns, rows, {rowClass, after, empty} = {}) {
  const head = h('tr', {}, columns.map(c => h('th', {scope: 'col', class: c.numeric ? 'num' : c.class}, c.label)));
  const body = h('tbody');
  if (!rows.length) {
    body.append(h('tr', {class: 'empty'}, h('td', {colspan: columns.length}, empty || 'Nothing to show.')));
  }
  for (const row of rows) {
    body.append(h('tr', {class: rowClass ? rowClass(row) : undefined},
      columns.map(c => h('td', {class: c.numeric ? 'num' : c.class}, c.cell(row)))));
    if (after) {
      for (const extra of [after(row)].flat()) {
        if (extra) body.append(h('tr', {class: 'sub'}, h('td', {colspan: columns.length}, extra)));
      }
    }
  }
  return h('div', {class: 'table-wrap'},
    h('table', {}, caption ? h('caption', {class: 'sr-only'}, caption) : null, h('thead', {}, head), body));
}

/** A coloured state badge; the colour class is derived from the state, the text is the state. */
export function badge(state, title) {
  const known = {
    COMPLETED: 'ok', SUCCESSFUL: 'ok', PASS: 'ok', RUNNING: 'info', CREATED: 'info', PENDING: 'warn',
    PARTIAL: 'warn', TIMED_OUT: 'warn', NOT_COPIED: 'muted', EXPIRED: 'muted', FAILED: 'bad',
    FAIL: 'bad', DAMAGED: 'bad', UNREACHABLE: 'bad',
  };
  const text = String(state ?? '—');
  return h('span', {class: ['badge', `badge-${known[text] || 'muted'}`], title}, text);
}

/** A labelled form control: `field('Service', select)` → <div><label for>Service</label>select</div>. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const hintEl = hint ? h('div', {class: 'hint', id: uid('hint')}, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', {class: 'field'}, h('label', {for: control.id}, label), control, hintEl);
}

/** `<select>` from [[value, label]] pairs. */
export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, l]) => h('option', {value: v, selected: v === value}, l)));
}

/** A card: a titled section of a page. */
export function card(title, ...children) {
  const id = uid('card');
  return h('section', {class: 'card', 'aria-labelledby': id}, h('h2', {id}, title), children);
}

/** A message inside a page: kind is info, error or warn. Errors are announced. */
export function notice(kind, ...children) {
  return h('div', {class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : undefined}, children);
}

/** A short message at the bottom right, gone after a few seconds (announced by the live region). */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  // The same message again (a second Refresh) replaces the first instead of stacking.
  for (const old of box.children) {
    if (old.textContent === text) old.remove();
  }
  const el = h('div', {class: ['toast', `toast-${kind}`]}, text);
  box.append(el);
  setTimeout(() => el.remove(), 6000);
}

/** A modal dialog appended to the page; removed when closed. Focus returns where it was. */
export function dialog(title, ...content) {
  const opener = document.activeElement;
  const titleId = uid('dlg');
  const close = h('button', {type: 'button', class: 'btn btn-ghost btn-small close', 'aria-label': 'Close'}, '×');
  const dlg = h('dialog', {class: 'dialog', 'aria-labelledby': titleId},
    h('div', {class: 'dialog-head'}, h('h2', {id: titleId}, title), close), content);
  close.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (opener && opener.focus) opener.focus();
  });
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}
