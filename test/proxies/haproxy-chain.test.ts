// The real HAProxy forwards the intermediates a client sent (`%[ssl_c_chain_der,base64]`, DER back to back), and
// proxy.ca, holding only the root, verifies the leaf through them.
import t from 'tap'
import Fastify from 'fastify'
import { connect as tlsConnect } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { fastifyClientCert } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'
import { requireProxy, startProxy } from '../helpers/proxies.js'

t.setTimeout(120_000)

// Without `ca` on the client: OpenSSL completes a client's chain from its trust store when it holds the issuers,
// which would send the intermediate anyway. (The server is HAProxy on loopback with the test corpus's certificate.)
async function whoami (port: number, cert: string, key: string): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, cert, key })
    let text = ''
    socket.setEncoding('utf8')
    socket.once('secureConnect', () => socket.write('GET /maybe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'))
    socket.on('data', (chunk: string) => { text += chunk })
    socket.once('error', reject)
    socket.once('close', () => {
      const [head = '', ...rest] = text.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body: JSON.parse(rest.join('\r\n\r\n')) })
    })
  })
}

t.test('haproxy: proxy.ca verifies a leaf through the intermediates HAProxy forwards in X-SSL-Client-Chain', async (t) => {
  if (!requireProxy(t, 'haproxy')) return
  const corpus = await getCorpus()
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'haproxy', trust: ['127.0.0.1'], ca: corpus.root.certPem } })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    subject: request.clientCert?.subject ?? null,
    verified: request.clientCert?.verified ?? null,
    verifyError: request.clientCert?.verifyError ?? null,
    chain: request.headers['x-ssl-client-chain'] === undefined ? null : String(request.headers['x-ssl-client-chain']).length > 0
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const proxy = await startProxy('haproxy', { upstream: { host: '127.0.0.1', port: (app.server.address() as AddressInfo).port } })
  t.teardown(() => proxy.stop())
  t.match(proxy.config, 'http-request set-header X-SSL-Client-Chain %[ssl_c_chain_der,base64]', 'the generated configuration forwards the chain')

  const alice = corpus.leaves.alice
  const withChain = await whoami(proxy.port, alice.chainPem, alice.keyPem)
  t.same(withChain, {
    status: 200,
    body: { subject: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US', verified: true, verifyError: null, chain: true }
  }, 'the client sent its intermediate: HAProxy forwards it and the root alone verifies the leaf')

  const leafOnly = await whoami(proxy.port, alice.certPem, alice.keyPem)
  t.same(leafOnly.body.verified, false, 'the client sent the leaf alone: HAProxy (which knows the intermediate) forwards no chain')
  t.same(leafOnly.body.chain, false, 'the chain header is set, and empty')
  t.equal(leafOnly.body.verifyError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'and proxy.ca cannot reach the root without it')
})
