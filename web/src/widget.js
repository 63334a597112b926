// The "Call me" widget. A site pastes one tag where the button should appear:
//
//   <script src="https://c2c.example.com/widget.js" data-account="ACCOUNT_ID"
//           data-clicktocall="C2C_ID" async></script>
//
// It draws a small form (in a shadow root, so the site's styles and ours leave each other
// alone), places the call with an anonymous connect, and follows it in plain words through the
// call's event stream, using the call_token that only this call's connect answered. The site's
// origin must be in the click-to-call's allowed_origins, and the click-to-call must have
// auth_required: false.

import { ApiError, errorMessages, request } from './api.js';
import { describe, follow } from './call-status.js';
import { el } from './dom.js';

const STYLE = `
:host { all: initial; display: block; font: 16px/1.45 system-ui, sans-serif; color: #1b1b1b; }
form { border: 2px solid #0050b3; border-radius: 8px; padding: .8rem 1rem; max-width: 22rem; background: #fff; }
.title { font-weight: 700; font-size: 1.1rem; margin: 0 0 .4rem; }
label { display: block; font-weight: 600; }
.hint { color: #555; font-size: .9rem; margin: .1rem 0 .3rem; }
input { font: inherit; width: 100%; box-sizing: border-box; padding: .35rem .5rem; border: 2px solid #8a8a8a; border-radius: 4px; }
input[aria-invalid=true] { border-color: #b00020; }
button { font: inherit; margin-top: .6rem; padding: .4rem 1rem; border: 2px solid #0050b3; border-radius: 4px; background: #0050b3; color: #fff; cursor: pointer; }
button:disabled { opacity: .6; cursor: default; }
:focus-visible { outline: 3px solid #0050b3; outline-offset: 2px; }
.status { margin: .6rem 0 0; font-weight: 600; min-height: 1.4rem; }
.status[data-failed] { color: #b00020; }
`;

function refusal(error) {
  if (!(error instanceof ApiError) || error.status === 0) {
    return 'The call service cannot be reached right now.';
  }
  switch (error.status) {
    case 400: {
      const [first] = errorMessages(error.data);
      return `That number cannot be called${first ? `: ${first[1]}` : '.'}`;
    }
    case 429: {
      const wait = error.data && error.data.retry_after;
      return `Too many calls just now: try again${wait ? ` in ${wait} seconds` : ' later'}.`;
    }
    case 503:
      return 'Calls are not possible right now: try again later.';
    default:
      return 'This call button is not available.';
  }
}

function mount(script) {
  const { account, clicktocall } = script.dataset;
  if (!account || !clicktocall) {
    console.error('c2c-ari widget: data-account and data-clicktocall are required');
    return;
  }
  const api = new URL('v2/', script.src);
  const callBase = new URL(
    `accounts/${encodeURIComponent(account)}/clicktocall/${encodeURIComponent(clicktocall)}/`, api);

  const target = script.dataset.target && document.getElementById(script.dataset.target);
  const host = target || el('div', { class: 'c2c-ari-widget' });
  if (!target) script.after(host);
  const root = host.attachShadow({ mode: 'open' });

  const phone = el('input', { id: 'phone', type: 'tel', autocomplete: 'tel', inputmode: 'tel',
    maxlength: '64', 'aria-describedby': 'hint status' });
  const button = el('button', { type: 'submit' }, script.dataset.button || 'Call me');
  const status = el('p', { class: 'status', id: 'status', role: 'status', 'aria-live': 'polite' });
  const form = el('form', { novalidate: '', 'aria-label': script.dataset.title || 'Call me' },
    el('p', { class: 'title' }, script.dataset.title || 'Talk to us now'),
    el('label', { for: 'phone' }, 'Your phone number'),
    el('p', { class: 'hint', id: 'hint' },
      'We call you at this number and put you through to one of us.'),
    phone, button, status);
  if ('adoptedStyleSheets' in root) {
    // A constructed style sheet is not an inline <style>: a site whose Content-Security-Policy
    // forbids inline styles still shows the widget styled.
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(el('style', {}, STYLE));
  }
  root.append(form);

  function say(text, state, failed = false) {
    status.textContent = text;
    status.dataset.state = state;
    if (failed) status.dataset.failed = '';
    else delete status.dataset.failed;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    phone.removeAttribute('aria-invalid');
    // People write numbers with spaces, dashes, dots and brackets; the service takes digits
    // (and a leading +) only, and checks the rest.
    const contact = phone.value.replace(/[\s().\-\u00a0]/g, '');
    if (!contact) {
      phone.setAttribute('aria-invalid', 'true');
      say('Enter your phone number.', 'invalid', true);
      phone.focus();
      return;
    }
    button.disabled = true;
    say('Starting the call…', 'starting');
    let answer;
    try {
      answer = await request('POST', new URL('connect', callBase).href, { body: { contact } });
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) phone.setAttribute('aria-invalid', 'true');
      say(refusal(error), 'refused', true);
      button.disabled = false;
      return;
    }
    const callId = answer.data.outbound_call_id || answer.data.call_id;
    const events = new URL(`calls/${encodeURIComponent(callId)}/events`, callBase);
    events.searchParams.set('call_token', answer.data.call_token);
    follow(events.href, (update) => {
      const words = describe(update, 'visitor');
      say(words.text, update.state, words.failed);
      if (words.done) button.disabled = false;
    });
  });
}

if (document.currentScript) mount(document.currentScript);
