/** Command-line helpers shared by the benchmarks. */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Bad invocation: the runner prints the message and the benchmark's usage, exits 2. */
export class UsageError extends Error {
	override name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `--name value` flags only (no positionals); unknown flags are usage errors. */
export function parseFlags<O extends Options>(argv: string[], options: O) {
	try {
		return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
	} catch (err) {
		throw new UsageError((err as Error).message);
	}
}

export function positiveInt(name: string, raw: string | undefined, def: number, { allowZero = false } = {}): number {
	if (raw === undefined) return def;
	const n = Number(raw);
	if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new UsageError(`--${name} must be a ${allowZero ? "non-negative" : "positive"} integer (got "${raw}")`);
	return n;
}

/**
 * A command-line tool's entry point: `--help`/`-h` prints the usage and exits 0; a UsageError
 * prints its message and the usage and exits 2; any other failure exits 1; else main's exit code.
 */
export function runTool(main: (argv: string[]) => Promise<number>, usage: string): void {
	const argv = process.argv.slice(2);
	if (argv.includes("--help") || argv.includes("-h")) {
		console.log(`usage: ${usage}`);
		process.exit(0);
	}
	main(argv).then(
		code => process.exit(code),
		err => {
			if (err instanceof UsageError) {
				console.error(`${err.message}\n\nusage: ${usage}`);
				process.exit(2);
			}
			console.error(err);
			process.exit(1);
		},
	);
}
