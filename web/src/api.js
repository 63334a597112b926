// Talking to the service: Kazoo envelopes in, Kazoo envelopes or an ApiError out.

export class ApiError extends Error {
  /** @param {number} status  HTTP status, 0 when the service could not be reached */
  constructor(status, envelope) {
    super((envelope && envelope.message) || `HTTP ${status}`);
    this.status = status;
    this.envelope = envelope || {};
    this.data = (envelope && envelope.data) || {};
  }
}

/**
 * One request. `body` is wrapped as {"data": body}; answers are parsed envelopes.
 * @returns {Promise<{data: any, revision?: string, next_start_key?: string}>}
 */
export async function request(method, url, { token, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (token) init.headers['X-Auth-Token'] = token;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify({ data: body });
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { message: 'The service cannot be reached.' });
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // A proxy's HTML error page, or an empty body: the status says enough.
  }
  if (!response.ok) throw new ApiError(response.status, envelope);
  return envelope;
}

/**
 * The messages of a Kazoo error's data ({"whitelist.0": {"format": {"message": ...}}}), each
 * with the dotted path it is about.
 * @returns {Array<[string, string]>}
 */
export function errorMessages(data) {
  const found = [];
  for (const [path, problems] of Object.entries(data || {})) {
    if (!problems || typeof problems !== 'object') continue;
    for (const problem of Object.values(problems)) {
      found.push([path, (problem && problem.message) || String(problem)]);
    }
  }
  return found;
}

/** The seconds since year 0 (Kazoo's timestamps) as a Date. */
export function fromGregorian(seconds) {
  return new Date((seconds - 62167219200) * 1000);
}
