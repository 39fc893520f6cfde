import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { run } from './exec.ts'
import type { KernelFiles } from './kernel.ts'

/** Drivers the guest needs before its root is mounted (the cloud kernel builds them as modules). */
export const INITRD_MODULES = [
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'virtio_console',
  'virtio_rng',
  'ext4',
]

/**
 * /init of the initramfs. Kept dumb on purpose: load modules, wait for the disk, mount, hand over.
 * Any failure prints what it saw and powers the VM off, so the driver sees an exit and a serial log
 * instead of a VM hanging; `rigbox.debug` on the kernel command line drops to a shell instead.
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin:/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

root=/dev/vda
init=/sbin/init
mode=rw
flags=
debug=
workspace=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="\${arg#root=}" ;;
    init=*) init="\${arg#init=}" ;;
    rootflags=*) flags=",\${arg#rootflags=}" ;;
    ro) mode=ro ;;
    rw) mode=rw ;;
    rigbox.debug) debug=1 ;;
    rigbox.workspace=*) workspace="\${arg#rigbox.workspace=}" ;;
  esac
done

log() { echo "rigbox-initrd: $*"; }

fail() {
  log "ERROR: $*"
  log "kernel command line: $(cat /proc/cmdline)"
  log "block devices: $(ls /sys/class/block 2>/dev/null | tr '\\n' ' ')"
  log "virtio devices: $(ls /sys/bus/virtio/devices 2>/dev/null | tr '\\n' ' ')"
  log "loaded modules: $(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')"
  if [ -n "$debug" ]; then
    log "rigbox.debug is set: starting a shell"
    exec sh
  fi
  log "powering off"
  sleep 1
  poweroff -f
  echo o > /proc/sysrq-trigger
  sleep 30
}

while read -r mod; do
  [ -n "$mod" ] || continue
  insmod "/lib/modules/$mod.ko" || log "warning: cannot load module $mod"
done < /etc/rigbox-modules

# virtio-mmio devices come from microvm's ACPI tables as soon as virtio_mmio loads, and devtmpfs
# creates the node without udev; TCG is slow, so allow 30 s.
tries=0
while [ ! -b "$root" ]; do
  tries=$((tries + 1))
  [ "$tries" -le 150 ] || fail "root device $root did not appear within 30 s (is a virtio-blk-device attached?)"
  sleep 0.2
done

mount -t ext4 -o "$mode$flags" "$root" /newroot || fail "cannot mount $root (ext4, $mode$flags)"
if [ ! -e "/newroot$init" ] && [ ! -L "/newroot$init" ]; then
  fail "$init not found on $root"
fi

# A disk seeded from another workspace's snapshot (a fork) carries that workspace's machine-id and
# SSH host keys. On its first boot under a new workspace they are cleared: systemd then makes a new
# machine-id and rigbox-firstboot new host keys, as on any first boot.
if [ -n "$workspace" ] && [ "$mode" = rw ]; then
  owner=$(cat /newroot/etc/rigbox/disk-owner 2>/dev/null)
  if [ "$owner" != "$workspace" ]; then
    if [ -n "$owner" ]; then
      log "disk of $owner booted as $workspace: new machine-id and SSH host keys"
      : > /newroot/etc/machine-id
      rm -f /newroot/etc/ssh/ssh_host_* /newroot/var/lib/dbus/machine-id
    fi
    mkdir -p /newroot/etc/rigbox
    echo "$workspace" > /newroot/etc/rigbox/disk-owner
    sync
  fi
fi

log "root $root mounted ($mode), starting $init"
mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
exec switch_root /newroot "$init" "$@"
`

interface ModuleLine {
  name: string
  file: string
}

/** Modules to insmod, dependencies first, via `modprobe --show-depends` on the cached tree. */
export async function resolveModules(kernel: KernelFiles, wanted: string[]): Promise<ModuleLine[]> {
  // modprobe lists virtio before virtio_ring although virtio_ring must be loaded first.
  const ordered: ModuleLine[] = []
  const seen = new Set<string>()
  const add = (file: string) => {
    const name = path.basename(file, '.ko')
    if (seen.has(name)) return
    seen.add(name)
    ordered.push({ name, file })
  }
  const lines: string[] = []
  for (const mod of wanted) {
    const out = await run('modprobe', [
      '-d',
      kernel.dir,
      '-S',
      kernel.release,
      '--show-depends',
      mod,
    ])
    lines.push(...out.stdout.split('\n'))
  }
  const files = lines
    .map((l) => /^insmod (\S+\.ko)/.exec(l.trim())?.[1])
    .filter((f): f is string => f !== undefined)
  for (const first of ['virtio_ring', 'virtio']) {
    const file = files.find((f) => path.basename(f, '.ko') === first)
    if (file) add(file)
  }
  for (const file of files) add(file)
  return ordered
}

/**
 * Build initrd.img: static busybox, the modules above and INIT_SCRIPT, as a gzip'd newc cpio.
 */
export async function buildInitrd(
  kernel: KernelFiles,
  busybox: string,
  out: string,
  workDir: string,
): Promise<string[]> {
  const stage = await mkdtemp(path.join(workDir, 'initrd-'))
  try {
    for (const d of ['bin', 'sbin', 'dev', 'etc', 'proc', 'sys', 'newroot', 'lib/modules']) {
      await mkdir(path.join(stage, d), { recursive: true })
    }
    await copyFile(busybox, path.join(stage, 'bin', 'busybox'))
    await chmod(path.join(stage, 'bin', 'busybox'), 0o755)
    await symlink('busybox', path.join(stage, 'bin', 'sh'))
    // The kernel opens /dev/console for /init before anything is mounted.
    await run('mknod', ['-m', '600', path.join(stage, 'dev', 'console'), 'c', '5', '1'])

    const modules = await resolveModules(kernel, INITRD_MODULES)
    for (const m of modules) {
      await copyFile(m.file, path.join(stage, 'lib', 'modules', `${m.name}.ko`))
    }
    await writeFile(
      path.join(stage, 'etc', 'rigbox-modules'),
      modules.map((m) => m.name).join('\n') + '\n',
    )
    await writeFile(path.join(stage, 'init'), INIT_SCRIPT, { mode: 0o755 })

    await run('sh', [
      '-c',
      'cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 --reproducible --quiet | gzip -9 -n > "$2"',
      'sh',
      stage,
      out,
    ])
    return modules.map((m) => m.name)
  } finally {
    await rm(stage, { recursive: true, force: true })
  }
}
