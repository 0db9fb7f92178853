// Hardhat 2, fully offline.
//
//   npx hardhat node --port 8545     a local chain (cancun) on loopback
//   npx hardhat compile              the contracts with the pinned solc-js (node_modules/solc), no download
//
// The Solidity sources are the repository's contracts/ folder
// without contracts/test/ (forge tests, see foundry.toml). The canonical, committed artifacts are
// made by `fedchain contracts build`; Hardhat's own artifacts go to hardhat-local/artifacts (ignored).
const path = require("path");
const { subtask } = require("hardhat/config");
const {
  TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD,
  TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS,
} = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = "0.8.37";
const SOLC_PACKAGE = require("solc/package.json");
const REPO_ROOT = path.resolve(__dirname, "..");
const CONTRACTS = path.join(REPO_ROOT, "contracts");

if (SOLC_PACKAGE.version !== SOLC_VERSION) {
  throw new Error(`node_modules/solc is ${SOLC_PACKAGE.version}, the contracts pin ${SOLC_VERSION}`);
}

// Use the solc-js from node_modules instead of downloading a compiler.
subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }, hre, runSuper) => {
  if (solcVersion !== SOLC_VERSION) return runSuper();
  const solc = require("solc");
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: solcVersion,
    longVersion: solc.version(),
  };
});

// Hardhat 2 only compiles files inside its project root, so the root is the repository; Solidity
// packages (@openzeppelin/contracts, forge-std) are then looked up in this directory's node_modules
// as well (Hardhat itself only searches node_modules folders above the project root).
const NODE_MODULES = path.join(__dirname, "node_modules");
const { Resolver } = require("hardhat/internal/solidity/resolver");
const resolvePackage = require("resolve");
Resolver.prototype._resolveNodeModulesFileFromProjectRoot = function resolveFromToolchain(fileName) {
  return resolvePackage.sync(fileName, { basedir: this._projectRoot, preserveSymlinks: true, paths: [NODE_MODULES] });
};

// contracts/test/ holds forge tests (forge-std cheatcodes); Hardhat compiles the contracts only.
subtask(TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS, async (args, hre, runSuper) => {
  const paths = await runSuper(args);
  const tests = path.join(CONTRACTS, "test") + path.sep;
  return paths.filter((p) => !p.startsWith(tests));
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    compilers: [
      {
        version: SOLC_VERSION,
        settings: { evmVersion: "cancun", optimizer: { enabled: true, runs: 1000 } },
      },
    ],
  },
  paths: {
    root: REPO_ROOT,
    sources: CONTRACTS,
    cache: path.join(__dirname, "cache"),
    artifacts: path.join(__dirname, "artifacts"),
  },
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "cancun",
      mining: { auto: true, interval: 0 },
    },
  },
};
