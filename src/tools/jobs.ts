import type { Selectable } from 'kysely'
import type { Logger } from 'pino'
import type { Db } from '../db/database.ts'
import type { WorkspaceJobsTable } from '../db/schema.ts'
import { newId, nowIso } from '../lib/ids.ts'
import type { ExecResult, NodeClient } from '../node/types.ts'

/**
 * Background jobs that drive a workspace's VM (tool and catalog installs). The row is the
 * record; the work runs in this process. A job of a previous process (the server restarted while
 * it ran) can never finish, so it reads as failed.
 */

export type JobRow = Selectable<WorkspaceJobsTable>
export type JobKind = JobRow['kind']

/** Kept per stream: enough to see why apt or a script failed, small enough for a row. */
const TAIL_BYTES = 16 * 1024
const INTERRUPTED = 'interrupted: the server restarted while the job ran'

export class JobFailed extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null = null,
  ) {
    super(message)
  }
}

/** What a job's work gets: root commands in the VM whose output lands in the job's tails. */
export interface JobContext {
  job: JobRow
  /** Runs bash as root; a non-zero exit fails the job (JobFailed) naming `step`. */
  run(
    step: string,
    command: string,
    opts?: { env?: Record<string, string>; timeoutMs?: number },
  ): Promise<ExecResult>
  /** A line of our own in the job's stdout (what step is running). */
  note(line: string): void
}

const tail = (s: string) => (s.length > TAIL_BYTES ? s.slice(s.length - TAIL_BYTES) : s)

export class JobStore {
  constructor(private readonly db: Db) {}

  insert(row: JobRow) {
    return this.db.insertInto('workspace_jobs').values(row).execute()
  }

  get(workspaceId: string, id: string) {
    return this.db
      .selectFrom('workspace_jobs')
      .selectAll()
      .where('id', '=', id)
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirst()
  }

  /** The newest job for one thing (a tool or catalog id) in a workspace. */
  latest(workspaceId: string, kind: JobKind, target: string) {
    return this.db
      .selectFrom('workspace_jobs')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('kind', '=', kind)
      .where('target', '=', target)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst()
  }

  update(id: string, patch: Partial<Omit<JobRow, 'id'>>) {
    return this.db
      .updateTable('workspace_jobs')
      .set({ ...patch, updated_at: nowIso() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow()
  }

  /** Unfinished rows not run by this process: marked failed (at start-up, and on reads). */
  async failOrphans(live: Set<string>, onlyId?: string) {
    let q = this.db
      .selectFrom('workspace_jobs')
      .select('id')
      .where('status', 'in', ['queued', 'running'])
    if (onlyId) q = q.where('id', '=', onlyId)
    for (const { id } of await q.execute()) {
      if (live.has(id)) continue
      await this.db
        .updateTable('workspace_jobs')
        .set({ status: 'failed', stderr: INTERRUPTED, updated_at: nowIso() })
        .where('id', '=', id)
        .where('status', 'in', ['queued', 'running'])
        .execute()
    }
  }
}

export interface JobRequest {
  workspaceId: string
  userId: string
  kind: JobKind
  target: string
  appId?: string | null
  work: (ctx: JobContext) => Promise<void>
  /** After the work, before the row is final (app status); its errors are logged only. */
  finish?: (ok: boolean) => Promise<void>
}

export class JobRunner {
  /** Job ids this process runs (queued or running). */
  private readonly live = new Set<string>()
  /** One job at a time per workspace: apt holds a lock, and installs compete for a slow VM. */
  private readonly chains = new Map<string, Promise<void>>()

  constructor(
    private readonly store: JobStore,
    private readonly node: NodeClient | null,
    private readonly log: Logger,
  ) {}

  /** Marks jobs of an earlier process failed. */
  recover() {
    return this.store.failOrphans(this.live)
  }

  /** The row as it stands, a dead process's unfinished job shown failed. */
  async get(workspaceId: string, id: string) {
    await this.store.failOrphans(this.live, id)
    return this.store.get(workspaceId, id)
  }

  async latest(workspaceId: string, kind: JobKind, target: string) {
    const row = await this.store.latest(workspaceId, kind, target)
    if (row && !this.finished(row) && !this.live.has(row.id))
      await this.store.failOrphans(this.live, row.id)
    return row && (await this.store.get(workspaceId, row.id))
  }

  /** The job already queued or running for the same thing, if any. */
  async active(workspaceId: string, kind: JobKind, target: string) {
    const row = await this.latest(workspaceId, kind, target)
    return row && !this.finished(row) ? row : null
  }

  private finished(row: JobRow) {
    return row.status === 'succeeded' || row.status === 'failed'
  }

  /** Records the job and runs it in the background; `created: false` returns the one running. */
  async start(req: JobRequest): Promise<{ job: JobRow; created: boolean }> {
    const running = await this.active(req.workspaceId, req.kind, req.target)
    if (running) return { job: running, created: false }
    const now = nowIso()
    const job: JobRow = {
      id: newId('job'),
      workspace_id: req.workspaceId,
      user_id: req.userId,
      kind: req.kind,
      target: req.target,
      app_id: req.appId ?? null,
      status: 'queued',
      exit_code: null,
      stdout: null,
      stderr: null,
      created_at: now,
      updated_at: now,
    }
    await this.store.insert(job)
    this.live.add(job.id)
    const prev = this.chains.get(req.workspaceId) ?? Promise.resolve()
    const next = prev.then(() => this.run(job, req))
    this.chains.set(req.workspaceId, next)
    void next.finally(() => {
      if (this.chains.get(req.workspaceId) === next) this.chains.delete(req.workspaceId)
    })
    return { job, created: true }
  }

  /** Resolves when every job of this process has ended (tests, shutdown). */
  async idle() {
    while (this.chains.size) await Promise.all([...this.chains.values()])
  }

  private async run(job: JobRow, req: JobRequest): Promise<void> {
    let stdout = ''
    let stderr = ''
    let ok = false
    let exitCode: number | null = null
    try {
      await this.store.update(job.id, { status: 'running' })
      const ctx: JobContext = {
        job,
        note: (line) => {
          stdout = tail(`${stdout}==> ${line}\n`)
        },
        run: async (step, command, opts = {}) => {
          if (!this.node) throw new JobFailed('this server has no node to run workspaces')
          const r = await this.node.exec(
            req.workspaceId,
            { command, user: 'root', env: opts.env, timeoutMs: opts.timeoutMs ?? 15 * 60_000 },
            1 << 20,
          )
          stdout = tail(stdout + r.stdout)
          stderr = tail(stderr + r.stderr)
          exitCode = r.exit_code
          if (r.exit_code !== 0)
            throw new JobFailed(`${step} failed (exit ${r.exit_code})`, r.exit_code)
          // Progress is visible while the job runs.
          await this.store.update(job.id, { stdout, stderr })
          return r
        },
      }
      await req.work(ctx)
      ok = true
      exitCode = 0
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      stderr = tail(`${stderr}${stderr && !stderr.endsWith('\n') ? '\n' : ''}${message}\n`)
      if (err instanceof JobFailed) exitCode = err.exitCode
      else if (exitCode === 0) exitCode = null
    }
    // Before the row is final: whoever sees the job done sees the app's final status too.
    await req.finish?.(ok).catch((err: unknown) => {
      this.log.warn({ err, jobId: job.id }, 'job finish step failed')
    })
    await this.store.update(job.id, {
      status: ok ? 'succeeded' : 'failed',
      exit_code: exitCode,
      stdout,
      stderr,
    })
    this.live.delete(job.id)
  }
}
