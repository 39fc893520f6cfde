import { ApiError } from '../http/errors.ts'
import type { ExecResult, GuestLogLine, NodeClient } from '../node/types.ts'

/**
 * Systemd units and root commands in a running VM, for everything the automation drives there
 * (service specs, apps as units, tools, catalog apps). Units are plain files under
 * /etc/systemd/system written over the guest channel; the guest's systemd runs them.
 */

export type RestartPolicy = 'always' | 'on-failure' | 'no'

export interface UnitSpec {
  /** Full unit name, `rigbox-<kind>-<name>.service`. */
  unit: string
  description: string
  /** One command line, parsed by systemd (not a shell); `%` and `$` are taken literally. */
  execStart: string
  user: 'developer' | 'root'
  workingDirectory: string
  /** On top of the manager's environment (the workspace env and proxy settings). */
  environment?: Record<string, string>
  /** Optional files (a leading `-` is added: a missing one is no error). */
  environmentFiles?: string[]
  restart: RestartPolicy
  after?: string[]
}

const UNIT_NAME_RE = /^rigbox-[a-z0-9][a-z0-9-]*\.service$/

/** `rigbox-svc-web.service` and the like; `name` must already be a DNS-label-like name. */
export const unitName = (kind: 'svc' | 'app' | 'tool', name: string) =>
  `rigbox-${kind}-${name}.service`

/** systemd's double-quoted form: backslash, quote and control characters escaped. */
function systemdQuote(s: string): string {
  return `"${s
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\r/g, '\\r')}"`
}

/** Specifiers (`%h`) and variable references (`$X`) are not what a user typing a command means. */
const literal = (s: string) => s.replace(/%/g, '%%').replace(/\$/g, '$$$$')

export function renderUnit(u: UnitSpec): string {
  if (!UNIT_NAME_RE.test(u.unit)) throw new Error(`bad unit name ${u.unit}`)
  if (/[\r\n]/.test(u.execStart)) throw new Error('a command line cannot contain a newline')
  const env = Object.entries(u.environment ?? {}).map(
    ([k, v]) => `Environment=${literal(systemdQuote(`${k}=${v}`))}`,
  )
  const files = (u.environmentFiles ?? []).map((f) => `EnvironmentFile=-${f}`)
  const after = ['network-online.target', 'rigbox-agent.service', ...(u.after ?? [])]
  return [
    '# Managed by Rigbox; rewritten at every start of the workspace.',
    '[Unit]',
    `Description=${u.description.replace(/[\r\n]/g, ' ')}`,
    `After=${after.join(' ')}`,
    `Wants=network-online.target`,
    // A crash loop is shown as failed instead of being restarted forever.
    'StartLimitIntervalSec=60',
    'StartLimitBurst=10',
    '',
    '[Service]',
    `User=${u.user}`,
    `WorkingDirectory=${u.workingDirectory}`,
    ...files,
    ...env,
    `ExecStart=${literal(u.execStart)}`,
    `Restart=${u.restart}`,
    'RestartSec=1',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n')
}

/** Single-quoted for bash. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

export class GuestUnits {
  constructor(
    private readonly node: NodeClient,
    private readonly id: string,
  ) {}

  /** Runs bash as root; a non-zero exit is the caller's to judge. */
  sh(command: string, opts: { timeoutMs?: number; maxOutputBytes?: number; stdin?: Buffer } = {}) {
    return this.node.exec(
      this.id,
      { command, user: 'root', timeoutMs: opts.timeoutMs ?? 30_000, stdin: opts.stdin },
      opts.maxOutputBytes ?? 256 * 1024,
    )
  }

  /** Like `sh`, but a failure is a GUEST_ERROR naming `what`. */
  async must(what: string, command: string, timeoutMs?: number): Promise<ExecResult> {
    const r = await this.sh(command, { timeoutMs })
    if (r.exit_code !== 0) {
      const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ')
      throw new ApiError(
        'GUEST_ERROR',
        `${what} failed in the workspace (exit ${r.exit_code}): ${why}`,
      )
    }
    return r
  }

  writeFile(path: string, text: string) {
    return this.node.writeFile(this.id, path, Buffer.from(text))
  }

  /**
   * Writes the units, removes units with `prefix` that are not among them (a detached spec, a
   * deleted app), and reloads systemd. Nothing is started here.
   */
  async install(units: UnitSpec[], prefix?: string): Promise<void> {
    for (const u of units) await this.writeFile(`/etc/systemd/system/${u.unit}`, renderUnit(u))
    const keep = units.map((u) => u.unit)
    const stale = prefix
      ? `for f in /etc/systemd/system/${prefix}*.service; do [ -e "$f" ] || continue; ` +
        `n=$(basename "$f"); case " ${keep.join(' ')} " in *" $n "*) ;; *) ` +
        `systemctl disable --now "$n" >/dev/null 2>&1; rm -f "$f";; esac; done; `
      : ''
    await this.must('installing units', `${stale}systemctl daemon-reload`)
  }

  /** `systemctl <verb> <units>`; for start/restart it waits for the job (at most timeoutMs). */
  systemctl(
    verb: 'start' | 'stop' | 'restart' | 'enable' | 'disable',
    units: string[],
    timeoutMs = 60_000,
  ) {
    for (const u of units)
      if (!UNIT_NAME_RE.test(u) && !/^[\w@.-]+$/.test(u)) throw new Error(`bad unit ${u}`)
    const now = verb === 'enable' || verb === 'disable' ? ' --now' : ''
    return this.must(
      `systemctl ${verb}`,
      `systemctl ${verb}${now} ${units.map(shq).join(' ')}`,
      timeoutMs,
    )
  }

  /** ActiveState/SubState/MainPID and the time it entered its state, per unit. */
  async states(units: string[]): Promise<Map<string, UnitState>> {
    const out = new Map<string, UnitState>()
    if (!units.length) return out
    const r = await this.sh(
      `systemctl show -p Id,LoadState,ActiveState,SubState,MainPID,NRestarts,StateChangeTimestamp ${units.map(shq).join(' ')}`,
    )
    for (const block of r.stdout.split(/\n\n+/)) {
      const f = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => l.includes('='))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      )
      if (!f.Id) continue
      out.set(f.Id, {
        loaded: f.LoadState === 'loaded',
        active: f.ActiveState ?? 'unknown',
        sub: f.SubState ?? 'unknown',
        pid: Number(f.MainPID) || null,
        restarts: Number(f.NRestarts) || 0,
        since: f.StateChangeTimestamp || null,
      })
    }
    return out
  }

  /** The unit's journal, newest last. */
  logs(unit: string, lines: number, cursor?: string): Promise<GuestLogLine[]> {
    return this.node.logs(this.id, { lines, cursor, unit })
  }
}

export interface UnitState {
  loaded: boolean
  /** active, inactive, failed, activating, deactivating… */
  active: string
  sub: string
  pid: number | null
  restarts: number
  since: string | null
}
