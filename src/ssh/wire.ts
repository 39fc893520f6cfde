/**
 * Reader for the SSH wire encoding (RFC 4251 §5): the key blobs and signatures we check are built
 * from `string`, `mpint`, `uint32` and `byte` fields.
 */
export class WireReader {
  private pos = 0

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos
  }

  /** A length-prefixed field; undefined when the buffer is too short (malformed input). */
  bytes(): Buffer | undefined {
    if (this.remaining < 4) return undefined
    const len = this.buf.readUInt32BE(this.pos)
    if (len > this.remaining - 4) return undefined
    const out = this.buf.subarray(this.pos + 4, this.pos + 4 + len)
    this.pos += 4 + len
    return out
  }

  /** A `string` that must be printable ASCII (key types, curve names). */
  ascii(): string | undefined {
    const raw = this.bytes()
    if (raw === undefined || !/^[\x21-\x7e]*$/.test(raw.toString('latin1'))) return undefined
    return raw.toString('latin1')
  }

  byte(): number | undefined {
    if (this.remaining < 1) return undefined
    return this.buf[this.pos++]
  }

  uint32(): number | undefined {
    if (this.remaining < 4) return undefined
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }
}

export function wireString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data
  const len = Buffer.alloc(4)
  len.writeUInt32BE(body.length)
  return Buffer.concat([len, body])
}

/** An `mpint` as an unsigned big-endian integer without leading zero bytes. */
export function mpintMagnitude(mpint: Buffer): Buffer {
  let i = 0
  while (i < mpint.length && mpint[i] === 0) i++
  return mpint.subarray(i)
}

export function bitLength(magnitude: Buffer): number {
  if (magnitude.length === 0) return 0
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]))
}
