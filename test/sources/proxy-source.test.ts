import t from 'tap'
import { normalizeOptions } from '../../lib/options.js'
import { ProxySource } from '../../lib/sources/proxy.js'

function source (trust: (address: string) => boolean) {
  const settings = normalizeOptions({
    mode: 'proxy',
    proxy: { trust, headers: { subject: { name: 'x-subject', encoding: 'dn-rfc4514' }, verified: 'present' } }
  })
  return new ProxySource(settings.proxy!, { max: 100, ttl: 60_000, maxBytes: 1 << 20 }, null)
}

t.test('values that share length and tail never share a cache entry', async (t) => {
  const proxy = source(() => true)
  const peer = { socket: { remoteAddress: '127.0.0.1', destroyed: false } }
  const tail = ',O=' + 'x'.repeat(120)
  // Each settles as verified, the only way into the cache: bravo's entry then takes alpha's index.
  const settled = (lookup: ReturnType<typeof proxy.lookup>): typeof lookup => {
    if (lookup.kind === 'forwarded') proxy.settle(lookup, true)
    return lookup
  }
  const first = settled(proxy.lookup(['X-Subject', 'CN=alpha' + tail], peer))
  const second = settled(proxy.lookup(['X-Subject', 'CN=bravo' + tail], peer))
  const again = settled(proxy.lookup(['X-Subject', 'CN=alpha' + tail], peer))
  const commonName = (lookup: typeof first) => lookup.kind === 'forwarded' ? lookup.decoded.fields?.commonName : undefined
  t.equal(commonName(first), 'alpha')
  t.equal(commonName(second), 'bravo')
  t.equal(commonName(again), 'alpha')
  const hit = proxy.lookup(['x-subject', 'CN=alpha' + tail], peer)
  t.equal(hit.kind === 'forwarded' && again.kind === 'forwarded' && hit.decoded === again.decoded, true, 'a true hit returns the cached decode')
})

t.test('trust is judged once per connection (HTTP/2: per session)', async (t) => {
  const asked: string[] = []
  const proxy = source((address) => { asked.push(address); return address === '127.0.0.1' })
  const socket = { remoteAddress: '127.0.0.1', destroyed: false }
  for (let i = 0; i < 3; i++) t.equal(proxy.isTrusted({ socket }), true)
  const session = {}
  for (let i = 0; i < 3; i++) t.equal(proxy.isTrusted({ socket: { remoteAddress: '10.0.0.1' }, stream: { session } }), false)
  t.same(asked, ['127.0.0.1', '10.0.0.1'])
  t.equal(proxy.isTrusted({ socket: {} }), false, 'a socket without an address is never trusted')
})
