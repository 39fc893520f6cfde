import type { Selectable, Updateable } from 'kysely'
import type { Db } from '../db/database.ts'
import type { AppsTable } from '../db/schema.ts'
import { nowIso } from '../lib/ids.ts'

export type AppRow = Selectable<AppsTable>

export class AppStore {
  constructor(private readonly db: Db) {}

  insert(row: AppRow) {
    return this.db.insertInto('apps').values(row).execute()
  }

  /** Another user's app is simply not found. */
  getOwned(userId: string, id: string) {
    return this.db
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
  }

  bySubdomain(subdomain: string) {
    return this.db
      .selectFrom('apps')
      .selectAll()
      .where('subdomain', '=', subdomain)
      .executeTakeFirst()
  }

  listByUser(userId: string) {
    return this.db
      .selectFrom('apps')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute()
  }

  listByWorkspace(workspaceId: string) {
    return this.db
      .selectFrom('apps')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('created_at')
      .execute()
  }

  async update(id: string, patch: Omit<Updateable<AppsTable>, 'id' | 'user_id'>): Promise<AppRow> {
    return this.db
      .updateTable('apps')
      .set({ ...patch, updated_at: nowIso() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow()
  }

  async remove(id: string) {
    await this.db.deleteFrom('apps').where('id', '=', id).execute()
  }
}
