import { z } from 'zod'
import type { Config } from '../config/config.ts'
import { ApiError } from '../http/errors.ts'
import { defineRoute } from '../http/route.ts'
import { commandProblem, EXEC_LIMITS } from '../guest/index.ts'
import type { NodeClient } from '../node/types.ts'
import { envVarsSchema, sharedCheck, workspaceIdParams } from './schemas.ts'
import type { WorkspaceService } from './service.ts'
import { streamLogs } from './log-stream.ts'
import type { User } from '../auth/store.ts'

const tag = 'workspaces'
const MAX_EXEC_OUTPUT = 8 * 1024 * 1024

const metricsSchema = z
  .object({
    workspace_id: z.string(),
    cpu_percent: z.number(),
    ram_used_mb: z.number().int(),
    ram_total_mb: z.number().int(),
    disk_used_mb: z.number().int(),
    disk_total_mb: z.number().int(),
    egress: z
      .object({
        connections: z.number().int(),
        refused: z.number().int(),
        bytes_in: z.number().int(),
        bytes_out: z.number().int(),
      })
      .optional()
      .describe('outbound traffic through the egress proxy since the node started'),
    updated_at: z.string(),
  })
  .meta({ id: 'WorkspaceMetrics' })

/** One journal line as the log endpoints (workspace, service, app) answer it. */
export const logLineSchema = z.object({
  line_number: z.number().int().min(0),
  message: z.string(),
  timestamp: z.string().nullable(),
})
export const logsResponse = z
  .object({
    lines: z.array(logLineSchema),
    has_more: z.boolean(),
    cursor: z.string().nullable(),
  })
  .meta({ id: 'GetWorkspaceLogsResponse' })

// The limits are the agent's own (agent/protocol.ts): what passes here runs exactly as sent.
const execRequest = z
  .object({
    command: z
      .string()
      .min(1)
      .max(EXEC_LIMITS.commandBytes)
      .superRefine(sharedCheck(commandProblem))
      .describe(
        `run as \`bash -lc\`; at most ${EXEC_LIMITS.commandBytes} bytes of UTF-8, no NUL characters`,
      ),
    user: z.enum(['developer', 'root']).default('developer'),
    timeout_ms: z.number().int().min(1).max(3_600_000).default(60_000),
    env: envVarsSchema.optional().describe('exported after the login profile'),
    stdin: z
      .string()
      .max(8 * 1024 * 1024)
      .optional(),
  })
  .meta({ id: 'ExecRequest' })

const execResponse = z
  .object({
    exit_code: z.number().int(),
    stdout: z.string(),
    stderr: z.string(),
    timed_out: z.boolean(),
    truncated: z.boolean(),
  })
  .meta({ id: 'ExecResponse' })

const pathQuery = workspaceIdParams.extend({})
const fileQuery = z.object({
  path: z.string().min(1).max(4096).startsWith('/', 'path must be absolute'),
})

/** Guest operations: they need the workspace running and a node to reach its agent. */
export function guestRoutes(ws: WorkspaceService, node: NodeClient | null, config: Config) {
  const runningVm = async (user: User, id: string) => {
    const row = await ws.get(user, id)
    if (!node) throw new ApiError('NODE_UNAVAILABLE', 'no compute node is available')
    if (row.status !== 'running') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is ${row.status}; start it first`)
    }
    return { row, node }
  }

  return [
    defineRoute({
      method: 'GET',
      path: '/workspaces/:id/metrics',
      summary: 'Live CPU, RAM and disk usage, as the guest sees them',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: pathQuery,
      response: metricsSchema,
      handler: async ({ user, params }) => {
        const { row, node } = await runningVm(user, params.id)
        const m = await node.metrics(row.id)
        return { workspace_id: row.id, ...m, updated_at: new Date().toISOString() }
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/workspaces/:id/logs',
      summary: "The workspace's system journal (newest last)",
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: pathQuery,
      querystring: z.object({
        lines: z.coerce.number().int().min(1).max(5000).default(200),
        cursor: z.string().max(512).optional(),
      }),
      response: logsResponse,
      handler: async ({ user, params, query }) => {
        const { row, node } = await runningVm(user, params.id)
        const lines = await node.logs(row.id, { lines: query.lines + 1, cursor: query.cursor })
        const page = lines.slice(-query.lines)
        return {
          lines: page.map((l, i) => ({
            line_number: i,
            message: l.message,
            timestamp: l.timestamp,
          })),
          has_more: lines.length > query.lines,
          cursor: page.at(-1)?.cursor ?? query.cursor ?? null,
        }
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/workspaces/:id/logs/stream',
      summary: 'Server-Sent Events of journal lines (id = cursor; resumes from Last-Event-ID)',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: pathQuery,
      raw: true,
      response: z.unknown(),
      handler: async ({ user, params, request, reply }) => {
        const { row, node } = await runningVm(user, params.id)
        await streamLogs({ node, ws, user, id: row.id, request, reply })
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/workspaces/:id/exec',
      summary: 'Run a command in the workspace (bash -lc) and return its output and exit code',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: pathQuery,
      body: execRequest,
      response: execResponse,
      handler: async ({ user, params, body }) => {
        const { row, node } = await runningVm(user, params.id)
        return node.exec(
          row.id,
          {
            command: body.command,
            user: body.user,
            timeoutMs: body.timeout_ms,
            env: body.env,
            stdin: body.stdin === undefined ? undefined : Buffer.from(body.stdin),
          },
          MAX_EXEC_OUTPUT,
        )
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/workspaces/:id/files',
      summary: 'Read a file from the workspace (raw bytes)',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: pathQuery,
      querystring: fileQuery,
      raw: true,
      response: z.unknown(),
      handler: async ({ user, params, query, reply }) => {
        const { row, node } = await runningVm(user, params.id)
        const data = await node.readFile(row.id, query.path, config.fileLimitBytes)
        await reply.type('application/octet-stream').send(data)
      },
    }),
    defineRoute({
      method: 'PUT',
      path: '/workspaces/:id/files',
      summary: 'Write a file into the workspace (raw bytes body; parent dirs are created)',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: pathQuery,
      querystring: fileQuery,
      response: z.object({ path: z.string(), size_bytes: z.number().int() }),
      handler: async ({ user, params, query, request }) => {
        const { row, node } = await runningVm(user, params.id)
        const body = request.body
        if (!Buffer.isBuffer(body)) {
          throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'send the file as application/octet-stream')
        }
        await node.writeFile(row.id, query.path, body)
        return { path: query.path, size_bytes: body.length }
      },
    }),
  ]
}
