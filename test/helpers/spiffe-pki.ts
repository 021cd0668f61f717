// Two SPIFFE trust domains with their own CAs, made by the openssl CLI at test time: ours (example.org, a root
// and an intermediate) and a partner's (partner.example), plus the leaves the SPIFFE tests present.
import { X509Certificate } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Issued {
  /** PEM of the certificate alone */
  pem: string
  keyPem: string
  der: Buffer
  x509: X509Certificate
}

const CA = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign']
const SVID = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth, serverAuth']

/** A leaf with these URI SANs (and the X509-SVID extensions unless `extensions` replaces them). */
const svid = (uris: string[], extensions = SVID): string[] => [...extensions, `subjectAltName = ${uris.map((uri) => `URI:${uri}`).join(', ')}`]

export const OUR_ADMIN = 'spiffe://example.org/ns/admin/api'

const leafSpecs = {
  /** ours, issued by our root: what a SPIRE server without an upstream authority mints */
  ourAdmin: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN]) },
  /** ours, through our intermediate, which the client (or proxy) must send along */
  ourBatch: { issuer: 'ourIntermediate', extensions: svid(['spiffe://example.org/ns/admin/batch']) },
  /** the partner's own workload */
  partnerBilling: { issuer: 'partnerRoot', extensions: svid(['spiffe://partner.example/ns/billing']) },
  /** the attack: the partner's CA minting our admin's ID */
  forgedAdmin: { issuer: 'partnerRoot', extensions: svid([OUR_ADMIN]) },
  /** the partner's CA minting an ID of a trust domain nobody configured */
  unknownDomain: { issuer: 'partnerRoot', extensions: svid(['spiffe://unknown.example/ns/admin/api']) },
  /** a certificate that is not an SVID at all (no URI): the bundles do not concern it */
  partnerPlain: { issuer: 'partnerRoot', extensions: ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth'] },
  /** X509-SVID violations, each issued by our own root so that only the rule refuses them */
  twoUris: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN, 'https://example.org/admin']) },
  twoIds: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN, 'spiffe://example.org/ns/other']) },
  rootId: { issuer: 'ourRoot', extensions: svid(['spiffe://example.org']) },
  upperCaseId: { issuer: 'ourRoot', extensions: svid(['spiffe://EXAMPLE.org/ns/admin/api']) },
  caLeaf: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN], ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, digitalSignature, keyCertSign', 'extendedKeyUsage = clientAuth']) },
  signingUsage: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN], ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, cRLSign', 'extendedKeyUsage = clientAuth']) },
  agreementOnly: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN], ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, keyAgreement', 'extendedKeyUsage = clientAuth']) },
  noKeyUsage: { issuer: 'ourRoot', extensions: svid([OUR_ADMIN], ['basicConstraints = critical, CA:FALSE', 'extendedKeyUsage = clientAuth']) },
  /** for the HTTPS server the direct-mode tests start */
  server: { issuer: 'ourRoot', extensions: ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost'] }
} as const

export type LeafName = keyof typeof leafSpecs

export interface SpiffePki {
  ourRoot: Issued
  ourIntermediate: Issued
  partnerRoot: Issued
  leaves: Record<LeafName, Issued>
}

let pki: SpiffePki | undefined

/** The PKI, made once per process in a temp dir that is removed at once (everything is kept in memory). */
export function getSpiffePki (): SpiffePki {
  pki ??= build()
  return pki
}

function build (): SpiffePki {
  const dir = mkdtempSync(join(tmpdir(), 'spiffe-pki-'))
  let serial = 1
  const issue = (name: string, subject: string, issuer: { name: string } | null, extensions: readonly string[]): Issued & { name: string } => {
    const file = (ext: string): string => join(dir, `${name}.${ext}`)
    writeFileSync(file('ext'), extensions.join('\n') + '\n')
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('key'), '-subj', subject, '-out', file('csr')], { stdio: 'ignore' })
    const signer = issuer === null
      ? ['-signkey', file('key')]
      : ['-CA', join(dir, `${issuer.name}.pem`), '-CAkey', join(dir, `${issuer.name}.key`), '-set_serial', String(serial++)]
    execFileSync('openssl', ['x509', '-req', '-in', file('csr'), ...signer, '-days', '2', '-extfile', file('ext'), '-out', file('pem')], { stdio: 'ignore' })
    const pem = readFileSync(file('pem'), 'utf8')
    const x509 = new X509Certificate(pem)
    return { name, pem, keyPem: readFileSync(file('key'), 'utf8'), der: x509.raw, x509 }
  }
  try {
    const ourRoot = issue('ourRoot', '/O=Example Org/CN=example.org SPIFFE root', null, [...CA, 'subjectAltName = URI:spiffe://example.org'])
    const ourIntermediate = issue('ourIntermediate', '/O=Example Org/CN=example.org SPIFFE intermediate', ourRoot, [...CA, 'subjectAltName = URI:spiffe://example.org'])
    const partnerRoot = issue('partnerRoot', '/O=Partner/CN=partner.example SPIFFE root', null, [...CA, 'subjectAltName = URI:spiffe://partner.example'])
    const issuers: Record<string, { name: string }> = { ourRoot, ourIntermediate, partnerRoot }
    const leaves = Object.fromEntries(Object.entries(leafSpecs).map(([name, spec]) =>
      [name, issue(name, `/O=SPIFFE test/CN=${name}`, issuers[spec.issuer]!, spec.extensions)]
    )) as unknown as Record<LeafName, Issued>
    return { ourRoot, ourIntermediate, partnerRoot, leaves }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A SPIFFE bundle as SPIRE's bundle endpoint serves it: a JWK Set with one x509-svid key per CA. */
export function jwkSet (...cas: Issued[]): { keys: Array<Record<string, unknown>>, spiffe_sequence: number, spiffe_refresh_hint: number } {
  return {
    keys: cas.map((ca) => {
      const jwk = ca.x509.publicKey.export({ format: 'jwk' })
      return { ...jwk, use: 'x509-svid', x5c: [ca.der.toString('base64')] }
    }),
    spiffe_sequence: 1,
    spiffe_refresh_hint: 300
  }
}
