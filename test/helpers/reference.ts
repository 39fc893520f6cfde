import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'

const here = path.dirname(fileURLToPath(import.meta.url))
/** The product's public OpenAPI, beside the repository as `../shared/reference`. */
export const referencePath = path.resolve(here, '../../../shared/reference/rigbox-api.json')

let ajv: Ajv2020 | undefined

function load(): Ajv2020 {
  if (ajv) return ajv
  const spec = JSON.parse(fs.readFileSync(referencePath, 'utf8')) as {
    components: { schemas: Record<string, unknown> }
  }
  ajv = new Ajv2020({ strict: false, allErrors: true })
  ;(addFormats as unknown as (a: Ajv2020) => void)(ajv)
  ajv.addSchema({ $id: 'ref', components: spec.components })
  return ajv
}

/** Validates a body against a reference component schema; returns the errors (empty = valid). */
export function referenceErrors(schemaName: string, body: unknown): string[] {
  const a = load()
  const validate = a.getSchema(`ref#/components/schemas/${schemaName}`)
  if (!validate) throw new Error(`no reference schema ${schemaName}`)
  if (validate(body)) return []
  return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`)
}
