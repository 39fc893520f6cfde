import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { PARTIAL } from '../lib/durable.ts'
import { diskInfo } from '../vm/disks.ts'
import { currentImageDir, listImages, type ImageInfo } from './build.ts'
import { removeBuildDir } from './host.ts'
import { withLock } from './lock.ts'
import { IMAGE_NAMES, type ImageName } from './recipe.ts'

/**
 * Collects guest images nothing depends on (docs/images.md). A workspace keeps the image its disk
 * was made on (the qcow2 overlay names it as its backing file), and so do its disk snapshots, so
 * an image stays while any of these does: it is the current recipe's; a disk or a snapshot of
 * any installation using this image directory sits on it; a process has it open (a running
 * QEMU, whoever started it). A paused workspace's memory state goes with its disk, which counts.
 * When any of that cannot be told for sure, nothing is removed.
 */

export interface ImageGcOptions {
  imageDir: string
  /** This installation's data dir: registered as a user of `imageDir`, scanned with the others. */
  dataDir: string
  /** Report what would go; remove nothing. */
  dryRun?: boolean
  /** Where the current recipe of an image is built; null when unknown. Default: worked out. */
  currentDir?: (name: ImageName) => Promise<string | null>
  /** A build holds an image's lock: called once while waiting for it. */
  onWait?: (holder: string) => void
}

export interface ImageGcResult {
  removed: { dir: string; bytes: number }[]
  kept: { dir: string; why: string }[]
}

/** `<imageDir>/.users/<key>`: the data dir of each installation that uses the images here. */
const USERS = '.users'

/**
 * Records that `dataDir` keeps disks on images in `imageDir`, so that a collection started by
 * another installation sharing the directory looks at them too.
 */
export async function registerImageUser(imageDir: string, dataDir: string): Promise<void> {
  const dir = path.join(imageDir, USERS)
  await mkdir(imageDir, { recursive: true }) // as a build makes it: the images' own mode is kept
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const abs = path.resolve(dataDir)
  const file = path.join(dir, createHash('sha256').update(abs).digest('hex').slice(0, 16))
  await writeFile(file + PARTIAL, `${abs}\n`, { mode: 0o600 })
  await rename(file + PARTIAL, file)
}

/** Removes the images nothing depends on (see above); holds every build lock meanwhile. */
export async function collectImages(o: ImageGcOptions): Promise<ImageGcResult> {
  const imageDir = path.resolve(o.imageDir)
  if (!(await stat(imageDir).catch(() => null))) return { removed: [], kept: [] }
  await registerImageUser(imageDir, o.dataDir)
  const onWait = o.onWait ?? (() => {})
  // No image is renamed into place, replaced or half-built while this decides.
  const locked = IMAGE_NAMES.reduceRight<() => Promise<ImageGcResult>>(
    (inner, name) => () => withLock(path.join(imageDir, `.lock-${name}`), onWait, inner),
    () => collect(imageDir, o),
  )
  return locked()
}

/**
 * The collection `rigbox serve` runs at start-up: only of an image directory inside its own data
 * dir (the default). A directory set elsewhere may be shared with installations that never
 * registered; there `rig image gc` is run on purpose. Never rejects.
 */
export async function collectOwnImages(
  o: ImageGcOptions,
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void },
): Promise<void> {
  const rel = path.relative(path.resolve(o.dataDir), path.resolve(o.imageDir))
  if (rel.startsWith('..') || path.isAbsolute(rel)) return
  try {
    const { removed, kept } = await collectImages(o)
    if (removed.length) {
      const freed = removed.reduce((n, r) => n + r.bytes, 0)
      log.info(
        { removed: removed.map((r) => r.dir), freed, kept: kept.length },
        'old images removed',
      )
    }
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'image collection skipped')
  }
}

async function collect(imageDir: string, o: ImageGcOptions): Promise<ImageGcResult> {
  const images = await listImages(imageDir)
  if (!images.length) return { removed: [], kept: [] }
  const keep = new Map<string, string>()
  const currentDir = o.currentDir ?? ((name: ImageName) => currentImageDir(name, imageDir))
  for (const name of new Set(images.map((i) => i.name))) {
    const dir = await currentDir(name)
    for (const image of images.filter((i) => i.name === name)) {
      if (dir === null) keep.set(image.dir, `the current ${name} recipe cannot be worked out`)
      else if (image.dir === path.resolve(dir)) keep.set(image.dir, 'the current recipe')
    }
  }
  const byRootfs = new Map<string, ImageInfo>()
  for (const image of images) {
    byRootfs.set(await realpath(image.rootfsPath).catch(() => image.rootfsPath), image)
  }
  for (const dataDir of await users(imageDir, o.dataDir)) {
    for (const disk of await disksOf(dataDir)) {
      for (const base of await basesOf(disk, byRootfs)) {
        const image = byRootfs.get(base)
        if (image && !keep.has(image.dir)) keep.set(image.dir, `${disk} sits on it`)
      }
    }
  }
  const open = await openedBy(images.filter((i) => !keep.has(i.dir)))
  for (const [dir, pid] of open) keep.set(dir, `open by process ${pid}`)

  const result: ImageGcResult = { removed: [], kept: [] }
  for (const image of images) {
    const why = keep.get(image.dir)
    if (why) {
      result.kept.push({ dir: image.dir, why })
      continue
    }
    const bytes = await allocated(image.dir)
    if (!o.dryRun) {
      // Renamed first: a crash mid-removal leaves a `.tmp-<pid>-…` that the next build sweeps,
      // never a directory that still looks like a complete image.
      const doomed = path.join(imageDir, `.tmp-${process.pid}-gc-${path.basename(image.dir)}`)
      await rename(image.dir, doomed)
      await removeBuildDir(doomed)
    }
    result.removed.push({ dir: image.dir, bytes })
  }
  return result
}

/** The data dirs registered in `imageDir`, and ours; a data dir that is gone is dropped. */
async function users(imageDir: string, own: string): Promise<string[]> {
  const dir = path.join(imageDir, USERS)
  const found = new Set([path.resolve(own)])
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (entry.endsWith(PARTIAL)) continue
    const dataDir = (await readFile(path.join(dir, entry), 'utf8').catch(() => '')).trim()
    if (!path.isAbsolute(dataDir)) continue
    if (await stat(dataDir).catch(() => null)) found.add(dataDir)
    else await rm(path.join(dir, entry), { force: true })
  }
  return [...found]
}

/**
 * Every qcow2 of a data dir: each VM's disk and each disk snapshot. Copies in progress
 * (`.partial`) are skipped: each is a copy of one of these, which is looked at.
 */
async function disksOf(dataDir: string): Promise<string[]> {
  const files: string[] = []
  for (const top of ['vms', 'snapshots']) {
    const root = path.join(dataDir, top)
    for (const sub of await list(root)) {
      for (const f of await list(path.join(root, sub))) {
        if (f.endsWith('.qcow2')) files.push(path.join(root, sub, f))
      }
    }
  }
  return files
}

/** Entries of a directory; none when it is missing or not a directory. */
async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw new Error(`cannot tell which images ${dir} depends on: ${(err as Error).message}`)
  }
}

/** The files under `disk` in its backing chain (real paths), down to an image's rootfs. */
async function basesOf(disk: string, images: Map<string, ImageInfo>): Promise<string[]> {
  const chain: string[] = []
  let file = disk
  for (let depth = 0; depth < 16; depth++) {
    let backing: string | null
    try {
      backing = (await diskInfo(file)).backingFile
    } catch (err) {
      if (!(await stat(file).catch(() => null))) return chain // removed meanwhile, or dangling
      throw new Error(`cannot tell which image ${file} depends on: ${(err as Error).message}`)
    }
    if (!backing) return chain
    const abs = path.resolve(path.dirname(file), backing)
    file = await realpath(abs).catch(() => abs)
    chain.push(file)
    if (images.has(file)) return chain
  }
  return chain
}

/** Images among `images` that a process holds open (by inode: jails see other paths). */
async function openedBy(images: ImageInfo[]): Promise<Map<string, number>> {
  const inodes = new Map<string, string>()
  for (const image of images) {
    for (const f of [image.rootfsPath, image.kernelPath, image.initrdPath]) {
      const st = await stat(f).catch(() => null)
      if (st) inodes.set(`${st.dev}:${st.ino}`, image.dir)
    }
  }
  const found = new Map<string, number>()
  if (!inodes.size) return found
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const st = await stat(`/proc/${pid}/fd/${fd}`).catch(() => null)
      const dir = st && inodes.get(`${st.dev}:${st.ino}`)
      if (dir && !found.has(dir)) found.set(dir, Number(pid))
    }
  }
  return found
}

/** Bytes an image directory occupies on the host. */
async function allocated(dir: string): Promise<number> {
  let bytes = 0
  for (const f of await readdir(dir)) {
    const st = await stat(path.join(dir, f)).catch(() => null)
    if (st) bytes += st.blocks * 512
  }
  return bytes
}
