import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { expect, test } from 'tstyche'
import fastifyClientCert from 'fastify-client-cert'

declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: { sub: string }
  }
}

test('with @fastify/jwt and no declaration of ours, both compile and request.user is jwt\'s', () => {
  const app = Fastify()
  app.register(fastifyJwt, { secret: 'a secret of some length' })
  app.register(fastifyClientCert, { required: false })
  app.get('/', async (request) => {
    expect(request.user).type.toBe<{ sub: string }>()
  })
})
