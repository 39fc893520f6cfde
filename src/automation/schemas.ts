import { z } from 'zod'
import { dnsLabel, envVarsSchema } from '../workspaces/schemas.ts'

/** A script or command is sent to the guest as it is: bash would stop reading at a NUL. */
const MAX_SCRIPT_BYTES = 256 * 1024
const noNul = (s: string) => !s.includes('\0')
const script = z
  .string()
  .refine((s) => Buffer.byteLength(s) <= MAX_SCRIPT_BYTES, 'at most 256 KiB')
  .refine(noNul, 'no NUL characters')

const name = z.string().trim().min(1, 'must not be empty').max(100)
const runOn = z
  .enum(['first_boot', 'every_start'])
  .describe('first_boot: once per disk (until it succeeds); every_start: at every boot')
const order = z.number().int().min(-1_000_000).max(1_000_000)

export const createSetupScriptRequest = z
  .object({
    name,
    content: script.refine((s) => s.trim().length > 0, 'must not be empty'),
    run_on: runOn.default('first_boot'),
    script_order: order.nullish(),
  })
  .meta({ id: 'CreateSetupScriptRequest' })

export const updateSetupScriptRequest = z
  .object({
    name: name.nullish(),
    content: script.refine((s) => s.trim().length > 0, 'must not be empty').nullish(),
    run_on: runOn.nullish(),
    script_order: order.nullish(),
  })
  .meta({ id: 'UpdateSetupScriptRequest' })

export const setupScriptResponse = z
  .object({
    id: z.string(),
    user_id: z.string(),
    name: z.string(),
    content: z.string(),
    run_on: z.string(),
    script_order: z.number().int(),
    source: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'SetupScriptResponse' })
export type SetupScriptView = z.infer<typeof setupScriptResponse>

export const setupScriptsListResponse = z
  .object({ scripts: z.array(setupScriptResponse) })
  .meta({ id: 'SetupScriptsListResponse' })

/** systemd reads it as one line; a newline would end the directive and start another. */
const execStart = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(4096)
  .refine((s) => !/[\r\n\0]/.test(s), 'must be one line (no newline or NUL)')
  .describe('one command line for systemd (not a shell); `$` and `%` are taken literally')

const environmentFile = z
  .string()
  .max(1024)
  .regex(/^(\/[A-Za-z0-9._@+-]+)+$|^$/, 'must be an absolute path (letters, digits, ._@+-)')
  .describe('absolute path of an env file in the VM (a missing file is no error); "" clears it')

const restartPolicy = z.enum(['always', 'on-failure', 'no'])

export const createServiceSpecRequest = z
  .object({
    name: dnsLabel.describe('the unit is rigbox-svc-<name>.service'),
    exec_start: execStart,
    env_vars: envVarsSchema.nullish(),
    environment_file: environmentFile.nullish(),
    restart_policy: restartPolicy.default('on-failure'),
    auto_enable: z.boolean().default(true),
    setup_script: script.nullish().describe('bash run once, before the unit first starts'),
  })
  .meta({ id: 'CreateServiceSpecRequest' })

export const updateServiceSpecRequest = z
  .object({
    name: dnsLabel.nullish(),
    exec_start: execStart.nullish(),
    env_vars: envVarsSchema.nullish(),
    environment_file: environmentFile.nullish(),
    restart_policy: restartPolicy.nullish(),
    auto_enable: z.boolean().nullish(),
    setup_script: script.nullish(),
  })
  .meta({ id: 'UpdateServiceSpecRequest' })

export const serviceSpecResponse = z
  .object({
    id: z.string(),
    user_id: z.string(),
    name: z.string(),
    exec_start: z.string(),
    env_vars: z.record(z.string(), z.string()),
    environment_file: z.string().nullable(),
    restart_policy: z.string(),
    auto_enable: z.boolean(),
    setup_script: z.string().nullable(),
    systemd_unit_preview: z.string(),
    source: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'ServiceSpecResponse' })
export type ServiceSpecView = z.infer<typeof serviceSpecResponse>

export const serviceSpecsListResponse = z
  .object({ services: z.array(serviceSpecResponse) })
  .meta({ id: 'ServiceSpecsListResponse' })

export const idParams = z.object({ id: z.string().min(1).max(64) })

export const workspaceServiceResponse = z
  .object({
    id: z.string(),
    workspace_id: z.string(),
    name: z.string(),
    kind: z.string(),
    health_cmd: z.string(),
    status: z.string(),
    exposed: z.boolean(),
    source: z.string(),
    port: z.number().int().nullable(),
    unit_name: z.string().nullable(),
    log_sources: z.array(
      z.object({
        source_type: z.string(),
        source_ref: z.string(),
        display_name: z.string().nullable(),
        is_primary: z.boolean(),
      }),
    ),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'WorkspaceService' })
export type WorkspaceServiceView = z.infer<typeof workspaceServiceResponse>

export const workspaceServicesResponse = z
  .object({ services: z.array(workspaceServiceResponse) })
  .meta({ id: 'WorkspaceServicesResponse' })

export const serviceParams = z.object({
  id: z.string().min(1).max(64),
  name: z.string().min(1).max(100),
})

/** Service logs answer as the workspace's logs do (GetWorkspaceLogsResponse). */
export { logsResponse as serviceLogsResponse } from '../workspaces/guest-routes.ts'
