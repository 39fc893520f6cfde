import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'

const port = z.coerce.number().int().min(0).max(65535)
const positiveInt = z.coerce.number().int().positive()

/** Every setting the server reads, from the environment, validated once at boot. */
const envSchema = z.object({
  RIGBOX_HOST: z.string().min(1).default('127.0.0.1'),
  RIGBOX_PORT: port.default(8080),
  RIGBOX_DATA_DIR: z.string().min(1).default(path.join(os.homedir(), '.rigbox')),
  RIGBOX_IMAGE_DIR: z.string().min(1).optional(),
  RIGBOX_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info'),
  RIGBOX_BODY_LIMIT_BYTES: positiveInt.default(1024 * 1024),
  RIGBOX_FILE_LIMIT_BYTES: positiveInt.default(64 * 1024 * 1024),
  RIGBOX_RATE_LIMIT_AUTH: positiveInt.default(120),
  RIGBOX_RATE_LIMIT_WORKSPACES: positiveInt.default(180),
  RIGBOX_RATE_LIMIT_APPS: positiveInt.default(240),
  RIGBOX_RATE_LIMIT_WINDOW_MS: positiveInt.default(60_000),
  RIGBOX_NODE: z.enum(['local', 'none']).default('local'),
  RIGBOX_ACCEL: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  RIGBOX_BOOT_TIMEOUT_MS: positiveInt.default(180_000),
  RIGBOX_STOP_TIMEOUT_MS: positiveInt.default(30_000),
  RIGBOX_NODE_RAM_MB: positiveInt.optional(),
  RIGBOX_NODE_VCPUS: positiveInt.optional(),
})

export type RawEnv = Record<string, string | undefined>

export interface Config {
  host: string
  port: number
  dataDir: string
  imageDir: string
  dbPath: string
  logLevel: z.infer<typeof envSchema>['RIGBOX_LOG_LEVEL']
  bodyLimitBytes: number
  fileLimitBytes: number
  rateLimits: { auth: number; workspaces: number; apps: number; windowMs: number }
  node: 'local' | 'none'
  accel: 'auto' | 'kvm' | 'tcg'
  bootTimeoutMs: number
  stopTimeoutMs: number
  /** What the node offers to running VMs; by default ¾ of host RAM and every core, overcommitted 4× as VMs idle most of the time. */
  nodeCapacity: { ramMb: number; vcpus: number }
}

export class ConfigError extends Error {}

/** Reads and validates the environment; a bad value throws ConfigError naming the variable. */
export function loadConfig(env: RawEnv = process.env): Config {
  const parsed = envSchema.safeParse(env)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = issue.path.join('.')
      return `  ${key}=${JSON.stringify(env[key] ?? '')}: ${issue.message}`
    })
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`)
  }
  const e = parsed.data
  const dataDir = path.resolve(e.RIGBOX_DATA_DIR)
  return {
    host: e.RIGBOX_HOST,
    port: e.RIGBOX_PORT,
    dataDir,
    imageDir: path.resolve(e.RIGBOX_IMAGE_DIR ?? path.join(dataDir, 'images')),
    dbPath: path.join(dataDir, 'rigbox.db'),
    logLevel: e.RIGBOX_LOG_LEVEL,
    bodyLimitBytes: e.RIGBOX_BODY_LIMIT_BYTES,
    fileLimitBytes: e.RIGBOX_FILE_LIMIT_BYTES,
    rateLimits: {
      auth: e.RIGBOX_RATE_LIMIT_AUTH,
      workspaces: e.RIGBOX_RATE_LIMIT_WORKSPACES,
      apps: e.RIGBOX_RATE_LIMIT_APPS,
      windowMs: e.RIGBOX_RATE_LIMIT_WINDOW_MS,
    },
    node: e.RIGBOX_NODE,
    accel: e.RIGBOX_ACCEL,
    bootTimeoutMs: e.RIGBOX_BOOT_TIMEOUT_MS,
    stopTimeoutMs: e.RIGBOX_STOP_TIMEOUT_MS,
    nodeCapacity: {
      ramMb: e.RIGBOX_NODE_RAM_MB ?? Math.floor((os.totalmem() / 2 ** 20) * 0.75),
      vcpus: e.RIGBOX_NODE_VCPUS ?? os.availableParallelism() * 4,
    },
  }
}
