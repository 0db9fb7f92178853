#!/usr/bin/env node
// A solc look-alike on top of the pinned solc-js (node_modules/solc), so that py-solc-x and forge
// can compile offline without downloading a native solc.
//
//   solc-lookalike.js --version
//   solc-lookalike.js --standard-json [--base-path DIR] [--include-path DIR]... [--allow-paths A,B]
//
// --standard-json reads the compiler input JSON on stdin and prints the output JSON on stdout.
// Imports missing from the input are read from disk: relative to --base-path (default: the current
// directory) and each --include-path; `@openzeppelin/...` and `forge-std/...` from this
// directory's node_modules.
'use strict';

const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const NODE_MODULES = path.join(HERE, 'node_modules');

function usage(message) {
  process.stderr.write(`${message}\nusage: solc-lookalike.js --version | --standard-json [--base-path DIR] [--include-path DIR] [--allow-paths LIST]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, basePath: process.cwd(), includePaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const takeValue = () => {
      if (i + 1 >= argv.length) usage(`option ${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--version') opts.version = true;
    else if (arg === '--standard-json') opts.standardJson = true;
    else if (arg === '--base-path') opts.basePath = path.resolve(takeValue());
    else if (arg.startsWith('--base-path=')) opts.basePath = path.resolve(arg.slice('--base-path='.length));
    else if (arg === '--include-path') opts.includePaths.push(path.resolve(takeValue()));
    else if (arg.startsWith('--include-path=')) opts.includePaths.push(path.resolve(arg.slice('--include-path='.length)));
    else if (arg === '--allow-paths') takeValue(); // reads are limited to the roots above anyway
    else if (arg.startsWith('--allow-paths=')) continue;
    else if (arg === '-') continue; // stdin, implied by --standard-json
    else usage(`unrecognised option '${arg}'`);
  }
  return opts;
}

function makeImportCallback(opts) {
  const roots = [opts.basePath, ...opts.includePaths];
  const packageRoots = [
    ['@openzeppelin/', NODE_MODULES],
    ['forge-std/', NODE_MODULES],
  ];
  return function findImports(importPath) {
    const candidates = [];
    for (const [prefix, dir] of packageRoots) {
      if (importPath.startsWith(prefix)) candidates.push(path.join(dir, importPath));
    }
    for (const root of roots) candidates.push(path.resolve(root, importPath));
    for (const file of candidates) {
      try {
        return { contents: fs.readFileSync(file, 'utf8') };
      } catch (err) {
        // try the next candidate
      }
    }
    return { error: `File not found: ${importPath} (looked in ${candidates.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = require(path.join(NODE_MODULES, 'solc'));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!opts.standardJson) usage('nothing to do: give --version or --standard-json');
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  process.stdout.write(output);
  process.stdout.write('\n');
}

main();
