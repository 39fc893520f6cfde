import { formatCidr, inCidr, ipBytes, parseCidr, type Cidr } from './address.ts'

/**
 * The operator's egress allow list (RIGBOX_EGRESS_ALLOW): addresses and CIDRs every workspace may
 * reach, even in private or reserved ranges, e.g. a company's package mirror or proxy. It is a
 * permission added beside each workspace's own policy, never part of it, so it neither turns an
 * empty workspace allow list into a restriction nor shows up in the workspace's policy.
 *
 * Only IP addresses and CIDRs: a name would be re-resolved per request, and whoever runs its DNS
 * could then point every workspace anywhere inside.
 */
export interface OperatorEntry {
  text: string
  cidr: Cidr
  /** A single address (full-length prefix). Only these may open host-local addresses. */
  exact: boolean
}

/** One entry in canonical form, or why it is not an IP address or CIDR. */
export function parseOperatorEntry(raw: string): OperatorEntry | { error: string } {
  const text = raw.trim().toLowerCase()
  if (text === '') return { error: 'is empty' }
  const cidr = parseCidr(text)
  if (cidr && 'error' in cidr) return { error: `is not a valid CIDR: ${cidr.error}` }
  if (!cidr) {
    const hint = ipBytes(text.split('/')[0], true)
      ? '; write IPv4 addresses as four decimal numbers'
      : ''
    return { error: `is not an IP address or CIDR (host names are not accepted)${hint}` }
  }
  return { text: formatCidr(cidr), cidr, exact: cidr.prefix === cidr.bytes.length * 8 }
}

/** The entries of a list already checked by the config (unparsable ones are skipped). */
export function compileOperatorAllow(list: readonly string[] | undefined): OperatorEntry[] {
  const out: OperatorEntry[] = []
  for (const raw of list ?? []) {
    const e = parseOperatorEntry(raw)
    if (!('error' in e)) out.push(e)
  }
  return out
}

/** The first entry covering `ip` (canonical text), if any. */
export function operatorMatch(entries: OperatorEntry[], ip: string): OperatorEntry | undefined {
  const b = ipBytes(ip)
  return b ? entries.find((e) => inCidr(b, e.cidr)) : undefined
}
