import { z } from 'zod'
import { defineRoute } from '../http/route.ts'
import { dnsLabel, envVarsSchema, vmSchema } from '../workspaces/schemas.ts'
import { appSchema } from '../apps/schemas.ts'
import { templateSchema, templates, templateView } from './catalog.ts'
import { quickDeploy, type DeployDeps } from './deploy.ts'

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
    /** The template's apps, created with the workspace (routed once its services answer). */
    expected_apps: z.array(appSchema),
    /** Catalog apps asked for (catalog_ids): they are installed after the first boot. */
    installed_apps: z.array(z.string()),
  })
  .meta({ id: 'QuickDeployResponse' })

export function templateRoutes(d: DeployDeps) {
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
      handler: async () => ({ templates: templates.map(templateView) }),
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
        const { row, apps, catalog } = await quickDeploy(d, user, body)
        const made = apps.length ? ` with app ${apps.map((a) => a.name).join(', ')}` : ''
        const later = catalog.length
          ? `; catalog apps ${catalog.join(', ')} are installed after the first boot`
          : ''
        return {
          workspace: d.workspaces.view(row),
          message: `workspace ${row.name} created from template ${body.template_id}${made}; start it to boot${later}`,
          expected_apps: apps.map((a) => d.apps.view(a)),
          installed_apps: catalog,
        }
      },
    }),
  ]
}
