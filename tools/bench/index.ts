/**
 * Benchmark runner: `npm run bench -- <name> [options]`.
 *
 * Each benchmark is a module exporting `usage` and `main(argv) → exit code`;
 * register it below with a one-line summary. Modules load only when chosen,
 * so one benchmark's imports never slow down or break another.
 */
import { UsageError } from "./cli";
import { closeAllScopes } from "./procs";

interface BenchmarkModule {
	usage: string;
	main(argv: string[]): Promise<number>;
}

const BENCHMARKS: Record<string, { summary: string; load: () => Promise<BenchmarkModule> }> = {
	gateway: { summary: "GET /api/v1/me through the gateway (embedded, over NATS) vs plain node:http", load: () => import("./gateway") },
	doors: { summary: "door opens end to end vs the raw MQTT round trip through Mosquitto; door actor memory", load: () => import("./doors") },
	orders: { summary: "complete order lifecycles per second through REST (reserve → deposit → pay → pickup), embedded and distributed", load: () => import("./orders") },
	alerts: { summary: "a burst of alerts into one DingTalk robot (20 a minute): the usual bridge's behaviour vs the alerts service, also with failing requests", load: () => import("./alerts") },
	geo: { summary: "nearest 20 over 100 000 points: our H3 index vs geokdbush, Redis, brute force; GET /api/v1/points/nearby over HTTP", load: () => import("./geo") },
};

function usage(): string {
	const width = Math.max(...Object.keys(BENCHMARKS).map(n => n.length));
	const list = Object.entries(BENCHMARKS).map(([name, b]) => `  ${name.padEnd(width)}  ${b.summary}`);
	return `usage: npm run bench -- <benchmark> [options]    (npm run bench -- <benchmark> --help for its options)\n\nbenchmarks:\n${list.join("\n")}`;
}

let interrupted = false;
async function interrupt(signal: NodeJS.Signals) {
	if (interrupted) return;
	interrupted = true;
	console.error(`\n${signal}: stopping the servers…`);
	await closeAllScopes();
	process.exit(130);
}

async function run(argv: string[]): Promise<number> {
	const [name, ...rest] = argv;
	if (name === undefined || name === "help" || name === "--help" || name === "-h") {
		// Asked for: stdout and 0; missing: stderr and 2.
		(name === undefined ? console.error : console.log)(usage());
		return name === undefined ? 2 : 0;
	}
	const entry = BENCHMARKS[name];
	if (!entry) {
		console.error(`unknown benchmark "${name}"\n\n${usage()}`);
		return 2;
	}
	const bench = await entry.load();
	if (rest.includes("--help") || rest.includes("-h")) {
		console.log(bench.usage);
		return 0;
	}
	try {
		return await bench.main(rest);
	} catch (err) {
		if (err instanceof UsageError) {
			console.error(`${err.message}\n\nusage: ${bench.usage}`);
			return 2;
		}
		throw err;
	}
}

// `on`, not `once`: Ctrl-C reaches us twice (directly and relayed by the tsx wrapper).
process.on("SIGINT", () => void interrupt("SIGINT"));
process.on("SIGTERM", () => void interrupt("SIGTERM"));

run(process.argv.slice(2))
	.catch(err => {
		// Our own failures are plain Errors that say what went wrong; anything else is a bug here.
		console.error(`\nbenchmark failed: ${err instanceof Error && err.constructor !== Error ? err.stack : err instanceof Error ? err.message : String(err)}`);
		return 1;
	})
	.then(async code => {
		await closeAllScopes();
		// Keep-alive sockets of fetch/autocannon must not hold the runner open.
		process.exit(code);
	});
