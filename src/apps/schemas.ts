import { z } from 'zod'
import { valueDepth } from '../http/json-body.ts'

export const visibilities = ['private', 'public', 'privileged'] as const
export const visibilitySchema = z.enum(visibilities).meta({ id: 'Visibility' })

/** Names that stay the platform's own: an app there could impersonate it. */
export const RESERVED_SUBDOMAINS = new Set([
  'api',
  'www',
  'admin',
  'app',
  'apps',
  'dashboard',
  'console',
  'ssh',
  'mail',
  'smtp',
  'rig',
  'rigbox',
  'static',
  'assets',
  'cdn',
  'login',
  'auth',
  'oauth',
  'sso',
  'status',
  'docs',
  'help',
  'support',
  'billing',
  'account',
  'accounts',
  'internal',
  'proxy',
  'bridge',
  'node',
  'nodes',
  'metrics',
  'grafana',
  'localhost',
  'root',
  'system',
  'security',
])

export const subdomainSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    'must be a DNS label: lowercase letters, digits and hyphens, not starting or ending with a hyphen',
  )
  .refine((s) => !RESERVED_SUBDOMAINS.has(s), 'is reserved by the platform')

const emails = z.array(z.email().max(254)).max(100)

export const METADATA_LIMITS = { depth: 16, chars: 16 * 1024 }

/** Free-form JSON the owner keeps on an app, bounded so storing and serving it stays cheap. */
const metadataSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (valueDepth(value) > METADATA_LIMITS.depth) {
      ctx.addIssue({
        code: 'custom',
        message: `metadata nests deeper than ${METADATA_LIMITS.depth} levels`,
      })
    } else if ((JSON.stringify(value) ?? '').length > METADATA_LIMITS.chars) {
      ctx.addIssue({
        code: 'custom',
        message: `metadata is over ${METADATA_LIMITS.chars} characters of JSON`,
      })
    }
  })
  .describe(
    `free-form JSON, at most ${METADATA_LIMITS.depth} levels deep and ${METADATA_LIMITS.chars} characters`,
  )
const port = z.number().int().min(1).max(65535)

export const appSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    subdomain: z.string(),
    url: z.string().describe('where the router serves it'),
    user_id: z.string(),
    node_id: z.string(),
    workspace_id: z.string(),
    port: z.number().int(),
    protocol: z.string(),
    visibility: visibilitySchema,
    allowed_emails: z.array(z.string()),
    status: z.enum(['active', 'inactive', 'installing', 'error']),
    description: z.string().nullable(),
    metadata: z.unknown(),
    system_tags: z.array(z.string()),
    app_kind: z.string(),
    managed: z.boolean(),
    depends_on: z.array(z.string()),
    custom_domain: z.string().nullable(),
    custom_domain_verified: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'App' })
export type App = z.infer<typeof appSchema>

export const appIdParams = z.object({ id: z.string().min(1).max(64) })
export const getAppResponse = z.object({ app: appSchema }).meta({ id: 'GetAppResponse' })
export const listAppsResponse = z
  .object({ apps: z.array(appSchema) })
  .meta({ id: 'ListAppsResponse' })

export const createAppRequest = z
  .object({
    name: subdomainSchema,
    workspace_id: z.string().min(1),
    port: port.nullish(),
    protocol: z.enum(['http', 'websocket', 'tcp']).nullish(),
    description: z.string().max(1000).nullish(),
    metadata: metadataSchema.optional(),
    app_kind: z.enum(['service', 'cli']).optional(),
  })
  .meta({ id: 'CreateAppRequest' })

export const updateAppRequest = z
  .object({
    name: subdomainSchema.nullish(),
    port: port.nullish(),
    description: z.string().max(1000).nullish(),
    metadata: metadataSchema.optional(),
    status: z.enum(['active', 'inactive']).nullish(),
    visibility: visibilitySchema.nullish(),
    allowed_emails: emails.nullish(),
    custom_domain: z.string().nullish(),
  })
  .meta({ id: 'UpdateAppRequest' })

export const visibilityRequest = z
  .object({ visibility: visibilitySchema, allowed_emails: emails.nullish() })
  .meta({ id: 'UpdateAppVisibilityRequest' })

export const serviceActionResponse = z
  .object({ message: z.string(), app: appSchema, service_name: z.string() })
  .meta({ id: 'ServiceActionResponse' })

export const appHealthResponse = z
  .object({
    live: z.boolean(),
    port_open: z.boolean(),
    port_drift: z.boolean(),
    service_status: z.string(),
    status: z.enum(['healthy', 'degraded', 'down']),
  })
  .meta({ id: 'AppHealthResponse' })

export const listeningPortsResponse = z
  .object({
    ports: z.array(
      z.object({
        port: z.number().int(),
        address: z.string(),
        process: z.string().nullable(),
        already_exposed: z.boolean(),
      }),
    ),
  })
  .meta({ id: 'ListListeningPortsResponse' })

export const exposePortRequest = z
  .object({
    port,
    step: z.enum(['detect', 'wrap']).default('wrap'),
    name: subdomainSchema.nullish(),
  })
  .meta({ id: 'ExposePortRequest' })

export const detectResult = z.object({
  step: z.literal('detect'),
  port: z.number().int(),
  pid: z.number().int(),
  command: z.string(),
  cwd: z.string(),
  env_vars: z.array(z.string()),
  is_systemd: z.boolean(),
  systemd_unit: z.string().nullable(),
  process_name: z.string(),
  suggested_name: z.string(),
})
export const exposePortResponse = z
  .union([
    detectResult,
    z.object({
      step: z.literal('wrap'),
      message: z.string(),
      app: appSchema,
      service_name: z.string(),
      needs_restart: z.boolean(),
    }),
  ])
  .meta({ id: 'ExposePortResponse' })

export const reconcileAppsResponse = z
  .object({
    created: z.array(appSchema),
    existing: z.array(appSchema),
    install_jobs: z.record(z.string(), z.string()),
  })
  .meta({ id: 'ReconcileAppsResponse' })
