#!/usr/bin/env bash
# The package as a user gets it: `npm pack` in a clean clone (no dist/: `prepare` must build it),
# the tarball installed with npm into a fresh project, then imported and required, making a real call each way.
# test/package.spec.ts (in `npm test`) checks only the file list and manifest; this is where the package runs.
# The clone borrows this checkout's node_modules (the build's tools) instead of installing them again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$root" "$work/clone"
git -C "$root" diff HEAD --binary | git -C "$work/clone" apply --allow-empty   # uncommitted edits too, when run by hand
ln -s "$root/node_modules" "$work/clone/node_modules"
tarball="$(cd "$work/clone" && npm pack --silent --pack-destination "$work")"
mkdir "$work/project"
cd "$work/project"
echo '{ "name": "consumer", "version": "1.0.0", "private": true }' > package.json
npm install --prefer-offline --no-audit --no-fund --silent "$work/$tarball"
cat > call.mjs <<'JS'
import { Server, Client } from 'zeropeer';
const server = new Server('svc');
await server.bind('tcp://127.0.0.1:0');
server.registerRpc('up', (s) => s.toUpperCase());
await server.start();
const client = new Client('svc');
client.connect(server.endpoint);
await client.start();
console.log(await client.call.up('ok'));
await client.stop(); await server.stop();
JS
cat > call.cjs <<'JS'
const { Server, Client } = require('zeropeer');
(async () => {
  const server = new Server('svc');
  await server.bind('tcp://127.0.0.1:0');
  server.registerRpc('up', (s) => s.toUpperCase());
  await server.start();
  const client = new Client('svc');
  client.connect(server.endpoint);
  await client.start();
  console.log(await client.call.up('cjs'));
  await client.stop(); await server.stop();
})();
JS
test "$(node call.mjs)" = OK
test "$(node call.cjs)" = CJS   # require(esm): Node.js >= 20.19 without a flag (engines)
npx --no-install zeropeer keygen | grep -q publicKey
echo "package check: $tarball packed from a clean clone, installed, imported and required (a call each way); its zeropeer command runs"
