import fs from 'node:fs'
import type { FastifyInstance } from 'fastify'
import fc from 'fast-check'
import { referencePath } from './reference.ts'

/** The parts of JSON Schema our route schemas produce (zod → OpenAPI 3.1). */
export interface JsonSchema {
  $ref?: string
  type?: string | string[]
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: boolean | JsonSchema
  propertyNames?: JsonSchema
  items?: JsonSchema
  minItems?: number
  maxItems?: number
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  allOf?: JsonSchema[]
  enum?: unknown[]
  const?: unknown
  default?: unknown
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
}

export interface Param {
  name: string
  required: boolean
  schema: JsonSchema
}

/** One operation of our OpenAPI, with every $ref resolved. */
export interface Operation {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** As the spec writes it: `/api/v1/workspaces/{id}`. */
  path: string
  operationId: string
  /** Marked public in the spec (`security: []`). */
  isPublic: boolean
  pathParams: Param[]
  query: Param[]
  /** The JSON body's schema; undefined for operations without a JSON body. */
  body?: JsonSchema
  /** Whether the body is required. */
  bodyRequired: boolean
}

interface RawOperation {
  operationId: string
  security?: unknown[]
  parameters?: { in: string; name: string; required?: boolean; schema: JsonSchema }[]
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> }
  responses?: Record<string, unknown>
}

interface Spec {
  paths: Record<string, Record<string, RawOperation>>
  components: { schemas: Record<string, JsonSchema> }
}

/** Inlines every `#/components/schemas/…` reference (our schemas have no cycles). */
export function resolveRefs(schema: JsonSchema, spec: Spec, seen: string[] = []): JsonSchema {
  if (schema.$ref) {
    const name = schema.$ref.split('/').pop() as string
    if (seen.includes(name)) throw new Error(`cyclic schema ${name}`)
    const target = spec.components.schemas[name]
    if (!target) throw new Error(`unresolvable ${schema.$ref}`)
    return resolveRefs(target, spec, [...seen, name])
  }
  const out: JsonSchema = { ...schema }
  if (schema.properties) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([k, v]) => [k, resolveRefs(v, spec, seen)]),
    )
  }
  if (schema.items) out.items = resolveRefs(schema.items, spec, seen)
  if (typeof schema.additionalProperties === 'object') {
    out.additionalProperties = resolveRefs(schema.additionalProperties, spec, seen)
  }
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (schema[key]) out[key] = schema[key].map((s) => resolveRefs(s, spec, seen))
  }
  return out
}

/** Every operation the server's own OpenAPI lists, on both surfaces. */
export async function loadOperations(app: FastifyInstance): Promise<Operation[]> {
  const res = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })
  if (res.statusCode !== 200) throw new Error(`openapi.json: ${res.statusCode}`)
  const spec = res.json<Spec>()
  const ops: Operation[] = []
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, raw] of Object.entries(methods)) {
      const params = raw.parameters ?? []
      const json = raw.requestBody?.content['application/json']
      const param = (p: (typeof params)[number]): Param => ({
        name: p.name,
        required: p.required === true,
        schema: resolveRefs(p.schema, spec),
      })
      ops.push({
        method: method.toUpperCase() as Operation['method'],
        path,
        operationId: raw.operationId,
        isPublic: Array.isArray(raw.security) && raw.security.length === 0,
        pathParams: params.filter((p) => p.in === 'path').map(param),
        query: params.filter((p) => p.in === 'query').map(param),
        body: json ? resolveRefs(json.schema, spec) : undefined,
        bodyRequired: raw.requestBody?.required === true,
      })
    }
  }
  return ops
}

/**
 * What kind of resource a path parameter names: the collection segment before it and the
 * parameter, e.g. `workspaces.id`, `snapshots.snapshot_id`.
 */
export function resourceKey(path: string, param: string): string {
  const segments = path.split('/')
  const at = segments.indexOf(`{${param}}`)
  return `${segments[at - 1]}.${param}`
}

/** The URL of an operation with its path parameters filled (encoded) and a query string. */
export function urlOf(op: Operation, params: Record<string, string>, query = ''): string {
  const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = params[name]
    if (value === undefined) throw new Error(`no value for {${name}} of ${op.path}`)
    return encodeURIComponent(value)
  })
  return query ? `${path}?${query}` : path
}

/** The schema's non-null alternative (`x.nullish()` is anyOf [x, null]). */
export function nonNull(schema: JsonSchema): JsonSchema {
  const options = schema.anyOf ?? schema.oneOf
  if (!options) return schema
  return options.find((s) => s.type !== 'null') ?? schema
}

/** A string that a `pattern` (and the length bounds) accept, found deterministically. */
function matchingString(schema: JsonSchema): string {
  const min = schema.minLength ?? 0
  const max = schema.maxLength ?? Infinity
  const candidates = fc.sample(fc.stringMatching(new RegExp(schema.pattern as string)), {
    numRuns: 200,
    seed: 7,
  })
  const fit = candidates.find((s) => s.length >= Math.max(min, 1) && s.length <= max)
  if (fit === undefined) throw new Error(`no sample string matches ${schema.pattern}`)
  return fit
}

/**
 * The smallest instance the schema accepts: required properties only, lower bounds. Semantic
 * rules that live outside the schema (refinements) are the caller's to satisfy.
 */
export function minimalInstance(schema: JsonSchema): unknown {
  if (schema.default !== undefined) return schema.default
  if (schema.const !== undefined) return schema.const
  if (schema.enum) return schema.enum[0]
  if (schema.anyOf || schema.oneOf) return minimalInstance(nonNull(schema))
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type
  switch (type) {
    case 'object':
      return Object.fromEntries(
        (schema.required ?? []).map((k) => [k, minimalInstance(schema.properties?.[k] ?? {})]),
      )
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => minimalInstance(schema.items ?? {}))
    case 'string':
      if (schema.format === 'email') return 'someone@example.com'
      if (schema.pattern) return matchingString(schema)
      return 'x'.repeat(Math.max(schema.minLength ?? 1, 1))
    case 'integer':
    case 'number':
      return Math.max(schema.minimum ?? 1, (schema.exclusiveMinimum ?? 0) + 1)
    case 'boolean':
      return false
    default:
      return {}
  }
}

interface ReferenceOp {
  responses?: Record<string, unknown>
}
let reference: { paths: Record<string, Record<string, ReferenceOp>> } | undefined

/** The statuses the product's reference OpenAPI documents for an operation (none if absent). */
export function referenceStatuses(method: string, path: string): string[] {
  reference ??= JSON.parse(fs.readFileSync(referencePath, 'utf8')) as typeof reference
  const v1 = path.startsWith('/api/v1/') ? path : path.replace(/^\/api\//, '/api/v1/')
  const op = reference?.paths[v1]?.[method.toLowerCase()]
  return Object.keys(op?.responses ?? {})
}
