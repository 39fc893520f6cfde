import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import path from 'node:path'
import { buildApp } from '../app.ts'
import { routerDeps } from '../apps/routing.ts'
import type { Config } from '../config/config.ts'
import type { NodeClient } from '../node/types.ts'
import { createRouter, type Router } from '../router/index.ts'
import { startSshGateway, type SshGateway } from '../ssh/gateway.ts'
import { gatewayDeps } from '../sshkeys/gateway-deps.ts'
import { createBridge } from '../bridge/server.ts'
import { collectOwnImages } from '../images/gc.ts'

export interface Platform {
  app: FastifyInstance
  router: Router
  ssh: SshGateway
  close(): Promise<void>
}

/**
 * Everything `rigbox serve` runs on one host: the API, the app router and the SSH gateway over
 * one control plane and one node. Tests start it the same way.
 */
export async function startPlatform(
  config: Config,
  node: NodeClient | null,
  opts: { logger?: boolean | { level: string } } = {},
): Promise<Platform> {
  const app = await buildApp({ config, node, logger: opts.logger })
  const { aiSettings, credits, usage } = app.rigbox
  const bridge = await createBridge({
    ...app.rigbox,
    aiProxy: { ai: config.ai, settings: aiSettings, credits, usage, log: app.log as Logger },
  })
  node?.setBridge((conn, id) => bridge.handle(conn, id))
  // Disk work cut short by a crash is settled first: the reconciler must not start a half fork.
  await app.rigbox.snapshots.recover()
  await app.rigbox.reconciler.recover()
  // Old guest images that no disk needs any more go, beside the rest of start-up (images.md).
  const { imageDir, dataDir } = config
  const imageGc = node ? collectOwnImages({ imageDir, dataDir }, app.log) : Promise.resolve()
  await app.listen({ host: config.host, port: config.port })
  const router = await createRouter(routerDeps(app, config.domain), {
    host: config.host,
    port: config.router.port,
    ...(config.router.tlsPort !== null && {
      tlsPort: config.router.tlsPort,
      tls: config.router.tls ?? { generate: { dir: path.join(config.dataDir, 'router-tls') } },
    }),
    log: app.log,
  })
  const ssh = await startSshGateway(gatewayDeps(app), {
    host: config.host,
    port: config.sshPort,
    hostKeyDir: path.join(config.dataDir, 'ssh'),
    log: app.log,
  })
  return {
    app,
    router,
    ssh,
    async close() {
      await ssh.close()
      await router.close()
      // The bridge before the app: calls still in flight write their ledger rows to its database.
      await bridge.close()
      await app.close()
      await imageGc
    },
  }
}
