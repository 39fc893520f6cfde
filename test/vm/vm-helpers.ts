import { execFile } from 'node:child_process'
import { readdirSync, readFileSync, rmdirSync } from 'node:fs'
import { access, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { findImage } from '../../src/images/build.ts'
import type { GuestPortTarget } from '../../src/node/types.ts'
import type { VmImage } from '../../src/vm/types.ts'

/**
 * Helpers for the VM driver's integration tests: the image to boot, readiness checks, and a
 * last-resort cleanup that runs even when the test process is torn down early.
 */

export interface TestImage {
  kind: 'real' | 'busybox'
  image: VmImage
}

const here = path.dirname(fileURLToPath(import.meta.url))

async function canRun(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'needs root (jail uids, cgroups)'
  for (const p of ['/usr/bin/qemu-system-x86_64', '/usr/bin/bwrap', '/usr/bin/setpriv']) {
    if (
      !(await access(p).then(
        () => true,
        () => false,
      ))
    )
      return `${p} is missing`
  }
  if (
    !(await access('/sys/fs/cgroup/memory/cgroup.procs').then(
      () => true,
      () => false,
    ))
  ) {
    return 'no cgroup v1 memory controller'
  }
  return null
}

/**
 * The real guest image when it is built (src/images), otherwise a busybox test image built from
 * Debian's cloud kernel (test/vm/fixtures). Returns a reason string when neither can be had.
 */
export async function testImage(): Promise<TestImage | string> {
  const why = await canRun()
  if (why) return why
  const imageDir = process.env.RIGBOX_IMAGE_DIR ?? path.join(os.homedir(), '.rigbox', 'images')
  // RIGBOX_TEST_IMAGE: one built image directory to boot as is (e.g. built with another agent).
  const real = process.env.RIGBOX_TEST_IMAGE
    ? await imageFromDir(process.env.RIGBOX_TEST_IMAGE)
    : await findImage('base', imageDir).catch(() => null)
  if (real) {
    // show_status makes systemd print "Reached target ..." despite the driver's `quiet`.
    const cmdline = `${real.cmdline} systemd.show_status=1`
    return { kind: 'real', image: { ...real, cmdline } }
  }
  const dir = process.env.RIGBOX_TEST_BUSYBOX_DIR ?? '/tmp/rigbox-test-busybox-image'
  const script = path.join(here, 'fixtures', 'build-busybox-image.sh')
  try {
    await new Promise<void>((resolve, reject) =>
      execFile('sh', [script, dir], { timeout: 300_000 }, (err) => (err ? reject(err) : resolve())),
    )
  } catch (err) {
    return `no guest image: build-busybox-image.sh failed: ${(err as Error).message}`
  }
  const image = {
    kernelPath: path.join(dir, 'vmlinux'),
    initrdPath: path.join(dir, 'initrd.img'),
    rootfsPath: path.join(dir, 'rootfs.img'),
    cmdline: 'panic=-1',
  }
  return { kind: 'busybox', image }
}

async function imageFromDir(dir: string): Promise<VmImage> {
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'))
  return {
    kernelPath: path.join(dir, 'vmlinux'),
    initrdPath: path.join(dir, 'initrd.img'),
    rootfsPath: path.join(dir, 'rootfs.img'),
    cmdline: String(manifest.cmdline),
  }
}

/** Polls the console log until `pattern` shows; returns the elapsed ms. */
export async function waitConsole(file: string, pattern: RegExp, timeoutMs: number) {
  const t0 = Date.now()
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '')
    if (pattern.test(text)) return Date.now() - t0
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`console did not show ${pattern} in ${timeoutMs} ms:\n${text.slice(-2000)}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** First bytes a TCP server on 127.0.0.1:port sends after `request` (e.g. an SSH banner). */
export function readBanner(
  target: GuestPortTarget,
  request = '',
  timeoutMs = 10_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = target.connect()
    let got = ''
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`no answer from ${target.key} (${JSON.stringify(got)})`))
    }, timeoutMs)
    if (request) sock.write(request)
    sock.on('end', () => {
      clearTimeout(timer)
      reject(new Error(`${target.key} closed without a line (${JSON.stringify(got)})`))
    })
    sock.on('data', (b) => {
      got += b.toString()
      if (got.includes('\n')) {
        clearTimeout(timer)
        sock.destroy()
        resolve(got)
      }
    })
    sock.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

/**
 * Synchronous last resort for `process.on('exit')`: SIGKILLs everything in the test's cgroups
 * and removes them, so a test run that dies midway leaves no QEMU behind.
 */
export function killCgroupTreeSync(cgroupRoot: string, parent: string): void {
  const pidsDir = path.join(cgroupRoot, 'pids', parent)
  let ids: string[]
  try {
    ids = readdirSync(pidsDir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
  } catch {
    return
  }
  for (const id of ids) {
    try {
      for (const pid of readFileSync(path.join(pidsDir, id, 'cgroup.procs'), 'utf8').split('\n')) {
        if (pid) process.kill(Number(pid), 'SIGKILL')
      }
    } catch {
      // already gone
    }
  }
  for (const c of ['memory', 'cpu', 'pids']) {
    for (const id of ids) rmdirQuiet(path.join(cgroupRoot, c, parent, id))
    rmdirQuiet(path.join(cgroupRoot, c, parent))
  }
}

function rmdirQuiet(dir: string): void {
  try {
    rmdirSync(dir)
  } catch {
    // busy (a task still exiting) or gone
  }
}

/**
 * How a local user other than root fares opening a unix socket: the error code, or 'connected'.
 * Runs Debian's python3 as `nobody` (the test process's own node may live where nobody can reach).
 */
export function connectAsNobody(socketPath: string): Promise<string> {
  const code = `import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print('connected')
except OSError as e:
    import errno; print(errno.errorcode[e.errno])`
  return new Promise((resolve, reject) => {
    execFile(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '/usr/bin/python3',
        '-c',
        code,
        socketPath,
      ],
      (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
    )
  })
}
