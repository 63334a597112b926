// The operator's console: sign in with an API key, then list, create, edit, delete and test
// click-to-calls and read their history. One view at a time, chosen by the URL's #fragment so
// that the browser's back button and bookmarks work.

import { ApiError, errorMessages, fromGregorian, request } from './api.js';
import { describe, follow, formatDuration } from './call-status.js';
import { el } from './dom.js';
import { SchemaForm, loadSchemas } from './schema-form.js';

const API = new URL('../v2/', window.location.href).pathname;
const SESSION_KEY = 'c2c-ari-session';

let session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
let schemasPromise = null;
let leaveView = () => {};

const $ = (id) => document.getElementById(id);

function base() {
  return `${API}accounts/${encodeURIComponent(session.account_id)}/clicktocall`;
}

function call(method, path, options = {}) {
  return request(method, path, { ...options, token: session && session.token });
}

let flashIsNew = false;

/** A message for the next view too (it survives one change of view). */
function flash(text) {
  $('flash').textContent = text;
  flashIsNew = true;
}

function schemas() {
  schemasPromise = schemasPromise || loadSchemas('clicktocall', async (id) =>
    (await request('GET', `${API}schemas/${encodeURIComponent(id)}`)).data);
  return schemasPromise;
}

/** Show a view: its heading takes the focus, so screen readers announce where we are. */
function show(title, ...content) {
  const heading = el('h1', { tabindex: '-1' }, title);
  $('view').replaceChildren(heading, ...content);
  document.title = `${title} – c2c-ari console`;
  heading.focus();
}

function problem(error) {
  if (error instanceof ApiError && error.status === 401 && session) {
    signOut('Your session has ended: sign in again.');
    return null;
  }
  if (error instanceof ApiError && error.status === 404) {
    return el('p', { class: 'error', role: 'alert' },
      'That click-to-call does not exist: it may have been deleted.');
  }
  const text = error instanceof ApiError ? error.message : String(error);
  return el('p', { class: 'error', role: 'alert' }, `Something went wrong: ${text}`);
}

// --- sign in / out ---------------------------------------------------------------------------

function signInView(message = '') {
  $('account').hidden = true;
  const input = el('input', { type: 'password', id: 'api-key', autocomplete: 'current-password',
    'aria-describedby': 'api-key-hint api-key-error', spellcheck: 'false' });
  const error = el('p', { class: 'error', id: 'api-key-error', role: 'alert' });
  const form = el('form', { novalidate: '' },
    el('div', { class: 'field' },
      el('label', { for: 'api-key' }, 'API key'),
      el('p', { class: 'hint', id: 'api-key-hint' },
        'The account\'s API key (c2c-ari account create prints it).'),
      input, error),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    if (!input.value) {
      error.textContent = 'Enter the API key.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    try {
      const answer = await request('PUT', `${API}api_auth`, { body: { api_key: input.value } });
      session = { token: answer.auth_token, account_id: answer.data.account_id,
        account_name: answer.data.account_name };
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
      flash('');
      route();
    } catch (failure) {
      error.textContent = failure instanceof ApiError && failure.status === 401
        ? 'That API key is not valid.' : `Cannot sign in: ${failure.message}`;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  });
  show('Sign in', ...(message ? [el('p', { role: 'alert' }, message)] : []), form);
  input.focus();  // the one thing to do here
}

function signOut(message = 'Signed out.') {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  if (window.location.hash !== '#/') window.location.hash = '#/';
  signInView(message);
}

// --- list ------------------------------------------------------------------------------------

async function listView() {
  let items = [];
  let next = null;
  try {
    do {
      const page = await call('GET', base() + (next ? `?start_key=${encodeURIComponent(next)}` : ''));
      items = items.concat(page.data);
      next = page.next_start_key;
    } while (next);
  } catch (error) {
    show('Click-to-calls', problem(error) || '');
    return;
  }
  const create = el('a', { href: '#/new', class: 'button' }, 'New click-to-call');
  if (!items.length) {
    show('Click-to-calls', el('p', {}, 'No click-to-calls yet.'), el('div', { class: 'actions' }, create));
    return;
  }
  const rows = items.map((item) => {
    const remove = el('button', { type: 'button', class: 'danger',
      'aria-label': `Delete ${item.name}` }, 'Delete');
    remove.addEventListener('click', () => deleteClickToCall(item));
    const id = encodeURIComponent(item.id);
    return el('tr', {},
      el('td', {}, item.name),
      el('td', {}, item.extension),
      el('td', { class: 'actions-cell' },
        el('a', { href: `#/edit/${id}`, 'aria-label': `Edit ${item.name}` }, 'Edit'),
        el('a', { href: `#/history/${id}`, 'aria-label': `History of ${item.name}` }, 'History'),
        el('a', { href: `#/test/${id}`, 'aria-label': `Test call with ${item.name}` }, 'Test call'),
        el('a', { href: `#/widget/${id}`, 'aria-label': `Widget for ${item.name}` }, 'Widget'),
        remove));
  });
  const table = el('table', {},
    el('caption', {}, `${items.length} click-to-call${items.length === 1 ? '' : 's'}`),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, 'Name'), el('th', { scope: 'col' }, 'Extension'),
      el('th', { scope: 'col' }, 'Actions'))),
    el('tbody', {}, ...rows));
  show('Click-to-calls', el('div', { class: 'actions' }, create), table);
}

async function deleteClickToCall(item) {
  if (!window.confirm(`Delete the click-to-call “${item.name}”? Its history goes with it.`)) return;
  try {
    await call('DELETE', `${base()}/${encodeURIComponent(item.id)}`);
    flash(`Deleted “${item.name}”.`);
    await listView();
  } catch (error) {
    const shown = problem(error);
    if (shown) $('view').prepend(shown);
  }
}

// --- create / edit ---------------------------------------------------------------------------

async function formView(id) {
  let doc = null;
  let revision = null;
  let loaded;
  try {
    loaded = await schemas();
    if (id) {
      const answer = await call('GET', `${base()}/${encodeURIComponent(id)}`);
      doc = answer.data;
      revision = answer.revision;
    }
  } catch (error) {
    show(id ? 'Edit click-to-call' : 'New click-to-call', problem(error) || '');
    return;
  }
  const form = new SchemaForm(loaded, 'clicktocall');
  const summary = el('div', { class: 'summary', role: 'alert', tabindex: '-1', hidden: '' });
  const fields = el('div');
  form.render(fields, doc);
  const save = el('button', { type: 'submit' }, id ? 'Save changes' : 'Create');
  const element = el('form', { novalidate: '', 'aria-label': id ? 'Edit click-to-call' : 'New click-to-call' },
    summary, fields,
    el('div', { class: 'actions' }, save, el('a', { href: '#/', class: 'button secondary' }, 'Cancel')));

  function showSummary(found, loose = []) {
    const items = [];
    for (const [key, messages] of found) {
      const { label, id: fieldId } = form.describeField(key);
      const link = el('a', { href: `#${fieldId}` }, `${label}: ${messages.join(' ')}`);
      link.addEventListener('click', (event) => {
        event.preventDefault();  // the #fragment is the console's router
        document.getElementById(fieldId).focus();
      });
      items.push(el('li', {}, link));
    }
    for (const text of loose) items.push(el('li', {}, text));
    summary.replaceChildren(el('h2', {}, 'There is a problem'), el('ul', {}, ...items));
    summary.hidden = false;
    summary.focus();
  }

  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    const found = form.validate();
    if (found.size) {
      showSummary(found);
      return;
    }
    summary.hidden = true;
    const { doc: body } = form.read();
    save.disabled = true;
    try {
      if (id) {
        const headers = revision ? { 'If-Match': revision } : {};
        await call('POST', `${base()}/${encodeURIComponent(id)}`, { body, headers });
        flash(`Saved “${body.name}”.`);
      } else {
        await call('PUT', base(), { body });
        flash(`Created “${body.name}”.`);
      }
      window.location.hash = '#/';
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        const { found: onFields, loose } = form.serverErrors(error.data);
        showSummary(onFields, loose.length || onFields.size ? loose : [error.message]);
      } else if (error instanceof ApiError && error.status === 412) {
        showSummary(new Map(), ['Someone else changed this click-to-call since you opened it. Reload the page to see their changes.']);
      } else {
        const shown = problem(error);
        if (shown) showSummary(new Map(), [shown.textContent]);
      }
    } finally {
      save.disabled = false;
    }
  });
  show(id ? `Edit “${doc.name}”` : 'New click-to-call', element);
}

/** A click-to-call, or null after showing why it could not be read under `title`. */
async function loadOr(title, id) {
  try {
    return (await call('GET', `${base()}/${encodeURIComponent(id)}`)).data;
  } catch (error) {
    show(title, problem(error) || '');
    return null;
  }
}

// --- history ---------------------------------------------------------------------------------

async function historyView(id) {
  const doc = await loadOr('History', id);
  if (!doc) return;
  const body = el('tbody');
  const more = el('button', { type: 'button', class: 'secondary', hidden: '' }, 'Show older calls');
  const caption = el('caption', {}, 'Calls, newest first');
  const table = el('table', {}, caption, el('thead', {}, el('tr', {},
    ...['Time', 'Contact', 'Result', 'Cause', 'Talk time', 'Failed leg'].map(
      (name) => el('th', { scope: 'col' }, name)))), body);
  let next = null;
  let count = 0;

  async function loadPage() {
    const query = next ? `?start_key=${encodeURIComponent(next)}` : '';
    const page = await call('GET', `${base()}/${encodeURIComponent(id)}/history${query}`);
    for (const item of page.data) {
      const when = fromGregorian(item.timestamp);
      body.append(el('tr', {},
        el('td', {}, el('time', { datetime: when.toISOString() }, when.toLocaleString())),
        el('td', {}, item.contact || ''),
        el('td', { class: `result-${item.result}` }, item.result || ''),
        el('td', {}, item.cause || item.hangup_cause || ''),
        el('td', {}, item.talk_duration != null ? formatDuration(item.talk_duration) : ''),
        el('td', {}, item.failed_leg || '')));
    }
    count += page.data.length;
    next = page.next_start_key || null;
    more.hidden = !next;
    caption.textContent = count ? `${count} call${count === 1 ? '' : 's'}, newest first` : 'No calls yet';
  }
  async function reload() {
    body.replaceChildren();
    next = null;
    count = 0;
    await loadPage();
  }
  more.addEventListener('click', () => loadPage().catch((error) => {
    const shown = problem(error);
    if (shown) more.after(shown);
  }));
  const live = liveCalls(id, reload);
  show(`History of “${doc.name}”`, live.section,
    el('h2', {}, 'Ended calls'), table, more,
    el('p', {}, el('a', { href: '#/' }, 'Back to the click-to-calls')));
  try {
    await loadPage();
  } catch (error) {
    const shown = problem(error);
    if (shown) table.before(shown);
  }
}

const LIVE_POLL_MS = 2000;

/** The calls in flight, refreshed every LIVE_POLL_MS, each with a Hang up button;
 *  `onEnded` runs when one of them is over (so the history shows it). */
function liveCalls(id, onEnded) {
  const rows = el('tbody');
  const empty = el('p', {}, 'No call in progress.');
  const table = el('table', { hidden: '' },
    el('caption', {}, 'Calls in progress'),
    el('thead', {}, el('tr', {}, ...['Started', 'Contact', 'Progress', 'Action'].map(
      (name) => el('th', { scope: 'col' }, name)))), rows);
  const section = el('section', { 'aria-labelledby': 'live-title' },
    el('h2', { id: 'live-title' }, 'In progress'), empty, table);
  let shown = new Set();
  let timer = null;

  async function refresh() {
    let calls;
    try {
      calls = (await call('GET', `${base()}/${encodeURIComponent(id)}/calls`)).data;
    } catch (error) {
      if (problem(error) === null) stop();  // signed out
      return;
    }
    const now = new Set(calls.map((status) => status.call_id));
    const over = [...shown].some((callId) => !now.has(callId));
    shown = now;
    rows.replaceChildren(...calls.map(row));
    table.hidden = !calls.length;
    empty.hidden = calls.length > 0;
    if (over) await onEnded().catch(() => {});
  }

  function row(status) {
    const when = fromGregorian(status.timestamp);
    const hangUp = el('button', { type: 'button', class: 'danger',
      'aria-label': `Hang up the call with ${status.contact}` }, 'Hang up');
    hangUp.addEventListener('click', async () => {
      hangUp.disabled = true;
      try {
        await call('DELETE', `${base()}/${encodeURIComponent(id)}/calls/${encodeURIComponent(status.call_id)}`);
        flash(`Hung up the call with ${status.contact}.`);
      } catch (error) {
        const shown = problem(error);
        if (shown) section.append(shown);
      }
      await refresh();
    });
    return el('tr', {},
      el('td', {}, el('time', { datetime: when.toISOString() }, when.toLocaleTimeString())),
      el('td', {}, status.contact || ''),
      el('td', {}, describe(status, 'operator').text),
      el('td', {}, hangUp));
  }

  function stop() {
    clearInterval(timer);
    timer = null;
  }

  refresh();
  timer = setInterval(refresh, LIVE_POLL_MS);
  leaveView = stop;
  return { section };
}

// --- test call -------------------------------------------------------------------------------

async function testCallView(id) {
  const doc = await loadOr('Test call', id);
  if (!doc) return;
  const contact = el('input', { type: 'tel', id: 'contact', autocomplete: 'off',
    'aria-describedby': 'contact-hint contact-error' });
  const error = el('p', { class: 'error', id: 'contact-error' });
  const status = el('p', { class: 'call-status', role: 'status', 'aria-live': 'polite' });
  const start = el('button', { type: 'submit' }, 'Call');
  const hangUp = el('button', { type: 'button', class: 'danger', hidden: '' }, 'Hang up');
  const form = el('form', { novalidate: '', 'aria-label': 'Test call' },
    el('p', {}, `Rings the extension ${doc.extension} and the number below, `
      + `${doc.dial_first === 'contact' ? 'the number' : 'the extension'} first, and connects them.`),
    el('div', { class: 'field' },
      el('label', { for: 'contact' }, 'Number to call (contact)'),
      el('p', { class: 'hint', id: 'contact-hint' }, 'E.164, e.g. +15555550100; checked against the whitelist.'),
      contact, error),
    el('div', { class: 'actions' }, start, hangUp), status);
  let stop = () => {};
  let callUrl = null;
  leaveView = () => stop();

  hangUp.addEventListener('click', async () => {
    hangUp.disabled = true;
    try {
      await call('DELETE', callUrl);
    } catch (failure) {
      const shown = problem(failure);
      if (shown) status.textContent = shown.textContent;
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    contact.removeAttribute('aria-invalid');
    if (!contact.value.trim()) {
      error.textContent = 'Enter the number to call.';
      contact.setAttribute('aria-invalid', 'true');
      contact.focus();
      return;
    }
    start.disabled = true;
    status.textContent = 'Starting the call…';
    let answer;
    try {
      answer = await call('POST', `${base()}/${encodeURIComponent(id)}/connect`,
        { body: { contact: contact.value.trim() } });
    } catch (failure) {
      start.disabled = false;
      status.textContent = '';
      if (failure instanceof ApiError && failure.status === 400) {
        const messages = errorMessages(failure.data).map(([, text]) => text);
        error.textContent = messages.join(' ') || failure.message;
        contact.setAttribute('aria-invalid', 'true');
        contact.focus();
      } else {
        const shown = problem(failure);
        if (shown) status.textContent = shown.textContent;
      }
      return;
    }
    const callId = answer.data.outbound_call_id || answer.data.call_id;
    callUrl = `${base()}/${encodeURIComponent(id)}/calls/${encodeURIComponent(callId)}`;
    hangUp.hidden = false;
    hangUp.disabled = false;
    stop = follow(`${callUrl}/events?call_token=${encodeURIComponent(answer.data.call_token)}`,
      (update) => {
        const words = describe(update, 'operator');
        status.textContent = words.text;
        if (words.done) {
          hangUp.hidden = true;
          start.disabled = false;
        }
      });
  });
  show(`Test call with “${doc.name}”`, form,
    el('p', {}, el('a', { href: `#/history/${encodeURIComponent(id)}` }, 'History of this click-to-call')));
}

// --- widget snippet ----------------------------------------------------------------------------

async function widgetView(id) {
  const doc = await loadOr('Widget', id);
  if (!doc) return;
  const script = new URL('../widget.js', window.location.href).href;
  const snippet = `<script src="${script}"\n`
    + `        data-account="${session.account_id}"\n`
    + `        data-clicktocall="${doc.id}" async></script>`;
  const code = el('textarea', { id: 'snippet', rows: '3', readonly: '', spellcheck: 'false',
    wrap: 'off', 'aria-describedby': 'snippet-hint' });
  code.value = snippet;
  code.addEventListener('focus', () => code.select());
  const problems = [];
  if (doc.auth_required !== false) {
    problems.push('It needs a token (Authentication required is on), so the widget cannot '
      + 'place calls with it. Edit it and turn Authentication required off.');
  }
  if (!(doc.allowed_origins || []).length) {
    problems.push('No web origin may use it yet. Edit it and add your site\'s origin '
      + '(e.g. https://www.example.com) to Allowed web origins.');
  }
  if (!(doc.whitelist || []).length) {
    problems.push('Without a whitelist, visitors can have any number called. A whitelist '
      + 'of the numbers you serve (e.g. ^\\+49) keeps the bill in check.');
  }
  const edit = el('a', { href: `#/edit/${encodeURIComponent(id)}` }, `Edit “${doc.name}”`);
  show(`Widget for “${doc.name}”`,
    el('div', { class: 'field' },
      el('label', { for: 'snippet' }, 'Paste this where the "Call me" form should appear'),
      el('p', { class: 'hint', id: 'snippet-hint' },
        'One tag: it draws the form and shows the call\'s progress to the visitor.'),
      code),
    ...(problems.length ? [el('div', { class: 'summary', role: 'note' },
      el('h2', {}, 'Before it works on your site'),
      el('ul', {}, ...problems.map((text) => el('li', {}, text))))] : [
      el('p', {}, `Allowed on: ${doc.allowed_origins.join(', ')}.`)]),
    el('p', {}, edit));
}

// --- routing ---------------------------------------------------------------------------------

function route() {
  if (!flashIsNew) $('flash').textContent = '';
  flashIsNew = false;
  leaveView();
  leaveView = () => {};
  if (!session) {
    signInView();
    return;
  }
  $('account').hidden = false;
  $('account-name').textContent = session.account_name || session.account_id;
  const [, view, id] = (window.location.hash.match(/^#\/([a-z]*)\/?(.*)$/) || []);
  const key = id ? decodeURIComponent(id) : null;
  if (view === 'new') formView(null);
  else if (view === 'edit' && key) formView(key);
  else if (view === 'history' && key) historyView(key);
  else if (view === 'test' && key) testCallView(key);
  else if (view === 'widget' && key) widgetView(key);
  else listView();
}

window.addEventListener('hashchange', () => {
  if (!window.location.hash.startsWith('#/')) return;  // an in-page link, not a view
  route();
});
$('sign-out').addEventListener('click', () => signOut());
route();
