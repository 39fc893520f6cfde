import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { parseOperatorEntry } from '../egress/operator.ts'

const port = z.coerce.number().int().min(0).max(65535)
const positiveInt = z.coerce.number().int().positive()
/** A base URL: http(s), no trailing slash kept (paths are appended to it). */
const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL')
  .transform((u) => u.replace(/\/+$/, ''))
/** Comma-separated IP addresses and CIDRs, canonicalised; every bad entry is named. */
const egressAllowList = z.string().transform((text, ctx) => {
  const out: string[] = []
  for (const raw of text
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const e = parseOperatorEntry(raw)
    if ('error' in e) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw)} ${e.error}` })
    else if (!out.includes(e.text)) out.push(e.text)
  }
  return out
})

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
  RIGBOX_RATE_LIMIT_AUTH_FAILURES: positiveInt.default(20),
  RIGBOX_RATE_LIMIT_WINDOW_MS: positiveInt.default(60_000),
  RIGBOX_NODE: z.enum(['local', 'none']).default('local'),
  RIGBOX_ACCEL: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  RIGBOX_BOOT_TIMEOUT_MS: positiveInt.default(180_000),
  RIGBOX_STOP_TIMEOUT_MS: positiveInt.default(30_000),
  RIGBOX_NODE_RAM_MB: positiveInt.optional(),
  RIGBOX_DOMAIN: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/,
      'must be a domain name like localhost or apps.example.com',
    )
    .default('localhost'),
  RIGBOX_ROUTER_PORT: port.default(8081),
  RIGBOX_ROUTER_TLS_PORT: port.optional(),
  RIGBOX_ROUTER_TLS_CERT: z.string().min(1).optional(),
  RIGBOX_ROUTER_TLS_KEY: z.string().min(1).optional(),
  RIGBOX_SSH_PORT: port.default(2222),
  RIGBOX_PUBLIC_HOST: z.string().min(1).optional(),
  RIGBOX_NODE_VCPUS: positiveInt.optional(),
  RIGBOX_CGROUP_PARENT: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a plain directory name')
    .optional(),
  RIGBOX_JAIL_UID_BASE: z.coerce.number().int().min(1000).max(0xfffe0000).optional(),
  RIGBOX_JAIL_UID_COUNT: z.coerce
    .number()
    .int()
    .min(16)
    .max(1 << 20)
    .default(65_536),
  RIGBOX_HOST_REGISTRY_DIR: z.string().min(1).default('/var/lib/rigbox'),
  /** Comma-separated addresses or CIDRs every workspace may reach, reserved ranges included. */
  RIGBOX_EGRESS_ALLOW: egressAllowList.optional(),
  /** A PEM bundle installed in every VM's trust store (a company or mirror CA). */
  RIGBOX_GUEST_CA_CERTS: z.string().min(1).optional(),
  RIGBOX_AI_UPSTREAM_URL: httpUrl.optional(),
  RIGBOX_AI_UPSTREAM_KEY: z.string().min(1).optional(),
  RIGBOX_AI_ANTHROPIC_URL: httpUrl.optional(),
  RIGBOX_AI_ANTHROPIC_KEY: z.string().min(1).optional(),
  RIGBOX_AI_BYOK_OPENAI_URL: httpUrl.default('https://api.openai.com/v1'),
  RIGBOX_AI_BYOK_ANTHROPIC_URL: httpUrl.default('https://api.anthropic.com'),
  RIGBOX_AI_BYOK_GOOGLE_URL: httpUrl.default(
    'https://generativelanguage.googleapis.com/v1beta/openai',
  ),
  RIGBOX_AI_MODEL_DEFAULT: z.string().min(1).optional(),
  RIGBOX_AI_MODEL_FAST: z.string().min(1).optional(),
  RIGBOX_AI_MODEL_FREE: z.string().min(1).optional(),
  RIGBOX_AI_PRICE_FILE: z.string().min(1).optional(),
  RIGBOX_AI_MASTER_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes in base64 (openssl rand -base64 32)')
    .optional(),
  RIGBOX_AI_MAX_CONCURRENT: positiveInt.default(8),
  RIGBOX_AI_MODELS_TTL_MS: positiveInt.default(10 * 60_000),
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
  /** Per user and class per window; `authFailures`: failed authentications per address. */
  rateLimits: {
    auth: number
    workspaces: number
    apps: number
    authFailures: number
    windowMs: number
  }
  node: 'local' | 'none'
  accel: 'auto' | 'kvm' | 'tcg'
  bootTimeoutMs: number
  stopTimeoutMs: number
  domain: string
  router: {
    port: number
    tlsPort: number | null
    /** A configured wildcard certificate; without one a local CA is generated. */
    tls: { certPath: string; keyPath: string } | null
  }
  sshPort: number
  /** The host name users connect to (SSH command, links); defaults to the listen host. */
  publicHost: string
  /** What the node offers to running VMs; by default ¾ of host RAM and every core, overcommitted 4× as VMs idle most of the time. */
  nodeCapacity: { ramMb: number; vcpus: number }
  /**
   * What this installation owns on the host (src/node/installation.ts): unset values are derived
   * from the data dir and claimed in `registryDir`, so installations never share them.
   */
  /**
   * Operator egress settings (docs/networking.md): `allow` opens addresses or CIDRs for every
   * workspace, even reserved ones; `guestCaCerts` is the PEM text every VM trusts besides its own.
   */
  egress: { allow: string[]; guestCaCerts: string | null }
  jail: {
    cgroupParent: string | null
    uidBase: number | null
    uidCount: number
    registryDir: string
  }
  /**
   * The AI proxy (src/ai/): upstreams and their keys live on the control plane only. An unset
   * managed upstream makes the proxy answer that it is not configured.
   */
  ai: {
    /** OpenAI-compatible gateway (e.g. OpenRouter), base URL ending in /v1, and its key. */
    upstream: { url: string; key: string | null } | null
    /** Anthropic-compatible API, base URL without /v1, and its key. */
    anthropic: { url: string; key: string | null } | null
    /** Where BYOK calls go, per provider (the user's own key). */
    byokUrls: { openai: string; anthropic: string; google: string }
    /** What the aliases rigbox/default, rigbox/fast and rigbox/free mean (upstream model ids). */
    aliases: { default: string | null; fast: string | null; free: string | null }
    /** Optional JSON file of prices that override or add to the upstream's. */
    priceFile: string | null
    /** Base64 of the 32-byte key BYOK keys are encrypted under; else `<dataDir>/ai.key`. */
    masterKey: string | null
    /** Upstream calls in flight per user, at most. */
    maxConcurrentPerUser: number
    modelsTtlMs: number
  }
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
  if (Boolean(e.RIGBOX_ROUTER_TLS_CERT) !== Boolean(e.RIGBOX_ROUTER_TLS_KEY)) {
    throw new ConfigError(
      'invalid configuration:\n  RIGBOX_ROUTER_TLS_CERT and RIGBOX_ROUTER_TLS_KEY go together',
    )
  }
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
      authFailures: e.RIGBOX_RATE_LIMIT_AUTH_FAILURES,
      windowMs: e.RIGBOX_RATE_LIMIT_WINDOW_MS,
    },
    node: e.RIGBOX_NODE,
    accel: e.RIGBOX_ACCEL,
    bootTimeoutMs: e.RIGBOX_BOOT_TIMEOUT_MS,
    stopTimeoutMs: e.RIGBOX_STOP_TIMEOUT_MS,
    domain: e.RIGBOX_DOMAIN,
    router: {
      port: e.RIGBOX_ROUTER_PORT,
      tlsPort: e.RIGBOX_ROUTER_TLS_PORT ?? null,
      tls:
        e.RIGBOX_ROUTER_TLS_CERT && e.RIGBOX_ROUTER_TLS_KEY
          ? { certPath: e.RIGBOX_ROUTER_TLS_CERT, keyPath: e.RIGBOX_ROUTER_TLS_KEY }
          : null,
    },
    sshPort: e.RIGBOX_SSH_PORT,
    publicHost:
      e.RIGBOX_PUBLIC_HOST ??
      (['0.0.0.0', '::'].includes(e.RIGBOX_HOST) ? os.hostname() : e.RIGBOX_HOST),
    nodeCapacity: {
      ramMb: e.RIGBOX_NODE_RAM_MB ?? Math.floor((os.totalmem() / 2 ** 20) * 0.75),
      vcpus: e.RIGBOX_NODE_VCPUS ?? os.availableParallelism() * 4,
    },
    ai: {
      upstream: e.RIGBOX_AI_UPSTREAM_URL
        ? { url: e.RIGBOX_AI_UPSTREAM_URL, key: e.RIGBOX_AI_UPSTREAM_KEY ?? null }
        : null,
      anthropic: e.RIGBOX_AI_ANTHROPIC_URL
        ? { url: e.RIGBOX_AI_ANTHROPIC_URL, key: e.RIGBOX_AI_ANTHROPIC_KEY ?? null }
        : null,
      byokUrls: {
        openai: e.RIGBOX_AI_BYOK_OPENAI_URL,
        anthropic: e.RIGBOX_AI_BYOK_ANTHROPIC_URL,
        google: e.RIGBOX_AI_BYOK_GOOGLE_URL,
      },
      aliases: {
        default: e.RIGBOX_AI_MODEL_DEFAULT ?? null,
        fast: e.RIGBOX_AI_MODEL_FAST ?? null,
        free: e.RIGBOX_AI_MODEL_FREE ?? null,
      },
      priceFile: e.RIGBOX_AI_PRICE_FILE ? path.resolve(e.RIGBOX_AI_PRICE_FILE) : null,
      masterKey: e.RIGBOX_AI_MASTER_KEY ?? null,
      maxConcurrentPerUser: e.RIGBOX_AI_MAX_CONCURRENT,
      modelsTtlMs: e.RIGBOX_AI_MODELS_TTL_MS,
    },
    egress: {
      allow: e.RIGBOX_EGRESS_ALLOW ?? [],
      guestCaCerts: e.RIGBOX_GUEST_CA_CERTS ? readPemBundle(e.RIGBOX_GUEST_CA_CERTS) : null,
    },
    jail: {
      cgroupParent: e.RIGBOX_CGROUP_PARENT ?? null,
      uidBase: e.RIGBOX_JAIL_UID_BASE ?? null,
      uidCount: e.RIGBOX_JAIL_UID_COUNT,
      registryDir: path.resolve(e.RIGBOX_HOST_REGISTRY_DIR),
    },
  }
}

/** The PEM certificates of a bundle file; anything else in it (comments, keys) is refused. */
function readPemBundle(file: string): string {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(
      `invalid configuration:\n  RIGBOX_GUEST_CA_CERTS=${JSON.stringify(file)}: ${(err as Error).message}`,
    )
  }
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (!certs.length) {
    throw new ConfigError(
      `invalid configuration:\n  RIGBOX_GUEST_CA_CERTS=${JSON.stringify(file)}: no PEM certificate in it`,
    )
  }
  return certs.join('\n') + '\n'
}
