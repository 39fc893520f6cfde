import type { Updateable } from 'kysely'
import type { Db } from '../db/database.ts'
import type { WorkspacesTable } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import { nowIso } from '../lib/ids.ts'
import type { Vm, VmStatus } from './schemas.ts'

export type WorkspaceRow = WorkspacesTable
export type WorkspacePatch = Omit<Updateable<WorkspacesTable>, 'id' | 'version' | 'user_id'>

export class StaleVersionError extends ApiError {
  constructor(id: string) {
    super('STALE_VERSION', `workspace ${id} changed concurrently; read it again and retry`)
  }
}

/** The SSH gateway's user for a workspace: its name and the id without `ws-`. */
export const sshUser = (row: Pick<WorkspaceRow, 'id' | 'name'>) => `${row.name}-${row.id.slice(3)}`

export function toVm(row: WorkspaceRow, ssh: { host: string; port: number }): Vm {
  return {
    id: row.id,
    user_id: row.user_id,
    node_id: row.node_id,
    name: row.name,
    status: row.status as VmStatus,
    image: row.image,
    template_id: row.template_id,
    ram_mb: row.ram_mb,
    vcpu_count: row.vcpu_count,
    disk_size_mb: row.disk_size_mb,
    env_vars: JSON.parse(row.env_vars) as Record<string, string>,
    ip_address: row.ip_address,
    failure_code: row.failure_code,
    failure_reason: row.failure_reason,
    creation_attempts: row.creation_attempts,
    creation_started_at: row.creation_started_at,
    setup_script_ids: JSON.parse(row.setup_script_ids) as string[],
    service_spec_ids: JSON.parse(row.service_spec_ids) as string[],
    setup_status: row.setup_status ? (JSON.parse(row.setup_status) as Vm['setup_status']) : null,
    ai_mode: null,
    ssh_command: `ssh -p ${ssh.port} ${sshUser(row)}@${ssh.host}`,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}

export class WorkspaceStore {
  constructor(private readonly db: Db) {}

  insert(row: WorkspaceRow) {
    return this.db.insertInto('workspaces').values(row).execute()
  }

  get(id: string) {
    return this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst()
  }

  /** Another user's workspace is simply not found: its existence never leaks. */
  getOwned(userId: string, id: string) {
    return this.db
      .selectFrom('workspaces')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
  }

  listByUser(userId: string) {
    return this.db
      .selectFrom('workspaces')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
  }

  listAll() {
    return this.db.selectFrom('workspaces').selectAll().execute()
  }

  async nameTaken(userId: string, name: string, exceptId?: string) {
    let q = this.db
      .selectFrom('workspaces')
      .select('id')
      .where('user_id', '=', userId)
      .where('name', '=', name)
    if (exceptId) q = q.where('id', '!=', exceptId)
    return (await q.executeTakeFirst()) !== undefined
  }

  /**
   * The only way a workspace changes: applied only if nobody changed it since `expected.version`
   * was read. Returns the new row; a stale writer gets StaleVersionError and changes nothing.
   */
  async transition(expected: WorkspaceRow, patch: WorkspacePatch): Promise<WorkspaceRow> {
    const updated_at = nowIso()
    const res = await this.db
      .updateTable('workspaces')
      .set({ ...patch, updated_at, version: expected.version + 1 })
      .where('id', '=', expected.id)
      .where('version', '=', expected.version)
      .executeTakeFirst()
    if (res.numUpdatedRows !== 1n) throw new StaleVersionError(expected.id)
    return { ...expected, ...patch, updated_at, version: expected.version + 1 } as WorkspaceRow
  }

  /** Deletes the row only if it is still at the version the deleter saw. */
  async remove(expected: WorkspaceRow) {
    const res = await this.db
      .deleteFrom('workspaces')
      .where('id', '=', expected.id)
      .where('version', '=', expected.version)
      .executeTakeFirst()
    if (res.numDeletedRows !== 1n) throw new StaleVersionError(expected.id)
  }
}
