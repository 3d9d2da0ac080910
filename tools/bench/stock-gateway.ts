/**
 * The framework's own ceiling: a stock moleculer-web gateway with one trivial
 * action answering `GET /api/v1/me` (the same body as the bare server), no
 * middleware, no auth, no validation. METRICS=true turns on Moleculer's
 * built-in metrics with its Prometheus reporter (as a stock install would);
 * METRICS=false leaves them off. Started by the gateway benchmark on `PORT`.
 * With TRANSPORTER (a nats:// URL) and ROLE=api or ROLE=bench, the gateway and
 * the action run as two nodes of one mesh (NAMESPACE), as the platform's nats
 * target does.
 */
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const metrics = process.env.METRICS === "true";
const role = process.env.ROLE ?? "all";
const broker = new ServiceBroker({
	nodeID: `stock-${role}-${process.pid}`,
	namespace: process.env.NAMESPACE ?? "",
	transporter: process.env.TRANSPORTER ? { type: "NATS", options: { url: process.env.TRANSPORTER } } : null,
	logger: false,
	metrics: metrics ? { enabled: true, reporter: [{ type: "Prometheus", options: { port: 0 } }] } : { enabled: false },
});

if (role !== "api") broker.createService({
	name: "bench",
	actions: {
		me: () => ({ id: "usr_x", phone: "+8613800138000", name: "用户8000", roles: ["user"] }),
		health: () => ({ status: "ok" }),
	},
});

if (role !== "bench") broker.createService({
	name: "api",
	mixins: [ApiGateway],
	settings: {
		port: Number(process.env.PORT ?? 0),
		ip: "127.0.0.1",
		routes: [{ path: "/api/v1", aliases: { "GET me": "bench.me", "GET health": "bench.health" }, mappingPolicy: "restrict" }],
	},
});

void broker.start();
const stop = () => void broker.stop().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
