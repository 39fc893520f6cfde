import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { run } from './exec.ts'

export interface KernelPackage {
  /** Versioned package, e.g. linux-image-6.1.0-50-cloud-amd64 */
  name: string
  /** Debian package version, e.g. 6.1.176-1 */
  version: string
  /** `uname -r` of the kernel, e.g. 6.1.0-50-cloud-amd64 */
  release: string
}

export interface KernelFiles extends KernelPackage {
  /** Cache dir holding vmlinux and lib/modules/<release> (with modules.dep). */
  dir: string
  vmlinux: string
  modulesDir: string
}

const LZ4_MAGIC = Buffer.from([0x02, 0x21, 0x4c, 0x18])
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46])

// apt-cache rebuilds its cache from the lists on every call where the package cache is disabled
// (Debian container images do that): ~0.7 s. Remember the answer until the lists change.
let aptMemo: { key: string; pkg: KernelPackage } | null = null

async function aptResolve(metaPackage: string): Promise<KernelPackage | null> {
  const lists = await stat('/var/lib/apt/lists').catch(() => null)
  const key = `${metaPackage} ${lists?.mtimeMs ?? 0}`
  if (aptMemo?.key === key) return aptMemo.pkg
  try {
    // The meta package depends on exactly one versioned kernel: `linux-image-X (= V)`.
    const show = await run('apt-cache', ['show', '--no-all-versions', metaPackage])
    const m = /^Depends:.*?\b(linux-image-[^\s,(]+)\s*\(=\s*([^)\s]+)\)/m.exec(show.stdout)
    if (!m) return null
    const pkg = { name: m[1], version: m[2], release: m[1].replace(/^linux-image-/, '') }
    aptMemo = { key, pkg }
    return pkg
  } catch {
    return null
  }
}

/** Newest kernel already in the cache, for hosts whose apt lists are gone. */
async function cachedKernel(cacheDir: string): Promise<KernelPackage | null> {
  const dirs = await readdir(cacheDir).catch(() => [] as string[])
  const found = dirs
    .map((d) => /^(linux-image-[^_]+)_(.+)$/.exec(d))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => b[2].localeCompare(a[2], undefined, { numeric: true }))[0]
  if (!found) return null
  return { name: found[1], version: found[2], release: found[1].replace(/^linux-image-/, '') }
}

/**
 * Resolve the versioned kernel package behind the meta package through the local apt lists. Runs
 * `apt-get update` once when the lists do not know it yet (a fresh machine).
 */
export async function resolveKernelPackage(
  metaPackage: string,
  cacheDir: string,
  opts: { allowUpdate: boolean },
): Promise<KernelPackage> {
  const found = (await aptResolve(metaPackage)) ?? (await cachedKernel(cacheDir))
  if (found) return found
  if (opts.allowUpdate) {
    await run('apt-get', ['update', '-q'])
    const again = await aptResolve(metaPackage)
    if (again) return again
  }
  throw new Error(
    `cannot resolve ${metaPackage} through apt (run "apt-get update"; the package is in Debian 12 main)`,
  )
}

function parseElfExtent(buf: Buffer): number {
  // ELF64 little endian: the end of the section header table is the file's last byte in a vmlinux.
  if (buf.length < 64 || !buf.subarray(0, 4).equals(ELF_MAGIC)) return -1
  if (buf[4] !== 2 || buf[5] !== 1) return -1
  const phoff = Number(buf.readBigUInt64LE(0x20))
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const phentsize = buf.readUInt16LE(0x36)
  const phnum = buf.readUInt16LE(0x38)
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  let end = Math.max(shoff + shentsize * shnum, phoff + phentsize * phnum)
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize
    if (at + phentsize > buf.length) return -1
    const offset = Number(buf.readBigUInt64LE(at + 0x08))
    const filesz = Number(buf.readBigUInt64LE(at + 0x20))
    end = Math.max(end, offset + filesz)
  }
  return end
}

/** True when `file` is a complete ELF64 (no table or segment points past its end). */
export async function isCompleteElf(file: string): Promise<boolean> {
  const buf = await readFile(file)
  const extent = parseElfExtent(buf)
  return extent > 0 && extent <= buf.length
}

/** True when an ELF file asks for a dynamic loader (PT_INTERP), i.e. is not static. */
export async function hasElfInterpreter(file: string): Promise<boolean> {
  const fh = await open(file, 'r')
  try {
    const head = Buffer.alloc(4096)
    await fh.read(head, 0, head.length, 0)
    const phoff = Number(head.readBigUInt64LE(0x20))
    const phentsize = head.readUInt16LE(0x36)
    const phnum = head.readUInt16LE(0x38)
    const table = Buffer.alloc(phentsize * phnum)
    await fh.read(table, 0, table.length, phoff)
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return true
    return false
  } finally {
    await fh.close()
  }
}

async function lz4Decompress(input: Buffer, out: string): Promise<void> {
  const child = spawn('lz4', ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] })
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', () => resolve())
  })
  // lz4 complains about the bytes trailing the kernel's stream and may stop reading early: both are
  // expected, so stdin errors and the exit code are ignored and the output is checked instead.
  child.stdin.on('error', () => {})
  Readable.from([input]).pipe(child.stdin)
  await pipeline(child.stdout, createWriteStream(out))
  await exited
}

/**
 * Uncompress a bzImage whose payload is LZ4 (Debian's cloud kernel) into the ELF vmlinux that
 * microvm boots under TCG. Tries each occurrence of the LZ4 legacy magic until one yields a whole
 * ELF, like the kernel's scripts/extract-vmlinux.
 */
export async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  const image = await readFile(vmlinuz)
  let at = image.indexOf(LZ4_MAGIC)
  while (at >= 0) {
    await lz4Decompress(image.subarray(at), out)
    if (await isCompleteElf(out)) return
    at = image.indexOf(LZ4_MAGIC, at + 1)
  }
  await rm(out, { force: true })
  throw new Error(`no LZ4-compressed ELF kernel found in ${vmlinuz}`)
}

/**
 * Download the kernel package, uncompress its kernel and index its modules, once per package
 * version: `<cacheDir>/<name>_<version>/{vmlinux,lib/modules/<release>}`. Written to a temp dir and
 * renamed, so concurrent builds and interrupted ones never see a partial kernel.
 */
export async function ensureKernel(
  pkg: KernelPackage,
  cacheDir: string,
  progress: (detail: string) => void,
): Promise<KernelFiles> {
  const dir = path.join(cacheDir, `${pkg.name}_${pkg.version}`)
  const files: KernelFiles = {
    ...pkg,
    dir,
    vmlinux: path.join(dir, 'vmlinux'),
    modulesDir: path.join(dir, 'lib', 'modules', pkg.release),
  }
  if (await stat(files.vmlinux).catch(() => null)) return files

  await mkdir(cacheDir, { recursive: true })
  const tmp = path.join(cacheDir, `.tmp-${process.pid}-${pkg.name}`)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp)
  try {
    progress(`downloading ${pkg.name}=${pkg.version}`)
    // _apt cannot write into a root-only cache dir; download as root instead of warning.
    await run(
      'apt-get',
      ['download', '-q', '-o', 'APT::Sandbox::User=root', `${pkg.name}=${pkg.version}`],
      {
        cwd: tmp,
      },
    )
    const deb = (await readdir(tmp)).find((f) => f.endsWith('.deb'))
    if (!deb) throw new Error(`apt-get download left no .deb for ${pkg.name}`)
    const extracted = path.join(tmp, 'x')
    await run('dpkg', ['-x', path.join(tmp, deb), extracted])
    await rm(path.join(tmp, deb))

    progress('uncompressing the kernel (LZ4) to vmlinux')
    await extractVmlinux(
      path.join(extracted, 'boot', `vmlinuz-${pkg.release}`),
      path.join(extracted, 'vmlinux'),
    )
    // The package ships no modules.dep (its postinst runs depmod): index the modules here.
    await run('depmod', ['-b', extracted, pkg.release])
    await rename(extracted, dir).catch(async (e: NodeJS.ErrnoException) => {
      // Another build finished the same kernel first: use theirs.
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e
    })
    return files
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}
