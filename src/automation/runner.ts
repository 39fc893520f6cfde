import type { Logger } from 'pino'
import { randomString } from '../lib/ids.ts'
import type { NodeClient } from '../node/types.ts'
import type { WorkspaceRow, WorkspaceStore } from '../workspaces/store.ts'
import { GuestUnits, shq, unitName } from './guest.ts'
import { HOME, planFor, SERVICE_UNIT_PREFIX, toUnitSpec, type Plan } from './plan.ts'
import type { AutomationStore } from './store.ts'
import type { PlannedScript, ScriptRun, SetupStatus } from './types.ts'

export interface RunnerDeps {
  node: NodeClient | null
  automation: AutomationStore
  workspaces: WorkspaceStore
  log: Logger
  /**
   * Before the scripts and services: what the services need in place first (the apps' params,
   * set while the workspace was stopped). A failure is logged; the run goes on.
   */
  beforePlan?: (row: WorkspaceRow, guest: GuestUnits) => Promise<void>
  /** After the scripts and services (quick deploy's catalog apps install from here). */
  afterSetup?: (row: WorkspaceRow) => Promise<void>
  /** How long one script may run before systemd ends it. */
  scriptTimeoutMs?: number
}

const SETUP_DIR = '/var/lib/rigbox/setup'
const DONE_DIR = `${SETUP_DIR}/done`
const TAIL_LINES = 20
const TAIL_BYTES = 4096

/** The workspace stopped (or the server is closing) under a run: it ends without a word. */
class Gone extends Error {}

/** A marker / file name from any id (`tpl:web:install` → `tpl_web_install`). */
const safeId = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_')

export function outputTail(text: string): string {
  let tail = text.replace(/\s+$/, '').split('\n').slice(-TAIL_LINES).join('\n')
  while (Buffer.byteLength(tail) > TAIL_BYTES) tail = tail.slice(tail.indexOf('\n') + 1 || 1)
  return tail
}

/**
 * Runs a workspace's automation after each fresh boot, in the background: writes its service
 * units, runs its setup scripts in order (output to the workspace journal), starts its services,
 * and reports as it goes in the workspace's `setup_status`. Nothing here fails the start.
 */
export class SetupRunner {
  private inflight = new Map<string, Promise<void>>()
  /** The boot each workspace's current run belongs to; an older run sees it and ends. */
  private generation = new Map<string, string>()
  private readonly abort = new AbortController()

  constructor(private readonly d: RunnerDeps) {}

  /** The reconciler's `onBooted`: never throws, never waits. */
  onBooted(row: WorkspaceRow): void {
    if (this.abort.signal.aborted || !this.d.node) return
    const gen = randomString('abcdefghijklmnopqrstuvwxyz0123456789', 8)
    this.generation.set(row.id, gen)
    const previous = this.inflight.get(row.id) ?? Promise.resolve()
    const run = previous
      .then(() => this.run(row, gen))
      .catch((err: unknown) => {
        if (!(err instanceof Gone)) this.d.log.warn({ err, workspace: row.id }, 'setup run failed')
      })
      .finally(() => {
        if (this.inflight.get(row.id) === run) this.inflight.delete(row.id)
      })
    this.inflight.set(row.id, run)
  }

  /** Waits for the runs in flight (tests; the server's shutdown after close()). */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight.values()])
  }

  async close(): Promise<void> {
    this.abort.abort()
    await this.idle()
  }

  private async run(row: WorkspaceRow, gen: string): Promise<void> {
    const guest = new GuestUnits(this.d.node!, row.id)
    const alive = async () => {
      if (this.abort.signal.aborted || this.generation.get(row.id) !== gen) return false
      return (await this.d.workspaces.get(row.id))?.status === 'running'
    }
    /** A guest call; if it fails because the workspace went away, the run ends quietly. */
    const step = async <T>(f: () => Promise<T>): Promise<T> => {
      if (!(await alive())) throw new Gone()
      try {
        return await f()
      } catch (err) {
        if (!(await alive())) throw new Gone()
        throw err
      }
    }

    if (this.d.beforePlan) {
      await step(() => this.d.beforePlan!(row, guest)).catch((err: unknown) => {
        if (err instanceof Gone) throw err
        this.d.log.warn({ err, workspace: row.id }, 'preparing the workspace for setup failed')
      })
    }
    const plan = await planFor(row, this.d.automation)
    // A workspace that never had automation is left alone; one that had (a setup_status) gets
    // its deleted specs' units removed even when nothing is planned any more.
    if (plan.scripts.length || plan.services.length || row.setup_status) {
      await this.runPlan(row, guest, plan, step)
    }
    if (this.d.afterSetup && (await alive())) {
      await this.d.afterSetup((await this.d.workspaces.get(row.id)) ?? row)
    }
  }

  private async runPlan(
    row: WorkspaceRow,
    guest: GuestUnits,
    plan: Plan,
    step: <T>(f: () => Promise<T>) => Promise<T>,
  ) {
    const status: SetupStatus = {
      state: 'running',
      started_at: new Date().toISOString(),
      finished_at: null,
      runs: [],
      services: [],
    }
    const save = () => this.d.automation.setSetupStatus(row.id, status)
    await save()
    try {
      await this.steps(guest, plan, step, status, save)
    } catch (err) {
      if (err instanceof Gone) throw err
      // The guest failed under us (not a script): the report says so rather than `running`.
      status.state = 'failed'
      status.finished_at = new Date().toISOString()
      await save()
      throw err
    }
  }

  private async steps(
    guest: GuestUnits,
    plan: Plan,
    step: <T>(f: () => Promise<T>) => Promise<T>,
    status: SetupStatus,
    save: () => Promise<void>,
  ) {
    // All planned units are written first; those no longer planned are removed.
    const notInstalled = await step(() =>
      guest.install(plan.services.map(toUnitSpec), SERVICE_UNIT_PREFIX),
    ).then(
      () => null,
      (err: unknown) => {
        if (err instanceof Gone) throw err
        return `the units could not be installed: ${(err as Error).message}`
      },
    )
    const done = await step(() => this.doneMarkers(guest))

    for (const [i, s] of plan.scripts.entries()) {
      status.runs.push(await this.scriptRun(step, guest, s, i, done))
      await save()
    }
    for (const [i, svc] of plan.services.entries()) {
      const unit = unitName('svc', svc.name)
      let error: string | null = notInstalled
      if (svc.setup_script.trim() && !error) {
        const script: PlannedScript = {
          id: `svc:${svc.name}`,
          name: `${svc.name} (service setup)`,
          content: svc.setup_script,
          run_on: 'first_boot',
          source: svc.source,
        }
        const r = await this.scriptRun(step, guest, script, plan.scripts.length + i, done)
        status.runs.push(r)
        await save()
        if (r.status === 'failed') error = 'its setup script failed; not started'
      }
      if (svc.auto_enable && !error) {
        // Started here, after the scripts, rather than enabled in systemd: an enabled unit would
        // start at the next boot before its (possibly changed) definition is rewritten.
        error = await step(() => guest.systemctl('restart', [unit], 90_000)).then(
          () => null,
          (err: unknown) => {
            if (err instanceof Gone) throw err
            return (err as Error).message
          },
        )
      }
      status.services.push({ name: svc.name, unit, state: 'inactive', error })
    }
    if (status.services.length) {
      // A moment for a unit that dies at once to show as failed rather than active.
      await new Promise((r) => setTimeout(r, 1500))
      const states = await step(() => guest.states(status.services.map((s) => s.unit)))
      for (const s of status.services) {
        const st = states.get(s.unit)
        s.state = st ? (st.sub === 'auto-restart' ? 'auto-restart' : st.active) : 'unknown'
      }
    }
    const servicesBad = status.services.some(
      (s, i) => s.error || (plan.services[i].auto_enable && s.state === 'failed'),
    )
    status.state =
      status.runs.some((r) => r.status === 'failed') || servicesBad ? 'failed' : 'succeeded'
    status.finished_at = new Date().toISOString()
    if (await step(async () => true)) await save()
  }

  /** A script the guest could not even run (the agent failed) is a failed run, not the end. */
  private scriptRun(
    step: <T>(f: () => Promise<T>) => Promise<T>,
    guest: GuestUnits,
    s: PlannedScript,
    index: number,
    done: Set<string>,
  ): Promise<ScriptRun> {
    const started_at = new Date().toISOString()
    return step(() => this.runScript(guest, s, index, done)).catch((err: unknown) => {
      if (err instanceof Gone) throw err
      return {
        script_id: s.id,
        name: s.name,
        source: s.source,
        run_on: s.run_on,
        started_at,
        status: 'failed',
        exit_code: null,
        output_tail: outputTail(`could not run the script: ${(err as Error).message}`),
        finished_at: new Date().toISOString(),
      }
    })
  }

  private async doneMarkers(guest: GuestUnits): Promise<Set<string>> {
    const r = await guest.sh(`mkdir -p ${DONE_DIR} && ls -1 ${DONE_DIR}`)
    return new Set(r.stdout.split('\n').filter(Boolean))
  }

  /**
   * One script as a transient unit: as developer (sudo works), in its home, stdout and stderr to
   * the journal (the workspace logs), ended by systemd after the timeout. The exec's own output
   * is the journal's tail of that unit.
   */
  private async runScript(
    guest: GuestUnits,
    s: PlannedScript,
    index: number,
    done: Set<string>,
  ): Promise<ScriptRun> {
    const started_at = new Date().toISOString()
    const base = { script_id: s.id, name: s.name, source: s.source, run_on: s.run_on, started_at }
    const marker = safeId(s.id)
    if (s.run_on === 'first_boot' && done.has(marker)) {
      return {
        ...base,
        status: 'skipped',
        exit_code: null,
        output_tail: '',
        finished_at: started_at,
      }
    }
    const file = `${SETUP_DIR}/${marker}.sh`
    const unit = `rigbox-setup-${index}-${randomString('abcdefghijklmnopqrstuvwxyz0123456789', 6)}`
    const timeoutMs = this.d.scriptTimeoutMs ?? 30 * 60_000
    await guest.sh(`mkdir -p ${SETUP_DIR} && cat > ${shq(file)} && chmod 0644 ${shq(file)}`, {
      stdin: Buffer.from(s.content),
    })
    const r = await guest.sh(
      [
        `logger -t rigbox-setup ${shq(`running ${s.source} script "${s.name}" (${s.run_on})`)}`,
        `systemd-run --wait --collect --quiet --unit ${unit} -p User=developer ` +
          `-p WorkingDirectory=${HOME} -p StandardOutput=journal -p StandardError=journal ` +
          `-p SyslogIdentifier=setup-${marker} -p RuntimeMaxSec=${Math.ceil(timeoutMs / 1000)} ` +
          `/bin/bash -l ${shq(file)}`,
        'rc=$?',
        `logger -t rigbox-setup ${shq(`script "${s.name}" exited with`)}" $rc"`,
        // The journal takes a moment to file a unit's last lines; --sync waits for it.
        'journalctl --sync 2>/dev/null',
        // The script's own lines only (-u would add systemd's about the unit).
        `journalctl -b _SYSTEMD_UNIT=${unit}.service -n ${TAIL_LINES} -o cat --no-pager 2>/dev/null`,
        `if [ "$rc" = 0 ] && [ ${shq(s.run_on)} = first_boot ]; then touch ${DONE_DIR}/${marker}; fi`,
        'exit $rc',
      ].join('\n'),
      { timeoutMs: timeoutMs + 60_000 },
    )
    const exit_code = r.exit_code
    return {
      ...base,
      status: exit_code === 0 ? 'succeeded' : 'failed',
      exit_code,
      output_tail: outputTail(r.stdout + (r.stderr ? `\n${r.stderr}` : '')),
      finished_at: new Date().toISOString(),
    }
  }
}
