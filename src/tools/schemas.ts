import { z } from 'zod'
import { paramSpecSchema } from '../apps/params.ts'
import { appSchema } from '../apps/schemas.ts'

export const toolParams = z.object({
  id: z.string().min(1).max(64),
  tool: z.string().min(1).max(64),
})
export const jobParams = z.object({
  id: z.string().min(1).max(64),
  job_id: z.string().min(1).max(64),
})

const discovery = z
  .union([
    z.object({ type: z.literal('CommandAvailable'), commands: z.array(z.string()) }),
    z.object({ type: z.literal('Always') }),
  ])
  .meta({ id: 'DiscoveryStrategy' })

export const toolStatusSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    icon: z.string(),
    category: z.string(),
    port: z.number().int(),
    subdomain_suffix: z.string(),
    discovery,
    install_hint: z.string().nullable(),
    tags: z.array(z.string()),
    available: z.boolean(),
    needs_install: z.boolean(),
    running: z.boolean(),
    project_roots: z.array(z.string()),
    project_roots_truncated: z.boolean(),
    url: z.string().nullable(),
    status_sys: z.string().nullable().describe('"installing" while an install job runs'),
    started_at_ms: z.number().int().nullable(),
    unavailable_reason: z.string().nullable(),
  })
  .meta({ id: 'ToolStatus' })

export const toolsListResponse = z
  .object({ tools: z.array(toolStatusSchema) })
  .meta({ id: 'ToolsListResponse' })

export const toolInstallResponse = z
  .object({ job_id: z.string().nullable(), message: z.string(), status: z.string() })
  .meta({ id: 'ToolInstallResponse' })

export const toolInstallStatusResponse = z
  .object({
    status: z.string().describe('none, queued, running, succeeded or failed'),
    exit_code: z.number().int().nullable(),
    stdout_tail: z.string().nullable(),
    available: z.boolean().nullable(),
  })
  .meta({ id: 'ToolInstallStatusResponse' })

/** Accepted for the reference's shape; no tool here analyzes projects, so they are unused. */
export const launchRequest = z
  .object({
    max_depth: z.number().int().min(0).nullish(),
    max_projects: z.number().int().min(0).nullish(),
    project_root: z.string().max(4096).nullish(),
  })
  .meta({ id: 'LaunchRequest' })

export const toolLaunchResponse = z
  .object({
    message: z.string(),
    status: z.string(),
    url: z.string().nullable(),
    started_at_ms: z.number().int().nullable(),
  })
  .meta({ id: 'ToolLaunchResponse' })

export const toolStopResponse = z
  .object({ message: z.string(), status: z.string() })
  .meta({ id: 'ToolStopResponse' })

export const catalogItemSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    icon: z.string(),
    category: z.string(),
    min_ram_mb: z.number().int(),
    min_disk_mb: z.number().int(),
    system_tags: z.array(z.string()),
    configurable_params: z.array(paramSpecSchema),
    preview: z.boolean(),
    destructive_delete: z.boolean(),
  })
  .meta({ id: 'AppCatalogItem' })

export const catalogResponse = z
  .object({ items: z.array(catalogItemSchema) })
  .meta({ id: 'CatalogResponse' })

export const installAppRequest = z
  .object({
    catalog_id: z.string().min(1).max(64),
    params: z.record(z.string(), z.string()).nullish(),
  })
  .meta({ id: 'InstallAppRequest' })

export const installAppResponse = z
  .object({
    app: appSchema,
    job_id: z.string().nullable(),
    live_installed: z.boolean(),
    message: z.string(),
    credentials: z
      .record(z.string(), z.string())
      .nullable()
      .describe('generated at install and shown only here'),
  })
  .meta({ id: 'InstallAppResponse' })

export const jobStatusResponse = z
  .object({
    status: z.string().describe('queued, running, succeeded or failed'),
    exit_code: z.number().int().nullable(),
    stdout: z.string().nullable(),
    stderr: z.string().nullable(),
    app_status: z.string().nullable(),
  })
  .meta({ id: 'JobStatusResponse' })
