// Resumed sessions come back without the intermediates the client sent (Node 20): the server remembers, per leaf,
// the chain of its last full handshake TLS authorized, bounded, and lends it to resumed sessions of that leaf only.
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { X509Certificate } from 'node:crypto'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { guardHandshakes, readPeer, setServerAnchors, socketTrust } from '../../lib/sources/tls.js'

interface Fake { socket: TLSSocket, leaf: X509Certificate }

function fakes (server: EventEmitter) {
  return (fingerprint: string, options: { chain: boolean, resumed: boolean, authorized?: boolean }): Fake => {
    const leaf = { fingerprint256: fingerprint, issuerCertificate: options.chain ? { fingerprint256: 'intermediate' } : undefined } as unknown as X509Certificate
    const socket = {
      authorized: options.authorized ?? true,
      authorizationError: null,
      disableRenegotiation () {},
      getProtocol: () => 'TLSv1.3',
      getFinished: () => undefined,
      getPeerX509Certificate: () => leaf,
      isSessionReused: () => options.resumed
    } as unknown as TLSSocket
    server.emit('secureConnection', socket)
    return { socket, leaf }
  }
}

t.test('a resumed session of a leaf is read with the chain its last authorized full handshake sent', async (t) => {
  const server = new EventEmitter()
  guardHandshakes(server as unknown as TlsServer)
  const connect = fakes(server)
  const full = connect('leaf-a', { chain: true, resumed: false })
  t.equal(readPeer(full.socket).certificate, full.leaf, 'a full handshake: its own certificate')
  const resumed = connect('leaf-a', { chain: false, resumed: true })
  t.equal(readPeer(resumed.socket).certificate, full.leaf, 'resumed: the remembered leaf, with its links')
  const other = connect('leaf-b', { chain: false, resumed: true })
  t.equal(readPeer(other.socket).certificate, other.leaf, 'another leaf gets nothing of it')
  const fresh = connect('leaf-a', { chain: false, resumed: false })
  t.equal(readPeer(fresh.socket).certificate, fresh.leaf, 'a full handshake that sent no chain is read as sent')
  const refused = connect('leaf-a', { chain: false, resumed: true, authorized: false })
  t.equal(readPeer(refused.socket).certificate, refused.leaf, 'a certificate TLS did not authorize is never lent a chain')
})

t.test('the remembered chains are bounded: the least recently remembered leaf goes first', async (t) => {
  const server = new EventEmitter()
  guardHandshakes(server as unknown as TlsServer)
  const connect = fakes(server)
  const first = connect('leaf-0', { chain: true, resumed: false })
  readPeer(first.socket)
  for (let i = 1; i <= 1000; i++) readPeer(connect(`leaf-${i}`, { chain: true, resumed: false }).socket)
  t.equal(socketTrust(first.socket)!.chains.size, 1000, 'a thousand leaves at most')
  t.not(readPeer(connect('leaf-0', { chain: false, resumed: true }).socket).certificate, first.leaf, 'the oldest was let go')
  const again = connect('leaf-1', { chain: true, resumed: false })
  readPeer(again.socket)
  readPeer(connect('leaf-1001', { chain: true, resumed: false }).socket)
  t.equal(readPeer(connect('leaf-1', { chain: false, resumed: true }).socket).certificate, again.leaf, 'remembered again: the newest, kept')
})

t.test('client CA swaps belong to the server: every registration sees them, counted', async (t) => {
  const server = new EventEmitter()
  guardHandshakes(server as unknown as TlsServer)
  guardHandshakes(server as unknown as TlsServer)
  const { socket } = fakes(server)('leaf', { chain: false, resumed: false })
  const trust = socketTrust(socket)!
  t.same([trust.anchors, trust.generation], [null, 0])
  const anchors = [] as X509Certificate[]
  setServerAnchors(server as unknown as TlsServer, anchors)
  t.equal(socketTrust(socket)!.anchors, anchors)
  t.equal(socketTrust(socket)!.generation, 1)
})
