import { loadConfig, type Config } from '../config/config.ts'
import type { NodeClient } from '../node/types.ts'
import { startPlatform, type Platform } from './platform.ts'

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
export async function serve(env = process.env): Promise<Platform> {
  const config = loadConfig(env)
  // Everything the server writes is for root's eyes only unless it says otherwise (guest images,
  // built by `rig image build`, and the jail's files set their modes explicitly).
  process.umask(0o077)
  const node = await createNode(config, (m) => console.error(m))
  const platform = await startPlatform(config, node)
  const { app, router, ssh } = platform
  if (app.rigbox.adminKeyPath) {
    console.log(`rigbox: admin account created; its API key is in ${app.rigbox.adminKeyPath}`)
  }
  console.log(`rigbox: API on http://${config.host}:${config.port} (data in ${config.dataDir})`)
  console.log(`rigbox: apps at http://<app>.${config.domain}:${config.router.port}`)
  if (router.caPath)
    console.log(`rigbox: app TLS on :${config.router.tlsPort}; trust the CA ${router.caPath}`)
  console.log(
    `rigbox: SSH gateway on ${config.host}:${ssh.port} (host key ${ssh.hostKeyFingerprint})`,
  )

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    // VMs keep running across a control-plane restart; the next start adopts them.
    void platform
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
  return platform
}
