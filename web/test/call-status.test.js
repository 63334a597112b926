// The words a visitor and an operator read for each state and outcome of a call.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describe, formatDuration } from '../src/call-status.js';

const visitor = (status) => describe(status, 'visitor').text;
const operator = (status) => describe(status, 'operator').text;

test('progress follows dial_first', () => {
  assert.equal(visitor({ state: 'dialing_first', dial_first: 'extension' }), 'Calling our agent…');
  assert.equal(visitor({ state: 'dialing_second', dial_first: 'extension' }), 'Calling you…');
  assert.equal(visitor({ state: 'dialing_first', dial_first: 'contact' }), 'Calling you…');
  assert.equal(visitor({ state: 'dialing_second', dial_first: 'contact' }), 'Calling our agent…');
  assert.equal(operator({ state: 'dialing_first', dial_first: 'extension', extension: '1001' }),
    'Calling the extension 1001…');
  assert.equal(operator({ state: 'dialing_second', contact: '+4930123456' }),
    'Calling the contact +4930123456…');
  const bridged = describe({ state: 'bridged' }, 'visitor');
  assert.deepEqual([bridged.text, bridged.connected, bridged.done], ['Connected.', true, false]);
});

test('a finished call says how long it lasted', () => {
  const ended = describe({ state: 'ended', result: 'success', talk_duration: 83.4 }, 'visitor');
  assert.deepEqual([ended.text, ended.done, ended.failed], ['Ended after 1 min 23 s.', true, false]);
  assert.equal(visitor({ state: 'ended', result: 'success' }), 'Ended.');
});

test('a failed call says who and why, in the reader\'s terms', () => {
  const failed = (leg, cause) => ({ state: 'ended', result: 'error', failed_leg: leg, cause });
  assert.equal(visitor(failed('extension', 'NO_ANSWER')), 'Ended: our agent did not answer.');
  assert.equal(visitor(failed('contact', 'USER_BUSY')), 'Ended: you were busy.');
  assert.equal(visitor(failed('contact', 'NO_ANSWER')), 'Ended: you did not answer.');
  assert.equal(operator({ ...failed('contact', 'USER_BUSY'), contact: '+1555' }),
    'Ended: the contact +1555 was busy.');
  assert.equal(visitor(failed('contact', 'WEIRD_CAUSE')),
    'Ended: the call to you failed (WEIRD_CAUSE).');
  assert.equal(visitor({ state: 'ended', result: 'error', cause: 'SERVICE_STOPPED' }),
    'Ended. The call was cut off: the service stopped.');
  assert.equal(visitor({ state: 'ended', result: 'error' }),
    'Ended: the call could not be completed.');
  assert.equal(describe({ state: 'ended', result: 'error' }, 'visitor').failed, true);
});

test('durations', () => {
  assert.equal(formatDuration(0.4), '0 s');
  assert.equal(formatDuration(59.6), '1 min 0 s');
  assert.equal(formatDuration(-3), '0 s');
});
