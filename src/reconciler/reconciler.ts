import type { Logger } from 'pino'
import type { NodeClient, VmExit, WorkspaceSpec } from '../node/types.ts'
import { StaleVersionError, type WorkspaceRow, type WorkspaceStore } from '../workspaces/store.ts'

export interface ReconcilerOptions {
  store: WorkspaceStore
  node: NodeClient | null
  log: Logger
  bootTimeoutMs: number
  stopTimeoutMs: number
  /** Builds what the node needs to run a workspace (env, keys…). */
  specOf: (row: WorkspaceRow) => Promise<WorkspaceSpec>
  /**
   * Called once a boot (not a resume: its processes went on where they were) reached running;
   * the workspace's automation runs from there (src/automation/). Errors are the callee's own.
   */
  onBooted?: (row: WorkspaceRow) => void
}

class BootTimeout extends Error {}

/**
 * Drives each workspace from its status to its desired state. API calls only record intent and
 * kick; every change here is a fenced transition, so a concurrent API call or a second reconciler
 * pass can never write over a newer state — it re-reads and goes on from there.
 */
export class Reconciler {
  private running = new Map<string, Promise<void>>()
  private again = new Set<string>()
  private starts = new Map<string, AbortController>()
  private closed = false

  constructor(private readonly o: ReconcilerOptions) {
    o.node?.onExit((id, exit) => void this.onVmExit(id, exit))
  }

  kick(id: string): void {
    if (this.closed) return
    // A start in flight is aborted as soon as the workspace should no longer run.
    this.starts.get(id)?.abort()
    if (this.running.has(id)) {
      this.again.add(id)
      return
    }
    const run = this.loop(id).finally(() => this.running.delete(id))
    this.running.set(id, run)
  }

  /** Waits until nothing is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()])
  }

  /** After a restart: adopt the VMs that should live, clean the rest, then converge everything. */
  async recover(): Promise<void> {
    const rows = await this.o.store.listAll()
    if (this.o.node) {
      const live = rows.filter((r) =>
        ['running', 'starting', 'stopping', 'paused'].includes(r.status),
      )
      const { adopted, removed } = await this.o.node.recover(
        await Promise.all(live.map((r) => this.o.specOf(r))),
      )
      this.o.log.info({ adopted, removed }, 'node recovered after start-up')
      const alive = new Set(adopted)
      for (const row of rows) {
        if (row.status === 'running' && !alive.has(row.id)) {
          await this.fail(row, 'VM_LOST', 'the VM exited while the control plane was down')
        }
      }
    }
    for (const row of rows) this.kick(row.id)
  }

  async close(): Promise<void> {
    this.closed = true
    for (const c of this.starts.values()) c.abort()
    await this.idle()
  }

  private async loop(id: string): Promise<void> {
    for (;;) {
      this.again.delete(id)
      try {
        await this.step(id)
      } catch (err) {
        // A stale write means someone moved the workspace meanwhile: read it again.
        if (err instanceof StaleVersionError) this.again.add(id)
        else this.o.log.error({ err, workspace: id }, 'reconcile step failed')
      }
      if (!this.again.has(id) || this.closed) return
    }
  }

  private async step(id: string): Promise<void> {
    const row = await this.o.store.get(id)
    if (!row) return
    const node = this.o.node
    switch (row.desired_state) {
      case 'deleted': {
        const deleting =
          row.status === 'deleting'
            ? row
            : await this.o.store.transition(row, { status: 'deleting' })
        if (node) await node.destroy(id)
        await this.o.store.remove(deleting)
        return
      }
      case 'provisioned':
        // A fork's disk is being written: provisioning now would race it.
        if (node && row.status === 'provisioned' && !row.disk_op) {
          await node.provision(await this.o.specOf(row))
        }
        return
      case 'paused':
        if (row.status === 'running') await this.pause(row)
        return
      case 'stopped':
        if (['starting', 'running', 'stopping', 'provisioning', 'paused'].includes(row.status)) {
          const stopping =
            row.status === 'stopping'
              ? row
              : await this.o.store.transition(row, { status: 'stopping' })
          if (node) await node.stop(id, this.o.stopTimeoutMs)
          await this.o.store.transition(stopping, { status: 'stopped', ip_address: null })
        }
        return
      case 'running':
        if (row.status === 'provisioning') {
          if (!node) return this.fail(row, 'NODE_UNAVAILABLE', 'no compute node is available')
          await node.provision(await this.o.specOf(row))
          await this.o.store.transition(row, { status: 'starting' })
          this.again.add(id)
        } else if (row.status === 'starting') {
          await this.boot(row)
        }
        return
    }
  }

  private async pause(row: WorkspaceRow): Promise<void> {
    try {
      if (this.o.node) await this.o.node.pause(row.id)
    } catch (err) {
      // The guest was resumed where it stood: it stays running, and the failure fields say why
      // the pause was called off.
      this.o.log.warn({ err, workspace: row.id }, 'pause failed; the workspace keeps running')
      await this.o.store.transition(row, {
        desired_state: 'running',
        failure_code: 'PAUSE_FAILED',
        failure_reason: `the pause was called off: ${(err as Error).message}`,
      })
      return
    }
    await this.o.store.transition(row, { status: 'paused' })
  }

  private async boot(row: WorkspaceRow): Promise<void> {
    const node = this.o.node
    if (!node) return this.fail(row, 'NODE_UNAVAILABLE', 'no compute node is available')
    const abort = new AbortController()
    this.starts.set(row.id, abort)
    const timer = setTimeout(() => abort.abort(new BootTimeout()), this.o.bootTimeoutMs)
    try {
      const spec = await this.o.specOf(row)
      await node.provision(spec)
      const { ipAddress, resumed } = await node.start(spec, abort.signal)
      const next = await this.o.store.transition(row, { status: 'running', ip_address: ipAddress })
      if (!resumed) this.o.onBooted?.(next)
    } catch (err) {
      const current = await this.o.store.get(row.id)
      // Cancelled or deleted meanwhile: the next pass stops or removes the VM.
      if (!current || current.desired_state !== 'running') {
        this.again.add(row.id)
        return
      }
      if (abort.signal.reason instanceof BootTimeout) {
        await node.stop(row.id, 1000).catch(() => undefined)
        return this.fail(
          current,
          'BOOT_TIMEOUT',
          `the VM did not become ready within ${this.o.bootTimeoutMs / 1000}s`,
        )
      }
      await node.stop(row.id, 1000).catch(() => undefined)
      const e = err as { code?: string; message?: string }
      return this.fail(current, e.code ?? 'NODE_ERROR', e.message ?? String(err))
    } finally {
      clearTimeout(timer)
      this.starts.delete(row.id)
    }
  }

  private async fail(row: WorkspaceRow, code: string, reason: string): Promise<void> {
    this.o.log.warn({ workspace: row.id, code, reason }, 'workspace failed')
    await this.o.store.transition(row, {
      status: 'failed',
      failure_code: code,
      failure_reason: reason,
      ip_address: null,
    })
  }

  /** A VM that ended on its own: powered off from inside → stopped; otherwise failed. */
  private async onVmExit(id: string, exit: VmExit): Promise<void> {
    const row = await this.o.store.get(id)
    if (!row || row.status !== 'running') return
    try {
      if (exit.reason === 'poweroff') {
        await this.o.store.transition(row, {
          status: 'stopped',
          desired_state: 'stopped',
          ip_address: null,
        })
      } else {
        const code = exit.reason === 'oom' ? 'OOM_KILLED' : 'VM_CRASHED'
        await this.fail(row, code, exit.detail)
      }
    } catch (err) {
      if (!(err instanceof StaleVersionError)) throw err
      this.kick(id)
    }
  }
}
