import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CertFiles } from './certs.js'

const config = `[ ca ]
default_ca = CA_default
[ CA_default ]
database = ./index.txt
crlnumber = ./crlnumber
default_md = sha256
default_crl_days = 7
`

/** A CRL signed by `issuer` that lists `revoked` (certificate PEM files), made with `openssl ca`. */
export function makeCrl (issuer: CertFiles, revoked: readonly string[], validity: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-crl-'))
  try {
    writeFileSync(join(dir, 'index.txt'), '')
    writeFileSync(join(dir, 'crlnumber'), '01\n')
    writeFileSync(join(dir, 'ca.cnf'), config)
    const ca = ['-config', 'ca.cnf', '-cert', issuer.certPath, '-keyfile', issuer.keyPath]
    for (const certPath of revoked) {
      execFileSync('openssl', ['ca', ...ca, '-revoke', certPath], { cwd: dir, stdio: 'ignore' })
    }
    execFileSync('openssl', ['ca', ...ca, '-gencrl', '-out', 'crl.pem', ...validity], { cwd: dir, stdio: 'ignore' })
    return readFileSync(join(dir, 'crl.pem'), 'latin1')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
