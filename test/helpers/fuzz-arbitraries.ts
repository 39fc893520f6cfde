import fc from 'fast-check'
import { resourceKey, type JsonSchema, type Operation, type Param } from './openapi.ts'
import { bodyReference, type ResourceIds } from './resources.ts'
import {
  hostileNumber,
  hostileString,
  junkJson,
  PROTO_KEYS,
  shaped,
  toJsonText,
  valid,
} from './fuzz-values.ts'

/** Hostile requests for one operation of our OpenAPI: URL (path params, query) and body. */

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/JSON',
  'application/json; charset=utf-16',
  'text/plain',
  'application/octet-stream',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/vnd.api+json',
]

export interface FuzzBody {
  payload?: string | Buffer
  contentType?: string
}

const rawBody: fc.Arbitrary<FuzzBody> = fc.record({
  payload: fc.oneof(
    fc.constantFrom('', '{', '{"a":', 'nul', '\0', '[]'.repeat(1000), '{"a":1}{"b":2}', '\ufeff{}'),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  ),
  contentType: fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined }),
})

/** Body properties that refer to a resource (`workspace_id`) get the owner's real one. */
function withOwnerIds(body: unknown, ids: ResourceIds): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body
  return Object.fromEntries(Object.entries(body).map(([k, v]) => [k, bodyReference(ids, k) ?? v]))
}

/** A valid body with one of its declared properties made hostile: reaches the deeper checks. */
function oneHostile(body: fc.Arbitrary<unknown>, schema: JsonSchema): fc.Arbitrary<unknown> {
  const keys = Object.keys(schema.properties ?? {})
  if (keys.length === 0) return body
  return fc
    .tuple(body, fc.constantFrom(...keys), fc.oneof(junkJson, hostileString, hostileNumber))
    .map(([v, key, bad]) =>
      v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...v, [key]: bad } : v,
    )
}

/** A body for the operation: schema-shaped JSON mostly, junk and odd content types sometimes. */
export function bodyFor(op: Operation, ids: ResourceIds): fc.Arbitrary<FuzzBody> {
  const json = (value: fc.Arbitrary<unknown>) =>
    value.map((v): FuzzBody => ({ payload: toJsonText(v), contentType: 'application/json' }))
  if (!op.body) {
    const upload = fc
      .uint8Array({ maxLength: 2048 })
      .map((a): FuzzBody => ({ payload: Buffer.from(a), contentType: 'application/octet-stream' }))
    return fc.oneof(
      { weight: 4, arbitrary: fc.constant({}) },
      // Raw uploads (files) declare no JSON body; others must refuse one.
      { weight: 2, arbitrary: upload },
      { weight: 1, arbitrary: json(junkJson) },
      { weight: 1, arbitrary: rawBody },
    )
  }
  const validBody = valid(op.body).map((v) => withOwnerIds(v, ids))
  return fc.oneof(
    { weight: 3, arbitrary: json(validBody) },
    { weight: 3, arbitrary: json(oneHostile(validBody, op.body)) },
    { weight: 4, arbitrary: json(shaped(op.body)) },
    { weight: 1, arbitrary: json(junkJson) },
    { weight: 1, arbitrary: rawBody },
    ...(op.bodyRequired ? [] : [{ weight: 1, arbitrary: fc.constant({}) }]),
  )
}

/** Percent-encodes any string, lone surrogates included (as their replacement character). */
const encode = (s: string) => encodeURIComponent(Buffer.from(s, 'utf8').toString('utf8'))

const rawEncoded = fc.constantFrom('%', '%zz', '%E0%A4%A', '%C0%AF', '%2F', '%252F', '%00', '%FF')

function paramValue(param: Param, own: string | undefined, others: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    ...(own ? [{ weight: 8, arbitrary: fc.constant(encode(own)) }] : []),
    ...(others.length ? [{ weight: 1, arbitrary: fc.constantFrom(...others).map(encode) }] : []),
    {
      weight: 2,
      arbitrary: shaped(param.schema).map((v) =>
        encode(typeof v === 'object' ? JSON.stringify(v) : String(v)),
      ),
    },
    { weight: 2, arbitrary: hostileString.map(encode) },
    { weight: 1, arbitrary: rawEncoded },
  )
}

/**
 * The URL: path params mostly the owner's real id of the kind the parameter names (so the
 * request reaches the handler), else another of their ids or hostile ones; and a query string.
 */
export function urlFor(op: Operation, ids: ResourceIds): fc.Arbitrary<string> {
  const all = Object.values(ids)
  const params = fc.tuple(
    ...op.pathParams.map((p) => {
      const own = ids[resourceKey(op.path, p.name)]
      return paramValue(
        p,
        own,
        all.filter((id) => id !== own),
      )
    }),
  )
  const declared = fc.tuple(
    ...op.query.map((q) =>
      fc.option(
        fc.oneof(shaped(q.schema), hostileString).map((v) => `${q.name}=${encode(String(v))}`),
        { nil: undefined, freq: 2 },
      ),
    ),
  )
  const extra = fc.array(
    fc.oneof(
      fc
        .tuple(fc.oneof(fc.constantFrom(...PROTO_KEYS), hostileString), hostileString)
        .map(([k, v]) => `${encode(k)}=${encode(v)}`),
      fc.constantFrom('%', '&&', '=', 'a[b]=c', '__proto__[polluted]=1', 'path=/a&path=/b'),
    ),
    { maxLength: 3 },
  )
  return fc.tuple(params, declared, extra).map(([values, own, more]) => {
    // The values are encoded already (or deliberately malformed): they go in as they are.
    const byName = new Map(op.pathParams.map((p, i) => [p.name, values[i]]))
    const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => byName.get(name) ?? '')
    const query = [...own.filter((q) => q !== undefined), ...more].join('&')
    return query ? `${path}?${query}` : path
  })
}

/** One generated request; shown shortened when fast-check reports it (bodies reach 1 MiB). */
export class FuzzRequest {
  constructor(
    readonly url: string,
    readonly body: FuzzBody,
  ) {}
  [fc.toStringMethod](): string {
    const cut = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}…(${s.length} chars)` : s)
    const payload = Buffer.isBuffer(this.body.payload)
      ? `<${this.body.payload.length} bytes>`
      : cut(JSON.stringify(this.body.payload ?? null))
    return `${cut(this.url)} [${this.body.contentType ?? 'no content type'}] ${payload}`
  }
}

export function requestFor(op: Operation, ids: ResourceIds): fc.Arbitrary<FuzzRequest> {
  return fc
    .tuple(urlFor(op, ids), bodyFor(op, ids))
    .map(([url, body]) => new FuzzRequest(url, body))
}
