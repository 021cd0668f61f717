// Rotation tests: certificates made by the openssl CLI at test time (each CA, leaf and CRL its own files, as
// makeCrl needs them), and a Kubernetes-style secret volume whose `..data` symlink is swapped as the kubelet does.
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CertFiles } from './certs.js'

export interface Made extends CertFiles {
  x509: X509Certificate
}

const CA = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign']
const CLIENT = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth']
const SERVER = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost']

let serial = 1

/** A key and certificate in `dir`: a self-signed CA when `issuer` is null, else issued by it. */
export function make (dir: string, name: string, issuer: Made | null, kind: 'ca' | 'client' | 'server', extra: readonly string[] = []): Made {
  const file = (ext: string): string => join(dir, `${name}.${ext}`)
  const extensions = [...(kind === 'ca' ? CA : kind === 'client' ? CLIENT : SERVER), ...extra]
  writeFileSync(file('ext'), extensions.join('\n') + '\n')
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('key'), '-subj', `/O=Rotation test/CN=${name}`, '-out', file('csr')], { stdio: 'ignore' })
  const signer = issuer === null ? ['-signkey', file('key')] : ['-CA', issuer.certPath, '-CAkey', issuer.keyPath]
  execFileSync('openssl', ['x509', '-req', '-in', file('csr'), ...signer, '-set_serial', String(serial++), '-days', '2', '-extfile', file('ext'), '-out', file('pem')], { stdio: 'ignore' })
  const certPem = readFileSync(file('pem'), 'utf8')
  const x509 = new X509Certificate(certPem)
  return { name, certPem, keyPem: readFileSync(file('key'), 'utf8'), certPath: file('pem'), keyPath: file('key'), der: x509.raw, x509 }
}

let stamp = 0

/**
 * A secret volume as the kubelet writes one: the files live in a timestamped directory, `..data` links to it,
 * and each visible name links to `..data/<name>`. `swap` writes a new directory, points `..data_tmp` at it and
 * renames that over `..data` (one atomic step), then removes the old directory.
 */
export class SecretVolume {
  readonly dir: string

  constructor (dir: string, files: Readonly<Record<string, string | Buffer>>) {
    this.dir = dir
    mkdirSync(dir, { recursive: true })
    const data = this.#write(files)
    symlinkSync(data, join(dir, '..data'))
    for (const name of Object.keys(files)) symlinkSync(join('..data', name), join(dir, name))
  }

  path (name: string): string {
    return join(this.dir, name)
  }

  #write (files: Readonly<Record<string, string | Buffer>>): string {
    const data = `..${new Date().toISOString().replace(/[-:.TZ]/g, '_')}${stamp++}`
    mkdirSync(join(this.dir, data))
    for (const [name, content] of Object.entries(files)) writeFileSync(join(this.dir, data, name), content)
    return data
  }

  swap (files: Readonly<Record<string, string | Buffer>>): void {
    const old = readlinkSync(join(this.dir, '..data'))
    const data = this.#write(files)
    symlinkSync(data, join(this.dir, '..data_tmp'))
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'))
    rmSync(join(this.dir, old), { recursive: true, force: true })
  }
}
