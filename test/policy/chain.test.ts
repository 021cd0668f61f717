import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { verifyChain } from '../../lib/policy/chain.js'
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
