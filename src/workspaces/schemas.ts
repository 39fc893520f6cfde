import { z } from 'zod'
import { ENV_KEY_RE, envProblem, EXEC_LIMITS } from '../guest/index.ts'

export const vmStatuses = [
  'provisioned',
  'provisioning',
  'starting',
  'running',
  'stopping',
  'stopped',
  'deleting',
  'failed',
  'paused',
] as const
export type VmStatus = (typeof vmStatuses)[number]

/** DNS label: a workspace name becomes its hostname and part of its SSH user. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    'must be a DNS label: lowercase letters, digits and hyphens, not starting or ending with a hyphen',
  )

export const workspaceIdParams = z.object({
  id: z.string().min(1).max(64).describe('Workspace ID (e.g. ws-xxxxxxxx)'),
})

const mb = z.number().int().min(0)

/** A zod refinement reporting a shared check's reason (null: fine). */
export const sharedCheck =
  <T>(problem: (v: T) => string | null) =>
  (v: T, ctx: z.RefinementCtx) => {
    const why = problem(v)
    if (why) ctx.addIssue({ code: 'custom', message: why })
  }

/**
 * Environment variables, however they arrive (create, quick deploy, env set, an exec's own env):
 * one schema with the guest agent's own limits (agent/protocol.ts), so nothing is stored or sent
 * that the guest would refuse or run differently (beyond the totals, programs in the guest would
 * fail with E2BIG).
 */
export const envVarsSchema = z
  .record(
    z
      .string()
      .regex(ENV_KEY_RE, 'env var names are letters, digits and _')
      .max(EXEC_LIMITS.envKeyBytes),
    z.string().max(EXEC_LIMITS.envValueBytes),
  )
  .superRefine(sharedCheck(envProblem))
  .describe(
    `at most ${EXEC_LIMITS.envEntries} entries, ${EXEC_LIMITS.envValueBytes} bytes of UTF-8 ` +
      `per value and ${EXEC_LIMITS.envTotalBytes} in all; no NUL characters`,
  )

/** The workspace's setup_status (SetupStatus in src/automation/types.ts). */
const setupStatusSchema = z
  .object({
    state: z.enum(['running', 'succeeded', 'failed']),
    started_at: z.string(),
    finished_at: z.string().nullable(),
    runs: z.array(
      z.object({
        script_id: z.string(),
        name: z.string(),
        source: z.string(),
        run_on: z.string(),
        status: z.enum(['succeeded', 'failed', 'skipped']),
        exit_code: z.number().int().nullable(),
        output_tail: z.string(),
        started_at: z.string(),
        finished_at: z.string(),
      }),
    ),
    services: z.array(
      z.object({
        name: z.string(),
        unit: z.string(),
        state: z.string(),
        error: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'SetupStatus' })

export const vmSchema = z
  .object({
    id: z.string(),
    user_id: z.string(),
    node_id: z.string(),
    name: z.string(),
    status: z.enum(vmStatuses),
    image: z.string(),
    template_id: z.string().nullable(),
    ram_mb: mb,
    vcpu_count: mb,
    disk_size_mb: mb,
    env_vars: z.record(z.string(), z.string()).nullable(),
    ip_address: z.string().nullable(),
    failure_code: z.string().nullable(),
    failure_reason: z.string().nullable(),
    creation_attempts: z.number().int(),
    creation_started_at: z.string().nullable(),
    setup_script_ids: z.array(z.string()).nullable(),
    service_spec_ids: z.array(z.string()).nullable(),
    setup_status: setupStatusSchema
      .nullable()
      .describe("what the last boot's automation ran (src/automation/); null: nothing yet"),
    ai_mode: z.string().nullable(),
    ssh_command: z.string().describe('how to reach the workspace through the SSH gateway'),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Vm' })
export type Vm = z.infer<typeof vmSchema>

export const failureSchema = z
  .object({
    code: z.string(),
    message: z.string(),
    retryable: z.boolean(),
    occurred_at: z.string(),
    attempts: z.number().int(),
  })
  .meta({ id: 'WorkspaceFailure' })

export const getWorkspaceResponse = z
  .object({ vm: vmSchema, failure: failureSchema.nullable() })
  .meta({ id: 'GetWorkspaceResponse' })
export type GetWorkspaceResponse = z.infer<typeof getWorkspaceResponse>

/** The unversioned surface answers with the workspace itself (seed examples read `.id`). */
export const flatWorkspace = vmSchema.extend({ failure: failureSchema.nullable() })
export const toFlatWorkspace = (r: GetWorkspaceResponse) => ({ ...r.vm, failure: r.failure })

export const listWorkspacesResponse = z
  .object({ vms: z.array(vmSchema) })
  .meta({ id: 'ListWorkspacesResponse' })

export const createWorkspaceRequest = z
  .object({
    name: dnsLabel,
    image: z.string().nullish(),
    template_id: z.string().nullish(),
    ram_mb: mb.nullish(),
    vcpu_count: mb.nullish(),
    disk_size_mb: mb.nullish(),
    env_vars: envVarsSchema.nullish(),
    setup_script_ids: z.array(z.string()).nullish(),
    service_spec_ids: z.array(z.string()).nullish(),
    catalog_ids: z.array(z.string()).nullish(),
  })
  .meta({ id: 'CreateWorkspaceRequest' })

export const resizeWorkspaceRequest = z
  .object({ ram_mb: mb.nullish(), vcpu_count: mb.nullish(), disk_size_mb: mb.nullish() })
  .meta({ id: 'ResizeWorkspaceRequest' })

export const resizeWorkspaceResponse = z
  .object({ vm: vmSchema, message: z.string() })
  .meta({ id: 'ResizeWorkspaceResponse' })

export const updateEnvRequest = z
  .object({ env_vars: envVarsSchema })
  .meta({ id: 'UpdateWorkspaceEnvRequest' })
