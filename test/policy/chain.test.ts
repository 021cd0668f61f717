import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { mayAuthenticate, verifyChain } from '../../lib/policy/chain.js'
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
  const later = now + 5000
  const issue = (name: string, keyUsage: string | null): X509Certificate => {
    const ext = join(dir, `${name}.ext`)
    writeFileSync(ext, ['extendedKeyUsage = clientAuth', ...(keyUsage === null ? [] : [`keyUsage = critical, ${keyUsage}`])].join('\n') + '\n')
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(dir, `${name}.key`), '-subj', `/CN=${name}`, '-out', join(dir, `${name}.csr`)], { stdio: 'ignore' })
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', corpus.intermediate.certPath,
      '-CAkey', corpus.intermediate.keyPath, '-set_serial', '7', '-days', '1', '-extfile', ext, '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' })
    return new X509Certificate(readFileSync(join(dir, `${name}.crt`)))
  }
  t.equal(verifyChain(issue('agreement', 'keyAgreement'), [], [intermediate], later), null, 'keyAgreement alone may authenticate')
  t.equal(verifyChain(issue('signature', 'digitalSignature'), [], [intermediate], later), null, 'digitalSignature')
  t.equal(verifyChain(issue('none', null), [], [intermediate], later), null, 'no keyUsage extension: unrestricted')
  t.equal(verifyChain(issue('encipher', 'keyEncipherment'), [], [intermediate], later), 'INVALID_PURPOSE', 'keyEncipherment alone may not')

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
