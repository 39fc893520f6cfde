import { createReadStream, createWriteStream } from 'node:fs'
import { chown, rm, stat } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { commitPartial, PARTIAL } from '../lib/durable.ts'
import { JAIL_VM_DIR } from './jail.ts'
import { recordFile, recordMachine } from './memory-compat.ts'
import { sleep } from './proc.ts'
import type { QmpClient } from './qmp.ts'

export { checkResumable, MemoryStateMismatch } from './memory-compat.ts'

/** Removes a memory state and the record of the machine it was saved on. */
export async function discardMemoryState(file: string): Promise<void> {
  await rm(file, { force: true })
  await rm(recordFile(file), { force: true })
}

/**
 * Memory snapshots: QEMU's migration stream (RAM, CPU and device state) written to a file and
 * read back into a fresh QEMU. The jail's seccomp sandbox denies spawning, so `exec:` migration
 * would kill QEMU, and Node cannot pass a descriptor over QMP (`getfd` needs SCM_RIGHTS): the
 * stream goes through a unix socket in the VM's directory instead — QEMU connects to ours to save,
 * and listens on one we connect to for a restore. The file lives in the root-only `host/` dir,
 * where the jailed QEMU cannot reach it.
 */

interface MigrateInfo {
  status?: string
  'error-desc'?: string
}

const SAVE_SOCKET = 'migrate-out.sock'
const LOAD_SOCKET = 'migrate-in.sock'

/** Polls `query-migrate` until it completes (or fails, which throws). */
async function untilMigrated(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await qmp.execute<MigrateInfo>('query-migrate')
    if (info.status === 'completed') return
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new Error(`migration ${info.status}: ${info['error-desc'] ?? 'no detail from QEMU'}`)
    }
    if (Date.now() > deadline)
      throw new Error(`migration still ${info.status} after ${timeoutMs} ms`)
    await sleep(20)
  }
}

/**
 * Stops the guest's vCPUs and writes its whole state to `file` (atomically: `.partial`, fsync,
 * rename), with the record of the machine it needs to be loaded (`checkResumable`) beside it.
 * The guest stays paused in QEMU afterwards and its disk is flushed and no longer written, so
 * the caller quits QEMU next; on failure the guest is resumed and the file absent.
 */
export async function saveMemory(
  qmp: QmpClient,
  vmDir: string,
  uid: number,
  file: string,
  pid: number,
  timeoutMs = 300_000,
): Promise<{ bytes: number }> {
  const hostSocket = path.join(vmDir, SAVE_SOCKET)
  const partial = file + PARTIAL
  await rm(hostSocket, { force: true })
  const server = net.createServer()
  let received: Promise<void> | null = null
  server.on('connection', (conn) => {
    // One stream only: a second connection would be something else speaking on the socket.
    if (received) return conn.destroy()
    received = pipeline(conn, createWriteStream(partial, { mode: 0o600 }))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(hostSocket, resolve)
  })
  let wasRunning = false
  try {
    await chown(hostSocket, uid, uid)
    await recordMachine(file, qmp, pid)
    wasRunning = (await qmp.execute<{ running: boolean }>('query-status')).running
    if (wasRunning) await qmp.execute('stop')
    // QEMU's default cap (128 MiB/s) throttles a local file copy for no reason.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 })
    await qmp.execute('migrate', { uri: `unix:${path.join(JAIL_VM_DIR, SAVE_SOCKET)}` })
    await untilMigrated(qmp, timeoutMs)
    if (!received) throw new Error('QEMU reported the migration complete but never connected')
    await received
    await commitPartial(file)
    return { bytes: (await stat(file)).size }
  } catch (err) {
    await rm(partial, { force: true })
    if (wasRunning) await qmp.execute('cont').catch(() => undefined)
    throw err
  } finally {
    server.close()
    await rm(hostSocket, { force: true })
  }
}

/**
 * Feeds `file` into a QEMU started with `-incoming defer -S`; resolves once the state is loaded.
 * The guest is left paused: the caller continues it when the host side is ready for it.
 */
export async function loadMemory(
  qmp: QmpClient,
  vmDir: string,
  file: string,
  timeoutMs = 300_000,
): Promise<void> {
  const hostSocket = path.join(vmDir, LOAD_SOCKET)
  await rm(hostSocket, { force: true })
  await qmp.execute('migrate-incoming', { uri: `unix:${path.join(JAIL_VM_DIR, LOAD_SOCKET)}` })
  try {
    const conn = await connectWithRetry(hostSocket, Date.now() + 10_000)
    await pipeline(createReadStream(file), conn)
    await untilMigrated(qmp, timeoutMs)
  } finally {
    await rm(hostSocket, { force: true })
  }
}

async function connectWithRetry(socketPath: string, deadline: number): Promise<net.Socket> {
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(socketPath)
        s.once('connect', () => resolve(s))
        s.once('error', reject)
      })
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(20)
    }
  }
}
