import fs from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, Migrator, SqliteDialect } from 'kysely'
import type { Database } from './schema.ts'
import { migrationProvider } from './migrations.ts'

export type Db = Kysely<Database>

/** Opens (creating if needed) the embedded SQLite store and brings its schema up to date. */
export async function openDatabase(dbPath: string): Promise<Db> {
  if (dbPath !== ':memory:') {
    fs.mkdirSync(path.dirname(dbPath), { recursive: true, mode: 0o700 })
    // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
    fs.closeSync(fs.openSync(dbPath, 'a', 0o600))
  }
  const sqlite = new SQLite(dbPath)
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
  })
  const { error, results } = await new Migrator({
    db,
    provider: migrationProvider,
  }).migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error || failed) {
    await db.destroy()
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`)
  }
  return db
}

/**
 * Kysely prepares every statement anew; preparing was the largest cost of a simple request.
 * Queries are built from a fixed set of shapes (values are bound), so a bounded cache by SQL
 * text serves them all. Safe because Kysely never streams (iterates) a statement here.
 */
function withStatementCache(sqlite: SQLite.Database) {
  const cache = new Map<string, SQLite.Statement>()
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql)
      if (!stmt) {
        stmt = sqlite.prepare(sql)
        if (cache.size < 1000) cache.set(sql, stmt)
      }
      return stmt
    },
  }
}
