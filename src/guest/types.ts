// Shapes of what the guest answers; every answer is parsed against these (the guest is untrusted).
import { z } from 'zod'
import { MAX_LOG_LINES } from '../../agent/protocol.ts'

const str = (max = 4096) => z.string().max(max)

export const HealthSchema = z.object({
  ready: z.boolean(),
  boot_id: str(64),
  uptime_s: z.number().nonnegative(),
  agent_version: str(64),
  systemd_state: str(64),
})
export type GuestHealth = z.infer<typeof HealthSchema>

export const ConfigResultSchema = z.object({
  applied: z.boolean(),
  warnings: z.array(str()).max(100),
})
export type ConfigResult = z.infer<typeof ConfigResultSchema>

/** What POST /v1/config takes: the agent's own definition, so the two cannot drift. */
export type { GuestConfig } from '../../agent/config.ts'

export const ExecStartedSchema = z.object({
  exec_id: str(64),
  pid: z.number().int().positive(),
})

export const ExecExitSchema = z.object({
  exit_code: z.number().int().nullable(),
  signal: str(32).nullable(),
  timed_out: z.boolean(),
})

export const PtyExitSchema = z.object({
  exit_code: z.number().int().nullable(),
  signal: str(32).nullable(),
})
export type PtyExit = z.infer<typeof PtyExitSchema>

export const DirEntrySchema = z.object({
  name: str(4096),
  type: z.enum(['file', 'dir', 'symlink', 'other']),
  size: z.number().nonnegative(),
  mode: z.string().regex(/^[0-7]{4}$/),
  mtime: str(64),
})
export type DirEntry = z.infer<typeof DirEntrySchema>
export const DirListSchema = z.array(DirEntrySchema).max(10_000)

export const WriteResultSchema = z.object({ path: str(), size: z.number().nonnegative() })
export const PathResultSchema = z.object({ path: str() }).loose()

export const MetricsSchema = z.object({
  cpu_percent: z.number().min(0).max(100),
  ram_used_mb: z.number().nonnegative(),
  ram_total_mb: z.number().nonnegative(),
  disk_used_mb: z.number().nonnegative(),
  disk_total_mb: z.number().nonnegative(),
  load_avg: z.array(z.number()).max(3),
  uptime_s: z.number().nonnegative(),
})
export type GuestMetrics = z.infer<typeof MetricsSchema>

export const LogLineSchema = z.object({
  cursor: str(1024),
  timestamp: str(64),
  message: str(64 * 1024),
  unit: str(256).nullable(),
})
export type LogLine = z.infer<typeof LogLineSchema>

export const LogsSchema = z.object({
  lines: z.array(LogLineSchema).max(MAX_LOG_LINES),
  has_more: z.boolean(),
  cursor: str(1024).nullable(),
})
export type LogsPage = z.infer<typeof LogsSchema>

export const ListeningPortSchema = z.object({
  port: z.number().int().min(0).max(65535),
  address: str(64),
  protocol: z.literal('tcp'),
  process: str(64).optional(),
  pid: z.number().int().positive().optional(),
})
export type ListeningPort = z.infer<typeof ListeningPortSchema>
export const ListeningPortsSchema = z.array(ListeningPortSchema).max(10_000)

export const ErrorBodySchema = z.object({
  error: z.object({ code: str(64), message: str(4096) }),
})
