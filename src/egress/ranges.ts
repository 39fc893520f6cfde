import {
  canonicalIp,
  formatIp,
  inCidr,
  ipBytes,
  parseCidr,
  type Cidr,
  type IpBytes,
} from './address.ts'

/**
 * What kind of address a workspace is trying to reach. `public` is the only kind reached without
 * an explicit allow entry. The host-local kinds reach the node itself (its loopback, its other
 * addresses, 0.0.0.0 which Linux routes to loopback) or its cloud's metadata service: with them
 * one tenant could talk to the control plane or to another tenant's forwarded ports.
 */
export type AddressKind =
  | 'public'
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'node'
  | 'multicast'
  | 'broadcast'
  | 'private'
  | 'shared'
  | 'reserved'

export const HOST_LOCAL: ReadonlySet<AddressKind> = new Set([
  'loopback',
  'unspecified',
  'link-local',
  'node',
  'multicast',
  'broadcast',
])

export const KIND_LABEL: Record<AddressKind, string> = {
  public: 'public address',
  loopback: 'loopback address',
  unspecified: 'unspecified address',
  'link-local': 'link-local address (incl. cloud metadata)',
  node: "one of this node's own addresses",
  multicast: 'multicast address',
  broadcast: 'broadcast address',
  private: 'private address',
  shared: 'carrier-grade NAT address',
  reserved: 'reserved address',
}

// IANA's special-purpose registries, most specific first where ranges nest.
const TABLE: [string, AddressKind][] = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'],
  ['100::/64', 'reserved'],
  ['2001::/23', 'reserved'],
  ['2001:db8::/32', 'reserved'],
  ['3fff::/20', 'reserved'],
  ['fc00::/7', 'private'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'],
  ['ff00::/8', 'multicast'],
]

const RANGES: [Cidr, AddressKind][] = TABLE.map(([text, kind]) => [parseCidr(text) as Cidr, kind])
const GLOBAL_UNICAST_V6 = parseCidr('2000::/3') as Cidr
const NAT64 = parseCidr('64:ff9b::/96') as Cidr
const SIX_TO_FOUR = parseCidr('2002::/16') as Cidr

function kindOfBytes(b: IpBytes): AddressKind {
  for (const [cidr, kind] of RANGES) if (inCidr(b, cidr)) return kind
  if (b.length === 4) return 'public'
  // IPv6 that carries an IPv4 address is judged by that address (NAT64 and 6to4 gateways
  // would deliver to it).
  if (inCidr(b, NAT64)) return kindOfBytes(b.slice(12))
  if (inCidr(b, SIX_TO_FOUR)) return kindOfBytes(b.slice(2, 6))
  // Outside 2000::/3 nothing is allocated for global unicast.
  return inCidr(b, GLOBAL_UNICAST_V6) ? 'public' : 'reserved'
}

/** The kind of an IP; `node` for one of `nodeAddresses` (canonical forms). */
export function classify(ip: string, nodeAddresses: ReadonlySet<string>): AddressKind {
  const b = ipBytes(ip)
  if (!b) return 'reserved'
  const kind = kindOfBytes(b)
  // A node address in a private range must still be host-local: an allow entry for the range
  // must not open the node itself. Loopback and the like keep their more telling label.
  return nodeAddresses.has(formatIp(b)) && !HOST_LOCAL.has(kind) ? 'node' : kind
}

/** Canonical forms of addresses (e.g. from `os.networkInterfaces()`), skipping unparsable ones. */
export function canonicalSet(addresses: Iterable<string>): Set<string> {
  const out = new Set<string>()
  for (const a of addresses) {
    const c = canonicalIp(a.split('%')[0])
    if (c) out.add(c)
  }
  return out
}
