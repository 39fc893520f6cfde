import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config/config.ts'
import { createLocalNode } from '../src/node/local-node.ts'

export const imageDir = process.env.RIGBOX_IMAGE_DIR ?? path.join(os.homedir(), '.rigbox', 'images')

/**
 * The app with a real local node in a fresh data dir, called as the admin through `inject`. The
 * workspace-class rate limit is lifted: a bench polls status far faster than a user would.
 */
export async function realApp(prefix: string) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  const config = loadConfig({
    RIGBOX_DATA_DIR: dataDir,
    RIGBOX_IMAGE_DIR: imageDir,
    RIGBOX_LOG_LEVEL: 'warn',
    RIGBOX_RATE_LIMIT_WORKSPACES: '1000000',
  })
  const node = await createLocalNode(config)
  const app = await buildApp({ config, node, logger: false })
  const key = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
    const res = await app.inject({
      method,
      url,
      payload,
      headers: { authorization: `Bearer ${key}` },
    })
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
    return res.json()
  }
  const close = async () => {
    await app.close()
    await node.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
  return { app, dataDir, call, close }
}
