import type { Logger } from 'pino'
import type { User } from '../auth/store.ts'
import { ApiError } from '../http/errors.ts'
import { nameSuffix, newId, nowIso } from '../lib/ids.ts'
import { exceed, limitsFor } from '../limits/service.ts'
import type { NodeClient, SnapshotRef, WorkspaceSpec } from '../node/types.ts'
import { checkDiskIdle, type WorkspaceService } from '../workspaces/service.ts'
import { StaleVersionError, type WorkspaceRow, type WorkspaceStore } from '../workspaces/store.ts'
import type { SnapshotRow, SnapshotStore } from './store.ts'

export interface SnapshotDeps {
  snapshots: SnapshotStore
  store: WorkspaceStore
  workspaces: WorkspaceService
  node: NodeClient | null
  specOf: (row: WorkspaceRow) => Promise<WorkspaceSpec>
  log: Logger
}

/** The disk is not in use: no VM, no memory state that expects it unchanged. */
const DISK_AT_REST = new Set(['stopped', 'failed'])

const refOf = (s: SnapshotRow): SnapshotRef => ({ workspaceId: s.workspace_id, snapshotId: s.id })

/**
 * Disk snapshots and forks. Each disk copy runs under the workspace's `disk_op`, set and cleared
 * by fenced transitions, so nothing starts, resizes or deletes the workspace meanwhile; a snapshot
 * row stays `creating` (invisible) until its file is complete. After a crash, `recover` finishes
 * the job: it drops unfinished snapshots and forks and frees the workspaces.
 */
export class SnapshotService {
  constructor(private readonly d: SnapshotDeps) {}

  listForUser(user: User) {
    return this.d.snapshots.listByUser(user.id)
  }

  async listForWorkspace(user: User, workspaceId: string) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    return this.d.snapshots.listByWorkspace(ws.id)
  }

  /** The user's snapshot; with `workspaceId`, only if it was taken of that workspace. */
  async get(user: User, id: string, workspaceId?: string): Promise<SnapshotRow> {
    if (workspaceId) await this.d.workspaces.get(user, workspaceId)
    const snap = await this.d.snapshots.getOwned(user.id, id)
    if (!snap || (workspaceId && snap.workspace_id !== workspaceId)) {
      throw new ApiError('SNAPSHOT_NOT_FOUND', `snapshot ${id} not found`)
    }
    return snap
  }

  async create(user: User, workspaceId: string, name?: string | null): Promise<SnapshotRow> {
    const node = this.node()
    const ws = await this.d.workspaces.get(user, workspaceId)
    return this.withDisk(ws, 'snapshot', async (busy) => {
      const existing = await this.d.snapshots.listAll(ws.id)
      const limit = limitsFor(user).max_snapshots_per_workspace
      if (existing.length >= limit) {
        throw exceed('max_snapshots_per_workspace', limit, existing.length + 1, 'snapshots')
      }
      const row: SnapshotRow = {
        id: newId('snap'),
        user_id: user.id,
        workspace_id: ws.id,
        node_id: ws.node_id,
        name: name ?? `snapshot-${nowIso().replace(/\.\d+Z$/, 'Z')}`,
        state: 'creating',
        size_bytes: 0,
        created_at: nowIso(),
      }
      await this.d.snapshots.insert(row)
      try {
        const { sizeBytes } = await node.snapshotDisk(await this.d.specOf(busy), row.id)
        await this.d.snapshots.markReady(row.id, sizeBytes)
        return { ...row, state: 'ready', size_bytes: sizeBytes }
      } catch (err) {
        await node.deleteSnapshot(refOf(row)).catch(() => undefined)
        await this.d.snapshots.remove(row.id)
        throw err
      }
    })
  }

  /** Replaces a stopped workspace's disk with the snapshot's. */
  async restore(user: User, id: string, workspaceId?: string): Promise<SnapshotRow> {
    const node = this.node()
    const snap = await this.get(user, id, workspaceId)
    const ws = await this.d.workspaces.get(user, snap.workspace_id)
    await this.withDisk(ws, 'restore', async (busy) =>
      node.restoreDisk(await this.d.specOf(busy), refOf(snap)),
    )
    return snap
  }

  async remove(user: User, id: string, workspaceId?: string): Promise<void> {
    const snap = await this.get(user, id, workspaceId)
    // The row first: a crash in between leaves a file that recovery sweeps, never a dead row.
    await this.d.snapshots.remove(snap.id)
    await this.node().deleteSnapshot(refOf(snap))
  }

  /** A new workspace whose disk starts as the snapshot's; it boots with an identity of its own. */
  async fork(user: User, id: string, name?: string | null): Promise<WorkspaceRow> {
    const node = this.node()
    const snap = await this.get(user, id)
    const source = await this.d.workspaces.get(user, snap.workspace_id)
    const created = await this.d.workspaces.create(
      user,
      {
        name: name ?? `${source.name.slice(0, 50)}-fork-${nameSuffix()}`,
        image: source.image,
        ram_mb: source.ram_mb,
        vcpu_count: source.vcpu_count,
        disk_size_mb: source.disk_size_mb,
        template_id: source.template_id,
        env_vars: JSON.parse(source.env_vars) as Record<string, string>,
      },
      { diskOp: 'fork' },
    )
    try {
      await node.restoreDisk(await this.d.specOf(created), refOf(snap))
    } catch (err) {
      // A fork that has no disk is no workspace: it goes, and the caller sees why.
      await this.discardFork(created.id)
      throw err
    }
    return this.release(created.id)
  }

  /**
   * After a crash: unfinished snapshots go (rows and files), unfinished forks are deleted, disk
   * operations that were cut short are cleared (their copies went to `.partial` files, so the
   * disk is whole), and snapshot files no row knows about are removed.
   */
  async recover(): Promise<void> {
    const node = this.d.node
    if (!node) return
    const keep: SnapshotRef[] = []
    for (const snap of await this.d.snapshots.listAll()) {
      if (snap.state === 'creating') await this.d.snapshots.remove(snap.id)
      else if (snap.node_id === node.id) keep.push(refOf(snap))
    }
    const swept = await node.sweepSnapshots(keep)
    for (const ws of await this.d.store.listAll()) {
      if (ws.disk_op === 'fork') await this.discardFork(ws.id)
      else if (ws.disk_op) await this.release(ws.id)
    }
    if (swept.length) this.d.log.info({ swept }, 'removed unfinished snapshot files')
  }

  private node(): NodeClient {
    if (!this.d.node) throw new ApiError('NODE_UNAVAILABLE', 'no compute node is available')
    return this.d.node
  }

  /**
   * Runs `work` on a workspace's disk at rest, marked busy for the time: the mark is a fenced
   * transition, so a start or a second snapshot in between loses.
   */
  private async withDisk<T>(
    ws: WorkspaceRow,
    op: 'snapshot' | 'restore',
    work: (busy: WorkspaceRow) => Promise<T>,
  ): Promise<T> {
    atRest(ws, op)
    checkDiskIdle(ws)
    const busy = await this.d.store.transition(ws, { disk_op: op })
    try {
      return await work(busy)
    } finally {
      await this.release(ws.id)
    }
  }

  private async release(id: string): Promise<WorkspaceRow> {
    for (;;) {
      const row = await this.d.store.get(id)
      if (!row) throw new ApiError('WORKSPACE_NOT_FOUND', `workspace ${id} not found`)
      try {
        return await this.d.store.transition(row, { disk_op: null })
      } catch (err) {
        if (!(err instanceof StaleVersionError)) throw err
      }
    }
  }

  private async discardFork(id: string): Promise<void> {
    const row = await this.d.store.get(id)
    if (!row) return
    await this.d.node?.destroy(id)
    await this.d.store.remove(row)
  }
}

function atRest(ws: WorkspaceRow, what: 'snapshot' | 'restore') {
  if (DISK_AT_REST.has(ws.status)) return
  const verb = what === 'snapshot' ? 'snapshotted' : 'restored'
  const hint =
    ws.status === 'paused'
      ? 'stop it first (that discards its memory state)'
      : ws.status === 'provisioned'
        ? 'it has never run; start it once, then stop it'
        : 'stop it first and wait until its status is stopped'
  throw new ApiError(
    'INVALID_STATE',
    `workspace ${ws.id} is ${ws.status}; a workspace's disk is ${verb} only while it is stopped: ${hint}`,
  )
}
