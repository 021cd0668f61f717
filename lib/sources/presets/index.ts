// The presets: per proxy, which headers carry the certificate and its verify status, and how to decode them.
import { apache } from './apache.js'
import { awsAlb, awsAlbPassthrough } from './aws-alb.js'
import { azure } from './azure.js'
import { caddy } from './caddy.js'
import { cloudflare } from './cloudflare.js'
import { envoy } from './envoy.js'
import { gcp } from './gcp.js'
import { haproxy } from './haproxy.js'
import { nginx } from './nginx.js'
import { rfc9440 } from './rfc9440.js'
import { traefik } from './traefik.js'
import type { Preset } from './types.js'

const presets: ReadonlyMap<string, Preset> = new Map(
  [nginx, apache, haproxy, caddy, envoy, traefik, awsAlb, awsAlbPassthrough, gcp, cloudflare, azure, rfc9440].map((preset) => [preset.name, preset])
)

/** Names `proxy.preset` accepts. */
export const presetNames: readonly string[] = Object.freeze([...presets.keys()])

/** The preset of that exact name, or undefined (a Map lookup, so `__proto__` and friends are just unknown names). */
export function getPreset (name: string): Preset | undefined {
  return presets.get(name)
}
