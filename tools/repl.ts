/**
 * `npm run repl`: join the mesh as a node that hosts no services and open
 * Moleculer's REPL (call actions, list nodes and services, emit events).
 * Needs TRANSPORTER (and the NAMESPACE of the mesh, default `lockers`).
 */
import { parseArgs } from "node:util";
import { ServiceBroker } from "moleculer";
import { loadConfigOrExit } from "../config";
import { createBrokerOptions } from "../moleculer.config";

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
		console.error("npm run repl joins a running mesh: set TRANSPORTER (e.g. nats://127.0.0.1:4222)");
		process.exit(2);
	}
	const broker = new ServiceBroker({
		...createBrokerOptions(config),
		nodeID: `repl-${process.pid}`,
		replOptions: {
			customCommands: [
				{
					command: "whoami <userId>",
					description: "Show a user account by id",
					async action(b: ServiceBroker, args: any) {
						// moleculer-repl passes the named arguments as properties.
						console.log(await b.call("users.get", { id: args.userId }));
					},
				},
				{
					command: "cabinet <cabinetId>",
					description: "Show a cabinet with its doors (as GET /cabinets/:id)",
					async action(b: ServiceBroker, args: any) {
						const c = await b.call<any, object>("merchants.getCabinet", { id: args.cabinetId });
						console.log(`${c.id} at ${c.pointId} (merchant ${c.merchantId}) online=${c.online} lastSeenAt=${c.lastSeenAt}`);
						console.table(c.doors.map((d: any) => ({ door: d.id, size: d.size, state: d.state, open: d.open, occupied: d.occupied, order: d.orderId ?? "" })));
					},
				},
				{
					command: "doors",
					description: "Each doors node's cabinets (held, online), resident door actors, and each MQTT bridge's message counts",
					async action(b: ServiceBroker) {
						const on = (name: string) => b.registry.getServiceList({ onlyAvailable: true }).filter((s: any) => s.name === name).map((s: any) => s.nodeID as string);
						const doors = await Promise.all(on("doors").map(nodeID => b.call<any, object>("doors.stats", {}, { nodeID })));
						console.table(doors.map(d => ({ node: d.nodeID, cabinets: d.cabinets, online: d.online, residentDoors: d.residentDoors, malformed: d.malformed })));
						const bridges = await Promise.all(on("hardware").map(nodeID => b.call<any, object>("hardware.stats", {}, { nodeID })));
						for (const h of bridges) console.log(`${h.nodeID}: connected=${h.connected} embedded=${h.embedded}`, h.messages);
					},
				},
				{
					command: "geo",
					description: "Each geo replica's index size, H3 resolution and nearby cache hit rate",
					async action(b: ServiceBroker) {
						const nodes = b.registry.getServiceList({ onlyAvailable: true }).filter((s: any) => s.name === "geo").map((s: any) => s.nodeID as string);
						// One call per replica (a plain call would reach only one of them).
						const rows = await Promise.all(nodes.map(async nodeID => ({ nodeID, ...(await b.call<any, object>("geo.stats", {}, { nodeID })) })));
						console.table(rows.map(r => ({ node: r.nodeID, points: r.points, res: r.resolution, cells: r.cells, hitRate: `${(100 * r.cache.hitRate).toFixed(1)} %` })));
					},
				},
			],
		},
	});
	await broker.start();
	await broker.repl();
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
