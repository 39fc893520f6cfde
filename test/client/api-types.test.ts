import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { it } from 'node:test'
import { generateApiTypes } from '../../src/client/generate.ts'

it('src/client/api-types.ts matches the OpenAPI the routes generate (run npm run gen:api)', async () => {
  const file = path.resolve(
    path.dirname(fileURLToPath(import.meta.url)),
    '../../src/client/api-types.ts',
  )
  assert.equal(fs.readFileSync(file, 'utf8'), await generateApiTypes())
})
