import type { FastifyInstance } from 'fastify'
import { ApiError } from './errors.ts'

/** No request of ours needs more; JSON this deep only serves to exhaust recursive code later. */
export const MAX_JSON_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPENERS = new Set([0x5b, 0x7b]) // [ {
const CLOSERS = new Set([0x5d, 0x7d]) // ] }

/**
 * How deeply the JSON text nests arrays and objects, read from the raw text in one pass without
 * recursion, so it is safe to run on a body of any depth before anything parses it.
 */
export function jsonDepth(text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (OPENERS.has(c)) {
      if (++depth > max) max = depth
    } else if (CLOSERS.has(c)) {
      depth--
    }
  }
  return max
}

/**
 * Every JSON request body goes through here: bodies nested deeper than MAX_JSON_DEPTH are refused
 * with 400 before they are parsed; the rest get Fastify's own parser (prototype-poisoning checks
 * included).
 */
export function installJsonBodyParser(app: FastifyInstance) {
  const parse = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, raw, done) => {
    const body = String(raw)
    if (jsonDepth(body) > MAX_JSON_DEPTH) {
      done(
        new ApiError(
          'BAD_REQUEST',
          `the JSON body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`,
        ),
        undefined,
      )
      return
    }
    void parse(req, body, done)
  })
}

/** How deeply a parsed JSON value nests arrays and objects (iterative: safe at any depth). */
export function valueDepth(value: unknown): number {
  let max = 0
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number]
    if (v === null || typeof v !== 'object') continue
    if (depth + 1 > max) max = depth + 1
    for (const child of Object.values(v)) stack.push([child, depth + 1])
  }
  return max
}
