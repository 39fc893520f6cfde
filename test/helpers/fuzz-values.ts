import fc from 'fast-check'
import { templates } from '../../src/templates/catalog.ts'
import { nonNull, type JsonSchema } from './openapi.ts'
import { publicKey } from './resources.ts'

/**
 * fast-check generators for hostile values, shaped by our OpenAPI: values a schema nearly
 * accepts (and some it does), values of the wrong type, and junk. Bodies are built as JSON text
 * so they can carry what JSON.stringify cannot: `__proto__` keys, 1e999, nesting of any depth.
 */

/** A piece of JSON text spliced into a body as it is. */
class RawJson {
  constructor(readonly text: string) {}
}

export function toJsonText(value: unknown): string {
  if (value instanceof RawJson) return value.text
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']
const LONG = [64, 65, 255, 256, 1025, 4097, 32_769, 65_537, 1_100_000]

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\0',
    'a\0b',
    '..',
    '../../../../etc/passwd',
    '/',
    '//x',
    '%00',
    '%2e%2e%2f',
    '\\',
    "'; DROP TABLE workspaces; --",
    '" OR 1=1 --',
    '<script>alert(1)</script>',
    '${jndi:ldap://127.0.0.1/x}',
    '\r\nX-Injected: 1',
    '\u202e\u0645\u0631\u062d\u0628\u0627',
    '😀'.repeat(100),
    '\ud800',
    'a\udfffb',
    'İ',
    'ﬀ',
    '\ufeff',
    'null',
    'NaN',
    '-1',
    '1e309',
    ' 1',
    'ws-',
    ...PROTO_KEYS,
  ),
  fc.constantFrom(...LONG).map((n) => 'A'.repeat(n)),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
)

export const hostileNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 0, 0.5, -0.5, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2),
  fc.constantFrom(-(2 ** 53), 1e308, -1e308, Number.MIN_VALUE, 65_536, 1e21),
  fc
    .constantFrom('1e999', '-1e999', `1${'0'.repeat(400)}`, '-0', '1e-400')
    .map((t) => new RawJson(t)),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)

/** Nesting of a chosen depth around the 64-level bound, and far past it. */
const deepJson = fc
  .constantFrom(10, 63, 64, 65, 200, 5_000, 50_000)
  .chain((depth) =>
    fc.constantFrom(
      new RawJson('['.repeat(depth) + ']'.repeat(depth)),
      new RawJson('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
    ),
  )

const pollution = fc.constantFrom(
  new RawJson('{"__proto__":{"polluted":true}}'),
  new RawJson('{"constructor":{"prototype":{"polluted":true}}}'),
  new RawJson('{"__proto__":null}'),
)

/** Any JSON value at all, hostile ones more likely than chance would give. */
export const junkJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 1, arbitrary: deepJson },
  { weight: 1, arbitrary: pollution },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}) },
)

function stringFor(schema: JsonSchema): fc.Arbitrary<string> {
  const maxLength = Math.min(schema.maxLength ?? 40, 40)
  const plain = fc.string({ minLength: Math.min(schema.minLength ?? 0, maxLength), maxLength })
  if (!schema.pattern) return plain
  try {
    return fc.stringMatching(new RegExp(schema.pattern))
  } catch {
    return plain
  }
}

/** Values shaped by the schema, often valid, often not quite; now and then of the wrong type. */
export function shaped(schema: JsonSchema): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 8, arbitrary: typed(schema, false) },
    { weight: 1, arbitrary: junkJson },
  )
}

/** Values the schema accepts (as far as JSON Schema says: refinements may still refuse them). */
export function valid(schema: JsonSchema): fc.Arbitrary<unknown> {
  return typed(schema, true)
}

function typed(schema: JsonSchema, validOnly: boolean): fc.Arbitrary<unknown> {
  const options = schema.anyOf ?? schema.oneOf
  if (options) return fc.oneof(...options.map((o) => typed(o, validOnly)))
  if (schema.enum) {
    const values = fc.constantFrom(...schema.enum)
    return validOnly ? values : fc.oneof(values, hostileString)
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type
  const within = fc.integer({
    min: Math.max(schema.minimum ?? -1e6, -1e6),
    max: Math.min(schema.maximum ?? 1e9, 1e9),
  })
  switch (type) {
    case 'null':
      return fc.constant(null)
    case 'object':
      return objectFor(schema, validOnly)
    case 'array': {
      const items = fc.array(validOnly ? valid(schema.items ?? {}) : shaped(schema.items ?? {}), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      })
      if (validOnly) return items
      const huge = fc.constantFrom(1_000, 100_000).map((n) => Array(n).fill('x'))
      return fc.oneof({ weight: 5, arbitrary: items }, { weight: 1, arbitrary: huge })
    }
    case 'string':
      if (validOnly) return stringFor(schema)
      return fc.oneof(
        { weight: 3, arbitrary: stringFor(schema) },
        { weight: 2, arbitrary: hostileString },
      )
    case 'integer':
    case 'number':
      return validOnly ? within : fc.oneof(within, hostileNumber)
    case 'boolean':
      return fc.boolean()
    default:
      // No type: any JSON is valid here, the deepest and oddest included.
      return junkJson
  }
}

/**
 * Meaningful values for properties whose rules live in code, not in the schema (a key must parse,
 * a host pattern must be one), so the fuzz gets past those checks too.
 */
const meaningful: Record<string, fc.Arbitrary<unknown>> = {
  public_key: fc.constantFrom(publicKey(), publicKey()),
  allow: fc.array(fc.constantFrom('example.com', '*.example.org', '10.0.0.0/8', '192.0.2.1:443')),
  deny: fc.array(fc.constantFrom('evil.example', '169.254.169.254', '::1', '*.internal:8080')),
  command: fc.constantFrom('true', 'echo hi', 'ls -la /', 'printf %s "$HOME"'),
  template_id: fc.constantFrom(...templates.map((t) => t.id)),
}

function objectFor(schema: JsonSchema, validOnly: boolean): fc.Arbitrary<unknown> {
  const value = (sub: JsonSchema, key: string) => {
    const typedValue = validOnly ? valid(sub) : shaped(nonNull(sub))
    const known = meaningful[key]
    return known
      ? fc.oneof({ weight: 2, arbitrary: known }, { weight: 1, arbitrary: typedValue })
      : typedValue
  }
  const required = new Set(schema.required ?? [])
  const declared = Object.entries(schema.properties ?? {}).map(([key, sub]) => {
    const entry = value(sub, key).map((v) => [key, v] as const)
    return validOnly && required.has(key)
      ? entry
      : fc.option(entry, { nil: undefined, freq: validOnly ? 2 : 3 })
  })
  const values = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : {}
  const keys = schema.propertyNames ? stringFor(schema.propertyNames) : fc.string({ maxLength: 20 })
  const open = schema.additionalProperties !== undefined && schema.additionalProperties !== false
  const extra = validOnly
    ? open
      ? fc.array(fc.tuple(keys, valid(values)), { maxLength: 4 })
      : fc.constant([])
    : fc.array(
        fc.tuple(fc.oneof(keys, fc.constantFrom(...PROTO_KEYS), hostileString), shaped(values)),
        { maxLength: open ? 6 : 2 },
      )
  return fc
    .tuple(fc.tuple(...declared), extra)
    .map(([own, more]) => Object.fromEntries([...own.filter((e) => e !== undefined), ...more]))
}
