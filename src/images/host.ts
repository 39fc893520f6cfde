import { readdir, readFile, statfs } from 'node:fs/promises'
import path from 'node:path'
import { run, which } from './exec.ts'
import { hasElfInterpreter } from './kernel.ts'
import { isStale } from './lock.ts'

/** Host commands the build runs, with the Debian package that provides each. */
const REQUIRED_TOOLS: [string, string][] = [
  ['mmdebstrap', 'mmdebstrap'],
  ['apt-get', 'apt'],
  ['apt-cache', 'apt'],
  ['dpkg', 'dpkg'],
  ['lz4', 'lz4'],
  ['depmod', 'kmod'],
  ['modprobe', 'kmod'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['busybox', 'busybox-static'],
  ['cpio', 'cpio'],
  ['gzip', 'gzip'],
  ['tar', 'tar'],
  ['chroot', 'coreutils'],
  ['mknod', 'coreutils'],
  ['npm', 'npm (it comes with Node.js)'],
]

/** Free space a build needs in the image dir (staging tree + image + caches), for `base`. */
const MIN_FREE_BYTES = 4 * 1024 ** 3

/**
 * Fail early, naming what to install, rather than half-way through a build. Returns the path of
 * a static busybox for the initrd.
 */
export async function checkBuildHost(imageDir: string): Promise<{ busybox: string }> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'building a guest image needs root (mmdebstrap --mode=root, chroot, device nodes): run it as root',
    )
  }
  const missing: string[] = []
  const found = new Map<string, string>()
  for (const [cmd, pkg] of REQUIRED_TOOLS) {
    const p = await which(cmd)
    if (p) found.set(cmd, p)
    else missing.push(`${cmd} (apt-get install ${pkg})`)
  }
  if (missing.length > 0) {
    throw new Error(`missing host tools for the image build: ${missing.join(', ')}`)
  }
  const busybox = found.get('busybox')!
  if (await hasElfInterpreter(busybox)) {
    throw new Error(
      `${busybox} is dynamically linked; the initrd needs busybox-static (apt-get install busybox-static)`,
    )
  }
  const fs = await statfs(imageDir)
  const free = fs.bavail * fs.bsize
  if (free < MIN_FREE_BYTES) {
    throw new Error(
      `not enough free space in ${imageDir}: ${(free / 1024 ** 3).toFixed(1)} GiB free, the build needs ${MIN_FREE_BYTES / 1024 ** 3} GiB`,
    )
  }
  return { busybox }
}

/** Mount points at or below `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  const prefix = path.resolve(dir)
  return text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mp): mp is string => mp !== undefined)
    .map((mp) =>
      mp.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))),
    )
    .filter((mp) => mp === prefix || mp.startsWith(prefix + '/'))
    .sort((a, b) => b.length - a.length)
}

/**
 * Remove a build dir. An mmdebstrap killed mid-run leaves proc/sys/dev mounted inside its target:
 * unmount those first and never cross into another filesystem, or rm would walk into the host's.
 */
export async function removeBuildDir(dir: string): Promise<void> {
  for (const mp of await mountsUnder(dir)) {
    await run('umount', ['-l', mp]).catch(() => {})
  }
  await run('rm', ['-rf', '--one-file-system', dir])
}

/** Remove `.tmp-<pid>-…` entries whose builder is gone (crashed or killed builds). */
export async function removeStaleTemps(dir: string): Promise<void> {
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const pid = Number(/^\.tmp-(\d+)-/.exec(entry)?.[1])
    if (pid && isStale(pid)) await removeBuildDir(path.join(dir, entry))
  }
}
