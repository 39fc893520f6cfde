import type { FastifyInstance } from 'fastify'
import { buildApp } from '../app.ts'
import { loadConfig, type Config } from '../config/config.ts'
import type { NodeClient } from '../node/types.ts'

/** Creates the node this server runs VMs on, or null (RIGBOX_NODE=none or no runtime here). */
async function createNode(config: Config, log: (msg: string) => void): Promise<NodeClient | null> {
  if (config.node === 'none') return null
  try {
    const { createLocalNode } = await import('../node/local-node.ts')
    return await createLocalNode(config)
  } catch (err) {
    log(`rigbox: the local node could not start, workspaces cannot run: ${(err as Error).message}`)
    return null
  }
}

/** `rigbox serve`: the whole platform on one host. Resolves once listening. */
export async function serve(env = process.env): Promise<FastifyInstance> {
  const config = loadConfig(env)
  const node = await createNode(config, (m) => console.error(m))
  const app = await buildApp({ config, node })
  if (app.rigbox.adminKeyPath) {
    console.log(`rigbox: admin account created; its API key is in ${app.rigbox.adminKeyPath}`)
  }
  await app.rigbox.reconciler.recover()
  await app.listen({ host: config.host, port: config.port })
  console.log(`rigbox: API on http://${config.host}:${config.port} (data in ${config.dataDir})`)

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    // VMs keep running across a control-plane restart; the next start adopts them.
    void app
      .close()
      .then(() => node?.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err)
          process.exit(1)
        },
      )
  }
  process.once('SIGTERM', () => shutdown('SIGTERM'))
  process.once('SIGINT', () => shutdown('SIGINT'))
  return app
}
