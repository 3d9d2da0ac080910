/**
 * Broker options, built from the typed configuration.
 * Embedded (no TRANSPORTER): one process, memory cacher. Distributed: NATS,
 * and Redis as cacher when REDIS_URL is set.
 */
import os from "node:os";
import type { BrokerOptions } from "moleculer";
import type { Config } from "./config";
import { AccessMiddleware } from "./middlewares/access.middleware";
import { StrictValidator } from "./lib/strict-validator";
import { createRemoteTimeoutMiddleware } from "./middlewares/remote-timeout.middleware";
import { createPrometheusReporter } from "./lib/prometheus-reporter";

export function createBrokerOptions(config: Config, overrides: Partial<BrokerOptions> = {}): BrokerOptions {
	const role = config.services.length === 1 ? config.services[0] : config.transporter ? config.services.join("+") : "all";
	return {
		namespace: config.namespace,
		nodeID: config.nodeID ?? `${os.hostname()}-${role}-${process.pid}`,

		logger: {
			type: "Console",
			options: {
				level: config.logLevel,
				// Structured JSON lines in production (for log shippers), readable lines in development.
				formatter: config.env === "production" ? "json" : "short",
				colors: config.env !== "production",
				moduleColors: false,
			},
		},

		transporter: config.transporter ? { type: "NATS", options: { url: config.transporter } } : null,
		serializer: "JSON",

		cacher: config.redisUrl
			// ioredis takes the URL as it is; the typings only know the object form.
			? { type: "Redis", options: { prefix: `${config.namespace}-cache`, ttl: 300, redis: config.redisUrl as unknown as Record<string, unknown> } }
			: { type: "MemoryLRU", options: { max: 100_000, ttl: 300 } },

		requestTimeout: config.requestTimeoutMs,
		// Never re-send calls on their own: some actions have physical side effects (door opening).
		retryPolicy: { enabled: false },
		circuitBreaker: {
			enabled: true,
			threshold: 0.5,
			minRequestCount: 5,
			windowTime: 20,
			halfOpenTime: 5_000,
			check: (err: any) => err && err.code >= 500 && err.type !== "VALIDATION_ERROR",
		},
		bulkhead: { enabled: false },
		registry: { strategy: "RoundRobin", preferLocal: true },
		heartbeatInterval: 5,
		heartbeatTimeout: 15,
		contextParamsCloning: false,
		tracking: { enabled: true, shutdownTimeout: 10_000 },

		validator: new StrictValidator(),

		metrics: {
			enabled: config.metrics,
			reporter: [createPrometheusReporter({ port: config.metricsPort, host: config.metricsHost })],
		},
		tracing: config.tracingExporter
			? { enabled: true, exporter: config.tracingExporter as "Console", sampling: { rate: 1 } }
			: { enabled: false },

		middlewares: [AccessMiddleware, createRemoteTimeoutMiddleware()],
		...overrides,
	};
}
