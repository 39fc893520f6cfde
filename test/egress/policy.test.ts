import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { canonicalIp, parseHost } from '../../src/egress/address.ts'
import { decide, decideByName, validatePolicy, type EgressPolicy } from '../../src/egress/policy.ts'
import { classify } from '../../src/egress/ranges.ts'

const NODE = new Set(['127.0.0.1', '::1', '5.6.7.8', 'fe80::1', '10.9.9.9'])
const open: EgressPolicy = { allow: [], deny: [] }
const check = (
  policy: EgressPolicy,
  host: string,
  resolved: string[] = [],
  port = 443,
  allowHostLocal = false,
) => decide(policy, { host, port, resolved }, NODE, { allowHostLocal })

function refused(d: { allowed: boolean; reason: string }, ...parts: string[]) {
  assert.equal(d.allowed, false, d.reason)
  for (const p of parts) assert.ok(d.reason.includes(p), `${JSON.stringify(d.reason)} lacks ${p}`)
}

describe('egress address parsing', () => {
  it('reads every spelling of an address as one canonical form', () => {
    for (const form of ['127.0.0.1', '127.1', '0x7f.1', '0177.0.0.1', '2130706433', '0x7f000001'])
      assert.deepEqual(parseHost(form), { kind: 'ip', ip: '127.0.0.1' }, form)
    for (const form of ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[0:0:0:0:0:ffff:7f00:1]'])
      assert.deepEqual(parseHost(form), { kind: 'ip', ip: '127.0.0.1' }, form)
    assert.deepEqual(parseHost('[::1]'), { kind: 'ip', ip: '::1' })
    assert.deepEqual(parseHost('[2001:DB8:0:0:1:0:0:1]'), { kind: 'ip', ip: '2001:db8::1:0:0:1' })
    assert.deepEqual(parseHost('API.Example.COM.'), { kind: 'name', name: 'api.example.com' })
    assert.deepEqual(parseHost('LOCALHOST'), { kind: 'name', name: 'localhost' })
  })

  it('rejects what is neither an address nor a DNS name', () => {
    for (const bad of [
      '',
      '.',
      'a..b',
      'a b',
      '-a.com',
      '1.2.3.4.5',
      'a.1',
      '256.1.1.1',
      '08.1.1.1',
    ])
      assert.equal(parseHost(bad), null, bad)
    for (const bad of ['[::1', '::1]', '[1.2.3.4]', '[fe80::1%eth0]', 'example.com..'])
      assert.equal(parseHost(bad), null, bad)
  })

  it('canonicalises IPv6 as RFC 5952 and unwraps IPv4-mapped addresses', () => {
    assert.equal(canonicalIp('2001:db8::1:0:0:0:1'), '2001:db8:0:1::1')
    assert.equal(canonicalIp('::ffff:10.0.0.5'), '10.0.0.5')
    assert.equal(canonicalIp('0:0::'), '::')
    assert.equal(canonicalIp('127.1'), null, 'strict unless asked')
  })

  it('classifies special-purpose ranges', () => {
    const kinds: [string, string][] = [
      ['8.8.8.8', 'public'],
      ['2606:4700::1111', 'public'],
      ['127.9.9.9', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['169.254.169.254', 'link-local'],
      ['fe80::2', 'link-local'],
      ['10.1.2.3', 'private'],
      ['172.31.255.255', 'private'],
      ['172.32.0.1', 'public'],
      ['192.168.1.1', 'private'],
      ['fd12:3456::1', 'private'],
      ['100.64.0.1', 'shared'],
      ['224.0.0.1', 'multicast'],
      ['ff02::1', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['240.0.0.1', 'reserved'],
      ['192.0.2.1', 'reserved'],
      ['2001:db8::1', 'reserved'],
      ['64:ff9b::7f00:1', 'loopback'],
      ['64:ff9b::808:808', 'public'],
      ['2002:a00:5::1', 'private'],
      ['5.6.7.8', 'node'],
    ]
    for (const [ip, kind] of kinds) assert.equal(classify(ip, NODE), kind, ip)
  })
})

describe('egress policy validation', () => {
  it('accepts and normalises every entry form', () => {
    const r = validatePolicy({
      allow: [
        'Example.COM.',
        'example.com:8443',
        '*.Example.com',
        '10.20.0.0/16',
        '10.20.0.0/16:5432',
        '192.168.1.10',
        '2001:DB8::/32',
        '[2001:db8::1]:443',
        'example.com',
      ],
      deny: ['bad.example'],
    })
    assert.deepEqual(r, {
      ok: true,
      policy: {
        allow: [
          'example.com',
          'example.com:8443',
          '*.example.com',
          '10.20.0.0/16',
          '10.20.0.0/16:5432',
          '192.168.1.10',
          '2001:db8::/32',
          '[2001:db8::1]:443',
        ],
        deny: ['bad.example'],
      },
    })
    assert.deepEqual(validatePolicy({}), { ok: true, policy: { allow: [], deny: [] } })
  })

  it('explains each invalid entry', () => {
    const cases: [string, string][] = [
      ['', 'is empty'],
      ['example.com:0', 'invalid port'],
      ['example.com:70000', 'invalid port'],
      ['10.20.1.0/16', 'write 10.20.0.0/16'],
      ['10.0.0.0/33', 'prefix must be 0–32'],
      ['*', 'matches everything'],
      ['a.*.example.com', 'only as a whole first label'],
      ['*.10.0.0.1', 'followed by a domain name'],
      ['127.1', 'four decimal numbers'],
      ['0x7f.0.0.1', 'four decimal numbers'],
      ['exa mple.com', 'not a valid host name'],
      ['[example.com]', 'not an IPv6 address'],
      ['[::1', 'no closing'],
      ['fe80::1%eth0', 'not a valid IPv6'],
      ['x'.repeat(300), 'longer than'],
    ]
    for (const [entry, msg] of cases) {
      const r = validatePolicy({ allow: [entry] })
      assert.equal(r.ok, false, entry)
      if (!r.ok) assert.match(r.errors[0], new RegExp(`^allow\\[0\\]: .*${escape(msg)}`), entry)
    }
  })

  it('limits the lists and the shape', () => {
    const many = Array.from({ length: 101 }, (_, i) => `h${i}.example.com`)
    const r = validatePolicy({ allow: many, deny: many.slice(0, 100) })
    assert.deepEqual(r, { ok: false, errors: ['allow has 101 entries; at most 100 are allowed'] })
    assert.equal(validatePolicy({ allow: 'example.com' }).ok, false)
    assert.equal(validatePolicy({ allow: [], extra: 1 }).ok, false)
    assert.equal(validatePolicy(null).ok, false)
    assert.equal(validatePolicy({ allow: [42] }).ok, false)
  })
})

function escape(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

describe('egress decisions', () => {
  it('allows public addresses when nothing is configured', () => {
    const d = check(open, 'example.com', ['93.184.216.34', '2606:2800:220:1::1'])
    assert.deepEqual(d, { allowed: true, reason: 'public address', address: '93.184.216.34' })
    assert.equal(check(open, '8.8.8.8').address, '8.8.8.8')
  })

  it('refuses loopback however it is written', () => {
    for (const host of ['127.0.0.1', '127.1', '0x7f.1', '0177.0.0.1', '2130706433'])
      refused(check(open, host), 'egress to 127.0.0.1 refused: loopback address')
    for (const host of ['[::ffff:127.0.0.1]', '::ffff:127.0.0.1'])
      refused(check(open, host), 'egress to 127.0.0.1 refused: loopback address')
    refused(check(open, '[::1]'), 'egress to ::1 refused: loopback address')
    refused(check(open, 'localhost', ['127.0.0.1']), 'loopback name')
    refused(check(open, 'LOCALHOST.', ['8.8.8.8']), 'loopback name')
    refused(check(open, 'app.localhost', ['8.8.8.8']), 'loopback name')
    refused(check(open, 'sneaky.example', ['::ffff:127.0.0.1']), 'sneaky.example (127.0.0.1)')
  })

  it('refuses private, metadata, node and other special addresses, naming the fix', () => {
    refused(
      check(open, '10.0.0.5'),
      "egress to 10.0.0.5 refused: private address; add 10.0.0.5 to the workspace's egress allow list",
    )
    refused(
      check(open, 'db.corp.example', ['10.0.0.5']),
      'egress to db.corp.example (10.0.0.5) refused: private address; add 10.0.0.5 or db.corp.example',
    )
    refused(check(open, '169.254.169.254', [], 80), 'link-local', 'never reachable')
    refused(check(open, '[::ffff:169.254.169.254]', [], 80), 'link-local')
    refused(check(open, '5.6.7.8'), "this node's own addresses")
    refused(check(open, '100.64.3.4'), 'carrier-grade NAT')
    refused(check(open, '0.0.0.0'), 'unspecified')
    refused(check(open, '[::]'), 'unspecified')
    refused(check(open, '224.0.0.1'), 'multicast')
    refused(check(open, '255.255.255.255'), 'broadcast')
    refused(check(open, '240.1.2.3'), 'reserved')
    refused(check(open, '[fd00::1]'), 'private')
    refused(check(open, '[fe80::1234]'), 'link-local')
    refused(check(open, '[64:ff9b::a9fe:a9fe]'), 'link-local')
  })

  it('refuses a name when any of its addresses is refused (rebinding mixes)', () => {
    refused(check(open, 'mixed.example', ['8.8.8.8', '192.168.0.1']), '(192.168.0.1)', 'private')
    refused(check(open, 'nowhere.example', []), 'has no address')
    refused(check(open, 'junk.example', ['not-an-ip']), 'invalid address')
  })

  it('opens a private address on explicit allow by address, CIDR or exact name', () => {
    for (const allow of [['10.0.0.5'], ['10.0.0.0/8'], ['db.corp.example'], ['10.0.0.5:443']]) {
      const d = check({ allow, deny: [] }, 'db.corp.example', ['10.0.0.5'])
      assert.equal(d.allowed, true, allow[0])
      assert.equal(d.address, '10.0.0.5')
      assert.match(d.reason, /^explicitly allowed by/)
    }
    assert.equal(
      check({ allow: ['DB.Corp.Example.'], deny: [] }, 'db.corp.example.', ['10.0.0.5']).allowed,
      true,
    )
    assert.equal(check({ allow: ['10.0.0.5'], deny: [] }, '[::ffff:10.0.0.5]').allowed, true)
    assert.equal(check({ allow: ['fd00::/8'], deny: [] }, '[fd00::7]').allowed, true)
    // The address connected to is one the allow entry matched, not merely the first one.
    const d = check({ allow: ['10.0.0.0/8'], deny: [] }, 'multi.example', ['8.8.8.8', '10.0.0.5'])
    assert.equal(d.address, '10.0.0.5')
  })

  it('honours ports on entries', () => {
    const p = { allow: ['10.0.0.5:5432'], deny: [] }
    assert.equal(check(p, '10.0.0.5', [], 5432).allowed, true)
    refused(
      check(p, '10.0.0.5', [], 22),
      "egress to 10.0.0.5:22 refused: not in the workspace's egress allow list",
    )
    const q = { allow: [], deny: ['example.com:80'] }
    refused(check(q, 'example.com', ['8.8.8.8'], 80), 'deny list ("example.com:80")')
    assert.equal(check(q, 'example.com', ['8.8.8.8'], 443).allowed, true)
  })

  it('keeps host-local addresses closed even when allowed, unless told otherwise', () => {
    const p = { allow: ['127.0.0.1', 'localhost', '169.254.169.254', '5.6.7.8'], deny: [] }
    refused(check(p, '127.0.0.1'), 'loopback address; never reachable')
    refused(check(p, 'localhost', ['127.0.0.1']), 'loopback name; never reachable')
    refused(check(p, '169.254.169.254'), 'never reachable')
    refused(check(p, '5.6.7.8'), "this node's own addresses")
    refused(check({ allow: ['10.0.0.0/8'], deny: [] }, '10.9.9.9'), "this node's own addresses")
    assert.equal(check(p, '127.0.0.1', [], 443, true).allowed, true)
    assert.equal(check(p, 'localhost', ['127.0.0.1'], 443, true).address, '127.0.0.1')
    refused(check(open, '127.0.0.1', [], 443, true), 'loopback address; add 127.0.0.1')
  })

  it('refuses what a non-empty allow list does not name', () => {
    const p = { allow: ['api.example.com', '*.cdn.example'], deny: [] }
    assert.equal(check(p, 'api.example.com', ['8.8.8.8']).allowed, true)
    refused(check(p, 'example.com', ['8.8.8.8']), 'egress to example.com:443 refused: not in')
    refused(check(p, 'evil.com', ['8.8.8.8']), 'not in')
    refused(check(p, '8.8.8.8'), 'not in')
  })

  it('matches wildcards on subdomains only and never opens private addresses with them', () => {
    const p = { allow: ['*.example.com'], deny: [] }
    assert.equal(check(p, 'a.example.com', ['8.8.8.8']).allowed, true)
    assert.equal(check(p, 'A.B.Example.Com.', ['8.8.8.8']).allowed, true)
    refused(check(p, 'example.com', ['8.8.8.8']), 'not in')
    refused(check(p, 'badexample.com', ['8.8.8.8']), 'not in')
    refused(check(p, 'internal.example.com', ['10.1.1.1']), 'private address; add 10.1.1.1 or')
  })

  it('lets deny beat allow, by name or by any resolved address', () => {
    refused(
      check({ allow: ['example.com'], deny: ['example.com'] }, 'example.com', ['8.8.8.8']),
      'deny list ("example.com")',
    )
    const byIp = { allow: ['db.corp.example'], deny: ['10.0.0.0/8'] }
    refused(
      check(byIp, 'db.corp.example', ['10.0.0.5']),
      'db.corp.example (10.0.0.5)',
      '10.0.0.0/8',
    )
    refused(check({ allow: [], deny: ['8.8.8.0/24'] }, 'x.example', ['1.1.1.1', '8.8.8.8']), 'deny')
    refused(check({ allow: [], deny: ['*.example.com'] }, 'A.example.com.', ['8.8.8.8']), 'deny')
    refused(check({ allow: [], deny: ['10.0.0.5'] }, 'x.example', ['::ffff:10.0.0.5']), 'deny')
    refused(check({ allow: ['127.0.0.1'], deny: ['127.0.0.0/8'] }, '0x7f.1', [], 443, true), 'deny')
  })

  it('refuses invalid hosts and policies instead of guessing', () => {
    refused(check(open, 'a b'), 'not a valid host')
    refused(check(open, '1.2.3.4.5'), 'not a valid host')
    refused(check({ allow: [], deny: ['10.0.0.0/33'] }, '8.8.8.8'), 'policy is invalid')
  })

  it('decides by name alone before any lookup where it can', () => {
    const p = { allow: ['api.example.com'], deny: ['bad.example'] }
    refused(decideByName(p, 'bad.example', 443)!, 'deny list')
    refused(decideByName(p, 'other.example', 443)!, 'not in')
    refused(decideByName(open, 'localhost', 443)!, 'loopback name')
    assert.equal(decideByName(p, 'api.example.com', 443), null)
    assert.equal(decideByName({ allow: ['10.0.0.0/8'], deny: [] }, 'other.example', 443), null)
    assert.equal(decideByName(open, 'other.example', 443), null)
  })
})
