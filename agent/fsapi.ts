// Files API: /v1/files (GET, PUT, DELETE), /v1/files/list, /v1/files/mkdir.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { AgentOptions } from './options.ts'
import { DEFAULT_READ_MAX } from './protocol.ts'
import {
  badRequest,
  HttpError,
  isObject,
  readJson,
  reqString,
  sendJson,
  type Ctx,
} from './router.ts'
import { lookupGroup, lookupUser } from './users.ts'

const MAX_LIST = 10_000
const WRITE_BATCH = 1 << 20

function absPath(v: string | null | undefined): string {
  if (!v || v.includes('\0')) throw badRequest('path is required')
  if (!v.startsWith('/')) throw badRequest('path must be absolute')
  return path.resolve(v)
}

/** New files under the developer's home belong to developer (default), elsewhere to root. */
function defaultOwner(o: AgentOptions, p: string): { uid: number; gid: number } | null {
  const dev = lookupUser(o.developerUser)
  const home = o.developerHome
  if (dev && (p === home || p.startsWith(home + '/'))) return { uid: dev.uid, gid: dev.gid }
  return null
}

function parseOwner(spec: string): { uid: number; gid: number } {
  const [u, g] = spec.split(':', 2)
  const user = /^\d+$/.test(u) ? null : lookupUser(u)
  const uid = /^\d+$/.test(u) ? Number(u) : user?.uid
  if (uid === undefined) throw badRequest(`unknown user ${u}`)
  let gid = user?.gid ?? uid
  if (g !== undefined && g !== '') {
    const found = /^\d+$/.test(g) ? Number(g) : lookupGroup(g)
    if (found === null) throw badRequest(`unknown group ${g}`)
    gid = found
  }
  return { uid, gid }
}

function parseMode(v: string | null): number | undefined {
  if (v === null || v === '') return undefined
  if (!/^0?[0-7]{3,4}$/.test(v)) throw badRequest('mode must be octal, e.g. 0644')
  return parseInt(v, 8)
}

/**
 * Below this size a file is read whole before answering: procfs files say 0 bytes and sysfs ones
 * 4096 whatever they hold, so only what a read returns tells their length.
 */
const READ_WHOLE_BELOW = 1 << 20

function parseMax(v: string | null): number {
  if (v === null || v === '') return DEFAULT_READ_MAX
  if (!/^\d{1,15}$/.test(v)) throw badRequest('max must be a byte count')
  return Number(v)
}

export async function handleRead(ctx: Ctx): Promise<void> {
  const p = absPath(ctx.query.get('path'))
  const max = parseMax(ctx.query.get('max'))
  // Checked before opening: opening a FIFO would wait for a writer, a device may act on open.
  checkReadable(p, await fs.promises.stat(p), max)
  const fh = await fs.promises.open(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  try {
    const st = await fh.stat()
    checkReadable(p, st, max)
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0')
    if (st.size < READ_WHOLE_BELOW) {
      const data = await readUpTo(fh, max + 1)
      if (data.length > max) throw tooLarge(p, max)
      ctx.stream.respond({
        ':status': 200,
        'content-type': 'application/octet-stream',
        'content-length': data.length,
        'x-file-mode': mode,
      })
      ctx.stream.end(data)
      return
    }
    ctx.stream.respond({
      ':status': 200,
      'content-type': 'application/octet-stream',
      'content-length': st.size,
      'x-file-mode': mode,
    })
    await sendFile(fh, ctx.stream, st.size)
  } catch (e) {
    if (ctx.stream.headersSent) {
      if (!ctx.stream.destroyed) ctx.stream.destroy()
      return
    }
    throw e
  } finally {
    await fh.close()
  }
}

function checkReadable(p: string, st: fs.Stats, max: number): void {
  if (st.isDirectory()) throw new HttpError(400, 'IS_A_DIRECTORY', `${p} is a directory`)
  if (!st.isFile()) throw new HttpError(400, 'NOT_A_FILE', `${p} is not a regular file`)
  if (st.size > max) throw tooLarge(p, max, st.size)
}

function tooLarge(p: string, max: number, size?: number): HttpError {
  const is = size === undefined ? 'is larger than' : `is ${size} bytes, over`
  return new HttpError(413, 'TOO_LARGE', `${p} ${is} the limit of ${max} bytes`)
}

/** Reads until EOF or `limit` bytes, whichever comes first. */
async function readUpTo(fh: fs.promises.FileHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  while (total < limit) {
    const buf = Buffer.allocUnsafe(Math.min(64 * 1024, limit - total))
    const { bytesRead } = await fh.read(buf, 0, buf.length, null)
    if (bytesRead === 0) break
    chunks.push(buf.subarray(0, bytesRead))
    total += bytesRead
  }
  return Buffer.concat(chunks)
}

/**
 * Copies the file's first `size` bytes (its announced length) to the stream with backpressure.
 * A file that shrank meanwhile resets the stream (the host must not take it as complete); one
 * that grew is cut at `size`. Stops when the stream dies (session reset).
 */
async function sendFile(
  fh: fs.promises.FileHandle,
  stream: Ctx['stream'],
  size: number,
): Promise<void> {
  const closed = new Promise<void>((resolve) => stream.once('close', resolve))
  let left = size
  while (left > 0) {
    if (stream.destroyed) throw new Error('stream closed')
    const buf = Buffer.allocUnsafe(Math.min(64 * 1024, left))
    const { bytesRead } = await fh.read(buf, 0, buf.length, null)
    if (bytesRead === 0) throw new Error('file shrank while it was read')
    left -= bytesRead
    if (!stream.write(buf.subarray(0, bytesRead))) {
      await Promise.race([new Promise((r) => stream.once('drain', r)), closed])
    }
  }
  stream.end()
}

export async function handleWrite(o: AgentOptions, ctx: Ctx): Promise<void> {
  const p = absPath(ctx.query.get('path'))
  const mode = parseMode(ctx.query.get('mode'))
  const ownerSpec = ctx.query.get('owner')
  const dir = path.dirname(p)
  if (ctx.query.get('mkdirs') === '1') await mkdirOwned(o, dir, true)
  const existing = await fs.promises.stat(p).catch(() => null)
  if (existing?.isDirectory()) throw new HttpError(400, 'IS_A_DIRECTORY', `${p} is a directory`)
  const owner = ownerSpec
    ? parseOwner(ownerSpec)
    : existing
      ? { uid: existing.uid, gid: existing.gid }
      : defaultOwner(o, p)
  const finalMode = mode ?? (existing ? existing.mode & 0o7777 : 0o644)
  // Write beside the target and rename: readers never see a half-written file.
  // A short name of our own: the target's name may already be at the 255-byte limit.
  const tmp = path.join(dir, `.rigbox-${randomBytes(6).toString('hex')}.tmp`)
  const fh = await fs.promises.open(tmp, 'wx', 0o600)
  try {
    // HTTP/2 delivers ≤16 KiB frames; batching them saves many syscalls on a slow (TCG) vCPU.
    let batch: Buffer[] = []
    let batched = 0
    for await (const chunk of ctx.stream) {
      batch.push(chunk as Buffer)
      batched += (chunk as Buffer).length
      if (batched >= WRITE_BATCH) {
        await fh.writev(batch)
        batch = []
        batched = 0
      }
    }
    if (batched) await fh.writev(batch)
    if (owner) await fh.chown(owner.uid, owner.gid)
    await fh.chmod(finalMode)
    await fh.sync()
    await fh.close()
    await fs.promises.rename(tmp, p)
  } catch (e) {
    await fh.close().catch(() => {})
    await fs.promises.rm(tmp, { force: true })
    throw e
  }
  const st = await fs.promises.stat(p)
  sendJson(ctx.stream, 200, { path: p, size: st.size })
}

export async function handleList(ctx: Ctx): Promise<void> {
  const p = absPath(ctx.query.get('path'))
  const dir = await fs.promises.opendir(p)
  const out: Array<Record<string, unknown>> = []
  let truncated = false
  for await (const d of dir) {
    if (out.length >= MAX_LIST) {
      truncated = true
      break
    }
    const st = await fs.promises.lstat(path.join(p, d.name)).catch(() => null)
    if (!st) continue
    out.push({
      name: d.name,
      type: st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : 'other',
      size: st.size,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      mtime: st.mtime.toISOString(),
    })
  }
  if (truncated) await dir.close().catch(() => {})
  out.sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1))
  ctx.stream.respond({
    ':status': 200,
    'content-type': 'application/json',
    ...(truncated ? { 'x-truncated': '1' } : {}),
  })
  ctx.stream.end(JSON.stringify(out))
}

/** mkdir giving new directories the default owner (developer under its home). */
async function mkdirOwned(o: AgentOptions, p: string, parents: boolean): Promise<void> {
  const first = await fs.promises.mkdir(p, { recursive: parents, mode: 0o755 })
  // With recursive, mkdir returns the first directory it created (undefined if none).
  const created = parents ? first : p
  if (!created) return
  const owner = defaultOwner(o, p)
  if (!owner) return
  let d = p
  for (;;) {
    await fs.promises.chown(d, owner.uid, owner.gid)
    if (d === created || d === path.dirname(d)) break
    d = path.dirname(d)
  }
}

export async function handleMkdir(o: AgentOptions, ctx: Ctx): Promise<void> {
  const body = await readJson(ctx.stream)
  if (!isObject(body)) throw badRequest('body must be an object')
  const p = absPath(reqString(body, 'path'))
  await mkdirOwned(o, p, body.parents === true)
  sendJson(ctx.stream, 200, { path: p })
}

export async function handleDelete(ctx: Ctx): Promise<void> {
  const p = absPath(ctx.query.get('path'))
  if (p === '/') throw badRequest('refusing to delete /')
  const st = await fs.promises.lstat(p)
  if (st.isDirectory()) {
    if (ctx.query.get('recursive') === '1') await fs.promises.rm(p, { recursive: true })
    else await fs.promises.rmdir(p)
  } else {
    await fs.promises.unlink(p)
  }
  sendJson(ctx.stream, 200, { path: p, deleted: true })
}
