import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod'
import type { Logger } from 'pino'
import { ensureAdmin } from './auth/bootstrap.ts'
import { AUTH_FAILURES, KeyCheck, makeGuard } from './auth/guard.ts'
import { authRoutes } from './auth/routes.ts'
import { AuthStore } from './auth/store.ts'
import type { Config } from './config/config.ts'
import { openDatabase, type Db } from './db/database.ts'
import {
  answerClientError,
  answerFrameworkError,
  installErrorHandling,
} from './http/error-handler.ts'
import { installJsonBodyParser } from './http/json-body.ts'
import { RateLimiter } from './http/rate-limit.ts'
import { registerRoutes } from './http/route.ts'
import { snapshotRoutes } from './snapshots/routes.ts'
import { SnapshotService } from './snapshots/service.ts'
import { SnapshotStore } from './snapshots/store.ts'
import { limitsRoutes } from './limits/routes.ts'
import { CreditStore } from './ai/credits.ts'
import { aiRoutes } from './ai/routes.ts'
import { loadMasterKey, SecretBox, secretLogPaths } from './ai/secrets.ts'
import { SettingsStore } from './ai/settings.ts'
import { UsageStore } from './ai/usage.ts'
import type { NodeClient, WorkspaceSpec } from './node/types.ts'
import { Reconciler } from './reconciler/reconciler.ts'
import { templateRoutes } from './templates/routes.ts'
import { appRoutes } from './apps/routes.ts'
import { JobRunner, JobStore } from './tools/jobs.ts'
import { toolRoutes } from './tools/routes.ts'
import { CatalogService } from './tools/catalog-service.ts'
import { ToolService } from './tools/service.ts'
import { appServiceRoutes } from './apps/service-routes.ts'
import { wireAppServices, type AppServices } from './apps/services-wiring.ts'
import { attachmentChecker } from './automation/plan.ts'
import { automationRoutes } from './automation/routes.ts'
import { SetupRunner } from './automation/runner.ts'
import { WorkspaceServices } from './automation/services.ts'
import { workspaceServicesRoutes } from './automation/services-routes.ts'
import { AutomationStore } from './automation/store.ts'
import { AppLoginStore } from './apps/logins.ts'
import { AppService } from './apps/service.ts'
import { AppStore } from './apps/store.ts'
import { loadOrCreateKeyPair, type KeyPair } from './ssh/keypair.ts'
import { sshKeyRoutes } from './sshkeys/routes.ts'
import { SshKeyStore } from './sshkeys/store.ts'
import path from 'node:path'
import { secureDataDir } from './lib/data-dir.ts'
import { loadOrCreateSecret } from './lib/secret.ts'
import { guestRoutes } from './workspaces/guest-routes.ts'
import { egressRoutes } from './workspaces/egress-routes.ts'
import { workspaceRoutes } from './workspaces/routes.ts'
import { WorkspaceService } from './workspaces/service.ts'
import { WorkspaceStore, type WorkspaceRow } from './workspaces/store.ts'

export interface BuildOptions {
  config: Config
  /** The node VMs run on; null when this server has none (start answers 503). */
  node: NodeClient | null
  db?: Db
  /** `stream`: where log lines go (tests capture them); secrets are redacted either way. */
  logger?: boolean | { level: string; stream?: NodeJS.WritableStream }
}

export interface Rigbox {
  db: Db
  auth: AuthStore
  /** Presented keys, with failures counted per client address (the API and the router). */
  keyCheck: KeyCheck
  store: WorkspaceStore
  workspaces: WorkspaceService
  apps: AppService
  snapshots: SnapshotService
  sshKeys: SshKeyStore
  gatewayKey: KeyPair
  /** Signs router login links and session cookies. */
  sessionSecret: Buffer
  /** What the node needs to run (and configure) a workspace. */
  specOf: (row: WorkspaceRow) => Promise<WorkspaceSpec>
  reconciler: Reconciler
  node: NodeClient | null
  /** Set on the start that created the admin account. */
  adminKeyPath: string | null
  /** AI credits, the usage ledger and per-workspace AI settings (src/ai/; the VM bridge's proxy). */
  credits: CreditStore
  usage: UsageStore
  aiSettings: SettingsStore
  /** Apps as services: unit control, params, log sources and logs, router-counted metrics. */
  appServices: AppServices
  /** Setup scripts and service specs; the runner of each boot's automation. */
  automation: AutomationStore
  setupRunner: SetupRunner
  /** Workspace tools and the app catalog, installed by background jobs (src/tools/). */
  tools: ToolService
  catalog: CatalogService
}

declare module 'fastify' {
  interface FastifyInstance {
    rigbox: Rigbox
  }
}

/** The whole control plane as one Fastify instance: `rigbox serve` listens on it, tests inject. */
export async function buildApp(opts: BuildOptions): Promise<FastifyInstance> {
  const { config, node } = opts
  const app = Fastify({
    logger:
      opts.logger === false
        ? false
        : {
            ...(typeof opts.logger === 'object' ? opts.logger : { level: config.logLevel }),
            redact: secretLogPaths,
          },
    bodyLimit: config.bodyLimitBytes,
    // Errors carry our own codes; Fastify's default 'Bad Request' text never reaches clients.
    return503OnClosing: true,
    trustProxy: false,
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  installErrorHandling(app)
  installJsonBodyParser(app)
  // File uploads arrive as raw bytes, with their own (larger) size limit.
  app.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: config.fileLimitBytes },
    (_req, body, done) => done(null, body),
  )

  const repaired = secureDataDir(config.dataDir, { imageDir: config.imageDir })
  if (repaired.length) app.log.warn({ paths: repaired }, 'data dir: permissions repaired')
  const db = opts.db ?? (await openDatabase(config.dbPath))
  const auth = new AuthStore(db)
  const store = new WorkspaceStore(db)
  const sshKeys = new SshKeyStore(db)
  // The SSH gateway's client key: its public half is authorized in every guest, so the gateway
  // can reach the guest's sshd for users it has authenticated itself.
  const gatewayKey = await loadOrCreateKeyPair(
    path.join(config.dataDir, 'ssh', 'gateway_ed25519'),
    'rigbox-gateway',
  )
  const sessionSecret = loadOrCreateSecret(path.join(config.dataDir, 'router.secret'))
  const credits = new CreditStore(db)
  const usage = new UsageStore(db)
  // Seals BYOK keys and sensitive app params alike.
  const secrets = new SecretBox(loadMasterKey(config))
  const aiSettings = new SettingsStore({
    db,
    accounts: credits,
    secrets,
    log: app.log as Logger,
    // A running VM gets its new AI env at once (new shells see it); a stopped one at its boot.
    onSettingsChanged: async (id) => {
      const row = await store.get(id)
      if (row?.status === 'running') await reconfigure(row)
    },
  })
  const specOf = async (row: WorkspaceRow): Promise<WorkspaceSpec> => ({
    id: row.id,
    name: row.name,
    ownerId: row.user_id,
    image: row.image,
    ramMb: row.ram_mb,
    vcpus: row.vcpu_count,
    diskMb: row.disk_size_mb,
    // The AI env first (proxy URLs, or the BYOK key): what the user set wins over it.
    env: {
      ...(await aiSettings.vmEnvFor(row.id)),
      ...(JSON.parse(row.env_vars) as Record<string, string>),
    },
    authorizedKeys: [
      ...(await sshKeys.listByUser(row.user_id)).map((k) => k.public_key),
      gatewayKey.publicKey,
    ],
    egress: JSON.parse(row.egress_policy) as WorkspaceSpec['egress'],
  })
  const reconfigure = async (row: WorkspaceRow) => node?.configure(await specOf(row))
  const automation = new AutomationStore(db)
  // Each fresh boot runs the workspace's scripts and services in the background.
  const setupRunner = new SetupRunner({
    node,
    automation,
    workspaces: store,
    log: app.log as Logger,
    // Apps' params reach their units before the services start.
    beforePlan: (row, guest) => appServices.params.deliverAll(row.id, guest),
    // Quick deploy's catalog apps install once the workspace's own setup is done.
    afterSetup: async (row) => void (await catalog.installPending(row)),
  })
  const reconciler = new Reconciler({
    store,
    node,
    log: app.log as Logger,
    bootTimeoutMs: config.bootTimeoutMs,
    stopTimeoutMs: config.stopTimeoutMs,
    specOf,
    onBooted: (row) => setupRunner.onBooted(row),
  })
  const workspaces = new WorkspaceService({
    store,
    node,
    nodeId: node?.id ?? 'none',
    kick: (id) => reconciler.kick(id),
    onEnvChanged: reconfigure,
    ssh: { host: config.publicHost, port: config.sshPort },
    checkAttachments: attachmentChecker(automation),
  })
  const apps = new AppService({
    store: new AppStore(db),
    workspaces,
    node,
    urlOf: (sub) => `http://${sub}.${config.domain}:${config.router.port}`,
    sessionSecret,
    logins: new AppLoginStore(db),
  })
  const appServices = wireAppServices({
    db,
    apps,
    workspaces,
    node,
    secrets,
    onMetricsError: (err) => app.log.warn({ err }, 'app metrics flush failed'),
  })
  const toolDeps = {
    jobs: new JobRunner(new JobStore(db), node, app.log as Logger),
    apps,
    appStore: new AppStore(db),
    workspaces,
    node,
    secrets,
    findUser: (id: string) => auth.findUserById(id),
    log: app.log as Logger,
  }
  const tools = new ToolService(toolDeps)
  const catalog = new CatalogService(toolDeps)
  // Install jobs of a previous process cannot finish: they show failed from now on.
  await tools.recover()
  const snapshots = new SnapshotService({
    snapshots: new SnapshotStore(db),
    store,
    workspaces,
    node,
    specOf,
    log: app.log as Logger,
  })
  const limiter = new RateLimiter(
    {
      auth: config.rateLimits.auth,
      workspaces: config.rateLimits.workspaces,
      apps: config.rateLimits.apps,
      [AUTH_FAILURES]: config.rateLimits.authFailures,
    },
    config.rateLimits.windowMs,
  )
  const keyCheck = new KeyCheck(auth, limiter)
  const adminKeyPath = await ensureAdmin(auth, config.dataDir)
  app.decorate('rigbox', {
    db,
    auth,
    keyCheck,
    store,
    workspaces,
    apps,
    snapshots,
    sshKeys,
    gatewayKey,
    sessionSecret,
    specOf,
    reconciler,
    node,
    adminKeyPath,
    credits,
    usage,
    aiSettings,
    automation,
    setupRunner,
    appServices,
    tools,
    catalog,
  })

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Rigbox API',
        description:
          'Workspaces in isolated micro-VMs. `/api/v1` answers with envelopes ({"vm": …}); `/api` with the flat shapes of the seed examples.',
        version: '1.0.0',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  })

  const guard = makeGuard(keyCheck, limiter)
  registerRoutes(
    app,
    [
      ...authRoutes(auth),
      ...workspaceRoutes(workspaces),
      ...guestRoutes(workspaces, node, config),
      ...egressRoutes(workspaces),
      ...templateRoutes({ workspaces, apps, secrets }),
      ...appRoutes(apps, appServices.control),
      ...appServiceRoutes({ apps, ...appServices }),
      ...automationRoutes(automation),
      ...workspaceServicesRoutes(
        new WorkspaceServices({ workspaces, automation, apps: new AppStore(db), node }),
      ),
      ...toolRoutes(tools, catalog, apps),
      ...snapshotRoutes(snapshots, workspaces),
      ...sshKeyRoutes({
        keys: sshKeys,
        workspaces,
        node,
        sync: async (id) => {
          const row = await store.get(id)
          if (row) await reconfigure(row)
        },
      }),
      ...limitsRoutes(store, config.nodeCapacity, credits),
      ...aiRoutes({ credits, usage, settings: aiSettings, workspaces, auth }),
    ],
    guard,
  )
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }))

  app.addHook('onClose', async () => {
    await reconciler.close()
    await setupRunner.close()
    await appServices.close()
    if (!opts.db) await db.destroy()
  })
  return app
}
