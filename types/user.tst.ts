import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyClientCert from 'fastify-client-cert'

declare module 'fastify-client-cert' {
  interface FastifyClientCertUser {
    user: { id: number, name: string }
  }
}

test('request.user takes the type users declare through the merge interface', () => {
  const app = Fastify()
  app.register(fastifyClientCert, { resolveUser: async () => ({ id: 1, name: 'alice' }) })
  app.get('/', async (request) => {
    expect(request.user).type.toBe<{ id: number, name: string }>()
  })
})
