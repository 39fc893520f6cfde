import crypto from 'node:crypto'

const LOWER_ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789'
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** Uniform random string over an alphabet (rejection sampling: no modulo bias). */
export function randomString(alphabet: string, length: number): string {
  const limit = 256 - (256 % alphabet.length)
  let out = ''
  while (out.length < length) {
    for (const byte of crypto.randomBytes(length * 2)) {
      if (byte < limit && out.length < length) out += alphabet[byte % alphabet.length]
    }
  }
  return out
}

export const newId = (prefix: string, length = 8) =>
  `${prefix}-${randomString(LOWER_ALNUM, length)}`
/** A short lowercase suffix for generated names (`<template>-x7k2p`). */
export const nameSuffix = (length = 5) => randomString(LOWER_ALNUM, length)
export const newBase62 = (length: number) => randomString(BASE62, length)

export const nowIso = () => new Date().toISOString()
