/**
 * A server for bench/api.ts, in its own process so the load generator does not share its event
 * loop. Mode `rigbox`: the real app (SQLite, auth, rate limit, zod serialization); mode `bare`: a
 * bare Fastify route answering a workspace-sized JSON object. Prints `READY <port> <path> <key>`.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Fastify from 'fastify'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config/config.ts'

const mode = process.argv[2]
if (mode === 'bare') {
  const app = Fastify({ logger: false })
  const vm = { id: 'ws-abcdefgh', name: 'bench', status: 'provisioned', ram_mb: 512 }
  app.get('/api/v1/workspaces/:id', async () => ({ vm, failure: null }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  console.log(
    `READY ${(app.server.address() as { port: number }).port} /api/v1/workspaces/ws-abcdefgh -`,
  )
} else {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-bench-'))
  const config = loadConfig({
    RIGBOX_DATA_DIR: dataDir,
    RIGBOX_NODE: 'none',
    RIGBOX_LOG_LEVEL: 'silent',
    // The bench measures the request path, not the limiter's refusals.
    RIGBOX_RATE_LIMIT_WORKSPACES: '100000000',
  })
  const app = await buildApp({ config, node: null })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const key = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/workspaces',
    headers: { authorization: `Bearer ${key}` },
    payload: { name: 'bench' },
  })
  const id = (res.json() as { vm: { id: string } }).vm.id
  console.log(
    `READY ${(app.server.address() as { port: number }).port} /api/v1/workspaces/${id} ${key}`,
  )
}
