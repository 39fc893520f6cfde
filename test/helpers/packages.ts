import { lookup } from 'node:dns/promises'

/**
 * Hosts a guest reaches when it installs packages: the npm registry and the Debian mirror the
 * image's apt sources name (src/images/recipe.ts: deb.debian.org for main, updates and security).
 * PyPI is deliberately absent: it is not reachable from this machine at all.
 */
export const PACKAGE_HOSTS = ['registry.npmjs.org', 'deb.debian.org'] as const

/** The host bundle that holds the extra CA this machine's registries present. */
export const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'

/**
 * Settings for a platform whose VMs install packages (spread into `startVmPlatform(env)`):
 * RIGBOX_EGRESS_ALLOW opens the registries' addresses as resolved on the host (they sit in a
 * reserved range here, which the egress policy refuses by default), and RIGBOX_GUEST_CA_CERTS
 * makes every VM trust the host's CA bundle.
 */
export async function packagesEnv(): Promise<Record<string, string>> {
  const addresses = new Set<string>()
  for (const host of PACKAGE_HOSTS) {
    for (const { address } of await lookup(host, { all: true })) addresses.add(address)
  }
  return {
    RIGBOX_EGRESS_ALLOW: [...addresses].join(','),
    RIGBOX_GUEST_CA_CERTS: HOST_CA_BUNDLE,
  }
}
