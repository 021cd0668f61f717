// Attacker: a client behind a proxy that forwards without verifying (AWS ALB passthrough), holding a leaf issued
// through an intermediate that the root restricted (name constraints, pathLen, a purpose) or that carries what
// OpenSSL refuses (an unknown critical extension), or sending a bundle built to make the app's `proxy.ca` check
// spend signature verifications. The app-side check must give OpenSSL's verdict (`openssl verify -purpose
// sslclient`, what direct TLS applies), and bound its work.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import { createPrivateKey, sign, X509Certificate } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fastifyClientCert } from '../../lib/index.js'
import { MAX_SIGNATURE_CHECKS } from '../../lib/policy/chain.js'
import { Cursor } from '../../lib/codecs/der.js'
import { walkCertificate } from '../../lib/codecs/x509.js'
import { tlv } from '../helpers/der-writer.js'

const trusted = '127.0.0.1'
const dir = mkdtempSync(join(tmpdir(), 'forged-chain-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const CA = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign']
const LEAF = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth']
let serial = 1

interface Issued { name: string, cert: string, key: string, pem: string }

/** A certificate made by the openssl CLI, signed by `issuer` (self-signed when null). */
function issue (name: string, subject: string, issuer: Issued | null, extensions: string[], curve = 'P-256'): Issued {
  const key = join(dir, `${name}.key`)
  const cert = join(dir, `${name}.pem`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  writeFileSync(ext, extensions.join('\n') + '\n')
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-nodes', '-keyout', key, '-subj', subject, '-out', csr], { stdio: 'ignore' })
  const signer = issuer === null ? ['-signkey', key] : ['-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', String(serial++)]
  execFileSync('openssl', ['x509', '-req', '-in', csr, ...signer, '-days', '2', '-sha512', '-extfile', ext, '-out', cert], { stdio: 'ignore' })
  return { name, cert, key, pem: readFileSync(cert, 'utf8') }
}

const root = issue('root', '/CN=Forged Chain Root', null, CA)
const admin = '/O=Red/CN=admin'

/** OpenSSL's own verdict on the same leaf and forwarded chain. */
function opensslAccepts (leaf: Issued, chain: Issued[]): boolean {
  const untrusted = join(dir, `${leaf.name}.untrusted.pem`)
  writeFileSync(untrusted, chain.map((c) => c.pem).join(''))
  try {
    execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', root.cert, '-untrusted', untrusted, leaf.cert], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// AWS ALB passthrough: the leaf then the chain, URL-encoded PEM with `+`, `=` and `/` left raw.
const albEncode = (pem: string): string => encodeURIComponent(pem).replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/')

async function judge (t: Test, leaf: Issued, chain: Issued[]): Promise<{ status: number, verifyError: string | null, verifications: number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'aws-alb-passthrough', trust: [trusted], ca: root.pem } })
  app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    verified: request.clientCert?.verified, verifyError: request.clientCert?.verifyError
  }))
  const headers = { 'x-amzn-mtls-clientcert': albEncode(leaf.pem + chain.map((c) => c.pem).join('')) }
  const verify = X509Certificate.prototype.verify
  let verifications = 0
  X509Certificate.prototype.verify = function counted (this: X509Certificate, key) {
    verifications++
    return verify.call(this, key)
  }
  try {
    const optional = await app.inject({ url: '/maybe', remoteAddress: trusted, headers })
    const counted = verifications
    const required = await app.inject({ url: '/whoami', remoteAddress: trusted, headers })
    return { status: required.statusCode, verifyError: optional.json().verifyError, verifications: counted }
  } finally {
    X509Certificate.prototype.verify = verify
  }
}

async function refused (t: Test, leaf: Issued, chain: Issued[], error: string): Promise<number> {
  const verdict = await judge(t, leaf, chain)
  t.equal(verdict.status, 401, 'refused on a route that requires a certificate')
  t.equal(verdict.verifyError, error, 'why, as OpenSSL names it')
  t.equal(opensslAccepts(leaf, chain), false, 'openssl verify -purpose sslclient refuses it too')
  return verdict.verifications
}

t.test('control: a plain chain through a forwarded intermediate is admitted, as by OpenSSL', async (t) => {
  const ca = issue('good-ca', '/CN=Good Issuing CA', root, CA)
  const leaf = issue('good-leaf', admin, ca, LEAF)
  const verdict = await judge(t, leaf, [ca])
  t.same([verdict.status, verdict.verifyError], [200, null])
  t.equal(opensslAccepts(leaf, [ca]), true)
})

t.test('a sub-CA restricted by name constraints issues a leaf outside them: refused, never admitted', async (t) => {
  const ca = issue('nc-ca', '/O=Partner/CN=Partner CA', root, [...CA, 'nameConstraints = critical, permitted;DNS:partner.example, permitted;dirName:partner_dn', '[partner_dn]', 'O = Partner'])
  const leaf = issue('nc-leaf', admin, ca, [...LEAF, 'subjectAltName = DNS:admin.red.example'])
  await refused(t, leaf, [ca], 'NAME_CONSTRAINTS_UNSUPPORTED')
})

t.test('a pathLen:0 issuing CA signs an attacker CA that issues the leaf: path length exceeded', async (t) => {
  const issuing = issue('pl-issuing', '/CN=Issuing CA', root, ['basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign, cRLSign'])
  const attacker = issue('pl-attacker', '/CN=Attacker CA', issuing, CA)
  const leaf = issue('pl-leaf', admin, attacker, LEAF)
  await refused(t, leaf, [attacker, issuing], 'PATH_LENGTH_EXCEEDED')
})

t.test('a sub-CA limited to serverAuth issues a clientAuth leaf: invalid purpose', async (t) => {
  const ca = issue('srv-ca', '/CN=Server-only CA', root, [...CA, 'extendedKeyUsage = serverAuth'])
  const leaf = issue('srv-leaf', admin, ca, LEAF)
  await refused(t, leaf, [ca], 'INVALID_PURPOSE')
})

t.test('an unknown critical extension, on the leaf or on the intermediate: refused', async (t) => {
  const unknown = '1.3.6.1.4.1.55555.1 = critical, ASN1:UTF8String:must understand'
  const ca = issue('crit-ca', '/CN=Plain CA', root, CA)
  const leaf = issue('crit-leaf', admin, ca, [...LEAF, unknown])
  await refused(t, leaf, [ca], 'UNHANDLED_CRITICAL_EXTENSION')
  const odd = issue('crit-odd-ca', '/CN=Odd CA', root, [...CA, unknown])
  const plain = issue('crit-plain-leaf', admin, odd, LEAF)
  await refused(t, plain, [odd], 'UNHANDLED_CRITICAL_EXTENSION')
})

t.test('a bundle of same-name decoys and CAs signing each other (P-521): refused after a bounded count of signature checks', async (t) => {
  // No key identifiers anywhere, so every decoy matches by name and only a signature check tells them apart.
  const bare = ['subjectKeyIdentifier = none', 'authorityKeyIdentifier = none']
  const caExtensions = ['basicConstraints = critical, CA:TRUE', ...bare]
  const seed = issue('dos-seed', '/CN=X', null, caExtensions, 'P-521')
  const a = issue('dos-a', '/CN=X', seed, caExtensions, 'P-521')
  // B carries the seed's key, signed by A: A and B sign each other.
  const bCsr = join(dir, 'dos-b.csr')
  execFileSync('openssl', ['req', '-new', '-key', seed.key, '-subj', '/CN=X', '-out', bCsr], { stdio: 'ignore' })
  execFileSync('openssl', ['x509', '-req', '-in', bCsr, '-CA', a.cert, '-CAkey', a.key, '-set_serial', String(serial++), '-days', '2',
    '-sha512', '-extfile', join(dir, 'dos-a.ext'), '-out', join(dir, 'dos-b.pem')], { stdio: 'ignore' })
  const b: Issued = { name: 'dos-b', cert: join(dir, 'dos-b.pem'), key: seed.key, pem: readFileSync(join(dir, 'dos-b.pem'), 'utf8') }
  const decoys = Array.from({ length: 16 }, (_, i) => issue(`dos-decoy-${i}`, '/CN=X', null, caExtensions, 'P-521'))
  const leaf = issue('dos-leaf', '/CN=m', a, ['basicConstraints = critical, CA:FALSE', 'extendedKeyUsage = clientAuth', ...bare])
  const verifications = await refused(t, leaf, [...decoys, a, b], 'CERT_CHAIN_TOO_LONG')
  t.equal(verifications, MAX_SIGNATURE_CHECKS, 'signature verifications spent on the request')
})

/**
 * `leaf` again with an issuerUniqueID and a subjectUniqueID (RFC 5280 §4.1.2.8, IMPLICIT [1] and [2] BIT STRINGs,
 * tags 0x81 and 0x82) between its key and its extensions, signed again by `issuer`. The openssl CLI cannot write
 * them; OpenSSL reads them.
 */
function withUniqueIds (leaf: Issued, issuer: Issued, name: string): Issued {
  const der = new X509Certificate(leaf.pem).raw
  const top = new Cursor(der, 0, der.length)
  const outer = top.into(top.read(0x30, 'the certificate'))
  const body = outer.read(0x30, 'the certificate body')
  const algorithm = outer.read(0x30, 'the signature algorithm')
  const { publicKey } = walkCertificate(der)
  const tbs = tlv(0x30,
    der.subarray(body.contentStart, publicKey.end),
    tlv(0x81, Buffer.from([0, 0x49, 0x44])),
    tlv(0x82, Buffer.from([0, 0x53, 0x55, 0x42])),
    der.subarray(publicKey.end, body.end))
  const signature = sign('sha512', tbs, createPrivateKey(readFileSync(issuer.key)))
  const forged = tlv(0x30, tbs, der.subarray(algorithm.start, algorithm.end), tlv(0x03, Buffer.from([0]), signature))
  const pem = `-----BEGIN CERTIFICATE-----\n${forged.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`
  const cert = join(dir, `${name}.pem`)
  writeFileSync(cert, pem)
  return { name, cert, key: leaf.key, pem }
}

t.test('unique identifiers before an unknown critical extension do not hide it from the proxy.ca check: refused', async (t) => {
  const ca = issue('uid-ca', '/CN=Plain CA', root, CA)
  const plain = issue('uid-plain', admin, ca, [...LEAF, '1.3.6.1.4.1.55555.1 = critical, ASN1:UTF8String:must understand'])
  const leaf = withUniqueIds(plain, ca, 'uid-leaf')
  const x509 = new X509Certificate(leaf.pem)
  t.ok(x509.verify(new X509Certificate(ca.pem).publicKey), 'a well-signed certificate OpenSSL parses, unique IDs and all')
  t.equal(x509.raw.includes(Buffer.from([0x81, 0x03, 0x00, 0x49, 0x44])), true)
  await refused(t, leaf, [ca], 'UNHANDLED_CRITICAL_EXTENSION')
  // Control: the same certificate without the unknown extension is admitted, so the unique IDs alone are no refusal.
  const control = withUniqueIds(issue('uid-control-plain', admin, ca, LEAF), ca, 'uid-control')
  const verdict = await judge(t, control, [ca])
  t.same([verdict.status, verdict.verifyError], [200, null], 'admitted')
  t.equal(opensslAccepts(control, [ca]), true, 'as by openssl verify')
})
