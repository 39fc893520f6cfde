import type { Selectable, Updateable } from 'kysely'
import type { Db } from '../db/database.ts'
import type { ServiceSpecsTable, SetupScriptsTable } from '../db/schema.ts'
import { nowIso } from '../lib/ids.ts'
import type { SetupStatus } from './types.ts'

export type SetupScriptRow = Selectable<SetupScriptsTable>
export type ServiceSpecRow = Selectable<ServiceSpecsTable>

type ScriptPatch = Omit<Updateable<SetupScriptsTable>, 'id' | 'user_id' | 'created_at'>
type SpecPatch = Omit<Updateable<ServiceSpecsTable>, 'id' | 'user_id' | 'created_at'>

/** A user's setup scripts and service specs; another user's rows are simply not found. */
export class AutomationStore {
  constructor(private readonly db: Db) {}

  insertScript(row: SetupScriptRow) {
    return this.db.insertInto('setup_scripts').values(row).execute()
  }

  listScripts(userId: string) {
    return this.db
      .selectFrom('setup_scripts')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('script_order')
      .orderBy('name')
      .orderBy('id')
      .execute()
  }

  getScript(userId: string, id: string) {
    return this.db
      .selectFrom('setup_scripts')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
  }

  /** The user's scripts among `ids` (deleted or foreign ones are left out). */
  async scriptsByIds(userId: string, ids: string[]) {
    if (!ids.length) return []
    return this.db
      .selectFrom('setup_scripts')
      .selectAll()
      .where('user_id', '=', userId)
      .where('id', 'in', ids)
      .execute()
  }

  updateScript(id: string, patch: ScriptPatch) {
    return this.db
      .updateTable('setup_scripts')
      .set({ ...patch, updated_at: nowIso() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow()
  }

  async deleteScript(userId: string, id: string) {
    const res = await this.db
      .deleteFrom('setup_scripts')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
    return res.numDeletedRows === 1n
  }

  insertSpec(row: ServiceSpecRow) {
    return this.db.insertInto('service_specs').values(row).execute()
  }

  listSpecs(userId: string) {
    return this.db
      .selectFrom('service_specs')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('name')
      .execute()
  }

  getSpec(userId: string, id: string) {
    return this.db
      .selectFrom('service_specs')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
  }

  async specsByIds(userId: string, ids: string[]) {
    if (!ids.length) return []
    return this.db
      .selectFrom('service_specs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('id', 'in', ids)
      .execute()
  }

  async specNameTaken(userId: string, name: string, exceptId?: string) {
    let q = this.db
      .selectFrom('service_specs')
      .select('id')
      .where('user_id', '=', userId)
      .where('name', '=', name)
    if (exceptId) q = q.where('id', '!=', exceptId)
    return (await q.executeTakeFirst()) !== undefined
  }

  updateSpec(id: string, patch: SpecPatch) {
    return this.db
      .updateTable('service_specs')
      .set({ ...patch, updated_at: nowIso() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow()
  }

  async deleteSpec(userId: string, id: string) {
    const res = await this.db
      .deleteFrom('service_specs')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
    return res.numDeletedRows === 1n
  }

  /**
   * Only this column: the setup status is a report, not a state change, so it neither bumps the
   * workspace's version nor competes with the reconciler's fenced transitions.
   */
  async setSetupStatus(workspaceId: string, status: SetupStatus) {
    await this.db
      .updateTable('workspaces')
      .set({ setup_status: JSON.stringify(status) })
      .where('id', '=', workspaceId)
      .execute()
  }
}
