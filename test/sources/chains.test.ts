// Proxies that forward the client's intermediates: proxy.ca verifies a leaf whose issuer only the forwarded chain
// holds, for every preset and mapping that can carry a chain, from header values in each proxy's own byte form.
import t from 'tap'
import Fastify from 'fastify'
import { createHash } from 'node:crypto'
import { connect, type AddressInfo } from 'node:net'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'

const trusted = '127.0.0.1'
const corpus = await getCorpus()
const leaf = corpus.leaves.alice
const derOf = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
const leafDer = derOf(leaf.certPem)
const intermediateDer = derOf(corpus.intermediate.certPem)
// AWS ALB: URL-encoded PEM with `+`, `=` and `/` left raw.
const albEncode = (pem: string): string => encodeURIComponent(pem).replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/')
const sf = (der: Buffer): string => `:${der.toString('base64')}:`

type Headers = Record<string, string>
interface Case { name: string, options: Partial<FastifyClientCertOptions['proxy']>, withChain: Headers, withoutChain: Headers | null }

const cases: Case[] = [
  {
    name: 'haproxy (X-SSL-Client-Chain: %[ssl_c_chain_der,base64])',
    options: { preset: 'haproxy' },
    withChain: { 'x-ssl-client-cert': leafDer.toString('base64'), 'x-ssl-client-verify': '0', 'x-ssl-client-used': '1', 'x-ssl-client-chain': intermediateDer.toString('base64') },
    withoutChain: { 'x-ssl-client-cert': leafDer.toString('base64'), 'x-ssl-client-verify': '0', 'x-ssl-client-used': '1', 'x-ssl-client-chain': '' }
  },
  {
    name: 'aws-alb-passthrough (X-Amzn-Mtls-Clientcert: leaf, then chain)',
    options: { preset: 'aws-alb-passthrough' },
    withChain: { 'x-amzn-mtls-clientcert': albEncode(leaf.certPem + corpus.intermediate.certPem) },
    withoutChain: { 'x-amzn-mtls-clientcert': albEncode(leaf.certPem) }
  },
  {
    name: 'rfc9440 (Client-Cert-Chain)',
    options: { preset: 'rfc9440' },
    withChain: { 'client-cert': sf(leafDer), 'client-cert-chain': sf(intermediateDer) },
    withoutChain: { 'client-cert': sf(leafDer) }
  },
  {
    name: 'envoy (XFCC Chain)',
    options: { preset: 'envoy' },
    withChain: { 'x-forwarded-client-cert': `Hash=${createHash('sha256').update(leafDer).digest('hex')};Cert="${encodeURIComponent(leaf.certPem)}";Chain="${encodeURIComponent(leaf.certPem + corpus.intermediate.certPem)}"` },
    withoutChain: { 'x-forwarded-client-cert': `Hash=${createHash('sha256').update(leafDer).digest('hex')};Cert="${encodeURIComponent(leaf.certPem)}"` }
  },
  {
    name: 'traefik (members after the leaf)',
    options: { preset: 'traefik' },
    withChain: { 'x-forwarded-tls-client-cert': `${leafDer.toString('base64')},${intermediateDer.toString('base64')}` },
    withoutChain: { 'x-forwarded-tls-client-cert': leafDer.toString('base64') }
  },
  {
    name: 'gcp (X-Client-Cert-Chain)',
    options: { preset: 'gcp' },
    withChain: { 'x-client-cert-present': 'true', 'x-client-cert-chain-verified': 'true', 'x-client-cert-leaf': sf(leafDer), 'x-client-cert-chain': sf(intermediateDer) },
    withoutChain: { 'x-client-cert-present': 'true', 'x-client-cert-chain-verified': 'true', 'x-client-cert-leaf': sf(leafDer) }
  },
  {
    name: 'custom: cert pem-urlencoded-chain',
    options: { headers: { cert: { name: 'X-Client-Bundle', encoding: 'pem-urlencoded-chain' }, verified: 'never' } },
    withChain: { 'x-client-bundle': albEncode(leaf.certPem + corpus.intermediate.certPem) },
    withoutChain: { 'x-client-bundle': albEncode(leaf.certPem) }
  },
  {
    name: 'custom: cert pem-chain',
    options: { headers: { cert: { name: 'X-Client-Bundle', encoding: 'pem-chain' }, verified: 'present' } },
    withChain: { 'x-client-bundle': (leaf.certPem + corpus.intermediate.certPem).replace(/\n/g, ' ') },
    withoutChain: { 'x-client-bundle': leaf.certPem.replace(/\n/g, ' ') }
  },
  {
    name: 'custom: chain der-base64-concatenated',
    options: { headers: { cert: { name: 'X-Cert', encoding: 'der-base64' }, chain: { name: 'X-Chain', encoding: 'der-base64-concatenated' }, verified: 'present' } },
    withChain: { 'x-cert': leafDer.toString('base64'), 'x-chain': Buffer.concat([intermediateDer, derOf(corpus.root.certPem)]).toString('base64') },
    withoutChain: { 'x-cert': leafDer.toString('base64') }
  }
]

t.test('proxy.ca verifies a leaf through the chain the proxy forwarded, and only through it', async (t) => {
  for (const c of cases) {
    const app = Fastify()
    await app.register(fastifyClientCert, { mode: 'proxy', proxy: { trust: [trusted], ca: corpus.root.certPem, ...c.options } } as FastifyClientCertOptions)
    app.get('/maybe', { config: { clientCert: { required: false } } }, async (req) => ({
      subject: req.clientCert?.subject, verified: req.clientCert?.verified, verifyError: req.clientCert?.verifyError
    }))
    const withChain = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: c.withChain })
    t.same(withChain.json(), { subject: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US', verified: true, verifyError: null }, `${c.name}: verified through the forwarded intermediate`)
    if (c.withoutChain !== null) {
      const without = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: c.withoutChain })
      t.same(without.json().verified, false, `${c.name}: without the chain, the root alone does not verify the leaf`)
    }
    await app.close()
  }
})

t.test('haproxy: a chain without the certificate it belongs to is refused', async (t) => {
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'haproxy', trust: [trusted] } })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (req) => ({ clientCert: req.clientCert }))
  const headers = { 'x-ssl-client-cert': '', 'x-ssl-client-verify': '0', 'x-ssl-client-used': '1', 'x-ssl-client-chain': intermediateDer.toString('base64') }
  const response = await app.inject({ url: '/maybe', remoteAddress: trusted, headers })
  t.equal(response.statusCode, 400)
  t.equal(response.json().code, 'FST_CLIENT_CERT_BAD_HEADER')
  const none = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: { ...headers, 'x-ssl-client-chain': '' } })
  t.same(none.json(), { clientCert: null }, 'an empty chain header beside no certificate is no certificate')
  await app.close()
})

t.test('aws-alb-passthrough needs proxy.ca at registration', async (t) => {
  const app = Fastify()
  app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'aws-alb-passthrough', trust: [trusted] } })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_CLIENT_CERT_INVALID_OPTION' })
})

t.test('a custom cert encoding that carries the chain is not combined with a chain header', async (t) => {
  const app = Fastify()
  app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: [trusted], headers: { cert: { name: 'X-B', encoding: 'pem-chain' }, chain: { name: 'X-C', encoding: 'pem' }, verified: 'present' } }
  })
  await t.rejects(async () => { await app.ready() }, /cannot be combined with cert encoding 'pem-chain'/)
})

/** Raw HTTP/1.1 so that a header can be sent as several field lines. */
async function rawRequest (port: number, lines: Array<[string, string]>): Promise<{ status: number, body: string }> {
  const head = ['GET /maybe HTTP/1.1', 'Host: localhost', 'Connection: close', ...lines.map(([name, value]) => `${name}: ${value}`)].join('\r\n')
  return await new Promise((resolve, reject) => {
    const socket = connect(port, trusted, () => socket.end(head + '\r\n\r\n'))
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.on('error', reject)
    socket.on('close', () => {
      const [status, ...rest] = text.split('\r\n\r\n')
      resolve({ status: Number(status.split(' ')[1]), body: rest.join('\r\n\r\n') })
    })
  })
}

t.test('RFC 9110 lists: a chain over several field lines is its comma-joined value; an Item repeated is refused', async (t) => {
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'rfc9440', trust: [trusted], ca: corpus.root.certPem } })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (req) => ({ verified: req.clientCert?.verified, code: null }))
  await app.listen({ host: trusted, port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const root = derOf(corpus.root.certPem)
  const split = await rawRequest(port, [['Client-Cert', sf(leafDer)], ['Client-Cert-Chain', sf(intermediateDer)], ['client-cert-chain', sf(root)]])
  t.same([split.status, JSON.parse(split.body)], [200, { verified: true, code: null }], 'Client-Cert-Chain in two field lines')
  const joined = await rawRequest(port, [['Client-Cert', sf(leafDer)], ['Client-Cert-Chain', `${sf(intermediateDer)}, ${sf(root)}`]])
  t.same([joined.status, JSON.parse(joined.body)], [200, { verified: true, code: null }], 'the same chain in one line')
  const repeated = await rawRequest(port, [['Client-Cert', sf(leafDer)], ['Client-Cert', sf(derOf(corpus.leaves.bob.certPem))]])
  t.equal(repeated.status, 400, 'Client-Cert (an Item) repeated')
  t.equal(JSON.parse(repeated.body).code, 'FST_CLIENT_CERT_BAD_HEADER')
  const emptyFirst = await rawRequest(port, [['Client-Cert', ''], ['Client-Cert', sf(derOf(corpus.leaves.bob.certPem))]])
  t.equal(emptyFirst.status, 400, 'an empty first line does not make the second one single')
  const badMember = await rawRequest(port, [['Client-Cert', sf(leafDer)], ['Client-Cert-Chain', sf(intermediateDer)], ['Client-Cert-Chain', 'garbage']])
  t.equal(badMember.status, 400, 'a bad member in any line fails the whole list')
})

t.test('custom bundle encodings check a fingerprint header against the leaf, as the other encodings do', async (t) => {
  const app = Fastify()
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: [trusted], headers: { cert: { name: 'X-Bundle', encoding: 'pem-chain' }, fingerprint: { name: 'X-Fingerprint' }, verified: 'present' } }
  })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (req) => ({ verified: req.clientCert?.verified }))
  t.teardown(() => app.close())
  const bundle = (leaf.certPem + corpus.intermediate.certPem).replace(/\n/g, ' ')
  const right = createHash('sha256').update(leafDer).digest('hex')
  const matching = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: { 'x-bundle': bundle, 'x-fingerprint': right } })
  t.same(matching.json(), { verified: true }, 'the leaf\'s fingerprint')
  const wrong = createHash('sha256').update(intermediateDer).digest('hex')
  const mismatch = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: { 'x-bundle': bundle, 'x-fingerprint': wrong } })
  t.same([mismatch.statusCode, mismatch.json().code], [400, 'FST_CLIENT_CERT_BAD_HEADER'], 'another certificate\'s fingerprint: refused')
})
