import { z } from 'zod'
import type { SecretBox } from '../ai/secrets.ts'
import { shq, type GuestUnits } from '../automation/guest.ts'
import { ApiError } from '../http/errors.ts'
import type { AppRow } from './store.ts'

/**
 * Typed, validated configuration of an app (templates, catalog items and users declare it),
 * delivered to the app's unit as environment variables. Sensitive values are sealed at rest and
 * never leave the server except into the VM's root-only env file.
 */

export const paramTypes = [
  'string',
  'secret',
  'email',
  'url',
  'number',
  'boolean',
  'select',
  'textarea',
] as const
export type ParamType = (typeof paramTypes)[number]

const PARAM_KEY = /^[A-Za-z][A-Za-z0-9_]{0,63}$/

export const paramOptionSchema = z
  .object({ value: z.string().max(1000), label: z.string().max(200) })
  .meta({ id: 'ParamOption' })

export const paramSpecSchema = z
  .object({
    key: z.string().regex(PARAM_KEY, 'must be a letter then letters, digits or _ (at most 64)'),
    label: z.string().min(1).max(200),
    param_type: z.enum(paramTypes).meta({ id: 'ParamType' }),
    description: z.string().max(2000).optional(),
    group: z.string().max(100).nullish(),
    default: z
      .string()
      .max(64 * 1024)
      .optional(),
    options: z.array(paramOptionSchema).max(200).optional(),
    validation_pattern: z
      .string()
      .max(1000)
      .nullish()
      .refine((p) => p == null || compiles(p), 'is not a valid regular expression'),
    sensitive: z.boolean().optional(),
    required: z.boolean().optional(),
    help_url: z.string().max(2000).nullish(),
    order: z.number().int().optional(),
  })
  .superRefine((s, ctx) => {
    if (s.param_type === 'select' && !s.options?.length)
      ctx.addIssue({ code: 'custom', path: ['options'], message: 'a select param needs options' })
  })
  .meta({ id: 'ParamSpec' })
export type ParamSpec = z.infer<typeof paramSpecSchema>

function compiles(pattern: string) {
  try {
    new RegExp(pattern, 'u')
    return true
  } catch {
    return false
  }
}

/** `secret` values are always treated as sensitive, whatever the spec says. */
export const isSensitive = (s: ParamSpec) => s.param_type === 'secret' || s.sensitive === true

/** `telegramBotToken` and `telegram_bot_token` both become TELEGRAM_BOT_TOKEN. */
export const envNameOf = (key: string) =>
  key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase()

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

/** Why `value` does not fit `spec`, or null. The empty string means "unset" and always fits. */
function problem(spec: ParamSpec, value: string): string | null {
  if (value === '') return null
  switch (spec.param_type) {
    case 'number':
      if (!/^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(value)) return 'must be a number'
      break
    case 'boolean':
      if (value !== 'true' && value !== 'false') return 'must be "true" or "false"'
      break
    case 'email':
      if (!EMAIL.test(value) || value.length > 254) return 'must be an email address'
      break
    case 'url': {
      let ok = false
      try {
        ok = ['http:', 'https:'].includes(new URL(value).protocol)
      } catch {
        ok = false
      }
      if (!ok) return 'must be an http(s) URL'
      break
    }
    case 'select':
      if (!spec.options?.some((o) => o.value === value))
        return `must be one of ${spec.options?.map((o) => JSON.stringify(o.value)).join(', ')}`
      break
    default:
      if (spec.param_type !== 'textarea' && /[\r\n]/.test(value))
        return 'must be one line (use a textarea param for more)'
  }
  if (spec.validation_pattern && !new RegExp(spec.validation_pattern, 'u').test(value))
    return `must match ${spec.validation_pattern}`
  return null
}

/**
 * Checks submitted values against the specs: every key must be declared, every value fit its
 * type. With `requireAll`, required params must end up non-empty (counting `current` values and
 * defaults), as a deploy needs. Throws a 400 naming the first offending key.
 */
export function validateParamValues(
  specs: ParamSpec[],
  values: Record<string, string>,
  opts: { requireAll?: boolean; current?: Record<string, unknown> } = {},
): Record<string, string> {
  const byKey = new Map(specs.map((s) => [s.key, s]))
  for (const [key, value] of Object.entries(values)) {
    const spec = byKey.get(key)
    if (!spec) {
      const known = specs.map((s) => s.key).join(', ') || 'none'
      throw new ApiError('BAD_REQUEST', `unknown param "${key}" (declared: ${known})`)
    }
    if (typeof value !== 'string')
      throw new ApiError('BAD_REQUEST', `param "${key}": values are strings`)
    if (value.length > 64 * 1024) throw new ApiError('BAD_REQUEST', `param "${key}" is over 64 KiB`)
    const why = problem(spec, value)
    if (why) throw new ApiError('BAD_REQUEST', `param "${key}" (${spec.label}) ${why}`)
    if (value === '' && spec.required && !spec.default)
      throw new ApiError('BAD_REQUEST', `param "${key}" (${spec.label}) is required`)
  }
  if (opts.requireAll) {
    for (const s of specs) {
      const set = values[s.key] ?? (opts.current?.[s.key] !== undefined ? 'set' : '')
      if (s.required && !set && !s.default)
        throw new ApiError('BAD_REQUEST', `param "${s.key}" (${s.label}) is required`)
    }
  }
  return values
}

/** Parses and checks a spec list (keys unique, defaults valid for their own type). */
export function validateParamSpecs(specs: unknown): ParamSpec[] {
  const parsed = z.array(paramSpecSchema).max(100).safeParse(specs)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ApiError('BAD_REQUEST', `param specs: ${issue?.path.join('.')} ${issue?.message}`)
  }
  const seen = new Set<string>()
  for (const s of parsed.data) {
    const env = envNameOf(s.key)
    if (seen.has(env)) throw new ApiError('BAD_REQUEST', `param key "${s.key}" is declared twice`)
    seen.add(env)
    const why = s.default ? problem(s, s.default) : null
    if (why) throw new ApiError('BAD_REQUEST', `param "${s.key}": its default ${why}`)
  }
  return parsed.data.map((s) => (isSensitive(s) ? { ...s, sensitive: true } : s))
}

/** The stored form of one value: plain text, or sealed when the spec is sensitive. */
type Stored = string | { sealed: string }

const aad = (workspaceId: string, key: string) => `${workspaceId}:app-param:${key}`

/** Merges `values` into the stored map: sensitive ones sealed, empty strings removed. */
export function sealValues(
  box: SecretBox,
  workspaceId: string,
  specs: ParamSpec[],
  stored: Record<string, Stored>,
  values: Record<string, string>,
): Record<string, Stored> {
  const next = { ...stored }
  for (const [key, value] of Object.entries(values)) {
    const spec = specs.find((s) => s.key === key)!
    if (value === '') delete next[key]
    else next[key] = isSensitive(spec) ? { sealed: box.seal(value, aad(workspaceId, key)) } : value
  }
  return next
}

export const specsOf = (app: Pick<AppRow, 'params'>) => JSON.parse(app.params) as ParamSpec[]
export const storedOf = (app: Pick<AppRow, 'param_values'>) =>
  JSON.parse(app.param_values) as Record<string, Stored>

/** What the API shows: set or default values of non-sensitive params only. */
export function publicValues(app: Pick<AppRow, 'params' | 'param_values'>) {
  const stored = storedOf(app)
  const out: Record<string, string> = {}
  for (const s of specsOf(app)) {
    if (isSensitive(s)) continue
    const v = stored[s.key]
    const value = typeof v === 'string' ? v : (s.default ?? '')
    if (value !== '') out[s.key] = value
  }
  return out
}

/** The app's environment from its params: set values, else defaults; unset ones are left out. */
export function paramEnv(
  box: SecretBox,
  app: Pick<AppRow, 'params' | 'param_values' | 'workspace_id'>,
): Record<string, string> {
  const stored = storedOf(app)
  const env: Record<string, string> = {}
  for (const s of specsOf(app)) {
    const v = stored[s.key]
    const value =
      v === undefined
        ? (s.default ?? '')
        : typeof v === 'string'
          ? v
          : box.open(v.sealed, aad(app.workspace_id, s.key))
    if (value !== '') env[envNameOf(s.key)] = value
  }
  return env
}

/**
 * The columns for a new app (templates and the catalog create apps with specs and defaults):
 * specs checked, values validated and sealed. Pass them as CreateAppInput.params/param_values.
 */
export function paramColumns(
  box: SecretBox,
  workspaceId: string,
  specs: unknown,
  values: Record<string, string> = {},
): { params: string; param_values: string } {
  const checked = validateParamSpecs(specs)
  validateParamValues(checked, values)
  return {
    params: JSON.stringify(checked),
    param_values: JSON.stringify(sealValues(box, workspaceId, checked, {}, values)),
  }
}

/** systemd EnvironmentFile syntax: double-quoted, with \ " $ ` escaped; newlines kept. */
export function renderEnvFile(env: Record<string, string>): string {
  const lines = Object.entries(env).map(
    ([k, v]) => `${k}="${v.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`,
  )
  return ['# Managed by Rigbox: the app params (PATCH /apps/{id}/params).', ...lines, ''].join('\n')
}

export const envFilePath = (appId: string) => `/etc/rigbox/apps/${appId}.env`
export const dropInPath = (unit: string) => `/etc/systemd/system/${unit}.d/50-rigbox-params.conf`

/**
 * Writes the app's env file (root, 0600) and its unit's drop-in that loads it, reloads systemd,
 * and restarts the unit if it is running and anything changed. Idempotent: a second call with
 * the same params touches nothing, so the boot runner may call it on every start.
 */
export async function deliverParams(
  units: GuestUnits,
  app: Pick<AppRow, 'id' | 'params' | 'param_values' | 'workspace_id' | 'service_unit'>,
  box: SecretBox,
  opts: { restart?: boolean } = {},
): Promise<{ changed: boolean; restarted: boolean }> {
  const file = envFilePath(app.id)
  const unit = app.service_unit
  const dropIn = unit ? `[Service]\nEnvironmentFile=-${file}` : null
  const script = [
    'set -e',
    'install -d -m 0755 /etc/rigbox && install -d -m 0700 /etc/rigbox/apps',
    `f=${shq(file)}; changed=0`,
    'tmp=$(mktemp /etc/rigbox/apps/.params.XXXXXX)',
    'cat > "$tmp"',
    'if cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv -f "$tmp" "$f"; changed=1; fi',
    'chown root:root "$f"; chmod 0600 "$f"',
    ...(unit && dropIn
      ? [
          `d=${shq(dropInPath(unit))}; want=${shq(dropIn)}`,
          'if [ "$(cat "$d" 2>/dev/null)" != "$want" ]; then',
          '  mkdir -p "$(dirname "$d")"; printf "%s\\n" "$want" > "$d"',
          '  systemctl daemon-reload; changed=1',
          'fi',
          opts.restart === false
            ? ''
            : `if [ $changed = 1 ] && systemctl is-active -q ${shq(unit)}; then ` +
              `systemctl restart ${shq(unit)}; echo restarted; fi`,
        ]
      : []),
    'echo changed=$changed',
  ].join('\n')
  const stdin = Buffer.from(renderEnvFile(paramEnv(box, app)))
  const r = await units.sh(script, { stdin, timeoutMs: 60_000 })
  if (r.exit_code !== 0) {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ')
    throw new ApiError('GUEST_ERROR', `delivering the params of ${app.id} failed: ${why}`)
  }
  return { changed: r.stdout.includes('changed=1'), restarted: r.stdout.includes('restarted') }
}
