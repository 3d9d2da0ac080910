/**
 * `npm run repl`: join the mesh as a node that hosts no services and open
 * Moleculer's REPL (call actions, list nodes and services, emit events) with
 * the operator commands of lib/repl/commands.ts (door, cabinet, offline,
 * open, order, alerts, silence, …). Needs TRANSPORTER and the NAMESPACE of
 * the mesh (default `lockers`); warns when it finds no platform node there.
 */
import { parseArgs } from "node:util";
import { ServiceBroker } from "moleculer";
import { loadConfigOrExit } from "../config";
import { createBrokerOptions } from "../moleculer.config";
import { openRepl } from "../lib/repl/commands";

export const usage = `usage: npm run repl [-- --help]

Joins a running mesh as a node that hosts no services and opens Moleculer's REPL
(call, nodes, services, …; custom commands: whoami, cabinet, doors, geo — type help).
Configured by the environment: TRANSPORTER (required, e.g. nats://127.0.0.1:4222), NAMESPACE.`;

async function main() {
	try {
		const { values } = parseArgs({ args: process.argv.slice(2), options: { help: { type: "boolean", short: "h" } }, strict: true, allowPositionals: false });
		if (values.help) {
			console.log(usage);
			process.exit(0);
		}
	} catch (err) {
		console.error(`${(err as Error).message}\n\n${usage}`);
		process.exit(2);
	}
	const config = loadConfigOrExit({ ...process.env, SERVICES: "api", LOG_LEVEL: process.env.LOG_LEVEL ?? "warn", METRICS: "false" });
	if (!config.transporter) {
		console.error("npm run repl joins a running mesh: set TRANSPORTER (e.g. nats://127.0.0.1:4222); for the embedded platform use npm start -- --repl");
		process.exit(2);
	}
	const broker = new ServiceBroker({ ...createBrokerOptions(config), nodeID: `repl-${process.pid}` });
	await broker.start();
	await openRepl(broker, { namespace: config.namespace, transporter: config.transporter });
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
