// A local js-ipfs node serving the Kubo-compatible RPC API on loopback only.
//
// Usage: node ipfs-node.mjs --repo DIR --ready-file FILE [--api-port N] [--gateway-port N] [--rpc-port N]
//
// The repo is initialised on first start with the `test` profile and a configuration that keeps
// the node on this machine: API, gateway and gRPC bound to 127.0.0.1, no swarm listeners, no
// routing, no bootstrap peers, no delegates, no preload, no MDNS, no NAT mapping, and the node
// runs offline (libp2p is never started, so nothing is ever dialled). Once every server listens,
// the bound URLs are written as JSON to the ready file (temp file + rename). SIGTERM/SIGINT stop
// the servers and the node, then the process exits 0.
import { create } from 'ipfs-core'
import { HttpApi } from 'ipfs-http-server'
import { HttpGateway } from 'ipfs-http-gateway'
import { createServer as createGrpcServer } from 'ipfs-grpc-server'
import { rename, writeFile } from 'node:fs/promises'

function parseArgs (argv) {
  const args = { apiPort: 0, gatewayPort: 0, rpcPort: 0 }
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]
    const value = argv[i + 1]
    if (value === undefined) throw new Error(`missing value for ${key}`)
    if (key === '--repo') args.repo = value
    else if (key === '--ready-file') args.readyFile = value
    else if (key === '--api-port') args.apiPort = Number(value)
    else if (key === '--gateway-port') args.gatewayPort = Number(value)
    else if (key === '--rpc-port') args.rpcPort = Number(value)
    else throw new Error(`unknown argument ${key}`)
  }
  if (!args.repo || !args.readyFile) throw new Error('--repo and --ready-file are required')
  for (const name of ['apiPort', 'gatewayPort', 'rpcPort']) {
    if (!Number.isInteger(args[name]) || args[name] < 0 || args[name] > 65535) throw new Error(`bad ${name}`)
  }
  return args
}

function loopbackConfig (args) {
  return {
    Addresses: {
      API: `/ip4/127.0.0.1/tcp/${args.apiPort}`,
      Gateway: `/ip4/127.0.0.1/tcp/${args.gatewayPort}`,
      RPC: `/ip4/127.0.0.1/tcp/${args.rpcPort}`,
      Swarm: [],
      Announce: [],
      NoAnnounce: [],
      Delegates: []
    },
    Bootstrap: [],
    Discovery: { MDNS: { Enabled: false, Interval: 10 }, webRTCStar: { Enabled: false } },
    Routing: { Type: 'none' },
    Pubsub: { Enabled: false, Router: 'gossipsub' },
    Swarm: { DisableNatPortMap: true, ConnMgr: { LowWater: 0, HighWater: 0 } },
    API: { HTTPHeaders: {} }
  }
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const config = loopbackConfig(args)
  const ipfs = await create({
    repo: args.repo,
    repoAutoMigrate: false,
    init: { profiles: ['test'], algorithm: 'Ed25519' },
    config,
    offline: true,
    preload: { enabled: false, addresses: [] },
    relay: { enabled: false, hop: { enabled: false, active: false } },
    silent: true,
    start: true
  })
  // An existing repo keeps its stored config: re-assert the loopback-only settings every start.
  for (const [key, value] of Object.entries(config)) {
    await ipfs.config.set(key, value)
  }

  const api = new HttpApi(ipfs)
  await api.start()
  const gateway = new HttpGateway(ipfs)
  await gateway.start()
  const grpc = await createGrpcServer(ipfs)

  const uri = (servers) => servers.map((s) => s.info.uri.replace('://0.0.0.0', '://127.0.0.1'))
  const ready = {
    pid: process.pid,
    api: uri(api._apiServers)[0],
    gateway: uri(gateway._gatewayServers)[0],
    rpc: grpc.info ? grpc.info.uri : config.Addresses.RPC,
    version: (await ipfs.version()).version
  }
  const tmp = `${args.readyFile}.tmp-${process.pid}`
  await writeFile(tmp, JSON.stringify(ready))
  await rename(tmp, args.readyFile)
  process.stderr.write(`ipfs-node ready ${JSON.stringify(ready)}\n`)

  let stopping = false
  const stop = async (signal) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`ipfs-node stopping on ${signal}\n`)
    try {
      await Promise.all([api.stop(), gateway.stop(), grpc.stop()])
      await ipfs.stop()
      process.exit(0)
    } catch (err) {
      process.stderr.write(`ipfs-node stop failed: ${err && err.stack ? err.stack : err}\n`)
      process.exit(1)
    }
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
}

main().catch((err) => {
  process.stderr.write(`ipfs-node failed: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
