import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { wireString } from '../../src/ssh/wire.ts'

const execFileP = promisify(execFile)

export const hasSshKeygen = fs.existsSync('/usr/bin/ssh-keygen')

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rigbox-${prefix}-`))
}

/** Generates a key with ssh-keygen; returns the private key path (public is `<path>.pub`). */
export async function keygen(dir: string, name: string, args: string[]): Promise<string> {
  const file = path.join(dir, name)
  await execFileP('ssh-keygen', ['-q', '-N', '', '-C', `${name}@test`, '-f', file, ...args])
  return file
}

/** The SHA256 fingerprint `ssh-keygen -lf` prints for a public key file. */
export async function keygenFingerprint(pubFile: string): Promise<string> {
  const { stdout } = await execFileP('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile])
  return stdout.split(' ')[1]
}

/** An SSH public key line assembled from wire fields (for key types we cannot generate here). */
export function lineFromFields(type: string, fields: Buffer[], comment = ''): string {
  const blob = Buffer.concat([wireString(type), ...fields.map((f) => wireString(f))])
  return `${type} ${blob.toString('base64')}${comment ? ' ' + comment : ''}`
}
