import fs from 'node:fs'
import { unwrap, type RigboxClient, type Schemas } from '../client/index.ts'
import { choice, parseAssignments, pickByIdOrName } from './apps.ts'
import { CliError, table } from './context.ts'

export type SetupScript = Schemas['SetupScriptResponse']
export type ServiceSpec = Schemas['ServiceSpecResponse']

export const RUN_ON = ['first_boot', 'every_start'] as const
export const RESTART_POLICIES = ['always', 'on-failure', 'no'] as const

export async function resolveScript(api: RigboxClient, ref: string): Promise<SetupScript> {
  const { scripts } = unwrap(await api.GET('/api/v1/setup-scripts'))
  return pickByIdOrName(scripts, ref, 'setup script')
}

export async function resolveSpec(api: RigboxClient, ref: string): Promise<ServiceSpec> {
  const { services } = unwrap(await api.GET('/api/v1/service-specs'))
  return pickByIdOrName(services, ref, 'service spec')
}

export const scriptTable = (scripts: SetupScript[]) =>
  table(
    ['ID', 'NAME', 'RUN ON', 'ORDER', 'SOURCE', 'LINES', 'UPDATED'],
    scripts.map((s) => [
      s.id,
      s.name,
      s.run_on,
      s.script_order,
      s.source,
      s.content.split('\n').length,
      s.updated_at,
    ]),
  )

export const specTable = (specs: ServiceSpec[]) =>
  table(
    ['ID', 'NAME', 'RESTART', 'AUTO', 'EXEC'],
    specs.map((s) => [
      s.id,
      s.name,
      s.restart_policy,
      s.auto_enable ? 'yes' : 'no',
      s.exec_start.length > 60 ? `${s.exec_start.slice(0, 57)}...` : s.exec_start,
    ]),
  )

export interface ScriptFlags {
  name?: string
  file?: string
  content?: string
  runOn?: string
  order?: string
}

/** The script's text from --file (`-` is stdin) or --content; never both. */
function scriptContent(o: ScriptFlags): string | undefined {
  if (o.file !== undefined && o.content !== undefined) {
    throw new CliError('give --file or --content, not both')
  }
  if (o.content !== undefined) return o.content
  if (o.file === undefined) return undefined
  try {
    return fs.readFileSync(o.file === '-' ? 0 : o.file, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${o.file}: ${(err as Error).message}`)
  }
}

function scriptOrder(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n)) throw new CliError(`--order must be an integer (got "${v}")`)
  return n
}

/** The request body of `new` and `edit`: only what was given, checked before any request. */
export function scriptBody(o: ScriptFlags) {
  return {
    name: o.name,
    content: scriptContent(o),
    run_on: choice('--run-on', o.runOn, RUN_ON),
    script_order: scriptOrder(o.order),
  }
}

export interface SpecFlags {
  exec?: string
  env?: string[]
  envFile?: string
  restart?: string
  autoEnable?: boolean
  setupScript?: string
}

export function specBody(o: SpecFlags) {
  return {
    exec_start: o.exec,
    env_vars: o.env ? parseAssignments(o.env, '--env') : undefined,
    environment_file: o.envFile,
    restart_policy: choice('--restart', o.restart, RESTART_POLICIES),
    auto_enable: o.autoEnable,
    setup_script: o.setupScript,
  }
}
