import { z } from 'zod'
import { paramSpecSchema, type ParamSpec } from '../apps/params.ts'
import { unitName } from '../automation/guest.ts'
import type { TemplateAutomation } from '../automation/types.ts'
import { aiAgentAutomation } from './ai-agent.ts'
import { openclawTemplate } from './openclaw.ts'
import { webFullstackAutomation } from './web-fullstack.ts'

const logSourceSchema = z.object({
  source_type: z.string(),
  source_ref: z.string(),
  display_name: z.string().nullable(),
  is_primary: z.boolean(),
})

export const templateSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    icon: z.string(),
    image: z.string(),
    category: z.string(),
    ram_mb: z.number().int(),
    vcpu_count: z.number().int(),
    disk_size_mb: z.number().int(),
    coming_soon: z.boolean(),
    /** True when the template's AI features use the managed AI proxy. */
    managed_ai_config: z.boolean().optional(),
    has_tools: z.boolean().optional(),
    default_log_sources: z.array(logSourceSchema),
    expected_apps: z.array(
      z.object({
        name: z.string(),
        port: z.number().int(),
        protocol: z.string(),
        managed: z.boolean(),
        system_tags: z.array(z.string()),
        /** Values come with quick deploy's app_params and reach the app as env. */
        configurable_params: z.array(paramSpecSchema).optional(),
        depends_on: z.array(z.string()).optional(),
      }),
    ),
    /** The template's own units (derived from its automation; see templateView). */
    workspace_services: z
      .array(
        z.object({
          name: z.string(),
          kind: z.string(),
          unit_name: z.string(),
          health_cmd: z.string(),
          exposed: z.boolean(),
          port: z.number().int().nullable(),
          log_sources: z.array(logSourceSchema),
        }),
      )
      .optional(),
  })
  .meta({ id: 'WorkspaceTemplate' })
/** A param an expected app declares (src/apps/params.ts). */
export type TemplateParam = ParamSpec

/**
 * A template as the server knows it: what the API shows, plus its own automation (scripts run
 * before the user's, services) and, per expected app, the service that serves it.
 */
export type Template = Omit<z.infer<typeof templateSchema>, 'workspace_services'> & {
  automation?: TemplateAutomation
  /** Expected app name → the name of the template service (unit) that serves it. */
  app_services?: Record<string, string>
}

/** The images the node can build (`rig image build <name>`). */
export const images = ['base', 'dev'] as const

const journal = (ref: string, name: string, primary = false) => ({
  source_type: 'journald',
  source_ref: ref,
  display_name: name,
  is_primary: primary,
})

/**
 * Templates: an image plus resource floors. A quick deploy below a floor is raised to it, since a
 * template's software does not fit in less.
 */
export const templates: Template[] = [
  {
    id: 'base',
    name: 'Base',
    description: 'Minimal Debian 12 workspace with SSH, git, Python and Node.js.',
    icon: 'box',
    image: 'base',
    category: 'general',
    ram_mb: 512,
    vcpu_count: 1,
    disk_size_mb: 3072,
    coming_soon: false,
    default_log_sources: [journal('*', 'System journal', true)],
    expected_apps: [],
  },
  {
    id: 'dev',
    name: 'Development',
    description:
      'Development environment: build-essential, cmake, gdb, strace, psql, Python with pip ' +
      'and venv, sqlite3, rsync, git, Node.js 22 with npm.',
    icon: 'code',
    image: 'dev',
    category: 'general',
    ram_mb: 1024,
    vcpu_count: 1,
    disk_size_mb: 4096,
    coming_soon: false,
    default_log_sources: [journal('*', 'System journal', true)],
    expected_apps: [],
  },
  {
    id: 'web-fullstack',
    name: 'Web full-stack',
    description:
      'Node.js starter with no dependencies (a JSON API and a static front end in ~/app), served ' +
      'as the app "web" on port 3000, on the dev image (build tools, Python with pip and venv, ' +
      'sqlite3, git, rsync).',
    icon: 'globe',
    image: 'dev',
    category: 'web',
    ram_mb: 1024,
    vcpu_count: 1,
    disk_size_mb: 4096,
    coming_soon: false,
    managed_ai_config: false,
    has_tools: false,
    default_log_sources: [
      journal(unitName('svc', 'web'), 'Web app', true),
      journal('*', 'System journal'),
    ],
    expected_apps: [
      { name: 'web', port: 3000, protocol: 'http', managed: true, system_tags: ['web'] },
    ],
    automation: webFullstackAutomation,
    app_services: { web: 'web' },
  },
  {
    id: 'ai-agent-starter',
    name: 'AI agent starter',
    description:
      'A sample AI agent (Node.js, no dependencies) with tool use and a memory file in ~/agent, ' +
      'calling models through the managed AI proxy; served as the app "agent" on port 8000 ' +
      '(POST /chat).',
    icon: 'bot',
    image: 'base',
    category: 'ai',
    ram_mb: 1024,
    vcpu_count: 1,
    disk_size_mb: 4096,
    coming_soon: false,
    managed_ai_config: true,
    has_tools: false,
    default_log_sources: [
      journal(unitName('svc', 'agent'), 'Agent', true),
      journal('*', 'System journal'),
    ],
    expected_apps: [
      {
        name: 'agent',
        port: 8000,
        protocol: 'http',
        managed: true,
        system_tags: ['ai'],
        configurable_params: [
          {
            key: 'agent_model',
            label: 'Model',
            param_type: 'string',
            default: 'rigbox/default',
            description: 'Model the agent asks the AI proxy for (AGENT_MODEL).',
            required: false,
            sensitive: false,
          },
          {
            key: 'agent_system_prompt',
            label: 'System prompt',
            param_type: 'textarea',
            default: '',
            description: 'Replaces the default system prompt (AGENT_SYSTEM_PROMPT).',
            required: false,
            sensitive: false,
          },
        ],
      },
    ],
    automation: aiAgentAutomation,
    app_services: { agent: 'agent' },
  },
  openclawTemplate,
]

export const findTemplate = (id: string) => templates.find((t) => t.id === id)

/**
 * The API's view: the template's own units are listed as workspace_services (every workspace made
 * from it gets them); the automation itself stays server-side.
 */
export function templateView(t: Template): z.infer<typeof templateSchema> {
  const { automation, app_services, ...shown } = t
  const serving = new Set(Object.values(app_services ?? {}))
  const workspace_services = (automation?.services ?? []).map((svc) => {
    const unit = unitName('svc', svc.name)
    return {
      name: svc.name,
      kind: serving.has(svc.name) ? 'app' : 'service',
      unit_name: unit,
      health_cmd: svc.port
        ? `curl -fsS -o /dev/null http://127.0.0.1:${svc.port}/`
        : `systemctl is-active --quiet ${unit}`,
      exposed: serving.has(svc.name),
      port: svc.port,
      log_sources: [journal(unit, svc.name, true)],
    }
  })
  return { ...shown, workspace_services }
}
