import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config/config.ts'
import { createLocalNode } from '../src/node/local-node.ts'
import { startPlatform } from '../src/server/platform.ts'

export const imageDir = process.env.RIGBOX_IMAGE_DIR ?? path.join(os.homedir(), '.rigbox', 'images')

/**
 * The app with a real local node in a fresh data dir, called as the admin through `inject`. The
 * workspace-class rate limit is lifted: a bench polls status far faster than a user would.
 * `platform`: the whole `rigbox serve` (router, SSH gateway, VM bridge) on free ports, for benches
 * that need what VMs reach; `env` adds settings.
 */
export async function realApp(
  prefix: string,
  opts: { env?: Record<string, string>; platform?: boolean } = {},
) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  const config = loadConfig({
    RIGBOX_DATA_DIR: dataDir,
    RIGBOX_IMAGE_DIR: imageDir,
    RIGBOX_LOG_LEVEL: 'warn',
    RIGBOX_RATE_LIMIT_WORKSPACES: '1000000',
    ...(opts.platform && { RIGBOX_PORT: '0', RIGBOX_ROUTER_PORT: '0', RIGBOX_SSH_PORT: '0' }),
    ...opts.env,
  })
  const node = await createLocalNode(config)
  const platform = opts.platform ? await startPlatform(config, node, { logger: false }) : null
  const app = platform?.app ?? (await buildApp({ config, node, logger: false }))
  const key = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
  const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => {
    const res = await app.inject({
      method,
      url,
      payload,
      headers: { authorization: `Bearer ${key}` },
    })
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
    return res.json()
  }
  /** Polls a workspace until it has `status` (a failure throws). */
  const until = async (id: string, status: string, everyMs = 20) => {
    for (;;) {
      const { vm } = await call('GET', `/api/v1/workspaces/${id}`)
      if (vm.status === status) return vm
      if (vm.status === 'failed') throw new Error(`${id} failed: ${vm.failure_reason}`)
      await new Promise((r) => setTimeout(r, everyMs))
    }
  }
  /** The cgroup parent this installation's VMs run under (src/node/installation.ts). */
  const cgroupParent = (
    JSON.parse(fs.readFileSync(path.join(dataDir, 'node', 'installation.json'), 'utf8')) as {
      cgroupParent: string
    }
  ).cgroupParent
  const close = async () => {
    await (platform ?? app).close()
    await node.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
  return { app, dataDir, call, until, cgroupParent, close }
}
