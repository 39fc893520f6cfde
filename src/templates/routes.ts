import { z } from 'zod'
import { defineRoute } from '../http/route.ts'
import { dnsLabel, envVarsSchema, vmSchema } from '../workspaces/schemas.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import { templateSchema, templates } from './catalog.ts'

const quickDeployRequest = z
  .object({
    template_id: z.string().min(1),
    name: dnsLabel.nullish(),
    ram_mb: z.number().int().min(0).nullish(),
    vcpu_count: z.number().int().min(0).nullish(),
    disk_size_mb: z.number().int().min(0).nullish(),
    env_vars: envVarsSchema.nullish(),
    app_params: z.record(z.string(), z.record(z.string(), z.string())).nullish(),
    catalog_ids: z.array(z.string()).optional(),
    setup_script_ids: z.array(z.string()).nullish(),
    service_spec_ids: z.array(z.string()).nullish(),
  })
  .meta({ id: 'QuickDeployRequest' })

const quickDeployResponse = z
  .object({
    workspace: vmSchema,
    message: z.string(),
    expected_apps: z.array(z.unknown()),
    installed_apps: z.array(z.string()),
  })
  .meta({ id: 'QuickDeployResponse' })

export function templateRoutes(ws: WorkspaceService) {
  return [
    defineRoute({
      method: 'GET',
      path: '/templates',
      summary: 'List workspace templates',
      tag: 'templates',
      auth: 'user',
      rateClass: 'workspaces',
      response: z.object({ templates: z.array(templateSchema) }).meta({ id: 'TemplatesResponse' }),
      flat: { schema: z.array(templateSchema), from: (r) => r.templates },
      handler: async () => ({ templates }),
    }),
    defineRoute({
      method: 'POST',
      path: '/quick-deploy',
      summary: 'Create a workspace from a template (its resource floors raise lower requests)',
      tag: 'templates',
      auth: 'user',
      rateClass: 'workspaces',
      body: quickDeployRequest,
      response: quickDeployResponse,
      flat: {
        schema: vmSchema.extend({ message: z.string() }),
        from: (r) => ({ ...r.workspace, message: r.message }),
      },
      handler: async ({ user, body }) => {
        const row = await ws.quickDeploy(user, body)
        return {
          workspace: ws.view(row),
          message: `workspace ${row.name} created from template ${body.template_id}; start it to boot`,
          // App routes for a template's expected apps arrive with the apps API.
          expected_apps: [],
          installed_apps: [],
        }
      },
    }),
  ]
}
