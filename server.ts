/**
 * Starts one node of the platform: all services (embedded, `npm start`) or
 * the subset `SERVICES` names on the `TRANSPORTER` mesh.
 */
import http from "node:http";
import { ServiceBroker } from "moleculer";
import { loadConfigOrExit, type Config } from "./config";
import { createBrokerOptions } from "./moleculer.config";
import { createServiceSchemas, type SchemaOptions } from "./services";
import { leanMetrics } from "./lib/lean-metrics";
import { installLeanMetrics } from "./lib/lean-metrics-middleware";
import { forwardBreakerEvents } from "./lib/breaker-events";
import { checkReadiness } from "./lib/readiness";

export interface StartedNode {
	broker: ServiceBroker;
	stop(): Promise<void>;
}

export async function startNode(config: Config, opts: SchemaOptions & { brokerOverrides?: Record<string, unknown> } = {}): Promise<StartedNode> {
	// Moleculer's metric families, counted at a cost close to zero per call (lib/lean-metrics-middleware.ts).
	installLeanMetrics();
	// Signals are main()'s: Moleculer's own handlers would stop the broker a second time beside it
	// (every service's `stopped` twice) and exit before the health server closes.
	const broker = new ServiceBroker(createBrokerOptions(config, { skipProcessEventRegistration: true, ...opts.brokerOverrides }));
	leanMetrics(broker);
	forwardBreakerEvents(broker);
	for (const schema of createServiceSchemas(config, config.services, opts)) broker.createService(schema);
	await broker.start();

	// Nodes without the gateway can still answer docker/k8s health checks.
	let health: http.Server | undefined;
	if (config.healthPort !== undefined && !config.services.includes("api")) {
		health = http.createServer(async (req, res) => {
			const r = req.url === "/ready" ? await checkReadiness(broker, config) : { ready: true, nodeID: broker.nodeID, checks: {} };
			res.writeHead(r.ready ? 200 : 503, { "Content-Type": "application/json" });
			res.end(JSON.stringify(r));
		});
		await new Promise<void>(resolve => health!.listen(config.healthPort, resolve));
	}
	return {
		broker,
		async stop() {
			health?.close();
			await broker.stop();
		},
	};
}

async function main() {
	const config = loadConfigOrExit(process.env);
	const node = await startNode(config);
	const mode = config.transporter ? `node on ${config.transporter.replace(/\/\/[^@]*@/, "//***@")}` : "embedded";
	node.broker.logger.info(`Locker platform ${mode} running: ${config.services.join(", ")}` +
		(config.services.includes("api") ? ` — http://localhost:${config.port}/api/v1/health` : ""));

	let stopping = false;
	const shutdown = async (signal: string) => {
		if (stopping) return;
		stopping = true;
		node.broker.logger.info(`${signal}: stopping…`);
		try {
			await node.stop();
			process.exit(0);
		} catch (err) {
			console.error(err);
			process.exit(1);
		}
	};
	process.on("SIGINT", () => void shutdown("SIGINT"));
	process.on("SIGTERM", () => void shutdown("SIGTERM"));
}

if (require.main === module) {
	main().catch(err => {
		console.error(err);
		process.exit(1);
	});
}
