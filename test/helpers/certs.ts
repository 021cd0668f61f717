import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateCerts, LEAF_NAMES } from '../fixtures/generate-certs.js'
import type { GeneratedName } from '../fixtures/generate-certs.js'

export interface CertFiles { name: string, certPem: string, keyPem: string, certPath: string, keyPath: string, der: Buffer }
export interface Leaf extends CertFiles {
  /** leaf + intermediate PEM ('untrusted' and 'selfsigned': the leaf alone, their issuer being a root) */
  chainPem: string
  chainPath: string
}
export type LeafName = typeof LEAF_NAMES[number]
export interface Corpus {
  /** temp dir holding every file */
  dir: string
  root: CertFiles
  /** signed by root; issues every trusted leaf */
  intermediate: CertFiles
  /** root + intermediate PEM bundle (what servers put in `ca`) */
  caPem: string
  caPath: string
  /** an unrelated CA that issues 'untrusted' */
  rogueRoot: CertFiles
  leaves: Record<LeafName, Leaf>
}

export { LEAF_NAMES }

let corpus: Promise<Corpus> | undefined

/** The certificate corpus, generated once per process in os.tmpdir() and removed at exit. */
export function getCorpus (): Promise<Corpus> {
  corpus ??= build()
  return corpus
}

async function build (): Promise<Corpus> {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-corpus-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  const { files, caPath } = await generateCerts(dir)

  const load = async (name: GeneratedName): Promise<Leaf> => {
    const { certPath, keyPath, chainPath } = files[name]
    const [certPem, keyPem, chainPem] = await Promise.all([
      readFile(certPath, 'utf8'), readFile(keyPath, 'utf8'), readFile(chainPath, 'utf8')
    ])
    return { name, certPem, keyPem, certPath, keyPath, der: new X509Certificate(certPem).raw, chainPem, chainPath }
  }
  const [root, intermediate, rogueRoot, caPem, ...leaves] = await Promise.all([
    load('root'), load('intermediate'), load('rogueRoot'), readFile(caPath, 'utf8'), ...LEAF_NAMES.map(load)
  ])
  return {
    dir,
    root: caFiles(root),
    intermediate: caFiles(intermediate),
    rogueRoot: caFiles(rogueRoot),
    caPem,
    caPath,
    leaves: Object.fromEntries(leaves.map(leaf => [leaf.name, leaf])) as Record<LeafName, Leaf>
  }
}

function caFiles ({ name, certPem, keyPem, certPath, keyPath, der }: Leaf): CertFiles {
  return { name, certPem, keyPem, certPath, keyPath, der }
}
