// A form drawn from a JSON Schema document at run time, validated by the same document.
//
// Every field's label, hint, control, bounds and default come from the schema the service
// serves (/v2/schemas/{name}); nothing about click-to-calls is written here. Errors found by
// the schema before submit, and errors the service answers after it, land on the field they
// name.

import { Validator } from '@cfworker/json-schema';

import { errorMessages } from './api.js';
import { capitalise, el } from './dom.js';

// Keywords whose errors only say "a part below failed": the part below says what.
const UMBRELLA = new Set(['properties', 'items', '$ref', 'allOf', 'anyOf', 'oneOf',
  'additionalProperties', 'propertyNames', 'required']);

/** Fetch a schema and every schema it refers to; returns {id: schema}. */
export async function loadSchemas(rootId, fetchSchema) {
  const schemas = {};
  const pending = [rootId];
  while (pending.length) {
    const id = pending.pop();
    if (schemas[id]) continue;
    schemas[id] = await fetchSchema(id);
    for (const ref of refsIn(schemas[id])) {
      const target = ref.split('#')[0];
      if (target && !schemas[target]) pending.push(target);
    }
  }
  return schemas;
}

function refsIn(node, found = []) {
  if (Array.isArray(node)) node.forEach((item) => refsIn(item, found));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') found.push(value);
      else refsIn(value, found);
    }
  }
  return found;
}

function pointer(doc, path) {
  let node = doc;
  for (const raw of path.split('/').filter(Boolean)) {
    const seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = node == null ? undefined : node[seg];
  }
  return node;
}

let fieldCounter = 0;

export class SchemaForm {
  /**
   * @param {Record<string, object>} schemas  from loadSchemas; the root one is drawn
   * @param {string} rootId
   */
  constructor(schemas, rootId) {
    this.schemas = schemas;
    this.root = schemas[rootId];
    this.rootId = rootId;
    this.validator = new Validator(this.root, '7', false);
    for (const [id, schema] of Object.entries(schemas)) {
      if (id !== rootId) this.validator.addSchema(schema);
    }
    /** @type {Map<string, Field>} by dotted path ("media.ignore_early_media") */
    this.fields = new Map();
    this.extra = {};
    this.prefix = `f${++fieldCounter}`;
  }

  /** Follow a $ref (from the document `baseId`); returns [schema, itsDocumentId]. */
  resolve(schema, baseId) {
    let current = schema;
    let base = baseId;
    for (let hops = 0; current && current.$ref && hops < 16; hops++) {
      const [docId, path] = current.$ref.split('#');
      const nextBase = docId || base;
      const target = pointer(this.schemas[nextBase], path || '');
      const { $ref, ...own } = current;
      current = { ...target, ...own };
      base = nextBase;
    }
    return [current || {}, base];
  }

  /** Draw the fields into `container`, filled from `doc` (or the schema's defaults). */
  render(container, doc = null) {
    const known = new Set(Object.keys(this.root.properties || {}));
    this.extra = {};
    for (const [key, value] of Object.entries(doc || {})) {
      if (!known.has(key)) this.extra[key] = value;  // kept as they are on save
    }
    container.append(...this.renderObject(this.root, this.rootId, [], doc, !doc));
  }

  renderObject(schema, baseId, path, value, useDefaults) {
    const required = new Set(schema.required || []);
    const nodes = [];
    for (const [name, raw] of Object.entries(schema.properties || {})) {
      const [prop, propBase] = this.resolve(raw, baseId);
      const fieldPath = [...path, name];
      const current = value ? value[name] : undefined;
      // An object of named parts is a group of fields; one that also takes free-form keys
      // (custom_sip_headers: in/out, or a flat map) is edited as JSON.
      if (prop.type === 'object' && prop.properties && prop.additionalProperties === undefined) {
        const fieldset = el('fieldset', { class: 'group' });
        fieldset.append(el('legend', {}, prop.title || name));
        if (prop.description) fieldset.append(el('p', { class: 'hint' }, prop.description));
        fieldset.append(...this.renderObject(prop, propBase, fieldPath, current || null, useDefaults));
        nodes.push(fieldset);
      } else {
        const initial = current !== undefined ? current : (useDefaults ? prop.default : undefined);
        nodes.push(this.renderField(prop, fieldPath, initial, required.has(name)));
      }
    }
    return nodes;
  }

  renderField(schema, path, initial, required) {
    const key = path.join('.');
    const id = `${this.prefix}-${path.join('-').replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const kind = kindOf(schema);
    const wrapper = el('div', { class: `field field-${kind}`, 'data-field': key });
    const label = el('label', { for: id }, schema.title || path[path.length - 1]);
    if (required) label.append(el('span', { class: 'required' }, ' (required)'));
    const hintText = [schema.description, hintFor(schema, kind)].filter(Boolean).join(' ');
    const hint = el('p', { class: 'hint', id: `${id}-hint` }, hintText);
    const error = el('p', { class: 'error', id: `${id}-error`, hidden: '' });
    let input;
    if (kind === 'boolean') {
      input = el('input', { type: 'checkbox', id });
      input.checked = initial === true;
    } else if (kind === 'enum') {
      input = el('select', { id });
      if (!required && schema.default === undefined) input.append(el('option', { value: '' }, '(not set)'));
      schema.enum.forEach((option, index) => {
        const item = el('option', { value: String(index) }, String(option));
        if (option === initial) item.selected = true;
        input.append(item);
      });
    } else if (kind === 'lines' || kind === 'json') {
      input = el('textarea', { id, rows: kind === 'json' ? '4' : '3', spellcheck: 'false' });
      if (kind === 'lines') input.value = Array.isArray(initial) ? initial.join('\n') : '';
      else input.value = initial && Object.keys(initial).length ? JSON.stringify(initial, null, 2) : '';
    } else {
      input = el('input', { type: 'text', id, spellcheck: 'false', autocomplete: 'off' });
      if (kind === 'integer') input.setAttribute('inputmode', 'numeric');
      input.value = initial === undefined || initial === null ? '' : String(initial);
    }
    input.setAttribute('aria-describedby', `${id}-hint ${id}-error`);
    if (required) input.setAttribute('aria-required', 'true');
    if (kind === 'boolean') {
      wrapper.append(el('div', { class: 'check' }, input, label), hint, error);
    } else {
      wrapper.append(label, hint, input, error);
    }
    const field = { key, path, kind, schema, input, error, label: schema.title || key, required };
    this.fields.set(key, field);
    // Schema errors show while typing, once the typing pauses, not only at submit. (Not on
    // blur: an error appearing then moves the button under a pointer that is pressing it.)
    let timer = null;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.checkField(field), 350);
    });
    return wrapper;
  }

  /** The document the form describes, and fields whose text could not be read (bad JSON). */
  read() {
    const doc = structuredClone(this.extra);
    const unreadable = new Map();
    for (const field of this.fields.values()) {
      const [value, problem] = readField(field);
      if (problem) unreadable.set(field.key, problem);
      if (value === undefined) continue;
      let node = doc;
      for (const seg of field.path.slice(0, -1)) {
        if (!node[seg] || typeof node[seg] !== 'object') node[seg] = {};
        node = node[seg];
      }
      node[field.path[field.path.length - 1]] = value;
    }
    return { doc, unreadable };
  }

  /** Validate against the schema; returns Map(fieldKey → [messages]) and shows them. */
  validate() {
    const found = this.errors();
    this.show(found);
    return found;
  }

  /** The schema's errors for what the form holds now: Map(fieldKey → [messages]). */
  errors() {
    const { doc, unreadable } = this.read();
    const found = new Map();
    for (const [key, problem] of unreadable) found.set(key, [problem]);
    for (const name of this.root.required || []) {
      if (doc[name] === undefined) add(found, name, 'Required.');
    }
    const result = this.validator.validate(doc);
    for (const err of result.errors) {
      if (UMBRELLA.has(err.keyword)) continue;
      const segments = err.instanceLocation.replace(/^#\/?/, '').split('/').filter(Boolean)
        .map((seg) => decodeURIComponent(seg).replace(/~1/g, '/').replace(/~0/g, '~'));
      const nameError = err.keywordLocation.includes('/propertyNames/');
      const [key, rest] = this.fieldFor(segments);
      if (key === null || unreadable.has(key)) continue;
      add(found, key, where(this.fields.get(key), rest, nameError) + this.message(err));
    }
    return found;
  }

  /** Re-check one field (while typing): only its own errors are shown or cleared. */
  checkField(field) {
    this.showOne(field, this.errors().get(field.key) || []);
  }

  /** The field a path belongs to (the longest drawn prefix) and what is left of the path. */
  fieldFor(segments) {
    for (let n = segments.length; n > 0; n--) {
      const key = segments.slice(0, n).join('.');
      if (this.fields.has(key)) return [key, segments.slice(n)];
    }
    return [null, segments];
  }

  /** Errors as the service answers them: {"whitelist.0": {"format": {"message": ...}}}. */
  serverErrors(data) {
    const found = new Map();
    const loose = [];
    for (const [path, text] of errorMessages(data)) {
      const [key, rest] = this.fieldFor(path.split('.'));
      if (key === null) loose.push(`${path}: ${text}`);
      else add(found, key, where(this.fields.get(key), rest, false) + capitalise(text) + (/[.!?]$/.test(text) ? '' : '.'));
    }
    this.show(found);
    return { found, loose };
  }

  show(found) {
    for (const field of this.fields.values()) this.showOne(field, found.get(field.key) || []);
  }

  showOne(field, messages) {
    if (messages.length) {
      field.error.textContent = messages.join(' ');
      field.error.hidden = false;
      field.input.setAttribute('aria-invalid', 'true');
    } else {
      field.error.textContent = '';
      field.error.hidden = true;
      field.input.removeAttribute('aria-invalid');
    }
  }

  message(err) {
    const keyword = err.keyword;
    const schema = this.schemaAt(err.keywordLocation) || {};
    const n = schema[keyword];
    switch (keyword) {
      case 'type':
        return {
          integer: 'Must be a whole number.', number: 'Must be a number.',
          boolean: 'Must be true or false.', string: 'Must be text.',
          object: 'Must be a JSON object.', array: 'Must be a list.',
        }[Array.isArray(n) ? n[0] : n] || 'Wrong type.';
      case 'minLength': return n <= 1 ? 'Must not be empty.' : `At least ${n} characters.`;
      case 'maxLength': return `Too long: at most ${n} characters.`;
      case 'pattern': return 'Contains characters or a form that is not allowed here.';
      case 'minimum': return `Must be at least ${n}.`;
      case 'maximum': return `Must be at most ${n}.`;
      case 'enum': return `Must be one of: ${(n || []).join(', ')}.`;
      case 'format': return n === 'regex' ? 'Not a valid regular expression.' : `Not a valid ${n}.`;
      case 'maxItems': case 'maxProperties': return `At most ${n} entries.`;
      case 'not': return 'This name is not allowed.';
      default: return err.error;
    }
  }

  /** The (sub)schema that holds the keyword at a keywordLocation, following $refs. */
  schemaAt(keywordLocation) {
    const segments = keywordLocation.replace(/^#\/?/, '').split('/');
    segments.pop();
    let node = this.root;
    let base = this.rootId;
    for (const raw of segments) {
      if (!node) return null;
      if (raw === '$ref') {
        [node, base] = this.resolve({ $ref: node.$ref }, base);
      } else {
        node = node[decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')];
      }
    }
    return node;
  }

  /** The label and id of a field, for an error summary. */
  describeField(key) {
    const field = this.fields.get(key);
    return field ? { label: field.label, id: field.input.id } : { label: key, id: null };
  }
}

function kindOf(schema) {
  if (Array.isArray(schema.enum)) return 'enum';
  if (schema.type === 'boolean') return 'boolean';
  if (schema.type === 'integer' || schema.type === 'number') return 'integer';
  if (schema.type === 'array') return 'lines';
  if (schema.type === 'object') return 'json';
  return 'text';
}

function hintFor(schema, kind) {
  const parts = [];
  if (kind === 'lines') parts.push('One per line.');
  if (kind === 'json') parts.push('A JSON object, e.g. {"key": "value"}.');
  if (schema.default !== undefined && !(kind === 'json' && typeof schema.default === 'object')) {
    parts.push(`Default: ${JSON.stringify(schema.default)}.`);
  }
  return parts.join(' ');
}

function readField(field) {
  const { input, kind, schema } = field;
  switch (kind) {
    case 'boolean':
      return [input.checked];
    case 'enum':
      return [input.value === '' ? undefined : schema.enum[Number(input.value)]];
    case 'integer': {
      const text = input.value.trim();
      if (text === '') return [undefined];
      // Not a number: kept as text, so the schema's type error names the field.
      return [/^-?\d+$/.test(text) ? Number(text) : text];
    }
    case 'lines': {
      const lines = input.value.split('\n').map((line) => line.replace(/\r$/, '')).filter((line) => line !== '');
      return [lines.length ? lines : undefined];
    }
    case 'json': {
      const text = input.value.trim();
      if (text === '') return [undefined];
      try {
        return [JSON.parse(text)];
      } catch (error) {
        return [undefined, `Not valid JSON: ${error.message}`];
      }
    }
    default:
      return [input.value === '' ? undefined : input.value];
  }
}

function where(field, rest, nameError) {
  if (!rest.length || !field) return '';
  if (field.kind === 'lines' && /^\d+$/.test(rest[0])) return `Line ${Number(rest[0]) + 1}: `;
  if (nameError) return `Name “${rest.join('.')}”: `;
  return `“${rest.join('.')}”: `;
}

function add(found, key, message) {
  const list = found.get(key) || [];
  if (!list.includes(message)) list.push(message);
  found.set(key, list);
}
