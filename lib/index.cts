// The CommonJS entry: `require('fastify-client-cert')` hands out the plugin function itself, carrying every
// named export (and `default`) as properties, as @fastify/* plugins do.
import api = require('./index.js')

const plugin = Object.assign(api.fastifyClientCert, api)

export = plugin
