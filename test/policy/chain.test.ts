import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAX_INTERMEDIATES, MAX_SIGNATURE_CHECKS, mayAuthenticate, readExtensions, verifyChain } from '../../lib/policy/chain.js'
import { getCorpus } from '../helpers/certs.js'

t.test('verifyChain: the path through forwarded intermediates, and each way it breaks', async (t) => {
  const corpus = await getCorpus()
  const x509 = (pem: string) => new X509Certificate(pem)
  const alice = x509(corpus.leaves.alice.certPem)
  const intermediate = x509(corpus.intermediate.certPem)
  const root = x509(corpus.root.certPem)
  const rogue = x509(corpus.rogueRoot.certPem)
  const now = Date.now()
  t.equal(verifyChain(alice, [], [intermediate], now), null, 'issued by an anchor')
  t.equal(verifyChain(alice, [intermediate], [root], now), null, 'through a forwarded intermediate')
  t.equal(verifyChain(alice, [intermediate], [rogue], now), 'UNABLE_TO_GET_ISSUER_CERT', 'the intermediate leads nowhere trusted')
  t.equal(verifyChain(alice, [], [root], now), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  t.equal(verifyChain(alice, [alice], [root], now), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'a non-CA in the chain is no issuer')
  t.equal(verifyChain(alice, [intermediate], [root], Date.parse(intermediate.validTo) + 1000), 'CERT_HAS_EXPIRED', 'every certificate on the path is dated')
  t.equal(verifyChain(alice, [], [intermediate], Date.parse(intermediate.validFrom) - 1000), 'CERT_NOT_YET_VALID')
  // A root forwarded twice issues itself in a loop that never reaches an anchor: the depth bound stops it.
  const rootAgain = x509(corpus.root.certPem)
  t.equal(verifyChain(alice, [intermediate, root, rootAgain], [rogue], now), 'CERT_CHAIN_TOO_LONG')
  t.equal(verifyChain(x509(corpus.leaves.serverauth.certPem), [], [intermediate], now), 'INVALID_PURPOSE')
  t.equal(verifyChain(x509(corpus.leaves.selfsigned.certPem), [], [intermediate], now), 'DEPTH_ZERO_SELF_SIGNED_CERT')
})

t.test('verifyChain: the leaf must be a key that may authenticate (OpenSSL sslclient purpose)', async (t) => {
  const corpus = await getCorpus()
  const root = new X509Certificate(corpus.root.certPem)
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const now = Date.now()
  t.equal(verifyChain(intermediate, [], [root], now), 'INVALID_PURPOSE', 'a CA certificate (keyCertSign, cRLSign) forwarded as the user')
  t.equal(verifyChain(root, [], [root], now), 'INVALID_PURPOSE', 'the trust anchor itself forwarded as the user')

  const dir = mkdtempSync(join(tmpdir(), 'chain-ku-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // Issued just now: judged a few seconds later, so a second boundary between issue and check is no "not yet valid".
  const later = (): number => Date.now() + 5000
  const issue = (name: string, keyUsage: string | null): X509Certificate => {
    const ext = join(dir, `${name}.ext`)
    writeFileSync(ext, ['extendedKeyUsage = clientAuth', ...(keyUsage === null ? [] : [`keyUsage = critical, ${keyUsage}`])].join('\n') + '\n')
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(dir, `${name}.key`), '-subj', `/CN=${name}`, '-out', join(dir, `${name}.csr`)], { stdio: 'ignore' })
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', corpus.intermediate.certPath,
      '-CAkey', corpus.intermediate.keyPath, '-set_serial', '7', '-days', '1', '-extfile', ext, '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' })
    return new X509Certificate(readFileSync(join(dir, `${name}.crt`)))
  }
  t.equal(verifyChain(issue('agreement', 'keyAgreement'), [], [intermediate], later()), null, 'keyAgreement alone may authenticate')
  t.equal(verifyChain(issue('signature', 'digitalSignature'), [], [intermediate], later()), null, 'digitalSignature')
  t.equal(verifyChain(issue('none', null), [], [intermediate], later()), null, 'no keyUsage extension: unrestricted')
  t.equal(verifyChain(issue('encipher', 'keyEncipherment'), [], [intermediate], later()), 'INVALID_PURPOSE', 'keyEncipherment alone may not')

  // OpenSSL keeps a certificate body as the CA signed it, BER included; the strict reader refuses rather than guesses.
  const alice = new X509Certificate(corpus.leaves.alice.certPem)
  const ber = Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), alice.raw.subarray(2)])
  t.notOk(mayAuthenticate({ raw: ber } as unknown as X509Certificate), 'a body the DER reader refuses does not authenticate')
  t.ok(mayAuthenticate(alice))

  // Bodies built by hand, for the shapes no CA tool here writes: no extensions (v1), and a keyUsage of no bits.
  const tlv = (tag: number, ...content: Buffer[]): Buffer => {
    const body = Buffer.concat(content)
    return Buffer.concat([Buffer.from([tag, body.length]), body])
  }
  const fields = [tlv(0x02, Buffer.from([1])), tlv(0x30), tlv(0x30), tlv(0x30), tlv(0x30), tlv(0x30)]
  const certificate = (...body: Buffer[]) => ({ raw: tlv(0x30, tlv(0x30, ...body)) }) as unknown as X509Certificate
  t.ok(mayAuthenticate(certificate(...fields)), 'a v1 certificate has no keyUsage to restrict it')
  const keyUsage = (bits: Buffer) => tlv(0xa3, tlv(0x30, tlv(0x30, tlv(0x06, Buffer.from('551d0f', 'hex')), tlv(0x04, tlv(0x03, bits)))))
  t.notOk(mayAuthenticate(certificate(tlv(0xa0, tlv(0x02, Buffer.from([2]))), ...fields, keyUsage(Buffer.from([0])))), 'a keyUsage with no bit set')
  t.ok(mayAuthenticate(certificate(tlv(0xa0, tlv(0x02, Buffer.from([2]))), ...fields, keyUsage(Buffer.from([7, 0x80])))), 'digitalSignature alone')
})

t.test('verifyChain: what OpenSSL checks on every certificate of the path, with its verdict', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chain-path-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const CA = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign']
  const LEAF = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth']
  const bare = ['subjectKeyIdentifier = none', 'authorityKeyIdentifier = none']
  let serial = 1
  interface Made { path: string, key: string, x509: X509Certificate }
  const issue = (name: string, subject: string, issuer: Made | null, extensions: string[], key?: string): Made => {
    const keyPath = key ?? join(dir, `${name}.key`)
    const ext = join(dir, `${name}.ext`)
    writeFileSync(ext, extensions.join('\n') + '\n')
    const newKey = key === undefined ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath] : ['-key', keyPath]
    execFileSync('openssl', ['req', '-new', ...newKey, '-subj', subject, '-out', join(dir, `${name}.csr`)], { stdio: 'ignore' })
    const signer = issuer === null ? ['-signkey', keyPath] : ['-CA', issuer.path, '-CAkey', issuer.key, '-set_serial', String(serial++)]
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), ...signer, '-days', '2', '-extfile', ext, '-out', join(dir, `${name}.pem`)], { stdio: 'ignore' })
    return { path: join(dir, `${name}.pem`), key: keyPath, x509: new X509Certificate(readFileSync(join(dir, `${name}.pem`))) }
  }
  const openssl = (leaf: Made, chain: Made[], anchor: Made): boolean => {
    writeFileSync(join(dir, 'untrusted.pem'), chain.map((c) => c.x509.toString()).join(''))
    const untrusted = chain.length === 0 ? [] : ['-untrusted', join(dir, 'untrusted.pem')]
    try {
      execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', anchor.path, ...untrusted, leaf.path], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  const same = (leaf: Made, chain: Made[], anchor: Made, expected: string | null, what: string) => {
    // Checked a little after "now" (not before the certificates were issued: a loaded machine issues slowly).
    t.equal(verifyChain(leaf.x509, chain.map((c) => c.x509), [anchor.x509], Date.now() + 5000), expected, what)
    t.equal(openssl(leaf, chain, anchor), expected === null, `${what}: the same verdict from openssl verify`)
  }

  const root = issue('root', '/CN=Root', null, CA)
  const sub = issue('sub', '/CN=Sub', root, CA)
  same(issue('any', '/CN=any', sub, [...LEAF.slice(0, 2), 'extendedKeyUsage = anyExtendedKeyUsage']), [sub], root, 'INVALID_PURPOSE',
    'a leaf for anyExtendedKeyUsage only: OpenSSL\'s sslclient purpose wants clientAuth itself')
  const anyCa = issue('any-ca', '/CN=Any CA', root, [...CA, 'extendedKeyUsage = anyExtendedKeyUsage'])
  same(issue('under-any', '/CN=u', anyCa, LEAF), [anyCa], root, 'INVALID_PURPOSE', 'so is an intermediate')
  const bothCa = issue('both-ca', '/CN=Both CA', root, [...CA, 'extendedKeyUsage = serverAuth, clientAuth'])
  same(issue('under-both', '/CN=u', bothCa, LEAF), [bothCa], root, null, 'an intermediate that lists clientAuth among others')
  same(issue('ns-server', '/CN=ns', sub, [...LEAF, 'nsCertType = server']), [sub], root, 'INVALID_PURPOSE', 'a Netscape cert type without SSL client')
  same(issue('ns-client', '/CN=ns', sub, [...LEAF, 'nsCertType = client']), [sub], root, null, 'a Netscape cert type for SSL clients')

  const notCa = issue('not-ca', '/CN=Not a CA', root, ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, keyCertSign'])
  same(issue('under-not-ca', '/CN=u', notCa, LEAF), [notCa], root, 'INVALID_CA', 'an intermediate that may sign certificates but is no CA')
  const noSign = issue('no-sign', '/CN=No Sign', root, ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, cRLSign'])
  same(issue('under-no-sign', '/CN=u', noSign, LEAF), [noSign], root, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'a CA whose keyUsage lacks keyCertSign issues nothing (checkIssued)')
  const oddPathLen = issue('odd-pathlen', '/CN=Odd', root, ['basicConstraints = critical, CA:FALSE, pathlen:1', 'keyUsage = critical, keyCertSign'])
  same(issue('under-odd', '/CN=u', oddPathLen, LEAF), [oddPathLen], root, 'INVALID_CA', 'a pathLen without cA: an extension the strict reader refuses')

  const nonCaRoot = issue('non-ca-root', '/CN=Non-CA Root', null, ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, keyCertSign'])
  same(issue('under-non-ca-root', '/CN=u', nonCaRoot, LEAF), [], nonCaRoot, 'INVALID_CA', 'an anchor that says it is no CA')
  const kuRoot = issue('ku-root', '/CN=KU Root', null, ['keyUsage = critical, keyCertSign'])
  same(issue('under-ku-root', '/CN=u', kuRoot, LEAF), [], kuRoot, null, 'an anchor without basicConstraints that may sign certificates')
  const limitedRoot = issue('limited-root', '/CN=Limited Root', null, ['basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign'])
  const below = issue('below-limited', '/CN=Below', limitedRoot, CA)
  same(issue('under-below', '/CN=u', below, LEAF), [below], limitedRoot, 'PATH_LENGTH_EXCEEDED', 'the anchor\'s pathLen counts too')
  same(issue('direct', '/CN=u', limitedRoot, LEAF), [], limitedRoot, null, 'pathLen 0 still issues leaves')

  // A rollover certificate (the root's name, a new key) is self-issued: pathLen does not count it, as in OpenSSL.
  const oneRoot = issue('one-root', '/CN=One Root', null, ['basicConstraints = critical, CA:TRUE, pathlen:1', 'keyUsage = critical, keyCertSign', 'subjectKeyIdentifier = hash'])
  const rollover = issue('rollover', '/CN=One Root', oneRoot, [...CA, 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'])
  const issuing = issue('issuing', '/CN=Issuing', rollover, [...CA, 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'])
  same(issue('under-rollover', '/CN=u', issuing, LEAF), [issuing, rollover], oneRoot, null, 'a self-issued intermediate is not counted')
  const extra = issue('extra', '/CN=Extra', issuing, CA)
  same(issue('under-extra', '/CN=u', extra, LEAF), [extra, issuing, rollover], oneRoot, 'PATH_LENGTH_EXCEEDED', 'two non-self-issued ones are')

  const unknown = issue('unknown-ok', '/CN=u', sub, [...LEAF, '1.3.6.1.4.1.55555.1 = ASN1:NULL'])
  same(unknown, [sub], root, null, 'an unknown extension that is not critical is ignored')
  const critical = issue('known-critical', '/CN=u', sub, [...LEAF, 'subjectAltName = critical, DNS:u.example'])
  same(critical, [sub], root, null, 'a critical extension OpenSSL knows')

  // An untrusted self-signed root forwarded at the top of the chain: OpenSSL's name for it.
  const other = issue('other', '/CN=Other', null, CA)
  t.equal(verifyChain(issue('under-sub', '/CN=u', sub, LEAF).x509, [sub.x509, root.x509], [other.x509], Date.now() + 5000), 'SELF_SIGNED_CERT_IN_CHAIN')

  // Look-alike anchors (the issuer's name, other keys, no key identifiers): each costs a signature check, within the cap.
  const look = issue('look', '/CN=Look', null, [...CA, ...bare])
  const lookLeaf = issue('look-leaf', '/CN=u', look, [...LEAF, ...bare])
  const decoy = issue('decoy', '/CN=Look', null, [...CA, ...bare])
  t.equal(verifyChain(lookLeaf.x509, [], [...Array(MAX_SIGNATURE_CHECKS - 1).fill(decoy.x509), look.x509], Date.now() + 5000), null, 'found with the last check allowed')
  t.equal(verifyChain(lookLeaf.x509, [], [...Array(MAX_SIGNATURE_CHECKS).fill(decoy.x509), look.x509], Date.now() + 5000), 'CERT_CHAIN_TOO_LONG', 'refused past the cap')
  // Unrelated certificates cost no signature check; only the first MAX_INTERMEDIATES forwarded are considered.
  t.equal(verifyChain(lookLeaf.x509, [...Array(MAX_INTERMEDIATES - 1).fill(sub.x509), look.x509], [look.x509], Date.now() + 5000), null)
  t.equal(verifyChain(lookLeaf.x509, [...Array(MAX_INTERMEDIATES - 1).fill(sub.x509), look.x509], [root.x509], Date.now() + 5000), 'SELF_SIGNED_CERT_IN_CHAIN',
    'the last one considered is found (an untrusted self-signed root)')
  t.equal(verifyChain(lookLeaf.x509, [...Array(MAX_INTERMEDIATES).fill(sub.x509), look.x509], [root.x509], Date.now() + 5000), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'one past them is not')
})

t.test('readExtensions: shapes no CA tool here writes', async (t) => {
  const tlv = (tag: number, ...content: Buffer[]): Buffer => {
    const body = Buffer.concat(content)
    return Buffer.concat([Buffer.from([tag, body.length]), body])
  }
  const fields = [tlv(0x02, Buffer.from([1])), tlv(0x30), tlv(0x30), tlv(0x30), tlv(0x30), tlv(0x30)]
  const certificate = (...extensions: Buffer[]) =>
    ({ raw: tlv(0x30, tlv(0x30, tlv(0xa0, tlv(0x02, Buffer.from([2]))), ...fields, tlv(0xa3, tlv(0x30, ...extensions)))) }) as unknown as X509Certificate
  const extension = (oid: string, value: Buffer, critical?: Buffer) =>
    tlv(0x30, tlv(0x06, Buffer.from(oid, 'hex')), ...(critical === undefined ? [] : [tlv(0x01, critical)]), tlv(0x04, value))
  const basic = (...content: Buffer[]) => extension('551d13', tlv(0x30, ...content))
  const yes = tlv(0x01, Buffer.from([0xff]))
  const pathLen = (...bytes: number[]) => tlv(0x02, Buffer.from(bytes))
  t.equal(readExtensions(certificate(basic(yes, pathLen(3))))?.pathLen, 3)
  t.equal(readExtensions(certificate(basic(yes, pathLen(1, 2, 3, 4, 5, 6, 7))))?.pathLen, Number.MAX_SAFE_INTEGER, 'a bound no chain reaches')
  t.equal(readExtensions(certificate(basic(yes, pathLen(0xff)))), null, 'a negative pathLen')
  t.equal(readExtensions(certificate(basic(yes, tlv(0x02)))), null, 'an empty INTEGER')
  t.equal(readExtensions(certificate(basic(pathLen(1)))), null, 'a pathLen without cA')
  t.equal(readExtensions(certificate(basic(tlv(0x01, Buffer.from([0xff, 0xff]))))), null, 'a BOOLEAN of two bytes')
  t.equal(readExtensions(certificate(basic(yes), basic(yes))), null, 'an extension twice')
  t.equal(readExtensions(certificate(extension('2a03', tlv(0x05), Buffer.from([0x00]))))?.unhandledCritical, false, 'a critical flag that says false')
  t.equal(readExtensions(certificate(extension('2a03', tlv(0x05), Buffer.from([0xff]))))?.unhandledCritical, true)
})
