import type { Selectable } from 'kysely'
import type { Db } from '../db/database.ts'
import type { SshKeysTable } from '../db/schema.ts'

export type SshKeyRow = Selectable<SshKeysTable>

export class SshKeyStore {
  constructor(private readonly db: Db) {}

  insert(row: SshKeyRow) {
    return this.db.insertInto('ssh_keys').values(row).execute()
  }

  listByUser(userId: string) {
    return this.db
      .selectFrom('ssh_keys')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute()
  }

  async remove(userId: string, id: string): Promise<boolean> {
    const res = await this.db
      .deleteFrom('ssh_keys')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst()
    return res.numDeletedRows > 0n
  }
}
