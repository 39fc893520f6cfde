import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig, type Config } from '../../src/config/config.ts'
import type { NodeClient } from '../../src/node/types.ts'

export interface TestApp {
  app: FastifyInstance
  config: Config
  dataDir: string
  adminKey: string
  close: () => Promise<void>
}

export function tempDir(prefix = 'rigbox-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

/** A real app on a real SQLite file in a fresh data dir. */
export async function makeApp(
  opts: { env?: Record<string, string>; node?: NodeClient | null; dataDir?: string } = {},
): Promise<TestApp> {
  const dataDir = opts.dataDir ?? tempDir()
  const config = loadConfig({ RIGBOX_DATA_DIR: dataDir, RIGBOX_NODE: 'none', ...opts.env })
  const app = await buildApp({ config, node: opts.node ?? null, logger: false })
  await app.ready()
  const adminKey = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
  return { app, config, dataDir, adminKey, close: () => app.close() }
}

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

/** app.inject with a key; returns status, parsed JSON and headers. */
export async function call(
  app: FastifyInstance,
  key: string | null,
  method: InjectOptions['method'],
  url: string,
  payload?: unknown,
) {
  const res = await app.inject({
    method,
    url,
    headers: key ? bearer(key) : {},
    ...(payload === undefined ? {} : { payload: payload as InjectOptions['payload'] }),
  })
  let json: unknown
  try {
    json = res.json()
  } catch {
    json = undefined
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.statusCode, json: json as any, headers: res.headers, body: res.body }
}

/** Creates a user through the admin API and returns its key. */
export async function makeUser(t: TestApp, email: string, plan: 'free' | 'pro' = 'free') {
  const res = await call(t.app, t.adminKey, 'POST', '/api/v1/admin/users', { email, plan })
  if (res.status !== 201) throw new Error(`user create failed: ${res.status} ${res.body}`)
  return { key: res.json.api_key as string, user: res.json.user as { id: string } }
}
