import { z } from 'zod'

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
    default_log_sources: z.array(
      z.object({
        source_type: z.string(),
        source_ref: z.string(),
        display_name: z.string().nullable(),
        is_primary: z.boolean(),
      }),
    ),
    expected_apps: z.array(
      z.object({
        name: z.string(),
        port: z.number().int(),
        protocol: z.string(),
        managed: z.boolean(),
        system_tags: z.array(z.string()),
      }),
    ),
  })
  .meta({ id: 'WorkspaceTemplate' })
export type Template = z.infer<typeof templateSchema>

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
    description: 'Full development environment: compilers, build tools, debuggers, psql.',
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
      'React + Node.js starter; its dev server is exposed as the app "web" on port 3000.',
    icon: 'globe',
    image: 'dev',
    category: 'web',
    ram_mb: 1024,
    vcpu_count: 1,
    disk_size_mb: 4096,
    coming_soon: false,
    default_log_sources: [journal('*', 'System journal', true)],
    expected_apps: [
      { name: 'web', port: 3000, protocol: 'http', managed: false, system_tags: ['web'] },
    ],
  },
  {
    id: 'ai-agent-starter',
    name: 'AI agent starter',
    description:
      'An AI agent with tool use and memory, calling models through the managed AI proxy.',
    icon: 'bot',
    image: 'base',
    category: 'ai',
    ram_mb: 1024,
    vcpu_count: 1,
    disk_size_mb: 4096,
    coming_soon: false,
    default_log_sources: [journal('*', 'System journal', true)],
    expected_apps: [
      { name: 'agent', port: 8000, protocol: 'http', managed: false, system_tags: ['ai'] },
    ],
  },
  {
    id: 'openclaw',
    name: 'OpenClaw',
    description: 'Telegram bot with an AI backend. Needs outbound access to Telegram.',
    icon: 'message-circle',
    image: 'base',
    category: 'ai',
    ram_mb: 1024,
    vcpu_count: 1,
    disk_size_mb: 4096,
    // Shown but not deployable: it needs the AI proxy and egress policy of later releases.
    coming_soon: true,
    default_log_sources: [journal('*', 'System journal', true)],
    expected_apps: [
      { name: 'gateway', port: 8080, protocol: 'http', managed: true, system_tags: ['bot'] },
    ],
  },
]

export const findTemplate = (id: string) => templates.find((t) => t.id === id)
