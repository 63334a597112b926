// A call's progress in plain words, from the status the service sends
// (GET .../calls/{id} and its event stream), for the visitor (widget) or the operator (console).

const CAUSES = {
  NO_ANSWER: 'did not answer',
  NO_USER_RESPONSE: 'did not answer',
  ORIGINATOR_CANCEL: 'did not answer',
  USER_BUSY: 'was busy',
  CALL_REJECTED: 'refused the call',
  UNALLOCATED: 'is not a number that can be called',
  INVALID_NUMBER_FORMAT: 'is not a number that can be called',
};

const SERVICE_CAUSES = {
  HANGUP_REQUESTED: 'The call was hung up from the console.',
  SERVICE_STOPPED: 'The call was cut off: the service stopped.',
  SERVICE_RESTART: 'The call was cut off: the service restarted.',
  ASTERISK_SHUTDOWN: 'The call was cut off: the phone system stopped.',
  CHANNEL_LOST: 'The call was cut off: the phone system lost it.',
};

function who(leg, perspective, status) {
  if (perspective === 'visitor') return leg === 'extension' ? 'our agent' : 'you';
  return leg === 'extension' ? `the extension ${status.extension || ''}`.trim()
    : `the contact ${status.contact || ''}`.trim();
}

/**
 * @param {object} status  a call status: {state, dial_first, ...} or an ended call's history item
 * @param {'visitor'|'operator'} perspective
 * @returns {{text: string, done: boolean, connected: boolean, failed: boolean}}
 */
export function describe(status, perspective) {
  const first = status.dial_first === 'contact' ? 'contact' : 'extension';
  const second = first === 'contact' ? 'extension' : 'contact';
  switch (status.state) {
    case 'dialing_first':
      return { text: `Calling ${who(first, perspective, status)}…`, done: false, connected: false, failed: false };
    case 'dialing_second':
      return { text: `Calling ${who(second, perspective, status)}…`, done: false, connected: false, failed: false };
    case 'bridged':
      return { text: 'Connected.', done: false, connected: true, failed: false };
    case 'ended':
      return { ...ended(status, perspective), done: true, connected: false };
    case 'lost':
      return { text: 'The call can no longer be followed from this page.', done: true, connected: false, failed: true };
    default:
      return { text: 'Starting the call…', done: false, connected: false, failed: false };
  }
}

function ended(item, perspective) {
  if (item.result === 'success') {
    const seconds = Number(item.talk_duration);
    const length = Number.isFinite(seconds) ? ` after ${formatDuration(seconds)}` : '';
    return { text: `Ended${length}.`, failed: false };
  }
  const cause = item.cause || item.hangup_cause || '';
  if (SERVICE_CAUSES[cause]) return { text: `Ended. ${SERVICE_CAUSES[cause]}`, failed: true };
  const leg = item.failed_leg;
  if (leg && CAUSES[cause]) {
    return { text: `Ended: ${who(leg, perspective, item)} ${CAUSES[cause]}.`.replace(': you was', ': you were'), failed: true };
  }
  if (leg) {
    return { text: `Ended: the call to ${who(leg, perspective, item)} failed${cause ? ` (${cause})` : ''}.`, failed: true };
  }
  return { text: `Ended: the call could not be completed${cause ? ` (${cause})` : ''}.`, failed: true };
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}

/**
 * Follow one call through its event stream until it ends.
 * @param {string} url  .../calls/{call_id}/events?call_token=...
 * @param {(status: object) => void} onStatus
 * @returns {() => void}  stops following
 */
export function follow(url, onStatus) {
  const source = new EventSource(url);
  let over = false;
  const stop = () => { over = true; source.close(); };
  source.addEventListener('status', (event) => {
    let status;
    try { status = JSON.parse(event.data); } catch { return; }
    onStatus(status);
    if (status.state === 'ended') stop();
  });
  source.addEventListener('error', () => {
    // EventSource reconnects by itself after a network blip; a refusal (4xx) closes it.
    if (!over && source.readyState === EventSource.CLOSED) {
      over = true;
      onStatus({ state: 'lost' });
    }
  });
  return stop;
}
