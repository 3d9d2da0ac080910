/**
 * Starts one node of the platform: all services (embedded, `npm start`) or
 * the subset `SERVICES` names on the `TRANSPORTER` mesh. `--repl` opens the
 * operator REPL in the same process.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { ServiceBroker } from "moleculer";
import { loadConfigOrExit, type Config } from "./config";
import { createBrokerOptions } from "./moleculer.config";
import { createServiceSchemas, type SchemaOptions } from "./services";
import { leanMetrics } from "./lib/lean-metrics";
import { installLeanMetrics } from "./lib/lean-metrics-middleware";
import { forwardBreakerEvents } from "./lib/breaker-events";
import { checkReadiness } from "./lib/readiness";
import { openRepl } from "./lib/repl/commands";
import type { AdminBootstrap } from "./services/users.service";

export interface StartedNode {
	broker: ServiceBroker;
	/** What the node created for the admin account at start (when it hosts users). */
	admin?: AdminBootstrap;
	/** The ports the node actually listens on (0 in the configuration = chosen by the OS). */
	ports: NodePorts;
	stop(): Promise<void>;
}

export interface NodePorts {
	http?: number;
	mqtt?: number;
	metrics?: number;
	health?: number;
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
	try {
		await broker.start();
	} catch (err) {
		// Close what did start (stores, ports), so the caller can report and exit cleanly.
		await broker.stop().catch(() => undefined);
		throw err;
	}
	// Only now, with every service of the node started: a first start that failed (a port taken, say)
	// creates no admin, so no generated password is printed and lost.
	let admin: AdminBootstrap | undefined;
	const users = broker.getLocalService("users") as unknown as { bootstrapAdmin(): Promise<AdminBootstrap> } | undefined;
	if (users) {
		try {
			admin = await users.bootstrapAdmin();
		} catch (err) {
			await broker.stop().catch(() => undefined);
			throw err;
		}
	}

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
		admin,
		ports: await listeningPorts(broker, health),
		async stop() {
			health?.close();
			await broker.stop();
		},
	};
}

async function listeningPorts(broker: ServiceBroker, health?: http.Server): Promise<NodePorts> {
	const portOf = (server?: { address(): AddressInfo | string | null }) => {
		const a = server?.address();
		return a && typeof a === "object" ? a.port : undefined;
	};
	const api = broker.getLocalService("api") as unknown as { server?: http.Server } | undefined;
	const hardware = broker.getLocalService("hardware") as unknown as { embedded?: { port: number } } | undefined;
	// Moleculer's Prometheus reporter starts listening without waiting for it.
	const metrics = ((broker as unknown as { metrics?: { reporter?: { server?: http.Server }[] } }).metrics?.reporter ?? []).find(r => r.server)?.server;
	if (metrics && !metrics.listening) await new Promise(resolve => { metrics.once("listening", resolve); metrics.once("error", resolve); });
	return { http: portOf(api?.server), mqtt: hardware?.embedded?.port, metrics: portOf(metrics), health: portOf(health) };
}

/** The few lines printed once the node serves: what runs and where. */
export function banner(config: Config, ports: NodePorts): string {
	const mode = config.transporter ? `node on ${config.transporter.replace(/\/\/[^@]*@/, "//***@")}` : "embedded";
	const lines = [`Locker platform (${mode}) serving: ${config.services.join(", ")}`];
	if (ports.http !== undefined) lines.push(`  HTTP     http://localhost:${ports.http}/api/v1   (health /api/v1/health, OpenAPI /api/openapi.json)`);
	if (ports.mqtt !== undefined) lines.push(`  MQTT     mqtt://localhost:${ports.mqtt}   (embedded broker, for cabinets)`);
	else if (config.services.includes("hardware") && config.mqttUrl) lines.push(`  MQTT     ${config.mqttUrl.replace(/\/\/[^@]*@/, "//***@")}   (external broker)`);
	if (ports.metrics !== undefined) lines.push(`  metrics  http://${config.metricsHost}:${ports.metrics}/metrics`);
	if (ports.health !== undefined) lines.push(`  health   http://localhost:${ports.health}/ready`);
	lines.push(`  data     ${config.mongoUri ? "MongoDB" : `NeDB files in ${config.dataDir}`}`);
	return lines.join("\n");
}

export const usage = `usage: npm start [-- --help | --repl]

  --repl   also open the operators' REPL in this process (the commands of npm run repl)

Starts one node of the platform. It is configured by environment variables, not flags
(config/index.ts lists them all; .env.example the ones production needs), e.g.:

  PORT=3000          HTTP API (0 = any free port)
  MQTT_PORT=1883     embedded MQTT broker for the cabinets (when MQTT_URL is unset)
  METRICS_PORT       Prometheus endpoint of this node (0 = any free port)
  DATA_DIR=./data    NeDB files (unless MONGO_URI)
  ADMIN_USERNAME / ADMIN_PASSWORD   the admin account created on the first start
                                    (random password printed once; npm run admin -- reset-password)
  TRANSPORTER, SERVICES, HEALTH_PORT   a node of a NATS mesh hosting some services
  DEMO_SEED=false    no demo fleet on an empty store`;

/** `--help` → usage and 0; anything else on the command line → an error and 2 (EX_USAGE-like). */
export function parseServerArgs(argv: string[]): { help: boolean; repl: boolean } {
	const { values } = parseArgs({ args: argv, options: { help: { type: "boolean", short: "h" }, repl: { type: "boolean" } }, strict: true, allowPositionals: false });
	return { help: !!values.help, repl: !!values.repl };
}

async function main() {
	let help: boolean;
	let repl: boolean;
	try {
		({ help, repl } = parseServerArgs(process.argv.slice(2)));
	} catch (err) {
		console.error(`${(err as Error).message}\n\n${usage}`);
		process.exit(2);
	}
	if (help) {
		console.log(usage);
		process.exit(0);
	}
	const config = loadConfigOrExit(process.env);
	// Signals are handled from the first moment (the API may answer before startNode returns, while
	// the admin account is made): a stop then waits for the start to settle.
	const starting = startNode(config);
	let stopping = false;
	const shutdown = async (signal: string) => {
		if (stopping) return;
		stopping = true;
		try {
			const node = await starting.catch(() => undefined);
			if (!node) return; // the start failed and says so below
			node.broker.logger.info(`${signal}: stopping…`);
			await node.stop();
			process.exit(0);
		} catch (err) {
			console.error(err);
			process.exit(1);
		}
	};
	process.on("SIGINT", () => void shutdown("SIGINT"));
	process.on("SIGTERM", () => void shutdown("SIGTERM"));

	const node = await starting;
	if (stopping) return;
	node.broker.logger.info(`\n${banner(config, node.ports)}\n`);
	// `npm start -- --repl`: the operator commands in this process (lib/repl/commands.ts).
	if (repl) await openRepl(node.broker, { namespace: config.namespace, transporter: config.transporter ?? null });
}

if (require.main === module) {
	main().catch(err => {
		console.error(err);
		process.exit(1);
	});
}
