// Starts @20minutes/s3rver on a loopback port for modelfetch's tests and demo.
//   node serve.js --dir DIR --port-file FILE [--port N] [--bucket NAME]... [--key ID --secret SECRET]
// Port 0 (the default) lets the kernel pick a free port; the chosen port is written to --port-file once the
// server listens, which is what scripts/lib.sh waits for. Extra credentials are registered beside s3rver's
// built-in S3RVER/S3RVER pair so tests can use their own key and a wrong one.
'use strict'
const fs = require('node:fs')
const S3rver = require('@20minutes/s3rver')
const AWSAccount = require('@20minutes/s3rver/lib/models/account')

function parseArgs(argv) {
  const out = { dir: null, portFile: null, port: 0, buckets: [], key: null, secret: null }
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--dir') out.dir = next()
    else if (a === '--port-file') out.portFile = next()
    else if (a === '--port') out.port = Number(next())
    else if (a === '--bucket') out.buckets.push(next())
    else if (a === '--key') out.key = next()
    else if (a === '--secret') out.secret = next()
    else throw new Error(`unknown argument ${a}`)
  }
  if (!out.dir || !out.portFile) throw new Error('--dir and --port-file are required')
  return out
}

async function main() {
  const args = parseArgs(process.argv)
  if (args.key && args.secret) {
    const account = new AWSAccount('123456789012', 'modelfetch-tests')
    account.createKeyPair(args.key, args.secret)
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: args.port,
    directory: args.dir,
    silent: true,
    configureBuckets: args.buckets.map((name) => ({ name })),
  })
  const { port } = await server.run()
  fs.writeFileSync(args.portFile + '.tmp', `${port}\n`)
  fs.renameSync(args.portFile + '.tmp', args.portFile)
  const stop = () => server.close().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error(`s3rver: ${err.message}`)
  process.exit(1)
})
