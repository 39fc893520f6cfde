import type { Db } from '../db/database.ts'
import type { SnapshotsTable } from '../db/schema.ts'

export type SnapshotRow = SnapshotsTable

/** Snapshot rows. Only `ready` ones exist for the API; `creating` ones are work in progress. */
export class SnapshotStore {
  constructor(private readonly db: Db) {}

  insert(row: SnapshotRow) {
    return this.db.insertInto('snapshots').values(row).execute()
  }

  markReady(id: string, sizeBytes: number) {
    return this.db
      .updateTable('snapshots')
      .set({ state: 'ready', size_bytes: sizeBytes })
      .where('id', '=', id)
      .execute()
  }

  getOwned(userId: string, id: string) {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .where('state', '=', 'ready')
      .executeTakeFirst()
  }

  listByUser(userId: string) {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('user_id', '=', userId)
      .where('state', '=', 'ready')
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute()
  }

  listByWorkspace(workspaceId: string) {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('state', '=', 'ready')
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute()
  }

  /** Every row, `creating` ones included: limits count them, recovery cleans them. */
  listAll(workspaceId?: string) {
    let q = this.db.selectFrom('snapshots').selectAll()
    if (workspaceId) q = q.where('workspace_id', '=', workspaceId)
    return q.execute()
  }

  async remove(id: string) {
    await this.db.deleteFrom('snapshots').where('id', '=', id).execute()
  }
}
