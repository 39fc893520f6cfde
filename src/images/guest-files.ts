// Files the final image layer writes into the Debian rootfs. Their contents are part of the
// recipe hash, so editing any of them here yields a new image.

export interface LayerFile {
  path: string
  mode: number
  content: string
}

export const GUEST_USER = { name: 'developer', uid: 1000, home: '/home/developer' }

const unit = (lines: string[]) => lines.join('\n') + '\n'

export const LAYER_FILES: LayerFile[] = [
  {
    path: '/etc/sudoers.d/developer',
    mode: 0o440,
    content: `${GUEST_USER.name} ALL=(ALL:ALL) NOPASSWD:ALL\n`,
  },
  // mmdebstrap copies the build host's hostname and resolv.conf into the tree: replace both.
  // The agent sets the workspace's own hostname at run time.
  { path: '/etc/hostname', mode: 0o644, content: 'rigbox\n' },
  {
    path: '/etc/hosts',
    mode: 0o644,
    content: '127.0.0.1\tlocalhost\n127.0.1.1\trigbox\n::1\tlocalhost ip6-localhost ip6-loopback\n',
  },
  // No resolver address baked in: the VM's network is the driver's choice (its DHCP server gives
  // no resolv.conf without systemd-resolved), and under restrict=on outbound traffic goes through
  // the node's HTTP(S) proxy, which resolves names itself. Lookups fail fast instead of timing out.
  {
    path: '/etc/resolv.conf',
    mode: 0o644,
    content:
      "# rigbox: names are resolved by the node's egress proxy (HTTP(S)_PROXY)\noptions timeout:1 attempts:1\n",
  },
  // The initrd mounts the root rw already; fsck pass 0 because a mounted ext4 cannot be checked.
  { path: '/etc/fstab', mode: 0o644, content: '/dev/vda\t/\text4\trw,relatime\t0\t0\n' },
  { path: '/etc/default/locale', mode: 0o644, content: 'LANG=C.UTF-8\n' },
  {
    path: '/etc/systemd/network/20-rigbox-virtio.network',
    mode: 0o644,
    content: unit([
      '[Match]',
      // By type: virtio-mmio NICs get no predictable name (eth0), and matching eth* by name makes
      // networkd warn about it on every boot.
      'Type=ether',
      '',
      '[Network]',
      'DHCP=ipv4',
      'LinkLocalAddressing=no',
      'IPv6AcceptRA=no',
    ]),
  },
  // Default is to wait 2 min for every link; one link with DHCP from QEMU is all there is.
  {
    path: '/etc/systemd/system/systemd-networkd-wait-online.service.d/rigbox.conf',
    mode: 0o644,
    content: unit([
      '[Service]',
      'ExecStart=',
      'ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20',
    ]),
  },
  {
    path: '/etc/systemd/journald.conf.d/rigbox.conf',
    mode: 0o644,
    content: unit(['[Journal]', 'SystemMaxUse=64M', 'ForwardToConsole=no']),
  },
  // Shutdown should be quick: the platform stops VMs, and a hung unit must not hold it 90 s.
  {
    path: '/etc/systemd/system.conf.d/rigbox.conf',
    mode: 0o644,
    content: unit(['[Manager]', 'DefaultTimeoutStopSec=10s']),
  },
  {
    path: '/etc/ssh/sshd_config.d/rigbox.conf',
    mode: 0o644,
    content: unit([
      '# Keys only: the SSH gateway logs in with keys the agent installs.',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin no',
      'UseDNS no',
      'HostKey /etc/ssh/ssh_host_ed25519_key',
      'HostKey /etc/ssh/ssh_host_ecdsa_key',
    ]),
  },
  // Host keys are never baked into the image (every VM would share them): each VM makes its own
  // on its first boot. No RSA key: generating one takes ~16 s under TCG (it held multi-user.target
  // back by that much), and every current SSH client speaks ed25519.
  {
    path: '/usr/lib/rigbox/ssh-host-keys.sh',
    mode: 0o755,
    content: [
      '#!/bin/sh',
      'set -e',
      'for type in ed25519 ecdsa; do',
      '  key=/etc/ssh/ssh_host_${type}_key',
      '  [ -e "$key" ] || ssh-keygen -q -t "$type" -N "" -C "root@rigbox" -f "$key"',
      'done',
      '',
    ].join('\n'),
  },
  {
    path: '/etc/systemd/system/rigbox-firstboot.service',
    mode: 0o644,
    content: unit([
      '[Unit]',
      "Description=Rigbox: generate this VM's SSH host keys",
      'Before=ssh.service',
      'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key',
      '',
      '[Service]',
      'Type=oneshot',
      'RemainAfterExit=yes',
      'ExecStart=/usr/lib/rigbox/ssh-host-keys.sh',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
    ]),
  },
  {
    path: '/etc/systemd/system/ssh.service.d/rigbox.conf',
    mode: 0o644,
    content: unit(['[Unit]', 'Wants=rigbox-firstboot.service', 'After=rigbox-firstboot.service']),
  },
  // The image's filesystem is small; workspaces get their disk grown (qemu-img resize while
  // stopped) and the filesystem follows at the next boot. "Nothing to do" is a fast no-op.
  {
    path: '/etc/systemd/system/rigbox-resize-rootfs.service',
    mode: 0o644,
    content: unit([
      '[Unit]',
      'Description=Rigbox: grow the root filesystem to its disk',
      'ConditionPathIsReadWrite=/',
      '',
      '[Service]',
      'Type=oneshot',
      'RemainAfterExit=yes',
      'ExecStart=/sbin/resize2fs /dev/vda',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
    ]),
  },
]

/** Enabled with `systemctl enable` inside the tree (their [Install] sections say where). */
export const ENABLED_UNITS = [
  'systemd-networkd.service',
  'rigbox-firstboot.service',
  'rigbox-resize-rootfs.service',
  'ssh.service',
]

/**
 * Masked rather than disabled: an empty /etc/machine-id makes systemd treat each VM's first boot as
 * a first boot and apply presets, which could re-enable merely disabled units.
 */
export const MASKED_UNITS = [
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'apt-daily.service',
  'apt-daily-upgrade.service',
  'dpkg-db-backup.timer',
  'man-db.timer',
  'e2scrub_all.timer',
  'e2scrub_reap.service',
  'fstrim.timer',
  'systemd-pstore.service',
  // No display and no device mapper in a microvm: two module loads fewer on the way to multi-user.
  'modprobe@drm.service',
  'modprobe@dm_mod.service',
  // No login on the serial console: it carries the boot log, the agent and SSH give shells.
  'serial-getty@ttyS0.service',
  'getty@tty1.service',
  'console-getty.service',
]
