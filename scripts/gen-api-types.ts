/**
 * Regenerates src/client/api-types.ts from the OpenAPI the server publishes, which is itself
 * generated from the route schemas: the CLI and SDK compile against exactly what the API serves.
 * `npm run gen:api`; test/client/api-types.test.ts fails when the file is stale.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateApiTypes } from '../src/client/generate.ts'

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/client/api-types.ts')
fs.writeFileSync(out, await generateApiTypes())
console.log(`wrote ${out}`)
