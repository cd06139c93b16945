// Entry used by tests: the CLI from source, without a build step.
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv);
