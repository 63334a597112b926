// Reading Kazoo's error data, which the console and the widget both show.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { errorMessages } from '../src/api.js';

test('each message with the path it is about', () => {
  const data = {
    'whitelist.1': { format: { message: 'not a regex', target: 'regex' } },
    contact: { invalid: { message: 'not a number' }, maxLength: { message: 'too long' } },
  };
  assert.deepEqual(errorMessages(data), [
    ['whitelist.1', 'not a regex'], ['contact', 'not a number'], ['contact', 'too long'],
  ]);
});

test('data that is not validation errors gives nothing', () => {
  assert.deepEqual(errorMessages(undefined), []);
  assert.deepEqual(errorMessages({ message: 'method not allowed', allow: 'GET' }), []);
});
